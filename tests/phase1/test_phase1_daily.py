"""Events by UTC day: each day validated on its own keeps the pandas checks and the source's row
positions; events that belong to no day are quarantined with a reason, never dropped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from movielens_fixtures import inject_bad_ratings

from recs_assets.core.phase1.daily import (
    DEFAULT_FIRST_DAY,
    NO_PARTITION_CHECK,
    DayValidation,
    StreamedDays,
    day_groups,
    day_range,
    days_between,
    event_days,
    first_day,
    iter_validated_days,
    split_by_day,
    undated_interactions,
    validate_days,
)
from recs_assets.core.phase1.movielens import load_movielens
from recs_assets.core.phase1.validation import QUARANTINE_COLUMNS

NOW = pd.Timestamp("2024-06-01", tz="UTC")
NOW_ML = pd.Timestamp("2025-01-01", tz="UTC")
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


def _same_days(a: DayValidation, b: DayValidation) -> None:
    assert list(a.valid) == list(b.valid) and a.rows_in == b.rows_in
    for day in a.valid:
        pd.testing.assert_frame_equal(a.valid[day], b.valid[day])
        pd.testing.assert_frame_equal(a.quarantine[day], b.quarantine[day])


def test_days_validated_in_groups_equal_one_pass_on_the_bad_rows_fixture(
    ml100k_dir: Path, tmp_path: Path
) -> None:
    expected = inject_bad_ratings(ml100k_dir, tmp_path)
    tables = load_movielens(tmp_path)
    days = days_between("1997-09-20", "1998-04-22")
    one = validate_days(
        tables.interactions, tables.users, tables.items, days, NOW_ML, chunk_events=10**9
    )
    groups = list(
        iter_validated_days(
            tables.interactions, tables.users, tables.items, days, NOW_ML, chunk_events=5_000
        )
    )
    assert len(groups) > 15  # about 100,000 events in groups of whole days up to 5,000
    assert all(len(g.valid) == 1 or g.rows_in <= 5_000 for g in groups)
    merged = DayValidation.joined(groups)
    _same_days(merged, one)
    bad = pd.concat(list(merged.quarantine.values()))
    # the undated rows ("yesterday") are in no day; every other injected row is found
    dated = {r for r, (check, column) in expected.items() if column != "timestamp"}
    assert dated <= set(bad["row_index"]) and merged.valid_rows == 100_000


def test_an_event_id_repeated_on_a_later_groups_day_is_quarantined_there() -> None:
    events = pd.DataFrame(
        {
            "event_id": ["e0", "e1", "e0", "e2", "e2", "e1"],
            "user_id": ["a", "zz", "a", "a", "b", "a"],
            "item_id": ["i1", "i1", "i2", "i1", "i2", "i2"],
            "event_type": ["view"] * 6,
            "timestamp": [
                "2024-01-01T10:00:00Z",  # 0 day 1
                "2024-01-01T11:00:00Z",  # 1 day 1, unknown user: quarantined
                "2024-01-03T10:00:00Z",  # 2 day 3: e0 again
                "2024-01-02T10:00:00Z",  # 3 day 2
                "2024-01-02T12:00:00Z",  # 4 day 2: e2 again, the same day
                "2024-01-03T12:00:00Z",  # 5 day 3: e1, whose day-1 copy was not kept
            ],
        }
    )
    days = ["2024-01-01", "2024-01-02", "2024-01-03"]
    whole = validate_days(events, USERS, ITEMS, days, NOW)
    grouped = validate_days(events, USERS, ITEMS, days, NOW, chunk_events=1)
    for result in (whole, grouped):
        assert result.valid["2024-01-01"]["event_id"].tolist() == ["e0"]
        assert result.valid["2024-01-02"]["event_id"].tolist() == ["e2"]
        later = result.quarantine["2024-01-03"].set_index("row_index")
        assert later.loc[2, "check"] == "unique" and later.loc[2, "column"] == "event_id"
        assert later.loc[2, "reason"] == "event_id: duplicate 'e0' (first occurrence kept)"
        assert '"item_id": "i2"' in later.loc[2, "raw_row"]
        assert result.quarantine["2024-01-02"]["row_index"].tolist() == [4]
    # the repeated id's quarantine row is the same whether found within a group or across
    pd.testing.assert_frame_equal(
        whole.quarantine["2024-01-03"].iloc[:1], grouped.quarantine["2024-01-03"].iloc[:1]
    )
    # within one pass the quarantined day-1 e1 is the first occurrence; across groups only a
    # kept copy counts, so the day-3 e1 is kept (the earliest valid copy)
    assert 5 in set(whole.quarantine["2024-01-03"]["row_index"])
    assert grouped.valid["2024-01-03"]["event_id"].tolist() == ["e1"]


def test_day_groups_hold_whole_days_up_to_the_limit() -> None:
    groups = day_groups(np.array([3, 0, 4, 9, 1, 1, 2]), 5)
    assert groups == [range(0, 2), range(2, 3), range(3, 4), range(4, 7)]
    assert day_groups(np.array([], dtype=int), 5) == [range(0, 0)]


def test_streamed_days_validate_a_group_when_a_day_is_first_asked_for() -> None:
    days = ["2024-01-01", "2024-01-02", "2024-01-03"]
    stream = StreamedDays(
        iter_validated_days(_events(), USERS, ITEMS, days, NOW, chunk_events=1), days
    )
    assert stream.groups == 0 and list(stream.valid) == days
    assert stream.peek()["event_id"].tolist() == ["e0", "e1"] and stream.groups == 1
    assert stream.valid["2024-01-02"]["event_id"].tolist() == ["e2"]
    assert stream.groups == 2
    assert stream.valid["2024-01-01"]["event_id"].tolist() == ["e0", "e1"]  # kept until taken
    with pytest.raises(KeyError, match="already taken"):
        stream.take("2024-01-01")
    stream.finish()
    assert stream.groups == 3 and stream.rows_in == 5
    assert stream.valid_rows == 4 and stream.rejected_rows == 1
    assert stream.valid["2024-01-03"]["event_id"].tolist() == ["e6"]
