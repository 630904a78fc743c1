"""The light handle a feature table asset passes downstream, and how it is written."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pyspark.sql import DataFrame


@dataclass(frozen=True)
class FeatureTable:
    """The value a feature asset hands downstream: where its Parquet is and what it holds.

    Attributes:
        name: feature table name (``user_features``...).
        path: Parquet folder (Spark output, microsecond timestamps).
        row_count: rows written.
        columns: column names, in order.
        snapshots: the ``as_of`` times written (empty for per-event tables).
    """

    name: str
    path: str
    row_count: int
    columns: tuple[str, ...]
    snapshots: tuple[datetime, ...] = ()


def write_feature_table(
    df: DataFrame, name: str, path: Path, snapshots: tuple[datetime, ...] = ()
) -> FeatureTable:
    """Write ``df`` as Parquet at ``path`` (replacing it) and return its handle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    df.write.mode("overwrite").parquet(str(path))
    written = df.sparkSession.read.parquet(str(path))
    return FeatureTable(name, str(path), written.count(), tuple(written.columns), snapshots)
