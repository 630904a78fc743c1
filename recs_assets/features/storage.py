"""Where feature tables live: a data-dir resource and the light handle assets pass downstream."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from dagster import ConfigurableResource
from pyspark.sql import DataFrame

from recs_assets.paths import data_dir


def default_data_dir() -> Path:
    """``$RECS_DATA_DIR``, else ``.data/`` at the repository root (git-ignored)."""
    return data_dir()


class DataDirResource(ConfigurableResource):
    """Root folder for generated data (feature Parquet, Feast repo, datasets).

    Attributes:
        path: folder; empty means ``$RECS_DATA_DIR`` or ``<repo>/.data``.
    """

    path: str = ""

    def root(self) -> Path:
        return Path(self.path) if self.path else default_data_dir()

    def feature_path(self, table: str) -> Path:
        """Parquet folder of a feature table."""
        return self.root() / "features" / table

    def dataset_path(self, name: str) -> Path:
        """Parquet folder of a training dataset."""
        return self.root() / "datasets" / name


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
