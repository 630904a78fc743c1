"""Assets ``stratified_dataset`` (P1), ``temporal_dataset`` (P2) and ``validation_dataset``.

Splits come from ``recs_assets.core.evaluation.protocols``; features are joined point-in-time from the
``user_features`` / ``item_features`` snapshots, after their blocking contract checks passed.
"""

import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from recs_assets.core.datasets.dataset import TrainingDataset
from recs_assets.core.datasets.featurize_duckdb import featurize_to_parquet
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
    root = data_dir.dataset_path(name)
    # DuckDB joins the feature Parquet out of core: the joined rows never sit in the driver.
    train = featurize_to_parquet(
        split.train_frame, user_features.path, item_features.path, root / "train.parquet"
    )
    test = featurize_to_parquet(
        split.test_frame, user_features.path, item_features.path, root / "test.parquet"
    )
    dataset = TrainingDataset(
        name=name,
        split=split,
        input_positives=input_positives,
        train_path=train.path,
        test_path=test.path,
        train_rows=train.rows,
        test_rows=test.rows,
    )
    return Output(
        dataset,
        metadata={
            "protocol": MetadataValue.text(split.protocol),
            "train_rows": MetadataValue.int(dataset.train_rows),
            "test_rows": MetadataValue.int(dataset.test_rows),
            "users": MetadataValue.int(len(split.user_ids)),
            "items": MetadataValue.int(len(split.item_ids)),
            "cold_users": MetadataValue.int(len(split.cold_users)),
            "train_rows_with_user_features": MetadataValue.float(train.with_user_features),
            "path": MetadataValue.path(str(root)),
            "preview": MetadataValue.md(train.preview.to_markdown(index=False)),
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
