"""A weighted blend of model families, the weights fitted on validation NDCG@10.

Each member's scores are normalized per user (``rank``: percentile of the item's rank among all
items; ``zscore``: standardized) and summed with non-negative weights. ``fit`` holds out
``validation_fraction`` of each user's training interactions, fits the members on the rest,
finds the weights by coordinate search on NDCG@10 of the held-out part, then refits the members on
all of ``train`` with those weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

from recs_assets.core.metrics import ndcg_at_k
from recs_assets.core.models._helpers import (
    coordinate_search,
    holdout_split,
    load_nested,
    member_specs,
    nested_state,
    usable_members,
)
from recs_assets.core.models.base import (
    InteractionMatrix,
    Recommender,
    RecommenderError,
    SideInfo,
    top_k,
)
from recs_assets.core.models.content import ContentRecommender
from recs_assets.core.models.ease import EASERecommender
from recs_assets.core.models.lightfm_model import LightFMRecommender
from recs_assets.core.models.ncf.model import NCFRecommender
from recs_assets.core.models.rp3beta import RP3betaRecommender

MEMBER_CLASSES: dict[str, type[Recommender]] = {
    cls.name: cls
    for cls in (
        EASERecommender,
        RP3betaRecommender,
        LightFMRecommender,
        NCFRecommender,
        ContentRecommender,
    )
}

# The default blend: the best item-CF model, RP3beta and hybrid WARP LightFM (defaults tuned on
# the P1 validation split, see docs/models.md).
DEFAULT_MEMBERS: tuple[dict[str, Any], ...] = (
    {"name": "ease", "params": {}},
    {"name": "rp3beta", "params": {}},
    {"name": "lightfm", "params": {"hybrid_items": True}},
)

WEIGHT_GRID: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0)


def normalize_scores(scores: np.ndarray, how: str) -> np.ndarray:
    """Per-row normalization: ``rank`` -> (rank - 1) / (n - 1) in [0, 1]; ``zscore``."""
    scores = np.asarray(scores, dtype=np.float64)
    if how == "rank":
        return (rankdata(scores, method="average", axis=1) - 1.0) / max(scores.shape[1] - 1, 1)
    if how == "zscore":
        std = scores.std(axis=1, keepdims=True)
        return (scores - scores.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)
    raise RecommenderError(f"unknown score normalization {how!r} (rank, zscore)")


class BlendRecommender(Recommender):
    """Score blend of ``members`` (list of {"name": family, "params": {...}}; default
    ``DEFAULT_MEMBERS``).

    ``weights`` fixes the blend weights (no search); otherwise they are fitted in ``fit``.
    """

    name = "blend"

    def __init__(
        self,
        members: Sequence[Mapping[str, Any]] | None = None,
        weights: Sequence[float] | None = None,
        normalization: str = "zscore",
        validation_fraction: float = 0.2,
        seed: int = 42,
    ) -> None:
        super().__init__()
        members = member_specs(
            self.name,
            "member family",
            DEFAULT_MEMBERS if members is None else members,
            MEMBER_CLASSES,
        )
        if weights is not None and (len(weights) != len(members) or min(weights) < 0):
            raise RecommenderError(f"{self.name}: need one non-negative weight per member")
        if not 0.0 < validation_fraction < 1.0:
            raise RecommenderError(f"{self.name}: validation_fraction must be in (0, 1)")
        normalize_scores(np.zeros((1, 2)), normalization)
        self.members = members
        self.weights = None if weights is None else [float(w) for w in weights]
        self.normalization = normalization
        self.validation_fraction = float(validation_fraction)
        self.seed = int(seed)
        self.models_: list[Recommender] = []
        self.validation_ndcg_: float | None = None
        self.member_validation_ndcg_: list[float] = []

    def _new_members(self) -> list[Recommender]:
        return [MEMBER_CLASSES[s["name"]](**s["params"]) for s in self.members]

    def _blend(
        self, models: Sequence[Recommender], weights: Sequence[float], users: np.ndarray
    ) -> np.ndarray:
        out = np.zeros((len(users), self.n_items_))
        for m, w in zip(models, weights, strict=True):
            if w:
                out += w * normalize_scores(m.score(users), self.normalization)
        return out

    def fit(self, train: InteractionMatrix, side: SideInfo | None = None) -> Self:
        self._check_train(train)
        self.members = usable_members(self.members, side)
        if self.weights is None:
            fit_x, val_x = holdout_split(train.matrix, self.validation_fraction, self.seed)
            part = train.with_matrix(fit_x)
            models = [m.fit(part, side) for m in self._new_members()]
            users = np.flatnonzero(np.diff(sp.csr_matrix(val_x).indptr) > 0)
            normed = [normalize_scores(m.score(users), self.normalization) for m in models]
            ex = sp.csr_matrix(fit_x)[users]
            mask_rows = np.repeat(np.arange(len(users)), np.diff(ex.indptr))
            relevant = sp.csr_matrix(val_x)[users]

            def objective(w: np.ndarray) -> float:
                s = sum(wj * nj for wj, nj in zip(w, normed, strict=True) if wj)
                s = np.array(s, dtype=np.float64)
                s[mask_rows, ex.indices] = -np.inf
                return ndcg_at_k(top_k(s, 10)[0], relevant)

            eye = np.eye(len(models))
            self.member_validation_ndcg_ = [objective(eye[j]) for j in range(len(models))]
            weights, self.validation_ndcg_ = coordinate_search(objective, len(models), WEIGHT_GRID)
            self.weights = weights.tolist()
        self.models_ = [m.fit(train, side) for m in self._new_members()]
        self._fitted = True
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        users = self._check_users(users)
        assert self.weights is not None
        s = self._blend(self.models_, self.weights, users)
        return s if items is None else s[:, self._check_items(items)]

    def params(self) -> dict[str, Any]:
        return {
            "members": self.members,
            "weights": self.weights,
            "normalization": self.normalization,
            "validation_fraction": self.validation_fraction,
            "seed": self.seed,
        }

    def _state(self) -> dict[str, np.ndarray]:
        return nested_state(self.models_, "m")

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.models_ = self._new_members()
        load_nested(self.models_, state, "m", (self.n_users_, self.n_items_))
