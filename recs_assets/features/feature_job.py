"""Shared pieces of the feature assets: the job config and the metadata every feature table carries."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow.dataset as ds
from dagster import (
    AssetExecutionContext,
    Config,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
)
from pydantic import Field

from recs_assets.core.features.duck import parquet_files
from recs_assets.core.features.engines import (
    ENGINES,
    DuckEngine,
    Engine,
    SparkEngine,
    choose_engine,
    event_count,
)
from recs_assets.core.features.feature_spec import FeatureSpec
from recs_assets.core.features.incremental import (
    BuildInputs,
    Carry,
    carry_plan,
    day_fingerprints,
    file_fingerprint,
    local_path,
    reusable_snapshots,
    settings_fingerprint,
)
from recs_assets.core.features.snapshots import calendar_snapshot_times, snapshot_times
from recs_assets.core.features.tables import FeatureTable
from recs_assets.core.table_store import TableRef
from recs_assets.platform.spark_resource import SparkResource

# Local mode, 2 cores: DuckDB built every snapshot of 10 million events in 99 s where local Spark
# took 1,202 s (docs/data_plane.md). Local Spark runs on the same cores and disk, so on one
# machine it never wins; DuckDB spills past its memory limit. The bound stops nothing that was
# measured (50 million events, docs/data_plane.md): past it, use a cluster (RECS_SPARK_MASTER).
DUCKDB_MAX_EVENTS = 1_000_000_000
ENGINE_ENV = "RECS_FEATURE_ENGINE"


class FeatureJobConfig(Config):
    """How the snapshot feature tables are computed.

    Attributes:
        snapshot_interval_days: days between two ``as_of`` snapshots.
        snapshot_anchor: ``calendar`` (default): the newest event, then UTC midnights at
            multiples of the interval since 1970-01-01, which stay put as events arrive, so a
            build keeps the earlier snapshots whose inputs did not change
            (``core.features.incremental``); ``newest``: counted back from the newest event
            (every snapshot moves, and is recomputed, when events arrive).
        max_snapshots: how many snapshots to write (1 = only the newest); older examples in
            training datasets join the newest snapshot before them.
        max_categories: width of the ``cat_share_<category>`` vector (most common categories).
        session_gap_minutes: inactivity gap that starts a derived session.
        engine: ``spark``, ``duckdb`` or ``auto`` (default: ``$RECS_FEATURE_ENGINE`` when
            set, else Spark on a cluster (``RECS_SPARK_MASTER``), DuckDB in local mode up to
            ``duckdb_max_events`` events, Spark above). Both write the same rows
            (``core.features.engines``).
        duckdb_max_events: the largest event count ``auto`` gives DuckDB in local mode.
    """

    snapshot_interval_days: int = Field(default=30, ge=1)
    snapshot_anchor: Literal["calendar", "newest"] = "calendar"
    max_snapshots: int = Field(default=8, ge=1)
    max_categories: int = Field(default=32, ge=1)
    session_gap_minutes: int = Field(default=30, ge=1)
    engine: Engine = "auto"
    duckdb_max_events: int = Field(default=DUCKDB_MAX_EVENTS, ge=0)


def catalog_table(specs: Sequence[FeatureSpec]) -> tuple[TableSchema, list[TableRecord]]:
    """The catalog as a Dagster table (schema + records) for asset metadata."""
    schema = TableSchema(
        columns=[
            TableColumn("name", "string"),
            TableColumn("type", "string"),
            TableColumn("entity", "string"),
            TableColumn("owner", "string"),
            TableColumn("definition", "string"),
        ]
    )
    records = [
        TableRecord(
            {
                "name": s.name,
                "type": s.dtype,
                "entity": s.entity,
                "owner": s.owner,
                "definition": s.definition,
            }
        )
        for s in specs
    ]
    return schema, records


def feature_metadata(
    table: FeatureTable, catalog: Sequence[FeatureSpec], preview: pd.DataFrame
) -> dict[str, Any]:
    """Row count and column schema (the UI's Columns tab), path, snapshots, the feature catalog
    as a table, and a markdown preview."""
    schema, records = catalog_table(catalog)
    written = ds.dataset(table.path, format="parquet").schema
    return {
        "dagster/row_count": table.row_count,
        "dagster/column_schema": TableSchema(
            columns=[TableColumn(f.name, str(f.type)) for f in written]
        ),
        "row_count": MetadataValue.int(table.row_count),
        "path": MetadataValue.path(table.path),
        "n_columns": MetadataValue.int(len(table.columns)),
        "snapshots": MetadataValue.json([t.isoformat() for t in table.snapshots]),
        "feature_catalog": MetadataValue.table(records=records, schema=schema),
        "preview": MetadataValue.md(preview.head(5).to_markdown(index=False)),
    }


def snapshot_metadata(
    table: FeatureTable,
    catalog: Sequence[FeatureSpec],
    preview: pd.DataFrame,
    snapshots: tuple[datetime, ...],
    kept: Sequence[datetime],
) -> dict[str, Any]:
    """``feature_metadata`` plus how many snapshots this build computed and kept."""
    return {
        **feature_metadata(table, catalog, preview),
        "snapshots_computed": len(snapshots) - len(kept),
        "snapshots_kept": len(kept),
    }


def planned_snapshots(
    config: FeatureJobConfig, oldest: datetime, newest: datetime
) -> tuple[datetime, ...]:
    """The snapshot times of a build under ``config``."""
    times = calendar_snapshot_times if config.snapshot_anchor == "calendar" else snapshot_times
    return times(oldest, newest, config.snapshot_interval_days, config.max_snapshots)


def _files(table: Any) -> list[str] | None:
    """The files of a table on storage (None for an in-memory frame)."""
    return table.files() if isinstance(table, TableRef) else None


def files_fingerprint(table: Any) -> str:
    """Content fingerprint of a table on storage ("" for an in-memory frame)."""
    files = _files(table)
    return "" if files is None else file_fingerprint([local_path(f) for f in files])


def engine_from_env() -> Engine:
    """``$RECS_FEATURE_ENGINE`` (``auto``, ``spark`` or ``duckdb``; default ``auto``)."""
    value = os.environ.get(ENGINE_ENV, "auto").strip() or "auto"
    if value not in ENGINES:
        raise ValueError(f"{ENGINE_ENV}={value!r}: expected one of {', '.join(ENGINES)}")
    return value  # type: ignore[return-value]


def feature_engine(
    context: AssetExecutionContext,
    config: FeatureJobConfig,
    spark: SparkResource,
    events: Any,
    users: Any = None,
    items: Any = None,
) -> SparkEngine | DuckEngine:
    """The engine this build runs on (``FeatureJobConfig.engine``), logged with why."""
    master = spark.resolved_master()
    requested = config.engine
    if requested == "auto":  # the deployment may force one for every build
        requested = engine_from_env()
    n = event_count(events) if requested == "auto" else -1
    name = choose_engine(requested, master, n, config.duckdb_max_events)
    why = f"engine={requested}" if n < 0 else f"{n} events, master {master}"
    context.log.info(f"{context.asset_key.to_user_string()}: {name} ({why})")
    if name == "duckdb":
        return DuckEngine(events, users, items)
    return SparkEngine(spark.get_session(), events, users, items)


def build_inputs(
    context: AssetExecutionContext,
    config: FeatureJobConfig,
    events: Any,
    tables: dict[str, Any],
    path: Path,
    **settings: object,
) -> BuildInputs:
    """What this build of the table at ``path`` reads: the event days, the other tables, the
    settings and code version. The days' fingerprints are cached beside the table."""
    files = _files(events)
    cache = path.with_name(f".{path.name}.day_fingerprints.json")
    days = day_fingerprints(files, cache) if files is not None else {}
    code = context.assets_def.code_versions_by_key.get(context.asset_key)
    return BuildInputs(
        days=days,
        tables={name: files_fingerprint(t) for name, t in tables.items()},
        # the engine is not a setting of the rows: either engine keeps the other's snapshots
        settings=settings_fingerprint(
            config=config.model_dump(exclude={"engine", "duckdb_max_events"}),
            code=code,
            **settings,
        ),
    )


def reuse_plan(
    context: AssetExecutionContext,
    previous: BuildInputs | None,
    inputs: BuildInputs,
    snapshots: tuple[datetime, ...],
) -> list[datetime]:
    """The snapshots this build keeps from the ``previous`` one (its manifest; logged)."""
    kept = reusable_snapshots(previous, inputs, snapshots)
    context.log.info(
        f"{context.asset_key.to_user_string()}: {len(snapshots) - len(kept)} snapshot(s) to "
        f"compute, {len(kept)} kept from the previous build"
    )
    return kept


def newest_carry(
    engine: str,
    previous: BuildInputs | None,
    inputs: BuildInputs,
    snapshots: tuple[datetime, ...],
    kept: Sequence[datetime],
    path: Path,
) -> Carry | None:
    """Where the newest snapshot of a build may start from (``incremental.carry_plan``): the
    previous build's newest, on DuckDB, when that snapshot is computed (not kept) and the table
    at ``path`` exists; else None."""
    last = snapshots[-1]
    if engine != "duckdb" or last in kept or not parquet_files(path):
        return None
    return carry_plan(previous, inputs, last)
