"""Trending and exploration slots: pure functions that place extra items at the end of a list.

A list of ``k`` keeps its first model items and gives its last positions to inserted items, in
order: trending slots first, then exploration slots. Together they take at most ``k - 1``
positions (``slot_counts``), so a list always starts with at least one model item. Inserted
items are never items already in the model's list (its whole list, not only the kept part) nor
items in ``exclude`` (the user's training items when ``exclude_seen``); when fewer candidates
qualify than there are slots, the model's own items keep the positions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Insert:
    """Items offered for ``slots`` positions, best first, with their scores and reason."""

    candidates: np.ndarray
    scores: np.ndarray
    slots: int
    reason: str


@dataclass(frozen=True)
class Blended:
    """A list after blending: item indices, scores and each item's reason, best first."""

    idx: np.ndarray
    scores: np.ndarray
    reasons: list[str]

    def count(self, reason: str) -> int:
        return sum(r == reason for r in self.reasons)


def slot_counts(k: int, trending_slots: int, exploration_slots: int) -> tuple[int, int]:
    """(trending, exploration) positions used in a list of ``k``: together at most ``k - 1``,
    trending served first."""
    trending = max(0, min(trending_slots, k - 1))
    exploration = max(0, min(exploration_slots, k - 1 - trending))
    return trending, exploration


def blend(
    idx: np.ndarray,
    scores: np.ndarray,
    k: int,
    inserts: Sequence[Insert],
    exclude: np.ndarray,
    base_reason: str = "model",
) -> Blended:
    """``idx`` (the model's list, at most ``k``) with ``inserts`` placed at its end.

    Each insert takes its first ``slots`` candidates that are not in ``idx``, not in ``exclude``
    and not taken by an earlier insert. With ``c`` items inserted, the result is the first
    ``min(len(idx), k - c)`` model items followed by the inserted ones (``min(len(idx) + c, k)``
    items). The caller caps the slots (``slot_counts``) so at least one model item stays.
    """
    idx = np.asarray(idx, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    exclude = np.asarray(exclude, dtype=np.int64)
    offered = [
        (np.asarray(ins.candidates, dtype=np.int64), ins)
        for ins in inserts
        if ins.slots > 0 and len(ins.candidates)
    ]
    arrays = [a for a in (idx, exclude, *(c for c, _ in offered)) if len(a)]
    size = 1 + max((int(a.max()) for a in arrays), default=0)
    blocked = np.zeros(size, dtype=bool)  # a mask over item indices: cheaper than np.isin
    blocked[idx] = True
    blocked[exclude] = True
    chosen: list[tuple[np.ndarray, np.ndarray, str]] = []
    for cand, ins in offered:
        keep = np.flatnonzero(~blocked[cand])[: ins.slots]
        if len(keep) == 0:
            continue
        picked = cand[keep]
        chosen.append((picked, np.asarray(ins.scores, dtype=np.float64)[keep], ins.reason))
        blocked[picked] = True
    inserted = sum(len(p) for p, _, _ in chosen)
    n_model = min(len(idx), k - inserted)
    reasons = [base_reason] * n_model
    for picked, _, reason in chosen:
        reasons.extend([reason] * len(picked))
    return Blended(
        idx=np.concatenate([idx[:n_model], *(p for p, _, _ in chosen)]),
        scores=np.concatenate([scores[:n_model], *(s for _, s, _ in chosen)]),
        reasons=reasons,
    )


def exploration_seed(user_id: str, hour: int) -> int:
    """A 64-bit seed fixed by (user, hour): a user's exploration items change once an hour."""
    digest = hashlib.sha256(f"explore:{user_id}:{hour}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def exploration_draw(candidates: np.ndarray, n: int, user_id: str, hour: int) -> np.ndarray:
    """``n`` of ``candidates`` (all when fewer) in an order fixed by (user, hour).

    Costs O(n) for a small ``n`` out of many candidates (numpy draws without a full shuffle).
    """
    n = min(n, len(candidates))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(exploration_seed(user_id, hour))
    return np.asarray(candidates, dtype=np.int64)[rng.choice(len(candidates), n, replace=False)]
