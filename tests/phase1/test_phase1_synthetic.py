"""The synthetic generator: deterministic, in the canonical schema, realistic, personalizable."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recs_assets.core.phase1.schema import EVENT_TYPES, TABLE_COLUMNS, Phase1Tables
from recs_assets.core.phase1.synthetic import (
    CATEGORIES,
    GroundTruth,
    SyntheticData,
    SyntheticPreset,
    affinity,
    cached_preset,
    click_probability,
    generate_batch,
    generate_preset,
    generate_preset_chunks,
    generate_synthetic,
    preset_ground_truth,
    shifted_ground_truth,
)
from recs_assets.core.phase1.validation import validate_tables

NOW = pd.Timestamp("2025-06-01", tz="UTC")


@pytest.fixture(scope="module")
def small() -> SyntheticData:
    return generate_preset("small", seed=42)


def _indices(gt: GroundTruth, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    users = pd.Index(gt.user_ids).get_indexer(frame["user_id"].astype(object))
    items = pd.Index(gt.item_ids).get_indexer(frame["item_id"].astype(object))
    assert (users >= 0).all() and (items >= 0).all()
    return users, items


def test_same_seed_same_frames_other_seed_differs(small: SyntheticData) -> None:
    again = generate_preset("small", seed=42)
    for table in TABLE_COLUMNS:
        pd.testing.assert_frame_equal(small.tables.table(table), again.tables.table(table))
    np.testing.assert_array_equal(small.ground_truth.user_taste, again.ground_truth.user_taste)
    other = generate_preset("small", seed=7)
    assert not small.tables.interactions["item_id"].equals(other.tables.interactions["item_id"])


def test_canonical_schema_and_sizes(small: SyntheticData) -> None:
    t = small.tables
    for table, columns in TABLE_COLUMNS.items():
        frame = t.table(table)
        assert list(frame.columns) == list(columns)
        assert {c: str(frame[c].dtype) for c in frame} == {c: d for c, (d, _) in columns.items()}
    assert str(t.interactions["timestamp"].dtype) == "datetime64[us, UTC]"
    assert (len(t.interactions), len(t.users), len(t.items)) == (50_000, 2_000, 1_000)
    assert t.interactions["event_id"].is_unique
    # everything passes validation: nothing to quarantine
    result = validate_tables(t, NOW)
    assert result.quarantine.empty
    assert {k: s.valid for k, s in result.stats.items()} == {
        "interactions": 50_000,
        "users": 2_000,
        "items": 1_000,
    }


def test_exact_interaction_count_for_any_size() -> None:
    for n in (0, 1, 7, 1234):
        data = generate_synthetic(n_users=30, n_items=20, n_interactions=n, seed=1, days=3)
        assert len(data.tables.interactions) == n


def test_events_are_realistic(small: SyntheticData) -> None:
    i = small.tables.interactions
    counts = i["event_type"].value_counts()
    assert set(counts.index) == set(EVENT_TYPES)
    # funnel: views > clicks > carts > purchases
    assert counts["view"] > counts["click"] > counts["add_to_cart"] > counts["purchase"]
    rated = i["event_type"] == "rate"
    assert i.loc[rated, "rating"].between(1, 5).all() and i.loc[~rated, "rating"].isna().all()
    assert set(i.loc[rated, "rating"].unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    # every event lies after its user's signup and within the 90-day window (+ session tails)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    assert i["timestamp"].min() >= start
    assert i["timestamp"].max() < start + pd.Timedelta(days=90, hours=3)
    signup = small.tables.users.set_index("user_id")["signup_time"]
    assert (i["timestamp"].to_numpy() >= signup.loc[i["user_id"]].to_numpy()).all()
    # sessions hold several events of one user on one device
    per_session = i.groupby("session_id").agg(users=("user_id", "nunique"), n=("event_id", "size"))
    assert (per_session["users"] == 1).all() and per_session["n"].mean() > 2
    # multi-valued categories exist and use known names
    cats = small.tables.items["categories"].str.split("|")
    assert cats.map(len).max() >= 2
    assert set(cats.explode()) <= set(CATEGORIES)


def test_daily_weekly_cycles_and_trend(small: SyntheticData) -> None:
    ts = small.tables.interactions["timestamp"]
    hour = ts.dt.hour
    evening, night = hour.between(18, 22).sum() / 5, hour.between(2, 5).sum() / 4
    assert evening > 3 * night  # per-hour volume: evening peak vs night trough
    weekend = ts.dt.dayofweek >= 5
    days = ts.dt.normalize()
    per_day = ts.groupby(days).size()
    weekend_days = per_day[per_day.index.dayofweek >= 5].mean()
    weekday_days = per_day[per_day.index.dayofweek < 5].mean()
    assert weekend.any() and weekend_days > 1.1 * weekday_days
    first, second = (
        (ts < ts.min() + (ts.max() - ts.min()) / 2).sum(),
        (ts >= ts.min() + (ts.max() - ts.min()) / 2).sum(),
    )
    assert second > 1.1 * first  # upward trend


def test_held_out_events_fall_in_users_top_categories(small: SyntheticData) -> None:
    """A simple personalized signal (each user's top-3 train categories) beats chance by far."""
    gt, i = small.ground_truth, small.tables.interactions
    users, items = _indices(gt, i)
    train = (i["timestamp"] < i["timestamp"].quantile(0.8)).to_numpy()
    profile = np.zeros((gt.n_users, len(CATEGORIES)))
    np.add.at(profile, users[train], gt.item_categories[items[train]])
    top3 = np.zeros_like(profile, dtype=bool)
    np.put_along_axis(top3, np.argsort(-profile, axis=1)[:, :3], True, axis=1)
    test = ~train & (profile.sum(axis=1) >= 5)[users]
    member = gt.item_categories > 0
    hit = (member[items[test]] & top3[users[test]]).any(axis=1).mean()
    # chance: the same test events judged against another (random) user's top categories
    other = np.random.default_rng(0).permutation(gt.n_users)
    chance = (member[items[test]] & top3[other[users[test]]]).any(axis=1).mean()
    assert hit > 0.55 and hit > 1.8 * chance, (hit, chance)


def test_affinity_matches_reference_loop(small: SyntheticData) -> None:
    gt = small.ground_truth
    rng = np.random.default_rng(3)
    users, items = rng.integers(0, gt.n_users, 50), rng.integers(0, gt.n_items, 50)
    fast = affinity(gt, users, items)
    for k, (u, i) in enumerate(zip(users, items, strict=True)):
        slow = sum(gt.user_taste[u][c] * gt.item_categories[i][c] for c in range(len(CATEGORIES)))
        assert fast[k] == pytest.approx(slow / max(gt.user_taste[u]))
    p = click_probability(gt, users, items)
    assert p.shape == (50,) and ((p > 0) & (p < 1)).all()
    # the formula, by hand: sigmoid(-2.2 + 3 * affinity + 2 * (quality - 0.5))
    q = gt.item_quality[items]
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-(-2.2 + 3 * fast + 2 * (q - 0.5)))))


def test_clicks_follow_click_probability(small: SyntheticData) -> None:
    """Views with high click probability are clicked more often than views with low probability."""
    gt, i = small.ground_truth, small.tables.interactions
    views = i[i["event_type"] == "view"]
    clicks = i[i["event_type"] == "click"]
    clicked = pd.MultiIndex.from_frame(views[["session_id", "item_id"]]).isin(
        pd.MultiIndex.from_frame(clicks[["session_id", "item_id"]])
    )
    users, items = _indices(gt, views)
    p = click_probability(gt, users, items)
    high, low = p >= np.quantile(p, 0.75), p <= np.quantile(p, 0.25)
    assert clicked[high].mean() > clicked[low].mean() + 0.15
    assert abs(clicked.mean() - p.mean()) < 0.03


def test_batch_after_time_and_drift(small: SyntheticData) -> None:
    gt, base = small.ground_truth, small.tables.interactions
    after = base["timestamp"].max()
    batch = generate_batch(gt, 3_000, after, days=2, seed=1)
    assert len(batch) == 3_000 and (batch["timestamp"] > after).all()
    assert list(batch.columns) == list(base.columns) and batch.dtypes.equals(base.dtypes)
    assert not set(batch["event_id"]) & set(base["event_id"])
    assert not set(batch["session_id"]) & set(base["session_id"])
    pd.testing.assert_frame_equal(batch, generate_batch(gt, 3_000, after, days=2, seed=1))

    def top_share(frame: pd.DataFrame) -> float:
        users, items = _indices(gt, frame)
        favourite = np.argmax(gt.user_taste, axis=1)[users]
        return float((gt.item_categories[items, favourite] > 0).mean())

    drifted = generate_batch(gt, 3_000, after, days=2, seed=1, taste_shift=1.0)
    assert top_share(batch) > top_share(drifted) + 0.3
    assert shifted_ground_truth(gt, 0.5).user_taste.sum(axis=1) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="taste_shift"):
        shifted_ground_truth(gt, 1.5)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="n_users"):
        generate_synthetic(n_users=0, n_items=5, n_interactions=5)
    with pytest.raises(ValueError, match="unknown synthetic preset"):
        generate_preset("huge")


@pytest.mark.slow
def test_1m_preset_under_30_seconds() -> None:
    started = time.perf_counter()
    data = generate_preset("1m")
    elapsed = time.perf_counter() - started
    assert len(data.tables.interactions) == 1_000_000
    assert data.tables.interactions["event_id"].is_unique
    assert elapsed < 30, f"1m preset took {elapsed:.1f} s"


def _arrow_strings(frame: pd.DataFrame) -> pd.DataFrame:
    text = [c for c in frame.columns if isinstance(frame[c].dtype, pd.StringDtype)]
    return frame.astype({c: pd.StringDtype("pyarrow") for c in text})


def test_a_cached_preset_is_generated_once_and_read_back_equal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recs_assets.core.phase1.synthetic as synthetic

    generated = generate_preset("small", seed=4).tables
    first = cached_preset("small", 4, tmp_path)
    (folder,) = tmp_path.iterdir()  # one folder, no temporary left behind

    def no_generation(*args: object, **kwargs: object) -> None:
        raise AssertionError("generated again")

    monkeypatch.setattr(synthetic, "generate_preset", no_generation)
    again = cached_preset("small", 4, tmp_path)  # read back, not generated
    for name in ("interactions", "users", "items"):
        # the same values; text read back as Arrow-backed strings, on the first run too
        expected = _arrow_strings(generated.table(name))
        pd.testing.assert_frame_equal(first.table(name), expected)
        pd.testing.assert_frame_equal(again.table(name), expected)
    monkeypatch.undo()
    # a damaged cache is generated again in place; another seed is another folder
    (folder / "users.parquet").unlink()
    pd.testing.assert_frame_equal(
        cached_preset("small", 4, tmp_path).users, _arrow_strings(generated.users)
    )
    assert [f.name for f in tmp_path.iterdir()] == [folder.name]
    assert {f.name for f in folder.iterdir()} == {
        "interactions.parquet",
        "users.parquet",
        "items.parquet",
    }
    cached_preset("small", 5, tmp_path)
    assert len(list(tmp_path.iterdir())) == 2


def test_a_preset_generated_in_windows_is_one_valid_data_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recs_assets.core.phase1.synthetic as synthetic

    windows = SyntheticPreset(
        n_users=500, n_items=200, n_interactions=40_000, days=60, chunk_events=9_000
    )
    monkeypatch.setitem(synthetic.PRESETS, "windows", windows)
    chunked = generate_preset_chunks("windows", seed=7)
    parts = list(chunked.interactions)
    assert len(parts) == 5 and sum(len(p) for p in parts) == 40_000
    # each window's whole days, in order; ids count on across windows, sessions are per window
    days = [p["timestamp"].dt.floor("D") for p in parts]
    assert all(d.is_monotonic_increasing for d in (p["timestamp"] for p in parts))
    assert all(days[k].min() >= days[k - 1].max() for k in range(1, 5))
    events = pd.concat(parts, ignore_index=True)
    assert events["event_id"].tolist() == [f"e-{k}" for k in range(40_000)]
    assert not set(parts[0]["session_id"]) & set(parts[1]["session_id"])
    # one trend over the whole period, not one per window: the last month busier than the first
    per_day = events.groupby(events["timestamp"].dt.floor("D")).size()
    # (the trend 1 -> 1.5 over 60 days puts 1.24 times as many events in the last 28 days)
    assert per_day.iloc[-28:].sum() > 1.15 * per_day.iloc[:28].sum()
    result = validate_tables(
        Phase1Tables(events, chunked.users, chunked.items), now=NOW, contract=None
    )
    assert result.quarantine.empty
    # the same data whole (generate_preset) and cached (written a window at a time)
    whole = generate_preset("windows", seed=7).tables
    pd.testing.assert_frame_equal(whole.interactions, events)
    cached = cached_preset("windows", 7, tmp_path)
    pd.testing.assert_frame_equal(cached.interactions, _arrow_strings(events))
    pd.testing.assert_frame_equal(cached.users, _arrow_strings(chunked.users))
    import pyarrow.parquet as pq

    (folder,) = tmp_path.iterdir()
    assert pq.ParquetFile(folder / "interactions.parquet").metadata.num_row_groups == 5


def test_a_presets_truth_without_its_events(small: SyntheticData) -> None:
    truth = preset_ground_truth("small", seed=42)
    for field in dataclasses.fields(GroundTruth):
        a, b = getattr(truth, field.name), getattr(small.ground_truth, field.name)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=field.name)
    assert not np.array_equal(preset_ground_truth("small", 43).user_taste, truth.user_taste)
