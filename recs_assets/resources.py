"""Resources per deployment, picked by one environment variable, ``RECS_DEPLOYMENT``.

- ``local`` (default): everything embedded: synthetic (or ``RECS_SOURCE``) Phase 1 source, local
  Spark, MLflow store under ``.mlflow/``.
- ``production``: the same resources pointed at real services; each service's variable must be set
  (``RECS_SOURCE``, ``RECS_SPARK_MASTER``, ``MLFLOW_TRACKING_URI``), and a missing one is an error
  at load time rather than a silent fallback to a laptop default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from recs_assets.models.tracking import MlflowTracker
from recs_assets.phase1.sources import SOURCE_ENV, Phase1Source

DEPLOYMENT_ENV = "RECS_DEPLOYMENT"
DEPLOYMENTS = ("local", "production")
PRODUCTION_REQUIRED = (SOURCE_ENV, "RECS_SPARK_MASTER", "MLFLOW_TRACKING_URI")


def deployment(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    name = env.get(DEPLOYMENT_ENV, "local") or "local"
    if name not in DEPLOYMENTS:
        raise ValueError(f"{DEPLOYMENT_ENV}={name!r}: use one of {', '.join(DEPLOYMENTS)}")
    return name


def build_resources(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The resource dict for the deployment named in ``env`` (default: this process's)."""
    env = os.environ if env is None else env
    name = deployment(env)
    if name == "production":
        missing = [v for v in PRODUCTION_REQUIRED if not env.get(v)]
        if missing:
            raise ValueError(f"{DEPLOYMENT_ENV}=production needs {', '.join(missing)} to be set")
    return {
        "phase1": Phase1Source.from_spec(env.get(SOURCE_ENV, "synthetic") or "synthetic"),
        "mlflow_tracker": MlflowTracker(tracking_uri=env.get("MLFLOW_TRACKING_URI", "")),
    }
