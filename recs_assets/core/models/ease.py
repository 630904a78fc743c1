"""EASE: the closed-form linear item-item autoencoder of Steck (WWW 2019).

B = argmin ||X - X B||^2 + lambda ||B||^2 subject to diag(B) = 0, solved as
P = (X^T X + lambda I)^-1 and B_ij = -P_ij / P_jj (B_jj = 0). Scores are X_u B.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from recs_assets.core.models._helpers import check_finite, csr_from_state, csr_state, positive
from recs_assets.core.models.base import InteractionMatrix, Recommender, SideInfo


class EASERecommender(Recommender):
    """Embarrassingly shallow autoencoder; one hyper-parameter ``lam`` (L2 on B).

    Memory is O(n_items^2): fine up to a few tens of thousands of items.
    """

    name = "ease"

    def __init__(self, lam: float = 600.0, binary: bool = True) -> None:
        super().__init__()
        positive(self.name, lam=lam)
        self.lam = float(lam)
        self.binary = bool(binary)
        self.B_: np.ndarray = np.empty((0, 0), dtype=np.float32)
        self.X_: sp.csr_matrix = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, train: InteractionMatrix, side: SideInfo | None = None) -> Self:
        self._check_train(train)
        X = train.matrix.astype(np.float64)
        if self.binary:
            X = X.copy()
            X.data[:] = 1.0
        G = (X.T @ X).toarray()
        G[np.diag_indices_from(G)] += self.lam
        P = np.linalg.inv(G)
        B = -P / np.diag(P)[None, :]
        B[np.diag_indices_from(B)] = 0.0
        check_finite(self.name, "item-item weights", B)
        self.B_ = B.astype(np.float32)
        self.X_ = sp.csr_matrix(X, dtype=np.float32)
        self._fitted = True
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        users = self._check_users(users)
        B = self.B_ if items is None else self.B_[:, self._check_items(items)]
        return np.asarray(self.X_[users] @ B)

    def item_vectors(self) -> np.ndarray:
        """Columns of B: how each item is reconstructed from the others."""
        self._check_fitted()
        return self.B_.T

    def params(self) -> dict[str, Any]:
        return {"lam": self.lam, "binary": self.binary}

    def _state(self) -> dict[str, np.ndarray]:
        return {"B": self.B_, **csr_state("X", self.X_)}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.B_ = state["B"]
        self.X_ = csr_from_state("X", state)
