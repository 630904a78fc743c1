"""Offline batch predictions: top-k for many users at once, a Parquet writer, cache warming.

``batch_top_k`` scores users in blocks (one dense block of block x n_items at a time) and keeps each
row's top k with ``argpartition``, so memory stays at block x n_items whatever the user count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from recs_assets.core.models.base import InteractionMatrix, Recommender, RecommenderError


def batch_top_k(
    model: Recommender,
    users: np.ndarray,
    k: int,
    exclude: sp.csr_matrix | None = None,
    block: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` items for each of ``users`` (row indices), best first.

    Args:
        model: a fitted recommender.
        users: 1-d array of user row indices.
        k: list length (capped at the number of items).
        exclude: (n_users x n_items) matrix whose non-zeros are removed from each user's ranking.
        block: users scored per dense block.

    Returns:
        (items, scores), each (len(users), min(k, n_items)). Excluded slots that had to be used
        because a user has fewer than k candidates hold item -1 and score -inf.
    """
    if k < 1:
        raise RecommenderError(f"k must be >= 1, got {k}")
    if block < 1:
        raise RecommenderError(f"block must be >= 1, got {block}")
    users = np.asarray(users, dtype=np.int64)
    n_items = model.n_items_
    if exclude is not None and exclude.shape[1] != n_items:
        raise RecommenderError(f"exclude matrix has {exclude.shape[1]} items, the model {n_items}")
    kk = min(k, n_items)
    out_idx = np.empty((len(users), kk), dtype=np.int64)
    out_sc = np.empty((len(users), kk), dtype=np.float64)
    for start in range(0, len(users), block):
        rows = users[start : start + block]
        s = np.asarray(model.score(rows))
        if s.dtype not in (np.float32, np.float64):
            s = s.astype(np.float64)
        elif not s.flags.writeable:
            s = s.copy()
        if s.shape != (len(rows), n_items):
            raise RecommenderError(
                f"{model.name}.score returned shape {s.shape}, expected {(len(rows), n_items)}"
            )
        if exclude is not None:
            ex = exclude[rows]
            r = np.repeat(np.arange(len(rows)), np.diff(ex.indptr))
            s[r, ex.indices] = -np.inf
        idx, sc = top_k_desc(s, kk)
        if np.isnan(sc).any():  # NaN sorts above every number, so any NaN in a row shows here
            raise RecommenderError(f"{model.name} produced NaN scores")
        idx[np.isneginf(sc)] = -1
        out_idx[start : start + len(rows)] = idx
        out_sc[start : start + len(rows)] = sc
    return out_idx, out_sc


def top_k_desc(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top ``k`` (1 <= k <= n_cols) of a dense block, best first.

    Same answer as ``recs_assets.core.models.base.top_k`` but partitions ``scores`` itself rather than
    a negated copy (one pass less over a large block). Within the list, equal scores are ordered
    by column index; which of several items tied at the cut gets in is unspecified. NaN ranks
    above every number. Returns (indices int64, scores float64), each (n_rows, k).
    """
    n = scores.shape[1]
    if k < n:
        part = np.argpartition(scores, n - k, axis=1)[:, n - k :]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape).copy()
    part_scores = np.take_along_axis(scores, part, axis=1)
    # best first; among equal scores the lower column index first
    order = np.lexsort((part, -part_scores), axis=1) if part.size else part
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(scores, idx, axis=1).astype(np.float64)


def recommendations_frame(
    train: InteractionMatrix, users: np.ndarray, items: np.ndarray, scores: np.ndarray
) -> pd.DataFrame:
    """Long frame (user_id, rank, item_id, score) from ``batch_top_k`` output, -1 slots dropped."""
    n, k = items.shape
    rank = np.tile(np.arange(1, k + 1, dtype=np.int16), n)
    flat_items = items.ravel()
    keep = flat_items >= 0
    return pd.DataFrame(
        {
            "user_id": np.repeat(train.user_ids[np.asarray(users)], k)[keep].astype(str),
            "rank": rank[keep],
            "item_id": train.item_ids[flat_items[keep]].astype(str),
            "score": scores.ravel()[keep].astype(np.float32),
        }
    )


def write_recommendations(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a recommendations frame to one Parquet file (zstd); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, compression="zstd")
    return path


def most_active_users(train: InteractionMatrix, n: int) -> np.ndarray:
    """Row indices of the ``n`` users with the most training interactions (ties by index)."""
    counts = np.diff(train.matrix.indptr)
    return np.argsort(-counts, kind="stable")[: max(n, 0)]
