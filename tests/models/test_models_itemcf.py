"""EASE and RP3beta against slow, obvious reference loops and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recs_assets.core.models._helpers import sequence_windows
from recs_assets.core.models.base import InteractionMatrix, RecommenderError, SideInfo
from recs_assets.core.models.ease import EASERecommender
from recs_assets.core.models.rp3beta import RP3betaRecommender, prune_rows


def _matrix(dense: np.ndarray) -> InteractionMatrix:
    n_users, n_items = dense.shape
    return InteractionMatrix(
        sp.csr_matrix(dense.astype(np.float32)),
        np.array([f"u{u}" for u in range(n_users)], dtype=object),
        np.array([f"i{i}" for i in range(n_items)], dtype=object),
    )


def _random_dense(seed: int, shape: tuple[int, int] = (30, 12), p: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dense = (rng.random(shape) < p).astype(np.float64)
    dense[:, 0] = 1.0  # no empty column, so popularity discounts are defined everywhere
    return dense


def _ridge_per_column(G: np.ndarray, lam: float) -> np.ndarray:
    """B with diag(B) = 0, column by column: the ridge regression of item j on the others, from
    the Gram matrix ``G`` (the slow, obvious reference)."""
    n = G.shape[0]
    expected = np.zeros((n, n))
    for j in range(n):
        others = [i for i in range(n) if i != j]
        A = G[np.ix_(others, others)] + lam * np.eye(n - 1)
        expected[others, j] = np.linalg.solve(A, G[others, j])
    return expected


def test_ease_hand_example() -> None:
    # Items 0 and 1 always co-occur, item 2 is alone. G = X^T X = [[2,2,0],[2,2,0],[0,0,1]].
    # Column 0 is the ridge regression of x_0 on (x_1, x_2) with lambda 1:
    # b = ([[2,0],[0,1]] + I)^-1 [2, 0] = [2/3, 0]. So B[1,0] = 2/3 and user 0 (items 0, 1)
    # scores item 0 with 1 * B[0,0] + 1 * B[1,0] = 0 + 2/3.
    X = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    model = EASERecommender(lam=1.0).fit(_matrix(X))
    np.testing.assert_allclose(model.B_[:, 0], [0.0, 2 / 3, 0.0], atol=1e-6)
    np.testing.assert_allclose(model.score(np.array([0]))[0, 0], 2 / 3, atol=1e-6)
    assert model.B_[2, 2] == 0.0


def test_ease_matches_per_column_ridge_loop() -> None:
    # With diag(B) = 0 the EASE objective splits into one ridge regression per column j of x_j
    # on the other columns: the slow, obvious reference.
    X = _random_dense(1)
    lam = 3.0
    model = EASERecommender(lam=lam).fit(_matrix(X))
    np.testing.assert_allclose(model.B_, _ridge_per_column(X.T @ X, lam), atol=1e-5)


def test_rp3beta_matches_random_walk_loop() -> None:
    X = _random_dense(2)
    alpha, beta = 0.8, 0.5
    model = RP3betaRecommender(alpha=alpha, beta=beta, top_k=X.shape[1]).fit(_matrix(X))
    n_users, n_items = X.shape
    user_deg, item_deg = X.sum(axis=1), X.sum(axis=0)
    expected = np.zeros((n_items, n_items))
    for i in range(n_items):
        for j in range(n_items):
            if i == j:
                continue
            walk = 0.0
            for u in range(n_users):
                if X[u, i] and X[u, j]:
                    walk += (1 / item_deg[i]) ** alpha * (1 / user_deg[u]) ** alpha
            expected[i, j] = walk / item_deg[j] ** beta
    np.testing.assert_allclose(model.W_.toarray(), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.score(np.arange(n_users)), X @ expected, rtol=1e-4)


def test_prune_rows_keeps_k_largest() -> None:
    w = np.array([[0.1, 0.5, 0.3, 0.0], [4.0, 1.0, 2.0, 3.0]])
    # Row 0 keeps 0.5 and 0.3; row 1 keeps 4 and 3.
    np.testing.assert_array_equal(
        prune_rows(w, 2).toarray(), [[0.0, 0.5, 0.3, 0.0], [4.0, 0.0, 0.0, 3.0]]
    )


def test_bad_hyper_parameters_raise() -> None:
    with pytest.raises(RecommenderError, match="lam must be > 0"):
        EASERecommender(lam=0.0)
    with pytest.raises(RecommenderError, match="top_k must be >= 1"):
        RP3betaRecommender(top_k=0)
    with pytest.raises(RecommenderError, match="alpha and beta must be >= 0"):
        RP3betaRecommender(beta=-1.0)


def test_ease_refuses_a_catalog_its_dense_matrices_cannot_hold() -> None:
    X = _random_dense(3, shape=(40, 400))  # 400 items: 400^2 x 28 bytes = 4.3 MiB to fit
    with pytest.raises(
        RecommenderError, match=r"400 items needs about 4\.3 MiB.*budget of 1\.0 MiB.*Use `als`"
    ):
        EASERecommender(max_memory_gb=0.001).fit(_matrix(X))
    assert EASERecommender(max_memory_gb=0.01).fit(_matrix(X)).B_.shape == (400, 400)
    with pytest.raises(RecommenderError, match="max_memory_gb must be >= 0"):
        EASERecommender(max_memory_gb=-1)


def test_sequence_windows_cut_each_users_history_in_time_order() -> None:
    # user 0 has 6 interactions whose days order the items 4, 0, 5, 2, 1, 3; user 1 has two;
    # user 2 none. Windows of 4 overlap by half (stride 2): user 0 gets positions 0-3 and 2-5.
    days = np.zeros((3, 6))
    days[0, [4, 0, 5, 2, 1, 3]] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    days[1, [3, 1]] = [7.0, 7.0]  # a tie in time: ordered by item index
    w = sequence_windows(sp.csr_matrix(days), sp.csr_matrix(days > 0), 4).toarray()
    expected = np.zeros((3, 6))
    expected[0, [4, 0, 5, 2]] = 1
    expected[1, [5, 2, 1, 3]] = 1
    expected[2, [1, 3]] = 1
    np.testing.assert_array_equal(w, expected)
    # only the entries of the mask count: the part a model is fitted on
    mask = days > 0
    mask[0, 5] = False
    w = sequence_windows(sp.csr_matrix(days), sp.csr_matrix(mask), 4).toarray()
    assert w[:, 5].sum() == 0 and w[0, [4, 0, 2, 1]].sum() == 4
    with pytest.raises(RecommenderError, match="length >= 2"):
        sequence_windows(sp.csr_matrix(days), sp.csr_matrix(mask), 1)


def test_windowed_ease_adds_the_windows_gram_matrix() -> None:
    # With windows, G = X^T X + weight * W^T W: the same per-column ridge reference, on that G.
    rng = np.random.default_rng(4)
    X = _random_dense(4)
    days = sp.csr_matrix(X * rng.random(X.shape) * 100)
    lam, weight = 3.0, 2.0
    model = EASERecommender(lam=lam, window=4, window_weight=weight)
    model.fit(_matrix(X), SideInfo(interaction_days=days))
    W = sequence_windows(days, sp.csr_matrix(X), 4).toarray()
    assert model.windows_ == W.shape[0] > X.shape[0]
    expected = _ridge_per_column(X.T @ X + weight * W.T @ W, lam)
    np.testing.assert_allclose(model.B_, expected, atol=1e-5)
    # without interaction days it is plain EASE, and says so
    plain = EASERecommender(lam=lam, window=4).fit(_matrix(X))
    assert plain.windows_ == 0
    np.testing.assert_allclose(plain.B_, EASERecommender(lam=lam).fit(_matrix(X)).B_)
    with pytest.raises(RecommenderError, match="window must be 0"):
        EASERecommender(window=1)
