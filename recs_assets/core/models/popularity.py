"""Popularity: recommend the items with the most training interactions (the baseline of P1).

With ``segment`` set, popularity is counted within the user's segment (e.g. per gender) from
``SideInfo.user_groups[segment]``; users without a segment label get global popularity. Within a
segment, ties are broken by global popularity.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from recs_assets.core.models._helpers import days_on
from recs_assets.core.models.base import InteractionMatrix, Recommender, RecommenderError, SideInfo


class PopularityRecommender(Recommender):
    """Scores every item by its training count, the same for every user (or per segment).

    Args:
        segment: name of a ``SideInfo.user_groups`` entry to count popularity per group, or None.
        use_weights: sum the matrix weights instead of counting distinct users per item.
    """

    name = "popularity"

    def __init__(self, segment: str | None = None, use_weights: bool = False) -> None:
        super().__init__()
        self.segment = segment
        self.use_weights = bool(use_weights)
        self.counts_: np.ndarray = np.empty(0)
        self.group_counts_: np.ndarray = np.empty((0, 0))
        self.user_group_: np.ndarray = np.empty(0, dtype=np.int64)
        self.group_labels_: np.ndarray = np.empty(0, dtype=str)

    def _column_counts(self, m: sp.csr_matrix) -> np.ndarray:
        if self.use_weights:
            return np.asarray(m.sum(axis=0), dtype=np.float64).ravel()
        csc = sp.csc_matrix(m)
        csc.eliminate_zeros()
        return np.diff(csc.indptr).astype(np.float64)

    def fit(self, train: InteractionMatrix, side: SideInfo | None = None) -> Self:
        self._check_train(train)
        self.counts_ = self._column_counts(train.matrix)
        if self.segment is None:
            self.group_counts_ = np.empty((0, self.n_items_))
            self.user_group_ = np.full(self.n_users_, -1, dtype=np.int64)
            self.group_labels_ = np.empty(0, dtype=str)
        else:
            groups = (side.user_groups or {}) if side is not None else {}
            if self.segment not in groups:
                raise RecommenderError(
                    f"{self.name}: segment {self.segment!r} not in side info user groups "
                    f"{sorted(groups)}"
                )
            labels = np.asarray(groups[self.segment], dtype=object)
            if labels.shape != (self.n_users_,):
                raise RecommenderError(
                    f"{self.name}: segment {self.segment!r} has {labels.shape[0]} labels for "
                    f"{self.n_users_} users"
                )
            known = np.array([g is not None and g == g for g in labels], dtype=bool)
            uniq, inv = np.unique(labels[known].astype(str), return_inverse=True)
            self.group_labels_ = uniq.astype(str)
            self.user_group_ = np.full(self.n_users_, -1, dtype=np.int64)
            self.user_group_[known] = inv
            indicator = sp.csr_matrix(
                (np.ones(int(known.sum())), (inv, np.flatnonzero(known))),
                shape=(len(uniq), self.n_users_),
            )
            m = train.matrix if self.use_weights else (train.matrix != 0).astype(np.float64)
            self.group_counts_ = np.asarray((indicator @ m).todense(), dtype=np.float64)
        self._fitted = True
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """(len(users), n_items or len(items)) training counts; per-segment counts when set."""
        self._check_fitted()
        users = self._check_users(users)
        cols = slice(None) if items is None else self._check_items(items)
        base = self.counts_[cols]
        out = np.tile(base, (len(users), 1))
        if self.segment is not None and len(self.group_labels_):
            g = self.user_group_[users]
            seg = g >= 0
            # segment count first, global count as a tie-break strictly below one unit
            tie = base / (self.counts_.max() + 1.0)
            out[seg] = self.group_counts_[g[seg]][:, cols] + tie
        return out

    def params(self) -> dict[str, Any]:
        return {"segment": self.segment, "use_weights": self.use_weights}

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "counts": self.counts_,
            "group_counts": self.group_counts_,
            "user_group": self.user_group_,
            "group_labels": self.group_labels_.astype(str),
        }

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.counts_ = state["counts"]
        self.group_counts_ = state["group_counts"]
        self.user_group_ = state["user_group"]
        self.group_labels_ = state["group_labels"]


class RecentPopularityRecommender(Recommender):
    """Scores every item by its time-decayed training count, the same for every user: each
    training interaction weighs ``0.5 ** (age / half_life_days)``, its age counted back from the
    newest training interaction, and the score is the log of one plus the sum. What is popular
    now, which in a temporal split (P2) predicts the next days better than all-time popularity.

    Needs the days of the interactions (``SideInfo.interaction_days``); without them every
    interaction weighs 1 (all-time popularity), and ``has_days_`` says so.
    """

    name = "recent_popularity"

    def __init__(self, half_life_days: float = 7.0) -> None:
        super().__init__()
        if not half_life_days > 0:
            raise RecommenderError(f"{self.name}: half_life_days must be > 0")
        self.half_life_days = float(half_life_days)
        self.scores_: np.ndarray = np.empty(0)
        self.has_days_ = False

    def fit(self, train: InteractionMatrix, side: SideInfo | None = None) -> Self:
        self._check_train(train)
        binary = sp.csr_matrix(train.matrix, dtype=np.float64, copy=True)
        binary.eliminate_zeros()
        binary.data[:] = 1.0
        days = None if side is None else side.interaction_days
        weights = binary
        self.has_days_ = False
        if days is not None and days.shape == binary.shape:
            # the days of this training matrix's entries only (a holdout part may be a subset)
            kept = days_on(days, binary)
            if kept.nnz == binary.nnz:
                kept.data = 0.5 ** ((kept.data.max() - kept.data) / self.half_life_days)
                weights, self.has_days_ = kept, True
        self.scores_ = np.log1p(np.asarray(weights.sum(axis=0), dtype=np.float64).ravel())
        self._fitted = True
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        users = self._check_users(users)
        cols = slice(None) if items is None else self._check_items(items)
        return np.tile(self.scores_[cols], (len(users), 1))

    def params(self) -> dict[str, Any]:
        return {"half_life_days": self.half_life_days}

    def _state(self) -> dict[str, np.ndarray]:
        return {"scores": self.scores_, "has_days": np.array([self.has_days_])}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.scores_ = state["scores"]
        self.has_days_ = bool(state["has_days"][0])
