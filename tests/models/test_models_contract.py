"""The contract every model family honours, checked on block-diagonal data with a known answer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from models_synthetic import Blocks, make_blocks, recall_at

from recs_assets.core.models.als import ImplicitMFRecommender, implicit_bpr
from recs_assets.core.models.base import InteractionMatrix, Recommender, RecommenderError
from recs_assets.core.models.content import ContentRecommender
from recs_assets.core.models.ease import EASERecommender
from recs_assets.core.models.ensemble import BlendRecommender
from recs_assets.core.models.lightfm_model import LightFMRecommender
from recs_assets.core.models.ncf import NCFRecommender
from recs_assets.core.models.ranker import RankerRecommender
from recs_assets.core.models.rp3beta import RP3betaRecommender

NCF_FAST = {
    "factors": 8,
    "layers": (16, 8),
    "epochs": 30,
    "batch_size": 64,
    "learning_rate": 0.01,
    "loss": "bpr",
    "patience": 0,
    "validation_fraction": 0.0,
}

# name -> (factory, minimum recall@6 of the held-out items; a perfect model gets 1.0)
MODELS: dict[str, tuple[Callable[[], Recommender], float]] = {
    "ease": (lambda: EASERecommender(lam=5.0), 0.95),
    "rp3beta": (lambda: RP3betaRecommender(alpha=1.0, beta=0.3, top_k=20), 0.95),
    "lightfm_warp": (
        lambda: LightFMRecommender(no_components=8, learning_rate=0.05, epochs=30, max_sampled=10),
        0.9,
    ),
    "lightfm_bpr": (
        lambda: LightFMRecommender(no_components=8, learning_rate=0.05, loss="bpr", epochs=40),
        0.8,
    ),
    "lightfm_hybrid": (
        lambda: LightFMRecommender(
            no_components=8, learning_rate=0.05, epochs=20, hybrid_items=True, hybrid_users=True
        ),
        0.95,
    ),
    "ncf_gmf": (lambda: NCFRecommender("gmf", **NCF_FAST), 0.8),
    "ncf_mlp": (lambda: NCFRecommender("mlp", **NCF_FAST), 0.8),
    "ncf_neumf": (lambda: NCFRecommender("neumf", pretrain=True, **NCF_FAST), 0.8),
    "content": (lambda: ContentRecommender(use_categories=True, top_k=20), 0.95),
    "als": (
        lambda: ImplicitMFRecommender(factors=4, iterations=15, regularization=0.1),
        0.95,
    ),  # 4 blocks: rank 4
    "implicit_bpr": (lambda: implicit_bpr(factors=4, learning_rate=0.05, num_threads=1), 0.8),
    "ranker": (
        lambda: RankerRecommender(
            generators=[
                {"name": "ease", "params": {"lam": 5.0}},
                {"name": "rp3beta", "params": {"top_k": 20}},
            ],
            n_candidates=20,
            n_estimators=30,
            min_child_samples=5,
            num_threads=1,
        ),
        0.9,
    ),
    "blend": (
        lambda: BlendRecommender(
            [{"name": "ease", "params": {"lam": 5.0}}, {"name": "rp3beta", "params": {"top_k": 20}}]
        ),
        0.95,
    ),
}


@pytest.fixture(scope="module")
def blocks() -> Blocks:
    return make_blocks(seed=0)


@pytest.fixture(scope="module")
def fitted(blocks: Blocks) -> dict[str, Recommender]:
    return {name: factory().fit(blocks.train, blocks.side) for name, (factory, _) in MODELS.items()}


@pytest.mark.parametrize("name", list(MODELS))
def test_recommends_held_out_items_from_own_block(
    name: str, blocks: Blocks, fitted: dict[str, Recommender]
) -> None:
    model = fitted[name]
    users = np.arange(blocks.train.n_users)
    top, scores = model.recommend(users, k=6, exclude=blocks.train.matrix)
    assert top.shape == (len(users), 6)
    assert np.all(np.diff(scores, axis=1) <= 0), "recommendations must be best first"
    # Train items are excluded.
    assert not np.any(np.asarray(blocks.train.matrix[users[:, None], top].todense()))
    assert recall_at(top, blocks.test) >= MODELS[name][1]
    own_block = blocks.item_block[top[:, :3]] == blocks.user_block[:, None]
    assert own_block.mean() >= 0.9


@pytest.mark.parametrize("name", list(MODELS))
def test_score_shapes_and_item_subsets(name: str, fitted: dict[str, Recommender]) -> None:
    model = fitted[name]
    full = model.score(np.array([0, 5]))
    sub = model.score(np.array([0, 5]), np.array([3, 1]))
    assert full.shape == (2, model.n_items_)
    np.testing.assert_allclose(sub, full[:, [3, 1]], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(MODELS))
def test_save_load_round_trip(name: str, fitted: dict[str, Recommender], tmp_path: Path) -> None:
    model = fitted[name]
    model.save(tmp_path / name)
    assert not list((tmp_path / name).glob("*.pkl"))
    loaded = type(model).load(tmp_path / name)
    users = np.arange(model.n_users_)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))


@pytest.mark.parametrize("name", list(MODELS))
def test_unknown_indices_raise(name: str, fitted: dict[str, Recommender]) -> None:
    model = fitted[name]
    with pytest.raises(RecommenderError, match="user index out of range"):
        model.score(np.array([model.n_users_]))
    with pytest.raises(RecommenderError, match="item index out of range"):
        model.score(np.array([0]), np.array([-1]))
    with pytest.raises(RecommenderError, match="user index out of range"):
        model.recommend(np.array([-3]))


@pytest.mark.parametrize("name", list(MODELS))
def test_empty_and_nan_training_data_raise(name: str, blocks: Blocks) -> None:
    factory = MODELS[name][0]
    empty = blocks.train.with_matrix(sp.csr_matrix(blocks.train.matrix.shape, dtype=np.float32))
    with pytest.raises(RecommenderError, match="empty interaction matrix"):
        factory().fit(empty, blocks.side)
    bad = blocks.train.matrix.copy()
    bad.data[0] = np.nan
    with pytest.raises(RecommenderError, match="NaN"):
        factory().fit(blocks.train.with_matrix(bad), blocks.side)
    with pytest.raises(RecommenderError, match="not fitted"):
        factory().score(np.array([0]))


@pytest.mark.parametrize(
    "name", ["lightfm_warp", "ncf_neumf", "blend", "als", "implicit_bpr", "ranker"]
)
def test_fixed_seed_is_reproducible(
    name: str, blocks: Blocks, fitted: dict[str, Recommender]
) -> None:
    again = MODELS[name][0]().fit(blocks.train, blocks.side)
    users = np.arange(blocks.train.n_users)
    np.testing.assert_array_equal(again.score(users), fitted[name].score(users))


def test_unknown_external_id_raises(blocks: Blocks) -> None:
    train: InteractionMatrix = blocks.train
    with pytest.raises(RecommenderError, match="unknown user id 'nobody'"):
        train.user_index("nobody")
