"""The batched SQLite writer writes what Feast's own writer writes, byte for byte.

Two real Feast SQLite stores get the same rows: one through ``FeatureStore.write_to_online_store``,
one through ``sqlite_online.write_rows``. Their tables must be equal row for row (key bytes,
serialized values, text, timestamps), and Feast must read back the same features from both.
The rows cover every type the feature views use (string, int64, int32, double, bool), nulls
and NaN, negative and large integers, text with quotes and non-ASCII letters, an empty string,
a key written twice in one batch and a second write over existing rows.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feast import FeatureStore

from recs_assets.core.features import sqlite_online
from recs_assets.core.features.feast_repo.feature_views import feature_objects
from recs_assets.features.feast_resource import FeastResource

T0 = datetime(2024, 3, 1, 12, 0, 0, 900_000, tzinfo=UTC)
COLUMNS = ["name", "count", "small", "score", "flag"]


def _users(stamp: datetime, ids: list[str], seed: int) -> pa.Table:
    n = len(ids)
    names = ["plain", "", 'quote "x"', "Zoë 東京", None, "a;b"]
    counts = [0, 1, -1, 127, 128, 300, 2**40, -(2**40), None, 2**62]
    scores = [0.0, -0.0, 1.5, -2.25, 1e-300, 1e300, float("nan"), None, 0.1, 1 / 3]
    return pa.table(
        {
            "user_id": pa.array(ids),
            "feature_timestamp": pa.array([stamp] * n, pa.timestamp("us", tz="UTC")),
            "name": pa.array([names[(i + seed) % len(names)] for i in range(n)], pa.string()),
            "count": pa.array([counts[(i + seed) % len(counts)] for i in range(n)], pa.int64()),
            "small": pa.array(
                [None if (i + seed) % 7 == 0 else (i - 5) * 1000 for i in range(n)], pa.int32()
            ),
            "score": pa.array(
                [scores[(i * 3 + seed) % len(scores)] for i in range(n)], pa.float64()
            ),
            "flag": pa.array(
                [None if (i + seed) % 5 == 0 else (i + seed) % 2 == 0 for i in range(n)], pa.bool_()
            ),
        }
    )


def _item(stamp: datetime) -> pa.Table:
    return pa.table(
        {
            "item_id": pa.array(["i1"]),
            "feature_timestamp": pa.array([stamp], pa.timestamp("us", tz="UTC")),
            "events_all": pa.array([9], pa.int64()),
        }
    )


def _store(root: Path, users: pa.Table) -> FeatureStore:
    for name, table in (("user_features", users), ("item_features", _item(T0))):
        (root / name).mkdir(parents=True)
        pq.write_table(table, root / name / "part-0.parquet")
    feast = FeastResource(project=f"recs_sq_{uuid.uuid4().hex[:8]}", repo_dir=str(root / "repo"))
    store = feast.store()
    store.apply(feature_objects(root / "user_features", root / "item_features"))
    return store


def _rows(store: FeatureStore, view: str) -> list[tuple[object, ...]]:
    db = store.config.online_store.path
    table = f"{store.config.project}_{view}"
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT entity_key, feature_name, value, value_text, vector_value, event_ts, "
            f'created_ts FROM "{table}" ORDER BY entity_key, feature_name'
        ).fetchall()


def test_batched_writes_equal_feasts_own(tmp_path: Path) -> None:
    ids = [f"u{i}" for i in range(40)] + ["u3", "Zoë"]  # u3 twice: the later row wins
    first = _users(T0, ids, seed=0)
    second = _users(T0 + timedelta(days=1, seconds=0.4), [f"u{i}" for i in range(0, 60, 2)], 3)
    feast_store, ours = _store(tmp_path / "feast", first), _store(tmp_path / "ours", first)
    try:
        assert sqlite_online.fast_path(ours, "user_features")
        for batch in (first, second):
            feast_store.write_to_online_store("user_features", batch.to_pandas())
            written = sqlite_online.write_rows(ours, "user_features", batch)
            assert written == batch.num_rows * len(COLUMNS)
        expected = _rows(feast_store, "user_features")
        assert len(expected) == 51 * len(COLUMNS)  # u0-u39, "Zoë", u40-u58 (even) of the second
        assert _rows(ours, "user_features") == expected
        keys = [{"user_id": u} for u in ["u0", "u3", "u5", "u58", "Zoë", "nobody"]]
        features = [f"user_features:{c}" for c in COLUMNS]

        def read(store: FeatureStore) -> dict[str, list[object]]:
            got = store.get_online_features(features=features, entity_rows=keys).to_dict()
            # NaN != NaN: compare the text of each value
            return {k: [repr(v) for v in vs] for k, vs in got.items()}

        assert read(ours) == read(feast_store)
    finally:
        feast_store.teardown()
        ours.teardown()


def test_nothing_to_write_writes_nothing_as_feast_does(tmp_path: Path) -> None:
    users = _users(T0, ["u0", "u1"], seed=0)
    store = _store(tmp_path, users)
    try:
        assert sqlite_online.write_rows(store, "user_features", users.slice(0, 0)) == 0
        nulls = users.select(["user_id", "feature_timestamp"])
        for c in COLUMNS:
            nulls = nulls.append_column(
                users.schema.field(c), pa.nulls(2, users.schema.field(c).type)
            )
        assert sqlite_online.write_rows(store, "user_features", nulls) == 0
        # NaN is no value either (pandas, which Feast reads the rows through, says so)
        nan = nulls.set_column(
            nulls.schema.get_field_index("score"), "score", pa.array([float("nan")] * 2)
        )
        store.write_to_online_store("user_features", nan.to_pandas())
        assert _rows(store, "user_features") == []
        assert sqlite_online.write_rows(store, "user_features", nan) == 0
        assert _rows(store, "user_features") == []
    finally:
        store.teardown()


def test_varints_match_protobuf() -> None:
    from feast.protos.feast.types.Value_pb2 import Value

    for n in [0, 1, 127, 128, 255, 300, 2**31 - 1, -1, -(2**31), 2**63 - 1, -(2**63)]:
        assert sqlite_online._int_value(0x20, n)[0] == Value(int64_val=n).SerializeToString()
        if -(2**31) <= n < 2**31:
            assert sqlite_online._int_value(0x18, n)[0] == Value(int32_val=n).SerializeToString()


@pytest.mark.parametrize("redis_url", ["redis://127.0.0.1:6379/13"])
def test_other_stores_go_through_feast(tmp_path: Path, redis_url: str) -> None:
    feast = FeastResource(
        project=f"recs_sq_{uuid.uuid4().hex[:8]}", repo_dir=str(tmp_path), redis_url=redis_url
    )
    store = feast.store()
    assert not sqlite_online.fast_path(store, "user_features")
