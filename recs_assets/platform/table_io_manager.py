"""The default IO manager: DataFrames as Parquet tables every engine can read, other values as
artifacts without pickle.

- A DataFrame output of asset ``a`` (partition ``p``) becomes ``<tables>/a/data.parquet``
  (``<tables>/a/partition=p/data.parquet``), with ``dagster/row_count`` and
  ``dagster/column_schema`` metadata for the UI's Columns tab (``core.table_store``).
- Any other value (datasets, fitted models with their id maps, reports, handles) is written by
  ``core.artifact_store`` to ``<artifacts>/a[/p]``: JSON, ``.npz`` and Parquet, models through
  their own ``save``. A value that cannot be stored that way is pickled in the instance's storage
  as a last resort, and its metadata says so and why (``stored_as``).

The roots default to ``<data dir>/tables`` and ``<data dir>/artifacts`` (``$RECS_DATA_DIR``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import Any as AnyType
from dagster import (
    AssetIn,
    ConfigurableIOManager,
    InputContext,
    MetadataValue,
    OutputContext,
    TableColumn,
    TableSchema,
)
from dagster._core.storage.fs_io_manager import PickledObjectFilesystemIOManager
from pyspark.sql import DataFrame as SparkDataFrame

from recs_assets.core.artifact_store import has_artifact, load_artifact, save_artifact
from recs_assets.core.paths import data_subdir
from recs_assets.core.table_store import (
    PARTITION_COLUMN,
    delete_table,
    has_table,
    read_table,
    table_dir,
    write_table,
)
from recs_assets.platform.spark_resource import SparkResource

TABLES_DIR_ENV = "RECS_TABLES_DIR"
ARTIFACTS_DIR_ENV = "RECS_ARTIFACTS_DIR"
FORMAT_KEY = "recs/format"
SPARK_FORMAT = "spark"


RawTable = pd.DataFrame | SparkDataFrame
"""What an input marked ``spark_table_in()`` receives: Spark over the files, or pandas."""


def spark_table_in() -> AssetIn:
    """An input read by Spark straight from the table's files (not through the driver), when the
    IO manager has a Spark resource and the table is on storage; else the value as stored."""
    return AssetIn(metadata={FORMAT_KEY: SPARK_FORMAT}, dagster_type=AnyType)


def table_name(context: InputContext | OutputContext) -> str:
    return "__".join(context.asset_key.path)


class TableIOManager(ConfigurableIOManager):
    """DataFrames as Parquet tables under ``root``; other values as artifacts under
    ``artifacts_root``.

    Attributes:
        root: folder of the tables; empty means ``$RECS_TABLES_DIR`` or ``<data dir>/tables``.
        artifacts_root: folder of the other values; empty means ``$RECS_ARTIFACTS_DIR`` or
            ``<data dir>/artifacts``.
        spark: the session that reads inputs marked ``spark_table_in()`` (None: pandas).
    """

    root: str = ""
    artifacts_root: str = ""
    spark: SparkResource | None = None

    def tables_root(self) -> Path:
        return Path(self.root) if self.root else data_subdir("tables", TABLES_DIR_ENV)

    def artifact_dir(self, context: InputContext | OutputContext, partition: str | None) -> Path:
        root = (
            Path(self.artifacts_root)
            if self.artifacts_root
            else data_subdir("artifacts", ARTIFACTS_DIR_ENV)
        )
        folder = root / table_name(context)
        return folder if partition is None else folder / partition

    def _pickles(self, instance: Any) -> PickledObjectFilesystemIOManager:
        return PickledObjectFilesystemIOManager(base_dir=instance.storage_directory())

    def handle_output(self, context: OutputContext, obj: object) -> None:
        if obj is None:
            return
        name = table_name(context)
        partition = context.asset_partition_key if context.has_asset_partitions else None
        if isinstance(obj, pd.DataFrame):
            info = write_table(obj, self.tables_root(), name, partition)
            shutil.rmtree(self.artifact_dir(context, partition), ignore_errors=True)
            context.add_output_metadata(
                {
                    "dagster/row_count": info.row_count,
                    "dagster/column_schema": TableSchema(
                        columns=[TableColumn(column, dtype) for column, dtype in info.columns]
                    ),
                    "table_path": MetadataValue.path(str(info.path)),
                }
            )
            return
        if partition is None:
            delete_table(self.tables_root(), name)  # a table left from an earlier version
        folder = self.artifact_dir(context, partition)
        try:
            save_artifact(obj, folder)
        except TypeError as reason:
            # last resort, said out loud: this value has no pickle-free form yet
            shutil.rmtree(folder, ignore_errors=True)  # no older artifact may shadow the pickle
            self._pickles(context.step_context.instance).handle_output(context, obj)
            context.add_output_metadata({"stored_as": f"pickle ({reason})"})
            return
        context.add_output_metadata(
            {"stored_as": "artifact", "artifact_path": MetadataValue.path(str(folder))}
        )

    @staticmethod
    def _spark_table(spark: SparkResource, root: Path, name: str) -> SparkDataFrame:
        """The whole table as a Spark DataFrame over its files (partition column dropped)."""
        frame = spark.get_session().read.parquet(str(table_dir(root, name)))
        return frame.drop(PARTITION_COLUMN) if PARTITION_COLUMN in frame.columns else frame

    def load_input(self, context: InputContext) -> object:
        name = table_name(context)
        root = self.tables_root()
        if context.has_asset_partitions:
            keys = list(context.asset_partition_keys)
            if all(has_table(root, name, k) for k in keys):
                return read_table(root, name, keys)
            if len(keys) == 1 and has_artifact(self.artifact_dir(context, keys[0])):
                return load_artifact(self.artifact_dir(context, keys[0]))
        else:
            if has_table(root, name):
                if (
                    self.spark is not None
                    and context.definition_metadata.get(FORMAT_KEY) == SPARK_FORMAT
                ):
                    return self._spark_table(self.spark, root, name)
                return read_table(root, name)
            if has_artifact(self.artifact_dir(context, None)):
                return load_artifact(self.artifact_dir(context, None))
        return self._pickles(context.instance).load_input(context)
