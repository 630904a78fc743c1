"""Where generated tables live: the data-dir resource (feature Parquet, Feast repo, datasets)."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource

from recs_assets.core.paths import data_dir


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
