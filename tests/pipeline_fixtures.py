"""Stand-in upstream assets: the raw tables and the P1 / validation datasets of one data set, so a
test materializes feature, tuning, model and report assets without running what is upstream."""

from __future__ import annotations

import pandas as pd
from dagster import AssetsDefinition, asset

from recs_assets.core.datasets.dataset import TrainingDataset
from recs_assets.core.evaluation.protocols import Split
from recs_assets.core.phase1.schema import Phase1Tables


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
    tables: Phase1Tables, p1: Split, val: Split | None = None
) -> list[AssetsDefinition]:
    """``raw_users``, ``raw_items``, ``stratified_dataset`` (``p1``) and, given ``val``,
    ``validation_dataset``."""

    raw = raw_stand_ins(tables)

    @asset
    def stratified_dataset() -> TrainingDataset:
        return TrainingDataset("stratified_dataset", p1, len(p1.train_frame), "", "", 0, 0)

    @asset
    def validation_dataset() -> TrainingDataset:
        return TrainingDataset("validation_dataset", val, len(p1.train_frame), "", "", 0, 0)

    stand_ins = [raw["raw_users"], raw["raw_items"], stratified_dataset]
    return stand_ins if val is None else [*stand_ins, validation_dataset]
