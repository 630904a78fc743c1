"""Forgetting a user: every Parquet table and log under the data dir, CSV landing batches, the
SQLite online store, Redis (cache, impressions) and the in-process cache lose the user; the
request log holds a digest only; later loads drop the user. The end-to-end drill over a real
pipeline run is ``test_forget_user_after_a_pipeline_run``."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import redis
from click.testing import CliRunner

from recs_assets.cli.forget_user import forget_user_command
from recs_assets.core.forget import (
    ForgetTargets,
    entity_key_bytes,
    forget_user,
    targets_from_env,
)
from recs_assets.core.phase1.forgetting import (
    ForgetRequests,
    drop_forgotten,
    forget_requests,
    user_digest,
)
from recs_assets.core.phase1.privacy import pseudonymize_id
from recs_assets.core.phase1.schema import Phase1Tables
from recs_assets.core.serving.cache import LRUCache, cache_key

GONE, KEPT = "u_00000000000000aa", "u_00000000000000bb"
REDIS_URL = "redis://127.0.0.1:6379/15"


def _tables(root: Path) -> None:
    day = root / "tables" / "raw_interactions" / "partition=2024-01-01"
    day.mkdir(parents=True)
    pd.DataFrame({"user_id": [GONE, KEPT, GONE], "item_id": ["i1", "i2", "i3"]}).to_parquet(
        day / "data.parquet"
    )
    q = root / "tables" / "quarantined_rows"
    q.mkdir(parents=True)
    pd.DataFrame(
        {
            "table": ["interactions", "interactions"],
            "reason": ["rating 9 outside 1-5", "bad timestamp"],
            "raw_row": [
                json.dumps({"user_id": GONE, "item_id": "i1", "rating": "9"}),
                json.dumps({"user_id": KEPT, "item_id": "i2", "rating": "x"}),
            ],
        }
    ).to_parquet(q / "data.parquet")
    f = root / "features" / "user_features"
    f.mkdir(parents=True)
    pd.DataFrame({"user_id": [KEPT, GONE], "n_events": [3, 2]}).to_parquet(f / "part-0.parquet")
    items = root / "tables" / "raw_items"
    items.mkdir(parents=True)
    pd.DataFrame({"item_id": ["i1", "i2"]}).to_parquet(items / "data.parquet")
    landing = root / "landing"
    landing.mkdir()
    pd.DataFrame({"user_id": ["raw-7", "raw-8"], "item_id": ["i1", "i2"]}).to_csv(
        landing / "batch-1.csv", index=False
    )


def _online_store(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE recs_user_features (entity_key BLOB, feature_name TEXT, value BLOB, "
            "PRIMARY KEY(entity_key, feature_name))"
        )
        for uid in (GONE, KEPT):
            for name in ("n_events", "mean_rating"):
                conn.execute(
                    "INSERT INTO recs_user_features VALUES (?, ?, ?)",
                    (entity_key_bytes(uid), name, b"v"),
                )


def _everything_mentioning(root: Path, needle: str) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            found.append(str(path.relative_to(root)))
    for path in root.rglob("*.parquet"):
        if needle in pq.read_table(path).to_pandas().to_json():
            found.append(str(path.relative_to(root)))
    return sorted(set(found))


def test_forget_user_removes_the_user_everywhere_and_logs_a_digest(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _tables(root)
    db = root / "feast_repo" / "online_store.db"
    _online_store(db)
    prefix = f"forget-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS_URL)
    lists = [
        cache_key(prefix, "v1", "rec", u=GONE, k=10, x=1),
        cache_key(prefix, "v2", "rec", u=GONE, k=5, x=0, ctx={"device": "tv"}),
    ]
    kept_list = cache_key(prefix, "v1", "rec", u=KEPT, k=10, x=1)
    for key in [*lists, kept_list, f"{prefix}-served:{GONE}", f"{prefix}-served:{KEPT}"]:
        client.set(key, "[]", ex=600)
    targets = ForgetTargets(
        data_dir=root,
        landing_dir=root / "landing",
        requests=ForgetRequests(root / "privacy"),
        online_store_db=db,
        redis_url=REDIS_URL,
        cache_prefix=prefix,
    )
    # Spark writes a Hadoop checksum beside each part file; a rewritten file's is stale
    crc = root / "features" / "user_features" / ".part-0.parquet.crc"
    crc.write_bytes(b"stale")
    try:
        report = forget_user(targets, GONE, raw_id="raw-7")
        assert not crc.exists()
        assert report.parquet_rows == {
            "features/user_features/part-0.parquet": 1,
            "tables/quarantined_rows/data.parquet": 1,
            "tables/raw_interactions/partition=2024-01-01/data.parquet": 2,
        }
        assert report.landing_rows == {"batch-1.csv": 1}
        assert report.online_store_rows == 2
        assert report.redis_keys == 3  # two cached lists and the impressions hash
        # nothing under the data dir names the user, raw id included; the others are intact
        assert _everything_mentioning(root, GONE) == []
        assert _everything_mentioning(root, "raw-7") == []
        assert pd.read_parquet(root / "tables" / "raw_interactions")["user_id"].tolist() == [KEPT]
        assert len(pd.read_csv(root / "landing" / "batch-1.csv")) == 1
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM recs_user_features").fetchone()[0] == 2
        assert client.keys(f"{prefix}*{GONE}*") == []
        assert client.exists(kept_list, f"{prefix}-served:{KEPT}") == 2
        # the log proves the request with the digest, not the id
        log = targets.requests.read()
        assert log["user_digest"].tolist() == [user_digest(GONE)]
        assert json.loads(log["removed"][0])["online_store_rows"] == 2
        # forgetting twice removes nothing more and logs a second request
        again = forget_user(targets, GONE)
        assert again.parquet_rows == {} and again.redis_keys == 0
        assert len(targets.requests.read()) == 2
    finally:
        stale = client.keys(f"{prefix}*")
        if stale:
            client.delete(*stale)


def test_later_loads_drop_forgotten_users(tmp_path: Path) -> None:
    requests = ForgetRequests(tmp_path / "privacy")
    requests.record(GONE, "test", "{}")
    tables = Phase1Tables(
        interactions=pd.DataFrame({"user_id": [GONE, KEPT, None], "item_id": ["a", "b", "c"]}),
        users=pd.DataFrame({"user_id": [GONE, KEPT]}),
        items=pd.DataFrame({"item_id": ["a", "b", "c"]}),
    )
    kept, dropped = drop_forgotten(tables, requests.digests())
    assert dropped == 2
    assert kept.interactions["user_id"].tolist() == [KEPT, None]  # a null id goes to quarantine
    assert kept.users["user_id"].tolist() == [KEPT]
    assert drop_forgotten(tables, frozenset())[1] == 0


def test_the_phase1_source_leaves_forgotten_users_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recs_assets.raw.source_resource import Phase1Source

    monkeypatch.setenv("RECS_DATA_DIR", str(tmp_path))
    source = Phase1Source(kind="synthetic", preset="small")
    before = source.load()
    victim = str(before.interactions["user_id"].iloc[0])
    n_victim = int((before.interactions["user_id"] == victim).sum())
    forget_requests().record(victim, "test", "{}")
    after = source.load()
    assert victim not in set(after.interactions["user_id"]) | set(after.users["user_id"])
    assert len(after.interactions) == len(before.interactions) - n_victim


def test_in_process_cache_forgets_every_list_of_the_user() -> None:
    cache = LRUCache(100, 60)
    cache.set(cache_key("recs", "v1", "rec", u=GONE, k=10, x=1), "[]")
    cache.set(cache_key("recs", "v1", "rec", u=GONE, k=3, x=1, ctx={"hour": 3}), "[]")
    cache.set(cache_key("recs", "v1", "rec", u=KEPT, k=10, x=1), "[]")
    cache.set(cache_key("recs", "v1", "sim", i=GONE, k=10), "[]")  # an item id, not a user
    assert cache.forget_user(GONE) == 2
    assert len(cache) == 2


def test_cli_hashes_a_raw_id_like_the_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("RECS_REDIS_URL", raising=False)
    monkeypatch.setenv("RECS_PSEUDONYM_KEY", "k" * 40)
    pid = pseudonymize_id("alice", b"k" * 40)
    table = tmp_path / "tables" / "raw_users"
    table.mkdir(parents=True)
    pd.DataFrame({"user_id": [pid, "u_other"]}).to_parquet(table / "data.parquet")
    out = CliRunner().invoke(forget_user_command, [" alice "])
    assert out.exit_code == 0, out.output
    said = json.loads(out.output)
    assert said["user_id"] == pid and said["parquet_rows"] == {"tables/raw_users/data.parquet": 1}
    assert targets_from_env().requests.digests() == {user_digest(pid)}
    bad = CliRunner().invoke(forget_user_command, ["u_x\x00", "--pseudonym"])
    assert bad.exit_code == 2 and "printable" in bad.output
