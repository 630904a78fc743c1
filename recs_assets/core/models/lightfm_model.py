"""LightFM (Kula 2015) wrapper: WARP / BPR / logistic losses, pure CF or hybrid with side features.

Hybrid mode builds LightFM feature matrices as [identity | row-normalized side features], so every
user and item keeps its own embedding and shares the embeddings of its features. After fitting,
the learned representations (features @ embeddings, summed biases) are materialized per user and
item; scoring is then a plain dot product, and only those arrays are saved (no pickle). With user
side features the embeddings and biases of those features are kept too, so a user the model never
saw is scored from their feature row alone (``score_user_features``: LightFM's cold start, a
user-feature row whose identity part is empty).
"""

from __future__ import annotations

from typing import Any, Literal, Self

import numpy as np
import scipy.sparse as sp

from recs_assets.core.models._helpers import check_finite, positive
from recs_assets.core.models.base import InteractionMatrix, Recommender, RecommenderError, SideInfo

Loss = Literal["warp", "bpr", "logistic", "warp-kos"]


def identity_plus(side: sp.csr_matrix | None, n: int) -> sp.csr_matrix:
    """LightFM feature matrix [I_n | row-normalized side] (rows with no side features keep I)."""
    eye = sp.identity(n, format="csr", dtype=np.float32)
    if side is None:
        return eye
    if side.shape[0] != n:
        raise RecommenderError(f"side features have {side.shape[0]} rows, expected {n}")
    side = sp.csr_matrix(side, dtype=np.float32)
    sums = np.asarray(abs(side).sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    return sp.csr_matrix(sp.hstack([eye, sp.diags(1.0 / sums) @ side]), dtype=np.float32)


class LightFMRecommender(Recommender):
    """LightFM matrix factorization; ``hybrid_items``/``hybrid_users`` switch on side features.

    Item side features come from ``SideInfo.item_features`` or, when absent,
    ``SideInfo.item_categories``; user side features from ``SideInfo.user_features``.
    """

    name = "lightfm"

    def __init__(
        self,
        no_components: int = 128,
        learning_rate: float = 0.02,
        loss: Loss = "warp",
        max_sampled: int = 50,
        item_alpha: float = 1e-6,
        user_alpha: float = 1e-6,
        epochs: int = 30,
        num_threads: int = 1,
        random_state: int = 42,
        hybrid_items: bool = False,
        hybrid_users: bool = False,
    ) -> None:
        super().__init__()
        positive(
            self.name,
            no_components=no_components,
            learning_rate=learning_rate,
            max_sampled=max_sampled,
            epochs=epochs,
            num_threads=num_threads,
        )
        if loss not in ("warp", "bpr", "logistic", "warp-kos"):
            raise RecommenderError(f"{self.name}: unknown loss {loss!r}")
        if item_alpha < 0 or user_alpha < 0:
            raise RecommenderError(f"{self.name}: item_alpha and user_alpha must be >= 0")
        self.no_components = int(no_components)
        self.learning_rate = float(learning_rate)
        self.loss: Loss = loss
        self.max_sampled = int(max_sampled)
        self.item_alpha = float(item_alpha)
        self.user_alpha = float(user_alpha)
        self.epochs = int(epochs)
        self.num_threads = int(num_threads)
        self.random_state = int(random_state)
        self.hybrid_items = bool(hybrid_items)
        self.hybrid_users = bool(hybrid_users)
        self.user_repr_ = np.empty((0, 0), dtype=np.float32)
        self.user_bias_ = np.empty(0, dtype=np.float32)
        self.item_repr_ = np.empty((0, 0), dtype=np.float32)
        self.item_bias_ = np.empty(0, dtype=np.float32)
        # embeddings / biases of the user side features (rows n_users: of LightFM's user arrays)
        self.user_feature_repr_ = np.empty((0, 0), dtype=np.float32)
        self.user_feature_bias_ = np.empty(0, dtype=np.float32)

    def _features(
        self, train: InteractionMatrix, side: SideInfo | None
    ) -> tuple[sp.csr_matrix | None, sp.csr_matrix | None]:
        user_f = item_f = None
        if self.hybrid_items:
            raw = (
                None
                if side is None
                else (
                    side.item_features if side.item_features is not None else side.item_categories
                )
            )
            if raw is None:
                raise RecommenderError(
                    f"{self.name}: hybrid_items=True needs SideInfo.item_features or item_categories"
                )
            item_f = identity_plus(raw, train.n_items)
        if self.hybrid_users:
            if side is None or side.user_features is None:
                raise RecommenderError(
                    f"{self.name}: hybrid_users=True needs SideInfo.user_features"
                )
            user_f = identity_plus(side.user_features, train.n_users)
        return user_f, item_f

    def fit(self, train: InteractionMatrix, side: SideInfo | None = None) -> Self:
        from lightfm import LightFM

        self._check_train(train)
        user_f, item_f = self._features(train, side)
        model = LightFM(
            no_components=self.no_components,
            learning_rate=self.learning_rate,
            loss=self.loss,
            max_sampled=self.max_sampled,
            item_alpha=self.item_alpha,
            user_alpha=self.user_alpha,
            random_state=np.random.RandomState(self.random_state),
        )
        interactions = sp.coo_matrix(train.matrix, dtype=np.float32)
        interactions.data[:] = 1.0
        for epoch in range(self.epochs):
            model.fit_partial(
                interactions,
                user_features=user_f,
                item_features=item_f,
                epochs=1,
                num_threads=self.num_threads,
            )
            check_finite(
                self.name, f"item embeddings after epoch {epoch + 1}", model.item_embeddings
            )
        self.user_bias_, self.user_repr_ = (
            a.astype(np.float32) for a in model.get_user_representations(user_f)
        )
        self.item_bias_, self.item_repr_ = (
            a.astype(np.float32) for a in model.get_item_representations(item_f)
        )
        n = train.n_users
        self.user_feature_repr_ = model.user_embeddings[n:].astype(np.float32)
        self.user_feature_bias_ = model.user_biases[n:].astype(np.float32)
        for what, arr in (("user embeddings", self.user_repr_), ("item biases", self.item_bias_)):
            check_finite(self.name, what, arr)
        self._fitted = True
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        users = self._check_users(users)
        cols = slice(None) if items is None else self._check_items(items)
        s = self.user_repr_[users] @ self.item_repr_[cols].T
        return s + self.item_bias_[cols][None, :] + self.user_bias_[users][:, None]

    @property
    def n_user_features(self) -> int:
        """Number of user side features the model learned embeddings for (0: none)."""
        return int(self.user_feature_bias_.shape[0])

    def score_user_features(
        self, user_features: sp.csr_matrix, items: np.ndarray | None = None
    ) -> np.ndarray:
        """Scores of users the model never saw, from their side-feature rows alone.

        ``user_features``: (n, n_user_features), encoded like the training users' side features
        (``FeatureEncoder``); each row is L1-normalized as in training (``identity_plus``). This is
        LightFM's ``predict`` for a user-feature row [0 | row]: representation
        ``row @ feature embeddings``, bias ``row @ feature biases``. Returns (n, len(items) or
        n_items).
        """
        self._check_fitted()
        if self.n_user_features == 0:
            raise RecommenderError(f"{self.name}: the model has no user side features")
        if user_features.shape[1] != self.n_user_features:
            raise RecommenderError(
                f"{self.name}: user feature rows have {user_features.shape[1]} columns, "
                f"the model learned {self.n_user_features}"
            )
        cols = slice(None) if items is None else self._check_items(items)
        rows = sp.csr_matrix(user_features, dtype=np.float32)
        sums = np.asarray(abs(rows).sum(axis=1)).ravel()
        sums[sums == 0] = 1.0
        rows = sp.csr_matrix(sp.diags((1.0 / sums).astype(np.float32)) @ rows)
        repr_ = np.asarray(rows @ self.user_feature_repr_)
        bias = np.asarray(rows @ self.user_feature_bias_).ravel()
        s = repr_ @ self.item_repr_[cols].T
        return s + self.item_bias_[cols][None, :] + bias[:, None]

    def item_vectors(self) -> np.ndarray:
        self._check_fitted()
        return self.item_repr_

    def params(self) -> dict[str, Any]:
        return {
            "no_components": self.no_components,
            "learning_rate": self.learning_rate,
            "loss": self.loss,
            "max_sampled": self.max_sampled,
            "item_alpha": self.item_alpha,
            "user_alpha": self.user_alpha,
            "epochs": self.epochs,
            "num_threads": self.num_threads,
            "random_state": self.random_state,
            "hybrid_items": self.hybrid_items,
            "hybrid_users": self.hybrid_users,
        }

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "user_repr": self.user_repr_,
            "user_bias": self.user_bias_,
            "item_repr": self.item_repr_,
            "item_bias": self.item_bias_,
            "user_feature_repr": self.user_feature_repr_,
            "user_feature_bias": self.user_feature_bias_,
        }

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.user_repr_ = state["user_repr"]
        self.user_bias_ = state["user_bias"]
        self.item_repr_ = state["item_repr"]
        self.item_bias_ = state["item_bias"]
        # absent from models saved before user feature embeddings were kept
        d = self.user_repr_.shape[1] if self.user_repr_.ndim == 2 else 0
        self.user_feature_repr_ = state.get("user_feature_repr", np.empty((0, d), dtype=np.float32))
        self.user_feature_bias_ = state.get("user_feature_bias", np.empty(0, dtype=np.float32))


def lightfm_bpr(**params: Any) -> LightFMRecommender:
    """LightFM with the BPR loss (registry entry ``lightfm_bpr``); ``params`` override."""
    return LightFMRecommender(**{"loss": "bpr", **params})


def lightfm_hybrid(**params: Any) -> LightFMRecommender:
    """WARP LightFM with item category features (registry entry ``lightfm_hybrid``)."""
    return LightFMRecommender(**{"hybrid_items": True, **params})
