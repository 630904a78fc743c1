"""The default IO manager: DataFrames as Parquet tables every engine can read, other values as
artifacts without pickle.

- A DataFrame output of asset ``a`` (partition ``p``) becomes ``<tables>/a/data.parquet``
  (``<tables>/a/partition=p/data.parquet``), with ``dagster/row_count`` and
  ``dagster/column_schema`` metadata for the UI's Columns tab (``core.table_store``). A run over a
  range of partitions (single-run backfill) returns a ``PartitionedFrame``: one frame per key.
- A partitioned table read by an unpartitioned asset is every partition written so far (a day
  never materialized is not there); an input marked ``table_in()`` gets a ``TableRef`` to the files
  (its engine reads them), others pandas.
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

from recs_assets.core.artifact_store import has_artifact, load_artifact, save_artifact
from recs_assets.core.paths import data_subdir
from recs_assets.core.table_store import (
    PartitionedFrame,
    TableInfo,
    TableRef,
    delete_table,
    has_table,
    read_table,
    table_dir,
    write_table,
    written_partitions,
)

TABLES_DIR_ENV = "RECS_TABLES_DIR"
ARTIFACTS_DIR_ENV = "RECS_ARTIFACTS_DIR"
FORMAT_KEY = "recs/format"
REF_FORMAT = "table_ref"


RawTable = pd.DataFrame | TableRef
"""What an input marked ``table_in()`` receives: a reference to the table's files on storage
(read by the engine the asset picks), or the value as stored (pandas) when it is not a table."""


def table_in() -> AssetIn:
    """An input handed over as a ``TableRef`` to its files on storage, not read through the
    driver: the asset's engine (Spark on a cluster, DuckDB locally) reads them."""
    return AssetIn(metadata={FORMAT_KEY: REF_FORMAT}, dagster_type=AnyType)


def table_name(context: InputContext | OutputContext) -> str:
    return "__".join(context.asset_key.path)


class TableIOManager(ConfigurableIOManager):
    """DataFrames as Parquet tables under ``root``; other values as artifacts under
    ``artifacts_root``.

    Attributes:
        root: folder of the tables; empty means ``$RECS_TABLES_DIR`` or ``<data dir>/tables``.
        artifacts_root: folder of the other values; empty means ``$RECS_ARTIFACTS_DIR`` or
            ``<data dir>/artifacts``.
    """

    root: str = ""
    artifacts_root: str = ""

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
        if isinstance(obj, PartitionedFrame):
            self._write_partitions(context, name, obj)
            return
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

    def _write_partitions(self, context: OutputContext, name: str, obj: PartitionedFrame) -> None:
        """Each partition of the run's range written on its own, in the run's order, each value
        taken once (a streamed value computes its partitions as they are taken); the keys must
        be the run's."""
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else []
        if sorted(obj.parts) != sorted(keys):
            extra = sorted(set(obj.parts) - set(keys))
            absent = sorted(set(keys) - set(obj.parts))
            raise ValueError(
                f"{name}: the value's partitions differ from the run's "
                f"(not in the run: {extra[:5]}; missing: {absent[:5]})"
            )
        infos: list[TableInfo] = [
            write_table(obj.parts[k], self.tables_root(), name, k) for k in keys
        ]
        meta: dict[str, Any] = {
            "dagster/column_schema": TableSchema(
                columns=[TableColumn(column, dtype) for column, dtype in infos[0].columns]
            ),
            "rows_in_run": sum(i.row_count for i in infos),
            "partitions_in_run": len(keys),
            "table_path": MetadataValue.path(str(table_dir(self.tables_root(), name))),
        }
        if len(keys) == 1:
            meta["dagster/row_count"] = infos[0].row_count
        context.add_output_metadata(meta)

    def load_input(self, context: InputContext) -> object:
        name = table_name(context)
        root = self.tables_root()
        as_ref = context.definition_metadata.get(FORMAT_KEY) == REF_FORMAT
        if context.has_asset_partitions:
            keys = list(context.asset_partition_keys)
            if len(keys) == 1 and has_artifact(self.artifact_dir(context, keys[0])):
                return load_artifact(self.artifact_dir(context, keys[0]))
            # an unpartitioned reader asks for every key; the days never materialized are absent
            written = written_partitions(root, name, keys)
            if written:
                if as_ref:
                    return TableRef(root, name, tuple(written))
                return read_table(root, name, written)
        elif has_table(root, name):
            if as_ref:
                return TableRef(root, name)
            return read_table(root, name)
        elif has_artifact(self.artifact_dir(context, None)):
            return load_artifact(self.artifact_dir(context, None))
        return self._pickles(context.instance).load_input(context)
