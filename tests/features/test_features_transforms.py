"""The pure Spark feature transforms on hand-written tables, against values worked out by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pandas as pd
import pytest
from features_data import AS_OF, hand_tables

from recs_assets.core.features.snapshots import snapshot_times
from recs_assets.core.features.spark_frames import to_spark
from recs_assets.core.features.table_contracts import check_contract
from recs_assets.core.features.transforms.context import context_features
from recs_assets.core.features.transforms.item import item_features, top_categories
from recs_assets.core.features.transforms.user import user_features

CATS = ["Action", "Comedy", "Drama"]


@pytest.fixture(scope="module")
def frames(spark):
    t = hand_tables()
    return (
        to_spark(spark, t.interactions, "interactions"),
        to_spark(spark, t.users, "users"),
        to_spark(spark, t.items, "items"),
    )


@pytest.fixture(scope="module")
def users(frames) -> pd.DataFrame:
    ev, us, it = frames
    return user_features(ev, us, it, as_of=AS_OF, categories=CATS).toPandas().set_index("user_id")


@pytest.fixture(scope="module")
def items(frames) -> pd.DataFrame:
    ev, _, it = frames
    return item_features(ev, it, as_of=AS_OF).toPandas().set_index("item_id")


def test_user_population(users: pd.DataFrame) -> None:
    # u1, u2 signed up before AS_OF; u3 signs up after (dropped); u4 has an event but no profile
    assert sorted(users.index) == ["u1", "u2", "u4"]


def test_user_counts_and_ratings(users: pd.DataFrame) -> None:
    u1 = users.loc["u1"]
    # u1 before AS_OF (01-31 09:00): e1 view 29.96 d ago, e2 rate 29.95 d, e3 click 10.54 d,
    # e4 rate 0.42 d; e6 is after AS_OF. 7 days: e4; 30 days: all four.
    assert (u1.events_7d, u1.events_30d, u1.events_all) == (1, 4, 4)
    assert (u1.view_count_7d, u1.view_count_30d, u1.click_count_all, u1.rate_count_all) == (
        0,
        1,
        1,
        2,
    )
    assert u1.distinct_items == 3
    assert u1.days_since_last_event == pytest.approx(10 / 24)  # e4 at 23:00, AS_OF 09:00 next day
    assert u1.days_since_first_event == pytest.approx(29 + 23 / 24)
    # ratings 4 and 2: mean 3, population variance 1
    assert (u1.rating_count, u1.rating_mean, u1.rating_var) == (2, 3.0, 1.0)
    u2 = users.loc["u2"]
    assert (u2.events_all, u2.session_count) == (0, 0) and math.isnan(u2.rating_mean)
    assert u2.account_age_days == pytest.approx(61 + 9 / 24)  # 2023-12-01 -> 2024-01-31 09:00
    assert users.loc["u4"].purchase_count_7d == 1


def test_user_category_sessions_and_timing(users: pd.DataFrame) -> None:
    u1 = users.loc["u1"]
    # e1, e3 on i1 (Action|Comedy) give 0.5 + 0.5 each; e2 on i2 gives Drama 1; i3 has none:
    # mass 1 / 1 / 1 of 3 -> a third each; ties go alphabetical
    assert [u1.cat_share_action, u1.cat_share_comedy, u1.cat_share_drama] == pytest.approx(
        [1 / 3] * 3
    )
    assert u1.top_category == "Action"
    # e1 10:00 and e2 10:10 share a session (gap 10 < 30 min); e3 and e4 are alone: 3 sessions,
    # lengths 600, 0, 0 s
    assert (u1.session_count, u1.events_per_session, u1.session_length_s) == (
        3,
        pytest.approx(4 / 3),
        200.0,
    )
    # hours 10, 10, 20, 23; days Mon, Mon, Sat, Tue
    assert (u1.hour_share_morning, u1.hour_share_evening, u1.hour_share_night) == (0.5, 0.5, 0.0)
    assert (u1.dow_share_mon, u1.dow_share_sat, u1.dow_share_tue, u1.weekend_share) == (
        0.5,
        0.25,
        0.25,
        0.25,
    )
    # distribution {1/2, 1/4, 1/4}: entropy 0.5*1 + 2*0.25*2 = 1.5 bits, for hours and days alike
    assert (u1.hour_entropy, u1.dow_entropy) == (1.5, 1.5)
    assert u1.active_days == 3


def test_item_features(items: pd.DataFrame) -> None:
    # i4 is created after AS_OF
    assert sorted(items.index) == ["i1", "i2", "i3"]
    i1, i2 = items.loc["i1"], items.loc["i2"]
    ages_i1 = [29 + 23 / 24, 10 + 13 / 24]  # e1, e3
    decayed = sum(2 ** (-a / 7) for a in ages_i1)
    assert i1.decayed_events == pytest.approx(decayed)
    # recent rate decayed*ln2/7 per day against long-run 2 events over 29.96 days
    assert i1.trending_score == pytest.approx((decayed * math.log(2) / 7) / (2 / ages_i1[0]))
    assert (i1.events_30d, i1.events_7d, i1.distinct_users_all, i1.category_count) == (2, 0, 1, 2)
    assert i1.age_days == pytest.approx(31.0)  # created 2023-12-31 09:00
    # global mean of ratings before AS_OF is (4 + 2) / 2 = 3; i2 has one rating 4: (10*3+4)/11;
    # i1 has none: the prior, 3
    assert i2.bayes_rating == pytest.approx(34 / 11) and i1.bayes_rating == pytest.approx(3.0)
    assert (i2.events_all, i2.events_7d, i2.distinct_users_all) == (2, 1, 2)  # e2, e5; e6 is later
    # i3 has no created_at: its age is the age of its first event e4
    assert items.loc["i3"].age_days == pytest.approx(10 / 24)
    # i1: Monday and Saturday events -> weekend share 1/2, max day share 1/2 -> 7 * 0.5
    assert (i1.weekend_share, i1.dow_concentration) == (0.5, 3.5)


def test_context_features(frames) -> None:
    ev, _, _ = frames
    ctx = context_features(ev).toPandas().set_index("event_id")
    # e1 and e2 form u1's first session; e3 (Saturday, no device) starts a new one
    assert ctx.loc["e2", ["position_in_session", "seconds_since_session_start"]].tolist() == [
        2,
        600.0,
    ]
    assert ctx.loc["e2", "session_key"] == "u1#1" and ctx.loc["e3", "session_key"] == "u1#2"
    assert ctx.loc["e3", ["hour_of_day", "day_of_week", "is_weekend", "device"]].tolist() == [
        20,
        6,
        True,
        "unknown",
    ]
    assert math.isnan(ctx.loc["e1", "seconds_since_prev_event"])
    assert ctx.loc["e3", "seconds_since_prev_event"] == (19 * 24 + 9 + 50 / 60) * 3600


def test_top_categories(frames) -> None:
    _, _, it = frames
    # Drama: i2, i4; Action: i1; Comedy: i1 -> Drama first, then alphabetical
    assert [r.category for r in top_categories(it, 2).collect()] == ["Drama", "Action"]


def test_contract_report_names_rows(spark, tmp_path) -> None:
    df = spark.createDataFrame(
        [("c1", None, "i1", datetime(2024, 1, 1, tzinfo=UTC))],
        "event_id string, user_id string, item_id string, timestamp timestamp",
    )
    report = check_contract("context_features", df)
    assert not report.passed and report.failing_rows == 1
    assert any(e["column"] == "hour_of_day" for e in report.errors)  # column missing
    assert report.sample[0]["event_id"] == "c1"
    on_files = _on_files(df, tmp_path)  # DuckDB on the written table: the same findings
    assert on_files.failing_rows == 1 and on_files.sample[0]["event_id"] == "c1"
    assert {e["column"] for e in on_files.errors} == {e["column"] for e in report.errors}


def _on_files(df, folder):
    from recs_assets.core.features.duck import parquet_files
    from recs_assets.core.features.table_contracts import check_contract_files

    df.write.mode("overwrite").parquet(str(folder / "table"))
    return check_contract_files("context_features", parquet_files(folder / "table"))


def test_contract_single_pass_flags_what_pandera_flags(spark, tmp_path) -> None:
    from pandera.config import ValidationDepth, config_context

    from recs_assets.core.features.table_contracts import CONTRACTS

    t = datetime(2024, 1, 1, tzinfo=UTC)
    good = ("e0", "u1", "i1", t, 10, 1, False, "web", "ios", "s1", 1, 0.0, None)
    rows = [
        good,
        ("e1", "u1", "i1", t, 25, 1, False, "web", "ios", "s1", 2, 5.0, 5.0),  # hour 25
        ("e2", "u1", "i1", t, 3, 0, False, None, "ios", "s1", 3, 5.0, 5.0),  # weekday 0, no device
        ("e3", "u1", "i1", t, 3, 2, False, "web", "ios", "s1", 0, -1.0, -2.0),  # three rules
    ]
    df = spark.createDataFrame(
        rows,
        "event_id string, user_id string, item_id string, timestamp timestamp, hour_of_day int, "
        "day_of_week int, is_weekend boolean, device string, platform string, session_key string, "
        "position_in_session int, seconds_since_session_start double, "
        "seconds_since_prev_event double",
    )
    report = check_contract("context_features", df)
    assert not report.passed and report.failing_rows == 3
    ours = {e["column"] for e in report.errors}
    expected = {
        "hour_of_day",
        "day_of_week",
        "device",
        "position_in_session",
        "seconds_since_session_start",
        "seconds_since_prev_event",
    }
    assert ours == expected
    on_files = _on_files(df, tmp_path)  # DuckDB on the written table: the same rows and rules
    assert on_files.failing_rows == 3
    assert {(e["column"], e["check"]) for e in on_files.errors} == {
        (e["column"], e["check"]) for e in report.errors
    }
    # pandera's own data-level validation (one Spark job per rule) flags the same columns (it
    # files the null device under SCHEMA, the ranges under DATA)
    with config_context(validation_depth=ValidationDepth.SCHEMA_AND_DATA):
        errors = dict(CONTRACTS["context_features"].validate(df).pandera.errors or {})
    theirs = {item["column"] for kind in errors.values() for r in kind.values() for item in r}
    assert theirs == expected
    assert check_contract("context_features", df.where("event_id = 'e0'")).passed


def test_snapshot_times() -> None:
    newest = datetime(2024, 2, 5, 12, tzinfo=UTC)
    oldest = datetime(2024, 1, 1, tzinfo=UTC)
    # back in 14-day steps from 02-05: 01-22, 01-08; 12-25 is before the oldest event
    assert snapshot_times(oldest, newest, 14, 10) == (
        datetime(2024, 1, 8, 12, tzinfo=UTC),
        datetime(2024, 1, 22, 12, tzinfo=UTC),
        newest,
    )
    assert snapshot_times(oldest, newest, 14, 1) == (newest,)
    with pytest.raises(ValueError, match="before oldest"):
        snapshot_times(newest, oldest, 7, 2)


def test_naive_as_of_is_rejected(frames) -> None:
    ev, us, it = frames
    with pytest.raises(ValueError, match="timezone-aware"):
        user_features(ev, us, it, as_of=datetime(2024, 1, 31), categories=CATS)


def test_contract_on_files_names_a_wrong_type_as_pandera_does(spark, tmp_path) -> None:
    """A column of the wrong type (a long hour, a string day) is a schema finding on both paths."""
    t = datetime(2024, 1, 1, tzinfo=UTC)
    df = spark.createDataFrame(
        [("e0", "u1", "i1", t, 10, "1", False, "web", "ios", "s1", 1, 0.0, None)],
        "event_id string, user_id string, item_id string, timestamp timestamp, hour_of_day long, "
        "day_of_week string, is_weekend boolean, device string, platform string, "
        "session_key string, position_in_session int, seconds_since_session_start double, "
        "seconds_since_prev_event double",
    )
    spark_report = check_contract("context_features", df)
    files_report = _on_files(df, tmp_path)
    wrong = {e["column"] for e in files_report.errors if e["kind"] == "SCHEMA/WRONG_DATATYPE"}
    assert wrong == {"hour_of_day", "day_of_week"}
    assert wrong <= {e["column"] for e in spark_report.errors}
    assert not files_report.passed and not spark_report.passed


def test_contract_counts_are_kept_per_file(tmp_path) -> None:
    """A check with a cache reads only the files it has not seen: a hard link of a checked file
    (a kept snapshot or day) answers from the cache, a new file is read."""
    import json
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    from recs_assets.core.features.table_contracts import check_contract_files

    schema = pa.schema(
        [("event_id", pa.string()), ("user_id", pa.string()), ("item_id", pa.string()),
         ("timestamp", pa.timestamp("us", tz="UTC")), ("hour_of_day", pa.int32()),
         ("day_of_week", pa.int32()), ("is_weekend", pa.bool_()), ("device", pa.string()),
         ("platform", pa.string()), ("session_key", pa.string()),
         ("position_in_session", pa.int32()), ("seconds_since_session_start", pa.float64()),
         ("seconds_since_prev_event", pa.float64())]
    )  # fmt: skip
    row = dict(
        event_id="e0", user_id="u1", item_id="i1", timestamp=datetime(2024, 1, 1, tzinfo=UTC),
        hour_of_day=10, day_of_week=1, is_weekend=False, device="web", platform="ios",
        session_key="s1", position_in_session=1, seconds_since_session_start=0.0,
        seconds_since_prev_event=None,
    )  # fmt: skip

    def write(rows: list[dict], path) -> None:
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)

    table, cache = tmp_path / "table", tmp_path / "counts.json"
    table.mkdir()
    good, bad = table / "a.parquet", table / "b.parquet"
    write([row, {**row, "event_id": "e1"}], good)
    write([{**row, "event_id": "e2", "hour_of_day": 25}], bad)
    first = check_contract_files("context_features", [str(good), str(bad)], cache=cache)
    assert first.failing_rows == 1 and first.sample[0]["event_id"] == "e2"
    held = json.loads(cache.read_text())["files"]
    assert sorted(held.values())[0][0] == 0 and sorted(held.values())[1][0] == 1

    # the next build: the good file hard-linked, the bad one replaced by a good one
    nxt = tmp_path / "next"
    nxt.mkdir()
    os.link(good, nxt / "a.parquet")
    write([{**row, "event_id": "e3"}], nxt / "c.parquet")
    files = [str(nxt / "a.parquet"), str(nxt / "c.parquet")]
    assert check_contract_files("context_features", files, cache=cache).passed
    # the linked file's counts came from the cache: a (forged) count there is what is reported
    data = json.loads(cache.read_text())
    assert len(data["files"]) == 2  # the replaced file's entry is dropped
    linked = next(k for k, v in data["files"].items() if k.split(":")[1] == str(good.stat().st_ino))
    data["files"][linked] = [7] + [0] * (len(data["files"][linked]) - 1)
    cache.write_text(json.dumps(data))
    assert check_contract_files("context_features", files, cache=cache).failing_rows == 7
    # without the cache, or with a cache of other rules, every file is read
    assert check_contract_files("context_features", files).passed
    data["rules"] = "other"
    cache.write_text(json.dumps(data))
    assert check_contract_files("context_features", files, cache=cache).passed
