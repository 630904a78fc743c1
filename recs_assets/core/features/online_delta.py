"""Which rows of a feature snapshot the online store needs: the ones whose values moved.

The online store keeps one row per key. When a day lands, the newest snapshot moves forward in
time and every row of it differs from the previous one in its *clock* columns alone for most
keys: ``days_since_last_event`` of a user without a new event grows by exactly the time between
the two snapshots, and nothing else of that user changes. Rewriting such rows costs as much as a
full write (Feast writes value by value: 200,000 users took 161 s with SQLite on ``synthetic:10m``)
and adds nothing a reader cannot compute: a clock column's value at ``t`` is its value at the
row's own ``feature_timestamp`` plus the days in between (``online_clock.age_clock_columns``).

So the online store asset writes the rows of the newest snapshot that differ from what the store
holds (the *mirror*: a Parquet copy of the rows written, each with its own timestamp) in any
column once the clock columns are aged, and the readers age the clock columns of the row they
read to the time the store is current as of (its ``AS_OF_KEY`` row, ``online_clock``). Both together answer
exactly what a full rewrite would (``tests/features/test_online_delta.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recs_assets.core.features.duck import q

TIMESTAMP = "feature_timestamp"
REL_TOL = 1e-9
ABS_TOL = 1e-6  # days (about 0.09 s): a clock column aged by the days between snapshots
AS_OF_META = b"recs_as_of"  # the held rows' metadata: when the store was last brought current
MOVED, HELD = "__moved__", "__held__"  # prefixes of changed_cells' working columns


def same_schema(a: pa.Schema, b: pa.Schema) -> bool:
    """Same column names, order and types (metadata aside)."""
    return a.remove_metadata().equals(b.remove_metadata())


def _unchanged(column: str, arrow_type: pa.DataType, clock: bool) -> str:
    """SQL true when ``n.column`` (new) equals ``o.column`` (held), clock columns aged."""
    n, o = f"n.{q(column)}", f"o.{q(column)}"
    if clock:
        aged = f"({o} + epoch(n.{TIMESTAMP} - o.{TIMESTAMP}) / 86400.0)"
        # one side NULL is a change: coalesce keeps the comparison's NULL from meaning "same"
        return (
            f"(({n} IS NULL AND {o} IS NULL) OR coalesce(abs({n} - {aged}) <= "
            f"{ABS_TOL} + {REL_TOL} * abs({n}), FALSE))"
        )
    if pa.types.is_floating(arrow_type):
        # one engine may sum in another order: the last bits of a double are not a change
        return (
            f"(({n} IS NULL AND {o} IS NULL) OR coalesce(isnan({n}) AND isnan({o}), FALSE) OR "
            f"coalesce(abs({n} - {o}) <= {REL_TOL} * greatest(1.0, abs({n})), FALSE))"
        )
    return f"({n} IS NOT DISTINCT FROM {o})"


def changed_rows(
    snapshot: pa.Table, mirror: pa.Table, key: str, clock: Sequence[str] = ()
) -> pa.Table:
    """The rows of ``snapshot`` (one per key, one ``feature_timestamp``) that the held rows
    ``mirror`` do not already answer: new keys, and keys with any column changed once the
    ``clock`` columns of the held row are aged to the snapshot's time. Raises when the two do
    not have the same columns (the store must then be rewritten in full)."""
    return changed_cells(snapshot, mirror, key, clock).rows


@dataclass(frozen=True)
class Cells:
    """What ``changed_cells`` found.

    Attributes:
        rows: the snapshot's rows that moved (as ``changed_rows``).
        moved: per feature column, which of ``rows`` has a new value there (every row for the
            clock and ``always`` columns, and for a new key).
        held: ``rows`` with the held value in every cell that did not move: what the store
            holds once only the moved cells are written.
    """

    rows: pa.Table
    moved: dict[str, pa.Array]
    held: pa.Table

    @property
    def count(self) -> int:
        """The moved cells."""
        return sum(int(pc.sum(m).as_py() or 0) for m in self.moved.values())


def changed_cells(
    snapshot: pa.Table,
    mirror: pa.Table,
    key: str,
    clock: Sequence[str] = (),
    always: Sequence[str] = (),
) -> Cells:
    """The rows of ``snapshot`` that moved against the held rows ``mirror`` (``changed_rows``),
    and in them the cells that moved: a row moved in a few columns need not have the others
    written again. The ``clock`` columns (aged: they are rewritten with the row's new time) and
    the ``always`` columns count as moved in every moved row."""
    if not same_schema(snapshot.schema, mirror.schema):
        raise ValueError(
            f"snapshot columns {snapshot.schema} differ from the held rows' "
            f"{mirror.schema}: rewrite the online store in full"
        )
    columns = [f for f in snapshot.schema if f.name not in (key, TIMESTAMP)]
    same = {f.name: _unchanged(f.name, f.type, f.name in clock) for f in columns}
    k = q(key)
    new_key = f"o.{k} IS NULL"
    moved = {
        c: "TRUE" if c in clock or c in always else f"({new_key} OR NOT {pred})"
        for c, pred in same.items()
    }
    out = _query(
        "SELECT n.*, "
        + "".join(f"{moved[c]} AS {q(MOVED + c)}, " for c in same)
        + "".join(
            f"CASE WHEN {moved[c]} THEN n.{q(c)} ELSE o.{q(c)} END AS {q(HELD + c)}, " for c in same
        )
        + f"FROM n_rows n LEFT JOIN o_rows o ON n.{k} = o.{k} "
        f"WHERE {new_key} OR NOT ({' AND '.join(same.values()) or 'TRUE'})",
        None,
        n_rows=snapshot,
        o_rows=mirror,
    )
    rows = out.select(snapshot.schema.names).cast(snapshot.schema)
    held = rows
    for c in same:
        i = held.schema.get_field_index(c)
        held = held.set_column(i, held.field(i), out[HELD + c].cast(held.field(i).type))
    masks = {c: out[MOVED + c].combine_chunks() for c in same}
    return Cells(rows, masks, held)


def merged_mirror(mirror: pa.Table, written: pa.Table, key: str) -> pa.Table:
    """What the store holds after ``written`` was written over ``mirror``'s rows."""
    k = q(key)
    return _query(
        f"SELECT * FROM w_rows UNION ALL "
        f"SELECT o.* FROM o_rows o ANTI JOIN w_rows w ON o.{k} = w.{k}",
        mirror.schema,
        o_rows=mirror,
        w_rows=written,
    )


def _query(sql: str, schema: pa.Schema | None, **tables: pa.Table) -> pa.Table:
    """``sql`` over the Arrow ``tables`` (by name), answered in ``schema``'s types (DuckDB
    answers in its own: large strings...; None: as DuckDB answers)."""
    with duckdb.connect() as con:
        for name, table in tables.items():
            con.register(name, table)
        out = con.sql(sql).to_arrow_table()
    return out if schema is None else out.cast(schema)


def read_mirror(path: Path) -> tuple[pa.Table, datetime | None] | None:
    """The held rows written by the last run and the time the store was brought current as of
    then (None for held rows without it), or None when there are none."""
    if not path.exists():
        return None
    table = pq.read_table(path)
    stamp = (table.schema.metadata or {}).get(AS_OF_META)
    as_of = datetime.fromisoformat(stamp.decode()) if stamp else None
    return table.replace_schema_metadata(None), as_of


def write_mirror(table: pa.Table, path: Path, as_of: datetime) -> None:
    """Write the held rows (with ``as_of``, the store's as-of time) beside the old file and swap
    them in (a crash keeps the old file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table.replace_schema_metadata({AS_OF_META: as_of.isoformat().encode()}), tmp)
    tmp.replace(path)
