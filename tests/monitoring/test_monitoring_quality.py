"""Online CTR per model version, served-list features, trending scores (with real Redis), and one
materialization of the monitoring assets."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import asset, materialize

from recs_assets.core.monitoring.quality import (
    ctr_by_version,
    list_summary,
    popularity_percentile,
    served_list_features,
    wilson_interval,
)
from recs_assets.core.monitoring.trending import top_trending, trending_scores
from recs_assets.monitoring.online_quality import (
    ctr_check_result,
    online_ctr_above_floor,
    online_quality,
)
from recs_assets.monitoring.prediction_drift import prediction_drift, prediction_drift_within_limits
from recs_assets.monitoring.trending_items import trending_items
from recs_assets.monitoring.trending_store import TrendingStore

NOW = pd.Timestamp("2024-03-01 12:00", tz="UTC")


def test_ctr_by_version_by_hand() -> None:
    events = pd.DataFrame(
        {
            "model_version": ["2"] * 4 + ["1"] * 3,
            "event": [
                "impression",
                "impression",
                "impression",
                "click",
                "impression",
                "click",
                "click",
            ],
        }
    )
    t = ctr_by_version(events)
    # version 1: 1 impression, 2 clicks would be CTR 2 (allowed: several clicks per impression is
    # a logging question, not ours); version 2: 3 impressions, 1 click -> 1/3
    assert t["model_version"].tolist() == ["1", "2"]
    assert t["impressions"].tolist() == [1, 3] and t["clicks"].tolist() == [2, 1]
    assert t["ctr"].tolist() == pytest.approx([2.0, 1 / 3])
    with pytest.raises(ValueError, match=r"unknown feedback event value\(s\) \['purchase'\]"):
        ctr_by_version(pd.DataFrame({"model_version": ["1"], "event": ["purchase"]}))
    with pytest.raises(ValueError, match=r"\['9'\] have clicks but no impressions"):
        ctr_by_version(pd.DataFrame({"model_version": ["9"], "event": ["click"]}))


def test_wilson_interval_by_hand() -> None:
    # 10 clicks of 100, z = 1.96: centre (0.1 + z^2/200) / (1 + z^2/100) = 0.114797,
    # half-width z sqrt(0.0009 + z^2/40000) / (1 + z^2/100) = 0.059568 -> (0.05523, 0.17437)
    low, high = wilson_interval(np.array([10]), np.array([100]))
    assert low[0] == pytest.approx(0.05523, abs=1e-5)
    assert high[0] == pytest.approx(0.17437, abs=1e-5)


def test_ctr_check_judges_by_upper_bound() -> None:
    table = pd.DataFrame(
        {
            "model_version": ["a", "b", "c"],
            "impressions": [1000, 1000, 10],
            "clicks": [100, 5, 0],
        }
    )
    low, high = wilson_interval(table["clicks"].to_numpy(), table["impressions"].to_numpy())
    table = table.assign(ctr=table["clicks"] / table["impressions"], ctr_low=low, ctr_high=high)
    # b: 0.5% CTR, upper bound ~1.2% < 2% fail floor; c has too few impressions to judge
    result = ctr_check_result(table, warn_ctr=0.05, fail_ctr=0.02, min_impressions=500)
    assert not result.passed
    assert result.severity.value == "ERROR"
    assert result.metadata["failing_versions"].value == ["b"]
    assert result.metadata["judged_versions"].value == 2


def test_served_list_features_and_summary() -> None:
    interactions = pd.DataFrame({"item_id": ["a", "a", "a", "b", "b", "c"]})
    pct = popularity_percentile(interactions, pd.Series(["a", "b", "c", "d"]))
    # counts a3 b2 c1 d0 -> ranks 4, 3, 2, 1 of 4
    assert pct.to_dict() == {"a": 1.0, "b": 0.75, "c": 0.5, "d": 0.25}
    lists = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u2"],
            "item_id": ["a", "d", "a", "b"],
            "rank": [1, 2, 1, 2],
            "score": [0.9, 0.5, 0.8, 0.7],
        }
    )
    f = served_list_features(lists, pct)
    np.testing.assert_allclose(f["popularity_pct"], [1.0, 0.25, 1.0, 0.75])
    np.testing.assert_allclose(f["top_score"], [0.9, 0.8])
    s = list_summary(lists, pct)
    # 3 distinct items of 4; mean percentile (1 + .25 + 1 + .75) / 4 = 0.75
    assert s == {"lists": 2.0, "mean_popularity_pct": 0.75, "catalog_coverage": 0.75}


def _events(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": [r[0] for r in rows],
            "event_type": [r[1] for r in rows],
            "timestamp": [NOW - pd.Timedelta(hours=r[2]) for r in rows],
        }
    )


def test_trending_scores_by_hand() -> None:
    events = _events(
        [
            ("a", "view", 0),
            ("a", "view", 6),
            ("b", "view", 0),
            ("b", "click", 12),
            ("c", "view", -1),
        ]
    )
    s = trending_scores(events, NOW, half_life_hours=6)
    # a: 1 + 0.5 = 1.5; b: 1 + 0.25 = 1.25; c is in the future -> ignored
    assert s.to_dict() == pytest.approx({"a": 1.5, "b": 1.25})
    assert list(s.index) == ["a", "b"]
    weighted = trending_scores(events, NOW, 6, {"click": 4.0})
    # only clicks count: b 4 * 0.25 = 1; a has none (weight 0, dropped)
    assert weighted.to_dict() == pytest.approx({"b": 1.0})
    top = top_trending(s, 1)
    assert top.to_dict("records") == [{"rank": 1, "item_id": "a", "score": pytest.approx(1.5)}]
    with pytest.raises(ValueError, match="timezone-aware"):
        trending_scores(events, pd.Timestamp("2024-03-01"), 6)


def test_trending_scores_match_reference_loop() -> None:
    rng = np.random.default_rng(0)
    items = rng.choice(list("abcdefgh"), 300)
    ages = rng.uniform(-5, 100, 300)
    types = rng.choice(["view", "click", "purchase"], 300)
    events = pd.DataFrame(
        {
            "item_id": items,
            "event_type": types,
            "timestamp": [NOW - pd.Timedelta(hours=h) for h in ages],
        }
    )
    weights = {"view": 1.0, "click": 2.0, "purchase": 5.0}
    expected: dict[str, float] = {}
    for item, age, kind in zip(items, ages, types, strict=True):
        if age >= 0:
            expected[item] = expected.get(item, 0.0) + weights[kind] * 0.5 ** (age / 8.0)
    got = trending_scores(events, NOW, 8.0, weights)
    assert got.to_dict() == pytest.approx(expected)
    assert (np.diff(got.to_numpy()) <= 0).all()  # highest first


def test_trending_store_redis_roundtrip() -> None:
    key = f"recs-test:{uuid.uuid4().hex}:trending"
    store = TrendingStore(redis_url="redis://127.0.0.1:6379/0", key=key)
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        store.publish(pd.DataFrame({"rank": [1, 2], "item_id": ["x", "y"], "score": [3.0, 2.0]}))
        store.publish(pd.DataFrame({"rank": [1, 2], "item_id": ["y", "z"], "score": [5.0, 1.0]}))
        # the second publish replaces the first (x is gone), highest first
        assert store.read().to_dict("records") == [
            {"rank": 1, "item_id": "y", "score": 5.0},
            {"rank": 2, "item_id": "z", "score": 1.0},
        ]
        assert client.zrevrange(key, 0, -1, withscores=True) == [(b"y", 5.0), (b"z", 1.0)]
        assert not client.exists(f"{key}:staging")
    finally:
        client.delete(key, f"{key}:staging")
        client.close()


def test_monitoring_assets_materialize(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECS_REDIS_URL", raising=False)
    # 10 days of hourly events over items i0..i9, item i9 hot in the last day
    hours = np.arange(240)
    interactions = pd.DataFrame(
        {
            "item_id": [f"i{h % 9}" if h < 216 else "i9" for h in hours],
            "event_type": "view",
            "timestamp": [NOW - pd.Timedelta(hours=239 - h) for h in hours],
        }
    )
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(10)]})
    served = pd.DataFrame(
        {
            "user_id": np.repeat([f"u{u}" for u in range(400)], 2),
            "item_id": np.tile(["i0", "i1"], 400),
            "rank": np.tile([1, 2], 400),
            "score": np.tile([0.9, 0.4], 400),
            "served_at": np.repeat(
                [NOW - pd.Timedelta(hours=h) for h in np.linspace(0, 47, 400)], 2
            ),
        }
    )
    served.to_parquet(tmp_path / "served.parquet", index=False)
    feedback = pd.DataFrame(
        {"model_version": ["1"] * 3, "event": ["impression", "impression", "click"]}
    )
    feedback.to_csv(tmp_path / "feedback.csv", index=False)

    @asset(name="raw_interactions")
    def raw_interactions_stub() -> pd.DataFrame:
        return interactions

    @asset(name="raw_items")
    def raw_items_stub() -> pd.DataFrame:
        return items

    parquet = tmp_path / "trending.parquet"
    result = materialize(
        [
            raw_interactions_stub,
            raw_items_stub,
            trending_items,
            online_quality,
            online_ctr_above_floor,
            prediction_drift,
            prediction_drift_within_limits,
        ],
        resources={"trending_store": TrendingStore(path=str(parquet))},
        run_config={
            "ops": {
                "trending_items": {"config": {"half_life_hours": 6.0, "top_n": 3}},
                "online_quality": {"config": {"feedback_path": str(tmp_path / "feedback.csv")}},
                "prediction_drift": {"config": {"served_path": str(tmp_path / "served.parquet")}},
            }
        },
    )
    assert result.success
    top = result.output_for_node("trending_items")
    assert top["item_id"].iloc[0] == "i9"  # the only item of the last day
    assert pd.read_parquet(parquet)["item_id"].tolist() == top["item_id"].tolist()
    quality = result.output_for_node("online_quality")
    assert quality.to_dict("records")[0]["ctr"] == pytest.approx(0.5)
    drift = result.output_for_node("prediction_drift").set_index("feature")
    assert drift.loc["score", "psi"] == pytest.approx(0.0)  # same lists in both windows
    (check,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "prediction_drift_within_limits"
    ]
    assert check.passed
    md = (
        result.asset_materializations_for_node("prediction_drift")[0]
        .metadata["distributions"]
        .value
    )
    assert md.startswith("![served lists: reference vs latest](data:image/png;base64,")
