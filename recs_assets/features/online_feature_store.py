"""Asset ``online_feature_store``: the Feast repo applied and its newest features materialized online.

It reads the feature tables only after their blocking contract checks passed, so a table that
broke its contract never reaches the online store. A freshness check fails when the newest
online value lags the newest raw event by more than an hour.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    Config,
    MetadataValue,
    Output,
    asset,
    asset_check,
)
from feast import FeatureStore
from feast.online_response import TIMESTAMP_POSTFIX

from recs_assets.core.features import sqlite_online
from recs_assets.core.features.engines import newest_event_time
from recs_assets.core.features.feast_repo.feature_views import TIMESTAMP_FIELD, feature_objects
from recs_assets.core.features.online_clock import AS_OF_FEATURE, AS_OF_KEY, CLOCK_COLUMNS
from recs_assets.core.features.online_delta import (
    changed_cells,
    merged_mirror,
    read_mirror,
    same_schema,
    write_mirror,
)
from recs_assets.core.features.tables import FeatureTable
from recs_assets.features.feast_resource import FeastResource
from recs_assets.platform.table_io_manager import RawTable, table_in

MAX_LAG = timedelta(hours=1)
FRESHNESS_SAMPLE = 100  # freshest keys read back: all were written at the newest time
HELD_SAMPLE = 100  # held keys read back before a delta write (all must be online)
MIRROR_DIR = "online_rows"  # in the repo folder: the rows the store holds, as last written
COLUMNS_CHANGED = "the view's columns changed"


@dataclass(frozen=True)
class OnlineFeatureStore:
    """What was materialized online.

    Attributes:
        project: Feast project.
        repo_path: folder with the generated ``feature_store.yaml``.
        online_store: ``sqlite`` or ``redis``.
        newest_event: newest raw interaction timestamp.
        newest_online_value: newest feature timestamp read back from the online store.
        sample_user_ids: users whose online rows were read back for freshness.
    """

    project: str
    repo_path: str
    online_store: str
    newest_event: datetime
    newest_online_value: datetime | None
    sample_user_ids: tuple[str, ...]

    @property
    def lag(self) -> timedelta | None:
        if self.newest_online_value is None:
            return None
        return self.newest_event - self.newest_online_value


def newest_online_timestamp(store: FeatureStore, user_ids: list[str]) -> datetime | None:
    """Newest event timestamp of ``user_features`` among the online rows of ``user_ids``."""
    stamps = [t for t in online_stamps(store, "user_features", "user_id", user_ids) if t]
    if not stamps:
        return None
    return datetime.fromtimestamp(max(stamps), tz=UTC)


class OnlineWriteConfig(Config):
    """``mode``: ``auto`` writes only the rows whose values moved since the last write (see
    ``core/features/online_delta.py``), and everything when the store does not hold what the
    last write left (first run, new columns, a flushed store); ``full`` always writes every row
    of the newest snapshots."""

    mode: Literal["auto", "full"] = "auto"


@dataclass(frozen=True)
class ViewWrite:
    """What one feature view's write did: ``full`` or ``delta``, the rows written (and their
    values: ``cells``), the rows held, and why (a full write's cause, or why a delta's rows
    were written whole; empty otherwise)."""

    view: str
    mode: str
    written: int
    cells: int
    held: int
    reason: str


def newest_snapshot(path: str, as_of: datetime) -> pa.Table:
    """The rows of the snapshot at ``as_of`` of a feature Parquet folder."""
    data = ds.dataset(path, format="parquet")
    stamp = pa.scalar(as_of, type=data.schema.field(TIMESTAMP_FIELD).type)
    return data.to_table(filter=ds.field(TIMESTAMP_FIELD) == stamp)


def online_stamps(store: FeatureStore, view: str, key: str, keys: list[str]) -> list[int]:
    """Epoch seconds (Feast's event timestamps) of the online rows of ``keys`` in ``view``, 0
    where there is none."""
    response = store.get_online_features(
        features=[f"{view}:{AS_OF_FEATURE}"], entity_rows=[{key: k} for k in keys]
    ).to_dict(include_event_timestamps=True)
    return [int(t or 0) for t in response.get(AS_OF_FEATURE + TIMESTAMP_POSTFIX, [])]


def drop_online_rows(store: FeatureStore, view: str) -> None:
    """Delete every online row of ``view`` and recreate its (empty) table: rows of a column the
    view no longer has would otherwise stay (SQLite then answers their older timestamps)."""
    fv = store.get_feature_view(view)
    provider = store._get_provider()  # noqa: SLF001 - Feast's one door to a view's online table
    provider.update_infra(store.project, [fv], [], [], [], partial=True)
    provider.update_infra(store.project, [], [fv], [], [], partial=True)


def why_full(
    store: FeatureStore,
    view: str,
    key: str,
    snapshot: pa.Table,
    held: tuple[pa.Table, datetime | None] | None,
    mode: str,
) -> str:
    """Why ``view`` must be written in full (empty: a delta write is safe)."""
    if mode == "full":
        return "mode full"
    if held is None:
        return "no rows held from an earlier write"
    rows, as_of = held
    if not same_schema(rows.schema, snapshot.schema):
        return COLUMNS_CHANGED
    # the store's as-of row must be the one the last write left, and a sample of the held keys
    # must be there (a flushed Redis, evicted keys, another store): else write everything
    sample = sorted(str(k) for k in rows[key].to_pylist())[:HELD_SAMPLE]
    stamps = online_stamps(store, view, key, [AS_OF_KEY, *sample])
    # Feast keeps event timestamps to the second
    if as_of is None or stamps[0] != int(as_of.timestamp()):
        return f"the store's as-of row is not the last write's ({stamps[0]} s)"
    if not all(stamps[1:]):
        return f"{stamps[1:].count(0)} of {len(sample)} sampled held rows are missing online"
    return ""


def write_view(
    store: FeatureStore, view: str, key: str, table: FeatureTable, mirror_path: Path, mode: str
) -> tuple[ViewWrite, pa.Table]:
    """Bring ``view`` online up to ``table``'s newest snapshot; returns what was done and the
    rows the store now holds (the new mirror)."""
    as_of = max(table.snapshots)
    snapshot = newest_snapshot(table.path, as_of)
    held = read_mirror(mirror_path)
    reason = why_full(store, view, key, snapshot, held, mode)
    fast = sqlite_online.fast_path(store, view)
    if reason:
        if reason == COLUMNS_CHANGED:
            drop_online_rows(store, view)
        rows, now_held, kind = snapshot, snapshot, "full"
        cells = write_online(store, view, rows, fast)
    else:
        assert held is not None
        kind = "delta"
        rows, cells, now_held, reason = write_delta(
            store, view, key, snapshot, held[0], fast, as_of
        )
    # the row that says when the store is current as of (readers age clock columns to it)
    write_online(store, view, as_of_marker(snapshot.schema, key, as_of), fast)
    write_mirror(now_held, mirror_path, as_of)
    return ViewWrite(view, kind, rows.num_rows, cells, now_held.num_rows, reason), now_held


def write_delta(
    store: FeatureStore,
    view: str,
    key: str,
    snapshot: pa.Table,
    held: pa.Table,
    fast: bool,
    as_of: datetime,
) -> tuple[pa.Table, int, pa.Table, str]:
    """Write the rows of ``snapshot`` that moved against the ``held`` rows; returns them, the
    values written, the rows the store then holds, and why they were written whole if they
    were on SQLite (else empty).

    Redis (through Feast) keeps one stamp per key and view: a moved row is written whole. The
    SQLite store keeps a value and a stamp per cell, so only the moved cells are written (a
    landed day moves about a third of the values of the rows it moves), plus the ones a reader
    takes the row's time from: the clock columns (they move with it), ``AS_OF_FEATURE``, and
    the value Feast's SQLite read reports the stamp of, the key's last one inserted
    (``sqlite_online.stamp_feature``). A sample of the moved keys is read back; a stamp that is
    not the new time has the moved rows written whole."""
    clock = CLOCK_COLUMNS.get(view, ())
    stamped = (AS_OF_FEATURE, sqlite_online.stamp_feature(store, view)) if fast else ()
    found = changed_cells(snapshot, held, key, clock, stamped)
    if not fast or not found.rows.num_rows:
        whole = write_online(store, view, found.rows, fast)
        return found.rows, whole, merged_mirror(held, found.rows, key), ""
    cells = write_online(store, view, found.rows, fast, found.moved)
    sample = sorted(str(k) for k in found.rows[key].to_pylist())[:HELD_SAMPLE]
    stamps = online_stamps(store, view, key, sample)
    stale = sum(t != int(as_of.timestamp()) for t in stamps)
    if stale:
        # not the stamp this writer expects Feast to report: nothing is left to the order
        whole = write_online(store, view, found.rows, fast)
        why = f"rows written whole: {stale} of {len(sample)} moved keys read back another stamp"
        return found.rows, whole, merged_mirror(held, found.rows, key), why
    return found.rows, cells, merged_mirror(held, found.held, key), ""


def write_online(
    store: FeatureStore,
    view: str,
    rows: pa.Table,
    fast: bool,
    moved: Mapping[str, pa.Array] | None = None,
) -> int:
    """``rows`` into ``view``'s online rows: batched on the SQLite store (``fast``, the same
    rows as Feast's writer, ``sqlite_online``; with ``moved``, only those cells), through Feast
    elsewhere (whole rows). Returns the values written."""
    if not rows.num_rows:
        return 0
    if fast:
        return sqlite_online.write_rows(store, view, rows, moved)
    store.write_to_online_store(view, rows.to_pandas())
    return rows.num_rows * (rows.num_columns - 2)  # every column but the key and timestamp


def as_of_marker(schema: pa.Schema, key: str, as_of: datetime) -> pa.Table:
    """The ``AS_OF_KEY`` row, stamped ``as_of``, every feature a zero value (0, "", false): Feast
    answers no timestamp for an empty value, and a reader reads the stamp of any column."""

    def zero(t: pa.DataType) -> object:
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return ""
        if pa.types.is_boolean(t):
            return False
        return 0

    columns = {f.name: pa.array([zero(f.type)], f.type) for f in schema}
    columns[key] = pa.array([AS_OF_KEY], schema.field(key).type)
    columns[TIMESTAMP_FIELD] = pa.array([as_of], schema.field(TIMESTAMP_FIELD).type)
    return pa.table(columns, schema=schema)


def freshest_keys(held: pa.Table, key: str, limit: int) -> list[str]:
    """Up to ``limit`` keys (sorted) of the rows written at the newest time."""
    newest = pc.max(held[TIMESTAMP_FIELD])
    keys = held.filter(pc.equal(held[TIMESTAMP_FIELD], newest))[key]
    return sorted(str(k) for k in keys.to_pylist())[:limit]


@asset(ins={"raw_interactions": table_in()})
def online_feature_store(
    context: AssetExecutionContext,
    config: OnlineWriteConfig,
    feast: FeastResource,
    raw_interactions: RawTable,
    user_features: FeatureTable,
    item_features: FeatureTable,
) -> Output[OnlineFeatureStore]:
    """The Feast online store (SQLite or Redis) holding each user's and item's newest features:
    after the first write, only the rows whose values moved (clock columns aside) are written."""
    store = feast.store()
    store.apply(feature_objects(Path(user_features.path), Path(item_features.path)))
    if not user_features.snapshots or not item_features.snapshots:
        raise ValueError(
            "user_features/item_features carry no snapshot times: nothing to materialize"
        )
    mirrors = feast.repo_path() / MIRROR_DIR
    writes, held = [], {}
    for view, key, table in (
        ("user_features", "user_id", user_features),
        ("item_features", "item_id", item_features),
    ):
        done, held[view] = write_view(
            store, view, key, table, mirrors / f"{view}.parquet", config.mode
        )
        writes.append(done)
        context.log.info(
            f"{view}: {done.mode} write of {done.written} of {done.held} rows "
            f"({done.cells} values)" + (f" ({done.reason})" if done.reason else "")
        )
    newest_event = newest_event_time(raw_interactions)
    sample = freshest_keys(held["user_features"], "user_id", FRESHNESS_SAMPLE)
    state = OnlineFeatureStore(
        project=feast.project,
        repo_path=str(feast.repo_path()),
        online_store=feast.online_store_kind(),
        newest_event=newest_event,
        newest_online_value=newest_online_timestamp(store, sample),
        sample_user_ids=tuple(sample),
    )
    lag = state.lag
    context.log.info(f"online store {state.online_store}: freshness lag {lag}")
    newest = (max(user_features.snapshots), max(item_features.snapshots))
    return Output(
        state,
        metadata={
            "online_store": MetadataValue.text(state.online_store),
            "project": MetadataValue.text(state.project),
            "as_of": MetadataValue.text(max(newest).isoformat()),
            "writes": MetadataValue.json(
                {
                    w.view: {
                        "mode": w.mode,
                        "written": w.written,
                        "cells_written": w.cells,
                        "held": w.held,
                    }
                    | ({"reason": w.reason} if w.reason else {})
                    for w in writes
                }
            ),
            "rows_written": MetadataValue.int(sum(w.written for w in writes)),
            "newest_raw_event": MetadataValue.text(newest_event.isoformat()),
            "newest_online_value": MetadataValue.text(
                state.newest_online_value.isoformat() if state.newest_online_value else "none"
            ),
            "freshness_lag_s": MetadataValue.float(
                lag.total_seconds() if lag is not None else -1.0
            ),
            "user_rows": MetadataValue.int(user_features.row_count),
            "item_rows": MetadataValue.int(item_features.row_count),
        },
    )


@asset_check(
    asset=online_feature_store,
    description="Newest online feature value is at most 1 hour older than the newest raw event.",
)
def online_feature_freshness(feast: FeastResource, state: OnlineFeatureStore) -> AssetCheckResult:
    newest_online = newest_online_timestamp(feast.store(), list(state.sample_user_ids))
    if newest_online is None:
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.ERROR,
            description=f"no online user_features rows for {len(state.sample_user_ids)} sampled users",
        )
    lag = state.newest_event - newest_online
    return AssetCheckResult(
        passed=lag <= MAX_LAG,
        severity=AssetCheckSeverity.ERROR,
        description=f"freshness lag {lag} (limit {MAX_LAG})",
        metadata={
            "lag_s": MetadataValue.float(lag.total_seconds()),
            "newest_raw_event": MetadataValue.text(state.newest_event.isoformat()),
            "newest_online_value": MetadataValue.text(newest_online.isoformat()),
        },
    )
