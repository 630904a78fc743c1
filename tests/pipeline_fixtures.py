"""Stand-in upstream assets: the raw tables and the P1 / validation datasets of one data set, so a
test materializes feature, tuning, model and report assets without running what is upstream."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import AssetsDefinition, ExecuteInProcessResult, asset, materialize

from recs_assets.core.datasets.dataset import TrainingDataset
from recs_assets.core.evaluation.protocols import Split
from recs_assets.core.phase1.daily import day_range, event_days
from recs_assets.core.phase1.schema import Phase1Tables
from recs_assets.platform.spark_resource import SparkResource
from recs_assets.platform.table_io_manager import TableIOManager
from recs_assets.raw.partitions import range_tags
from recs_assets.raw.source_resource import Phase1Source


def raw_stand_ins(tables: Phase1Tables) -> dict[str, AssetsDefinition]:
    """``raw_interactions``, ``raw_users`` and ``raw_items`` serving ``tables``, by asset name."""

    @asset
    def raw_interactions() -> pd.DataFrame:
        return tables.interactions

    @asset
    def raw_users() -> pd.DataFrame:
        return tables.users

    @asset
    def raw_items() -> pd.DataFrame:
        return tables.items

    return {a.key.path[0]: a for a in (raw_interactions, raw_users, raw_items)}


def upstream_assets(
    tables: Phase1Tables, p1: Split, val: Split | None = None, temporal: Split | None = None
) -> list[AssetsDefinition]:
    """``raw_users``, ``raw_items``, ``stratified_dataset`` (``p1``) and, given ``val`` or
    ``temporal``, ``validation_dataset`` and ``temporal_dataset``."""

    raw = raw_stand_ins(tables)

    def dataset(name: str, split: Split) -> AssetsDefinition:
        @asset(name=name)
        def _dataset() -> TrainingDataset:
            return TrainingDataset(name, split, len(split.train_frame), "", "", 0, 0)

        return _dataset

    extra = {"validation_dataset": val, "temporal_dataset": temporal}
    return [
        raw["raw_users"],
        raw["raw_items"],
        dataset("stratified_dataset", p1),
        *(dataset(name, split) for name, split in extra.items() if split is not None),
    ]


def materialize_raw(
    source: Phase1Source,
    storage: Path,
    now: str,
    extra: Sequence[Any] = (),
    ops: dict[str, Any] | None = None,
    raise_on_error: bool = True,
) -> ExecuteInProcessResult:
    """The real raw assets (``raw_tables``, ``daily_interactions`` and their checks, plus
    ``extra``) over every day of ``source``'s events in one run, tables under ``storage``."""
    from recs_assets.raw.raw_tables import RAW_CHECKS, daily_interactions, raw_tables

    days = day_range(event_days(source.load().interactions["timestamp"]))
    assert days is not None, "the source has no dated event"
    config = {"config": {"now": now}}
    return materialize(
        [raw_tables, daily_interactions, *RAW_CHECKS, *extra],
        resources={
            "phase1": source,
            "spark": SparkResource(master="local[2]", app_name="recs-tests"),
            "io_manager": TableIOManager(
                root=str(storage / "tables"), artifacts_root=str(storage / "artifacts")
            ),
        },
        run_config={"ops": {"raw_tables": config, "daily_interactions": config, **(ops or {})}},
        tags=range_tags(*days),
        raise_on_error=raise_on_error,
    )
