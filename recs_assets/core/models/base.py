"""The one interface every recommender in recs implements, and the data it consumes.

Models take matrices and id maps, never file paths or Dagster contexts. Indices are dense
positions in an ``InteractionMatrix``'s id maps; external ids appear only at the edges.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recs_assets.core.models.attributes import Attributes


class RecommenderError(ValueError):
    """Raised for unusable input: empty or degenerate data, NaN, unknown ids, unfitted models."""


@dataclass(frozen=True)
class InteractionMatrix:
    """A users x items implicit-feedback matrix together with its id maps.

    Attributes:
        matrix: CSR matrix of shape (n_users, n_items), float32 weights (1.0 per interaction
            unless a weight column was used); duplicates are summed.
        user_ids: external user id of each row (object array of str).
        item_ids: external item id of each column (object array of str).
    """

    matrix: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    _user_index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _item_index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.matrix.shape != (len(self.user_ids), len(self.item_ids)):
            raise RecommenderError(
                f"matrix shape {self.matrix.shape} does not match id maps "
                f"({len(self.user_ids)} users, {len(self.item_ids)} items)"
            )
        if not self._user_index:
            self._user_index.update({str(u): i for i, u in enumerate(self.user_ids)})
        if not self._item_index:
            self._item_index.update({str(t): i for i, t in enumerate(self.item_ids)})

    @property
    def n_users(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz)

    def user_index(self, user_id: str) -> int:
        try:
            return self._user_index[str(user_id)]
        except KeyError:
            raise RecommenderError(f"unknown user id {user_id!r}") from None

    def item_index(self, item_id: str) -> int:
        try:
            return self._item_index[str(item_id)]
        except KeyError:
            raise RecommenderError(f"unknown item id {item_id!r}") from None

    def has_user(self, user_id: str) -> bool:
        return str(user_id) in self._user_index

    def has_item(self, item_id: str) -> bool:
        return str(item_id) in self._item_index

    def with_matrix(self, matrix: sp.csr_matrix) -> InteractionMatrix:
        """Same id maps, another matrix (e.g. the test part of a split)."""
        return InteractionMatrix(
            sp.csr_matrix(matrix, dtype=np.float32),
            self.user_ids,
            self.item_ids,
            self._user_index,
            self._item_index,
        )

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        *,
        user_ids: Sequence[str] | None = None,
        item_ids: Sequence[str] | None = None,
        user_col: str = "user_id",
        item_col: str = "item_id",
        weight_col: str | None = None,
    ) -> InteractionMatrix:
        """Build from a long frame of (user, item[, weight]) rows.

        When ``user_ids``/``item_ids`` are given they fix the id maps (rows with other ids raise);
        otherwise the maps are the sorted distinct ids of ``df``.
        """
        users = df[user_col].astype(str).to_numpy()
        items = df[item_col].astype(str).to_numpy()
        u_map = (
            np.array(sorted(set(users)), dtype=object)
            if user_ids is None
            else np.asarray([str(u) for u in user_ids], dtype=object)
        )
        i_map = (
            np.array(sorted(set(items)), dtype=object)
            if item_ids is None
            else np.asarray([str(i) for i in item_ids], dtype=object)
        )
        u_pos = pd.Index(u_map).get_indexer(users)
        i_pos = pd.Index(i_map).get_indexer(items)
        if (u_pos < 0).any() or (i_pos < 0).any():
            raise RecommenderError(
                f"{int((u_pos < 0).sum())} rows with unknown user ids and "
                f"{int((i_pos < 0).sum())} rows with unknown item ids"
            )
        w = (
            np.ones(len(df), dtype=np.float32)
            if weight_col is None
            else df[weight_col].to_numpy(dtype=np.float32)
        )
        m = sp.csr_matrix((w, (u_pos, i_pos)), shape=(len(u_map), len(i_map)), dtype=np.float32)
        m.sum_duplicates()
        return cls(m, u_map, i_map)


@dataclass(frozen=True)
class SideInfo:
    """Optional side information aligned with an ``InteractionMatrix``'s id maps.

    Attributes:
        user_features: (n_users, n_user_features) sparse features, or None.
        item_features: (n_items, n_item_features) sparse features, or None.
        item_categories: (n_items, n_categories) binary CSR of item categories, or None.
        category_names: names of the columns of ``item_categories``.
        item_titles: title per item (for text embeddings), or None.
        user_groups: per-user segment labels by segment name (e.g. {"gender": array}), or None.
        interaction_days: (n_users, n_items) CSR whose entries are the day (days since the epoch,
            float) of each training interaction, for time-aware models; None when unknown.
        interaction_ratings: (n_users, n_items) CSR whose entries are the rating of each rated
            training interaction (explicit feedback, on the source's declared scale); None when
            the data carries no ratings. Entries are only where a rating was given.
        user_attributes, item_attributes: dense per-entity attributes for tree models (the
            ranker), e.g. from a point-in-time feature-store snapshot; None when unknown.
        split: the protocol the training data was split by (``stratified``, ``temporal``...),
            so a model can learn from a validation split of the same shape; None when unknown.
    """

    user_features: sp.csr_matrix | None = None
    item_features: sp.csr_matrix | None = None
    item_categories: sp.csr_matrix | None = None
    category_names: tuple[str, ...] = ()
    item_titles: tuple[str, ...] | None = None
    user_groups: dict[str, np.ndarray] | None = None
    interaction_days: sp.csr_matrix | None = None
    interaction_ratings: sp.csr_matrix | None = None
    user_attributes: Attributes | None = None
    item_attributes: Attributes | None = None
    split: str | None = None


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top ``k`` of a dense score block, best first.

    Returns (indices, scores), both of shape (n_rows, min(k, n_cols)). Uses argpartition then a
    sort of only the k winners. ``-inf`` marks excluded entries; they sort last.
    """
    n_cols = scores.shape[1]
    k = min(k, n_cols)
    if k <= 0:
        return np.empty((scores.shape[0], 0), dtype=np.int64), np.empty((scores.shape[0], 0))
    if k < n_cols:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(n_cols), (scores.shape[0], 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(part_scores, order, axis=1)


class Recommender(ABC):
    """Common interface of every model family.

    Subclasses implement ``fit`` and ``score`` (and ``_state``/``_from_state`` for persistence);
    ``recommend`` and ``similar_items`` have vectorized defaults.
    """

    name: ClassVar[str] = "base"
    block_size: ClassVar[int] = 2048

    def __init__(self) -> None:
        self.n_users_: int = 0
        self.n_items_: int = 0
        self._fitted = False

    # ---- training -------------------------------------------------------------------------
    @abstractmethod
    def fit(self, train: InteractionMatrix, side: SideInfo | None = None) -> Self:
        """Learn from ``train`` (n_users x n_items). Returns self."""

    def _check_train(self, train: InteractionMatrix) -> None:
        if train.nnz == 0 or train.n_users == 0 or train.n_items == 0:
            raise RecommenderError(
                f"{self.name}: cannot train on an empty interaction matrix "
                f"({train.n_users} users, {train.n_items} items, {train.nnz} interactions)"
            )
        data = train.matrix.data
        if not np.all(np.isfinite(data)):
            raise RecommenderError(f"{self.name}: interaction weights contain NaN or inf")
        self.n_users_, self.n_items_ = train.n_users, train.n_items

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise RecommenderError(f"{self.name}: model is not fitted")

    def _check_users(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        if users.size and (users.min() < 0 or users.max() >= self.n_users_):
            raise RecommenderError(
                f"{self.name}: user index out of range [0, {self.n_users_}): "
                f"{users[(users < 0) | (users >= self.n_users_)][:5].tolist()}"
            )
        return users

    def _check_items(self, items: np.ndarray) -> np.ndarray:
        items = np.asarray(items, dtype=np.int64)
        if items.size and (items.min() < 0 or items.max() >= self.n_items_):
            raise RecommenderError(
                f"{self.name}: item index out of range [0, {self.n_items_}): "
                f"{items[(items < 0) | (items >= self.n_items_)][:5].tolist()}"
            )
        return items

    # ---- scoring --------------------------------------------------------------------------
    @abstractmethod
    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """Scores of ``users`` (1-d index array) for ``items`` (all items when None).

        Returns a float array of shape (len(users), len(items) or n_items); higher is better.
        """

    def recommend(
        self,
        users: np.ndarray,
        k: int = 10,
        exclude: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for each of ``users``, best first, in blocks.

        ``exclude`` is an (n_users x n_items) matrix whose non-zeros are removed from each
        user's ranking (typically the training interactions). Returns (items, scores) arrays of
        shape (len(users), k).
        """
        self._check_fitted()
        users = self._check_users(users)
        out_idx = np.empty((len(users), min(k, self.n_items_)), dtype=np.int64)
        out_sc = np.empty((len(users), min(k, self.n_items_)), dtype=np.float64)
        for start in range(0, len(users), self.block_size):
            block = users[start : start + self.block_size]
            s = np.asarray(self.score(block), dtype=np.float64)
            if exclude is not None:
                ex = exclude[block]
                rows = np.repeat(np.arange(len(block)), np.diff(ex.indptr))
                s[rows, ex.indices] = -np.inf
            idx, sc = top_k(s, k)
            out_idx[start : start + len(block)] = idx
            out_sc[start : start + len(block)] = sc
        return out_idx, out_sc

    def similar_items(self, items: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` most similar items to each of ``items`` (the item itself excluded).

        Default: cosine similarity of item embeddings from ``item_vectors``.
        """
        self._check_fitted()
        items = self._check_items(items)
        vecs = self.item_vectors()
        norms = np.linalg.norm(vecs, axis=1)
        norms[norms == 0] = 1.0
        unit = vecs / norms[:, None]
        sims = unit[items] @ unit.T
        sims[np.arange(len(items)), items] = -np.inf
        return top_k(sims, k)

    def item_vectors(self) -> np.ndarray:
        """Dense item representation (n_items x d) used by ``similar_items``."""
        raise NotImplementedError(f"{self.name} has no item vectors")

    # ---- persistence (no pickle: npz arrays + json params) ---------------------------------
    def params(self) -> dict[str, Any]:
        """Hyper-parameters, JSON-serializable."""
        return {}

    def _state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError(f"{self.name} cannot be saved")

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError(f"{self.name} cannot be loaded")

    def save(self, path: str | Path) -> Path:
        """Write ``params.json`` and ``state.npz`` into the folder ``path``."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "name": self.name,
            "params": self.params(),
            "n_users": self.n_users_,
            "n_items": self.n_items_,
        }
        (path / "params.json").write_text(json.dumps(meta, indent=2))
        np.savez(path / "state.npz", **self._state())
        return path

    @classmethod
    def load(cls, path: str | Path) -> Self:
        path = Path(path)
        meta = json.loads((path / "params.json").read_text())
        if meta["name"] != cls.name:
            raise RecommenderError(f"{path} holds a {meta['name']!r} model, not {cls.name!r}")
        model = cls(**meta["params"])
        model.n_users_, model.n_items_ = meta["n_users"], meta["n_items"]
        with np.load(path / "state.npz", allow_pickle=False) as z:
            model._load_state({k: z[k] for k in z.files})
        model._fitted = True
        return model
