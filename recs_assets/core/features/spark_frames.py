"""Phase 1 pandas frames as Spark DataFrames with the canonical schema."""

from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

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
