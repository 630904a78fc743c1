"""The light handle a feature table asset passes downstream, and how it is written."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path

import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema

from recs_assets.core.features.duck import parquet_files
from recs_assets.core.features.incremental import PARTITION_PREFIX, BuildInputs, write_manifest
from recs_assets.core.table_store import PARTITION_COLUMN


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


def write_snapshot_table(
    session: SparkSession,
    computed: Sequence[DataFrame],
    kept: Sequence[datetime],
    name: str,
    path: Path,
    snapshots: tuple[datetime, ...],
    inputs: BuildInputs,
) -> FeatureTable:
    """Write the ``computed`` snapshot frames plus the rows of the ``kept`` snapshots of the table
    now at ``path``, then the manifest of this build (``inputs``).

    The new table is written beside the old one and swapped in (the kept rows are read from the
    old one while writing), so a failed write leaves the previous table and manifest in place.
    """
    frames = list(computed)
    if kept:
        old = session.read.parquet(str(path))
        frames.append(old.where(F.col("feature_timestamp").isin(list(kept))))
    if not frames:
        raise ValueError(f"{name}: no snapshot to write")
    return write_swapped(
        reduce(lambda a, b: a.unionByName(b), frames), name, path, snapshots, inputs
    )


def write_swapped(
    df: DataFrame,
    name: str,
    path: Path,
    snapshots: tuple[datetime, ...],
    inputs: BuildInputs,
) -> FeatureTable:
    """Write ``df`` beside the table at ``path`` (which ``df`` may read), swap it in, then write
    the manifest of this build; a failed write leaves the previous table and manifest."""
    return swap_in(
        lambda staged: write_feature_table(df, name, staged, snapshots), path, snapshots, inputs
    )


def swap_in(
    write: Callable[[Path], FeatureTable],
    path: Path,
    snapshots: tuple[datetime, ...],
    inputs: BuildInputs,
) -> FeatureTable:
    """Call ``write`` on a folder beside ``path`` (the writer may read the table at ``path``),
    swap the result in, then write the manifest of this build (any engine); a failed write
    leaves the previous table and manifest."""
    staged = path.with_name(f".{path.name}.next")
    retired = path.with_name(f".{path.name}.old")
    for leftover in (staged, retired):
        shutil.rmtree(leftover, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = write(staged)
    if path.exists():
        path.rename(retired)
    staged.rename(path)
    shutil.rmtree(retired, ignore_errors=True)
    write_manifest(path, replace(inputs, snapshots=tuple(t.isoformat() for t in snapshots)))
    return replace(table, path=str(path))


def day_partitions(path: Path) -> dict[str, Path] | None:
    """Day -> folder of a table written in day partitions (``partition=<day>/``), or None when
    the table at ``path`` is missing, has no day, or holds Parquet outside such folders (another
    layout, or the empty file of a table without rows)."""
    if not path.is_dir():
        return None
    days: dict[str, Path] = {}
    for child in path.iterdir():
        if child.name.startswith(("_", ".")):
            continue
        if not (child.is_dir() and child.name.startswith(PARTITION_PREFIX)):
            return None
        days[child.name[len(PARTITION_PREFIX) :]] = child
    return days or None  # no day at all (an empty table): nothing to keep


# the file system refuses hard links here: copy instead
_NO_LINKS = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP}


def link_days(days: dict[str, Path], staged: Path) -> None:
    """Hard-link the Parquet files of ``days`` (folders of the current table) into ``staged``
    (copied where the file system refuses links): the rows are the same, nothing is rewritten."""
    for folder in days.values():
        target = staged / folder.name
        target.mkdir(parents=True, exist_ok=True)
        for f in folder.glob("*.parquet"):
            _link(f, target / f.name)


def _link(source: Path, target: Path) -> None:
    """Hard-link ``source`` as ``target``, or copy it where the file system refuses links."""
    try:
        os.link(source, target)
    except OSError as err:  # a name already there is a bug, never overwritten
        if err.errno not in _NO_LINKS:
            raise
        shutil.copy2(source, target)


SNAPSHOT_COLUMN = "feature_timestamp"


def snapshot_file_name(as_of: datetime) -> str:
    """The name of the file holding the one snapshot at ``as_of`` (``snapshot-<UTC time>``)."""
    return f"snapshot-{as_of.astimezone(UTC):%Y%m%dT%H%M%S%fZ}.parquet"


def single_snapshot(file: str) -> datetime | None:
    """The one ``feature_timestamp`` every row of the Parquet ``file`` holds, read from its
    footer's statistics; None when the file holds no row, several snapshots, or no statistics
    (a file written by Spark may mix snapshots: its rows are then read, not linked)."""
    meta = pq.ParquetFile(file).metadata
    names = meta.schema.to_arrow_schema().names
    if meta.num_rows == 0 or SNAPSHOT_COLUMN not in names:
        return None
    column = names.index(SNAPSHOT_COLUMN)
    times: set[datetime] = set()
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(column).statistics
        if stats is None or not stats.has_min_max or stats.null_count != 0:
            return None
        times.update((stats.min, stats.max))
    if len(times) != 1:
        return None
    (t,) = times
    return t if isinstance(t, datetime) and t.tzinfo is not None else None


def link_snapshots(path: Path, kept: Sequence[datetime], staged: Path) -> list[datetime]:
    """Hard-link (copy where links are refused) into ``staged`` the files of the table at
    ``path`` that hold one snapshot each, of the ``kept`` times: a kept snapshot is not
    rewritten. Returns the times linked; the other kept times are left to the caller."""
    wanted = set(kept)
    linked: list[datetime] = []
    for f in parquet_files(path):
        t = single_snapshot(f)
        if t is None or t not in wanted or t in linked:
            continue
        _link(Path(f), staged / snapshot_file_name(t))
        linked.append(t)
    return linked


EMPTY_FILE = "part-00000.parquet"
"""The one (empty) file of a per-event table without rows: it carries the schema."""


def has_parquet(path: Path) -> bool:
    return bool(parquet_files(path))


def summarize(name: str, path: Path, columns: Sequence[str]) -> FeatureTable:
    """The handle of the Parquet table at ``path``: rows from the files' footers, columns from
    their schema (``columns`` when no file was written: no rows)."""
    files = parquet_files(path)
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    if files:
        columns = pq.ParquetFile(files[0]).schema_arrow.names
    return FeatureTable(name, str(path), rows, tuple(c for c in columns if c != PARTITION_COLUMN))


def write_days_swapped(
    df: DataFrame | None, name: str, path: Path, inputs: BuildInputs, kept: dict[str, Path]
) -> FeatureTable:
    """Write the per-event rows of ``df`` (None: no new rows) in day partitions beside the table
    at ``path``, hard-link its ``kept`` day folders in, swap the result in, then write the
    manifest of this build."""

    def write(staged: Path) -> FeatureTable:
        if df is not None:
            # one task (one file) per day, not one per shuffle task and day
            days = df.withColumn(PARTITION_COLUMN, F.date_format("timestamp", "yyyy-MM-dd"))
            days = days.repartition(PARTITION_COLUMN)
            days.write.partitionBy(PARTITION_COLUMN).parquet(str(staged))
        staged.mkdir(parents=True, exist_ok=True)
        link_days(kept, staged)
        if df is not None and not has_parquet(staged):
            # no rows: one empty file keeps the schema for readers (and is rebuilt next time)
            schema = to_arrow_schema(df.schema, timezone="UTC")
            pq.write_table(schema.empty_table(), staged / EMPTY_FILE)
        return summarize(name, staged, df.columns if df is not None else ())

    return swap_in(write, path, (), inputs)


@dataclass(frozen=True)
class DayReuse:
    """What an incremental build of a per-event table keeps: the day folders before ``first``
    (every folder when ``first`` is None: nothing changed); rows on ``first`` and after are
    recomputed."""

    first: str | None
    kept: dict[str, Path]


def day_reuse(path: Path, changed: set[str] | None) -> DayReuse | None:
    """How much of the per-event table at ``path`` a build keeps, given the ``changed`` event
    days (``incremental.changed_days``); None: rebuild it all (no comparable previous build, or
    a table not in day partitions).

    A row of a per-event table reads only its user's earlier events, so new or changed events
    on a day leave every row of the days before it as it is."""
    old = day_partitions(path)
    if changed is None or old is None:
        return None
    first = min(changed, default=None)
    return DayReuse(first, {d: f for d, f in old.items() if first is None or d < first})
