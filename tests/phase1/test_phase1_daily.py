"""Events by UTC day: each day validated on its own keeps the pandas checks and the source's row
positions; events that belong to no day are quarantined with a reason, never dropped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recs_assets.core.phase1.daily import (
    DEFAULT_FIRST_DAY,
    NO_PARTITION_CHECK,
    day_range,
    days_between,
    event_days,
    first_day,
    split_by_day,
    undated_interactions,
    validate_days,
)
from recs_assets.core.phase1.validation import QUARANTINE_COLUMNS

NOW = pd.Timestamp("2024-06-01", tz="UTC")
USERS = pd.DataFrame({"user_id": ["a", "b"]})
ITEMS = pd.DataFrame({"item_id": ["i1", "i2"], "title": ["x", "y"]})


def _events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": ["e0", "e1", "e2", "e3", "e4", "e5", "e6"],
            "user_id": ["a", "a", "b", "zz", "a", "a", "b"],
            "item_id": ["i1", "i2", "i1", "i1", "i1", "i2", "i2"],
            "event_type": ["view"] * 7,
            "timestamp": [
                "2024-01-01T23:59:59Z",  # 0 day 1
                "2024-01-02T00:30:00+02:00",  # 1 day 1 (22:30 UTC)
                "2024-01-02T08:00:00Z",  # 2 day 2
                "2024-01-02T09:00:00Z",  # 3 day 2, unknown user
                "yesterday",  # 4 no day
                "1990-05-01T00:00:00Z",  # 5 before the first partition
                "2024-01-03T00:00:00Z",  # 6 day 3
            ],
        }
    )


def test_event_days_are_utc_days() -> None:
    days = event_days(_events()["timestamp"])
    assert days.tolist()[:4] == ["2024-01-01", "2024-01-01", "2024-01-02", "2024-01-02"]
    assert pd.isna(days.iloc[4])
    assert day_range(days) == ("1990-05-01", "2024-01-03")
    assert days_between("2024-01-30", "2024-02-02") == [
        "2024-01-30",
        "2024-01-31",
        "2024-02-01",
        "2024-02-02",
    ]


def test_validate_days_splits_valid_and_quarantine_by_day() -> None:
    result = validate_days(_events(), USERS, ITEMS, ["2024-01-01", "2024-01-02"], NOW)
    assert result.rows_in == 4
    assert result.valid["2024-01-01"]["event_id"].tolist() == ["e0", "e1"]
    assert result.valid["2024-01-02"]["event_id"].tolist() == ["e2"]
    bad = result.quarantine["2024-01-02"]
    assert list(bad.columns) == list(QUARANTINE_COLUMNS)
    # the row's position in the source, not in the day
    assert bad[["row_index", "check", "column"]].values.tolist() == [
        [3, "referential_integrity", "user_id"]
    ]
    assert result.quarantine["2024-01-01"].empty
    # a day with no event still has a (empty) frame, so a rerun replaces it
    empty = validate_days(_events(), USERS, ITEMS, ["2024-02-01"], NOW)
    assert empty.rows_in == 0 and empty.valid["2024-02-01"].empty
    with pytest.raises(ValueError, match="no day"):
        validate_days(_events(), USERS, ITEMS, [], NOW)


def test_undated_events_are_quarantined_with_the_setting_that_keeps_them() -> None:
    q = undated_interactions(_events(), "2000-01-01", "2024-12-31")
    assert list(q.columns) == list(QUARANTINE_COLUMNS)
    assert q["row_index"].tolist() == [4, 5]
    assert (q["check"] == NO_PARTITION_CHECK).all()
    assert "missing or unreadable" in q["reason"].iloc[0]
    assert "RECS_PARTITIONS_START" in q["reason"].iloc[1]
    assert '"event_id": "e5"' in q["raw_row"].iloc[1]
    late = undated_interactions(_events(), "1980-01-01", "2024-01-02")
    assert late["row_index"].tolist() == [4, 6] and "after the last" in late["reason"].iloc[1]


def test_first_day_setting() -> None:
    assert first_day(None) == first_day("  ") == DEFAULT_FIRST_DAY
    assert first_day("2020-3-1") == "2020-03-01"
    with pytest.raises(ValueError, match="RECS_PARTITIONS_START"):
        first_day("soon")


def test_split_by_day_keeps_each_days_rows_in_order_and_leaves_other_days_out() -> None:
    frame = pd.DataFrame({"v": [0, 1, 2, 3, 4, 5, 6]}, index=[9, 8, 7, 6, 5, 4, 3])
    days = np.array(["d2", "d1", None, "d2", "d9", "d1", "d2"], dtype=object)
    out = split_by_day(frame, days, ["d1", "d2", "d3"])
    assert list(out) == ["d1", "d2", "d3"]
    assert out["d1"]["v"].tolist() == [1, 5]
    assert out["d2"]["v"].tolist() == [0, 3, 6]
    assert out["d2"].index.tolist() == [0, 1, 2]
    assert out["d3"].empty and list(out["d3"].columns) == ["v"]
    # the same rows as a comparison of every row with each day
    for d in ("d1", "d2", "d3"):
        expected = frame[pd.Series(days, index=frame.index).eq(d).fillna(False).astype(bool)]
        pd.testing.assert_frame_equal(out[d], expected.reset_index(drop=True))
