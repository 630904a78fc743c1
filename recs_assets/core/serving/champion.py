"""The contract between model selection and serving: what the ``champion_model`` asset holds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from recs_assets.core.models.base import InteractionMatrix, Recommender
from recs_assets.core.models.feature_encoder import FeatureEncoder


@dataclass(frozen=True)
class ChampionModel:
    """A fitted model chosen for serving, with the interactions it was fitted on.

    Attributes:
        model: the fitted recommender (any family with save/load).
        train: its training matrix with user and item id maps (shapes must match the model).
        version: model version reported by the service (e.g. the MLflow model version).
        gates: the quality-gate results the model was promoted on, as (gate, passed, value,
            threshold) rows; empty when it was not gated.
        user_encoder: the user-feature encoder of a feature-based model (exported with it).
    """

    model: Recommender
    train: InteractionMatrix
    version: str
    gates: tuple[tuple[str, bool, float, float], ...] = ()
    user_encoder: FeatureEncoder | None = None

    @property
    def passed_gates(self) -> bool:
        return bool(self.gates) and all(g[1] for g in self.gates)


def data_version(train: InteractionMatrix) -> str:
    """Content hash (12 hex digits) of a training matrix and its id maps."""
    h = hashlib.sha256()
    m = train.matrix
    for arr in (m.indptr, m.indices, m.data):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update("\x1f".join(map(str, train.user_ids)).encode())
    h.update("\x1f".join(map(str, train.item_ids)).encode())
    return h.hexdigest()[:12]


def item_popularity(train: InteractionMatrix) -> np.ndarray:
    """Distinct users per item (the fallback ranking for cold-start users)."""
    csc = train.matrix.tocsc()
    csc.eliminate_zeros()
    return np.diff(csc.indptr).astype(np.float64)
