"""Small helpers shared by the model families: sparse state for npz files, validation."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from recs_assets.core.models.base import Recommender, RecommenderError, SideInfo


def csr_state(prefix: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    """The arrays of a CSR matrix under ``prefix`` keys, for ``np.savez`` (no pickle)."""
    m = sp.csr_matrix(m)
    return {
        f"{prefix}_data": np.asarray(m.data),
        f"{prefix}_indices": np.asarray(m.indices, dtype=np.int64),
        f"{prefix}_indptr": np.asarray(m.indptr, dtype=np.int64),
        f"{prefix}_shape": np.asarray(m.shape, dtype=np.int64),
    }


def csr_from_state(prefix: str, state: dict[str, np.ndarray]) -> sp.csr_matrix:
    """Inverse of ``csr_state``."""
    shape = tuple(int(s) for s in state[f"{prefix}_shape"])
    return sp.csr_matrix(
        (state[f"{prefix}_data"], state[f"{prefix}_indices"], state[f"{prefix}_indptr"]),
        shape=shape,
    )


def days_on(days: sp.spmatrix, mask: sp.spmatrix) -> sp.csr_matrix:
    """The interaction days (``SideInfo.interaction_days``) of the entries ``mask`` stores
    (ones, or booleans), empty entries dropped: the days of a training or held-out part, which
    may be a subset of the days' entries."""
    out = sp.csr_matrix(days).multiply(mask).tocsr()
    out.eliminate_zeros()
    return out


def sequence_windows(days: sp.spmatrix, mask: sp.spmatrix, length: int) -> sp.csr_matrix:
    """Each user's interactions in time order, cut into windows of ``length`` consecutive
    interactions overlapping by half (stride ``length // 2``; the last may be shorter):
    one binary row per window, ``n_items`` columns. Only the entries ``mask`` stores count (the
    training part a model is fitted on); ties in time are ordered by item index.

    Items rated in one sitting sit close together in the windows: an item-item model fitted on
    them learns what is consumed together, which the user-by-item matrix blurs over a history.
    """
    if length < 2:
        raise RecommenderError(f"sequence windows need length >= 2, got {length}")
    d = days_on(days, sp.csr_matrix(mask) != 0).tocoo()
    n_items = d.shape[1]
    if d.nnz == 0:
        return sp.csr_matrix((0, n_items))
    order = np.lexsort((d.col, d.data, d.row))
    users, items = d.row[order], d.col[order]
    counts = np.bincount(users, minlength=d.shape[0])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(len(users)) - starts[users]
    stride = length // 2
    # windows start every ``stride`` positions until one reaches the end of the sequence
    n_windows = np.where(counts > 0, np.ceil(np.maximum(counts - length, 0) / stride) + 1, 0)
    n_windows = n_windows.astype(np.int64)
    first = np.concatenate([[0], np.cumsum(n_windows)[:-1]])
    rows, cols = [], []
    for j in range(-(-length // stride)):
        k = pos // stride - j
        ok = (k >= 0) & (pos < k * stride + length) & (k < n_windows[users])
        rows.append(first[users[ok]] + k[ok])
        cols.append(items[ok])
    r, c = np.concatenate(rows), np.concatenate(cols)
    # one entry per (user, item) in ``days``: no item is twice in a window, every value is 1
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(int(n_windows.sum()), n_items))


def check_finite(name: str, what: str, arr: np.ndarray) -> None:
    """Raise ``RecommenderError`` when ``arr`` holds NaN or inf (a diverged fit)."""
    if not np.all(np.isfinite(arr)):
        raise RecommenderError(
            f"{name}: {what} contains NaN or inf (training diverged; lower the learning rate "
            "or raise the regularization)"
        )


def positive(name: str, **values: float) -> None:
    """Raise ``RecommenderError`` unless every given hyper-parameter is > 0."""
    for key, value in values.items():
        if not value > 0:
            raise RecommenderError(f"{name}: {key} must be > 0, got {value!r}")


def holdout_split(
    matrix: sp.csr_matrix, fraction: float, seed: int
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Per user, move round(fraction * n) random interactions (at most n - 1) to a second matrix.

    Returns (kept, held_out); kept + held_out == matrix and the two never overlap.
    """
    rng = np.random.default_rng(seed)
    m = sp.csr_matrix(matrix)
    held = np.zeros(m.nnz, dtype=bool)
    for u in range(m.shape[0]):
        lo, hi = m.indptr[u], m.indptr[u + 1]
        n_out = min(int(round(fraction * (hi - lo))), max(hi - lo - 1, 0))
        if n_out:
            held[lo + rng.choice(hi - lo, size=n_out, replace=False)] = True
    return _masked(m, ~held), _masked(m, held)


def _masked(m: sp.csr_matrix, mask: np.ndarray) -> sp.csr_matrix:
    """The entries of ``m`` (in storage order) where ``mask`` is true, same shape."""
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    return sp.csr_matrix((m.data[mask], (rows[mask], m.indices[mask])), shape=m.shape)


def fold_splits(
    matrix: sp.csr_matrix, n_folds: int, seed: int
) -> list[tuple[sp.csr_matrix, sp.csr_matrix]]:
    """Per user, deal the interactions at random into ``n_folds`` folds; for each fold, the
    (kept, held-out) pair. A user's only interaction is never held out."""
    rng = np.random.default_rng(seed)
    m = sp.csr_matrix(matrix)
    counts = np.diff(m.indptr)
    rows = np.repeat(np.arange(m.shape[0]), counts)
    order = np.lexsort((rng.random(m.nnz), rows))  # a random order inside each user
    position = np.arange(m.nnz) - m.indptr[rows[order]]
    fold = np.empty(m.nnz, dtype=np.int64)
    fold[order] = position % n_folds
    fold[counts[rows] < 2] = -1  # a single interaction is never held out
    # a fold holds ceil(n / n_folds) <= n - 1 of a user's n >= 2 interactions: something is kept
    return [(_masked(m, fold != f), _masked(m, fold == f)) for f in range(n_folds)]


def member_specs(
    owner: str, what: str, specs: Sequence[Mapping[str, Any]], known: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Copies of ``specs`` (``{"name": family, "params": {...}}``) of a composite model,
    each name checked against ``known``; at least one."""
    if not specs:
        raise RecommenderError(f"{owner}: needs at least one {what}")
    for spec in specs:
        if spec.get("name") not in known:
            raise RecommenderError(
                f"{owner}: unknown {what} {spec.get('name')!r}; known: {sorted(known)}"
            )
    return [{"name": s["name"], "params": dict(s.get("params", {}))} for s in specs]


def nested_state(models: Sequence[Recommender], prefix: str) -> dict[str, np.ndarray]:
    """The states of a composite model's fitted parts, keyed ``<prefix><j>/<key>``."""
    out: dict[str, np.ndarray] = {}
    for j, m in enumerate(models):
        out.update({f"{prefix}{j}/{k}": v for k, v in m._state().items()})
    return out


def load_nested(
    models: Sequence[Recommender],
    state: Mapping[str, np.ndarray],
    prefix: str,
    shape: tuple[int, int],
) -> None:
    """Inverse of ``nested_state``: load each part of ``models`` (fresh, unfitted) in place."""
    for j, m in enumerate(models):
        key = f"{prefix}{j}/"
        m.n_users_, m.n_items_ = shape
        m._load_state({k[len(key) :]: v for k, v in state.items() if k.startswith(key)})
        m._fitted = True


def usable_members(
    members: Sequence[Mapping[str, Any]], side: SideInfo | None
) -> list[dict[str, Any]]:
    """A composite model's members (``{"name", "params"}``) with a hybrid LightFM made pure CF
    where ``side`` lacks what its hybrid part reads (item categories or features; user
    features), so data without them still gets the composite (its ``params()`` then show what
    was fitted)."""
    has_items = side is not None and (
        side.item_features is not None or side.item_categories is not None
    )
    has_users = side is not None and side.user_features is not None
    out = []
    for m in members:
        params = dict(m.get("params", {}))
        if m["name"] == "lightfm":
            if params.get("hybrid_items") and not has_items:
                params["hybrid_items"] = False
            if params.get("hybrid_users") and not has_users:
                params["hybrid_users"] = False
        out.append({"name": m["name"], "params": params})
    return out


def coordinate_search(
    objective: Callable[[np.ndarray], float],
    n: int,
    grid: Sequence[float],
    rounds: int = 3,
) -> tuple[np.ndarray, float]:
    """Maximize ``objective(weights)`` one weight at a time over ``grid``, from equal weights
    (never all zero).

    Stops early when a full round changes nothing. Returns (weights summing to 1, best value).
    """
    w = np.ones(n)
    best = objective(w)
    for _ in range(rounds):
        changed = False
        for j in range(n):
            for value in grid:
                if value == w[j]:
                    continue
                trial = w.copy()
                trial[j] = value
                if not trial.any():
                    continue
                v = objective(trial)
                if v > best + 1e-12:
                    best, w, changed = v, trial, True
        if not changed:
            break
    return w / w.sum(), best
