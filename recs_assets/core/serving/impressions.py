"""What the service showed whom, recently: feedback is accepted only for items it served.

``ImpressionIndex.remember(user, items)`` records that ``items`` were in a list served to
``user``; ``seen(user, item)`` says whether that happened within the window
(``RECS_FEEDBACK_WINDOW_S``, default 86,400 s). With ``RECS_REDIS_URL`` the index is a Redis hash
per user (item -> time served, the hash expiring a window after its last write), shared by every
worker; otherwise it lives in the process (bounded: the oldest users are dropped beyond
``max_users``). ``RECS_FEEDBACK_REQUIRES_IMPRESSION=0`` turns the rule off (feedback for any known
item, as before).

A Redis that fails or is slow is skipped for a while; its impressions are then also kept in the
process, and a lookup that cannot reach Redis trusts the process's copy: feedback is never refused
with a 500 because of a dead dependency.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence

logger = logging.getLogger("recs.service")

WINDOW_ENV = "RECS_FEEDBACK_WINDOW_S"
REQUIRED_ENV = "RECS_FEEDBACK_REQUIRES_IMPRESSION"
DEFAULT_WINDOW_S = 86_400.0


class ImpressionIndex:
    """Recently served (user, item) pairs, in Redis when given, else in this process."""

    def __init__(
        self,
        window_s: float = DEFAULT_WINDOW_S,
        redis_url: str | None = None,
        prefix: str = "recs",
        max_users: int = 100_000,
    ) -> None:
        if window_s <= 0:
            raise ValueError(f"{WINDOW_ENV} must be > 0, got {window_s}")
        self.window_s = float(window_s)
        self.prefix = prefix
        self.max_users = max_users
        self._local: OrderedDict[str, dict[str, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._skip_until = 0.0
        self._redis = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(
                redis_url, socket_timeout=0.05, socket_connect_timeout=0.05, retry=None
            )

    @property
    def kind(self) -> str:
        return "redis" if self._redis is not None else "local"

    def _key(self, user_id: str) -> str:
        # beside, not inside, the response cache's ``{prefix}:<model tag>:...`` namespace
        return f"{self.prefix}-served:{user_id}"

    def remember(self, user_id: str, item_ids: Sequence[str], now: float | None = None) -> None:
        """Record that ``item_ids`` were shown to ``user_id`` (now)."""
        self.remember_many([(user_id, item_ids)], now)

    def remember_many(
        self, shown: Sequence[tuple[str, Sequence[str]]], now: float | None = None
    ) -> None:
        """``remember`` for several users' lists, in one Redis round trip (a batch's users)."""
        shown = [(u, items) for u, items in shown if items]
        if not shown:
            return
        at = time.time() if now is None else now
        if self._redis is not None and at >= self._skip_until:
            try:
                pipe = self._redis.pipeline(transaction=False)
                for user_id, item_ids in shown:
                    pipe.hset(self._key(user_id), mapping={i: at for i in item_ids})
                    pipe.expire(self._key(user_id), int(self.window_s) + 1)
                pipe.execute()
                return
            except Exception as err:  # noqa: BLE001 - any Redis failure: keep them here instead
                self._backoff(err, at)
        with self._lock:
            for user_id, item_ids in shown:
                served = self._local.pop(user_id, {})
                served.update(dict.fromkeys(item_ids, at))
                self._local[user_id] = served
            while len(self._local) > self.max_users:
                self._local.popitem(last=False)

    def forget_user(self, user_id: str) -> None:
        """Drop this process's impressions of ``user_id`` (the Redis hash is deleted by
        ``recs_assets.core.forget``)."""
        with self._lock:
            self._local.pop(user_id, None)

    def seen(self, user_id: str, item_id: str, now: float | None = None) -> bool:
        """Whether ``item_id`` was shown to ``user_id`` within the window."""
        at = time.time() if now is None else now
        if self._redis is not None and at >= self._skip_until:
            try:
                value = self._redis.hget(self._key(user_id), item_id)
                if value is not None and at - float(value) <= self.window_s:
                    return True
            except Exception as err:  # noqa: BLE001 - fall back to what this process saw
                self._backoff(err, at)
        with self._lock:
            when = self._local.get(user_id, {}).get(item_id)
        return when is not None and at - when <= self.window_s

    def _backoff(self, err: Exception, now: float) -> None:
        self._skip_until = now + 5.0
        logger.warning("impressions: Redis unavailable (%s); using this process's for 5 s", err)


def impression_index_from_env(
    env: Mapping[str, str] | None = None, redis_url: str | None = None, prefix: str = "recs"
) -> ImpressionIndex | None:
    """The index the service checks feedback against (None: the rule is off)."""
    env = os.environ if env is None else env
    if env.get(REQUIRED_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    raw = env.get(WINDOW_ENV, "").strip()
    try:
        window = float(raw) if raw else DEFAULT_WINDOW_S
    except ValueError as err:
        raise ValueError(f"{WINDOW_ENV}={raw!r} is not a number of seconds") from err
    return ImpressionIndex(window, redis_url, prefix)
