"""Rows into Feast's SQLite online store in one batched statement: the same rows Feast writes.

``FeatureStore.write_to_online_store`` turns every value into a protobuf object in Python and
then upserts it with its own ``execute`` call. On ``synthetic:10m`` a landed day writes 1.7
million values (18,796 users x 65 features, 20,000 items x 23) and that took 23.1 s: 9.0 s in
1.7 million ``execute`` calls, 6.7 s building protobuf objects, the rest in per-value helpers
(``bench``: ``docs/data_plane.md``).

``write_rows`` writes the same table rows, byte for byte (``tests/features/test_sqlite_online.py``
compares both stores' tables and reads them back through Feast; one difference: an integer
beyond 2**53 in a column with nulls is written exactly, where Feast's path through pandas
floats rounds it): each value is encoded as
Feast's ``Value`` message straight from the column (the protobuf wire format of the five
scalar types the feature views use: a tag, then a varint, 8 little-endian bytes or a
length-prefixed string), and all rows go to SQLite in one ``executemany`` per view.

Only the SQLite store of a plain (no vector, no numeric search column) configuration, and views
of those five types keyed by strings, take this path (``fast_path``); anything else (Redis) goes
through ``write_to_online_store``. It reads Feast internals
(the table name, the connection, the key encoding), pinned with Feast's version in
``pyproject.toml``; the test above fails if an upgrade changes what Feast writes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from feast import FeatureStore

_DOUBLE = struct.Struct("<d")
_MASK64 = (1 << 64) - 1


def _varint(n: int) -> bytes:
    """Protobuf base-128 varint of ``n`` (negative numbers as their 64-bit two's complement, as
    protobuf encodes int32 and int64)."""
    n &= _MASK64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@lru_cache(maxsize=65536)
def _int_value(tag: int, n: int) -> tuple[bytes, str]:
    return bytes((tag,)) + _varint(n), str(n)


def _double_values(column: pa.ChunkedArray) -> list[tuple[bytes, str] | None]:
    # Feast reads the column through numpy: a null is NaN there, and NaN is written as null
    values = column.to_numpy(zero_copy_only=False).astype(np.float64)
    return [
        None if v != v else (b")" + _DOUBLE.pack(v), str(v))  # ")" = field 5, 64-bit
        for v in values.tolist()
    ]


def _int_values(tag: int) -> Callable[[pa.ChunkedArray], list[tuple[bytes, str] | None]]:
    def encode(column: pa.ChunkedArray) -> list[tuple[bytes, str] | None]:
        return [None if v is None else _int_value(tag, int(v)) for v in column.to_pylist()]

    return encode


def _string_values(column: pa.ChunkedArray) -> list[tuple[bytes, str] | None]:
    out: list[tuple[bytes, str] | None] = []
    for v in column.to_pylist():
        if v is None:
            out.append(None)
        else:
            s = str(v)
            b = s.encode()
            out.append((b"\x12" + _varint(len(b)) + b, s))  # field 2, length-delimited
    return out


def _bool_values(column: pa.ChunkedArray) -> list[tuple[bytes, str] | None]:
    return [
        None if v is None else (b"\x38\x01" if v else b"\x38\x00", str(bool(v)))
        for v in column.to_pylist()
    ]


# Feast value type name -> encoder of a column into (serialized Value, value_text) per row
ENCODERS: dict[str, Callable[[pa.ChunkedArray], list[tuple[bytes, str] | None]]] = {
    "DOUBLE": _double_values,
    "INT64": _int_values(0x20),  # field 4, varint
    "INT32": _int_values(0x18),  # field 3, varint
    "STRING": _string_values,
    "BOOL": _bool_values,
}


def fast_path(store: FeatureStore, view_name: str) -> bool:
    """Whether ``write_rows`` writes ``view_name`` for ``store``: a plain SQLite online store,
    a view of the types in ``ENCODERS`` keyed by strings."""
    online = store.config.online_store
    if not (
        getattr(online, "type", None) == "sqlite"
        and not getattr(online, "vector_enabled", False)
        and not getattr(online, "enable_openai_compatible_store", False)
        and not store.config.registry.enable_online_feature_view_versioning
    ):
        return False
    view = store.get_feature_view(view_name, allow_registry_cache=True)
    return all(f.dtype.to_value_type().name in ENCODERS for f in view.features) and all(
        e.dtype.to_value_type().name == "STRING" for e in view.entity_columns
    )


def stamp_feature(store: FeatureStore, view_name: str) -> str:
    """The feature whose stamp Feast's SQLite read reports for a key ``write_rows`` inserted:
    it answers the stamp of the key's last value in insertion order (rowid), and ``write_rows``
    inserts a key's values in the view's order."""
    return store.get_feature_view(view_name, allow_registry_cache=True).features[-1].name


def _all_null(column: pa.ChunkedArray) -> bool:
    """No value in ``column`` (NaN counts as none, as pandas counts it for Feast)."""
    nulls = pc.is_null(column, nan_is_null=pa.types.is_floating(column.type))
    return bool(pc.all(nulls).as_py())


def _stamps(column: pa.ChunkedArray) -> list[int | None]:
    """Epoch seconds as Feast's SQLite store writes them (its datetime adapter on the naive
    UTC value)."""
    from feast.infra.online_stores.sqlite import adapt_datetime_epoch
    from feast.utils import _coerce_datetime, to_naive_utc

    return [
        None if pd.isnull(ts) else adapt_datetime_epoch(to_naive_utc(_coerce_datetime(ts)))
        for ts in pd.to_datetime(column.to_numpy(zero_copy_only=False))
    ]


def write_rows(
    store: FeatureStore,
    view_name: str,
    rows: pa.Table,
    moved: Mapping[str, pa.Array] | None = None,
) -> int:
    """Upsert ``rows`` (the view's key, features and timestamp columns) into ``store``'s SQLite
    online store, as ``store.write_to_online_store(view_name, rows.to_pandas())`` would (see
    the module docstring for the one difference); returns the values written. Like Feast,
    writes nothing for no rows or no feature value (NaN included). With ``moved`` (a boolean
    array per feature column), only the cells marked there are written: Feast's SQLite store
    keeps a value and a timestamp per cell, so the others keep theirs."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.sqlite import _quote_id, _table_id
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    view = store.get_feature_view(view_name, allow_registry_cache=True)
    features = [(f.name, f.dtype.to_value_type().name) for f in view.features]
    unknown = sorted({t for _, t in features} - set(ENCODERS))
    if unknown:
        raise ValueError(f"{view_name}: no SQLite encoding for Feast types {unknown}")
    if rows.num_rows == 0 or all(_all_null(rows.column(n)) for n, _ in features):
        return 0
    joins = [(e.name, e.dtype.to_value_type().name) for e in view.entity_columns]
    if [t for _, t in joins] != ["STRING"] * len(joins):
        raise ValueError(f"{view_name}: write_rows takes string entity keys, got {joins}")
    version = store.config.entity_key_serialization_version
    join_values = [rows.column(n).to_pylist() for n, _ in joins]
    keys = [
        serialize_entity_key(
            EntityKey(
                join_keys=[n for n, _ in joins],
                entity_values=[Value(string_val=str(v)) for v in values],
            ),
            entity_key_serialization_version=version,
        )
        for values in zip(*join_values, strict=True)
    ]
    source = view.batch_source
    event_ts = _stamps(rows.column(source.timestamp_field))
    created_ts = (
        _stamps(rows.column(source.created_timestamp_column))
        if source.created_timestamp_column
        else [None] * rows.num_rows
    )
    encoded = [(name, ENCODERS[t](rows.column(name))) for name, t in features]
    every = [True] * rows.num_rows
    masks = [every if moved is None else moved[name].to_pylist() for name, _ in features]
    written = sum(sum(m) for m in masks)

    def values() -> Iterator[tuple[Any, ...]]:
        # by key (the table's primary key starts with it), each key's values in the view's
        # order: each B-tree page is visited once, where Feast's row order jumps about a store
        # of millions of values; the last value of a key is stamp_feature's
        for i in sorted(range(len(keys)), key=keys.__getitem__):
            key, ts, created = keys[i], event_ts[i], created_ts[i]
            for (name, column), mask in zip(encoded, masks, strict=True):
                if not mask[i]:
                    continue
                cell = column[i]
                value, text = (b"", None) if cell is None else cell
                yield key, name, value, text, ts, created

    online = store._get_provider().online_store
    conn = online._get_conn(store.config)
    table = _quote_id(_table_id(store.config.project, view))
    sql = (
        f"INSERT INTO {table} (entity_key, feature_name, value, value_text, event_ts, "
        "created_ts) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(entity_key, feature_name) DO UPDATE "
        "SET value = excluded.value, value_text = excluded.value_text, "
        "event_ts = excluded.event_ts, created_ts = excluded.created_ts;"
    )
    with conn:
        conn.executemany(sql, values())
    return written
