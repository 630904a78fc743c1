"""Response caches for the recommendation service: Redis (shared) and an in-process LRU.

Both store JSON strings under keys built by ``cache_key`` (which carries the model version, so a new
model never serves a previous model's answers). A cache is an optimisation, never a dependency:
``RedisCache`` turns every Redis failure into a miss, counts it, stops calling Redis for a backoff
period, then tries again, so the service keeps answering while Redis is down and uses it again
when it returns.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)


@dataclass
class CacheStats:
    """Counters of one cache instance.

    Attributes:
        hits: lookups answered from the cache.
        misses: lookups that found nothing (including those skipped while Redis is down).
        errors: Redis calls that failed (connection refused, timeout, protocol error).
        skipped: calls not sent to Redis because it failed less than a backoff period ago.
        writes: values stored.
    """

    hits: int = 0
    misses: int = 0
    errors: int = 0
    skipped: int = 0
    writes: int = 0

    @property
    def hit_ratio(self) -> float:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


class Cache(Protocol):
    """What the service needs from a cache: string get/set with a TTL, counters, a name."""

    stats: CacheStats
    kind: str

    def get(self, key: str) -> str | None:
        """The cached value, or None on a miss (or when the backend is unavailable)."""
        ...

    def set(self, key: str, value: str) -> None:
        """Store ``value`` for the cache's TTL; a backend failure is counted, not raised."""
        ...

    def get_many(self, keys: Sequence[str]) -> list[str | None]:
        """``get`` of each key, in one round trip where the backend allows."""
        ...

    def set_many(self, items: Sequence[tuple[str, str]]) -> None:
        """``set`` of each (key, value), in one round trip where the backend allows."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def cache_key(prefix: str, model_version: str, kind: str, **parts: object) -> str:
    """``prefix:model_version:kind:<k=v,...>`` with parts sorted by name.

    Parts that are dicts (request context) are folded into a short stable hash so keys stay short.
    """
    fields = []
    for name in sorted(parts):
        value = parts[name]
        if isinstance(value, Mapping):
            blob = json.dumps(value, sort_keys=True, default=str).encode()
            value = hashlib.sha1(blob).hexdigest()[:12]
        fields.append(f"{name}={value}")
    return f"{prefix}:{model_version}:{kind}:{','.join(fields)}"


class LRUCache:
    """Thread-safe in-process LRU with a per-entry TTL (the default when no Redis is configured).

    Args:
        max_entries: capacity; the least recently used entry is dropped beyond it.
        ttl_s: lifetime of an entry in seconds.
        clock: time source (monotonic seconds), replaceable in tests.
    """

    kind = "lru"

    def __init__(
        self, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"LRU capacity must be >= 1, got {max_entries}")
        if not ttl_s > 0:
            raise ValueError(f"LRU ttl must be > 0 seconds, got {ttl_s}")
        self.max_entries = max_entries
        self.ttl_s = float(ttl_s)
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = CacheStats()

    def get(self, key: str) -> str | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is not None and entry[0] > self._clock():
                self._data.move_to_end(key)
                self.stats.hits += 1
                return entry[1]
            if entry is not None:
                del self._data[key]
            self.stats.misses += 1
            return None

    def set(self, key: str, value: str) -> None:
        with self._lock:
            self._data[key] = (self._clock() + self.ttl_s, value)
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)
            self.stats.writes += 1

    def get_many(self, keys: Sequence[str]) -> list[str | None]:
        return [self.get(k) for k in keys]

    def set_many(self, items: Sequence[tuple[str, str]]) -> None:
        for key, value in items:
            self.set(key, value)

    def __len__(self) -> int:
        return len(self._data)

    def forget_user(self, user_id: str) -> int:
        """Drop every cached list of ``user_id`` (any model version, k or context); entries
        dropped. (Redis entries are deleted by ``recs_assets.core.forget``.)"""
        part = f"u={user_id}"
        with self._lock:
            gone = [k for k in self._data if ":rec:" in k and (f"{part}," in k or k.endswith(part))]
            for k in gone:
                del self._data[k]
        return len(gone)

    def close(self) -> None:
        with self._lock:
            self._data.clear()


class RedisCache:
    """Redis-backed cache with short timeouts, no client retries and a reconnect backoff.

    Args:
        url: Redis URL (``redis://host:port/db``).
        ttl_s: lifetime of an entry in seconds (``SET ... EX``).
        timeout_s: connect and socket timeout of every call.
        backoff_s: after a failure, calls are skipped (counted as misses) for this many seconds,
            then Redis is tried again; the next failure starts a new backoff.
        clock: time source (monotonic seconds), replaceable in tests.

    No connection is made here; the first ``get``/``set`` connects.
    """

    kind = "redis"

    def __init__(
        self,
        url: str,
        ttl_s: int,
        timeout_s: float = 0.1,
        backoff_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s < 1:
            raise ValueError(f"Redis ttl must be >= 1 second, got {ttl_s}")
        self.url = url
        self.ttl_s = int(ttl_s)
        self.backoff_s = float(backoff_s)
        self._clock = clock
        self._down_until = 0.0
        self._lock = threading.Lock()
        self.stats = CacheStats()
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), retries=0),
            health_check_interval=0,
        )

    @property
    def available(self) -> bool:
        """False while in a backoff period after a failure."""
        return self._clock() >= self._down_until

    def _failed(self, op: str, exc: redis.RedisError) -> None:
        with self._lock:
            first = self._down_until <= self._clock()
            self.stats.errors += 1
            self._down_until = self._clock() + self.backoff_s
        if first:
            logger.warning(
                "redis cache %s failed (%s: %s); serving uncached, retrying in %.1fs",
                op,
                type(exc).__name__,
                exc,
                self.backoff_s,
            )

    def get(self, key: str) -> str | None:
        return self.get_many([key])[0]

    def set(self, key: str, value: str) -> None:
        self.set_many([(key, value)])

    def get_many(self, keys: Sequence[str]) -> list[str | None]:
        """One ``MGET`` (a batch of 1,000 users made 1,000 round trips before)."""
        if not keys:
            return []
        if not self.available:
            with self._lock:
                self.stats.skipped += len(keys)
                self.stats.misses += len(keys)
            return [None] * len(keys)
        try:
            raws = self.client.mget(list(keys))
        except redis.RedisError as exc:
            self._failed("get", exc)
            with self._lock:
                self.stats.misses += len(keys)
            return [None] * len(keys)
        out = [None if r is None else r.decode() if isinstance(r, bytes) else str(r) for r in raws]
        with self._lock:
            hits = sum(v is not None for v in out)
            self.stats.hits += hits
            self.stats.misses += len(out) - hits
        return out

    def set_many(self, items: Sequence[tuple[str, str]]) -> None:
        """One pipelined round trip of ``SET ... EX``."""
        if not items:
            return
        if not self.available:
            with self._lock:
                self.stats.skipped += len(items)
            return
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for key, value in items:
                    pipe.set(key, value, ex=self.ttl_s)
                pipe.execute()
        except redis.RedisError as exc:
            self._failed("set", exc)
            return
        with self._lock:
            self.stats.writes += len(items)

    def close(self) -> None:
        self.client.close()


def make_cache(
    redis_url: str | None,
    ttl_s: int,
    max_entries: int,
    timeout_s: float = 0.1,
    backoff_s: float = 1.0,
) -> Cache:
    """``RedisCache`` when a URL is given, else the in-process ``LRUCache``."""
    if redis_url:
        return RedisCache(redis_url, ttl_s=ttl_s, timeout_s=timeout_s, backoff_s=backoff_s)
    return LRUCache(max_entries=max_entries, ttl_s=ttl_s)
