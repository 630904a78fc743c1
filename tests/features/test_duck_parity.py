"""The DuckDB feature transforms write the same rows and column types as the Spark ones.

Both engines read the same Parquet files (the raw tables as the IO manager writes them); every
column of every row is compared (floats to 1e-9 relative, 1e-6 absolute: Spark subtracts
seconds since the epoch as doubles, about 0.2 µs apart), and so are the Parquet types each engine writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

from recs_assets.core.features import duck
from recs_assets.core.features.spark_frames import as_spark, time_range
from recs_assets.core.features.transforms.context import context_features
from recs_assets.core.features.transforms.item import item_features, top_categories
from recs_assets.core.features.transforms.user import user_features
from recs_assets.core.phase1.schema import Phase1Tables
from recs_assets.core.phase1.synthetic import generate_synthetic
from recs_assets.core.table_store import write_table
from tests.features_data import AS_OF, hand_tables


def _write(tables: Phase1Tables, root: Path) -> None:
    events = tables.interactions
    days = events["timestamp"].dt.strftime("%Y-%m-%d")
    for day, part in events.groupby(days):
        write_table(part.reset_index(drop=True), root, "raw_interactions", str(day))
    write_table(tables.users, root, "raw_users")
    write_table(tables.items, root, "raw_items")


class Engines:
    """The same three raw tables open in Spark and in DuckDB."""

    def __init__(self, spark, root: Path) -> None:
        self.events = as_spark(
            spark,
            spark.read.parquet(str(root / "raw_interactions")).drop("partition"),
            "interactions",
        )
        self.users = as_spark(spark, spark.read.parquet(str(root / "raw_users")), "users")
        self.items = as_spark(spark, spark.read.parquet(str(root / "raw_items")), "items")
        self.duck = duck.FeatureConnection(
            duck.parquet_files(root / "raw_interactions"),
            duck.parquet_files(root / "raw_users"),
            duck.parquet_files(root / "raw_items"),
        )


def assert_same_rows(spark_rows: pd.DataFrame, duck_rows: pd.DataFrame, key: str) -> None:
    assert list(duck_rows.columns) == list(spark_rows.columns)
    assert len(duck_rows) == len(spark_rows)
    a = spark_rows.sort_values(key).reset_index(drop=True)
    b = duck_rows.sort_values(key).reset_index(drop=True)
    for c in a.columns:
        x, y = a[c], b[c]
        numeric = pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x)
        if numeric:
            assert np.allclose(
                x.astype(float), y.astype(float), rtol=1e-9, atol=1e-6, equal_nan=True
            ), c
        else:
            if pd.api.types.is_datetime64_any_dtype(x):
                x, y = pd.to_datetime(x, utc=True), pd.to_datetime(y, utc=True)
            left = x.astype(object).where(x.notna(), None).tolist()
            right = y.astype(object).where(y.notna(), None).tolist()
            assert left == right, c


def assert_same_types(spark_frame, con: duck.FeatureConnection, sql: str, tmp: Path) -> None:
    """The Parquet schema each engine writes (what Feast, pyarrow and DuckDB readers see)."""
    spark_frame.write.mode("overwrite").parquet(str(tmp / "spark"))
    duck.write_parquet(con.con, sql, tmp / "duck")
    spark_schema = ds.dataset(str(tmp / "spark"), format="parquet").schema
    duck_schema = ds.dataset(str(tmp / "duck"), format="parquet").schema
    assert [(f.name, str(f.type)) for f in duck_schema] == [
        (f.name, str(f.type)) for f in spark_schema
    ]


@pytest.fixture(scope="module", params=["hand", "synthetic"])
def engines(request, spark, tmp_path_factory) -> Iterator[tuple[str, Engines]]:
    root = tmp_path_factory.mktemp(f"parity-{request.param}")
    if request.param == "hand":
        tables = hand_tables()
    else:  # sessions, devices, several categories per item, ratings, unknown users and items
        tables = generate_synthetic(
            n_users=60, n_items=40, n_interactions=3000, seed=3, days=45
        ).tables
    _write(tables, root)
    e = Engines(spark, root)
    yield request.param, e
    e.duck.close()


def _as_ofs(name: str, e: Engines) -> list:
    if name == "hand":
        return [AS_OF]
    _, newest = time_range(e.events)
    return [newest, newest - timedelta(days=20, hours=5)]


def test_top_categories_and_time_range(engines) -> None:
    _, e = engines
    assert e.duck.top_categories(5) == [r.category for r in top_categories(e.items, 5).collect()]
    assert e.duck.time_range() == time_range(e.events)


def test_user_features_match(engines, tmp_path) -> None:
    name, e = engines
    categories = e.duck.top_categories(32)
    for as_of in _as_ofs(name, e):
        frame = user_features(e.events, e.users, e.items, as_of=as_of, categories=categories)
        sql = duck.user_features_sql(as_of=as_of, categories=categories)
        assert_same_rows(frame.toPandas(), e.duck.frame(sql), "user_id")
    assert_same_types(frame, e.duck, sql, tmp_path)


def test_item_features_match(engines, tmp_path) -> None:
    name, e = engines
    for as_of in _as_ofs(name, e):
        frame = item_features(e.events, e.items, as_of=as_of)
        sql = duck.item_features_sql(as_of=as_of)
        assert_same_rows(frame.toPandas(), e.duck.frame(sql), "item_id")
    assert_same_types(frame, e.duck, sql, tmp_path)


def test_context_features_match(engines, tmp_path) -> None:
    _, e = engines
    frame = context_features(e.events, session_gap_minutes=20)
    sql = duck.context_features_sql(session_gap_minutes=20)
    assert_same_rows(frame.toPandas(), e.duck.frame(sql), "event_id")
    assert_same_types(frame, e.duck, sql, tmp_path)


def test_missing_column_is_named(tmp_path) -> None:
    path = tmp_path / "items.parquet"
    pd.DataFrame({"item_id": ["i1"]}).to_parquet(path)
    tables = hand_tables()
    events, users = tmp_path / "ev.parquet", tmp_path / "users.parquet"
    tables.interactions.to_parquet(events)
    tables.users.to_parquet(users)
    with pytest.raises(ValueError, match="items: column\\(s\\) missing.*categories"):
        duck.FeatureConnection([str(events)], [str(users)], [str(path)])


def test_engine_choice(monkeypatch) -> None:
    from recs_assets.core.features.engines import choose_engine
    from recs_assets.features.feature_job import engine_from_env

    assert choose_engine("auto", "local[*]", 100_000, 20_000_000) == "duckdb"
    assert choose_engine("auto", "local[*]", 30_000_000, 20_000_000) == "spark"
    assert choose_engine("auto", "spark://master:7077", 10, 20_000_000) == "spark"
    assert choose_engine("spark", "local[2]", 10, 20_000_000) == "spark"
    assert choose_engine("duckdb", "spark://master:7077", 10, 20_000_000) == "duckdb"
    monkeypatch.delenv("RECS_FEATURE_ENGINE", raising=False)
    assert engine_from_env() == "auto"
    monkeypatch.setenv("RECS_FEATURE_ENGINE", "spark")
    assert engine_from_env() == "spark"
    monkeypatch.setenv("RECS_FEATURE_ENGINE", "polars")
    with pytest.raises(ValueError, match="RECS_FEATURE_ENGINE='polars'"):
        engine_from_env()
