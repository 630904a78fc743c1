"""The Feast repo config (``feature_store.yaml``) for recs, with secrets kept out of the file.

The Redis password is never written: the file holds ``${RECS_REDIS_PASSWORD}``, which Feast
expands from the environment when it reads the file. ``export_redis_password`` derives that
variable from ``RECS_REDIS_URL`` in the process that opens the store (the pipeline, the service);
someone running ``feast plan`` by hand exports it themselves.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from recs_assets.core.contracts import REDIS_URL_ENV

REDIS_PASSWORD_ENV = "RECS_REDIS_PASSWORD"
CONFIG_FILE = "feature_store.yaml"


def redis_connection_string(url: str) -> str:
    """``redis://[:password@]host:port/db`` -> Feast's ``host:port,db=N[,password=...][,ssl=true]``,
    with the password as ``${RECS_REDIS_PASSWORD}`` (expanded by Feast from the environment)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
        raise ValueError(f"not a redis URL (redis://host:port/db): {url!r}")
    parts = [f"{parsed.hostname}:{parsed.port or 6379}"]
    db = parsed.path.lstrip("/") or "0"
    if not db.isdigit():
        raise ValueError(f"redis URL database must be a number, got {db!r} in {url!r}")
    parts.append(f"db={db}")
    if parsed.password:
        parts.append(f"password=${{{REDIS_PASSWORD_ENV}}}")
    if parsed.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def export_redis_password(redis_url: str = "", env: MutableMapping[str, str] | None = None) -> None:
    """Put the password of ``redis_url`` (default ``$RECS_REDIS_URL``) in ``env`` (default this
    process's environment) as ``RECS_REDIS_PASSWORD``, for Feast to expand; a password already
    exported there is kept."""
    env = os.environ if env is None else env
    password = urlparse(redis_url or env.get(REDIS_URL_ENV, "")).password
    if password and not env.get(REDIS_PASSWORD_ENV):
        env[REDIS_PASSWORD_ENV] = unquote(password)


def repo_config(project: str, repo: Path, redis_url: str = "") -> dict[str, Any]:
    """``feature_store.yaml`` as a mapping: SQLite online store in ``repo``, or Redis."""
    online: dict[str, Any] = (
        # the asset is the one writer, and may rewrite a row at the same feature_timestamp (a
        # snapshot rebuilt after a late event): Feast's Redis dedup would drop that write
        {
            "type": "redis",
            "connection_string": redis_connection_string(redis_url),
            "skip_dedup": True,
        }
        if redis_url
        else {"type": "sqlite", "path": str(repo / "online_store.db")}
    )
    return {
        "project": project,
        "registry": str(repo / "registry.db"),
        "provider": "local",
        "offline_store": {"type": "file"},
        "online_store": online,
        "entity_key_serialization_version": 3,
    }
