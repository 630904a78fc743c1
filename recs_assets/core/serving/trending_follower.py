"""The published trending list, read by the service and kept in memory.

The ``trending_items`` asset publishes the top items by time-decayed popularity through
``recs_assets.monitoring.trending_store.TrendingStore``: a Redis sorted set (member item id, score the
trending score) under ``TRENDING_KEY`` when ``RECS_REDIS_URL`` is set, else a Parquet file
(``rank, item_id, score``) at ``<data dir>/trending/trending_items.parquet``. ``TrendingFollower``
reads the same place (that module is not imported: it pulls Dagster into the service).

The list is read at most every ``refresh_s`` seconds: by a daemon thread once ``start`` is called
(requests then never wait for Redis), otherwise lazily by the first request after it went stale.
Trending is never a dependency: a failed read (Redis down or slow, an unreadable file) keeps the
last list (empty before the first good read), is counted in
``recs_trending_reads_total{result="error"}`` and logged once per outage; nothing raises into a
request. Nothing published (no key, no file) is an empty list (``result="empty"``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from recs_assets.core.contracts import TRENDING_KEY, trending_path
from recs_assets.core.serving.settings import ServingSettings
from recs_assets.core.serving.telemetry import ServingMetrics

logger = logging.getLogger(__name__)

MAX_ITEMS = 1000
RESULTS: tuple[str, ...] = (
    "updated",  # a list that differs from the one in memory
    "unchanged",  # the same list (or the same file) as before
    "empty",  # nothing published (no key / no file, or an empty list)
    "error",  # the read failed; the last list is kept
)


@dataclass(frozen=True, eq=False)
class TrendingList:
    """One read of the published list.

    Attributes:
        item_ids: external item ids, most trending first.
        scores: trending score of each (float64, same order).
    """

    item_ids: tuple[str, ...] = ()
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))

    def __len__(self) -> int:
        return len(self.item_ids)

    def same_as(self, other: TrendingList) -> bool:
        return self.item_ids == other.item_ids and np.array_equal(self.scores, other.scores)


EMPTY = TrendingList()


class TrendingFollower:
    """The trending list in memory, refreshed from Redis or the Parquet file.

    Args:
        redis_url: Redis holding the sorted set; None reads the Parquet file instead.
        key: the sorted set's key.
        path: the Parquet file (None: ``trending_path()`` at each read).
        refresh_s: the list in memory is read again when older than this.
        timeout_s: Redis connect and socket timeout.
        max_items: most items kept (the highest scores).
        metrics: ``trending_reads`` counts every read by result (None: not counted).
        clock: monotonic seconds, replaceable in tests.

    ``current()`` is identity-stable: it returns the same ``TrendingList`` object until the
    published list changes, so callers can derive arrays from it once per change.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        key: str = TRENDING_KEY,
        path: str | Path | None = None,
        refresh_s: float = 60.0,
        timeout_s: float = 0.1,
        max_items: int = MAX_ITEMS,
        metrics: ServingMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not refresh_s > 0:
            raise ValueError(f"refresh_s must be > 0, got {refresh_s}")
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        self.redis_url = redis_url
        self.key = key
        self.path = Path(path) if path is not None else None
        self.refresh_s = float(refresh_s)
        self.max_items = max_items
        self.metrics = metrics
        self._clock = clock
        self._list = EMPTY
        self._read_at: float | None = None  # when the last read (good or bad) finished
        self._file_stamp: tuple[str, int, int] | None = None  # (path, mtime_ns, size) last read
        self._failing = False
        self._lock = threading.Lock()  # one read at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = (
            redis.Redis.from_url(
                redis_url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                retry=Retry(NoBackoff(), retries=0),
                health_check_interval=0,
            )
            if redis_url
            else None
        )
        if metrics is not None:
            for result in RESULTS:  # show every series at 0
                metrics.trending_reads.labels(result=result)

    @property
    def source(self) -> str:
        """Where the list is read from, in words."""
        if self.redis_url:
            return f"redis sorted set {self.key}"
        return f"parquet {self.path or trending_path()}"

    # ---- reading -------------------------------------------------------------------------------
    def current(self) -> TrendingList:
        """The list in memory; read first when stale and no refresh thread runs (never raises)."""
        if self._thread is None:
            read_at = self._read_at
            if read_at is None or self._clock() - read_at >= self.refresh_s:
                self.refresh(wait=False)
        return self._list

    def refresh(self, wait: bool = True) -> str:
        """Read the published list now; returns the result (one of ``RESULTS``).

        ``wait=False`` returns ``"unchanged"`` at once when another thread is reading.
        """
        if not self._lock.acquire(blocking=wait):
            return "unchanged"
        try:
            result = self._refresh()
            self._read_at = self._clock()
        finally:
            self._lock.release()
        if self.metrics is not None:
            self.metrics.trending_reads.labels(result=result).inc()
        return result

    def _refresh(self) -> str:
        try:
            got = self._read_redis() if self._client is not None else self._read_parquet()
        except (redis.RedisError, OSError, ValueError, KeyError, TypeError) as exc:
            # OSError/ValueError/KeyError/TypeError: an unreadable or malformed Parquet file
            if not self._failing:  # once per outage, not once per read
                self._failing = True
                logger.warning(
                    "trending list read from %s failed (%s: %s); keeping the last list "
                    "(%d items), retrying in %.0fs",
                    self.source,
                    type(exc).__name__,
                    exc,
                    len(self._list),
                    self.refresh_s,
                )
            return "error"
        if self._failing:
            self._failing = False
            logger.info("trending list read again from %s", self.source)
        if got is None:
            return "unchanged"
        if got.same_as(self._list):
            return "empty" if len(got) == 0 else "unchanged"
        self._list = got
        return "empty" if len(got) == 0 else "updated"

    def _read_redis(self) -> TrendingList:
        assert self._client is not None
        pairs = self._client.zrevrange(self.key, 0, self.max_items - 1, withscores=True)
        ids = tuple(m.decode() if isinstance(m, bytes) else str(m) for m, _ in pairs)
        return TrendingList(ids, np.array([float(s) for _, s in pairs], dtype=np.float64))

    def _read_parquet(self) -> TrendingList | None:
        """The file's list; None when the file has not changed since the last read."""
        path = self.path or trending_path()
        try:
            st = path.stat()
        except FileNotFoundError:
            self._file_stamp = None
            return EMPTY
        stamp = (str(path), st.st_mtime_ns, st.st_size)
        if stamp == self._file_stamp:
            return None
        table = pq.read_table(path, columns=["item_id", "score"])
        ids = [str(i) for i in table.column("item_id").to_pylist()]
        scores = np.asarray(table.column("score").to_numpy(), dtype=np.float64)
        order = np.argsort(-scores, kind="stable")[: self.max_items]  # the file is ranked already
        self._file_stamp = stamp
        return TrendingList(tuple(ids[i] for i in order), scores[order])

    # ---- the refresh thread --------------------------------------------------------------------
    def start(self) -> None:
        """Read now, then every ``refresh_s`` seconds on a daemon thread."""
        if self._thread is not None:
            return
        self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="recs-trending", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_s):
            self.refresh()

    def stop(self) -> None:
        """Stop the thread (a read in progress finishes within the Redis timeout)."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout=5.0)
        if self._client is not None:
            self._client.close()


def trending_follower_from_settings(
    settings: ServingSettings, metrics: ServingMetrics
) -> TrendingFollower | None:
    """A reader of what ``TrendingStore`` publishes (Redis with ``RECS_REDIS_URL``, else the
    Parquet file); None when ``RECS_TRENDING_REFRESH_S`` is 0."""
    if settings.trending_refresh_s == 0:
        return None
    return TrendingFollower(
        settings.redis_url,
        refresh_s=settings.trending_refresh_s,
        timeout_s=settings.redis_timeout_s,
        metrics=metrics,
    )
