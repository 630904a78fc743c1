"""The Feast repo against the real Redis on 127.0.0.1:6379 (own project name, cleaned up)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import redis

from recs_assets.core.features.feast_repo.feature_views import feature_objects
from recs_assets.features.feast_resource import FeastResource, redis_connection_string
from recs_assets.features.online_feature_store import newest_online_timestamp

REDIS_URL = "redis://127.0.0.1:6379/0"
T1 = datetime(2024, 1, 10, tzinfo=UTC)
T2 = datetime(2024, 1, 20, tzinfo=UTC)


def test_redis_connection_string() -> None:
    assert redis_connection_string("redis://127.0.0.1:6379/0") == "127.0.0.1:6379,db=0"
    assert redis_connection_string("rediss://:pw@h:6380/2") == "h:6380,db=2,password=pw,ssl=true"
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
