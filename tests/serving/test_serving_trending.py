"""Trending items in the service: the reader (real Redis, Parquet), cold start, trending and
exploration slots.

The tiny data of ``serving_helpers``: popularity i0 (5 users) > i1 (4) > i2 (3) > i3 (2) > i4 (1)
> i5 (0); u3 saw i0, i1 and u4 saw i0. The served model is popularity, so a known user's model
list is the most popular items they have not seen.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
from prometheus_client import CollectorRegistry
from serving_helpers import start_redis, write_serving_folder

from recs_assets.core.contracts import trending_path
from recs_assets.core.paths import REPO_ROOT
from recs_assets.core.serving.abtest import ExperimentRouter, no_experiment
from recs_assets.core.serving.artifacts import ServingModel
from recs_assets.core.serving.blending import Insert, blend, exploration_draw, slot_counts
from recs_assets.core.serving.cache import LRUCache
from recs_assets.core.serving.engine import RecommendationEngine
from recs_assets.core.serving.launch import free_port
from recs_assets.core.serving.settings import ServingSettings
from recs_assets.core.serving.telemetry import ServingMetrics
from recs_assets.core.serving.trending_follower import (
    TrendingFollower,
    trending_follower_from_settings,
)
from recs_assets.monitoring.trending_store import TrendingStore

REDIS_DB_URL = "redis://127.0.0.1:6379/13"  # this file's db; keys carry a random suffix too


def top(items: list[str], scores: list[float] | None = None) -> pd.DataFrame:
    """A trending table as the ``trending_items`` asset publishes it (rank, item_id, score)."""
    scores = scores if scores is not None else [float(len(items) - i) for i in range(len(items))]
    return pd.DataFrame({"rank": range(1, len(items) + 1), "item_id": items, "score": scores})


class Clock:
    """A settable clock (seconds)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def metric(metrics: ServingMetrics, name: str, **labels: str) -> float:
    assert metrics.registry is not None
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def ids(answer) -> list[str]:
    return [it.item_id for it in answer.items]


def reasons(answer) -> list[str]:
    return [it.reason for it in answer.items]


@pytest.fixture
def redis_key() -> Iterator[str]:
    key = f"recs-test:{uuid.uuid4().hex}:trending"
    yield key
    redis.Redis.from_url(REDIS_DB_URL).delete(key, f"{key}:staging")


@pytest.fixture
def model(tmp_path: Path) -> ServingModel:
    return write_serving_folder(tmp_path / "pop")


def make_engine(
    model: ServingModel,
    reader: TrendingFollower | None,
    clock: Clock | None = None,
    **settings: object,
) -> RecommendationEngine:
    metrics = ServingMetrics.create(CollectorRegistry())
    return RecommendationEngine(
        model,
        LRUCache(100, 60),
        ServingSettings(**settings),  # type: ignore[arg-type]
        metrics,
        trending=reader,
        clock=clock or Clock(),
    )


def parquet_reader(path: Path, **kw: object) -> TrendingFollower:
    return TrendingFollower(
        None, path=path, metrics=ServingMetrics.create(CollectorRegistry()), **kw
    )  # type: ignore[arg-type]


# ---- the published format --------------------------------------------------------------------
def test_reader_reads_what_the_store_publishes_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # both sides take the location from core.contracts: a list published by the Dagster resource
    # with no settings is the one a reader of the default path finds
    monkeypatch.setenv("RECS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("RECS_REDIS_URL", raising=False)
    TrendingStore().publish(top(["b", "a"]))
    assert TrendingStore().parquet_path() == trending_path()
    assert trending_path() == tmp_path / "trending" / "trending_items.parquet"
    reader = parquet_reader(trending_path())
    assert reader.refresh() == "updated"
    assert reader.current().item_ids == ("b", "a")


# ---- blending, pure ---------------------------------------------------------------------------
def test_slot_counts_keep_one_model_item() -> None:
    assert slot_counts(10, 2, 1) == (2, 1)
    assert slot_counts(3, 5, 1) == (2, 0)  # slots >= k: one model item stays, trending first
    assert slot_counts(3, 1, 5) == (1, 1)
    assert slot_counts(1, 3, 3) == (0, 0)  # k = 1: the model's item only
    assert slot_counts(10, 0, 0) == (0, 0)


def test_blend_fills_the_last_slots_without_duplicates_or_seen_items() -> None:
    idx, sc = np.array([0, 1, 2, 3, 4]), np.array([5.0, 4, 3, 2, 1])
    # 1 is already in the list and 8 was seen: the two slots get 7 and 9
    trending = Insert(np.array([1, 8, 7, 9, 10]), np.array([50.0, 40, 30, 20, 10]), 2, "trending")
    b = blend(idx, sc, 5, [trending], exclude=np.array([8]))
    assert b.idx.tolist() == [0, 1, 2, 7, 9]
    assert b.scores.tolist() == [5.0, 4.0, 3.0, 30.0, 20.0]
    assert b.reasons == ["model"] * 3 + ["trending"] * 2


def test_blend_keeps_model_items_when_candidates_run_out() -> None:
    idx, sc = np.array([0, 1, 2, 3, 4]), np.arange(5.0)[::-1]
    # only 7 qualifies (1 is in the list, 8 seen): one trending item, four model items
    b = blend(idx, sc, 5, [Insert(np.array([1, 8, 7]), np.ones(3), 2, "trending")], np.array([8]))
    assert b.idx.tolist() == [0, 1, 2, 3, 7]
    assert b.count("trending") == 1
    # nothing qualifies: the model's list unchanged
    same = blend(idx, sc, 5, [Insert(np.array([1, 2]), np.ones(2), 2, "trending")], np.array([]))
    assert same.idx.tolist() == idx.tolist() and same.reasons == ["model"] * 5


def test_blend_short_list_and_two_kinds_of_slots() -> None:
    # a short model list (user saw almost everything) gains the inserted items at its end
    short = blend(
        np.array([0, 1]),
        np.array([2.0, 1.0]),
        5,
        [Insert(np.array([7, 9]), np.ones(2), 2, "trending")],
        np.array([]),
    )
    assert short.idx.tolist() == [0, 1, 7, 9]
    # exploration never repeats a trending pick: 7 goes to trending, exploration takes 9
    b = blend(
        np.array([0, 1, 2, 3]),
        np.arange(4.0),
        4,
        [
            Insert(np.array([7, 8]), np.ones(2), 1, "trending"),
            Insert(np.array([7, 9, 10]), np.zeros(3), 1, "exploration"),
        ],
        np.array([]),
    )
    assert b.idx.tolist() == [0, 1, 7, 9]
    assert b.reasons == ["model", "model", "trending", "exploration"]
    assert len(set(b.idx.tolist())) == len(b.idx)


def test_blend_with_slots_above_k_keeps_one_model_item() -> None:
    k = 3
    n_trend, n_explore = slot_counts(k, 10, 10)
    b = blend(
        np.array([0, 1, 2]),
        np.arange(3.0),
        k,
        [
            Insert(np.array([5, 6, 7, 8]), np.ones(4), n_trend, "trending"),
            Insert(np.array([9]), np.ones(1), n_explore, "exploration"),
        ],
        np.array([]),
    )
    assert b.idx.tolist() == [0, 5, 6] and b.reasons == ["model", "trending", "trending"]


def test_exploration_draw_is_fixed_per_user_and_hour() -> None:
    cands = np.arange(100, 200)
    a = exploration_draw(cands, 5, "u1", 42)
    assert a.tolist() == exploration_draw(cands, 5, "u1", 42).tolist()
    assert len(set(a.tolist())) == 5 and set(a.tolist()) <= set(cands.tolist())
    other_hours = {tuple(exploration_draw(cands, 5, "u1", h).tolist()) for h in range(43, 48)}
    other_users = {tuple(exploration_draw(cands, 5, f"x{i}", 42).tolist()) for i in range(5)}
    assert tuple(a.tolist()) not in other_hours and tuple(a.tolist()) not in other_users
    assert sorted(exploration_draw(np.array([3, 4]), 5, "u1", 1).tolist()) == [3, 4]


# ---- the reader -------------------------------------------------------------------------------
def test_reader_reads_the_redis_sorted_set_as_published(redis_key: str) -> None:
    store = TrendingStore(redis_url=REDIS_DB_URL, key=redis_key)
    reader = TrendingFollower(
        REDIS_DB_URL, key=redis_key, metrics=ServingMetrics.create(CollectorRegistry())
    )
    assert reader.refresh() == "empty" and len(reader.current()) == 0  # nothing published yet
    store.publish(top(["i3", "i5", "i1"], [9.5, 4.0, 1.25]))
    assert reader.refresh() == "updated"
    first = reader.current()
    assert first.item_ids == ("i3", "i5", "i1") and first.scores.tolist() == [9.5, 4.0, 1.25]
    # the same list again keeps the same object: engines derive their arrays once per change
    store.publish(top(["i3", "i5", "i1"], [9.5, 4.0, 1.25]))
    assert reader.refresh() == "unchanged" and reader.current() is first
    store.publish(top(["i0"], [2.0]))
    assert reader.refresh() == "updated" and reader.current().item_ids == ("i0",)
    assert metric(reader.metrics, "recs_trending_reads_total", result="updated") == 2.0  # type: ignore[arg-type]


def test_redis_down_keeps_the_last_list_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    proc = start_redis(port, tmp_path)
    try:
        TrendingStore(redis_url=url).publish(top(["i2", "i4"]))
        reader = TrendingFollower(
            url, refresh_s=1, timeout_s=0.1, metrics=ServingMetrics.create(CollectorRegistry())
        )
        assert reader.refresh() == "updated"
        kept = reader.current()
        proc.kill()
        proc.wait(5)
        with caplog.at_level(logging.WARNING, logger="recs_assets.core.serving.trending_follower"):
            started = time.perf_counter()
            results = [reader.refresh() for _ in range(3)]
            assert time.perf_counter() - started < 2.0  # short timeouts, no retries
        assert results == ["error"] * 3
        assert reader.current() is kept and kept.item_ids == ("i2", "i4")
        assert metric(reader.metrics, "recs_trending_reads_total", result="error") == 3.0  # type: ignore[arg-type]
        warnings = [r for r in caplog.records if "trending list read" in r.getMessage()]
        assert len(warnings) == 1  # once per outage
        proc = start_redis(port, tmp_path)  # back, empty: nothing published is an empty list
        assert reader.refresh() == "empty" and len(reader.current()) == 0
    finally:
        proc.kill()
        proc.wait(5)


def test_reader_of_the_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "trending" / "trending_items.parquet"
    store = TrendingStore(path=str(path))
    clock = Clock()
    reader = parquet_reader(path, refresh_s=60, clock=clock)
    assert len(reader.current()) == 0  # no file yet: an empty list, not an error
    store.publish(top(["i4", "i3"]))
    assert reader.current().item_ids == ()  # read lazily at most every refresh_s
    clock.now += 60
    assert reader.current().item_ids == ("i4", "i3")
    assert reader.refresh() == "unchanged"  # the file did not change: not read again
    path.write_bytes(b"not parquet")
    assert reader.refresh() == "error" and reader.current().item_ids == ("i4", "i3")
    path.unlink()
    assert reader.refresh() == "empty" and reader.current().item_ids == ()


def test_refresh_thread_follows_new_lists(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    store = TrendingStore(path=str(path))
    store.publish(top(["i1"]))
    reader = parquet_reader(path, refresh_s=0.05)
    reader.start()
    try:
        assert reader.current().item_ids == ("i1",)  # read at start
        time.sleep(0.02)  # a new mtime for the rewritten file
        store.publish(top(["i2", "i0"]))
        deadline = time.monotonic() + 3
        while reader.current().item_ids != ("i2", "i0") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reader.current().item_ids == ("i2", "i0")
    finally:
        reader.stop()


# ---- the engine -------------------------------------------------------------------------------
def test_cold_start_gets_trending_when_published_else_popularity(
    model: ServingModel, tmp_path: Path
) -> None:
    path = tmp_path / "trending.parquet"
    engine = make_engine(model, parquet_reader(path))
    # nothing published: popularity, as before
    answer = engine.recommend("new-user", k=3)
    assert answer.source == "fallback" and ids(answer) == ["i0", "i1", "i2"]
    assert reasons(answer) == ["popularity"] * 3
    assert metric(engine.metrics, "recs_cold_start_total", list="popularity") == 1.0
    # published: the known trending items first ("zz" is not in the model's catalog), then
    # popularity pads the list to k
    TrendingStore(path=str(path)).publish(top(["i4", "zz", "i3"], [7.0, 6.0, 5.0]))
    engine.trending.refresh()  # type: ignore[union-attr]
    answer = engine.recommend("new-user", k=3)
    assert answer.source == "fallback" and ids(answer) == ["i4", "i3", "i0"]
    assert reasons(answer) == ["trending", "trending", "popularity"]
    assert [it.score for it in answer.items] == [7.0, 5.0, 5.0]  # trending scores, then count
    assert metric(engine.metrics, "recs_cold_start_total", list="trending") == 1.0
    assert metric(engine.metrics, "recs_fallbacks_total", reason="unknown_user") == 2.0
    batch = engine.recommend_batch(["u3", "ghost"], k=2)
    assert [r.source for r in batch.results] == ["model", "fallback"]
    assert ids(batch.results[1]) == ["i4", "i3"]


def test_trending_slots_follow_the_published_list_over_cached_lists(
    model: ServingModel, tmp_path: Path
) -> None:
    path = tmp_path / "trending.parquet"
    store = TrendingStore(path=str(path))
    # i0 was seen by u3 and i3 is in u3's model list [i2, i3]: the slot gets i5
    store.publish(top(["i0", "i3", "i5"]))
    engine = make_engine(model, parquet_reader(path), trending_slots=1)
    first = engine.recommend("u3", k=2)
    assert (first.source, ids(first), reasons(first)) == (
        "model",
        ["i2", "i5"],
        ["model", "trending"],
    )
    # the cache keeps the model's own list (i2, i3 as indices 2, 3)
    assert [i for i, _ in engine._cache_get(engine._rec_key("u3", 2, True, {}))] == [2, 3]
    store.publish(top(["i4"]))
    engine.trending.refresh()  # type: ignore[union-attr]
    again = engine.recommend("u3", k=2)
    assert again.source == "cache" and ids(again) == ["i2", "i4"]  # the new list shows at once
    # without exclude_seen the model list is [i0, i1]; trending i0 is in it already, so i4
    store.publish(top(["i0", "i4"]))
    engine.trending.refresh()  # type: ignore[union-attr]
    assert ids(engine.recommend("u3", k=2, exclude_seen=False)) == ["i0", "i4"]
    assert metric(engine.metrics, "recs_blended_items_total", reason="trending") == 3.0


def test_default_settings_leave_lists_unchanged(model: ServingModel, tmp_path: Path) -> None:
    settings = ServingSettings.from_env({})
    assert (settings.trending_slots, settings.exploration_slots) == (0, 0)
    assert settings.exploration_max_feedback == 5 and settings.trending_refresh_s == 60.0
    path = tmp_path / "trending.parquet"
    TrendingStore(path=str(path)).publish(top(["i5", "i4"]))
    engine = make_engine(model, parquet_reader(path))
    for user in ("u0", "u1", "u2", "u3", "u4"):
        assert set(reasons(engine.recommend(user, k=4))) == {"model"}
    assert ids(engine.recommend("u3", k=2)) == ["i2", "i3"]


def test_exploration_slot_is_deterministic_per_user_and_hour(model: ServingModel) -> None:
    # at most 2 training interactions: i3 (2), i4 (1), i5 (0). u4 saw i0; model list [i1, i2]
    clock = Clock(3600.0 * 1000)
    engine = make_engine(model, None, clock, exploration_slots=1, exploration_max_feedback=2)
    answer = engine.recommend("u4", k=2)
    assert reasons(answer) == ["model", "exploration"] and ids(answer)[0] == "i1"
    pick = ids(answer)[1]
    assert pick in {"i3", "i4", "i5"}
    clock.now += 1800  # same hour, and another worker with the same model: the same pick
    other = make_engine(model, None, clock, exploration_slots=1, exploration_max_feedback=2)
    assert ids(engine.recommend("u4", k=2))[1] == pick == ids(other.recommend("u4", k=2))[1]
    picks = set()
    for hour in range(1001, 1025):
        clock.now = 3600.0 * hour
        picks.add(ids(engine.recommend("u4", k=2))[1])
    assert len(picks) > 1 and picks <= {"i3", "i4", "i5"}  # moves with the hour
    # u3 saw i0, i1, model list [i2, i3, i4]: i5 is the only candidate left
    assert ids(engine.recommend("u3", k=3)) == ["i2", "i3", "i5"]


def test_trending_and_exploration_together_and_hot_reload_keeps_the_reader(
    model: ServingModel, tmp_path: Path
) -> None:
    path = tmp_path / "trending.parquet"
    TrendingStore(path=str(path)).publish(top(["i4"]))
    reader = parquet_reader(path)
    metrics = ServingMetrics.create(CollectorRegistry())
    settings = ServingSettings(trending_slots=1, exploration_slots=1, exploration_max_feedback=0)
    router = ExperimentRouter.create(
        no_experiment(),
        {"champion": model},
        LRUCache(100, 60),
        settings,
        metrics,
        None,
        trending=reader,
    )
    # u3: model [i2, i3, i4] -> i2, then trending i4 is in the list (none qualifies: i3 stays),
    # exploration: i5 (the only item without feedback)
    answer = router.recommend("u3", 3, True, None)
    assert ids(answer) == ["i2", "i3", "i5"] and reasons(answer) == [
        "model",
        "model",
        "exploration",
    ]
    new = router.replace_model("champion", write_serving_folder(tmp_path / "pop2"))
    assert new.trending is reader
    assert ids(router.recommend("new-user", 2, True, None)) == ["i4", "i0"]


def test_settings_from_env_and_validation() -> None:
    s = ServingSettings.from_env(
        {
            "RECS_TRENDING_SLOTS": "2",
            "RECS_EXPLORATION_SLOTS": "1",
            "RECS_EXPLORATION_MAX_FEEDBACK": "3",
            "RECS_TRENDING_REFRESH_S": "0",
        }
    )
    assert (s.trending_slots, s.exploration_slots, s.exploration_max_feedback) == (2, 1, 3)
    assert trending_follower_from_settings(s, ServingMetrics.create(CollectorRegistry())) is None
    for env in (
        {"RECS_TRENDING_SLOTS": "-1"},
        {"RECS_EXPLORATION_SLOTS": "101"},
        {"RECS_EXPLORATION_MAX_FEEDBACK": "-2"},
        {"RECS_TRENDING_REFRESH_S": "-5"},
        {"RECS_TRENDING_SLOTS": "two"},
    ):
        with pytest.raises(
            ValueError, match="RECS_TRENDING|RECS_EXPLORATION|slots|feedback|refresh"
        ):
            ServingSettings.from_env(env)


def test_service_still_loads_without_dagster() -> None:
    code = "import bento.service, sys; print('dagster' in sys.modules, 'pyspark' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False False"
