"""A user's feature row from the Feast online store, encoded for the served model and cached.

A feature-based model (LightFM with user side features, exported with its ``FeatureEncoder``)
can score a user it never saw from that user's features. ``OnlineFeatureReader.vector`` reads the
user's row of the ``user_features`` view (only the columns the encoder uses), encodes it as
training did and caches the encoded vector in the response cache (Redis or the in-process LRU)
under ``PREFIX:MODEL_TAG:feat:u=USER`` for the cache's TTL, so the key carries the model version
(an encoder belongs to one model). A user without a row is cached too (``null``), so repeated
requests of unknown users do not reach Feast; a failed read is never cached.

The online store is an optimisation, never a dependency: every read runs on one background
thread and is abandoned after ``timeout_s``; any failure (Feast error, Redis or SQLite down,
timeout) answers None, is counted in ``recs_online_features_total{result="error"|"timeout"}``,
logged once per outage, and the store is skipped for ``backoff_s`` (``skipped``), then tried
again. The caller then answers from popularity. Feast is imported only when a repo is set.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from recs_assets.core.features.feast_config import export_redis_password
from recs_assets.core.features.online_clock import AS_OF_KEY, age_clock_columns
from recs_assets.core.models.feature_encoder import FeatureEncoder
from recs_assets.core.serving.cache import Cache, cache_key
from recs_assets.core.serving.settings import ServingSettings
from recs_assets.core.serving.telemetry import ServingMetrics

logger = logging.getLogger(__name__)

# recs_assets.core.features.feast_repo.feature_views (not imported: it pulls Feast into every worker)
USER_VIEW = "user_features"
USER_KEY = "user_id"
RESULTS: tuple[str, ...] = (
    "cache_hit",  # the encoded vector (or the known absence of a row) came from the cache
    "found",  # read from the online store
    "not_found",  # the store has no row for the user
    "empty",  # a row whose values activate no feature of the encoder
    "error",  # the read failed (Feast, Redis, SQLite)
    "timeout",  # the read took longer than timeout_s
    "skipped",  # not read: the store failed less than backoff_s ago
)
NO_ROW = "null"
TIMESTAMP_SUFFIX = "__ts"  # feast.online_response.TIMESTAMP_POSTFIX (not imported: see above)


class OnlineStore(Protocol):
    """What is used of ``feast.FeatureStore``."""

    def get_online_features(self, features: list[str], entity_rows: list[dict[str, Any]]) -> Any:
        """A Feast ``OnlineResponse`` (``to_dict()``: feature name -> one value per row)."""
        ...


def open_feature_store(repo_path: str) -> OnlineStore:
    """``feast.FeatureStore`` over the ``feature_store.yaml`` in ``repo_path``."""
    from pathlib import Path

    from feast import FeatureStore

    if not (Path(repo_path) / "feature_store.yaml").is_file():
        raise FileNotFoundError(f"no feature_store.yaml in {repo_path}")
    export_redis_password()  # the file holds ${RECS_REDIS_PASSWORD}, not the password
    return FeatureStore(repo_path=repo_path)


class OnlineFeatureReader:
    """Encoded online feature vectors of users, cached, with a bounded wait.

    Args:
        repo_path: the Feast repo folder (``feature_store.yaml``).
        cache: the response cache the vectors are kept in.
        metrics: ``online_features`` counts every lookup by result.
        prefix: first part of the cache keys (``RECS_CACHE_PREFIX``).
        timeout_s: longest wait for one read.
        backoff_s: after a failure, reads are skipped for this long.
        open_store: builds the store from ``repo_path`` (Feast's ``FeatureStore`` by default).
        clock: monotonic seconds, replaceable in tests.

    The store is opened by ``open`` (call it at worker start-up: importing Feast and reading the
    registry takes seconds) or by the first read.
    """

    def __init__(
        self,
        repo_path: str,
        cache: Cache,
        metrics: ServingMetrics,
        *,
        prefix: str = "recs",
        timeout_s: float = 0.05,
        backoff_s: float = 5.0,
        open_store: Callable[[str], OnlineStore] = open_feature_store,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.repo_path = repo_path
        self.cache = cache
        self.metrics = metrics
        self.prefix = prefix
        self.timeout_s = float(timeout_s)
        self.backoff_s = float(backoff_s)
        self._open_store = open_store
        self._clock = clock
        self._store: OnlineStore | None = None
        self._down_until = 0.0
        self._failing = False  # in an outage (logged when it starts and when it ends)
        self._lock = threading.Lock()  # the backoff state
        self._open_lock = threading.Lock()  # opening the store (seconds; never on a request)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recs-feast")
        for result in RESULTS:  # show every series at 0
            metrics.online_features.labels(result=result)

    # ---- the store ----------------------------------------------------------------------------
    def open(self) -> bool:
        """Open the store now (blocking); False (logged, backoff started) when it cannot be."""
        try:
            self._store_or_open()
        except Exception as exc:  # noqa: BLE001 - any failure to open means "no features"
            self._failed("open", exc)
            return False
        return True

    def _store_or_open(self) -> OnlineStore:
        with self._open_lock:
            if self._store is None:
                self._store = self._open_store(self.repo_path)
            return self._store

    def _read(self, user_id: str, columns: Sequence[str]) -> dict[str, object] | None:
        """The user's values of ``columns`` (None: no row). Runs on the background thread."""
        store = self._store_or_open()
        # the store's as-of row comes in the same read: a row written earlier (only moved rows
        # are rewritten) has its clock columns aged to it, as a full rewrite would have them
        got = store.get_online_features(
            features=[f"{USER_VIEW}:{c}" for c in columns],
            entity_rows=[{USER_KEY: user_id}, {USER_KEY: AS_OF_KEY}],
        ).to_dict(include_event_timestamps=True)
        row = {c: (got.get(c) or [None])[0] for c in columns}
        if all(v is None for v in row.values()):
            return None
        stamps = got.get(columns[0] + TIMESTAMP_SUFFIX) or [None, None]
        if stamps[0] and stamps[1] and stamps[1] > stamps[0]:
            written, as_of = (datetime.fromtimestamp(int(t), tz=UTC) for t in stamps[:2])
            row = age_clock_columns(USER_VIEW, row, written, as_of)
        return row

    def _failed(self, what: str, exc: BaseException) -> None:
        with self._lock:
            first = not self._failing
            self._failing = True
            self._down_until = self._clock() + self.backoff_s
        if first:  # once per outage, not once per request
            logger.warning(
                "online features %s failed (%s: %s); unknown users get popularity, "
                "retrying in %.1fs",
                what,
                type(exc).__name__,
                exc,
                self.backoff_s,
            )

    def _succeeded(self) -> None:
        if self._failing:
            with self._lock:
                self._failing = False
            logger.info("online features read again from %s", self.repo_path)

    @property
    def available(self) -> bool:
        """False while in a backoff period after a failure."""
        return self._clock() >= self._down_until

    # ---- the vector ---------------------------------------------------------------------------
    def key(self, namespace: str, user_id: str) -> str:
        """Cache key of ``user_id``'s vector for the model ``namespace`` (its tag or version)."""
        return cache_key(self.prefix, namespace, "feat", u=user_id)

    def vector(self, user_id: str, encoder: FeatureEncoder, namespace: str) -> sp.csr_matrix | None:
        """``user_id``'s online features encoded by ``encoder``: a (1, n_features) CSR row with
        at least one feature, or None (no row, nothing usable, or the store failed)."""
        count = self.metrics.online_features
        key = self.key(namespace, user_id)
        raw = self.cache.get(key)
        if raw is not None:
            cached = _from_json(raw, encoder.n_features)
            if cached is not None or raw == NO_ROW:
                count.labels(result="cache_hit").inc()
                return cached
        if not self.available:
            count.labels(result="skipped").inc()
            return None
        future = self._pool.submit(self._read, user_id, encoder.column_names)
        try:
            row = future.result(timeout=self.timeout_s)
        except FutureTimeout:
            future.cancel()
            self._failed("read", TimeoutError(f"no answer within {self.timeout_s:.3f}s"))
            count.labels(result="timeout").inc()
            return None
        except Exception as exc:  # noqa: BLE001 - Feast/Redis/SQLite failures of many kinds
            self._failed("read", exc)
            count.labels(result="error").inc()
            return None
        self._succeeded()
        if row is None:
            self.cache.set(key, NO_ROW)
            count.labels(result="not_found").inc()
            return None
        vec = encoder.encode([row])
        if vec.nnz == 0:
            self.cache.set(key, NO_ROW)
            count.labels(result="empty").inc()
            return None
        self.cache.set(key, _to_json(vec))
        count.labels(result="found").inc()
        return vec

    def close(self) -> None:
        """Stop the background thread (a read in progress is abandoned)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _to_json(vec: sp.csr_matrix) -> str:
    return json.dumps({"i": vec.indices.tolist(), "v": [float(v) for v in vec.data]})


def _from_json(raw: str, n_features: int) -> sp.csr_matrix | None:
    """The cached vector (None for ``null`` or a value that does not fit the encoder)."""
    try:
        data: Mapping[str, list[Any]] | None = json.loads(raw)
        if not data:
            return None
        idx = np.asarray(data["i"], dtype=np.int64)
        val = np.asarray(data["v"], dtype=np.float32)
    except (ValueError, KeyError, TypeError):
        return None
    if len(idx) == 0 or len(idx) != len(val) or idx.min() < 0 or idx.max() >= n_features:
        return None
    return sp.csr_matrix((val, idx, np.array([0, len(idx)])), shape=(1, n_features))


def online_feature_reader_from_settings(
    settings: ServingSettings, cache: Cache, metrics: ServingMetrics
) -> OnlineFeatureReader | None:
    """``OnlineFeatureReader`` over ``RECS_FEAST_REPO``, opened now; None when it is not set."""
    if not settings.feast_repo:
        return None
    features = OnlineFeatureReader(
        settings.feast_repo,
        cache,
        metrics,
        prefix=settings.cache_prefix,
        timeout_s=settings.feast_timeout_s,
        backoff_s=settings.feast_backoff_s,
    )
    if features.open():
        logger.info("online features from the Feast repo %s", settings.feast_repo)
    return features
