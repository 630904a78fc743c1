"""The two engines of the feature tables behind one interface, and which one a build uses.

- ``SparkEngine``: the PySpark transforms (``core.features.transforms``), on a cluster when
  ``RECS_SPARK_MASTER`` is set, or locally for data past one process's comfort.
- ``DuckEngine``: the same rows from DuckDB SQL (``core.features.duck``), in process: no JVM to
  start and no per-query planning cost, which on small data is most of Spark's time.

``choose_engine`` decides: an explicit choice wins; ``auto`` is Spark on a cluster and DuckDB in
local mode up to ``duckdb_max_events`` events. Both write the same Parquet (same rows and types,
``tests/features/test_duck_parity.py``), so a table built by one is read, extended and kept
(snapshot reuse) by the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import duckdb
import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as ds
from pyspark.sql import DataFrame as SparkDataFrame
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from recs_assets.core.features import duck, item_state
from recs_assets.core.features.incremental import BuildInputs, Carry
from recs_assets.core.features.spark_frames import as_spark, event_time_range, time_range
from recs_assets.core.features.tables import (
    FeatureTable,
    day_reuse,
    has_parquet,
    link_days,
    link_snapshots,
    single_snapshot,
    snapshot_file_name,
    summarize,
    swap_in,
    write_days_swapped,
    write_snapshot_table,
)
from recs_assets.core.features.transforms.context import context_features
from recs_assets.core.features.transforms.item import item_features, top_categories
from recs_assets.core.features.transforms.user import user_features
from recs_assets.core.phase1.schema import TABLE_COLUMNS
from recs_assets.core.table_store import PARTITION_COLUMN, TableRef

Engine = Literal["auto", "spark", "duckdb"]
ENGINES: tuple[str, ...] = get_args(Engine)
Source = pd.DataFrame | TableRef | SparkDataFrame
"""A raw table as an engine gets it: files on storage, a Spark frame, or pandas (small data)."""


def event_count(events: Source) -> int:
    """Rows of the interactions (Parquet footers for a table on storage)."""
    if isinstance(events, TableRef):
        return events.row_count()
    if isinstance(events, pd.DataFrame):
        return len(events)
    return int(events.count())


def choose_engine(engine: Engine, master: str, events: int, duckdb_max_events: int) -> str:
    """``spark`` or ``duckdb``: ``engine`` unless ``auto``; then Spark when the master is a
    cluster, DuckDB in local mode up to ``duckdb_max_events`` events, Spark above."""
    if engine != "auto":
        return engine
    if not master.startswith("local"):
        return "spark"
    return "duckdb" if events <= duckdb_max_events else "spark"


class SparkEngine:
    """The PySpark transforms over the raw tables (read by Spark from storage)."""

    name = "spark"

    def __init__(
        self,
        session: SparkSession,
        interactions: Source,
        users: Source | None = None,
        items: Source | None = None,
    ) -> None:
        self.session = session
        self.items: SparkDataFrame | None = None
        self.events = self._frame(interactions, "interactions").cache()
        try:
            self.users = self._frame(users, "users") if users is not None else None
            self.items = self._frame(items, "items").cache() if items is not None else None
        except BaseException:
            self.close()
            raise

    def _frame(self, source: Source, name: str) -> SparkDataFrame:
        if isinstance(source, TableRef):
            source = source.spark(self.session)
        return as_spark(self.session, source, name)

    def close(self) -> None:
        self.events.unpersist()
        if self.items is not None:
            self.items.unpersist()

    def top_categories(self, limit: int) -> list[str]:
        assert self.items is not None
        return [r.category for r in top_categories(self.items, limit).collect()]

    def time_range(self) -> tuple[datetime, datetime]:
        return time_range(self.events)

    def user_snapshot(
        self,
        as_of: datetime,
        categories: Sequence[str],
        gap: int,
        carry: Carry | None = None,
        path: Path | None = None,
    ) -> Any:
        """The rows at ``as_of``, computed in full (``carry`` is DuckDB's shortcut)."""
        assert self.users is not None and self.items is not None
        return user_features(
            self.events,
            self.users,
            self.items,
            as_of=as_of,
            categories=categories,
            session_gap_minutes=gap,
        )

    def item_snapshot(
        self,
        as_of: datetime,
        carry: Carry | None = None,
        path: Path | None = None,
        newest: bool = False,
        days: Mapping[str, str] | None = None,
    ) -> Any:
        """The rows at ``as_of``, computed in full (``carry`` and the kept state are DuckDB's
        shortcut)."""
        assert self.items is not None
        return item_features(self.events, self.items, as_of=as_of)

    def write_snapshots(
        self,
        computed: Mapping[datetime, Any],
        kept: Sequence[datetime],
        name: str,
        path: Path,
        snapshots: tuple[datetime, ...],
        inputs: BuildInputs,
    ) -> FeatureTable:
        return write_snapshot_table(
            self.session, list(computed.values()), kept, name, path, snapshots, inputs
        )

    def write_context(
        self, path: Path, inputs: BuildInputs, changed: set[str] | None, gap: int
    ) -> tuple[FeatureTable, str]:
        """``context_features`` at ``path``, in day partitions: every event, or (``changed``
        days, ``tables.day_reuse``) the rows from the first changed day on, recomputed from the
        whole history of the users with an event then, and the earlier days' files kept as they
        are. Returns the table and how many users were recomputed (``all``)."""
        reuse = day_reuse(path, changed)
        if reuse is None:
            df = context_features(self.events, session_gap_minutes=gap)
            return write_days_swapped(df, "context_features", path, inputs, {}), "all"
        if reuse.first is None:
            return write_days_swapped(None, "context_features", path, inputs, reuse.kept), "0"
        since = F.date_format("timestamp", "yyyy-MM-dd") >= F.lit(reuse.first)
        touched = self.events.where(since).select("user_id").distinct().cache()
        try:
            fresh = context_features(
                self.events.join(touched, "user_id", "left_semi"), session_gap_minutes=gap
            ).where(since)
            table = write_days_swapped(fresh, "context_features", path, inputs, reuse.kept)
            return table, str(touched.count())
        finally:
            touched.unpersist()

    def preview(self, path: str) -> pd.DataFrame:
        return self.session.read.parquet(path).drop(PARTITION_COLUMN).limit(5).toPandas()


def _no_rows(table: str) -> pd.DataFrame:
    """An empty canonical table (the context features read no users or items)."""
    return pd.DataFrame({c: pd.Series([], dtype="string") for c in TABLE_COLUMNS[table]})


def _source_relation(source: Source) -> Sequence[str] | pd.DataFrame:
    if isinstance(source, TableRef):
        return source.files()
    if isinstance(source, pd.DataFrame):
        return source
    raise TypeError("the DuckDB engine reads tables on storage or pandas frames, not Spark")


class DuckEngine:
    """The DuckDB transforms over the raw tables' files (or pandas frames), in process."""

    name = "duckdb"

    def __init__(
        self,
        interactions: Source,
        users: Source | None = None,
        items: Source | None = None,
        memory_limit: str | None = None,
    ) -> None:
        frames = {
            name: _source_relation(s) if s is not None else _no_rows(name)
            for name, s in (("users", users), ("items", items))
        }
        self.db = duck.FeatureConnection(
            _source_relation(interactions),
            frames["users"],
            frames["items"],
            memory_limit=memory_limit,
        )
        # the newest item snapshot's state (written beside it) and where it started from
        self._item_state: item_state.ItemStateMeta | None = None
        self.item_carried_from: datetime | None = None
        self.item_carry_refused: str | None = None

    def close(self) -> None:
        self.db.close()

    def top_categories(self, limit: int) -> list[str]:
        return self.db.top_categories(limit)

    def time_range(self) -> tuple[datetime, datetime]:
        return self.db.time_range()

    def user_snapshot(
        self,
        as_of: datetime,
        categories: Sequence[str],
        gap: int,
        carry: Carry | None = None,
        path: Path | None = None,
    ) -> str:
        """The rows at ``as_of``; with ``carry`` (and the table at ``path`` holding its
        previous snapshot), recomputed only for the users whose row may have moved
        (``duck.carried_user_features_sql``)."""
        if carry is None:
            return duck.user_features_sql(
                as_of=as_of, categories=categories, session_gap_minutes=gap
            )
        files = duck.parquet_files(path) if path is not None else []
        if not files:
            raise ValueError(f"user_features: no table at {path} to carry the newest rows from")
        # the file of the previous snapshot alone, where it has one
        files = [f for f in files if single_snapshot(f) == carry.previous] or files
        return duck.carried_user_features_sql(
            as_of=as_of,
            previous=carry.previous,
            previous_files=files,
            changed_days=list(carry.changed_days),
            categories=categories,
            session_gap_minutes=gap,
        )

    def item_snapshot(
        self,
        as_of: datetime,
        carry: Carry | None = None,
        path: Path | None = None,
        newest: bool = False,
        days: Mapping[str, str] | None = None,
    ) -> str:
        """The rows at ``as_of`` from the item state at ``as_of`` (``core.features.item_state``).
        For the ``newest`` snapshot the state is kept for ``write_snapshots`` to write beside
        the table at ``path``, with this build's event-day fingerprints ``days``; with ``carry``
        it starts from the previous build's kept state where ``item_state.carry_refusal``
        allows. ``item_carried_from`` / ``item_carry_refused`` then say which way it went."""
        half_life = duck.DEFAULT_HALF_LIFE_DAYS
        if not newest:
            return duck.item_features_from_state_sql(
                as_of=as_of, state=f"({duck.item_state_sql(as_of=as_of, half_life_days=half_life)})"
            )
        self.item_carried_from, self.item_carry_refused = None, None
        if carry is not None and path is not None:
            self._carry_item_state(as_of, carry, path, days or {}, half_life)
        if self.item_carried_from is None:
            state_sql = duck.item_state_sql(as_of=as_of, half_life_days=half_life)
            self.db.con.execute(
                f"CREATE OR REPLACE TEMP TABLE {item_state.TEMP_TABLE} AS {state_sql}"
            )
        events, checksum = self._day_checksum(as_of)
        self._item_state = item_state.ItemStateMeta(
            as_of.isoformat(), events, checksum, half_life, dict(days or {})
        )
        return duck.item_features_from_state_sql(
            as_of=as_of, state=item_state.TEMP_TABLE, half_life_days=half_life
        )

    def _carry_item_state(
        self, as_of: datetime, carry: Carry, path: Path, days: Mapping[str, str], half_life: float
    ) -> None:
        """The state at ``as_of`` from the kept one, into ``item_state.TEMP_TABLE``, when
        ``item_state.carry_refusal`` allows; else the reason in ``item_carry_refused``. A kept
        state that does not read (damaged, or of columns this code does not expect) is a
        reason too: the state is then computed from all events, as without one."""
        meta = item_state.read_meta(path)
        day_now = self._day_checksum(meta.time) if meta is not None else None
        why = item_state.carry_refusal(meta, carry.previous, days, day_now, half_life)
        if why is not None:
            self.item_carry_refused = why
            return
        assert meta is not None
        sql = duck.carried_item_state_sql(
            as_of=as_of,
            previous=meta.time,
            previous_state=duck.files_relation([str(item_state.state_file(path))]),
            half_life_days=half_life,
        )
        try:
            self.db.con.execute(f"CREATE OR REPLACE TEMP TABLE {item_state.TEMP_TABLE} AS {sql}")
        except duckdb.Error as err:
            self.item_carry_refused = f"the kept state does not read: {err}"
            return
        self.item_carried_from = meta.time

    def _day_checksum(self, as_of: datetime) -> tuple[int, str]:
        row = self.db.con.execute(duck.day_checksum_sql(as_of)).fetchone()
        assert row is not None
        return int(row[0]), str(row[1])

    def write_snapshots(
        self,
        computed: Mapping[datetime, str],
        kept: Sequence[datetime],
        name: str,
        path: Path,
        snapshots: tuple[datetime, ...],
        inputs: BuildInputs,
    ) -> FeatureTable:
        """Write each ``computed`` snapshot as a file of its own, hard-link the files of the
        ``kept`` snapshots of the table at ``path`` (the rows of a kept snapshot in a file
        holding several, as Spark writes them, are read and written to a file of its own),
        swap the new table in, then write the manifest."""
        if not computed and not kept:
            raise ValueError(f"{name}: no snapshot to write")

        def write(staged: Path) -> FeatureTable:
            staged.mkdir(parents=True)
            rest = set(kept) - set(link_snapshots(path, kept, staged))
            columns: tuple[str, ...] = ()
            for as_of, sql in computed.items():
                w = duck.write_parquet_file(self.db.con, sql, staged / snapshot_file_name(as_of))
                columns = columns or w.columns
            old = duck.files_relation(duck.parquet_files(path)) if rest else ""
            for t in sorted(rest):  # a file of its own each: the next build links them
                duck.write_parquet_file(
                    self.db.con,
                    f"SELECT * FROM {old} "
                    f"WHERE feature_timestamp = TIMESTAMPTZ {duck.lit(t.isoformat())}",
                    staged / snapshot_file_name(t),
                )
            if name == "item_features" and self._item_state is not None:
                # beside the table, before it is swapped in: a state newer than the table's
                # manifest is refused by the next build, never trusted
                item_state.replace_state(
                    path,
                    lambda target: duck.write_parquet_file(
                        self.db.con, f"SELECT * FROM {item_state.TEMP_TABLE}", target
                    ),
                    self._item_state,
                )
            table = summarize(name, staged, columns)
            return replace(table, snapshots=snapshots)

        return swap_in(write, path, snapshots, inputs)

    def write_context(
        self, path: Path, inputs: BuildInputs, changed: set[str] | None, gap: int
    ) -> tuple[FeatureTable, str]:
        """As ``SparkEngine.write_context``."""
        reuse = day_reuse(path, changed)
        sql: str | None = duck.context_features_sql(session_gap_minutes=gap)
        touched = "all"
        if reuse is not None and reuse.first is None:
            sql, touched = None, "0"
        elif reuse is not None:
            since = f"timestamp >= TIMESTAMPTZ {duck.lit(reuse.first + 'T00:00:00+00:00')}"
            users = f"SELECT DISTINCT user_id FROM interactions WHERE {since}"
            n = self.db.con.execute(f"SELECT count(*) FROM ({users})").fetchone()
            recomputed = duck.context_features_sql(session_gap_minutes=gap, users=users)
            sql, touched = f"SELECT * FROM ({recomputed}) WHERE {since}", str(n[0] if n else 0)

        def write(staged: Path) -> FeatureTable:
            columns = duck.write_day_partitions(self.db.con, sql, staged) if sql else []
            staged.mkdir(parents=True, exist_ok=True)
            link_days(reuse.kept if reuse else {}, staged)
            if sql and not has_parquet(staged):  # no rows: an empty file keeps the schema
                duck.write_parquet(self.db.con, f"SELECT * FROM ({sql}) LIMIT 0", staged)
            return summarize("context_features", staged, columns)

        return swap_in(write, path, (), inputs), touched

    def preview(self, path: str) -> pd.DataFrame:
        return self.db.frame(
            f"SELECT * FROM {duck.files_relation(duck.parquet_files(path))} LIMIT 5"
        )


def newest_event_time(events: Source) -> datetime:
    """The newest event ``timestamp`` (UTC) of the interactions; only that column is read."""
    if isinstance(events, TableRef):
        column = ds.dataset(events.files(), format="parquet").to_table(columns=["timestamp"])
        newest = pc.max(column["timestamp"]).as_py()
        if newest is None:
            raise ValueError("raw_interactions is empty")
        return newest.astimezone(UTC)
    return event_time_range(events)[1]
