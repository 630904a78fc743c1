"""The online store writes only the rows whose values moved, and reads answer as a full rewrite.

A day lands: user ``a`` had no new event (only its clock columns moved, by exactly one day),
``b`` had one (its counts changed), ``c`` is new. The delta write rewrites ``b`` and ``c``; a
real Feast store (SQLite, and the local Redis) then reads, once ``a``'s clock columns are aged to the store's as-of
row, exactly what a store rewritten in full reads.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prometheus_client import CollectorRegistry

from recs_assets.core.features.feast_repo.feature_views import feature_objects
from recs_assets.core.features.online_clock import age_clock_columns
from recs_assets.core.features.online_delta import changed_cells, changed_rows, merged_mirror
from recs_assets.core.features.tables import FeatureTable
from recs_assets.core.serving.cache import LRUCache
from recs_assets.core.serving.online_feature_reader import OnlineFeatureReader
from recs_assets.core.serving.telemetry import ServingMetrics
from recs_assets.features.feast_resource import FeastResource
from recs_assets.features.online_feature_store import ViewWrite, write_view

# microseconds, as snapshots have them (the newest event's time); Feast keeps seconds
T0 = datetime(2024, 3, 1, 12, 0, 0, 900_000, tzinfo=UTC)
T1 = T0 + timedelta(days=1, seconds=0.2)
DAY = (T1 - T0).total_seconds() / 86400
SECOND = 1 / 86400  # the reader ages by Feast's timestamps, to the second
CLOCK = ("days_since_last_event",)
REDIS_URL = "redis://127.0.0.1:6379/13"


def users(as_of: datetime, rows: list[tuple[str, int, float, float, str]]) -> pa.Table:
    """user_features rows (user_id, events_all, days_since_last_event, hour_share_night,
    top_category) stamped ``as_of``."""
    ids, events, since, share, top = zip(*rows, strict=True)
    return pa.table(
        {
            "user_id": pa.array(ids, pa.string()),
            "feature_timestamp": pa.array([as_of] * len(ids), pa.timestamp("us", tz="UTC")),
            "events_all": pa.array(events, pa.int64()),
            "days_since_last_event": pa.array(since, pa.float64()),
            "hour_share_night": pa.array(share, pa.float64()),
            "top_category": pa.array(top, pa.string()),
        }
    )


BEFORE = users(T0, [("a", 3, 2.5, 0.25, "drama"), ("b", 5, 0.1, 0.5, "comedy")])
AFTER = users(
    T1,
    [
        ("a", 3, 2.5 + DAY, 0.25 + 1e-17, "drama"),  # a day older, a share summed otherwise
        ("b", 6, 0.2, 0.5, "comedy"),  # a new event
        ("c", 1, 0.0, 1.0, "action"),  # a new user
    ],
)


def test_only_moved_rows_are_written_and_the_held_rows_merge() -> None:
    changed = changed_rows(AFTER, BEFORE, "user_id", CLOCK)
    assert changed["user_id"].to_pylist() == ["b", "c"]
    # without the clock columns declared, every row moved
    assert changed_rows(AFTER, BEFORE, "user_id").num_rows == 3
    # a clock column that moved by anything but the days in between is a change
    skewed = AFTER.set_column(3, "days_since_last_event", pa.array([2.6 + DAY, 0.2, 0.0]))
    assert "a" in changed_rows(skewed, BEFORE, "user_id", CLOCK)["user_id"].to_pylist()
    held = merged_mirror(BEFORE, changed, "user_id").sort_by("user_id")
    assert held["user_id"].to_pylist() == ["a", "b", "c"]
    assert held["feature_timestamp"].to_pylist() == [T0, T1, T1]
    with pytest.raises(ValueError, match="rewrite the online store in full"):
        changed_rows(AFTER.drop_columns(["top_category"]), BEFORE, "user_id", CLOCK)
    with pytest.raises(ValueError, match="rewrite the online store in full"):  # a type changed
        changed_rows(
            AFTER.set_column(2, "events_all", pa.array([3.0, 6.0, 1.0])), BEFORE, "user_id"
        )


def test_a_value_that_appears_or_disappears_is_a_change() -> None:
    held = BEFORE.slice(0, 1)  # user a, as of T0
    aged = users(T1, [("a", 3, 2.5 + DAY, 0.25, "drama")])
    assert changed_rows(aged, held, "user_id", CLOCK).num_rows == 0
    for column, empty in (
        ("days_since_last_event", pa.array([None], pa.float64())),  # a clock column
        ("hour_share_night", pa.array([None], pa.float64())),  # a double
        ("top_category", pa.array([None], pa.string())),
    ):
        i = aged.schema.get_field_index(column)
        emptied = aged.set_column(i, column, empty)
        # value -> NULL, and NULL -> value (the held row empty, the new one filled)
        assert changed_rows(emptied, held, "user_id", CLOCK).num_rows == 1, column
        was_empty = held.set_column(i, column, empty)
        assert changed_rows(aged, was_empty, "user_id", CLOCK).num_rows == 1, column
        assert changed_rows(emptied, was_empty, "user_id", CLOCK).num_rows == 0, column


def test_aging_adds_the_days_to_clock_columns_only() -> None:
    row = {"days_since_last_event": 2.5, "events_all": 3, "account_age_days": None}
    aged = age_clock_columns("user_features", row, T0, T0 + timedelta(hours=36))
    assert aged == {"days_since_last_event": 4.0, "events_all": 3, "account_age_days": None}


def test_only_the_moved_cells_of_a_moved_row_are_written() -> None:
    # b's share moved by the last bits of a sum only: not a change, the held value stays
    after = AFTER.set_column(4, "hour_share_night", pa.array([0.25, 0.5 + 1e-17, 1.0]))
    found = changed_cells(after, BEFORE, "user_id", CLOCK, ("events_all",))
    assert found.rows["user_id"].to_pylist() == ["b", "c"]
    assert found.rows.equals(changed_rows(after, BEFORE, "user_id", CLOCK))
    moved = {c: m.to_pylist() for c, m in found.moved.items()}
    assert moved == {
        "events_all": [True, True],
        "days_since_last_event": [True, True],  # a clock column moves with the row's time
        "hour_share_night": [False, True],
        "top_category": [False, True],  # c is new: every value
    }
    assert found.count == 6
    # what the store holds: b's new count and clock, its held share and category
    assert found.held.to_pylist()[0] == {
        "user_id": "b",
        "feature_timestamp": T1,
        "events_all": 6,
        "days_since_last_event": 0.2,
        "hour_share_night": 0.5,
        "top_category": "comedy",
    }
    assert found.held.schema == BEFORE.schema
    # a column declared always written moves with every moved row
    a_only = changed_cells(after, BEFORE, "user_id", CLOCK, ("top_category",))
    assert a_only.moved["top_category"].to_pylist() == [True, True]


def _table(root: Path, name: str, key: str, snapshots: list[pa.Table]) -> FeatureTable:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.parquet"):
        old.unlink()
    for i, snap in enumerate(snapshots):
        pq.write_table(snap, folder / f"part-{i}.parquet")
    stamps = tuple(sorted({t for s in snapshots for t in s["feature_timestamp"].to_pylist()}))
    return FeatureTable(name, str(folder), sum(s.num_rows for s in snapshots), (), stamps)


def _items(as_of: datetime) -> pa.Table:
    return pa.table(
        {
            "item_id": pa.array(["i1"]),
            "feature_timestamp": pa.array([as_of], pa.timestamp("us", tz="UTC")),
            "events_all": pa.array([9], pa.int64()),
        }
    )


def _store(root: Path, project: str, backend: str) -> tuple[FeastResource, object]:
    url = REDIS_URL if backend == "redis" else ""
    feast = FeastResource(project=project, repo_dir=str(root / "repo"), redis_url=url)
    return feast, feast.store()


def _read(repo: Path, user: str) -> dict[str, object] | None:
    reader = OnlineFeatureReader(
        str(repo), LRUCache(16, ttl_s=60.0), ServingMetrics.create(CollectorRegistry())
    )
    # an unchanged value first: a delta write leaves it (and its older stamp) as it was
    return reader._read(user, ["top_category", "events_all", "days_since_last_event"])


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_delta_write_reads_as_a_full_rewrite(tmp_path: Path, backend: str) -> None:
    columns = ["events_all", "days_since_last_event", "top_category"]
    stores: dict[str, tuple[Path, list[ViewWrite]]] = {}
    opened = []
    try:
        for mode in ("auto", "full"):
            root = tmp_path / mode
            _, store = _store(root, f"recs_delta_{mode}_{uuid.uuid4().hex[:8]}", backend)
            opened.append(store)
            mirror = root / "repo" / "online_rows" / "user_features.parquet"
            writes = []
            for snaps in ([BEFORE], [BEFORE, AFTER]):
                user_table = _table(root, "user_features", "user_id", snaps)
                item_table = _table(
                    root,
                    "item_features",
                    "item_id",
                    [_items(s["feature_timestamp"][0].as_py()) for s in snaps],
                )
                store.apply(feature_objects(Path(user_table.path), Path(item_table.path)))
                done, _ = write_view(store, "user_features", "user_id", user_table, mirror, mode)
                writes.append(done)
            stores[mode] = (root / "repo", writes)
        delta_writes, full_writes = stores["auto"][1], stores["full"][1]
        assert [w.mode for w in delta_writes] == ["full", "delta"], delta_writes
        assert delta_writes[1].written == 2 and delta_writes[1].held == 3
        # SQLite keeps a value per cell: b's count and clock, its last value in the view's
        # order (Feast's SQLite read reports its stamp: top_category) and c's 4; Redis whole rows
        assert delta_writes[1].cells == (7 if backend == "sqlite" else 8)
        assert [w.written for w in full_writes] == [2, 3]
        for user in ("a", "b", "c"):
            delta, full = _read(stores["auto"][0], user), _read(stores["full"][0], user)
            assert delta is not None and full is not None
            assert delta.keys() == full.keys() == set(columns)
            for c in columns:
                if isinstance(full[c], float):
                    assert delta[c] == pytest.approx(full[c], abs=SECOND), (user, c)
                else:
                    assert delta[c] == full[c], (user, c)
        # a's row was written at T0 and is read as of T1: a day older than it was written
        aged = _read(stores["auto"][0], "a")["days_since_last_event"]
        assert aged == pytest.approx(2.5 + DAY, abs=SECOND) and aged != pytest.approx(2.5, abs=0.5)
        # a store emptied behind the asset's back (a flushed Redis) is written in full again
        store = opened[0]
        store.teardown()
        store.apply(feature_objects(Path(user_table.path), Path(item_table.path)))
        mirror = stores["auto"][0] / "online_rows" / "user_features.parquet"
        user_table = _table(tmp_path / "auto", "user_features", "user_id", [BEFORE, AFTER])
        again, _ = write_view(store, "user_features", "user_id", user_table, mirror, "auto")
        assert again.mode == "full" and "as-of row is not the last write's" in again.reason
        assert _read(stores["auto"][0], "a")["events_all"] == 3
    finally:
        for store in opened:
            store.teardown()


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_rewrites_at_the_same_time_dropped_columns_and_quiet_days(
    tmp_path: Path, backend: str
) -> None:
    _, store = _store(tmp_path, f"recs_delta_edge_{uuid.uuid4().hex[:8]}", backend)
    mirror = tmp_path / "repo" / "online_rows" / "user_features.parquet"

    def write(snaps: list[pa.Table]) -> ViewWrite:
        user_table = _table(tmp_path, "user_features", "user_id", snaps)
        item_table = _table(
            tmp_path, "item_features", "item_id", [_items(snaps[0]["feature_timestamp"][0].as_py())]
        )
        store.apply(feature_objects(Path(user_table.path), Path(item_table.path)))
        done, _ = write_view(store, "user_features", "user_id", user_table, mirror, "auto")
        return done

    try:
        assert write([AFTER]).mode == "full"
        # the snapshot at T1 rebuilt with a late event of b: same time, new values
        rebuilt = AFTER.set_column(2, "events_all", pa.array([3, 7, 1]))
        done = write([rebuilt])
        assert (done.mode, done.written) == ("delta", 1)
        assert _read(tmp_path / "repo", "b")["events_all"] == 7  # Redis must not skip it
        # a quiet run (nothing moved) keeps the next one a delta
        assert write([rebuilt]).written == 0
        assert write([rebuilt]).mode == "delta"
        # a day later a column leaves the view: its old online rows (stamped T1) must go, or
        # SQLite answers their time for the whole row
        t2 = T1 + timedelta(days=1)
        fewer = users(
            t2,
            [("a", 3, 2.5 + DAY + 1, 0.25, "-"), ("b", 7, 1.2, 0.5, "-"), ("c", 1, 1.0, 1.0, "-")],
        ).drop_columns(["top_category"])
        done = write([fewer])
        assert (done.mode, done.reason) == ("full", "the view's columns changed")
        reader = OnlineFeatureReader(
            str(tmp_path / "repo"),
            LRUCache(16, ttl_s=60.0),
            ServingMetrics.create(CollectorRegistry()),
        )
        row = reader._read("a", ["events_all", "days_since_last_event"])
        assert row is not None and row["days_since_last_event"] == pytest.approx(2.5 + DAY + 1)
        stamps = store.get_online_features(
            features=["user_features:events_all"], entity_rows=[{"user_id": "a"}]
        ).to_dict(include_event_timestamps=True)["events_all__ts"]
        assert stamps == [int(t2.timestamp())]
        assert write([fewer]).mode == "delta"
    finally:
        store.teardown()


def test_a_store_that_reports_another_stamp_gets_whole_rows(tmp_path: Path) -> None:
    """The SQLite store answers a key's stamp from its last value in insertion order; our
    writer inserts in the view's order. Values inserted in another order (Feast's writer, an older
    store) make the read-back of the moved keys show an old stamp: the moved rows are then
    written whole, and the reads are those of a full rewrite."""
    import sqlite3

    from feast.infra.online_stores.sqlite import _table_id

    project = f"recs_delta_order_{uuid.uuid4().hex[:8]}"
    _, store = _store(tmp_path, project, "sqlite")
    mirror = tmp_path / "repo" / "online_rows" / "user_features.parquet"
    try:
        writes = []
        for snaps in ([BEFORE], [BEFORE, AFTER]):
            user_table = _table(tmp_path, "user_features", "user_id", snaps)
            item_table = _table(tmp_path, "item_features", "item_id", [_items(T0)])
            store.apply(feature_objects(Path(user_table.path), Path(item_table.path)))
            writes.append(
                write_view(store, "user_features", "user_id", user_table, mirror, "auto")[0]
            )
            if len(writes) == 1:  # every key's share inserted last, as another writer might
                path = store.config.online_store.path
                table = _table_id(project, store.get_feature_view("user_features"))
                with sqlite3.connect(
                    Path(store.repo_path) / path if not Path(path).is_absolute() else path
                ) as con:
                    con.executescript(
                        f"""CREATE TEMP TABLE moved AS SELECT * FROM "{table}"
                            WHERE feature_name = 'hour_share_night';
                        DELETE FROM "{table}" WHERE feature_name = 'hour_share_night';
                        INSERT INTO "{table}" SELECT * FROM moved;"""
                    )
        assert writes[1].mode == "delta" and writes[1].written == 2
        assert writes[1].cells == 8  # b and c whole: 2 rows of 4 values
        assert writes[1].reason == "rows written whole: 1 of 2 moved keys read back another stamp"
        b = _read(tmp_path / "repo", "b")
        assert b == {"top_category": "comedy", "events_all": 6, "days_since_last_event": 0.2}
        a = _read(tmp_path / "repo", "a")  # not moved: aged a day from its stamp
        assert a is not None and a["days_since_last_event"] == pytest.approx(2.5 + DAY, abs=SECOND)
    finally:
        store.teardown()
