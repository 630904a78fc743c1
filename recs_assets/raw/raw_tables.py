"""The raw Phase 1 assets: validated users, items and interactions, and the quarantined rows.

One multi-asset validates the three tables together (interactions must reference valid users and
items) and emits each as its own asset. A blocking check per raw table fails when more than
``max_rejected_share`` of its input rows were quarantined, so nothing downstream runs on bad data.
"""

from collections.abc import Iterator

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    Config,
    MetadataValue,
    Output,
    asset_check,
    multi_asset,
)

from recs_assets.core.phase1.validation import TableStats, rejected_share, validate_tables
from recs_assets.raw.source_resource import Phase1Source

RAW_ASSETS: dict[str, str] = {
    "users": "raw_users",
    "items": "raw_items",
    "interactions": "raw_interactions",
}
PREVIEW_ROWS = 10


class RawTablesConfig(Config):
    """``now``: ISO 8601 reference time for the not-in-the-future check; empty = wall clock."""

    now: str = ""


class RejectedShareConfig(Config):
    """The largest share of a table's input rows that may be quarantined before the check fails."""

    max_rejected_share: float = 0.01


@multi_asset(
    outs={
        "raw_users": AssetOut(
            description="Validated users (pseudonymized ids, region not ZIP).",
            dagster_type=pd.DataFrame,
        ),
        "raw_items": AssetOut(
            description="Validated items with categories, price and quality.",
            dagster_type=pd.DataFrame,
        ),
        "raw_interactions": AssetOut(
            description="Validated events (view, click, add_to_cart, purchase, rate) of valid users and items.",
            dagster_type=pd.DataFrame,
        ),
        "quarantined_rows": AssetOut(
            description="Every rejected input row with its table, position, failed check and reasons.",
            dagster_type=pd.DataFrame,
        ),
    },
    name="raw_tables",
)
def raw_tables(
    context: AssetExecutionContext, config: RawTablesConfig, phase1: Phase1Source
) -> Iterator[Output[pd.DataFrame]]:
    """Validated Phase 1 tables and their quarantine, from the ``phase1`` source."""
    now = pd.Timestamp(config.now) if config.now else pd.Timestamp.now(tz="UTC")
    result = validate_tables(phase1.load(), now=now, contract=phase1.contract())
    for table, key in RAW_ASSETS.items():
        frame = result.tables.table(table)
        yield Output(
            frame, output_name=key, metadata=_table_metadata(frame, result.stats[table], phase1)
        )
    quarantine = result.quarantine
    yield Output(
        quarantine,
        output_name="quarantined_rows",
        metadata={
            "dagster/row_count": len(quarantine),
            "by_table": MetadataValue.json(_counts(quarantine, "table")),
            "by_check": MetadataValue.json(_counts(quarantine, "check")),
            "preview": MetadataValue.md(_markdown(quarantine.drop(columns=["raw_row"]))),
        },
    )
    context.log.info(
        "validated: "
        + ", ".join(f"{t} {s.valid}/{s.rows_in} valid" for t, s in result.stats.items())
    )


def _table_metadata(
    frame: pd.DataFrame, stats: TableStats, source: Phase1Source
) -> dict[str, object]:
    return {
        "dagster/row_count": stats.valid,
        "rows_in": stats.rows_in,
        "rejected": stats.rejected,
        "rejected_share": float(stats.rejected_share),
        "null_share": MetadataValue.json({c: round(v, 6) for c, v in stats.null_share.items()}),
        "source": f"{source.kind}:{source.path or source.preset}",
        "preview": MetadataValue.md(_markdown(frame)),
    }


def _counts(frame: pd.DataFrame, column: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in frame[column].value_counts().sort_index().items()}


def _markdown(frame: pd.DataFrame) -> str:
    """The first rows as a markdown table (``|`` inside values, as in categories, escaped)."""
    if frame.empty:
        return "(empty)"
    head = frame.head(PREVIEW_ROWS).astype(object).where(frame.head(PREVIEW_ROWS).notna(), "")
    cells = head.map(lambda v: str(v).replace("|", "\\|"))
    return cells.to_markdown(index=False, disable_numparse=True)


def _check_result(
    table: str, valid: pd.DataFrame, quarantine: pd.DataFrame, limit: float
) -> AssetCheckResult:
    share = rejected_share(len(valid), quarantine, table)
    return AssetCheckResult(
        passed=bool(share <= limit),
        metadata={
            "rejected_share": float(share),
            "max_rejected_share": float(limit),
            "rejected": int((quarantine["table"] == table).sum()),
            "valid": len(valid),
        },
        description=f"{share:.4%} of {table} rows quarantined (limit {limit:.2%})",
    )


_QUARANTINE_IN = {"quarantined_rows": AssetIn("quarantined_rows")}


@asset_check(asset="raw_users", blocking=True, additional_ins=_QUARANTINE_IN)
def raw_users_rejected_share(
    config: RejectedShareConfig, raw_users: pd.DataFrame, quarantined_rows: pd.DataFrame
) -> AssetCheckResult:
    """At most ``max_rejected_share`` of the user rows were quarantined."""
    return _check_result("users", raw_users, quarantined_rows, config.max_rejected_share)


@asset_check(asset="raw_items", blocking=True, additional_ins=_QUARANTINE_IN)
def raw_items_rejected_share(
    config: RejectedShareConfig, raw_items: pd.DataFrame, quarantined_rows: pd.DataFrame
) -> AssetCheckResult:
    """At most ``max_rejected_share`` of the item rows were quarantined."""
    return _check_result("items", raw_items, quarantined_rows, config.max_rejected_share)


@asset_check(asset="raw_interactions", blocking=True, additional_ins=_QUARANTINE_IN)
def raw_interactions_rejected_share(
    config: RejectedShareConfig, raw_interactions: pd.DataFrame, quarantined_rows: pd.DataFrame
) -> AssetCheckResult:
    """At most ``max_rejected_share`` of the interaction rows were quarantined."""
    return _check_result(
        "interactions", raw_interactions, quarantined_rows, config.max_rejected_share
    )


RAW_CHECKS = [raw_users_rejected_share, raw_items_rejected_share, raw_interactions_rejected_share]
