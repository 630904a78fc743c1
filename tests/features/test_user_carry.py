"""The newest user snapshot carried from the previous build equals a full computation.

A history of 50 days is built (its newest snapshot is the previous build's), then three days of
events land, with a late event in the middle of history, a removed event, an event moved
within its day and users who sign up between the two snapshots. The carried rows
(``duck.carried_user_features_sql``: recomputed only for the users whose rows may have moved)
must equal the rows computed from all events, value for value (floats to the last bits of a
sum); leaving out any one of its rules must not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from recs_assets.core.features import duck
from recs_assets.core.features.incremental import BuildInputs, Carry, carry_plan
from recs_assets.core.phase1.synthetic import generate_synthetic
from recs_assets.core.table_store import write_table

START = pd.Timestamp("2024-01-01", tz="UTC")


def _write(events: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame, root: Path) -> None:
    days = events["timestamp"].dt.strftime("%Y-%m-%d")
    for day, part in events.groupby(days):
        write_table(part.reset_index(drop=True), root, "raw_interactions", str(day))
    write_table(users, root, "raw_users")
    write_table(items, root, "raw_items")


def _connection(root: Path) -> duck.FeatureConnection:
    return duck.FeatureConnection(
        duck.parquet_files(root / "raw_interactions"),
        duck.parquet_files(root / "raw_users"),
        duck.parquet_files(root / "raw_items"),
    )


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("user_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("carry")
    data = generate_synthetic(n_users=400, n_items=150, n_interactions=12_000, seed=5, days=60)
    events, users, items = data.tables.interactions, data.tables.users, data.tables.items
    cut = START + pd.Timedelta(days=50)
    history = events[events["timestamp"] < cut].reset_index(drop=True)
    previous = history["timestamp"].max().to_pydatetime()
    landed = events[
        (events["timestamp"] >= cut) & (events["timestamp"] < cut + pd.Timedelta(days=3))
    ]
    # the users below have no event that lands, nor one whose age crosses the 7- or 30-day
    # bound between the two snapshots: only the rule under test can mark their rows
    day = history["timestamp"].sub(START).dt.days
    crossing = set(history.loc[day.between(18, 25) | day.between(41, 48), "user_id"])
    calm = history[~history["user_id"].isin(crossing | set(landed["user_id"]))]
    # an event removed: its user's only event of that day (its day alone shows no event of it)
    per_day = calm.groupby([calm["user_id"], day[calm.index]]).size()
    removed_user, removed_on = per_day[per_day == 1].index[0]
    removed = calm[(calm["user_id"] == removed_user) & (day[calm.index] == removed_on)].iloc[0]
    others = sorted(set(calm["user_id"]) - {removed_user})
    # a late event on day 12 for another of them
    quiet = others[0]
    late = history[history["user_id"] == quiet].iloc[[0]].copy()
    late["event_id"] = "late-1"
    late["timestamp"] = START + pd.Timedelta(days=12, hours=3)
    # an event moved within its day (same count of events: only its day says it changed)
    quiet2 = next(u for u in others[1:] if (day[calm.index[calm["user_id"] == u]] < 15).any())
    moved = calm.index[(calm["user_id"] == quiet2) & (day[calm.index] < 15)][-1]
    stamp = history.loc[moved, "timestamp"]
    history_now = history.drop(index=removed.name).copy()
    history_now.loc[moved, "timestamp"] = stamp.normalize() + pd.Timedelta(
        hours=(stamp.hour + 12) % 24, minutes=stamp.minute
    )
    now = pd.concat([history_now, landed, late], ignore_index=True)
    as_of = now["timestamp"].max().to_pydatetime()
    # users who sign up between the two snapshots (rows only in the new one)
    users = users.copy()
    ghost = users.iloc[[0]].assign(user_id="ghost", signup_time=START)  # no event ever
    users = pd.concat([users, ghost], ignore_index=True)
    joined = users.index[:3]
    users.loc[joined, "signup_time"] = pd.Timestamp(previous) + pd.Timedelta(hours=5)
    _write(history, users, items, tmp / "before")
    _write(now, users, items, tmp / "after")
    with _connection(tmp / "before") as con:
        categories = con.top_categories(10)
        table = tmp / "user_features"
        duck.write_parquet(
            con.con, duck.user_features_sql(as_of=previous, categories=categories), table
        )
    moved_day = stamp.strftime("%Y-%m-%d")
    changed = sorted(
        {
            *landed["timestamp"].dt.strftime("%Y-%m-%d"),
            "2024-01-13",
            removed["timestamp"].strftime("%Y-%m-%d"),
            moved_day,
        }
    )
    return {
        "root": tmp / "after",
        "table": table,
        "previous": previous,
        "as_of": as_of,
        "categories": categories,
        "changed": changed,
        "late_user": quiet,
        "moved_user": quiet2,
        "moved_day": moved_day,
        "removed_user": removed["user_id"],
        "joined": list(users.loc[joined, "user_id"]),
    }


def _carried(
    case: dict[str, object], changed: list[str], previous_files: list[str] | None = None
) -> pd.DataFrame:
    files = previous_files or duck.parquet_files(case["table"])  # type: ignore[arg-type]
    with _connection(case["root"]) as con:  # type: ignore[arg-type]
        return _sorted(
            con.frame(
                duck.carried_user_features_sql(
                    as_of=case["as_of"],  # type: ignore[arg-type]
                    previous=case["previous"],  # type: ignore[arg-type]
                    previous_files=files,
                    changed_days=changed,
                    categories=case["categories"],  # type: ignore[arg-type]
                )
            )
        )


def _full(case: dict[str, object]) -> pd.DataFrame:
    with _connection(case["root"]) as con:  # type: ignore[arg-type]
        return _sorted(
            con.frame(
                duck.user_features_sql(
                    as_of=case["as_of"],  # type: ignore[arg-type]
                    categories=case["categories"],  # type: ignore[arg-type]
                )
            )
        )


def test_carried_rows_equal_a_full_computation(case: dict[str, object]) -> None:
    full, carried = _full(case), _carried(case, case["changed"])  # type: ignore[arg-type]
    assert list(carried.columns) == list(full.columns)
    assert len(full) == 401  # the 400 generated users and the one without events
    # exact but for the last bits of float sums (DuckDB adds in parallel, in no fixed order)
    pd.testing.assert_frame_equal(carried, full, check_exact=False, rtol=1e-12, atol=0.0)
    # the cases that make a row move are in there: a signup, the late and the removed event
    assert set(case["joined"]) <= set(full["user_id"])  # type: ignore[arg-type]
    # most rows were carried: their clocks moved, nothing else
    moved = full["days_since_last_event"].notna()
    assert moved.sum() > 300


def test_a_changed_day_left_out_shows(case: dict[str, object]) -> None:
    # an event moved within its day leaves the user's count as it was: only the day tells
    changed = [d for d in case["changed"] if d != case["moved_day"]]  # type: ignore[union-attr]
    full, carried = _full(case), _carried(case, changed)
    row = full["user_id"] == case["moved_user"]
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(carried[row], full[row], check_exact=False, rtol=1e-9)
    pd.testing.assert_frame_equal(carried[~row], full[~row], check_exact=False, rtol=1e-12)


def test_rows_missing_from_the_previous_table_are_recomputed(
    case: dict[str, object], tmp_path: Path
) -> None:
    # a previous table short of two users' rows (one without events) is no reason to lose them
    with _connection(case["root"]) as con:  # type: ignore[arg-type]
        previous = duck.files_relation(duck.parquet_files(case["table"]))  # type: ignore[arg-type]
        with_events = con.con.execute(
            f"SELECT min(user_id) FROM {previous} WHERE events_all > 0"
        ).fetchone()[0]
        short = duck.write_parquet(
            con.con,
            f"SELECT * FROM {previous} WHERE user_id NOT IN ('ghost', {duck.lit(with_events)})",
            tmp_path / "short",
        )
    carried = _carried(case, case["changed"], duck.parquet_files(short.path))  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(carried, _full(case), check_exact=False, rtol=1e-12, atol=0.0)


def _inputs(days: dict[str, str], snapshots: tuple[str, ...] = ()) -> BuildInputs:
    return BuildInputs(days=days, tables={"users": "u"}, settings="s", snapshots=snapshots)


def test_carry_plan() -> None:
    t0 = datetime(2024, 3, 1, 12, tzinfo=UTC)
    previous = _inputs({"2024-02-29": "a", "2024-03-01": "b"}, (t0.isoformat(),))
    current = _inputs({"2024-02-29": "a", "2024-03-01": "c", "2024-03-02": "d"})
    later = t0 + timedelta(days=1)
    assert carry_plan(previous, current, later) == Carry(
        t0, frozenset({"2024-03-01", "2024-03-02"})
    )
    assert carry_plan(None, current, later) is None
    assert carry_plan(_inputs(previous.days), current, later) is None  # no snapshot written
    assert carry_plan(previous, current, t0 - timedelta(seconds=1)) is None  # newest moved back
    other = BuildInputs(days=current.days, tables={"users": "v"}, settings="s")
    assert carry_plan(previous, other, later) is None  # the users table changed


def test_on_days_picks_the_rows_of_those_utc_days() -> None:
    # the ranges select exactly what formatting each timestamp's UTC day would, midnight included
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE TABLE t AS SELECT TIMESTAMPTZ '2024-02-26 00:00:00+00' + i * INTERVAL 37 MINUTE "
        "AS timestamp FROM range(0, 400) r(i) UNION ALL "
        "SELECT TIMESTAMPTZ '2024-03-01 00:00:00+00' UNION ALL "
        "SELECT TIMESTAMPTZ '2024-02-29 23:59:59.999999+00'"
    )
    for days in ([], ["2024-02-29"], ["2024-02-28", "2024-03-01", "2024-02-29"], ["2024-03-02"]):
        wanted = ", ".join(duck.lit(d) for d in days) or "NULL"
        got = con.execute(
            f"SELECT timestamp FROM t WHERE {duck.on_days(days)} ORDER BY 1"
        ).fetchall()
        expected = con.execute(
            f"SELECT timestamp FROM t WHERE strftime(timestamp, '%Y-%m-%d') IN ({wanted}) ORDER BY 1"
        ).fetchall()
        assert got == expected, days
        if days and days != ["2024-03-02"]:  # days inside the table's span select some rows
            assert got, days
