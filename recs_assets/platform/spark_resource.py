"""The Spark resource: owns the one SparkSession that feature assets use.

Transforms never create sessions; assets ask this resource for one. The session is created lazily
(on the first ``get_session`` call), so loading definitions does not start a JVM.
"""

from __future__ import annotations

import os

from dagster import ConfigurableResource
from pydantic import Field
from pyspark.sql import SparkSession

MASTER_ENV = "RECS_SPARK_MASTER"
DEFAULT_MASTER = "local[*]"

# Settings every recs session needs for correct results, whatever the deployment:
# UTC wall clock for hour/day features, and microsecond Parquet timestamps (what Feast reads).
REQUIRED_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


class SparkResource(ConfigurableResource):
    """A lazily created SparkSession.

    Attributes:
        master: Spark master URL; empty means ``$RECS_SPARK_MASTER`` or ``local[*]``.
        app_name: application name shown in the Spark UI / master.
        conf: extra Spark settings (``spark.sql.shuffle.partitions`` and friends).
    """

    master: str = Field(
        default="", description="Spark master; empty: $RECS_SPARK_MASTER or local[*]"
    )
    app_name: str = "recs"
    conf: dict[str, str] = Field(default_factory=dict)

    def resolved_master(self) -> str:
        return self.master or os.environ.get(MASTER_ENV) or DEFAULT_MASTER

    def get_session(self) -> SparkSession:
        """Return the active session, creating it on first use."""
        builder = SparkSession.builder.master(self.resolved_master()).appName(self.app_name)
        for key, value in {**self.conf, **REQUIRED_CONF}.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        # getOrCreate may hand back a session started elsewhere: enforce the correctness settings.
        for key, value in REQUIRED_CONF.items():
            session.conf.set(key, value)
        return session
