"""Feedback is accepted only for items the service served to that user, recently; shared through
Redis across workers; a dead Redis falls back to what the process saw."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from serving_helpers import export_tiny, model_store, service_asgi

from recs_assets.core.serving.impressions import ImpressionIndex, impression_index_from_env

REDIS_URL = "redis://127.0.0.1:6379/15"


def test_the_index_remembers_within_the_window_only() -> None:
    index = ImpressionIndex(window_s=60)
    index.remember("u1", ["i1", "i2"], now=1_000.0)
    assert index.seen("u1", "i1", now=1_030.0) and index.seen("u1", "i2", now=1_060.0)
    assert not index.seen("u1", "i1", now=1_061.0)  # too long ago
    assert not index.seen("u1", "i3", now=1_010.0) and not index.seen("u2", "i1", now=1_010.0)
    small = ImpressionIndex(window_s=60, max_users=2)
    for user in ("a", "b", "c"):
        small.remember(user, ["i"], now=1.0)
    assert not small.seen("a", "i", now=2.0) and small.seen("c", "i", now=2.0)


def test_redis_shares_impressions_and_a_dead_redis_degrades() -> None:
    prefix = f"recs-imp-{uuid.uuid4().hex[:8]}"
    writer = ImpressionIndex(window_s=60, redis_url=REDIS_URL, prefix=prefix)
    reader = ImpressionIndex(window_s=60, redis_url=REDIS_URL, prefix=prefix)  # another worker
    writer.remember("u1", ["i1"])
    assert reader.seen("u1", "i1") and not reader.seen("u1", "i2")
    dead = ImpressionIndex(window_s=60, redis_url="redis://127.0.0.1:1/0", prefix=prefix)
    dead.remember("u1", ["i9"])  # Redis is down: kept in the process
    assert dead.seen("u1", "i9")


def test_settings() -> None:
    assert impression_index_from_env({"RECS_FEEDBACK_REQUIRES_IMPRESSION": "0"}) is None
    assert impression_index_from_env({}).window_s == 86_400
    assert impression_index_from_env({"RECS_FEEDBACK_WINDOW_S": "90"}).window_s == 90
    with pytest.raises(ValueError, match="RECS_FEEDBACK_WINDOW_S"):
        impression_index_from_env({"RECS_FEEDBACK_WINDOW_S": "soon"})


def test_feedback_needs_an_impression(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.testclient import TestClient

    home = tmp_path / "bentoml"
    export_tiny(home)
    monkeypatch.delenv("RECS_REDIS_URL", raising=False)
    with model_store(home), TestClient(service_asgi(), raise_server_exceptions=False) as client:
        click = {"user_id": "u3", "item_id": "i2", "event": "click"}
        unseen = client.post("/feedback", json=click)
        assert unseen.status_code == 400 and "no impression of item 'i2'" in unseen.text
        served = client.post("/recommend", json={"user_id": "u3", "k": 2}).json()
        assert "i2" in [it["item_id"] for it in served["items"]]
        assert client.post("/feedback", json=click).status_code == 200
        # another user who never saw i2 still cannot click it
        other = client.post("/feedback", json={**click, "user_id": "u1"})
        assert other.status_code == 400
    monkeypatch.setenv("RECS_FEEDBACK_REQUIRES_IMPRESSION", "0")
    with model_store(home), TestClient(service_asgi(), raise_server_exceptions=False) as client:
        assert client.post("/feedback", json={**click, "user_id": "u1"}).status_code == 200
