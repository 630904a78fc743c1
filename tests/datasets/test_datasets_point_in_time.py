"""Point-in-time join on a hand-made example, a reference loop, and the dataset audit functions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dagster import materialize

from recs_assets.core.datasets.dataset import (
    conservation_gap,
    ids_outside_maps,
    overlapping_pairs,
    users_below_minimum,
)
from recs_assets.core.datasets.point_in_time import point_in_time_join
from recs_assets.core.evaluation.protocols import stratified_split, temporal_split
from recs_assets.core.features.tables import FeatureTable
from recs_assets.datasets.dataset_checks import DATASET_CHECKS
from recs_assets.datasets.training_datasets import (
    stratified_dataset,
    temporal_dataset,
    validation_dataset,
)
from recs_assets.platform.data_dir import DataDirResource


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


FEATURES = pd.DataFrame(
    {
        "user_id": ["u1", "u1", "u2"],
        "feature_timestamp": [utc("2024-01-10"), utc("2024-01-20"), utc("2024-01-15")],
        "events_all": [1, 5, 7],
    }
)


def test_point_in_time_hand_example() -> None:
    examples = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u1", "u3", "u1", "u1"],
            "timestamp": [
                utc("2024-01-25"),  # d: newest u1 row before is 01-20 -> 5
                utc("2024-01-16"),  # e: u2's 01-15 row -> 7
                utc("2024-01-05"),  # a: no u1 row before 01-05 -> null
                utc("2024-01-30"),  # f: u3 has no features -> null
                utc("2024-01-10"),  # b: the 01-10 row is not strictly before -> null
                utc("2024-01-15"),  # c: 01-10 row -> 1 (the 01-20 row is in its future)
            ],
        },
        index=[10, 11, 12, 13, 14, 15],
    )
    out = point_in_time_join(examples, FEATURES, key="user_id", prefix="user__")
    assert list(out.index) == [10, 11, 12, 13, 14, 15]  # order and index kept
    assert out["user__events_all"].tolist()[:2] == [5, 7]
    assert out["user__events_all"].isna().tolist() == [False, False, True, True, True, False]
    assert out.loc[15, "user__events_all"] == 1
    assert out.loc[10, "user__feature_timestamp"] == utc("2024-01-20")


def test_point_in_time_matches_reference_loop() -> None:
    rng = np.random.default_rng(7)
    base = pd.Timestamp("2024-01-01", tz="UTC")
    feats = pd.DataFrame(
        {
            "user_id": rng.choice(["a", "b", "c", "d"], 60),
            "feature_timestamp": base + pd.to_timedelta(rng.integers(0, 50, 60), unit="D"),
            "value": rng.normal(size=60),
        }
    ).drop_duplicates(["user_id", "feature_timestamp"])
    ex = pd.DataFrame(
        {
            "user_id": rng.choice(["a", "b", "c", "d", "e"], 200),
            "timestamp": base + pd.to_timedelta(rng.integers(0, 60 * 24, 200), unit="h"),
        }
    )
    out = point_in_time_join(ex, feats, key="user_id", prefix="f_")
    for i, row in ex.iterrows():  # slow, obvious: newest feature row strictly before the example
        prior = feats[(feats.user_id == row.user_id) & (feats.feature_timestamp < row.timestamp)]
        expected = (
            prior.sort_values("feature_timestamp")["value"].iloc[-1] if len(prior) else np.nan
        )
        got = out.loc[i, "f_value"]
        assert (np.isnan(expected) and np.isnan(got)) or got == expected


def test_point_in_time_rejects_missing_columns() -> None:
    with pytest.raises(ValueError, match="lack column"):
        point_in_time_join(pd.DataFrame({"user_id": ["u"]}), FEATURES, key="user_id", prefix="p")


def _interactions() -> pd.DataFrame:
    # 3 users x 4 items, one event per (user, item), one hour apart
    rows = [(f"u{u}", f"i{i}") for u in range(3) for i in range(4)]
    return pd.DataFrame(
        {
            "user_id": [u for u, _ in rows],
            "item_id": [i for _, i in rows],
            "event_type": "rate",
            "rating": 3.0,
            "timestamp": [utc("2024-01-01") + pd.Timedelta(hours=h) for h in range(len(rows))],
        }
    )


def test_audit_functions_on_real_splits() -> None:
    df = _interactions()
    for split in (stratified_split(df), temporal_split(df)):
        assert ids_outside_maps(split) == 0
        assert overlapping_pairs(split) == 0
        assert conservation_gap(split, len(df)) == 0
    # stratified: each user keeps round(0.75 * 4) = 3 train rows
    assert len(users_below_minimum(stratified_split(df), 3)) == 0
    assert list(users_below_minimum(stratified_split(df), 4)) == ["u0", "u1", "u2"]
    # temporal: the newest 20% (round(2.4) = 2 rows, both u2's) are test; u2 keeps 2 train rows
    assert list(users_below_minimum(temporal_split(df), 3)) == ["u2"]


def test_dataset_assets_and_checks(tmp_path) -> None:
    df = _interactions()
    feats_dir = tmp_path / "features"
    feats_dir.mkdir()
    users = pd.DataFrame(
        {
            "user_id": ["u0", "u1", "u2"],
            "feature_timestamp": [utc("2024-01-01 02:00")] * 3,
            "events_all": [2, 0, 0],
        }
    )
    items = pd.DataFrame(
        {"item_id": ["i0"], "feature_timestamp": [utc("2023-12-31")], "events_all": [0]}
    )
    users.to_parquet(feats_dir / "users.parquet")
    items.to_parquet(feats_dir / "items.parquet")
    from dagster import asset

    @asset
    def raw_interactions() -> pd.DataFrame:
        return df

    @asset
    def user_features() -> FeatureTable:
        return FeatureTable(
            "user_features", str(feats_dir / "users.parquet"), 3, tuple(users.columns)
        )

    @asset
    def item_features() -> FeatureTable:
        return FeatureTable(
            "item_features", str(feats_dir / "items.parquet"), 1, tuple(items.columns)
        )

    result = materialize(
        [
            raw_interactions,
            user_features,
            item_features,
            stratified_dataset,
            temporal_dataset,
            validation_dataset,
            *DATASET_CHECKS,
        ],
        resources={"data_dir": DataDirResource(path=str(tmp_path))},
    )
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 12 and all(e.passed for e in evaluations)
    temporal = result.output_for_node("temporal_dataset")
    assert (temporal.train_rows, temporal.test_rows) == (10, 2)
    train = pd.read_parquet(temporal.train_path)
    # u0's rows at 00:00 and 01:00 precede the 02:00 snapshot: no features; nor does the row
    # see it at 02:00 (not strictly before); the 03:00 row does
    u0 = train[train.user_id == "u0"].sort_values("timestamp")["user__events_all"].tolist()
    assert [v if v == v else None for v in u0] == [None, None, None, 2]
    # the item snapshot 2023-12-31 precedes every row of i0
    assert train.loc[train.item_id == "i0", "item__events_all"].tolist() == [0, 0, 0]
