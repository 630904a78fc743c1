"""How long one recommendation request takes a fitted model, in process.

A request is what the service does on a cache miss for a known user: score every item for one
user, leave out the items seen in training and select the top ``k``. Measured over a sample of
training users, one request at a time, after one warm-up request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recs_assets.core.models.base import Recommender


@dataclass(frozen=True)
class RequestLatency:
    """Percentiles of single-user request times, in milliseconds, over ``requests`` requests."""

    p50_ms: float
    p95_ms: float
    p99_ms: float
    requests: int


def request_latency(
    model: Recommender, seen: sp.csr_matrix, k: int = 10, n_users: int = 200, seed: int = 0
) -> RequestLatency:
    """Time one-user requests of ``model`` for up to ``n_users`` users drawn from ``seen``'s rows
    that have training interactions."""
    seen = sp.csr_matrix(seen)
    active = np.flatnonzero(np.diff(seen.indptr) > 0)
    if len(active) == 0:
        raise ValueError("no user with training interactions to time requests for")
    rng = np.random.default_rng(seed)
    users = rng.choice(active, size=min(n_users, len(active)), replace=False)
    times = []
    for n, u in enumerate(np.concatenate([users[:1], users])):
        started = time.perf_counter()
        scores = np.asarray(model.score(np.array([u])), dtype=np.float64)[0]
        scores[seen.indices[seen.indptr[u] : seen.indptr[u + 1]]] = -np.inf
        top = min(k, len(scores))
        np.argpartition(-scores, top - 1)[:top]
        if n:  # the first request warms caches and lazy state up
            times.append((time.perf_counter() - started) * 1e3)
    p50, p95, p99 = np.percentile(times, [50, 95, 99])
    return RequestLatency(float(p50), float(p95), float(p99), len(times))
