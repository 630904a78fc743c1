"""Checks on the training datasets: id maps, leakage, conservation, users' minimum history."""

from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)

from recs_assets.core.datasets.dataset import (
    TrainingDataset,
    conservation_gap,
    ids_outside_maps,
    overlapping_pairs,
    users_below_minimum,
)

MIN_TRAIN_INTERACTIONS = 1
DATASETS = ("stratified_dataset", "temporal_dataset", "validation_dataset")


def dataset_checks(name: str) -> list[AssetChecksDefinition]:
    """The four blocking checks of one dataset asset."""

    @asset_check(
        asset=name,
        name="ids_in_maps",
        blocking=True,
        description="Every row's ids are in the split's id maps.",
    )
    def ids_in_maps(dataset: TrainingDataset) -> AssetCheckResult:
        bad = ids_outside_maps(dataset.split)
        return AssetCheckResult(
            passed=bad == 0, severity=AssetCheckSeverity.ERROR, metadata={"rows_outside": bad}
        )

    @asset_check(
        asset=name,
        name="no_train_test_overlap",
        blocking=True,
        description="No (user, item) pair is in train and test.",
    )
    def no_overlap(dataset: TrainingDataset) -> AssetCheckResult:
        pairs = overlapping_pairs(dataset.split)
        return AssetCheckResult(
            passed=pairs == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={"overlapping_pairs": pairs},
        )

    @asset_check(
        asset=name,
        name="train_plus_test_is_input",
        blocking=True,
        description="train + test rows == input positive rows.",
    )
    def conservation(dataset: TrainingDataset) -> AssetCheckResult:
        gap = conservation_gap(dataset.split, dataset.input_positives)
        return AssetCheckResult(
            passed=gap == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={"gap": gap, "input_positives": dataset.input_positives},
        )

    @asset_check(
        asset=name,
        name="min_user_interactions",
        blocking=True,
        description=f"Every warm user has >= {MIN_TRAIN_INTERACTIONS} train interaction(s).",
    )
    def min_interactions(dataset: TrainingDataset) -> AssetCheckResult:
        below = users_below_minimum(dataset.split, MIN_TRAIN_INTERACTIONS)
        return AssetCheckResult(
            passed=len(below) == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "users_below": len(below),
                "sample": MetadataValue.json([str(u) for u in below[:10]]),
            },
        )

    return [ids_in_maps, no_overlap, conservation, min_interactions]


DATASET_CHECKS: list[AssetChecksDefinition] = [c for name in DATASETS for c in dataset_checks(name)]
