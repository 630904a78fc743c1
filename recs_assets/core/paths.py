"""Where recs keeps generated data by default: one data dir, with a folder per kind of data.

``$RECS_DATA_DIR`` (default ``.data/`` in the repository, git-ignored) holds the feature Parquet,
datasets, reports, the landing folder, served lists and feedback; each folder can also be moved
on its own with its own variable (``RECS_LANDING_DIR``, ``RECS_SERVED_DIR``, ...).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR_ENV = "RECS_DATA_DIR"


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$RECS_DATA_DIR``, else ``<repo>/.data``."""
    env = os.environ if env is None else env
    return Path(env[DATA_DIR_ENV]) if env.get(DATA_DIR_ENV) else REPO_ROOT / ".data"


def data_subdir(name: str, override_env: str = "", env: Mapping[str, str] | None = None) -> Path:
    """``$<override_env>`` when set, else ``<data dir>/<name>``."""
    env = os.environ if env is None else env
    if override_env and env.get(override_env):
        return Path(env[override_env])
    return data_dir(env) / name


LOCAL_MLFLOW_DIR = REPO_ROOT / ".mlflow"
"""The embedded MLflow store (SQLite tracking and registry, artifact folder) when no server is set."""


def local_mlflow_uri(root: Path = LOCAL_MLFLOW_DIR) -> str:
    """Tracking URI of the embedded store under ``root``."""
    return f"sqlite:///{root / 'mlflow.db'}"
