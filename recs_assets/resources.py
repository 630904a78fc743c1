"""Resources per deployment, picked by one environment variable, ``RECS_DEPLOYMENT``.

- ``local`` (default): everything embedded: synthetic (or ``RECS_SOURCE``) Phase 1 source, local
  Spark, SQLite Feast online store, MLflow store under ``.mlflow/``, in-process serving cache.
- ``production``: the same resources pointed at real services; each service's variable must be set
  (``RECS_SOURCE``, ``RECS_SPARK_MASTER``, ``MLFLOW_TRACKING_URI``, ``RECS_REDIS_URL``), and a missing
  one is an error at load time rather than a silent fallback to a laptop default.

Every resource also reads its own variable in local mode, so one service at a time can be made real
(e.g. only ``RECS_REDIS_URL``).

Values that can carry credentials (``SECRET_ENVS``: URLs with passwords or tokens) are passed as
Dagster ``EnvVar``s, resolved when a run starts: the UI and its GraphQL API show the variable's
name, never its value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dagster import EnvVar

from recs_assets.automation.alerts import AlertWebhook
from recs_assets.automation.landing_source import LandedPhase1Source
from recs_assets.core.contracts import DEPLOYMENT_ENV, REDIS_URL_ENV
from recs_assets.core.phase1.privacy import pseudonym_key
from recs_assets.features.feast_resource import FeastResource
from recs_assets.models.mlflow_tracker import MlflowTracker
from recs_assets.monitoring.trending_store import TrendingStore
from recs_assets.platform.data_dir import DataDirResource
from recs_assets.platform.spark_resource import SparkResource
from recs_assets.platform.table_io_manager import TABLES_DIR_ENV, TableIOManager
from recs_assets.raw.source_resource import SOURCE_ENV
from recs_assets.serving.cache_resource import ServingCacheResource

DEPLOYMENTS = ("local", "production")
PRODUCTION_REQUIRED = (SOURCE_ENV, "RECS_SPARK_MASTER", "MLFLOW_TRACKING_URI", "RECS_REDIS_URL")
ALERT_WEBHOOK_ENV = "RECS_ALERT_WEBHOOK"
MLFLOW_URI_ENV = "MLFLOW_TRACKING_URI"
SECRET_ENVS = (REDIS_URL_ENV, MLFLOW_URI_ENV, ALERT_WEBHOOK_ENV)


def deployment(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    name = env.get(DEPLOYMENT_ENV, "local") or "local"
    if name not in DEPLOYMENTS:
        raise ValueError(f"{DEPLOYMENT_ENV}={name!r}: use one of {', '.join(DEPLOYMENTS)}")
    return name


def default_driver_memory() -> str:
    """40% of this machine's memory (at least 1 GiB), in Spark's notation (``9g``)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{max(1, int(total * 0.4 / 2**30))}g"


def secret(env: Mapping[str, str], name: str) -> str | EnvVar:
    """``EnvVar(name)`` when ``name`` is set in ``env`` (the UI shows the name only), else ``""``."""
    return EnvVar(name) if env.get(name) else ""


def build_resources(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The resource dict for the deployment named in ``env`` (default: this process's)."""
    env = os.environ if env is None else env
    if deployment(env) == "production":
        missing = [v for v in PRODUCTION_REQUIRED if not env.get(v)]
        if missing:
            raise ValueError(f"{DEPLOYMENT_ENV}=production needs {', '.join(missing)} to be set")
        pseudonym_key(env)  # a real pseudonym key, refused at load time rather than at first use
    redis_url = secret(env, REDIS_URL_ENV)
    spark = SparkResource(
        master=env.get("RECS_SPARK_MASTER", ""),
        conf={
            # Laptop-sized data: Spark's default 200 shuffle partitions cost more than the work.
            "spark.sql.shuffle.partitions": env.get("RECS_SPARK_SHUFFLE_PARTITIONS", "8"),
            # In local mode the driver JVM does all the work: Spark's 1 GiB default runs out of
            # heap on ten million events; 40% of the machine's memory by default.
            "spark.driver.memory": env.get("RECS_SPARK_DRIVER_MEMORY", "")
            or default_driver_memory(),
        },
    )
    return {
        # DataFrames as Parquet tables (<data dir>/tables), readable by Spark, DuckDB and pandas;
        # the feature assets get the raw tables as references to those files (TableRef), read
        # by the engine of the build
        "io_manager": TableIOManager(root=env.get(TABLES_DIR_ENV, "")),
        "phase1": LandedPhase1Source.from_spec(env.get(SOURCE_ENV, "synthetic") or "synthetic"),
        "spark": spark,
        "data_dir": DataDirResource(path=env.get("RECS_DATA_DIR", "")),
        "feast": FeastResource(redis_url=redis_url),
        "mlflow_tracker": MlflowTracker(tracking_uri=secret(env, MLFLOW_URI_ENV)),
        "serving_cache": ServingCacheResource(redis_url=redis_url),
        "trending_store": TrendingStore(redis_url=redis_url),
        "alert_webhook": AlertWebhook(url=secret(env, ALERT_WEBHOOK_ENV)),
    }
