"""Point-in-time featurization out of core: DuckDB joins the feature Parquet onto the rows and
writes the result straight to Parquet.

Same rule as ``point_in_time_join`` (the newest feature row stamped strictly before the example),
as a DuckDB ``ASOF LEFT JOIN ... AND e.t > f.t``, so the joined rows never become a pandas frame:
DuckDB reads the feature tables from storage, works within ``memory_limit`` (spilling to
``temp_dir`` beyond it) and streams the output. On 10 million events the pandas join held several
copies of the 5-million-row train part and its ~40 feature columns in the driver; this holds
none.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from recs_assets.core.duckdb_settings import default_memory_limit
from recs_assets.core.features.duck import files_relation, parquet_files

BASE_COLUMNS = ("user_id", "item_id", "timestamp", "event_type", "rating", "weight")
FEATURE_TIME = "feature_timestamp"


@dataclass(frozen=True)
class Featurized:
    """What a featurization wrote.

    Attributes:
        path: the Parquet file.
        rows: rows written (the input's, in its order).
        with_user_features: share of rows that found a user feature row before them.
        preview: the first rows, as pandas (for metadata).
    """

    path: str
    rows: int
    with_user_features: float
    preview: pd.DataFrame


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _features_relation(path: str) -> str:
    """A DuckDB table expression over a feature Parquet folder (either engine's) or file: its
    data files, as ``duck.parquet_files`` lists them (not the files in ``_``- or ``.``-named
    folders that a ``**/*.parquet`` glob would also match, which no other reader takes)."""
    files = parquet_files(path)
    if not files:
        raise ValueError(f"no feature Parquet files at {path}")
    return files_relation(files)


def _feature_columns(path: str, key: str) -> list[str]:
    names = ds.dataset(path, format="parquet").schema.names
    if key not in names or FEATURE_TIME not in names:
        raise ValueError(f"feature table {path} lacks {key!r} or {FEATURE_TIME!r}: has {names}")
    return [c for c in names if c != key]


def featurize_to_parquet(
    rows: pd.DataFrame,
    users_path: str,
    items_path: str,
    out: Path,
    *,
    memory_limit: str | None = None,
    threads: int | None = None,
    preview_rows: int = 5,
) -> Featurized:
    """Write ``rows`` with user and item features joined point-in-time to ``out`` (Parquet).

    Args:
        rows: examples with ``user_id``, ``item_id``, ``timestamp`` (any of ``event_type``,
            ``rating``, ``weight`` are carried too; other columns are dropped).
        users_path, items_path: feature Parquet folders with the key, ``feature_timestamp`` and
            the features; their columns come out prefixed ``user__`` / ``item__``.
        out: the Parquet file to write (replaced atomically).
        memory_limit: DuckDB's limit (``default_memory_limit()`` when None).
        threads: DuckDB threads (all cores when None).

    Returns:
        What was written; the file keeps the input's row order.
    """
    missing = [c for c in ("user_id", "item_id", "timestamp") if c not in rows.columns]
    if missing:
        raise ValueError(f"rows lack column(s) {missing}")
    if rows["timestamp"].isna().any():
        raise ValueError(f"rows hold {int(rows['timestamp'].isna().sum())} null timestamp(s)")
    user_cols = _feature_columns(users_path, "user_id")
    item_cols = _feature_columns(items_path, "item_id")
    base_cols = [c for c in BASE_COLUMNS if c in rows.columns]
    base = rows[base_cols]
    table = pa.Table.from_pandas(base, preserve_index=False)
    table = table.append_column("__row", pa.array(np.arange(len(base), dtype=np.int64)))

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    spill = tempfile.mkdtemp(prefix="recs-duckdb-", dir=out.parent)
    con = duckdb.connect(
        config={
            "memory_limit": memory_limit or default_memory_limit(),
            "temp_directory": spill,
            "threads": threads or os.cpu_count() or 1,
        }
    )
    try:
        con.register("examples", table)
        select = [f"e.{_quote(c)}" for c in base_cols]
        select += [f"u.{_quote(c)} AS {_quote('user__' + c)}" for c in user_cols]
        select += [f"i.{_quote(c)} AS {_quote('item__' + c)}" for c in item_cols]
        query = f"""
            WITH e AS (
                SELECT *, CAST(user_id AS VARCHAR) AS __u, CAST(item_id AS VARCHAR) AS __i,
                       CAST("timestamp" AS TIMESTAMPTZ) AS __t
                FROM examples
            ),
            u AS (
                SELECT *, CAST(user_id AS VARCHAR) AS __u,
                       CAST({FEATURE_TIME} AS TIMESTAMPTZ) AS __t
                FROM {_features_relation(users_path)}
            ),
            i AS (
                SELECT *, CAST(item_id AS VARCHAR) AS __i,
                       CAST({FEATURE_TIME} AS TIMESTAMPTZ) AS __t
                FROM {_features_relation(items_path)}
            )
            SELECT {", ".join(select)}
            FROM e
            ASOF LEFT JOIN u ON e.__u = u.__u AND e.__t > u.__t
            ASOF LEFT JOIN i ON e.__i = i.__i AND e.__t > i.__t
            ORDER BY e.__row
        """
        target = str(partial).replace("'", "''")
        con.execute(f"COPY ({query}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
        rel = f"read_parquet('{target}')"
        count, covered = con.execute(
            f"SELECT count(*), avg(CASE WHEN user__{FEATURE_TIME} IS NULL THEN 0 ELSE 1 END) "
            f"FROM {rel}"
        ).fetchone()
        preview = con.execute(f"SELECT * FROM {rel} LIMIT {int(preview_rows)}").df()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    os.replace(partial, out)
    return Featurized(str(out), int(count), float(covered or 0.0), preview)
