"""RP3beta: item-kNN from 3-step random walks, popularity-discounted (Paudel et al. 2017).

With P_ui the row-stochastic user->item and P_iu the item->user transition matrices, both raised
element-wise to ``alpha``, the item-item weight is W_ij = (P_iu P_ui)_ij / pop_j^beta, pruned to
the ``top_k`` largest per row. Scores are X_u W (as in Dacrema et al.'s reference code).
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from recs_assets.core.models._helpers import check_finite, csr_from_state, csr_state
from recs_assets.core.models.base import InteractionMatrix, Recommender, RecommenderError, SideInfo


def _row_normalize(m: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(m.sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / sums) @ m)


def prune_rows(w: np.ndarray, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row of dense ``w`` (ties by index), as CSR."""
    n_rows, n_cols = w.shape
    k = min(k, n_cols)
    keep = np.argpartition(-w, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(w, keep, axis=1)
    rows = np.repeat(np.arange(n_rows), k)
    out = sp.csr_matrix((vals.ravel(), (rows, keep.ravel())), shape=w.shape)
    out.eliminate_zeros()
    return out


class RP3betaRecommender(Recommender):
    """Random-walk item-kNN; ``alpha`` sharpens transitions, ``beta`` discounts popular items."""

    name = "rp3beta"

    def __init__(self, alpha: float = 0.8, beta: float = 0.6, top_k: int = 400) -> None:
        super().__init__()
        if alpha < 0 or beta < 0:
            raise RecommenderError(f"{self.name}: alpha and beta must be >= 0, got {alpha}, {beta}")
        if top_k < 1:
            raise RecommenderError(f"{self.name}: top_k must be >= 1, got {top_k}")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.top_k = int(top_k)
        self.W_: sp.csr_matrix = sp.csr_matrix((0, 0), dtype=np.float32)
        self.X_: sp.csr_matrix = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, train: InteractionMatrix, side: SideInfo | None = None) -> Self:
        self._check_train(train)
        X = sp.csr_matrix(train.matrix, dtype=np.float64)
        X.data[:] = 1.0
        p_ui = _row_normalize(X)
        p_iu = _row_normalize(sp.csr_matrix(X.T))
        if self.alpha != 1.0:
            p_ui.data **= self.alpha
            p_iu.data **= self.alpha
        pop = np.asarray(X.sum(axis=0)).ravel()
        discount = np.zeros_like(pop)
        discount[pop > 0] = pop[pop > 0] ** -self.beta
        W = (p_iu @ p_ui).toarray() * discount[None, :]
        np.fill_diagonal(W, 0.0)
        check_finite(self.name, "item-item weights", W)
        self.W_ = prune_rows(W, self.top_k).astype(np.float32)
        self.X_ = sp.csr_matrix(X, dtype=np.float32)
        self._fitted = True
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        users = self._check_users(users)
        W = self.W_ if items is None else self.W_[:, self._check_items(items)]
        return np.asarray((self.X_[users] @ W).toarray())

    def item_vectors(self) -> np.ndarray:
        self._check_fitted()
        return self.W_.toarray()

    def params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "beta": self.beta, "top_k": self.top_k}

    def _state(self) -> dict[str, np.ndarray]:
        return {**csr_state("W", self.W_), **csr_state("X", self.X_)}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.W_ = csr_from_state("W", state)
        self.X_ = csr_from_state("X", state)
