"""Content similarity (categories, title embeddings), MMR re-ranking and the ensemble's parts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from models_synthetic import make_blocks

from recs_assets.core.models._helpers import coordinate_search
from recs_assets.core.models.base import InteractionMatrix, RecommenderError, SideInfo
from recs_assets.core.models.content import ContentRecommender, TitleEmbedder
from recs_assets.core.models.ease import EASERecommender
from recs_assets.core.models.ensemble import WEIGHT_GRID, BlendRecommender, normalize_scores
from recs_assets.core.models.lightfm_model import LightFMRecommender, identity_plus
from recs_assets.core.models.rerank import jaccard_similarity, mmr_rerank, popularity_percentile
from recs_assets.core.models.rp3beta import RP3betaRecommender


def _tiny() -> tuple[InteractionMatrix, SideInfo]:
    # Items 0 and 1 are both "A", item 2 is "B", item 3 is "A" and "B". Only user 0 (item 0) and
    # user 1 (item 2) have interactions: item 1 and item 3 are cold-start items.
    train = InteractionMatrix(
        sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 1, 0]], dtype=np.float32)),
        np.array(["a", "b"], dtype=object),
        np.array(["0", "1", "2", "3"], dtype=object),
    )
    cats = sp.csr_matrix(np.array([[1, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float32))
    return train, SideInfo(item_categories=cats, category_names=("A", "B"))


def test_content_scores_cold_items_by_category_cosine() -> None:
    train, side = _tiny()
    model = ContentRecommender(top_k=3).fit(train, side)
    # User 0 holds item 0 ("A"): cosine to item 1 ("A") is 1, to item 2 ("B") 0, to item 3
    # ("A","B") 1/sqrt(2); item 0 itself is on the zero diagonal.
    np.testing.assert_allclose(
        model.score(np.array([0])), [[0.0, 1.0, 0.0, 1 / np.sqrt(2)]], atol=1e-6
    )
    top, _ = model.recommend(np.array([0, 1]), k=2, exclude=train.matrix)
    np.testing.assert_array_equal(top, [[1, 3], [3, 0]])
    sim_items, _ = model.similar_items(np.array([1]), k=1)
    assert sim_items[0, 0] == 0


def test_content_needs_its_side_information() -> None:
    train, _ = _tiny()
    with pytest.raises(RecommenderError, match="item_categories"):
        ContentRecommender().fit(train, SideInfo())
    with pytest.raises(RecommenderError, match="item_titles"):
        ContentRecommender(use_categories=False, use_titles=True).fit(train, SideInfo())


@pytest.mark.slow
def test_title_embeddings_from_the_packaged_sentence_model(tmp_path: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    titles = ["Toy Story (1995)", "Toy Story 2 (1999)", "Schindler's List (1993)"]
    cache = tmp_path / "titles.npz"
    vecs = TitleEmbedder(cache).encode(titles)
    assert vecs.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sims = vecs @ vecs.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # the sequel is closer than an unrelated film
    # A second embedder answers from the cache file alone (its model is never loaded).
    again = TitleEmbedder(cache)
    np.testing.assert_array_equal(again.encode(titles[::-1]), vecs[::-1])
    assert again._model is None


def test_lightfm_identity_plus_features() -> None:
    side = sp.csr_matrix(np.array([[1.0, 1.0], [0.0, 0.0]], dtype=np.float32))
    # Each row is [own indicator | side features scaled to sum 1]; row 1 has no side feature.
    np.testing.assert_allclose(identity_plus(side, 2).toarray(), [[1, 0, 0.5, 0.5], [0, 1, 0, 0]])
    train, _ = _tiny()
    with pytest.raises(RecommenderError, match="hybrid_items=True needs"):
        LightFMRecommender(hybrid_items=True, epochs=1).fit(train, SideInfo())
    with pytest.raises(RecommenderError, match="unknown loss"):
        LightFMRecommender(loss="hinge")  # type: ignore[arg-type]


def test_normalize_scores_by_rank_and_zscore() -> None:
    s = np.array([[3.0, 1.0, 2.0], [5.0, 5.0, 5.0]])
    # Ranks 3,1,2 of 3 -> (rank - 1) / 2; equal scores share the average rank 2 -> 0.5.
    np.testing.assert_allclose(normalize_scores(s, "rank"), [[1.0, 0.0, 0.5], [0.5, 0.5, 0.5]])
    z = normalize_scores(s, "zscore")
    np.testing.assert_allclose(z[0], [np.sqrt(1.5), -np.sqrt(1.5), 0.0])
    np.testing.assert_allclose(z[1], 0.0)


def test_coordinate_search_finds_a_known_optimum() -> None:
    # A separable objective peaking at raw weights (0.3, 2.0), both on the grid: one pass over
    # each coordinate reaches it; the returned weights are normalized to sum 1.
    def objective(w: np.ndarray) -> float:
        return -float((w[0] - 0.3) ** 2 + (w[1] - 2.0) ** 2)

    weights, best = coordinate_search(objective, 2, WEIGHT_GRID)
    np.testing.assert_allclose(weights, [0.3 / 2.3, 2.0 / 2.3])
    assert best == 0.0


def test_blend_with_fixed_weights_is_the_weighted_sum() -> None:
    blocks = make_blocks(seed=0)
    spec = [{"name": "ease", "params": {"lam": 5.0}}, {"name": "rp3beta", "params": {"top_k": 20}}]
    blend = BlendRecommender(spec, weights=[0.3, 0.7], normalization="zscore").fit(blocks.train)
    users = np.arange(10)
    ease = EASERecommender(lam=5.0).fit(blocks.train).score(users)
    rp3 = RP3betaRecommender(top_k=20).fit(blocks.train).score(users)
    expected = 0.3 * normalize_scores(ease, "zscore") + 0.7 * normalize_scores(rp3, "zscore")
    np.testing.assert_allclose(blend.score(users), expected, atol=1e-9)
    with pytest.raises(RecommenderError, match="unknown member family"):
        BlendRecommender([{"name": "nope"}])


def test_jaccard_and_popularity_percentile() -> None:
    cats = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=np.float32))
    # {a,b} vs {a}: 1/2; anything vs the empty set: 0.
    np.testing.assert_allclose(
        jaccard_similarity(cats), [[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 0.0]]
    )
    train = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0]], dtype=np.float32))
    # Counts 2, 1, 0 -> percentiles 1, 0.5, 0.
    np.testing.assert_allclose(popularity_percentile(train), [1.0, 0.5, 0.0])


def _mmr_reference(cand, scores, sim, pop, k, lam):  # noqa: ANN001, ANN202
    """Slow, obvious greedy MMR loop, one user at a time."""
    out = []
    for c, s in zip(cand, scores, strict=True):
        rel = (s - s.min()) / (s.max() - s.min()) if s.max() > s.min() else np.zeros_like(s)
        picked: list[int] = []
        for _ in range(k):
            best, best_v = None, -np.inf
            for j in range(len(c)):
                if j in picked:
                    continue
                max_sim = max((sim[c[j], c[p]] for p in picked), default=0.0)
                v = (1 - lam) * rel[j] - lam * (max_sim + pop[c[j]]) / 2
                if v > best_v:
                    best, best_v = j, v
            picked.append(best)
        out.append([c[p] for p in picked])
    return np.array(out)


@pytest.mark.parametrize("tradeoff", [0.0, 0.3, 0.8])
def test_mmr_matches_the_reference_loop(tradeoff: float) -> None:
    rng = np.random.default_rng(0)
    n_items = 30
    sim = rng.random((n_items, n_items))
    sim = (sim + sim.T) / 2
    pop = rng.random(n_items)
    cand = np.stack([rng.choice(n_items, 12, replace=False) for _ in range(8)])
    scores = -np.sort(-rng.random((8, 12)), axis=1)
    got = mmr_rerank(cand, scores, sim, pop, 5, tradeoff)
    np.testing.assert_array_equal(got, _mmr_reference(cand, scores, sim, pop, 5, tradeoff))
    if tradeoff == 0.0:
        np.testing.assert_array_equal(got, cand[:, :5])  # pure relevance keeps the order


def test_mmr_hand_example_and_excluded_candidates() -> None:
    # Candidates 0, 1, 2 with relevance 1, 0.5, 0; items 0 and 1 are identical (sim 1), item 2
    # is unrelated and unpopular. With tradeoff 0.5: first pick item 0 (0.5*1 - 0.5*(0+0)/2);
    # then item 1 is worth 0.5*0.5 - 0.5*(1+0)/2 = 0 and item 2 0.5*0 - 0 = 0 -> tie, the earlier
    # candidate (item 1) wins. With item 1 scored 0.8 (relevance 0.4) it is worth
    # 0.5*0.4 - 0.25 = -0.05 < 0 and item 2 goes second. A -inf (excluded) candidate is never
    # picked and leaves -1 padding.
    sim = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    pop = np.zeros(3)
    got = mmr_rerank(np.array([[0, 1, 2]]), np.array([[2.0, 1.0, 0.0]]), sim, pop, 3, 0.5)
    np.testing.assert_array_equal(got, [[0, 1, 2]])
    got = mmr_rerank(np.array([[0, 1, 2]]), np.array([[2.0, 0.8, 0.0]]), sim, pop, 3, 0.5)
    np.testing.assert_array_equal(got, [[0, 2, 1]])
    got = mmr_rerank(np.array([[0, 1, 2]]), np.array([[2.0, -np.inf, 0.0]]), sim, pop, 3, 0.0)
    np.testing.assert_array_equal(got, [[0, 2, -1]])
    with pytest.raises(RecommenderError, match="tradeoff"):
        mmr_rerank(np.array([[0]]), np.array([[1.0]]), sim, pop, 1, 1.5)
