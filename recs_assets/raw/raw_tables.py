"""The raw Phase 1 assets: validated users, items and interactions, and the quarantined rows.

- ``raw_tables`` (one multi-asset) validates the users and items together and emits each as its
  own asset, with ``quarantined_rows``: their rejected rows plus the events that belong to no
  daily partition (timestamp unreadable, or a day outside the partitions).
- ``daily_interactions`` (a multi-asset partitioned by UTC day, ``raw.partitions``) validates the
  events of its days against the valid users and items and writes ``raw_interactions`` and
  ``quarantined_interactions`` one partition per day. A backfill of a range of days is one run.

A blocking check per raw table fails when more than ``max_rejected_share`` of its input rows were
quarantined (for interactions: of the run's days), so nothing downstream runs on bad data.
"""

import hashlib
import warnings
from collections.abc import Callable, Iterator
from typing import Literal

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetOut,
    BetaWarning,
    Config,
    DataVersion,
    MetadataValue,
    Output,
    asset_check,
    multi_asset,
)
from pydantic import Field

from recs_assets.core.phase1.daily import (
    DAY_CHUNK_EVENTS,
    DayValidation,
    StreamedDays,
    iter_validated_days,
    undated_interactions,
)
from recs_assets.core.phase1.validation import TableStats, rejected_share, validate_tables
from recs_assets.core.table_store import PartitionedFrame
from recs_assets.platform.spark_resource import SparkResource
from recs_assets.raw.partitions import INTERACTION_DAYS, ONE_RUN_PER_RANGE, partition_bounds
from recs_assets.raw.source_resource import Phase1Source

RAW_ASSETS: dict[str, str] = {"users": "raw_users", "items": "raw_items"}
DEFAULT_MAX_REJECTED_SHARE = 0.01
# the content data versions below are deliberate: Dagster's beta notice about them is not a
# warning an operator can act on (it printed on every materialization of the raw tables)
warnings.filterwarnings("ignore", message=".*data_version.*", category=BetaWarning)
PREVIEW_ROWS = 10


class RawTablesConfig(Config):
    """``now``: ISO 8601 reference time for the not-in-the-future check; empty = wall clock."""

    now: str = ""


class RejectedShareConfig(Config):
    """The largest share of a table's input rows that may be quarantined before the check fails."""

    max_rejected_share: float = DEFAULT_MAX_REJECTED_SHARE


class DailyInteractionsConfig(Config):
    """``now``: ISO 8601 reference time for the not-in-the-future check (empty = wall clock);
    ``max_rejected_share``: the largest share of the run's events that may be quarantined before
    the blocking ``raw_interactions_rejected_share`` check fails; ``engine``: where the contract
    runs: ``pandas`` (on the driver), ``spark`` (Spark SQL on the executors, same quarantine), or
    ``auto``: Spark when a Spark cluster is configured (``RECS_SPARK_MASTER``), or in local mode
    when ``spark_above_events`` is set (> 0) and the source holds more events; else pandas;
    ``chunk_events``: the most events validated at once (whole days; each group of days is
    written before the next is validated).
    Off by default in local mode: on 10 million events (2 cores) local Spark took 1,096 s, where
    pandas validated all three tables in 126-129 s (source read included), since the source is
    read on the driver anyway and has to be shipped to the JVM."""

    now: str = ""
    max_rejected_share: float = Field(default=DEFAULT_MAX_REJECTED_SHARE, ge=0.0, le=1.0)
    engine: Literal["auto", "pandas", "spark"] = "auto"
    spark_above_events: int = Field(default=0, ge=0)
    chunk_events: int = Field(default=DAY_CHUNK_EVENTS, ge=1)


def use_spark(config: DailyInteractionsConfig, master: str, events: int) -> bool:
    """The engine decision: explicit, else Spark on a cluster or above a configured size."""
    if config.engine != "auto":
        return config.engine == "spark"
    above = config.spark_above_events > 0 and events > config.spark_above_events
    return not master.startswith("local") or above


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
        "quarantined_rows": AssetOut(
            description="Rejected users and items, and events that belong to no daily partition, "
            "with their table, position, failed check and reasons.",
            dagster_type=pd.DataFrame,
        ),
    },
    name="raw_tables",
)
def raw_tables(
    context: AssetExecutionContext, config: RawTablesConfig, phase1: Phase1Source
) -> Iterator[Output[pd.DataFrame]]:
    """Validated users and items and the quarantine of the rows no partition holds, from the
    ``phase1`` source."""
    now = pd.Timestamp(config.now) if config.now else pd.Timestamp.now(tz="UTC")
    dimensions = phase1.load_dimensions()
    result = validate_tables(dimensions, now=now, contract=phase1.contract())
    for table, key in RAW_ASSETS.items():
        frame = result.tables.table(table)
        yield Output(
            frame,
            output_name=key,
            metadata=_table_metadata(frame, result.stats[table], phase1),
            data_version=content_version(frame),
        )
    # the events' timestamps, and the rows of the undated ones, are all that is read of them
    undated = undated_interactions(phase1.event_rows(), *partition_bounds())
    quarantine = pd.concat([result.quarantine, undated], ignore_index=True)
    yield Output(
        quarantine,
        output_name="quarantined_rows",
        data_version=content_version(quarantine),
        metadata={
            "dagster/row_count": len(quarantine),
            "by_table": MetadataValue.json(_counts(quarantine, "table")),
            "by_check": MetadataValue.json(_counts(quarantine, "check")),
            "preview": MetadataValue.md(_markdown(quarantine.drop(columns=["raw_row"]))),
        },
    )
    context.log.info(
        "validated: "
        + ", ".join(
            f"{t} {result.stats[t].valid}/{result.stats[t].rows_in} valid" for t in RAW_ASSETS
        )
        + f"; {len(undated)} event(s) in no daily partition"
    )


@multi_asset(
    outs={
        "raw_interactions": AssetOut(
            description="Validated events (view, click, add_to_cart, purchase, rate) of valid "
            "users and items, one partition per UTC day.",
            dagster_type=PartitionedFrame,
        ),
        "quarantined_interactions": AssetOut(
            description="Rejected events of each day with their position in the source, failed "
            "check and reasons.",
            dagster_type=PartitionedFrame,
        ),
    },
    ins={"raw_users": AssetIn("raw_users"), "raw_items": AssetIn("raw_items")},
    partitions_def=INTERACTION_DAYS,
    backfill_policy=ONE_RUN_PER_RANGE,
    check_specs=[
        AssetCheckSpec(
            "raw_interactions_rejected_share",
            asset="raw_interactions",
            blocking=True,
            description="At most max_rejected_share of the run's events were quarantined.",
        )
    ],
    name="daily_interactions",
)
def daily_interactions(
    context: AssetExecutionContext,
    config: DailyInteractionsConfig,
    phase1: Phase1Source,
    spark: SparkResource,
    raw_users: pd.DataFrame,
    raw_items: pd.DataFrame,
) -> Iterator[Output[PartitionedFrame] | AssetCheckResult]:
    """The events of the run's days, validated against the valid users and items."""
    now = pd.Timestamp(config.now) if config.now else pd.Timestamp.now(tz="UTC")
    days = list(context.partition_keys)
    # the source's timestamps, then the rows of one group of days at a time
    events = phase1.event_rows()
    engine = "spark" if use_spark(config, spark.resolved_master(), len(events)) else "pandas"
    context.log.info(f"validating {len(days)} day(s) with {engine}")

    # validated a group of days at a time, each group's days written (by the IO manager, as it
    # takes them) before the next is validated: the driver holds one group's work
    def groups() -> Iterator[DayValidation]:
        return iter_validated_days(
            events,
            raw_users,
            raw_items,
            days,
            now,
            phase1.contract(),
            spark=spark.get_session() if engine == "spark" else None,
            chunk_events=config.chunk_events,
        )

    stream = StreamedDays(_failing_with_cause(spark, groups), days)
    span = days[0] if len(days) == 1 else f"{days[0]}...{days[-1]}"
    yield Output(
        PartitionedFrame(stream.valid),
        output_name="raw_interactions",
        metadata={
            "days": span,
            "engine": engine,
            "source": f"{phase1.kind}:{phase1.path or phase1.preset}",
            "preview": MetadataValue.md(_markdown(stream.peek())),
        },
    )
    stream.finish()
    quarantine = pd.concat(list(stream.quarantine.values()), ignore_index=True)
    share = stream.rejected_rows / stream.rows_in if stream.rows_in else 0.0
    yield Output(
        PartitionedFrame(stream.quarantine),
        output_name="quarantined_interactions",
        metadata={
            "days": span,
            "rows_in": stream.rows_in,
            "valid": stream.valid_rows,
            "rejected": stream.rejected_rows,
            "rejected_share": float(share),
            "validated_in_groups": stream.groups,
            "by_check": MetadataValue.json(_counts(quarantine, "check")),
            "preview": MetadataValue.md(_markdown(quarantine.drop(columns=["raw_row"]))),
        },
    )
    limit = config.max_rejected_share
    yield AssetCheckResult(
        asset_key=AssetKey("raw_interactions"),
        check_name="raw_interactions_rejected_share",
        passed=bool(share <= limit),
        metadata={
            "rejected_share": float(share),
            "max_rejected_share": float(limit),
            "rejected": stream.rejected_rows,
            "valid": stream.valid_rows,
            "days": span,
        },
        description=f"{share:.4%} of the events of {span} quarantined (limit {limit:.2%})",
    )
    context.log.info(
        f"{span}: {stream.valid_rows}/{stream.rows_in} events valid over {len(days)} day(s), "
        f"validated in {stream.groups} group(s)"
    )


def _failing_with_cause(
    spark: SparkResource, groups: Callable[[], Iterator[DayValidation]]
) -> Iterator[DayValidation]:
    """The groups (and the Spark session they start), each validated under
    ``failing_with_cause``: they are computed as the IO manager writes the days, outside the
    asset's own frame, and a dead Spark driver must still fail the step with its cause."""
    with spark.failing_with_cause("raw_interactions"):
        yield from groups()


def content_version(frame: pd.DataFrame) -> DataVersion:
    """A data version from the table's content (columns and rows, not their order in memory's
    index): Dagster marks what depends on the table stale when it changes, and not when a rerun
    wrote the same rows."""
    digest = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return DataVersion(digest.hexdigest()[:24])


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


RAW_CHECKS = [raw_users_rejected_share, raw_items_rejected_share]
