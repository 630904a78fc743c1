"""Assets ``stratified_dataset`` (P1), ``temporal_dataset`` (P2) and ``validation_dataset``.

Splits come from ``recs_assets.core.evaluation.protocols``; features are joined point-in-time from the
``user_features`` / ``item_features`` snapshots, after their blocking contract checks passed.
"""

from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from recs_assets.core.datasets.dataset import TrainingDataset, featurize, read_features, write_rows
from recs_assets.core.evaluation.protocols import (
    ImplicitFeedback,
    Split,
    positive_interactions,
    stratified_split,
    temporal_split,
    validation_split,
)
from recs_assets.core.features.tables import FeatureTable
from recs_assets.platform.data_dir import DataDirResource


def _dataset(
    name: str,
    split: Split,
    input_positives: int,
    data_dir: DataDirResource,
    user_features: FeatureTable,
    item_features: FeatureTable,
) -> Output[TrainingDataset]:
    users, items = read_features(user_features.path), read_features(item_features.path)
    root = data_dir.dataset_path(name)
    train = featurize(split.train_frame, users, items)
    test = featurize(split.test_frame, users, items)
    dataset = TrainingDataset(
        name=name,
        split=split,
        input_positives=input_positives,
        train_path=str(root / "train.parquet"),
        test_path=str(root / "test.parquet"),
        train_rows=write_rows(train, Path(root / "train.parquet")),
        test_rows=write_rows(test, Path(root / "test.parquet")),
    )
    covered = float(train["user__feature_timestamp"].notna().mean()) if len(train) else 0.0
    return Output(
        dataset,
        metadata={
            "protocol": MetadataValue.text(split.protocol),
            "train_rows": MetadataValue.int(dataset.train_rows),
            "test_rows": MetadataValue.int(dataset.test_rows),
            "users": MetadataValue.int(len(split.user_ids)),
            "items": MetadataValue.int(len(split.item_ids)),
            "cold_users": MetadataValue.int(len(split.cold_users)),
            "train_rows_with_user_features": MetadataValue.float(covered),
            "path": MetadataValue.path(str(root)),
            "preview": MetadataValue.md(train.head(5).to_markdown(index=False)),
        },
    )


# Datasets read the offline store (Parquet); they run after the online store so that one run's
# lineage reads raw -> features -> online store -> datasets, and a failed contract stops both.
AFTER_ONLINE_STORE = ["online_feature_store"]


@asset(deps=AFTER_ONLINE_STORE)
def stratified_dataset(
    context: AssetExecutionContext,
    data_dir: DataDirResource,
    raw_interactions: pd.DataFrame,
    user_features: FeatureTable,
    item_features: FeatureTable,
) -> Output[TrainingDataset]:
    """P1 stratified split (75/25 per user, seed 42) with point-in-time user and item features."""
    positives = len(positive_interactions(raw_interactions, ImplicitFeedback()))
    split = stratified_split(raw_interactions)
    context.log.info(f"stratified: {len(split.train_frame)} train / {len(split.test_frame)} test")
    return _dataset("stratified_dataset", split, positives, data_dir, user_features, item_features)


@asset(deps=AFTER_ONLINE_STORE)
def temporal_dataset(
    context: AssetExecutionContext,
    data_dir: DataDirResource,
    raw_interactions: pd.DataFrame,
    user_features: FeatureTable,
    item_features: FeatureTable,
) -> Output[TrainingDataset]:
    """P2 temporal split (newest 20% of interactions are test) with point-in-time features."""
    positives = len(positive_interactions(raw_interactions, ImplicitFeedback()))
    split = temporal_split(raw_interactions)
    context.log.info(f"temporal: {len(split.cold_users)} cold-start users")
    return _dataset("temporal_dataset", split, positives, data_dir, user_features, item_features)


@asset
def validation_dataset(
    data_dir: DataDirResource,
    stratified_dataset: TrainingDataset,
    user_features: FeatureTable,
    item_features: FeatureTable,
) -> Output[TrainingDataset]:
    """Validation split carved from the P1 train part with the same protocol (test never read)."""
    parent = stratified_dataset.split
    split = validation_split(parent)
    return _dataset(
        "validation_dataset", split, len(parent.train_frame), data_dir, user_features, item_features
    )
