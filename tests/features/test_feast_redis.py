"""The Feast repo against the real Redis on 127.0.0.1:6379 (own project name, cleaned up)."""

from __future__ import annotations

import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import redis

from recs_assets.core.features.feast_config import (
    REDIS_PASSWORD_ENV,
    export_redis_password,
    redis_connection_string,
)
from recs_assets.core.features.feast_repo.feature_views import feature_objects
from recs_assets.core.serving.launch import free_port
from recs_assets.features.feast_resource import FeastResource
from recs_assets.features.online_feature_store import newest_online_timestamp

REDIS_URL = "redis://127.0.0.1:6379/0"
T1 = datetime(2024, 1, 10, tzinfo=UTC)
T2 = datetime(2024, 1, 20, tzinfo=UTC)


def test_redis_connection_string() -> None:
    assert redis_connection_string("redis://127.0.0.1:6379/0") == "127.0.0.1:6379,db=0"
    # the password is left to Feast's expansion of ${RECS_REDIS_PASSWORD}: never in the file
    assert (
        redis_connection_string("rediss://:pw@h:6380/2")
        == "h:6380,db=2,password=${RECS_REDIS_PASSWORD},ssl=true"
    )
    with pytest.raises(ValueError, match="not a redis URL"):
        redis_connection_string("http://x")


def _write(path, frame: pd.DataFrame) -> None:
    frame = frame.copy()
    frame["feature_timestamp"] = frame["feature_timestamp"].astype("datetime64[us, UTC]")
    path.mkdir(parents=True)
    frame.to_parquet(path / "part-0.parquet", index=False)


def test_materialize_and_read_back_from_redis(tmp_path) -> None:
    project = f"recs_test_{uuid.uuid4().hex[:8]}"
    users = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2"],
            "feature_timestamp": [T1, T2, T1],
            "events_all": [3, 8, 1],
            "rating_mean": [4.0, 3.5, None],
            "top_category": ["Drama", "Action", None],
        }
    )
    items = pd.DataFrame(
        {"item_id": ["i1"], "feature_timestamp": [T2], "events_all": [5], "trending_score": [1.25]}
    )
    _write(tmp_path / "user_features", users)
    _write(tmp_path / "item_features", items)
    resource = FeastResource(project=project, repo_dir=str(tmp_path / "repo"), redis_url=REDIS_URL)
    assert resource.online_store_kind() == "redis"
    store = resource.store()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        store.apply(feature_objects(tmp_path / "user_features", tmp_path / "item_features"))
        store.materialize(start_date=T1 - timedelta(seconds=1), end_date=T2 + timedelta(seconds=1))
        got = store.get_online_features(
            features=[
                "user_features:events_all",
                "user_features:rating_mean",
                "user_features:top_category",
                "item_features:trending_score",
            ],
            entity_rows=[{"user_id": "u1", "item_id": "i1"}, {"user_id": "u2", "item_id": "i1"}],
        ).to_dict()
        # the online store keeps each user's newest snapshot: u1 from T2, u2 from T1
        assert got["events_all"] == [8, 1]
        assert got["rating_mean"] == [3.5, None]
        assert got["top_category"] == ["Action", None]
        assert got["trending_score"] == [1.25, 1.25]
        assert newest_online_timestamp(store, ["u1", "u2"]) == T2
        keys = list(client.scan_iter(match=f"*{project}"))
        assert len(keys) == 3  # u1, u2, i1: Feast keys end with the project name
    finally:
        store.teardown()
    assert list(client.scan_iter(match=f"*{project}")) == []


def test_export_redis_password_from_the_url() -> None:
    env: dict[str, str] = {"RECS_REDIS_URL": "redis://:p%40ss@h:6379/0"}
    export_redis_password(env=env)
    assert env[REDIS_PASSWORD_ENV] == "p@ss"  # URL-decoded
    export_redis_password("redis://:other@h:6379/0", env)
    assert env[REDIS_PASSWORD_ENV] == "p@ss"  # one exported by the operator is kept
    bare: dict[str, str] = {}
    export_redis_password("redis://h:6379/0", bare)
    assert bare == {}


def test_password_protected_redis_works_and_the_password_stays_off_disk(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = f"s3cret-{uuid.uuid4().hex}"
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"]
        + ["--requirepass", password],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port, password=password, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        monkeypatch.delenv(REDIS_PASSWORD_ENV, raising=False)
        url = f"redis://:{password}@127.0.0.1:{port}/0"
        users = pd.DataFrame({"user_id": ["u1"], "feature_timestamp": [T1], "events_all": [3]})
        items = pd.DataFrame({"item_id": ["i1"], "feature_timestamp": [T1], "events_all": [5]})
        _write(tmp_path / "user_features", users)
        _write(tmp_path / "item_features", items)
        repo = tmp_path / "repo"
        store = FeastResource(project="recs_pw", repo_dir=str(repo), redis_url=url).store()
        store.apply(feature_objects(tmp_path / "user_features", tmp_path / "item_features"))
        store.materialize(start_date=T1 - timedelta(seconds=1), end_date=T2)
        got = store.get_online_features(
            features=["user_features:events_all"], entity_rows=[{"user_id": "u1"}]
        ).to_dict()
        assert got["events_all"] == [3]
        written = [f for f in repo.rglob("*") if f.is_file()]
        assert any(f.name == "feature_store.yaml" for f in written)
        for f in written:
            assert password.encode() not in f.read_bytes(), f
        assert "${RECS_REDIS_PASSWORD}" in (repo / "feature_store.yaml").read_text()
    finally:
        proc.kill()
        proc.wait()
