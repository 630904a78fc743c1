"""Approximate nearest-neighbour retrieval for dot-product models above a catalog size.

A model whose score is ``user_vectors(users) @ item_vectors().T`` (``als``) can be served from an
HNSW graph over its item vectors instead of scoring every item on every cache miss. faiss's
``IndexHNSWFlat`` with inner product was picked by measurement against usearch (docs/models.md:
on 100,000 clustered 64-d vectors, recall@10 0.993 at efSearch 64 with a p99 of 0.36 ms, built
in 23 s, against usearch's 0.996, 1.06 ms and 54 s). ``bench/scale_models.py`` measures recall
against exact scoring and the latency at 1,000,000 items.

Items the user has seen are removed after the search: the index is asked for ``k`` plus the
number of items to exclude (up to ``MAX_FETCH``), so a list comes back short (``-1`` slots) only
when the graph search itself misses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from recs_assets.core.models.base import RecommenderError

ANN_FILE = "ann.faiss"
ANN_MIN_ITEMS_ENV = "RECS_ANN_MIN_ITEMS"
DEFAULT_ANN_MIN_ITEMS = 100_000
MAX_FETCH = 4096


@runtime_checkable
class DotProductModel(Protocol):
    """A model whose scores are dot products of user and item vectors."""

    n_items_: int

    def user_vectors(self, users: np.ndarray) -> np.ndarray: ...

    def item_vectors(self) -> np.ndarray: ...


def ann_min_items(env: Mapping[str, str] | None = None) -> int:
    """The catalog size from which a dot-product model is served by ANN (``RECS_ANN_MIN_ITEMS``,
    default 100,000; 0 turns ANN off)."""
    env = os.environ if env is None else env
    raw = env.get(ANN_MIN_ITEMS_ENV, "").strip()
    if not raw:
        return DEFAULT_ANN_MIN_ITEMS
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{ANN_MIN_ITEMS_ENV}={raw!r}: expected a whole number of items") from None
    if value < 0:
        raise ValueError(f"{ANN_MIN_ITEMS_ENV}={raw!r}: must be >= 0 (0 turns ANN off)")
    return value


class AnnIndex:
    """An HNSW graph (faiss, inner product) over item vectors.

    Args:
        index: the faiss index.
        ef_search: candidates kept while searching (recall against latency).
    """

    def __init__(self, index: Any, ef_search: int = 128) -> None:
        self.index = index
        self.ef_search = int(ef_search)
        index.hnsw.efSearch = self.ef_search

    @property
    def n_items(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def build(
        cls,
        item_vectors: np.ndarray,
        *,
        m: int = 32,
        ef_construction: int = 100,
        ef_search: int = 128,
    ) -> AnnIndex:
        """Index ``item_vectors`` (n_items x d); item ``i`` is row ``i``."""
        import faiss

        vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) == 0:
            raise RecommenderError(f"ANN needs a non-empty 2-d item matrix, got {vectors.shape}")
        if not np.all(np.isfinite(vectors)):
            raise RecommenderError("ANN item vectors contain NaN or inf")
        index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.add(vectors)
        return cls(index, ef_search)

    def save(self, path: Path) -> Path:
        import faiss

        faiss.write_index(self.index, str(path))
        return path

    @classmethod
    def load(cls, path: Path, ef_search: int = 128) -> AnnIndex:
        import faiss

        return cls(faiss.read_index(str(path)), ef_search)

    def top_k(
        self, queries: np.ndarray, k: int, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for each query vector, best first; ``exclude`` has one row per query
        whose non-zeros are left out. Missing slots hold item -1 and score -inf."""
        if k < 1:
            raise RecommenderError(f"k must be >= 1, got {k}")
        q = np.ascontiguousarray(queries, dtype=np.float32)
        kk = min(k, self.n_items)
        seen = np.zeros(len(q), dtype=np.int64) if exclude is None else np.diff(exclude.indptr)
        fetch = int(min(self.n_items, MAX_FETCH, kk + (seen.max() if len(seen) else 0)))
        self.index.hnsw.efSearch = max(self.ef_search, fetch)
        scores, items = self.index.search(q, fetch)
        out_idx = np.full((len(q), kk), -1, dtype=np.int64)
        out_sc = np.full((len(q), kk), -np.inf, dtype=np.float64)
        for row in range(len(q)):
            keep = items[row] >= 0
            if exclude is not None and seen[row]:
                drop = exclude.indices[exclude.indptr[row] : exclude.indptr[row + 1]]
                keep &= ~np.isin(items[row], drop)
            found = items[row][keep][:kk]
            out_idx[row, : len(found)] = found
            out_sc[row, : len(found)] = scores[row][keep][:kk]
        return out_idx, out_sc


def exact_top_k(
    queries: np.ndarray, item_vectors: np.ndarray, k: int, block: int = 256
) -> np.ndarray:
    """The exact top-``k`` items by dot product (the reference ANN recall is measured against)."""
    out = np.empty((len(queries), min(k, len(item_vectors))), dtype=np.int64)
    for start in range(0, len(queries), block):
        s = queries[start : start + block] @ item_vectors.T
        part = np.argpartition(-s, out.shape[1] - 1, axis=1)[:, : out.shape[1]]
        order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1)
        out[start : start + block] = np.take_along_axis(part, order, axis=1)
    return out


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each exact list that ``found`` holds."""
    hits = [len(set(f[f >= 0]) & set(e)) / len(e) for f, e in zip(found, exact, strict=True)]
    return float(np.mean(hits)) if hits else float("nan")
