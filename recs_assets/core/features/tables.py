"""The light handle a feature table asset passes downstream, and how it is written."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import reduce
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recs_assets.core.features.incremental import BuildInputs, write_manifest


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
