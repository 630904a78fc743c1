"""The files a served model is made of, and ``ServingModel``, which loads them back.

A serving folder (the BentoML model's directory) holds::

    model/params.json, model/state.npz   the fitted Recommender (Recommender.save)
    ids.json                             user and item id maps (external string ids)
    train.npz                            training interactions (CSR arrays) for exclude_seen
    popularity.npy                       fallback score per item (cold start, broken model)
    items.json                           title and categories per item, aligned with item ids
    serving.json                         format version and model family name
    user_features.json                   (feature-based models only) the user-feature encoder
                                         (``FeatureEncoder``): bins and vocabularies of training

No pickle anywhere. The model class is chosen from ``params.json``'s ``name`` through
``MODEL_CLASSES``; add a family there (or in ``recs_assets.core.models.registry``) to serve it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recs_assets.core.models._helpers import csr_from_state, csr_state
from recs_assets.core.models.base import InteractionMatrix, Recommender, RecommenderError
from recs_assets.core.models.ease import EASERecommender
from recs_assets.core.models.feature_encoder import FeatureEncoder
from recs_assets.core.models.popularity import PopularityRecommender
from recs_assets.core.serving.ann import ANN_FILE, AnnIndex, DotProductModel, ann_min_items

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
USER_FEATURES_FILE = "user_features.json"

MODEL_CLASSES: dict[str, type[Recommender]] = {
    PopularityRecommender.name: PopularityRecommender,
    EASERecommender.name: EASERecommender,
}

# What loading a broken or unknown model folder raises; anything else is a bug and propagates.
LOAD_ERRORS: tuple[type[BaseException], ...] = (
    RecommenderError,
    OSError,
    KeyError,
    ValueError,
    TypeError,
    NotImplementedError,
)


def model_class(name: str) -> type[Recommender]:
    """The ``Recommender`` class saved under family ``name``.

    Looks in ``MODEL_CLASSES`` first, then in ``recs_assets.core.models.registry.MODEL_FACTORIES`` for
    factories that are ``Recommender`` subclasses.
    """
    if name in MODEL_CLASSES:
        return MODEL_CLASSES[name]
    from recs_assets.core.models.registry import MODEL_FACTORIES

    factory = MODEL_FACTORIES.get(name)
    if isinstance(factory, type) and issubclass(factory, Recommender):
        return factory
    known = sorted(set(MODEL_CLASSES) | set(MODEL_FACTORIES))
    raise RecommenderError(f"no loadable model class for family {name!r}; known: {known}")


def write_artifacts(
    folder: Path,
    model: Recommender,
    train: InteractionMatrix,
    item_meta: pd.DataFrame,
    popularity: np.ndarray,
    user_encoder: FeatureEncoder | None = None,
    ann_items: int | None = None,
) -> dict[str, Any]:
    """Write everything ``ServingModel.load`` needs into ``folder``; returns summary metadata.

    ``item_meta`` needs ``item_id`` and ``title`` columns (``categories`` optional, ``|``-joined);
    items of ``train`` missing from it get their id as title. ``popularity`` is one finite score per
    item of ``train`` (higher is more popular). ``user_encoder``: how the model's user side
    features were encoded (feature-based models), so the service can encode a new user's online
    features; written as ``user_features.json``. A dot-product model (``ann.DotProductModel``)
    whose catalog has at least ``ann_items`` items (default ``$RECS_ANN_MIN_ITEMS``, 100,000;
    0: never) also gets an ANN index over its item vectors (``ann.faiss``), which serving then
    retrieves from.
    """
    popularity = np.asarray(popularity, dtype=np.float64)
    if popularity.shape != (train.n_items,):
        raise RecommenderError(
            f"popularity has shape {popularity.shape}, expected ({train.n_items},) "
            "(one score per item of the training matrix)"
        )
    if not np.all(np.isfinite(popularity)):
        raise RecommenderError("popularity contains NaN or inf")
    missing_cols = {"item_id", "title"} - set(item_meta.columns)
    if missing_cols:
        raise RecommenderError(f"item metadata lacks columns {sorted(missing_cols)}")
    if model.n_items_ != train.n_items or model.n_users_ != train.n_users:
        raise RecommenderError(
            f"model was fitted on {model.n_users_} users x {model.n_items_} items but the "
            f"training matrix has {train.n_users} x {train.n_items}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model")
    ids = {
        "user_ids": [str(u) for u in train.user_ids],
        "item_ids": [str(i) for i in train.item_ids],
    }
    (folder / "ids.json").write_text(json.dumps(ids))
    np.savez(folder / "train.npz", **csr_state("train", train.matrix))
    np.save(folder / "popularity.npy", popularity)
    meta = item_meta.assign(item_id=item_meta["item_id"].astype(str)).drop_duplicates("item_id")
    meta = meta.set_index("item_id").reindex(ids["item_ids"])
    titles = (
        meta["title"]
        .astype(object)
        .where(meta["title"].notna(), pd.Series(meta.index, index=meta.index))
    )
    cats = meta["categories"] if "categories" in meta.columns else pd.Series(None, index=meta.index)
    items = {
        "title": [str(t) for t in titles],
        "categories": [str(c) if isinstance(c, str) else "" for c in cats.astype(object)],
    }
    (folder / "items.json").write_text(json.dumps(items))
    info: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "model_name": model.name,
        "n_users": train.n_users,
        "n_items": train.n_items,
        "n_interactions": train.nnz,
        "items_without_metadata": int(meta["title"].isna().sum()),
    }
    if user_encoder is not None:
        (folder / USER_FEATURES_FILE).write_text(json.dumps(user_encoder.to_json()))
        info["user_features"] = {
            "n_features": user_encoder.n_features,
            "columns": list(user_encoder.column_names),
        }
    threshold = ann_min_items() if ann_items is None else ann_items
    if isinstance(model, DotProductModel) and threshold and train.n_items >= threshold:
        t0 = time.perf_counter()
        AnnIndex.build(model.item_vectors()).save(folder / ANN_FILE)
        info["ann"] = {"index": "faiss HNSW", "build_seconds": time.perf_counter() - t0}
    (folder / "serving.json").write_text(json.dumps(info, indent=2))
    return info


@dataclass
class ServingModel:
    """Everything a service worker serves from, loaded from a serving folder.

    Attributes:
        train: training interactions with the user/item id maps.
        popularity: fallback score per item.
        popular_order: item indices by descending popularity (ties by index).
        titles: title per item.
        categories: ``|``-joined categories per item (empty string when unknown).
        model_name: family name from ``params.json``.
        recommender: the fitted model, or None when it failed to load.
        load_error: why the model failed to load (None when it loaded).
        labels: labels of the BentoML model (model version, run id, data version).
        version: the model version reported in answers.
        user_encoder: the user-feature encoder of a feature-based model (None: the model scores
            known users only; unknown users get popularity).
        ann: the ANN index of a dot-product model over a large catalog (None: exact scoring).
    """

    train: InteractionMatrix
    popularity: np.ndarray
    popular_order: np.ndarray
    titles: np.ndarray
    categories: np.ndarray
    model_name: str
    recommender: Recommender | None = None
    load_error: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    version: str = "unknown"
    user_encoder: FeatureEncoder | None = None
    ann: AnnIndex | None = None

    @classmethod
    def load(
        cls,
        path: str | Path,
        labels: dict[str, str] | None = None,
        version: str | None = None,
        strict: bool = False,
    ) -> ServingModel:
        """Load a serving folder written by ``write_artifacts``.

        Missing id maps, training matrix, popularity or item files raise (nothing can be served
        without them). A model that fails to load raises when ``strict``; otherwise it is logged
        and kept as ``load_error``, and the service answers from popularity.
        """
        folder = Path(path)
        info = json.loads((folder / "serving.json").read_text())
        if info.get("format_version") != FORMAT_VERSION:
            raise RecommenderError(
                f"{folder} has serving format {info.get('format_version')!r}, "
                f"this code reads {FORMAT_VERSION}"
            )
        ids = json.loads((folder / "ids.json").read_text())
        with np.load(folder / "train.npz", allow_pickle=False) as z:
            matrix = csr_from_state("train", {k: z[k] for k in z.files})
        train = InteractionMatrix(
            matrix.astype(np.float32),
            np.asarray(ids["user_ids"], dtype=object),
            np.asarray(ids["item_ids"], dtype=object),
        )
        popularity = np.load(folder / "popularity.npy", allow_pickle=False)
        items = json.loads((folder / "items.json").read_text())
        labels = dict(labels or {})
        serving = cls(
            train=train,
            popularity=popularity,
            popular_order=np.argsort(-popularity, kind="stable"),
            titles=np.asarray(items["title"], dtype=object),
            categories=np.asarray(items["categories"], dtype=object),
            model_name=str(info.get("model_name", "unknown")),
            labels=labels,
            version=version or labels.get("model_version") or "unknown",
        )
        encoder_file = folder / USER_FEATURES_FILE
        if encoder_file.exists():
            try:
                serving.user_encoder = FeatureEncoder.from_json(
                    json.loads(encoder_file.read_text())
                )
            except LOAD_ERRORS as exc:  # new users then get popularity; known users are served
                logger.error(
                    "user-feature encoder in %s failed to load, new users get popularity: %s: %s",
                    folder,
                    type(exc).__name__,
                    exc,
                )
        try:
            serving.recommender = load_recommender(folder / "model")
            if (serving.recommender.n_users_, serving.recommender.n_items_) != matrix.shape:
                raise RecommenderError(
                    f"model shape ({serving.recommender.n_users_}, "
                    f"{serving.recommender.n_items_}) does not match the id maps {matrix.shape}"
                )
            ann_file = folder / ANN_FILE
            if ann_file.exists() and isinstance(serving.recommender, DotProductModel):
                serving.ann = _load_ann(ann_file, serving.recommender.n_items_)
        except LOAD_ERRORS as exc:
            if strict:
                raise
            serving.recommender = None
            serving.load_error = f"{type(exc).__name__}: {exc}"
            logger.error(
                "model %s in %s failed to load, serving popularity fallback: %s",
                serving.model_name,
                folder,
                serving.load_error,
            )
        return serving


def _load_ann(path: Path, n_items: int) -> AnnIndex | None:
    """The ANN index in ``path``, or None (exact scoring, slower but right) when it is unusable."""
    try:
        index = AnnIndex.load(path)
    except (RuntimeError, *LOAD_ERRORS) as exc:  # faiss reports a corrupt file as RuntimeError
        logger.error("ANN index %s failed to load, scoring every item: %s", path, exc)
        return None
    if index.n_items != n_items:
        logger.error(
            "ANN index %s holds %d items, the model %d: scoring every item",
            path,
            index.n_items,
            n_items,
        )
        return None
    return index


def load_recommender(folder: Path) -> Recommender:
    """Load the ``Recommender`` saved in ``folder`` by the class its ``params.json`` names."""
    meta = json.loads((folder / "params.json").read_text())
    return model_class(str(meta["name"])).load(folder)
