"""API keys with scopes and per-key rate limits for the HTTP service (an ASGI middleware).

Keys are configured as JSON, in ``$RECS_API_KEYS`` or in the file named by
``$RECS_API_KEYS_FILE``: a list of ``{"name": ..., "sha256": <hex digest of the key>, "scopes":
[...]}``. Only digests are stored, and several keys may be valid at once, so a key is rotated by
adding the new one, moving clients, then removing the old. ``recs api-key`` makes a key and prints
its entry. A client sends ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

Scopes: ``read`` (recommend, recommend_batch, similar_items, score), ``write`` (feedback),
``admin`` (model_info, metrics). Health probes, the Swagger UI and the OpenAPI spec are open.
No key: 401; a key without the route's scope: 403; each with a JSON message.

Without keys the service is open, which only the local default allows: with
``RECS_DEPLOYMENT=production`` and no key, the service refuses to start.

Rate limits: ``$RECS_RATE_LIMIT_PER_S`` requests per second per key (per client address when
keys are off); 0 turns them off, the default off locally and 100 in production. Counted in Redis
(``$RECS_REDIS_URL``, shared by every worker) or in process; a request over the limit gets 429
with ``Retry-After``. A Redis that fails or is slow is skipped for a while and counting falls back
to the process: a dead dependency never refuses or fails a request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recs_assets.core.contracts import DEPLOYMENT_ENV, REDIS_URL_ENV, is_production

KEYS_ENV = "RECS_API_KEYS"
KEYS_FILE_ENV = "RECS_API_KEYS_FILE"
RATE_ENV = "RECS_RATE_LIMIT_PER_S"
PRODUCTION_RATE_PER_S = 100
SCOPES: tuple[str, ...] = ("read", "write", "admin")
ROUTE_SCOPES: dict[str, str] = {
    "/recommend": "read",
    "/recommend_batch": "read",
    "/similar_items": "read",
    "/score": "read",
    "/feedback": "write",
    "/model_info": "admin",
    "/forget_user": "admin",
    "/metrics": "admin",
}
OPEN_PATHS: tuple[str, ...] = ("/readyz", "/livez", "/healthz", "/docs.json", "/", "/docs")
OPEN_PREFIXES: tuple[str, ...] = ("/static_content/", "/docs/")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger("recs.service")


def digest(key: str) -> str:
    """The SHA-256 hex digest stored for ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(name: str, scopes: list[str]) -> tuple[str, dict[str, Any]]:
    """A fresh random key and the entry to configure for it (its digest, never the key)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be a non-empty subset of {', '.join(SCOPES)}: {unknown}")
    key = f"recs_{secrets.token_urlsafe(32)}"
    return key, {"name": name, "sha256": digest(key), "scopes": sorted(set(scopes))}


@dataclass(frozen=True)
class ApiKey:
    name: str
    sha256: str
    scopes: frozenset[str]


def parse_keys(text: str, where: str) -> list[ApiKey]:
    """Key entries from JSON text; errors name ``where`` and the entry."""
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not JSON ({err})") from err
    if not isinstance(entries, list):
        raise ValueError(f"{where}: expected a list of key entries")
    keys = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"name", "sha256", "scopes"} <= set(entry):
            raise ValueError(f"{where}: entry {n} needs name, sha256 and scopes")
        hexdigest = str(entry["sha256"]).lower()
        if len(hexdigest) != 64 or any(c not in "0123456789abcdef" for c in hexdigest):
            raise ValueError(f"{where}: entry {n} ({entry['name']}): sha256 is not a hex digest")
        scopes = frozenset(entry["scopes"])
        if not scopes or scopes - set(SCOPES):
            raise ValueError(
                f"{where}: entry {n} ({entry['name']}): scopes must be among {', '.join(SCOPES)}"
            )
        keys.append(ApiKey(str(entry["name"]), hexdigest, scopes))
    return keys


def keys_from_env(env: Mapping[str, str]) -> list[ApiKey]:
    """Keys of ``$RECS_API_KEYS`` and of the file ``$RECS_API_KEYS_FILE`` together."""
    keys: list[ApiKey] = []
    if env.get(KEYS_ENV, "").strip():
        keys += parse_keys(env[KEYS_ENV], KEYS_ENV)
    path = env.get(KEYS_FILE_ENV, "").strip()
    if path:
        if not Path(path).is_file():
            raise ValueError(f"{KEYS_FILE_ENV}={path}: no such file")
        keys += parse_keys(Path(path).read_text(), path)
    return keys


def checked_keys(env: Mapping[str, str] | None = None) -> list[ApiKey]:
    """The configured keys, or ``ValueError`` when the configuration is broken or production has
    none. ``bento/service.py`` calls it at import, so ``bentoml serve`` stops at once with the
    message instead of starting workers that cannot build their app."""
    env = os.environ if env is None else env
    keys = keys_from_env(env)
    if is_production(env) and not keys:
        raise ValueError(
            f"{DEPLOYMENT_ENV}=production needs API keys: set {KEYS_ENV} or {KEYS_FILE_ENV} "
            "(`recs api-key --name app --scopes read,write` makes one)"
        )
    return keys


class RateLimiter:
    """Requests per second per client, counted in Redis when given, else in this process."""

    def __init__(
        self,
        per_second: int,
        redis_url: str | None = None,
        prefix: str = "recs",
        timeout_s: float = 0.1,
    ) -> None:
        self.per_second = per_second
        self.prefix = prefix
        self._local: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._redis = None
        self._skip_until = 0.0
        if redis_url and per_second > 0:
            import redis

            self._redis = redis.Redis.from_url(
                redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=None
            )

    def allow(self, client: str, now: float | None = None) -> tuple[bool, float]:
        """(allowed, seconds until the next window) for one request of ``client`` (at ``now``,
        default the wall clock)."""
        if self.per_second <= 0:
            return True, 0.0
        now = time.time() if now is None else now
        window = int(now)
        count = self._count_redis(client, window, now)
        if count is None:
            count = self._count_local(client, window)
        return count <= self.per_second, max(0.0, window + 1 - now)

    def _count_redis(self, client: str, window: int, now: float) -> int | None:
        if self._redis is None or now < self._skip_until:
            return None
        key = f"{self.prefix}-rate:{client}:{window}"  # beside the cache's ``{prefix}:`` keys
        try:
            pipe = self._redis.pipeline()
            pipe.incr(key)
            pipe.expire(key, 10)  # a few windows back stay readable (tests, debugging)
            return int(pipe.execute()[0])
        except Exception as err:  # noqa: BLE001 - any Redis failure: count in process for a while
            self._skip_until = now + 5.0
            logger.warning("rate limit: Redis unavailable (%s); counting in process", err)
            return None

    def _count_local(self, client: str, window: int) -> int:
        with self._lock:
            if len(self._local) > 10_000:  # old windows
                self._local = {k: v for k, v in self._local.items() if k[1] >= window}
            count = self._local.get((client, window), 0) + 1
            self._local[(client, window)] = count
            return count


class AccessControl:
    """ASGI middleware: API keys with scopes, then the per-key rate limit."""

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        env: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self.app = app
        self.keys = {k.sha256: k for k in checked_keys(env)}
        production = is_production(env)
        rate = env.get(RATE_ENV, "").strip()
        per_second = int(rate) if rate else (PRODUCTION_RATE_PER_S if production else 0)
        self.limiter = RateLimiter(
            per_second,
            env.get(REDIS_URL_ENV) or None,
            env.get("RECS_CACHE_PREFIX", "recs"),
            float(env.get("RECS_REDIS_TIMEOUT_S", "0.1") or 0.1),  # as the response cache's
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        client = _client_address(scope)
        if self.keys:
            key = self._key_of(scope)
            if key is None:
                await _answer(send, 401, "missing or unknown API key (Authorization: Bearer <key>)")
                logger.info("rejected %s: no valid API key", path)
                return
            needed = ROUTE_SCOPES.get(path, "admin")
            if needed not in key.scopes:
                await _answer(send, 403, f"key {key.name!r} lacks the {needed!r} scope for {path}")
                logger.info("rejected %s: key %s lacks scope %s", path, key.name, needed)
                return
            client = f"key:{key.name}"
        allowed, retry = self.limiter.allow(client)
        if not allowed:
            await _answer(
                send,
                429,
                f"rate limit of {self.limiter.per_second} requests/s exceeded",
                [(b"retry-after", str(max(1, round(retry))).encode())],
            )
            return
        await self.app(scope, receive, send)

    def _key_of(self, scope: Scope) -> ApiKey | None:
        given = None
        for name, value in scope.get("headers", []):
            lower = name.lower()
            if lower == b"authorization" and value[:7].lower() == b"bearer ":
                given = value[7:].decode("latin-1").strip()
            elif lower == b"x-api-key":
                given = value.decode("latin-1").strip()
        if not given:
            return None
        hashed = digest(given)
        for known, key in self.keys.items():
            if hmac.compare_digest(known, hashed):
                return key
        return None


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return f"addr:{client[0]}" if client else "addr:unknown"


async def _answer(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
