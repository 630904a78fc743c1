"""Users the model never saw, answered by a feature-based LightFM from their Feast online features.

One tiny world for every test: 40 users and 20 items; women (even users) consume i0-i9, men
i10-i19, and men consume more, so the most popular items are all men's items. ``new_f`` (a woman)
and ``new_m`` are not in training but have rows in the online store; ``ghost`` has none. The
store is real Feast: SQLite in a temporary folder, or the local Redis (db 13, own project and
key prefix, cleaned up); failures are real too (a missing repo, a Redis port nobody listens on,
a server that accepts connections and never answers).
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
import yaml
from dagster import asset, materialize
from prometheus_client import CollectorRegistry
from serving_helpers import model_store, service_asgi

from recs_assets.core.datasets.feature_side import entity_features
from recs_assets.core.features.feast_repo.feature_views import feature_objects
from recs_assets.core.models.base import InteractionMatrix, SideInfo
from recs_assets.core.models.feature_encoder import FeatureEncoder
from recs_assets.core.models.lightfm_model import LightFMRecommender
from recs_assets.core.serving.artifacts import ServingModel, write_artifacts
from recs_assets.core.serving.cache import Cache, LRUCache, RedisCache
from recs_assets.core.serving.champion import ChampionModel
from recs_assets.core.serving.engine import RecommendationEngine
from recs_assets.core.serving.export import load_serving_model
from recs_assets.core.serving.online_feature_reader import (
    NO_ROW,
    OnlineFeatureReader,
    online_feature_reader_from_settings,
)
from recs_assets.core.serving.settings import ServingSettings
from recs_assets.core.serving.telemetry import ServingMetrics
from recs_assets.features.feast_resource import FeastResource
from recs_assets.serving.bento_model import bento_model

AS_OF = datetime(2024, 1, 31, tzinfo=UTC)
REDIS_URL = "redis://127.0.0.1:6379/13"
USERS = [f"u{j}" for j in range(40)]
ITEMS = [f"i{i}" for i in range(20)]
WOMENS, MENS = set(ITEMS[:10]), set(ITEMS[10:])
LABELS = {"model_version": "v-hybrid-1", "dagster_run_id": "run-h", "data_version": "d-h"}


def _user_frame() -> pd.DataFrame:
    """The user_features snapshot: training users plus new_f and new_m (ghost has no row)."""
    rng = np.random.default_rng(5)
    women = [j % 2 == 0 for j in range(40)]
    return pd.DataFrame(
        {
            "user_id": [*USERS, "new_f", "new_m"],
            "feature_timestamp": pd.Timestamp(AS_OF).as_unit("us"),
            "age": pd.array(
                [int(rng.integers(18, 30) if w else rng.integers(40, 60)) for w in women]
                + [25, 50],
                dtype="Int64",
            ),
            "gender": ["F" if w else "M" for w in women] + ["F", "M"],
            "occupation": [
                str(rng.choice(["artist", "writer"] if w else ["engineer", "lawyer"]))
                for w in women
            ]
            + ["writer", "lawyer"],
        }
    )


@dataclass(frozen=True)
class World:
    train: InteractionMatrix
    frame: pd.DataFrame
    model: LightFMRecommender
    encoder: FeatureEncoder
    serving_dir: Path
    user_path: Path
    item_path: Path
    repo: Path  # Feast repo (SQLite online store) holding the frame's newest rows
    project: str

    def serving(self) -> ServingModel:
        return ServingModel.load(self.serving_dir, labels=dict(LABELS))

    def expected_scores(self, user_id: str) -> np.ndarray:
        """The model's own scores of every item for the features ``user_id`` has in the store."""
        row = self.frame.set_index("user_id").loc[user_id].to_dict()
        return self.model.score_user_features(self.encoder.encode([row]))[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("online-features")
    rng = np.random.default_rng(7)
    rows = [
        (u, it)
        for j, u in enumerate(USERS)
        for it in rng.choice(
            ITEMS[:10] if j % 2 == 0 else ITEMS[10:], 4 if j % 2 == 0 else 7, replace=False
        )
    ]
    train = InteractionMatrix.from_frame(
        pd.DataFrame(rows, columns=["user_id", "item_id"]), user_ids=USERS, item_ids=ITEMS
    )
    frame = _user_frame()
    users = entity_features(frame, "user", USERS, None, n_bins=3)
    model = LightFMRecommender(
        no_components=8, epochs=20, learning_rate=0.05, hybrid_users=True
    ).fit(train, SideInfo(user_features=users.matrix))
    items = pd.DataFrame({"item_id": ITEMS, "title": [f"Title {i}" for i in ITEMS]})
    popularity = np.diff(train.matrix.tocsc().indptr).astype(np.float64)
    write_artifacts(tmp / "serving", model, train, items, popularity, users.encoder)
    # The Feast repo, as online_feature_store builds it: apply, then materialize the snapshot.
    user_path, item_path = tmp / "user_features", tmp / "item_features"
    for path, table in (
        (user_path, frame),
        (item_path, items[["item_id"]].assign(feature_timestamp=frame["feature_timestamp"][0])),
    ):
        path.mkdir()
        table.assign(events=1).to_parquet(path / "part-0.parquet", index=False)
    project = f"recs_of_{uuid.uuid4().hex[:8]}"
    feast = FeastResource(project=project, repo_dir=str(tmp / "repo"), redis_url="")
    store = feast.store()
    store.apply(feature_objects(user_path, item_path))
    store.materialize(AS_OF - timedelta(seconds=1), AS_OF + timedelta(seconds=1))
    yield World(
        train,
        frame,
        model,
        users.encoder,
        tmp / "serving",
        user_path,
        item_path,
        tmp / "repo",
        project,
    )


def _metrics() -> ServingMetrics:
    return ServingMetrics.create(CollectorRegistry())


def _count(metrics: ServingMetrics, result: str) -> float:
    assert metrics.registry is not None
    value = metrics.registry.get_sample_value("recs_online_features_total", {"result": result})
    return 0.0 if value is None else value


def _engine(
    world: World, cache: Cache, features: OnlineFeatureReader | None, **settings: object
) -> RecommendationEngine:
    metrics = features.metrics if features is not None else _metrics()
    return RecommendationEngine(
        world.serving(),
        cache,
        ServingSettings(**settings),  # type: ignore[arg-type]
        metrics,
        features,
    )


def _features(repo: Path, cache: Cache, **kw: object) -> OnlineFeatureReader:
    """Features of ``repo`` with their own metrics; a generous timeout unless ``kw`` sets one
    (the first read loads Feast's registry, on 2 shared cores)."""
    options: dict[str, object] = {"timeout_s": 5.0, **kw}
    return OnlineFeatureReader(str(repo), cache, _metrics(), **options)  # type: ignore[arg-type]


def _ids(answer) -> list[str]:
    return [it.item_id for it in answer.items]


def test_a_new_user_with_online_features_gets_the_models_list_for_them(world: World) -> None:
    cache = LRUCache(1000, 60)
    features = _features(world.repo, cache)
    assert features.open()
    engine = _engine(world, cache, features)
    popular = _ids(engine.recommend("ghost", k=5))
    assert set(popular) <= MENS  # men consume more: every popular item is a men's item

    answer = engine.recommend("new_f", k=5)
    assert answer.source == "features" and answer.model_version == "v-hybrid-1"
    # The model's own ranking for her features (score_user_features = LightFM predict with an
    # empty identity part, tests/test_models_feature_encoder.py): women's items, not popularity.
    expected = world.expected_scores("new_f")
    top = np.argsort(-expected, kind="stable")[:5]
    assert _ids(answer) == [ITEMS[i] for i in top]
    np.testing.assert_allclose([it.score for it in answer.items], expected[top], rtol=1e-5)
    assert set(_ids(answer)) <= WOMENS and _ids(answer) != popular
    assert set(_ids(engine.recommend("new_m", k=5))) <= MENS
    assert _count(features.metrics, "found") == 2

    # Her encoded vector is cached under the model version: the second answer skips Feast.
    assert cache.get(features.key(engine.namespace, "new_f")) not in (None, NO_ROW)
    again = engine.recommend("new_f", k=5)
    assert again.source == "features" and again.items == answer.items
    assert _count(features.metrics, "cache_hit") == 1 and _count(features.metrics, "found") == 2

    # No row in the store: popularity, and the absence is cached too.
    ghost = engine.recommend("ghost", k=5)
    assert ghost.source == "fallback" and _ids(ghost) == popular
    assert _count(features.metrics, "not_found") == 1 and _count(features.metrics, "cache_hit") == 2
    assert cache.get(features.key(engine.namespace, "ghost")) == NO_ROW

    # Known users are answered as before; /score and batches take the same path.
    u0 = engine.recommend("u0", k=5)
    idx, _ = world.model.recommend(np.array([0]), 5, exclude=world.train.matrix)
    assert u0.source == "model" and _ids(u0) == [ITEMS[i] for i in idx[0]]
    scores = engine.score("new_f", ["i3", "i15"])
    assert scores.source == "features"
    np.testing.assert_allclose(
        [s.score for s in scores.scores], expected[[3, 15]], rtol=1e-5, atol=1e-6
    )
    assert engine.score("ghost", ["i3"]).source == "fallback"
    batch = engine.recommend_batch(["u0", "new_f", "ghost"], k=5)
    assert [r.source for r in batch.results] == ["cache", "features", "fallback"]
    assert engine.metrics.registry is not None
    assert (
        engine.metrics.registry.get_sample_value(
            "recs_requests_total", {"endpoint": "recommend", "source": "features"}
        )
        == 3.0  # new_f twice, new_m once
    )
    features.close()


def test_models_without_the_encoder_or_without_features_keep_the_fallback(world: World) -> None:
    cache = LRUCache(100, 60)
    features = _features(world.repo, cache)
    plain = world.serving()
    plain.user_encoder = None  # e.g. a model exported before encoders were
    engine = RecommendationEngine(plain, cache, ServingSettings(), features.metrics, features)
    assert engine.recommend("new_f", k=3).source == "fallback"
    no_features = _engine(world, cache, None)
    assert no_features.recommend("new_f", k=3).source == "fallback"
    assert _count(features.metrics, "found") == 0  # the store was never asked
    features.close()


def test_unavailable_feast_falls_back_counts_and_logs_once(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="recs_assets.core.serving.online_feature_reader")
    # 1. RECS_FEAST_REPO names a folder without a Feast repo.
    cache = LRUCache(100, 60)
    metrics = _metrics()
    missing = online_feature_reader_from_settings(
        ServingSettings(feast_repo=str(tmp_path / "nowhere")), cache, metrics
    )
    assert missing is not None and not missing.available
    engine = RecommendationEngine(world.serving(), cache, ServingSettings(), metrics, missing)
    assert engine.recommend("new_f", k=3).source == "fallback"
    assert _count(metrics, "skipped") == 1
    missing.close()

    # 2. The online store (Redis) is down: the repo's registry, Redis on a port nobody serves.
    now = [0.0]
    down = tmp_path / "down"
    down.mkdir()
    cfg = FeastResource(project=world.project, repo_dir=str(world.repo)).repo_config()
    # retry=null: no client retries (redis-py's default retries a refused connection for ~3 s,
    # which the read's timeout would cut short: this case is about errors, the next about time)
    cfg["online_store"] = {"type": "redis", "connection_string": "127.0.0.1:1,db=0,retry=null"}
    (down / "feature_store.yaml").write_text(yaml.safe_dump(cfg))
    features = _features(down, LRUCache(100, 60), backoff_s=10.0, clock=lambda: now[0])
    engine = _engine(world, features.cache, features)
    caplog.clear()
    for _ in range(3):
        answer = engine.recommend("new_f", k=3)
        assert answer.source == "fallback" and len(answer.items) == 3
    assert engine.score("new_f", ["i1"]).source == "fallback"
    assert _count(features.metrics, "error") == 1 and _count(features.metrics, "skipped") == 3
    now[0] = 11.0  # after the backoff: tried again, failed again, still one log line
    assert engine.recommend("new_f", k=3).source == "fallback"
    assert _count(features.metrics, "error") == 2
    logged = [r for r in caplog.records if "online features read failed" in r.getMessage()]
    assert len(logged) == 1 and "ConnectionError" in logged[0].getMessage()
    assert features.cache.get(features.key(engine.namespace, "new_f")) is None  # not cached
    features.close()


def test_a_store_that_never_answers_times_out(world: World, tmp_path: Path) -> None:
    # A server that accepts connections and never replies (the kernel completes the handshake).
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)
    port = hole.getsockname()[1]
    slow = tmp_path / "slow"
    slow.mkdir()
    cfg = FeastResource(project=world.project, repo_dir=str(world.repo)).repo_config()
    cfg["online_store"] = {"type": "redis", "connection_string": f"127.0.0.1:{port},db=0"}
    (slow / "feature_store.yaml").write_text(yaml.safe_dump(cfg))
    features = _features(slow, LRUCache(100, 60), timeout_s=0.3)
    assert features.open()
    engine = _engine(world, features.cache, features)
    try:
        answer = engine.recommend("new_f", k=3)
        assert answer.source == "fallback"
        assert _count(features.metrics, "timeout") == 1
        assert engine.recommend("new_m", k=3).source == "fallback"  # in backoff: not waited on
        assert _count(features.metrics, "skipped") == 1
    finally:
        hole.close()  # resets the hung connection: the background read ends
        features.close()


def test_redis_online_store_and_shared_redis_cache(world: World, tmp_path: Path) -> None:
    prefix = f"recs-test-of-{uuid.uuid4().hex[:8]}"
    feast = FeastResource(
        project=f"{world.project}_r", repo_dir=str(tmp_path / "repo"), redis_url=REDIS_URL
    )
    store = feast.store()
    client = redis.Redis.from_url(REDIS_URL)
    caches: list[RedisCache] = []
    try:
        store.apply(feature_objects(world.user_path, world.item_path))
        store.materialize(AS_OF - timedelta(seconds=1), AS_OF + timedelta(seconds=1))
        cache = RedisCache(REDIS_URL, ttl_s=60)
        caches.append(cache)
        features = _features(tmp_path / "repo", cache, prefix=prefix)
        engine = _engine(world, cache, features, cache_prefix=prefix)
        answer = engine.recommend("new_f", k=5)
        expected = world.expected_scores("new_f")
        assert answer.source == "features"
        assert _ids(answer) == [ITEMS[i] for i in np.argsort(-expected, kind="stable")[:5]]
        key = features.key(engine.namespace, "new_f")
        assert key.startswith(f"{prefix}:v-hybrid-1:feat:") and client.ttl(key) > 0
        # Another worker whose Feast store is unreachable still finds her vector in Redis.
        other_cache = RedisCache(REDIS_URL, ttl_s=60)
        caches.append(other_cache)
        broken = _features(tmp_path / "nowhere", other_cache, prefix=prefix)
        other = _engine(world, other_cache, broken, cache_prefix=prefix)
        shared = other.recommend("new_f", k=5)
        assert shared.source == "features" and shared.items == answer.items
        assert _count(broken.metrics, "cache_hit") == 1
        features.close()
        broken.close()
    finally:
        store.teardown()
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
        for c in caches:
            c.close()
        client.close()


def test_the_service_answers_new_users_from_feast_and_never_500s(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.testclient import TestClient

    home = tmp_path / "bentoml"
    serving = world.serving()

    @asset(name="champion_model")
    def champion() -> ChampionModel:
        """The feature-based champion, with the encoder of its user features."""
        model = serving.recommender
        assert model is not None
        return ChampionModel(model, serving.train, "9", user_encoder=world.encoder)

    @asset(name="raw_items")
    def raw_items() -> pd.DataFrame:
        """The item catalog."""
        return pd.DataFrame({"item_id": ITEMS, "title": ITEMS})

    with model_store(home):  # the bento_model asset exports the encoder with the model
        result = materialize([champion, raw_items, bento_model])
        assert result.success
        exported = load_serving_model(result.output_for_node("bento_model"))
    assert exported.user_encoder == world.encoder and exported.version == "9"
    for name in ("RECS_REDIS_URL", "RECS_AB_CONFIG", "RECS_BENTO_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RECS_MODEL_POLL_S", "0")
    monkeypatch.setenv("RECS_EXPOSURE_LOG", "off")
    monkeypatch.setenv("RECS_FEAST_TIMEOUT_S", "5")
    for repo, source in ((world.repo, "features"), (tmp_path / "nowhere", "fallback")):
        monkeypatch.setenv("RECS_FEAST_REPO", str(repo))
        with model_store(home), TestClient(service_asgi(), raise_server_exceptions=False) as client:
            r = client.post("/recommend", json={"user_id": "new_f", "k": 5})
            assert r.status_code == 200 and r.json()["source"] == source, r.text
            if source == "features":
                assert {it["item_id"] for it in r.json()["items"]} <= WOMENS
            s = client.post("/score", json={"user_id": "new_f", "item_ids": ["i1", "i12"]})
            assert s.status_code == 200 and s.json()["source"] == source
            known = client.post("/recommend", json={"user_id": "u1", "k": 5})
            assert known.status_code == 200 and known.json()["source"] == "model"
