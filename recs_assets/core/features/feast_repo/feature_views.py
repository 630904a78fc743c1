"""Feast objects: entities ``user`` and ``item``, their feature views and the ``recs_features`` service.

The feature views read the Parquet written by the ``user_features`` / ``item_features`` assets; the
schema is taken from that Parquet (so the category-share family follows the data).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Bool, FeastType, Float64, Int32, Int64, String

TIMESTAMP_FIELD = "feature_timestamp"
FEATURE_SERVICE = "recs_features"

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.STRING,
    description="A user of the platform.",
)
item = Entity(
    name="item", join_keys=["item_id"], value_type=ValueType.STRING, description="A catalog item."
)


def _feast_type(arrow_type: pa.DataType) -> FeastType | None:
    if pa.types.is_int64(arrow_type):
        return Int64
    if pa.types.is_int32(arrow_type):
        return Int32
    if pa.types.is_floating(arrow_type):
        return Float64
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return String
    if pa.types.is_boolean(arrow_type):
        return Bool
    return None


def parquet_fields(path: Path, key: str) -> list[Field]:
    """Feast fields of a feature Parquet folder: every column except the key and timestamp."""
    schema = ds.dataset(str(path), format="parquet").schema
    fields = [Field(name=key, dtype=String)]
    for f in schema:
        if f.name in (key, TIMESTAMP_FIELD):
            continue
        dtype = _feast_type(f.type)
        if dtype is None:
            raise ValueError(f"{path}: column {f.name!r} has type {f.type} that Feast cannot serve")
        fields.append(Field(name=f.name, dtype=dtype))
    return fields


def feature_view(name: str, entity: Entity, key: str, path: Path) -> FeatureView:
    source = FileSource(name=f"{name}_source", path=str(path), timestamp_field=TIMESTAMP_FIELD)
    return FeatureView(
        name=name,
        entities=[entity],
        ttl=timedelta(0),
        schema=parquet_fields(path, key),
        source=source,
        online=True,
        owner="features",
        description=f"recs {name} (snapshots; the online store holds the newest)",
    )


def feature_objects(user_path: Path, item_path: Path) -> list[object]:
    """Everything ``FeatureStore.apply`` needs for recs."""
    user_view = feature_view("user_features", user, "user_id", user_path)
    item_view = feature_view("item_features", item, "item_id", item_path)
    service = FeatureService(name=FEATURE_SERVICE, features=[user_view, item_view])
    return [user, item, user_view, item_view, service]
