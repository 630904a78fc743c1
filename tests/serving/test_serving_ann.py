"""ANN retrieval: recall against exact scoring, exclusion of seen items, the serving folder that
carries an index, and the engine answering from it (or scoring every item when it is broken)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from prometheus_client import CollectorRegistry

from recs_assets.core.models.als import ImplicitMFRecommender
from recs_assets.core.models.base import InteractionMatrix
from recs_assets.core.phase1.synthetic import generate_synthetic
from recs_assets.core.serving.ann import (
    ANN_FILE,
    AnnIndex,
    ann_min_items,
    exact_top_k,
    recall_at_k,
)
from recs_assets.core.serving.artifacts import ServingModel, write_artifacts
from recs_assets.core.serving.batch_scoring import batch_top_k
from recs_assets.core.serving.cache import LRUCache
from recs_assets.core.serving.engine import RecommendationEngine
from recs_assets.core.serving.settings import ServingSettings
from recs_assets.core.serving.telemetry import ServingMetrics


def clustered(n: int, d: int, seed: int) -> np.ndarray:
    """Vectors around 32 centres, with varied norms, like fitted item factors."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(32, d))
    picks = rng.integers(0, 32, n)
    scale = rng.lognormal(0.0, 0.3, (n, 1))
    return ((centres[picks] + 0.7 * rng.normal(size=(n, d))) * scale).astype(np.float32)


def test_recall_against_exact_and_seen_items_left_out(tmp_path: Path) -> None:
    items, users = clustered(5_000, 16, 0), clustered(200, 16, 1)
    index = AnnIndex.build(items)
    exact = exact_top_k(users, items, 10)
    found, scores = index.top_k(users, 10)
    assert recall_at_k(found, exact) >= 0.95
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    # exclude each user's exact top 5: none of them comes back, the list is still full
    seen = sp.csr_matrix(
        (np.ones(200 * 5), exact[:, :5].ravel(), np.arange(0, 201 * 5, 5)), shape=(200, 5_000)
    )
    kept, _ = index.top_k(users, 10, exclude=seen)
    assert not any(set(k) & set(e[:5]) for k, e in zip(kept, exact, strict=True))
    assert (kept >= 0).all()
    loaded = AnnIndex.load(index.save(tmp_path / ANN_FILE))
    np.testing.assert_array_equal(loaded.top_k(users, 10)[0], found)


def test_ann_min_items_setting() -> None:
    assert ann_min_items({}) == 100_000
    assert ann_min_items({"RECS_ANN_MIN_ITEMS": "0"}) == 0
    with pytest.raises(ValueError, match="whole number"):
        ann_min_items({"RECS_ANN_MIN_ITEMS": "many"})
    with pytest.raises(ValueError, match=">= 0"):
        ann_min_items({"RECS_ANN_MIN_ITEMS": "-1"})


@pytest.fixture(scope="module")
def fitted() -> tuple[ImplicitMFRecommender, InteractionMatrix, pd.DataFrame]:
    data = generate_synthetic(n_users=400, n_items=1_500, n_interactions=20_000, seed=5)
    train = InteractionMatrix.from_frame(data.tables.interactions)
    model = ImplicitMFRecommender(factors=16, iterations=5).fit(train)
    return model, train, data.tables.items


def engine_for(model: ServingModel) -> RecommendationEngine:
    return RecommendationEngine(
        model,
        LRUCache(100, 60),
        ServingSettings(exploration_slots=0, trending_slots=0),
        ServingMetrics.create(CollectorRegistry()),
    )


def test_serving_folder_with_an_index_answers_from_it(tmp_path: Path, fitted) -> None:
    model, train, items = fitted
    popularity = np.diff(train.matrix.tocsc().indptr).astype(np.float64)
    info = write_artifacts(tmp_path / "ann", model, train, items, popularity, ann_items=1_000)
    assert info["ann"]["index"] == "faiss HNSW" and (tmp_path / "ann" / ANN_FILE).exists()
    small = write_artifacts(tmp_path / "exact", model, train, items, popularity, ann_items=0)
    assert "ann" not in small and not (tmp_path / "exact" / ANN_FILE).exists()

    serving = ServingModel.load(tmp_path / "ann")
    assert serving.ann is not None and serving.ann.n_items == train.n_items
    users = np.arange(train.n_users)
    exact, _ = batch_top_k(model, users, 10, exclude=train.matrix)
    retrieved, _ = serving.ann.top_k(model.user_vectors(users), 10, exclude=train.matrix)
    assert recall_at_k(retrieved, exact) >= 0.95
    engine = engine_for(serving)
    user = str(train.user_ids[3])
    answer = engine.recommend(user, k=10)
    assert answer.source == "model" and len(answer.items) == 10
    seen = set(train.item_ids[train.matrix[3].indices])
    assert not seen & {it.item_id for it in answer.items}
    assert [it.item_id for it in answer.items] == [str(train.item_ids[i]) for i in retrieved[3]]


def test_a_broken_index_falls_back_to_scoring_every_item(tmp_path: Path, fitted) -> None:
    model, train, items = fitted
    popularity = np.diff(train.matrix.tocsc().indptr).astype(np.float64)
    write_artifacts(tmp_path / "m", model, train, items, popularity, ann_items=1_000)
    (tmp_path / "m" / ANN_FILE).write_bytes(b"not a faiss index")
    serving = ServingModel.load(tmp_path / "m", strict=True)
    assert serving.ann is None and serving.recommender is not None
    answer = engine_for(serving).recommend(str(train.user_ids[0]), k=5)
    exact, _ = batch_top_k(model, np.array([0]), 5, exclude=train.matrix)
    assert [it.item_id for it in answer.items] == [str(train.item_ids[i]) for i in exact[0]]
