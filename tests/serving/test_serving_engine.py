"""Serving logic called directly: artifacts, export, answers, fallbacks, bad input, batch top-k."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from prometheus_client import CollectorRegistry
from serving_helpers import LABELS, model_store, tiny_items, tiny_train, write_serving_folder

from recs_assets.core.models.base import Recommender, RecommenderError, top_k
from recs_assets.core.models.ease import EASERecommender
from recs_assets.core.models.popularity import PopularityRecommender
from recs_assets.core.serving.artifacts import ServingModel
from recs_assets.core.serving.batch_scoring import (
    batch_top_k,
    most_active_users,
    recommendations_frame,
    top_k_desc,
    write_recommendations,
)
from recs_assets.core.serving.cache import LRUCache
from recs_assets.core.serving.engine import InputError, RecommendationEngine, UnknownItemError
from recs_assets.core.serving.export import export_model, load_serving_model
from recs_assets.core.serving.settings import ServingSettings, native_threads, serving_workers
from recs_assets.core.serving.telemetry import ServingMetrics


def engine_for(model: ServingModel, **settings: object) -> RecommendationEngine:
    return RecommendationEngine(
        model,
        LRUCache(100, 60),
        ServingSettings(**settings),  # type: ignore[arg-type]
        ServingMetrics.create(CollectorRegistry()),
    )


def ids(answer) -> list[str]:
    return [it.item_id for it in answer.items]


def metric(engine: RecommendationEngine, name: str, **labels: str) -> float:
    registry = engine.metrics.registry  # the test's own CollectorRegistry
    assert registry is not None
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.fixture
def pop_engine(tmp_path: Path) -> RecommendationEngine:
    return engine_for(write_serving_folder(tmp_path / "pop"))


def test_popularity_answers_exclude_seen_and_come_from_cache_second_time(pop_engine) -> None:
    # u3 saw i0, i1; the next most popular are i2 (3 users) then i3 (2 users)
    first = pop_engine.recommend("u3", k=2)
    assert ids(first) == ["i2", "i3"] and [it.score for it in first.items] == [3.0, 2.0]
    assert first.source == "model" and first.model_version == "v-test-1"
    assert first.items[0].title == "Title 2"
    again = pop_engine.recommend("u3", k=2)
    assert again.source == "cache" and again.items == first.items
    # without exclusion u3 gets the global top: i0, i1
    assert ids(pop_engine.recommend("u3", k=2, exclude_seen=False)) == ["i0", "i1"]
    assert metric(pop_engine, "recs_cache_total", result="hit") == 1.0
    assert metric(pop_engine, "recs_cache_total", result="miss") == 2.0


def test_user_who_saw_almost_everything_gets_a_short_list(pop_engine) -> None:
    # u0 saw i0..i4: only i5 is left, so k=3 returns one item rather than seen ones
    assert ids(pop_engine.recommend("u0", k=3)) == ["i5"]


def test_unknown_user_gets_popularity_fallback(pop_engine) -> None:
    answer = pop_engine.recommend("new-user", k=3)
    assert answer.source == "fallback" and ids(answer) == ["i0", "i1", "i2"]
    assert metric(pop_engine, "recs_fallbacks_total", reason="unknown_user") == 1.0


def test_context_is_part_of_the_cache_key(pop_engine) -> None:
    pop_engine.recommend("u3", k=2, context={"device": "tv"})
    assert pop_engine.recommend("u3", k=2, context={"device": "tv"}).source == "cache"
    assert pop_engine.recommend("u3", k=2, context={"device": "mobile"}).source == "model"


def test_batch_keeps_order_and_mixes_sources(pop_engine) -> None:
    pop_engine.recommend("u1", k=2)
    out = pop_engine.recommend_batch(["u3", "nobody", "u1"], k=2)
    assert [r.user_id for r in out.results] == ["u3", "nobody", "u1"]
    assert [r.source for r in out.results] == ["model", "fallback", "cache"]
    # u1 saw i0..i3: i4 (1 user) then i5 (0)
    assert ids(out.results[2]) == ["i4", "i5"]


def test_a_batch_is_capped_by_its_items_users_times_k(tmp_path: Path) -> None:
    engine = engine_for(write_serving_folder(tmp_path / "m"), max_batch_items=6)
    assert len(engine.recommend_batch(["u1", "u2", "u3"], k=2).results) == 3  # 6 items: allowed
    with pytest.raises(InputError, match=r"at most 6 items .*RECS_MAX_BATCH_ITEMS.*3 users x k=3"):
        engine.recommend_batch(["u1", "u2", "u3"], k=3)


def test_serving_workers_from_the_environment() -> None:
    assert serving_workers({}, cores=8) == 1  # local default: one worker, one in-process cache
    assert serving_workers({"RECS_DEPLOYMENT": "production"}, cores=8) == 8
    assert serving_workers({"RECS_DEPLOYMENT": "production", "RECS_WORKERS": "3"}, cores=8) == 3
    assert serving_workers({"RECS_WORKERS": "2"}, cores=8) == 2
    for bad in ("0", "-1", "two"):
        with pytest.raises(ValueError, match="RECS_WORKERS must be a positive integer"):
            serving_workers({"RECS_WORKERS": bad})


def test_native_threads_share_the_cores_among_workers() -> None:
    assert native_threads(1, {}, cores=2) == 2
    assert native_threads(2, {}, cores=2) == 1
    assert native_threads(3, {}, cores=2) == 1  # never zero
    assert native_threads(2, {"RECS_NATIVE_THREADS": "4"}, cores=2) == 4
    for bad in ("0", "-1", "two"):
        with pytest.raises(ValueError, match="RECS_NATIVE_THREADS must be a positive integer"):
            native_threads(1, {"RECS_NATIVE_THREADS": bad})


def test_bad_input_is_rejected_with_specifics(tmp_path: Path) -> None:
    engine = engine_for(write_serving_folder(tmp_path / "m"), max_batch_users=2, max_score_items=2)
    with pytest.raises(InputError, match="k must be between 1 and 100, got 0"):
        engine.recommend("u1", k=0)
    with pytest.raises(InputError, match="between 1 and 2 ids, got 3"):
        engine.recommend_batch(["u1", "u2", "u3"])
    with pytest.raises(InputError, match="between 1 and 2 ids, got 0"):
        engine.score("u1", [])
    with pytest.raises(UnknownItemError, match="unknown item_id 'x9'"):
        engine.similar_items("x9")
    with pytest.raises(UnknownItemError, match=r"\['x8'\] \(1 in all\)"):
        engine.score("u1", ["i0", "x8"])
    assert InputError("m").error_code == 400 and UnknownItemError("m").error_code == 404
    assert metric(engine, "recs_errors_total", endpoint="recommend", kind="bad_input") == 1.0


def test_similar_items_without_item_vectors_uses_cooccurrence(pop_engine) -> None:
    # i3 is consumed by {u0,u1}. cosine with i2 {u0,u1,u2} = 2/sqrt(2*3) = 0.816, with i1
    # {u0..u3} = 2/sqrt(8) = 0.707, with i4 {u0} = 1/sqrt(2) = 0.707 (tie: i1 is more popular),
    # with i0 = 2/sqrt(10) = 0.632; i5 never co-occurs (0).
    answer = pop_engine.similar_items("i3", k=5)
    assert answer.source == "fallback"
    assert ids(answer) == ["i2", "i1", "i4", "i0", "i5"]
    np.testing.assert_allclose(
        [it.score for it in answer.items],
        [2 / np.sqrt(6), 2 / np.sqrt(8), 1 / np.sqrt(2), 2 / np.sqrt(10), 0.0],
    )
    assert metric(pop_engine, "recs_fallbacks_total", reason="no_item_vectors") == 1.0


def test_similar_items_with_item_vectors_uses_the_model(tmp_path: Path) -> None:
    ease = EASERecommender(lam=1.0).fit(tiny_train())
    engine = engine_for(write_serving_folder(tmp_path / "ease", ease))
    answer = engine.similar_items("i2", k=3)
    expected_idx, _ = ease.similar_items(np.array([2]), 3)
    assert answer.source == "model"
    assert ids(answer) == [f"i{j}" for j in expected_idx[0]]
    assert engine.similar_items("i2", k=3).source == "cache"


def test_score_known_and_unknown_users(tmp_path: Path) -> None:
    ease = EASERecommender(lam=1.0).fit(tiny_train())
    engine = engine_for(write_serving_folder(tmp_path / "ease", ease))
    answer = engine.score("u3", ["i4", "i2"])
    expected = ease.score(np.array([3]), np.array([4, 2]))[0]
    assert answer.source == "model"
    np.testing.assert_allclose([s.score for s in answer.scores], expected, rtol=1e-6)
    cold = engine.score("stranger", ["i4", "i2"])  # popularity: i4 has 1 user, i2 has 3
    assert cold.source == "fallback" and [s.score for s in cold.scores] == [1.0, 3.0]


def test_model_that_fails_to_load_serves_popularity(tmp_path: Path, caplog) -> None:
    folder = tmp_path / "broken"
    write_serving_folder(folder)
    meta = json.loads((folder / "model" / "params.json").read_text())
    meta["name"] = "no-such-family"
    (folder / "model" / "params.json").write_text(json.dumps(meta))
    with caplog.at_level("ERROR"):
        model = ServingModel.load(folder, labels=dict(LABELS))
    assert model.recommender is None and "no-such-family" in (model.load_error or "")
    assert "failed to load" in caplog.text
    engine = engine_for(model)
    answer = engine.recommend("u3", k=2)
    assert answer.source == "fallback" and ids(answer) == ["i2", "i3"]  # still excludes seen
    assert engine.info().model_loaded is False
    assert metric(engine, "recs_fallbacks_total", reason="model_unavailable") == 1.0


def test_model_that_fails_to_score_serves_popularity(tmp_path: Path) -> None:
    ease = EASERecommender(lam=1.0).fit(tiny_train())
    engine = engine_for(write_serving_folder(tmp_path / "ease", ease))
    engine.model.recommender.B_[:] = np.nan  # a diverged model: every score is NaN
    answer = engine.recommend("u3", k=2)
    assert answer.source == "fallback" and ids(answer) == ["i2", "i3"]
    assert metric(engine, "recs_errors_total", endpoint="model", kind="model_error") == 1.0
    assert engine.score("u3", ["i0"]).source == "fallback"


def test_warm_fills_the_cache_for_active_users(pop_engine) -> None:
    train = pop_engine.model.train
    active = most_active_users(train, 2)
    assert train.user_ids[active].tolist() == ["u0", "u1"]  # 5 and 4 interactions
    assert pop_engine.warm(active, k=2) == 2
    assert pop_engine.recommend("u1", k=2).source == "cache"
    assert pop_engine.recommend("u2", k=2).source == "model"


def test_export_roundtrip_through_the_bentoml_store(tmp_path: Path) -> None:
    train = tiny_train()
    model = PopularityRecommender().fit(train)
    pop = np.arange(6, dtype=float)[::-1]
    with model_store(tmp_path / "home"):
        tag = export_model(model, train, tiny_items(), pop, LABELS)
        loaded = load_serving_model(str(tag))
        import bentoml

        stored = bentoml.models.get(tag)
        assert stored.info.labels == LABELS
        assert stored.info.metadata["n_interactions"] == 15
        with pytest.raises(RecommenderError, match="lack"):
            export_model(model, train, tiny_items(), pop, {"model_version": "x"})
    assert loaded.version == "v-test-1" and loaded.labels["bento_tag"] == str(tag)
    assert loaded.model_name == "popularity" and loaded.recommender is not None
    assert loaded.train.user_ids.tolist() == train.user_ids.tolist()
    assert (loaded.train.matrix != train.matrix).nnz == 0
    assert loaded.popular_order.tolist() == [0, 1, 2, 3, 4, 5]
    assert loaded.categories.tolist() == ["Action", "Comedy", "Drama|Action", "", "Comedy", "Drama"]


def test_export_validates_inputs(tmp_path: Path) -> None:
    train = tiny_train()
    model = PopularityRecommender().fit(train)
    from recs_assets.core.serving.artifacts import write_artifacts

    with pytest.raises(RecommenderError, match=r"shape \(5,\), expected \(6,\)"):
        write_artifacts(tmp_path / "a", model, train, tiny_items(), np.ones(5))
    with pytest.raises(RecommenderError, match="lacks columns \\['title'\\]"):
        write_artifacts(tmp_path / "b", model, train, pd.DataFrame({"item_id": ["i0"]}), np.ones(6))
    # items missing from the metadata get their id as title
    write_artifacts(tmp_path / "c", model, train, tiny_items().iloc[:4], np.ones(6))
    assert ServingModel.load(tmp_path / "c").titles.tolist()[4:] == ["i4", "i5"]


# ---- batch top-k against a slow obvious reference --------------------------------------------


class RandomFactors(Recommender):
    """Dot-product scores of fixed random factors (a stand-in factor model for batch tests)."""

    name = "random_factors"

    def __init__(self, n_users: int, n_items: int, dim: int, seed: int = 0) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self.U = rng.standard_normal((n_users, dim)).astype(np.float32)
        self.V = rng.standard_normal((n_items, dim)).astype(np.float32)
        self.n_users_, self.n_items_, self._fitted = n_users, n_items, True

    def fit(self, train, side=None):  # pragma: no cover - fixed factors
        return self

    def score(self, users, items=None):
        V = self.V if items is None else self.V[items]
        return self.U[users] @ V.T


def reference_top_k(scores: np.ndarray, exclude: sp.csr_matrix, k: int) -> list[list[int]]:
    out = []
    for u in range(scores.shape[0]):
        seen = set(exclude[u].indices.tolist())
        ranked = sorted(
            (j for j in range(scores.shape[1]) if j not in seen), key=lambda j: -scores[u, j]
        )
        out.append(ranked[:k])
    return out


def test_batch_top_k_matches_reference_loop_across_blocks() -> None:
    model = RandomFactors(37, 50, 8, seed=3)
    rng = np.random.default_rng(1)
    exclude = sp.random(37, 50, density=0.2, random_state=2, format="csr")
    exclude.data[:] = 1.0
    users = rng.permutation(37)
    items, scores = batch_top_k(model, users, k=7, exclude=exclude, block=5)
    full = model.score(np.arange(37))
    ref = reference_top_k(full, exclude, 7)
    assert items.tolist() == [ref[u] for u in users]
    np.testing.assert_allclose(scores, np.take_along_axis(full[users], items, axis=1), rtol=1e-6)


def test_batch_top_k_marks_missing_slots_and_frame_drops_them(tmp_path: Path) -> None:
    train = tiny_train()
    model = PopularityRecommender().fit(train)
    items, scores = batch_top_k(model, np.array([0, 4]), k=2, exclude=train.matrix)
    # u0 saw i0..i4: only i5 remains; u4 saw i0: i1 (4) then i2 (3)
    assert items.tolist() == [[5, -1], [1, 2]]
    assert scores[0, 1] == -np.inf
    frame = recommendations_frame(train, np.array([0, 4]), items, scores)
    assert frame[["user_id", "rank", "item_id"]].values.tolist() == [
        ["u0", 1, "i5"],
        ["u4", 1, "i1"],
        ["u4", 2, "i2"],
    ]
    path = write_recommendations(frame, tmp_path / "out" / "recs.parquet")
    assert pd.read_parquet(path).equals(frame)
    with pytest.raises(RecommenderError, match="k must be >= 1"):
        batch_top_k(model, np.array([0]), k=0)


@pytest.mark.parametrize("k", [1, 4, 9])
def test_top_k_desc_agrees_with_the_shared_top_k(k: int) -> None:
    rng = np.random.default_rng(k)
    scores = rng.standard_normal((6, 9))
    scores[rng.random((6, 9)) < 0.3] = -np.inf  # excluded entries sort last
    idx, sc = top_k_desc(scores.copy(), k)
    ref_idx, ref_sc = top_k(scores, k)
    np.testing.assert_array_equal(sc, ref_sc)
    finite = np.isfinite(ref_sc)  # order among several -inf is arbitrary in both
    np.testing.assert_array_equal(idx[finite], ref_idx[finite])
    # equal scores inside the list are ordered by column: all-equal row -> 0..k-1 when k = n
    tie_idx, _ = top_k_desc(np.zeros((1, 4)), 4)
    assert tie_idx.tolist() == [[0, 1, 2, 3]]
