"""Incremental snapshot features on a real instance: a build after new days landed keeps the
earlier snapshots whose inputs did not change, and its table equals a build from scratch."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from recs_assets.core.features.incremental import (
    MANIFEST,
    BuildInputs,
    day_fingerprints,
    reusable_snapshots,
)
from recs_assets.core.features.snapshots import calendar_snapshot_times
from recs_assets.core.features.tables import snapshot_file_name
from recs_assets.features.context_features import context_features
from recs_assets.features.item_features import item_features
from recs_assets.features.user_features import user_features
from recs_assets.platform.data_dir import DataDirResource
from recs_assets.platform.spark_resource import SparkResource
from recs_assets.platform.table_io_manager import TableIOManager
from recs_assets.raw.partitions import range_tags
from recs_assets.raw.raw_tables import daily_interactions, raw_tables
from recs_assets.raw.source_resource import Phase1Source

NOW = "2025-01-01T00:00:00+00:00"
RAW_CONFIG = {"ops": {n: {"config": {"now": NOW}} for n in ("raw_tables", "daily_interactions")}}
FEATURE_CONFIG = {"snapshot_interval_days": 14, "max_snapshots": 4}
FEATURES_RUN = {"ops": {n: {"config": FEATURE_CONFIG} for n in ("user_features", "item_features")}}
ALL_DAYS = ("2024-01-01", "2024-03-31")  # the synthetic small preset's events
FIRST, LANDED = ("2024-01-01", "2024-03-24"), ("2024-03-25", "2024-03-31")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_calendar_snapshots_stay_put_as_events_arrive() -> None:
    oldest = utc(2024, 1, 1)
    before = calendar_snapshot_times(oldest, utc(2024, 3, 20, 15), 14, 4)
    after = calendar_snapshot_times(oldest, utc(2024, 3, 31, 9), 14, 4)
    assert before[-1] == utc(2024, 3, 20, 15) and after[-1] == utc(2024, 3, 31, 9)
    assert all(t.hour == 0 and (t - utc(1970, 1, 1)).days % 14 == 0 for t in before[:-1])
    # the window slides by whole grid steps; the grid points both hold did not move
    assert before[:-1] == (utc(2024, 2, 15), utc(2024, 2, 29), utc(2024, 3, 14))
    assert after[:-1] == (utc(2024, 2, 29), utc(2024, 3, 14), utc(2024, 3, 28))
    # a newest event exactly on the grid is not repeated; nothing before the oldest event
    on_grid = utc(2024, 3, 14)
    assert calendar_snapshot_times(oldest, on_grid, 14, 2) == (utc(2024, 2, 29), on_grid)
    assert calendar_snapshot_times(utc(2024, 3, 19), utc(2024, 3, 20), 14, 4) == (utc(2024, 3, 20),)


def test_reuse_needs_the_same_days_up_to_the_snapshot(tmp_path: Path) -> None:
    t1, t2 = utc(2024, 2, 1), utc(2024, 3, 1)
    days = {"2024-01-31": "a", "2024-02-01": "b", "2024-02-20": "c"}
    previous = BuildInputs(days, {"users": "u"}, "s", (t1.isoformat(), t2.isoformat()))
    later_day = BuildInputs({**days, "2024-03-05": "d"}, {"users": "u"}, "s")
    assert reusable_snapshots(previous, later_day, [t1, t2]) == [t1, t2]
    changed_feb = BuildInputs({**days, "2024-02-20": "c2"}, {"users": "u"}, "s")
    assert reusable_snapshots(previous, changed_feb, [t1, t2]) == [t1]
    same_day_as_t1 = BuildInputs({**days, "2024-02-01": "b2"}, {"users": "u"}, "s")
    assert reusable_snapshots(previous, same_day_as_t1, [t1, t2]) == []
    assert reusable_snapshots(previous, BuildInputs(days, {"users": "v"}, "s"), [t1]) == []
    assert reusable_snapshots(previous, BuildInputs(days, {"users": "u"}, "t"), [t1]) == []
    assert reusable_snapshots(None, later_day, [t1]) == []
    assert reusable_snapshots(previous, BuildInputs({}, {"users": "u"}, "s"), [t1]) == []
    # fingerprints follow content, not the file's time
    day = tmp_path / "t" / "partition=2024-01-02"
    day.mkdir(parents=True)
    (day / "data.parquet").write_bytes(b"one")
    first = day_fingerprints([f"file:{day / 'data.parquet'}"])
    (day / "data.parquet").write_bytes(b"one")
    assert day_fingerprints([str(day / "data.parquet")]) == first
    (day / "data.parquet").write_bytes(b"two")
    assert day_fingerprints([str(day / "data.parquet")]) != first
    assert day_fingerprints([str(tmp_path / "plain.parquet")]) == {}


def test_day_fingerprints_read_only_the_days_whose_files_moved(tmp_path: Path, monkeypatch) -> None:
    """With a cache, a day whose files kept their names, sizes, inodes and times is not read
    again; a day rewritten is, and keeps its fingerprint when its content is the same; files
    touched just before the cache was written are read again (a same-tick rewrite)."""
    from recs_assets.core.features import incremental

    reads: list[str] = []
    real = incremental.file_fingerprint

    def counted(paths):
        paths = list(paths)
        reads.extend(p.parent.name for p in paths)
        return real(paths)

    monkeypatch.setattr(incremental, "file_fingerprint", counted)
    cache = tmp_path / "cache.json"
    days = [tmp_path / "t" / f"partition=2024-01-0{d}" for d in (1, 2)]
    for i, day in enumerate(days):
        day.mkdir(parents=True)
        (day / "data.parquet").write_bytes(b"day%d" % i)
    files = [str(day / "data.parquet") for day in days]
    first = day_fingerprints(files, cache)
    assert first == day_fingerprints(files) and cache.is_file()
    # the files were written within 2 s of the cache: not trusted yet, both read again
    reads.clear()
    assert day_fingerprints(files, cache) == first and len(reads) == 2
    monkeypatch.setattr(incremental, "RACY_NS", 0)
    day_fingerprints(files, cache)
    reads.clear()
    assert day_fingerprints(files, cache) == first and reads == []  # nothing read
    # a rewrite with the same bytes is read again and keeps its fingerprint; other bytes do not
    (days[1] / "data.parquet").write_bytes(b"day1")
    assert day_fingerprints(files, cache) == first and reads == ["partition=2024-01-02"]
    (days[1] / "data.parquet").write_bytes(b"day9")
    assert day_fingerprints(files, cache)["2024-01-02"] != first["2024-01-02"]
    # a damaged cache, or one of another shape, is read as empty; an unwritable one is skipped
    for text in ("not json", '{"days": {"x": 1}, "written_ns": "no"}', "[1]"):
        cache.write_text(text)
        assert day_fingerprints(files, cache) == day_fingerprints(files)
    blocked = tmp_path / "file" / "cache.json"
    (tmp_path / "file").write_text("a file, not a folder")
    assert day_fingerprints(files, blocked) == day_fingerprints(files)


def _resources(root: Path, spark: SparkResource) -> dict[str, object]:
    return {
        "io_manager": TableIOManager(
            root=str(root / "tables"), artifacts_root=str(root / "artifacts")
        ),
        "phase1": Phase1Source(kind="synthetic", preset="small", seed=3),
        "spark": spark,
        "data_dir": DataDirResource(path=str(root / "data")),
    }


def _land(instance, resources, days: tuple[str, str]) -> None:
    assert materialize(
        [raw_tables, daily_interactions],
        resources=resources,
        instance=instance,
        run_config=RAW_CONFIG,
        tags=range_tags(*days),
    ).success


def _features(instance, resources):
    result = materialize(
        [raw_tables, daily_interactions, user_features, item_features, context_features],
        selection=[user_features, item_features, context_features],
        resources=resources,
        instance=instance,
        run_config=FEATURES_RUN,
    )
    assert result.success
    return result


def _counts(result, node: str) -> tuple[int, int]:
    meta = result.asset_materializations_for_node(node)[0].metadata
    return meta["snapshots_computed"].value, meta["snapshots_kept"].value


def _table(spark, path: str, key: str) -> pd.DataFrame:
    df = spark.read.parquet(path).toPandas()
    order = [key, "feature_timestamp"] if "feature_timestamp" in df else [key]
    return df.sort_values(order).reset_index(drop=True)


@pytest.mark.slow
def test_a_landed_week_recomputes_only_the_snapshots_after_it(tmp_path: Path, spark) -> None:
    session = SparkResource(master="local[2]", app_name="recs-tests")
    incremental = _resources(tmp_path / "incremental", session)
    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "home")) as instance:
        _land(instance, incremental, FIRST)
        first = _features(instance, incremental)
        assert _counts(first, "user_features") == (4, 0)
        # one file per snapshot: a kept snapshot's file is linked into the next build
        inodes = {
            f.name: f.stat().st_ino
            for f in Path(first.output_for_node("user_features").path).glob("*.parquet")
        }
        _land(instance, incremental, LANDED)
        after = _features(instance, incremental)
        again = _features(instance, incremental)
    users = after.output_for_node("user_features")
    # the build up to 2024-03-24: 02-15, 02-29, 03-14 and its newest event; after the landed
    # week the grid point 03-28 and the new newest event are computed, 02-29 and 03-14 kept
    assert users.snapshots[:3] == (utc(2024, 2, 29), utc(2024, 3, 14), utc(2024, 3, 28))
    for node in ("user_features", "item_features"):
        assert _counts(after, node) == (2, 2), node
    for t in (utc(2024, 2, 29), utc(2024, 3, 14)):
        kept = Path(users.path) / snapshot_file_name(t)
        assert kept.stat().st_ino == inodes[kept.name], t
    for node in ("user_features", "item_features"):
        assert _counts(again, node) == (0, 4), node  # nothing changed: every snapshot kept
    assert (Path(users.path) / MANIFEST).is_file()
    # the newest user snapshot was carried from the first build's newest (DuckDB in local mode)
    carried = after.asset_materializations_for_node("user_features")[0].metadata
    first_users = first.output_for_node("user_features")
    assert carried["newest_carried_from"].value == first_users.snapshots[-1].isoformat()
    assert (
        first.asset_materializations_for_node("user_features")[0]
        .metadata["newest_carried_from"]
        .value
        == ""
    )
    # context features: the landed week's 7 days; only the users with events in it recomputed
    landed = after.asset_materializations_for_node("context_features")[0].metadata
    assert landed["changed_days"].value == 7
    assert 0 < int(landed["users_recomputed"].value) < 2_000  # of the preset's 2,000 users
    rerun = again.asset_materializations_for_node("context_features")[0].metadata
    assert rerun["changed_days"].value == 0 and rerun["users_recomputed"].value == "0"

    scratch = _resources(tmp_path / "scratch", session)
    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "home2")) as instance:
        _land(instance, scratch, ALL_DAYS)
        fresh = _features(instance, scratch)
    assert _counts(fresh, "user_features") == (4, 0)
    for node, key in (
        ("user_features", "user_id"),
        ("item_features", "item_id"),
        ("context_features", "event_id"),
    ):
        got = _table(spark, after.output_for_node(node).path, key)
        want = _table(spark, fresh.output_for_node(node).path, key)
        assert len(got) == len(want) > 0
        pd.testing.assert_frame_equal(got, want[got.columns], check_exact=False, rtol=1e-9)


def test_plain_paths_are_taken_as_they_are(tmp_path: Path) -> None:
    """A tables root with ``#``, ``?`` or ``%`` in it: plain paths are file names, not URLs
    (only Spark's ``file:`` URIs are percent-decoded)."""
    from recs_assets.core.features.incremental import day_fingerprints, local_path

    odd = tmp_path / "run#1?x%20y" / "partition=2024-01-01" / "data.parquet"
    odd.parent.mkdir(parents=True)
    odd.write_bytes(b"rows")
    assert local_path(str(odd)) == odd
    assert local_path("file:///data/a%20b/x.parquet") == Path("/data/a b/x.parquet")
    assert set(day_fingerprints([str(odd)])) == {"2024-01-01"}
