"""Row-level validation and quarantine on tiny hand-written tables given as strings (like CSV)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from recs_assets.core.phase1.schema import TABLE_COLUMNS, TS_DTYPE, Phase1Tables
from recs_assets.core.phase1.validation import (
    QUARANTINE_COLUMNS,
    coerce_column,
    rejected_share,
    validate_tables,
)

NOW = pd.Timestamp("2024-06-01", tz="UTC")


def _frame(rows: list[tuple[str | None, ...]], table: str) -> pd.DataFrame:
    columns = [c for c in TABLE_COLUMNS[table]][: len(rows[0])]
    return pd.DataFrame(rows, columns=columns, dtype=object)


def _tables() -> Phase1Tables:
    users = _frame(
        [
            ("a", "30", "F"),  # 0 ok
            ("b", "130", "M"),  # 1 age out of range
            ("c", "41", "Q"),  # 2 unknown gender
            ("a", "22", "M"),  # 3 duplicate user id (row 0 is kept)
            ("d", "x1", "M"),  # 4 age is not a number
            ("e", "", None),  # 5 ok: optional values missing (blank string = missing)
        ],
        "users",
    )
    items = _frame(
        [
            ("i1", "Toy Story", "Animation|Comedy", "9.5"),  # 0 ok
            ("i2", None, "Drama", "3"),  # 1 title missing
            ("i3", "Heat", "Action", "-1"),  # 2 negative price
        ],
        "items",
    )
    interactions = _frame(
        [
            ("e1", "a", "i1", "rate", "2024-01-01T10:00:00Z", "4"),  # 0 ok
            ("e2", "a", "i1", "view", "2024-01-01T10:00:01Z", None),  # 1 ok
            ("e3", "a", "i1", "rate", "2024-01-02T10:00:00Z", "abc"),  # 2 rating not a number
            ("e4", "a", "i1", "rate", "2024-01-03T10:00:00Z", "7"),  # 3 rating out of range
            ("e5", "a", "i1", "bogus", "2024-01-04T10:00:00Z", "9"),  # 4 bad type AND range
            ("e6", "a", "i1", "view", "2030-01-01T00:00:00Z", None),  # 5 future
            ("e1", "a", "i1", "view", "2024-01-05T10:00:00Z", None),  # 6 duplicate event_id
            ("e8", "a", "i1", "view", "2024-01-01T10:00:01Z", None),  # 7 duplicate of row 1
            ("e9", "b", "i1", "view", "2024-01-06T10:00:00Z", None),  # 8 user b was rejected
            ("e10", "a", "i2", "view", "2024-01-06T10:00:00Z", None),  # 9 item i2 was rejected
            ("e11", "zz", "i1", "view", "2024-01-06T10:00:00Z", None),  # 10 unknown user
            ("e12", "a", None, "view", "2024-01-06T10:00:00Z", None),  # 11 item missing
            ("e13", "a", "i1", "view", "yesterday", None),  # 12 timestamp unreadable
            ("e14", "e", "i1", "rate", "2024-01-07T10:00:00Z", None),  # 13 rate without rating
            ("e15", "e", "i1", "click", "2024-01-07 11:00:00+02:00", None),  # 14 ok (offset)
        ],
        "interactions",
    )
    return Phase1Tables(interactions=interactions, users=users, items=items)


def test_each_bad_row_quarantined_once_with_its_reason() -> None:
    result = validate_tables(_tables(), NOW)
    q = result.quarantine
    assert list(q.columns) == list(QUARANTINE_COLUMNS)
    got = {
        (t, int(r)): (c, col)
        for t, r, c, col in q[["table", "row_index", "check", "column"]].itertuples(index=False)
    }
    assert got == {
        ("users", 1): ("range", "age"),
        ("users", 2): ("allowed_values", "gender"),
        ("users", 3): ("unique", "user_id"),
        ("users", 4): ("type", "age"),
        ("items", 1): ("not_null", "title"),
        ("items", 2): ("range", "price"),
        ("interactions", 2): ("type", "rating"),
        ("interactions", 3): ("range", "rating"),
        # two findings in one stage: the first by CHECK_ORDER names the row, both are kept
        ("interactions", 4): ("allowed_values", "event_type"),
        ("interactions", 5): ("future_timestamp", "timestamp"),
        ("interactions", 6): ("unique", "event_id"),
        ("interactions", 7): ("duplicate_event", "event"),
        ("interactions", 8): ("referential_integrity", "user_id"),
        ("interactions", 9): ("referential_integrity", "item_id"),
        ("interactions", 10): ("referential_integrity", "user_id"),
        ("interactions", 11): ("not_null", "item_id"),
        ("interactions", 12): ("type", "timestamp"),
        ("interactions", 13): ("rate_needs_rating", "rating"),
    }
    row4 = q[(q["table"] == "interactions") & (q["row_index"] == 4)].iloc[0]
    assert "event_type: 'bogus'" in row4["reason"] and "rating: 9.0" in row4["reason"]
    row2 = q[(q["table"] == "interactions") & (q["row_index"] == 2)].iloc[0]
    assert "'abc'" in row2["reason"]
    assert json.loads(row2["raw_row"])["rating"] == "abc"  # the raw value is kept


def test_valid_rows_have_canonical_dtypes() -> None:
    result = validate_tables(_tables(), NOW)
    assert result.users["user_id"].tolist() == ["a", "e"]
    assert result.items["item_id"].tolist() == ["i1"]
    assert result.interactions["event_id"].tolist() == ["e1", "e2", "e15"]
    for table, columns in TABLE_COLUMNS.items():
        frame = result.tables.table(table)
        assert {c: str(frame[c].dtype) for c in frame} == {c: d for c, (d, _) in columns.items()}
    assert result.users["age"].tolist()[0] == 30 and pd.isna(result.users["age"].iloc[1])
    # "+02:00" is converted to UTC
    assert result.interactions["timestamp"].iloc[2] == pd.Timestamp("2024-01-07 09:00", tz="UTC")


def test_stats_count_rows_in_valid_and_rejected() -> None:
    result = validate_tables(_tables(), NOW)
    s = result.stats["interactions"]
    assert (s.rows_in, s.valid, s.rejected) == (15, 3, 12)
    assert s.rejected_share == pytest.approx(12 / 15)
    assert s.null_share["rating"] == pytest.approx(2 / 3)  # e2 and e15 have no rating
    assert (result.stats["users"].valid, result.stats["items"].valid) == (2, 1)
    assert rejected_share(3, result.quarantine, "interactions") == pytest.approx(12 / 15)


def test_missing_required_column_is_a_clear_error() -> None:
    t = _tables()
    broken = Phase1Tables(t.interactions.drop(columns=["item_id"]), t.users, t.items)
    with pytest.raises(ValueError, match="interactions: required column.*item_id"):
        validate_tables(broken, NOW)


def test_coerce_column_marks_only_unreadable_values() -> None:
    values = pd.Series(["1", " 2.5 ", "", None, "x", "inf"], dtype=object)
    out, failed = coerce_column(values, "float64")
    assert failed.tolist() == [False, False, False, False, True, True]
    assert out.iloc[1] == 2.5 and out.iloc[2:].isna().all()
    ints, failed = coerce_column(pd.Series(["3", "3.5", "4.0"]), "Int64")
    assert failed.tolist() == [False, True, False] and ints.tolist()[::2] == [3, 4]
    ts, failed = coerce_column(pd.Series(["2024-01-01", "nope"]), TS_DTYPE)
    assert str(ts.dtype) == TS_DTYPE and failed.tolist() == [False, True]
