"""Hand-written Phase 1 tables for the feature tests; expected values are derived in the tests."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from recs_assets.core.phase1.schema import Phase1Tables, conform

AS_OF = datetime(2024, 1, 31, 9, 0, tzinfo=UTC)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def hand_tables() -> Phase1Tables:
    """Four users, four items, six events; e6 is after ``AS_OF``.

    u1: e1 Mon 2024-01-01 10:00 view i1; e2 10:10 rate i2 (4); e3 Sat 01-20 20:00 click i1;
        e4 Tue 01-30 23:00 rate i3 (2).  u4 (not in users): e5 Wed 01-31 09:00 purchase i2.
    u1: e6 2024-02-05 view i2 (after AS_OF).  u2 has no events; u3 signs up after AS_OF.
    i1 "Action|Comedy" created 2023-12-31 09:00; i2 "Drama"; i3 no categories; i4 created after.
    """
    events = pd.DataFrame(
        {
            "event_id": ["e1", "e2", "e3", "e4", "e5", "e6"],
            "user_id": ["u1", "u1", "u1", "u1", "u4", "u1"],
            "item_id": ["i1", "i2", "i1", "i3", "i2", "i2"],
            "event_type": ["view", "rate", "click", "rate", "purchase", "view"],
            "timestamp": [
                ts("2024-01-01 10:00"),
                ts("2024-01-01 10:10"),
                ts("2024-01-20 20:00"),
                ts("2024-01-30 23:00"),
                ts("2024-01-31 09:00"),
                ts("2024-02-05 12:00"),
            ],
            "rating": [None, 4.0, None, 2.0, None, None],
            "device": ["mobile", "mobile", None, "desktop", "tablet", "mobile"],
            "platform": ["ios", "ios", None, "web", "android", "ios"],
        }
    )
    events["timestamp"] = pd.to_datetime(events["timestamp"]).astype("datetime64[us, UTC]")
    users = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3"],
            "age": pd.array([25, 30, 40], dtype="Int64"),
            "gender": ["M", "F", "X"],
            "occupation": ["engineer", "artist", "other"],
            "signup_time": [ts("2023-06-01"), ts("2023-12-01"), ts("2024-02-01")],
        }
    )
    users["signup_time"] = users["signup_time"].astype("datetime64[us, UTC]")
    items = pd.DataFrame(
        {
            "item_id": ["i1", "i2", "i3", "i4"],
            "title": ["One", "Two", "Three", "Four"],
            "categories": ["Action|Comedy", "Drama", None, "Drama"],
            "created_at": [ts("2023-12-31 09:00"), pd.NaT, pd.NaT, ts("2024-02-10")],
        }
    )
    items["created_at"] = pd.to_datetime(items["created_at"], utc=True).astype(
        "datetime64[us, UTC]"
    )
    return Phase1Tables(
        interactions=_typed(conform(events, "interactions"), "interactions"),
        users=_typed(conform(users, "users"), "users"),
        items=_typed(conform(items, "items"), "items"),
    )


def _typed(df: pd.DataFrame, table: str) -> pd.DataFrame:
    from recs_assets.core.phase1.schema import TABLE_COLUMNS

    out = df.copy()
    for col, (dtype, _) in TABLE_COLUMNS[table].items():
        out[col] = out[col].astype(dtype)
    return out
