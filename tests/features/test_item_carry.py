"""The item features from a kept item state equal the full query (``duck.item_features_sql``).

A history of 50 and a half days is built (its newest snapshot is the previous build's, in the
middle of a day), then events land: the rest of that day and two more, a new item, a user's
first event on an item (a new distinct user) and a user's repeat (not one). The state carried
from the previous one (``duck.carried_item_state_sql``) must give the rows the full query gives,
value for value (floats to the last bits of a sum); a change before the state's time must
refuse the carry (``item_state.carry_refusal``), and carrying anyway would show.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from recs_assets.core.features import duck, item_state
from recs_assets.core.features.engines import DuckEngine
from recs_assets.core.features.incremental import BuildInputs, Carry
from recs_assets.core.phase1.synthetic import generate_synthetic

START = pd.Timestamp("2024-01-01", tz="UTC")


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("item_id").reset_index(drop=True)


def _equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    # exact but for the last bits of float sums (DuckDB adds in parallel, in no fixed order)
    pd.testing.assert_frame_equal(_sorted(a), _sorted(b), check_exact=False, rtol=1e-12, atol=0)


@pytest.fixture(scope="module")
def case() -> dict[str, object]:
    data = generate_synthetic(n_users=300, n_items=120, n_interactions=10_000, seed=7, days=60)
    events, items = data.tables.interactions, data.tables.items.copy()
    previous = events.loc[
        events["timestamp"] < START + pd.Timedelta(days=50, hours=12), "timestamp"
    ]
    prev = previous.max()
    history = events[events["timestamp"] <= prev].reset_index(drop=True)
    landed = events[
        (events["timestamp"] > prev) & (events["timestamp"] < START + pd.Timedelta(days=53))
    ].copy()
    # a new item, created after the previous snapshot, with one event
    fresh = items.iloc[[0]].assign(item_id="fresh", created_at=prev + pd.Timedelta(hours=1))
    items = pd.concat([items, fresh], ignore_index=True)
    seen = history.groupby("item_id")["user_id"].agg(set)
    item = seen.index[0]
    newcomer = next(u for u in sorted(set(events["user_id"])) if u not in seen[item])
    regular = sorted(seen[item])[0]
    extra = landed.iloc[[0, 0, 0]].copy()
    extra["event_id"] = ["x-fresh", "x-new-pair", "x-repeat"]
    extra["item_id"] = ["fresh", item, item]
    extra["user_id"] = [regular, newcomer, regular]
    extra["timestamp"] = prev + pd.Timedelta(hours=2)
    now = pd.concat([history, landed, extra], ignore_index=True)
    return {
        "history": history,
        "now": now,
        "items": items,
        "users": data.tables.users,
        "previous": prev.to_pydatetime(),
        "as_of": now["timestamp"].max().to_pydatetime(),
        "item": item,
    }


def _con(case: dict[str, object], events: pd.DataFrame) -> duck.FeatureConnection:
    return duck.FeatureConnection(events, case["users"], case["items"])  # type: ignore[arg-type]


def test_the_rows_from_a_state_equal_the_full_query(case: dict[str, object]) -> None:
    times = [
        case["as_of"],
        case["previous"],
        datetime(2024, 2, 1, tzinfo=UTC),  # a midnight: events on it count
        datetime(2024, 1, 3, 7, 30, tzinfo=UTC),  # two days in: most items without an event
    ]
    with _con(case, case["now"]) as con:  # type: ignore[arg-type]
        for t in times:
            full = con.frame(duck.item_features_sql(as_of=t))
            state = f"({duck.item_state_sql(as_of=t)})"
            _equal(con.frame(duck.item_features_from_state_sql(as_of=t, state=state)), full)
            # and the same column types, so one table's snapshot files read as one
            a = con.con.sql(duck.item_features_sql(as_of=t)).types
            assert con.con.sql(duck.item_features_from_state_sql(as_of=t, state=state)).types == a


def _carried(case: dict[str, object], history: pd.DataFrame, now: pd.DataFrame) -> pd.DataFrame:
    with _con(case, history) as before:
        state = before.frame(duck.item_state_sql(as_of=case["previous"]))  # type: ignore[arg-type]
    with _con(case, now) as con:
        con.con.register("previous_state", state)
        carried = duck.carried_item_state_sql(
            as_of=case["as_of"],  # type: ignore[arg-type]
            previous=case["previous"],  # type: ignore[arg-type]
            previous_state="previous_state",
        )
        return con.frame(
            duck.item_features_from_state_sql(as_of=case["as_of"], state=f"({carried})")  # type: ignore[arg-type]
        )


def _full(case: dict[str, object], now: pd.DataFrame) -> pd.DataFrame:
    with _con(case, now) as con:
        return con.frame(duck.item_features_sql(as_of=case["as_of"]))  # type: ignore[arg-type]


def test_a_carried_state_gives_the_full_rows(case: dict[str, object]) -> None:
    full = _full(case, case["now"])  # type: ignore[arg-type]
    _equal(_carried(case, case["history"], case["now"]), full)  # type: ignore[arg-type]
    row = full.set_index("item_id")
    assert row.loc["fresh", "events_all"] == 1 and row.loc["fresh", "distinct_users_all"] == 1
    history = case["history"]
    before = history[history["item_id"] == case["item"]]  # type: ignore[index]
    # the newcomer is one more distinct user; the regular's repeat is not
    landed = case["now"][case["now"]["item_id"] == case["item"]]  # type: ignore[index]
    assert row.loc[case["item"], "distinct_users_all"] == landed["user_id"].nunique()
    assert landed["user_id"].nunique() > before["user_id"].nunique()


def _days(events: pd.DataFrame) -> dict[str, str]:
    """A fingerprint of each event day (as ``incremental.day_fingerprints`` gives per file)."""
    day = events["timestamp"].dt.strftime("%Y-%m-%d")
    return {
        str(d): str(pd.util.hash_pandas_object(part.astype(str), index=False).sum())
        for d, part in events.groupby(day)
    }


def test_a_change_before_the_state_time_refuses_the_carry_and_would_show(
    case: dict[str, object],
) -> None:
    prev: datetime = case["previous"]  # type: ignore[assignment]
    history: pd.DataFrame = case["history"]  # type: ignore[assignment]
    now: pd.DataFrame = case["now"]  # type: ignore[assignment]
    # a late event on the state's own day, before its time: the day's fingerprint changes, as
    # it does for the landed events after that time, so only the day's checksum can tell
    late = history.iloc[[-1]].assign(
        event_id="late", timestamp=pd.Timestamp(prev) - pd.Timedelta(hours=1)
    )
    later = pd.concat([now, late], ignore_index=True)
    with _con(case, history) as before:
        count, checksum = before.con.execute(duck.day_checksum_sql(prev)).fetchone()  # type: ignore[misc]
    half = duck.DEFAULT_HALF_LIFE_DAYS
    meta = item_state.ItemStateMeta(prev.isoformat(), count, checksum, half, _days(history))
    for events, refused in ((now, False), (later, True)):
        with _con(case, events) as con:
            day_now = con.con.execute(duck.day_checksum_sql(prev)).fetchone()
        why = item_state.carry_refusal(meta, prev, _days(events), tuple(day_now), half)  # type: ignore[arg-type]
        assert (why is not None) == refused, why
    with pytest.raises(AssertionError):  # carried anyway, the late event is lost
        _equal(_carried(case, history, later), _full(case, later))


def test_carry_refusal_rules() -> None:
    t = datetime(2024, 3, 1, 12, tzinfo=UTC)
    days = {"2024-02-28": "a", "2024-02-29": "b", "2024-03-01": "c"}
    meta = item_state.ItemStateMeta(t.isoformat(), 5, "123", 7.0, days)
    now = {**days, "2024-03-01": "c2", "2024-03-02": "d"}  # the state's day and a new one
    assert item_state.carry_refusal(meta, t, now, (5, "123"), 7.0) is None
    assert "no kept" in str(item_state.carry_refusal(None, t, now, None, 7.0))
    old = item_state.ItemStateMeta(t.isoformat(), 5, "123", 7.0, days, version=0)
    assert "format" in str(item_state.carry_refusal(old, t, now, (5, "123"), 7.0))
    later = t + timedelta(hours=1)
    assert "previous snapshot" in str(item_state.carry_refusal(meta, later, now, (5, "123"), 7.0))
    assert "half-life" in str(item_state.carry_refusal(meta, t, now, (5, "123"), 14.0))
    # a day before the state's changed, appeared or disappeared
    for earlier in (
        {**now, "2024-02-29": "b2"},
        {**now, "2024-02-20": "e"},
        {k: v for k, v in now.items() if k != "2024-02-28"},
    ):
        assert "before the kept state's day" in str(
            item_state.carry_refusal(meta, t, earlier, (5, "123"), 7.0)
        )
    assert "fingerprints" in str(item_state.carry_refusal(meta, t, {}, (5, "123"), 7.0))
    assert "changed" in str(item_state.carry_refusal(meta, t, now, (6, "999"), 7.0))


def test_the_engine_keeps_the_state_and_the_next_build_starts_from_it(
    case: dict[str, object], tmp_path: Path
) -> None:
    path = tmp_path / "item_features"
    prev: datetime = case["previous"]  # type: ignore[assignment]
    as_of: datetime = case["as_of"]  # type: ignore[assignment]
    inputs = BuildInputs(days={}, tables={}, settings="s")

    def build(events: pd.DataFrame, t: datetime, carry: Carry | None) -> DuckEngine:
        engine = DuckEngine(events, items=case["items"])  # type: ignore[arg-type]
        try:
            sql = engine.item_snapshot(t, carry, path, newest=True, days=_days(events))
            engine.write_snapshots({t: sql}, [], "item_features", path, (t,), inputs)
        finally:
            engine.close()
        return engine

    first = build(case["history"], prev, None)  # type: ignore[arg-type]
    assert first.item_carried_from is None
    meta = item_state.read_meta(path)
    assert meta is not None and meta.time == prev
    # the state is beside the table, outside its folder: no reader of the table sees it
    assert item_state.state_file(path).is_file()
    assert not item_state.state_file(path).is_relative_to(path)
    carry = Carry(prev, frozenset())
    second = build(case["now"], as_of, carry)  # type: ignore[arg-type]
    assert second.item_carried_from == prev and second.item_carry_refused is None
    written = pd.read_parquet(duck.parquet_files(path))
    full = _full(case, case["now"])  # type: ignore[arg-type]
    for frame in (written, full):
        frame["feature_timestamp"] = frame["feature_timestamp"].dt.tz_convert("UTC")
    _equal(written, full)
    assert item_state.read_meta(path).time == as_of  # type: ignore[union-attr]
    # the kept state is now at as_of: a build whose previous snapshot is elsewhere refuses it
    third = build(case["now"], as_of, Carry(prev, frozenset()))  # type: ignore[arg-type]
    assert third.item_carried_from is None and "previous snapshot" in str(third.item_carry_refused)
    # a damaged state file is a reason to compute in full, not a failed build
    item_state.state_file(path).write_bytes(b"not parquet")
    fourth = build(case["now"], as_of, Carry(as_of, frozenset()))  # type: ignore[arg-type]
    assert fourth.item_carried_from is None and "does not read" in str(fourth.item_carry_refused)
    _equal(pd.read_parquet(duck.parquet_files(path)).pipe(_utc), _utc(full))


def _utc(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["feature_timestamp"] = frame["feature_timestamp"].dt.tz_convert("UTC")
    return frame
