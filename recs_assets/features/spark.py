"""The Spark resource: owns the one SparkSession that feature assets use.

Transforms never create sessions; assets ask this resource for one. The session is created lazily
(on the first ``get_session`` call), so loading definitions does not start a JVM.
"""

from __future__ import annotations

import os

import pandas as pd
from dagster import ConfigurableResource
from pydantic import Field
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from recs_assets.phase1.schema import TABLE_COLUMNS, TS_DTYPE

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


_SPARK_TYPES: dict[str, T.DataType] = {
    "string": T.StringType(),
    "float64": T.DoubleType(),
    "Int64": T.LongType(),
    TS_DTYPE: T.TimestampType(),
}


def spark_schema(table: str) -> T.StructType:
    """The Spark schema of a canonical Phase 1 table (``interactions``, ``users``, ``items``)."""
    cols = TABLE_COLUMNS[table]
    return T.StructType(
        [
            T.StructField(name, _SPARK_TYPES[dtype], nullable=True)
            for name, (dtype, _) in cols.items()
        ]
    )


def to_spark(spark: SparkSession, df: pd.DataFrame, table: str) -> DataFrame:
    """Convert a canonical Phase 1 pandas frame to Spark with the canonical schema.

    Raises ``ValueError`` naming the columns when ``df`` lacks canonical columns.
    """
    cols = TABLE_COLUMNS[table]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{table}: column(s) missing for Spark conversion: {', '.join(missing)}")
    out = df[list(cols)].copy()
    for name, (dtype, _) in cols.items():
        if dtype == TS_DTYPE:
            out[name] = pd.to_datetime(out[name], utc=True).astype(TS_DTYPE)
        elif dtype == "Int64":
            out[name] = out[name].astype("Int64")
        elif dtype == "float64":
            out[name] = out[name].astype("float64")
        else:
            out[name] = out[name].astype("string")
    return spark.createDataFrame(out, schema=spark_schema(table))
