"""PSI and KS against hand-computed cases and slow reference loops; window features; drift on synthetic batches."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from recs_assets.core.monitoring.drift import (
    DriftThresholds,
    classify,
    drift_table,
    ks_statistic,
    overall_status,
    psi,
    quantile_edges,
)
from recs_assets.core.monitoring.windows import monitored_features, split_windows, window_features
from recs_assets.core.phase1.synthetic import generate_batch, generate_preset


def psi_reference(
    expected: list[float], actual: list[float], edges: list[float], eps: float
) -> float:
    """Slow PSI: place each value in its bin by walking the edges."""

    def shares(values: list[float]) -> list[float]:
        counts = [0] * (len(edges) + 1)
        for v in values:
            j = 0
            while j < len(edges) and v > edges[j]:
                j += 1
            counts[j] += 1
        return [max(c / len(values), eps) for c in counts]

    e, a = shares(expected), shares(actual)
    return sum((ai - ei) * math.log(ai / ei) for ei, ai in zip(e, a, strict=True))


def ks_reference(expected: list[float], actual: list[float]) -> float:
    """Slow KS: both empirical CDFs at every observed point."""
    best = 0.0
    for x in expected + actual:
        fe = sum(1 for v in expected if v <= x) / len(expected)
        fa = sum(1 for v in actual if v <= x) / len(actual)
        best = max(best, abs(fe - fa))
    return best


def test_psi_hand_computed() -> None:
    # edge 2.5: expected shares (0.5, 0.5), actual (0.75, 0.25):
    # PSI = 0.25 ln(1.5) + (-0.25) ln(0.5) = 0.25 (ln 1.5 + ln 2) = 0.25 ln 3
    assert psi([1, 2, 3, 4], [1, 1, 1, 4], bins=[2.5]) == pytest.approx(0.25 * math.log(3))
    assert psi([1, 2, 3, 4], [4, 3, 2, 1], bins=2) == 0.0  # same sample, any order


def test_psi_floors_empty_bins_at_eps() -> None:
    # actual has nothing in the upper bin: shares (1, 1e-4) vs (0.5, 0.5)
    expected = 0.5 * math.log(1 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    assert psi([1, 2, 3, 4], [1, 1, 2, 2], bins=[2.5], eps=1e-4) == pytest.approx(expected)


def test_quantile_edges_merge_ties() -> None:
    # quantiles .25 .5 .75 of [0, 0, 0, 1] are 0, 0, 0.25: two distinct edges, three bins
    np.testing.assert_allclose(quantile_edges([0, 0, 0, 1], 4), [0.0, 0.25])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psi_matches_reference_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    e = rng.normal(0, 1, 300)
    a = rng.normal(0.4, 1.3, 200)
    edges = quantile_edges(e, 10)
    assert psi(e, a, bins=10) == pytest.approx(psi_reference(list(e), list(a), list(edges), 1e-4))
    # discrete values (many ties), as hour_of_day and ratings are
    ed = rng.integers(0, 5, 400).astype(float)
    ad = rng.integers(1, 6, 250).astype(float)
    edges_d = quantile_edges(ed, 10)
    assert psi(ed, ad, 10) == pytest.approx(psi_reference(list(ed), list(ad), list(edges_d), 1e-4))


def test_ks_hand_computed() -> None:
    # at x=2: F_e = 0.5, F_a = 0; at x=4: 1 vs 0.5 -> 0.5
    assert ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(0.5)
    assert ks_statistic([1, 2, 3], [3, 2, 1]) == 0.0
    assert ks_statistic([1, 2], [10, 20]) == 1.0  # disjoint supports


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ks_matches_reference_loop_and_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    e = rng.integers(0, 20, 150).astype(float)  # ties on purpose
    a = rng.normal(10, 5, 90).round()
    assert ks_statistic(e, a) == pytest.approx(ks_reference(list(e), list(a)))
    assert ks_statistic(e, a) == pytest.approx(ks_2samp(e, a).statistic)


def test_nulls_ignored_and_empty_windows_are_too_few() -> None:
    assert psi([1, 2, np.nan, 3, 4], [1, 1, 1, 4, np.nan], bins=[2.5]) == pytest.approx(
        0.25 * math.log(3)
    )
    with pytest.raises(ValueError, match="actual: no non-null values"):
        psi([1.0, 2.0], [np.nan])
    # a window without values cannot be compared: NaN statistics, classified too_few (not drift)
    table = drift_table({"x": np.array([1.0]), "y": np.array([])}, {"x": [np.nan], "y": [2.0]})
    assert table[["n_reference", "n_current"]].to_numpy().tolist() == [[1, 0], [0, 1]]
    assert table[["psi", "ks"]].isna().all().all()
    assert classify(table, DriftThresholds())["status"].tolist() == ["too_few", "too_few"]


def test_classify_thresholds_and_too_few() -> None:
    table = pd.DataFrame(
        {
            "feature": ["a", "b", "c", "d"],
            "psi": [0.05, 0.15, 0.30, 0.9],
            "ks": [0.01, 0.01, 0.01, 0.9],
            "n_reference": [500, 500, 500, 50],
            "n_current": [500, 500, 500, 500],
        }
    )
    got = classify(table, DriftThresholds(warn_psi=0.1, fail_psi=0.25, min_samples=100))
    # a below warn, b between warn and fail, c above fail, d drifted but from only 50 values
    assert got["status"].tolist() == ["ok", "warn", "fail", "too_few"]
    assert overall_status(got) == "fail"
    assert overall_status(got.iloc[[0, 3]]) == "ok"
    assert "status" not in table.columns  # input not mutated


def _ts(hours: float) -> pd.Timestamp:
    return pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=hours)


def test_window_features_by_hand() -> None:
    items = pd.DataFrame({"item_id": ["i1", "i2", "i3"], "categories": ["A", "A|B", "B"]})
    history = pd.DataFrame(
        {"user_id": ["u1", "u1"], "item_id": ["i1", "i2"], "timestamp": [_ts(0), _ts(1)]}
    )
    window = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2"],
            "item_id": ["i3", "i2", "i1"],
            "event_type": ["view", "rate", "view"],
            "rating": [np.nan, 4.0, np.nan],
            "session_id": ["s1", "s1", "s2"],
            "timestamp": [_ts(5), _ts(6), _ts(7.5)],
        }
    )
    f = window_features(window, history, items)
    np.testing.assert_array_equal(f["hour_of_day"], [5, 6, 7])
    np.testing.assert_array_equal(f["rating"], [4.0])
    np.testing.assert_array_equal(sorted(f["session_length"]), [1, 2])
    # history counts i1=1, i2=1, i3=0: i3 ranks first (1/3), i1 and i2 tie on ranks 2, 3 (2.5/3)
    np.testing.assert_allclose(f["item_popularity_pct"], [1 / 3, 2.5 / 3, 2.5 / 3])
    # u1's history: i1 gives A 1, i2 gives A 0.5 and B 0.5 -> shares A 0.75, B 0.25.
    # i3 (B) -> 0.25; i2 (half A, half B) -> 0.5*0.75 + 0.5*0.25 = 0.5; u2 has no history -> NaN
    np.testing.assert_allclose(f["user_category_affinity"], [0.25, 0.5, np.nan])


def test_split_windows() -> None:
    frame = pd.DataFrame({"timestamp": [_ts(h) for h in (0, 10, 20, 30, 40)], "x": range(5)})
    w = split_windows(frame, latest_hours=15, reference_hours=15)
    # newest 40h: latest (25h, 40h], reference (10h, 25h]; 10h is on the boundary -> history
    assert w.latest["x"].tolist() == [3, 4]
    assert w.reference["x"].tolist() == [2]
    with pytest.raises(ValueError, match="reference window"):
        split_windows(frame, latest_hours=15, reference_hours=1)


@pytest.fixture(scope="module")
def synthetic():
    return generate_preset("small", seed=42)


def _drift_status(synthetic, shift: float) -> tuple[str, pd.DataFrame]:
    base = synthetic.tables.interactions
    batch = generate_batch(
        synthetic.ground_truth, 3000, base["timestamp"].max(), days=1.0, seed=1, taste_shift=shift
    )
    events = pd.concat([base, batch], ignore_index=True)
    windows = split_windows(events, latest_hours=24, reference_hours=24 * 7)
    reference, latest = monitored_features(events, synthetic.tables.items, windows)
    table = classify(drift_table(reference, latest), DriftThresholds())
    return overall_status(table), table.set_index("feature")


def test_shifted_tastes_raise_drift_and_unshifted_do_not(synthetic) -> None:
    status, table = _drift_status(synthetic, 0.0)
    assert status == "ok", table
    status, table = _drift_status(synthetic, 1.0)
    assert status == "fail"
    # tastes moved: the category affinity drifts (PSI 1.04 measured), timing and popularity do not
    assert table.loc["user_category_affinity", "psi"] > 0.5
    assert table.loc["hour_of_day", "status"] == "ok"
    assert table.loc["item_popularity_pct", "status"] == "ok"
