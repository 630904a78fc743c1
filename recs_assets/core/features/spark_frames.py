"""Phase 1 tables as Spark DataFrames with the canonical schema: read from storage by Spark (any
size), or converted from pandas (small local data and tests)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recs_assets.core.features.snapshots import newest_and_oldest
from recs_assets.core.phase1.schema import TABLE_COLUMNS, TS_DTYPE

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


def as_spark(spark: SparkSession, table: pd.DataFrame | DataFrame, name: str) -> DataFrame:
    """A Phase 1 table as Spark with the canonical columns in order: a Spark DataFrame (read from
    storage) is used as it is, a pandas one is converted with ``to_spark``.

    Raises ``ValueError`` naming the columns when canonical columns are missing.
    """
    if isinstance(table, pd.DataFrame):
        return to_spark(spark, table, name)
    cols = TABLE_COLUMNS[name]
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise ValueError(f"{name}: column(s) missing in the Spark table: {', '.join(missing)}")
    schema = spark_schema(name)
    return table.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def time_range(events: DataFrame) -> tuple[datetime, datetime]:
    """(oldest, newest) ``timestamp`` of Spark events as UTC datetimes (one aggregation on the
    cluster); raises ``ValueError`` when there are none."""
    row = events.agg(
        F.unix_micros(F.min("timestamp")).alias("oldest"),
        F.unix_micros(F.max("timestamp")).alias("newest"),
    ).first()
    if row is None or row["oldest"] is None:
        raise ValueError("raw_interactions is empty: no features can be computed")
    return (
        datetime.fromtimestamp(row["oldest"] / 1e6, tz=UTC),
        datetime.fromtimestamp(row["newest"] / 1e6, tz=UTC),
    )


def event_time_range(events: pd.DataFrame | DataFrame) -> tuple[datetime, datetime]:
    """(oldest, newest) event ``timestamp`` of a pandas or Spark interactions table."""
    if isinstance(events, pd.DataFrame):
        return newest_and_oldest(events)
    return time_range(events)
