"""The Feast resource: generates the repo config in the data dir and opens the ``FeatureStore``.

Online store: SQLite in the repo folder by default; Redis when ``redis_url`` (or
``$RECS_REDIS_URL``) is set, e.g. ``redis://127.0.0.1:6379/0``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from dagster import ConfigurableResource
from feast import FeatureStore

from recs_assets.core.contracts import REDIS_URL_ENV
from recs_assets.core.features.feast_config import CONFIG_FILE, export_redis_password, repo_config
from recs_assets.platform.data_dir import default_data_dir


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
        return repo_config(self.project, self.repo_path(), self.resolved_redis_url())

    def write_config(self) -> Path:
        """Write ``feature_store.yaml`` into the repo folder and return the folder."""
        repo = self.repo_path()
        repo.mkdir(parents=True, exist_ok=True)
        (repo / CONFIG_FILE).write_text(yaml.safe_dump(self.repo_config(), sort_keys=False))
        return repo

    def store(self) -> FeatureStore:
        """A ``FeatureStore`` over the freshly written config (the Redis password, never in the
        file, is exported to this process's environment for Feast to expand)."""
        repo = self.write_config()
        export_redis_password(self.resolved_redis_url())
        return FeatureStore(repo_path=str(repo))
