"""EASE: the closed-form linear item-item autoencoder of Steck (WWW 2019).

B = argmin ||X - X B||^2 + lambda ||B||^2 subject to diag(B) = 0, solved as
P = (X^T X + lambda I)^-1 and B_ij = -P_ij / P_jj (B_jj = 0). Scores are X_u B.
"""

from __future__ import annotations

import os
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from recs_assets.core.models._helpers import (
    check_finite,
    csr_from_state,
    csr_state,
    positive,
    sequence_windows,
)
from recs_assets.core.models.base import InteractionMatrix, Recommender, RecommenderError, SideInfo

# float64 Gram matrix, its inverse and B while fitting, plus the float32 B that is kept
BYTES_PER_CELL = 8 + 8 + 8 + 4


def _size(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:,.1f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:,.1f} MiB"


def physical_memory() -> int:
    """Bytes of memory on this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class EASERecommender(Recommender):
    """Embarrassingly shallow autoencoder; one hyper-parameter ``lam`` (L2 on B).

    Memory is O(n_items^2): about ``BYTES_PER_CELL`` bytes per item pair while fitting. A fit
    whose matrices would not fit in ``max_memory_gb`` (0: half this machine's memory) is refused
    before it allocates anything, with a message that names the scalable family.
    """

    name = "ease"

    def __init__(
        self,
        lam: float = 600.0,
        binary: bool = True,
        max_memory_gb: float = 0.0,
        window: int = 0,
        window_weight: float = 1.0,
    ) -> None:
        super().__init__()
        positive(self.name, lam=lam, window_weight=window_weight)
        if window < 0 or window == 1:
            raise RecommenderError(f"{self.name}: window must be 0 (off) or >= 2, got {window}")
        if max_memory_gb < 0:
            raise RecommenderError(f"{self.name}: max_memory_gb must be >= 0, got {max_memory_gb}")
        self.lam = float(lam)
        self.binary = bool(binary)
        self.max_memory_gb = float(max_memory_gb)
        self.window = int(window)
        self.window_weight = float(window_weight)
        self.windows_ = 0  # sequence windows the fit added (0: none, or no interaction days)
        self.B_: np.ndarray = np.empty((0, 0), dtype=np.float32)
        self.X_: sp.csr_matrix = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, train: InteractionMatrix, side: SideInfo | None = None) -> Self:
        self._check_train(train)
        self._check_memory(train.n_items)
        X = train.matrix.astype(np.float64)
        if self.binary:
            X = X.copy()
            X.data[:] = 1.0
        days = None if side is None else side.interaction_days
        rows, self.windows_ = X, 0
        if self.window and days is not None and days.shape == X.shape:
            # G = X^T X + window_weight * W^T W, in one product (no second dense matrix)
            W = sequence_windows(days, X, self.window)
            rows, self.windows_ = sp.vstack([X, np.sqrt(self.window_weight) * W]), W.shape[0]
        G = (rows.T @ rows).toarray()
        G[np.diag_indices_from(G)] += self.lam
        P = np.linalg.inv(G)
        B = -P / np.diag(P)[None, :]
        B[np.diag_indices_from(B)] = 0.0
        check_finite(self.name, "item-item weights", B)
        self.B_ = B.astype(np.float32)
        self.X_ = sp.csr_matrix(X, dtype=np.float32)
        self._fitted = True
        return self

    def _check_memory(self, n_items: int) -> None:
        budget = self.max_memory_gb * 2**30 if self.max_memory_gb else physical_memory() / 2
        need = BYTES_PER_CELL * float(n_items) ** 2
        if need > budget:
            raise RecommenderError(
                f"{self.name}: a catalog of {n_items:,} items needs about {_size(need)} for its "
                f"dense item-item matrices, above the budget of {_size(budget)} "
                "(max_memory_gb; default half this machine's memory). Use `als` (matrix "
                "factorisation, memory linear in users and items) for a catalog this large."
            )

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
        return {
            "lam": self.lam,
            "binary": self.binary,
            "max_memory_gb": self.max_memory_gb,
            "window": self.window,
            "window_weight": self.window_weight,
        }

    def _state(self) -> dict[str, np.ndarray]:
        return {"B": self.B_, **csr_state("X", self.X_)}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.B_ = state["B"]
        self.X_ = csr_from_state("X", state)
