"""The Feast resource: generates the repo config in the data dir and opens the ``FeatureStore``.

Online store: SQLite in the repo folder by default; Redis when ``redis_url`` (or
``$RECS_REDIS_URL``) is set, e.g. ``redis://127.0.0.1:6379/0``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml
from dagster import ConfigurableResource
from feast import FeatureStore

from recs_assets.core.contracts import REDIS_URL_ENV
from recs_assets.features.data_dir import default_data_dir


def redis_connection_string(url: str) -> str:
    """``redis://[:password@]host:port/db`` -> Feast's ``host:port,db=N[,password=...][,ssl=true]``."""
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
        raise ValueError(f"not a redis URL (redis://host:port/db): {url!r}")
    parts = [f"{parsed.hostname}:{parsed.port or 6379}"]
    db = parsed.path.lstrip("/") or "0"
    if not db.isdigit():
        raise ValueError(f"redis URL database must be a number, got {db!r} in {url!r}")
    parts.append(f"db={db}")
    if parsed.password:
        parts.append(f"password={unquote(parsed.password)}")
    if parsed.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


class FeastResource(ConfigurableResource):
    """Where the Feast repo lives and which online store it uses.

    Attributes:
        project: Feast project name (also the Redis key suffix, so distinct projects never clash).
        repo_dir: folder for ``feature_store.yaml``, registry and SQLite store; empty means
            ``<data dir>/feast_repo``.
        redis_url: Redis URL for the online store; empty means ``$RECS_REDIS_URL``, and SQLite
            when that is unset too.
    """

    project: str = "recs"
    repo_dir: str = ""
    redis_url: str = ""

    def repo_path(self) -> Path:
        return Path(self.repo_dir) if self.repo_dir else default_data_dir() / "feast_repo"

    def resolved_redis_url(self) -> str:
        return self.redis_url or os.environ.get(REDIS_URL_ENV, "")

    def online_store_kind(self) -> str:
        return "redis" if self.resolved_redis_url() else "sqlite"

    def repo_config(self) -> dict[str, Any]:
        repo = self.repo_path()
        url = self.resolved_redis_url()
        online: dict[str, Any] = (
            {"type": "redis", "connection_string": redis_connection_string(url)}
            if url
            else {"type": "sqlite", "path": str(repo / "online_store.db")}
        )
        return {
            "project": self.project,
            "registry": str(repo / "registry.db"),
            "provider": "local",
            "offline_store": {"type": "file"},
            "online_store": online,
            "entity_key_serialization_version": 3,
        }

    def write_config(self) -> Path:
        """Write ``feature_store.yaml`` into the repo folder and return the folder."""
        repo = self.repo_path()
        repo.mkdir(parents=True, exist_ok=True)
        (repo / "feature_store.yaml").write_text(
            yaml.safe_dump(self.repo_config(), sort_keys=False)
        )
        return repo

    def store(self) -> FeatureStore:
        """A ``FeatureStore`` over the freshly written config."""
        return FeatureStore(repo_path=str(self.write_config()))
