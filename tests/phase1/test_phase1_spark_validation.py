"""The Phase 1 contract in Spark SQL quarantines the same rows, for the same first reason, as the
pandas path: on the hand-written bad rows and on ML-100K with 50 injected bad ratings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from movielens_fixtures import inject_bad_ratings

from recs_assets.core.phase1.movielens import load_movielens
from recs_assets.core.phase1.schema import Phase1Tables
from recs_assets.core.phase1.source_contract import RatingScale, SourceContract
from recs_assets.core.phase1.spark_validation import ROW_INDEX, validate_interactions_spark
from recs_assets.core.phase1.validation import validate_tables

NOW = pd.Timestamp("2025-01-01", tz="UTC")


def _both(spark, tables: Phase1Tables, contract: SourceContract | None = None):
    """(pandas result, Spark valid rows, Spark quarantine) on the same input."""
    pandas = validate_tables(tables, NOW, contract)
    events = tables.interactions.reset_index(drop=True).astype(object)
    events = events.where(events.notna(), None).astype(str).where(events.notna(), None)
    events.insert(0, ROW_INDEX, range(len(events)))
    frame = spark.createDataFrame(events)
    result = validate_interactions_spark(
        frame,
        spark.createDataFrame(pandas.users[["user_id"]].astype(object)),
        spark.createDataFrame(pandas.items[["item_id"]].astype(object)),
        NOW,
        contract,
    )
    return pandas, result.valid.toPandas(), result.quarantine.toPandas()


def _rows(quarantine: pd.DataFrame) -> set[tuple[int, str, str]]:
    q = quarantine[quarantine["table"] == "interactions"]
    return {(int(r), c, col) for r, c, col in q[["row_index", "check", "column"]].itertuples(False)}


def test_the_injected_bad_ratings_are_quarantined_alike(
    spark, ml100k_dir: Path, tmp_path: Path
) -> None:
    expected = inject_bad_ratings(ml100k_dir, tmp_path)
    pandas, valid, quarantine = _both(spark, load_movielens(tmp_path))
    assert _rows(quarantine) == _rows(pandas.quarantine)
    assert {r for r, _, _ in _rows(quarantine)} == set(expected)
    assert sorted(valid["event_id"]) == sorted(pandas.interactions["event_id"])
    assert len(valid) == 100_000
    # the raw value is kept and the reason says what was wrong
    typed = quarantine[quarantine["check"] == "type"]
    assert typed["reason"].str.contains("cannot be read as").all()
    assert typed["raw_row"].str.contains('"event_id":"ml-').all()


def test_a_declared_half_star_scale_and_implicit_data(spark) -> None:
    stars = pd.DataFrame(
        {
            "event_id": ["e1", "e2", "e3", "e4", "e5", "e5"],
            "user_id": ["u1"] * 6,
            "item_id": ["i1", "i2", "i3", "i4", "zz", "i1"],
            "event_type": ["rate", "rate", "rate", "view", "view", "view"],
            "timestamp": [
                "2024-01-01T00:00:00Z",
                "2024-01-02 10:00:00+02:00",
                "2024-01-03",
                "2031-01-01T00:00:00Z",
                "2024-01-04T00:00:00Z",
                "2024-01-05T00:00:00Z",
            ],
            "rating": ["0.5", "4.5", "4.25", None, None, None],
        }
    )
    users = pd.DataFrame({"user_id": ["u1"]})
    items = pd.DataFrame({"item_id": ["i1", "i2", "i3", "i4"], "title": ["a", "b", "c", "d"]})
    tables = Phase1Tables(interactions=stars, users=users, items=items)
    half = SourceContract(rating_scale=RatingScale(0.5, 5.0, 0.5))
    pandas, valid, quarantine = _both(spark, tables, half)
    assert (
        _rows(quarantine)
        == _rows(pandas.quarantine)
        == {
            (2, "range", "rating"),
            (3, "future_timestamp", "timestamp"),
            (4, "referential_integrity", "item_id"),
            (5, "unique", "event_id"),
        }
    )
    assert sorted(valid["event_id"]) == sorted(pandas.interactions["event_id"]) == ["e1", "e2"]
    # timestamps read alike, offsets to UTC
    spark_ts = sorted(
        valid["timestamp"].dt.tz_localize("UTC")
        if valid["timestamp"].dt.tz is None
        else valid["timestamp"]
    )
    assert [str(t) for t in spark_ts] == [str(t) for t in sorted(pandas.interactions["timestamp"])]
