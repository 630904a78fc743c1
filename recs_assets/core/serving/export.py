"""Export a fitted ``Recommender`` into the BentoML model store, ready for ``bento/service.py``.

The BentoML model's folder is a serving folder (see ``recs_assets.core.serving.artifacts``); its labels
say which model version, Dagster run and data version it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bentoml
import numpy as np
import pandas as pd

from recs_assets.core.models.base import InteractionMatrix, Recommender, RecommenderError
from recs_assets.core.models.feature_encoder import FeatureEncoder
from recs_assets.core.serving.artifacts import ServingModel, write_artifacts

DEFAULT_MODEL_NAME = "recs_recommender"
REQUIRED_LABELS: tuple[str, ...] = ("model_version", "dagster_run_id", "data_version")


def export_model(
    model: Recommender,
    train: InteractionMatrix,
    item_meta: pd.DataFrame,
    popularity: np.ndarray,
    labels: dict[str, str],
    name: str = DEFAULT_MODEL_NAME,
    metadata: dict[str, Any] | None = None,
    user_encoder: FeatureEncoder | None = None,
) -> bentoml.Tag:
    """Save ``model`` with its id maps, training matrix, popularity and item metadata.

    Args:
        model: a fitted recommender whose shape matches ``train``.
        train: the interactions it was fitted on (used for exclude_seen and co-occurrence).
        item_meta: frame with ``item_id``, ``title`` and optionally ``categories``.
        popularity: fallback score per item of ``train``.
        labels: must contain ``model_version``, ``dagster_run_id`` and ``data_version``.
        name: BentoML model name.
        metadata: extra JSON-serializable metadata (e.g. evaluation metrics).
        user_encoder: the user-feature encoder of a feature-based model (``user_features.json``).

    Returns:
        The tag (``name:version``) of the new BentoML model.
    """
    missing = [k for k in REQUIRED_LABELS if not labels.get(k)]
    if missing:
        raise RecommenderError(f"export labels lack {missing}; got {sorted(labels)}")
    labels = {str(k): str(v) for k, v in labels.items()}
    with bentoml.models.create(name, labels=labels, metadata=dict(metadata or {})) as bento_model:
        info = write_artifacts(
            Path(bento_model.path), model, train, item_meta, popularity, user_encoder
        )
        bento_model.info.metadata.update(info)
    return bento_model.tag


def load_serving_model(tag: str, strict: bool = False) -> ServingModel:
    """Load the BentoML model ``tag`` from the local model store as a ``ServingModel``
    (``strict``: a recommender that fails to load raises instead of leaving popularity)."""
    stored = bentoml.models.get(tag)
    return serving_model_from_store(stored, strict)


def serving_model_from_store(stored: bentoml.Model, strict: bool = False) -> ServingModel:
    """A ``ServingModel`` from a stored BentoML model (labels kept; version from its labels)."""
    labels = {str(k): str(v) for k, v in stored.info.labels.items()}
    version = labels.get("model_version") or str(stored.tag.version)
    serving = ServingModel.load(stored.path, labels=labels, version=version, strict=strict)
    serving.labels.setdefault("bento_tag", str(stored.tag))
    return serving


class StartupModelError(RecommenderError):
    """The model the service is started with cannot be loaded; the message is one line."""


def check_startup_model(tag: str) -> ServingModel:
    """Load ``tag`` fully (serving files and recommender) or raise ``StartupModelError``.

    ``bento/service.py`` calls it once in the ``bentoml serve`` process, before any worker
    starts: a model that cannot load then stops the server at once with one line, instead of
    workers failing and restarting in a loop while the port accepts connections. (A champion
    that breaks later, behind the alias, is refused by the watcher and the old one stays.)
    """
    try:
        return load_serving_model(tag, strict=True)
    except Exception as exc:  # any failure to read the folder is the same answer: do not start
        raise StartupModelError(
            f"recs: cannot start, model {tag} does not load: {type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]}"
        ) from exc
