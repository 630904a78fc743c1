"""Tables on storage that every engine reads: one Parquet folder per table, Hive-style partitions.

Layout under a root (a local folder by default, ``<data dir>/tables``)::

    <root>/<table>/data.parquet                      an unpartitioned table
    <root>/<table>/partition=<key>/data.parquet      one file per partition (e.g. a day)

pandas/pyarrow (``read_table``), DuckDB (``read_parquet('<root>/<table>/**/*.parquet',
hive_partitioning = true)``), Spark (``spark.read.parquet('<root>/<table>')``) and Feast's file
offline store read the same files. Writes are atomic per file (written beside, then renamed), so a
reader never sees half a table. pandas dtypes (nullable ``Int64``, ``string``, UTC timestamps in
microseconds) round-trip through the Parquet pandas metadata.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

DATA_FILE = "data.parquet"
PARTITION_COLUMN = "partition"


@dataclass(frozen=True)
class TableInfo:
    """What one write produced.

    Attributes:
        path: the file written.
        row_count: rows in it.
        columns: (name, type) of each column, the type as Arrow names it.
    """

    path: Path
    row_count: int
    columns: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class PartitionedFrame:
    """One table value for the several partitions a run writes at once (a range of days):
    partition key -> its rows. Every key of the run must be present, with an empty frame for a
    partition that has no rows, so a rerun of the range replaces every partition in it.
    ``parts`` may be computed as it is read (``daily.StreamedDays.valid``: each part can be
    taken once, in the run's order, and ``row_count`` does not apply)."""

    parts: Mapping[str, pd.DataFrame]

    @property
    def row_count(self) -> int:
        return sum(len(f) for f in self.parts.values())


def table_dir(root: Path | str, table: str) -> Path:
    if not table or "/" in table or table.startswith("."):
        raise ValueError(f"not a table name: {table!r}")
    return Path(root) / table


def partition_dir(root: Path | str, table: str, partition: str) -> Path:
    if not partition or "/" in partition or partition.startswith("."):
        raise ValueError(f"not a partition key: {partition!r}")
    return table_dir(root, table) / f"{PARTITION_COLUMN}={partition}"


def write_table(
    frame: pd.DataFrame, root: Path | str, table: str, partition: str | None = None
) -> TableInfo:
    """Write ``frame`` as ``table`` (or one partition of it), replacing what was there.

    An unpartitioned write replaces the whole table; a partitioned one replaces that partition
    only. Raises ``ValueError`` when ``frame`` has a ``partition`` column (the key is in the path).
    """
    if PARTITION_COLUMN in frame.columns:
        raise ValueError(f"{table}: a column named {PARTITION_COLUMN!r} is reserved for partitions")
    folder = table_dir(root, table) if partition is None else partition_dir(root, table, partition)
    if partition is None and folder.is_dir():
        for child in folder.iterdir():  # switching from partitioned to whole: nothing stale stays
            if child.is_dir() and child.name.startswith(f"{PARTITION_COLUMN}="):
                shutil.rmtree(child)
    folder.mkdir(parents=True, exist_ok=True)
    arrow = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    target = folder / DATA_FILE
    tmp = folder / f".{DATA_FILE}.{uuid.uuid4().hex}.tmp"
    pq.write_table(arrow, tmp)
    os.replace(tmp, target)
    columns = tuple((f.name, str(f.type)) for f in arrow.schema)
    return TableInfo(target, arrow.num_rows, columns)


def partitions(root: Path | str, table: str) -> list[str]:
    """The partition keys written for ``table``, sorted."""
    folder = table_dir(root, table)
    prefix = f"{PARTITION_COLUMN}="
    if not folder.is_dir():
        return []
    return sorted(
        p.name[len(prefix) :]
        for p in folder.iterdir()
        if p.is_dir() and p.name.startswith(prefix) and (p / DATA_FILE).is_file()
    )


def has_table(root: Path | str, table: str, partition: str | None = None) -> bool:
    if partition is not None:
        return (partition_dir(root, table, partition) / DATA_FILE).is_file()
    return (table_dir(root, table) / DATA_FILE).is_file() or bool(partitions(root, table))


def written_partitions(root: Path | str, table: str, wanted: Sequence[str]) -> list[str]:
    """The keys of ``wanted`` that have been written, in ``wanted``'s order."""
    written = set(partitions(root, table))
    return [k for k in wanted if k in written]


def read_table(
    root: Path | str, table: str, partition_keys: Sequence[str] | None = None
) -> pd.DataFrame:
    """``table`` as pandas: the whole table, or the rows of ``partition_keys`` concatenated in the
    given order (a partitioned table read whole is every partition, in key order).

    Raises ``FileNotFoundError`` naming the table (and partitions) that are missing.
    """
    folder = table_dir(root, table)
    whole = folder / DATA_FILE
    if partition_keys is None:
        if whole.is_file():
            return pq.read_table(whole).to_pandas()
        partition_keys = partitions(root, table)
        if not partition_keys:
            raise FileNotFoundError(f"table {table!r} has not been written under {root}")
    missing = [k for k in partition_keys if not has_table(root, table, k)]
    if missing:
        raise FileNotFoundError(f"table {table!r} has no partition(s) {missing} under {root}")
    frames = [pq.read_table(partition_dir(root, table, k) / DATA_FILE) for k in partition_keys]
    if not frames:
        raise ValueError(f"table {table!r}: no partitions asked for")
    merged = pa.concat_tables(frames, promote_options="default")
    return merged.to_pandas()


def delete_table(root: Path | str, table: str) -> None:
    """Remove ``table`` and all its partitions (nothing when absent)."""
    shutil.rmtree(table_dir(root, table), ignore_errors=True)


@dataclass(frozen=True)
class TableRef:
    """A table on storage, not read yet: the engine that reads it (Spark, DuckDB, pyarrow)
    decides how, so handing it over starts no engine.

    Attributes:
        root: the tables root.
        table: the table's name.
        keys: the partitions to read, in order; None for the whole table.
    """

    root: Path
    table: str
    keys: tuple[str, ...] | None = None

    @property
    def folder(self) -> Path:
        return table_dir(self.root, self.table)

    def files(self) -> list[str]:
        """The Parquet files of the table (or of ``keys``), in key order."""
        if self.keys is None:
            whole = self.folder / DATA_FILE
            if whole.is_file():
                return [str(whole)]
            keys: Sequence[str] = partitions(self.root, self.table)
        else:
            keys = self.keys
        return [str(partition_dir(self.root, self.table, k) / DATA_FILE) for k in keys]

    def row_count(self) -> int:
        """Rows in the files, from their Parquet footers (no data read)."""
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files())

    def spark(self, session: Any) -> Any:
        """The table as a Spark DataFrame over its files (Spark reads them, not the driver),
        without the partition column."""
        everything = self.keys is None or set(self.keys) == set(partitions(self.root, self.table))
        if everything:
            frame = session.read.parquet(str(self.folder))
        else:
            paths = [str(partition_dir(self.root, self.table, k)) for k in self.keys or ()]
            frame = session.read.option("basePath", str(self.folder)).parquet(*paths)
        return frame.drop(PARTITION_COLUMN) if PARTITION_COLUMN in frame.columns else frame
