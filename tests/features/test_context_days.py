"""``context_features`` is written in day partitions: an incremental build recomputes the rows from
the first changed day on and keeps the files of the days before it (hard links, not rewritten),
and its rows equal a full build's, on both engines."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from recs_assets.core.features.engines import DuckEngine, SparkEngine
from recs_assets.core.features.incremental import BuildInputs
from recs_assets.core.features.tables import day_partitions, day_reuse
from recs_assets.core.phase1.synthetic import generate_synthetic
from tests.features.test_duck_parity import assert_same_rows

INPUTS = BuildInputs(days={}, tables={}, settings="test")
GAP = 30


def _events() -> pd.DataFrame:
    events = generate_synthetic(
        n_users=40, n_items=30, n_interactions=2000, seed=5, days=30
    ).tables.interactions
    # half the users send no session_id: their sessions are derived from gaps (user#n)
    derived = events["user_id"].isin(sorted(events["user_id"].unique())[::2])
    return events.assign(session_id=events["session_id"].mask(derived))


def _day(events: pd.DataFrame) -> pd.Series:
    return events["timestamp"].dt.strftime("%Y-%m-%d")


def _engine(name: str, spark, events: pd.DataFrame):
    return DuckEngine(events) if name == "duckdb" else SparkEngine(spark, events)


def _write(name: str, spark, events: pd.DataFrame, path: Path, changed: set[str] | None):
    engine = _engine(name, spark, events)
    try:
        return engine.write_context(path, INPUTS, changed, GAP)
    finally:
        engine.close()


def _inodes(path: Path) -> dict[str, int]:
    return {str(f.relative_to(path)): f.stat().st_ino for f in path.rglob("*.parquet")}


def _rows(path: Path) -> pd.DataFrame:
    return pd.concat(
        [pd.read_parquet(f) for f in sorted(path.rglob("*.parquet"))], ignore_index=True
    )


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_a_late_and_a_landed_day_recompute_from_the_first_changed_day(
    engine: str, spark, tmp_path: Path
) -> None:
    events = _events()
    days = sorted(_day(events).unique())
    cut, late_day = days[-5], days[len(days) // 2]
    # the landed batch: the days from cut on, and one late event on an earlier day of a user
    # whose later events it precedes (their session numbers and gaps move)
    # a late event one second after an event of a derived-session user, and one at the same time
    # as another event with a smaller event_id (ties are ordered by event_id)
    on_day = events[(_day(events) == late_day) & events["session_id"].isna()]
    late = on_day.iloc[[0, 1]].copy()
    late["event_id"] = ["late-1", "a-late-2"]
    late["timestamp"] = late["timestamp"] + pd.to_timedelta([1, 0], unit="s")
    before, after = events[_day(events) < cut], pd.concat([events, late], ignore_index=True)

    path = tmp_path / "context_features"
    first, touched = _write(engine, spark, before, path, None)
    assert touched == "all" and first.row_count == len(before)
    assert set(day_partitions(path) or {}) == set(_day(before))
    links = _inodes(path)

    changed = {late_day, *(d for d in days if d >= cut)}
    table, touched = _write(engine, spark, after, path, changed)
    assert table.row_count == len(after) and "partition" not in table.columns
    recomputed = after.loc[_day(after) >= late_day, "user_id"].nunique()
    assert touched == str(recomputed)
    now = _inodes(path)
    kept = {f for f in links if f.split("/")[0] < f"partition={late_day}"}
    assert kept and all(now[f] == links[f] for f in kept)  # the same files, not rewritten
    assert all(now[f] != links[f] for f in links if f not in kept and f in now)

    full, _ = _write(engine, spark, after, tmp_path / "full", None)
    assert full.columns == table.columns
    assert_same_rows(_rows(tmp_path / "full"), _rows(path), "event_id")
    for f in path.rglob("*.parquet"):  # every row in the folder of its UTC day
        assert set(_day(pd.read_parquet(f))) == {f.parent.name.removeprefix("partition=")}

    # nothing changed: no row computed, every file kept
    again, touched = _write(engine, spark, after, path, set())
    assert touched == "0" and again.row_count == len(after) and _inodes(path) == now


def test_a_table_in_another_layout_is_rebuilt(tmp_path: Path) -> None:
    flat = tmp_path / "context_features"
    flat.mkdir()
    (flat / "part-00000.parquet").write_bytes(b"")
    assert day_reuse(flat, {"2024-01-01"}) is None
    assert day_reuse(tmp_path / "missing", set()) is None
    days = tmp_path / "days"
    for d in ("2024-01-01", "2024-01-02", "2024-01-03"):
        (days / f"partition={d}").mkdir(parents=True)
    assert day_reuse(days, None) is None
    reuse = day_reuse(days, {"2024-01-02", "2024-01-03"})
    assert reuse is not None and reuse.first == "2024-01-02" and set(reuse.kept) == {"2024-01-01"}
    everything = day_reuse(days, set())
    assert everything is not None and everything.first is None and len(everything.kept) == 3


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_a_table_without_rows_keeps_its_schema(engine: str, spark, tmp_path: Path) -> None:
    """No events: one empty file with the columns (readers and the contract need them), and the
    next build rebuilds it in full."""
    none = _events().iloc[0:0]
    path = tmp_path / "context_features"
    table, _ = _write(engine, spark, none, path, None)
    assert table.row_count == 0 and "session_key" in table.columns
    assert pd.read_parquet(next(path.glob("*.parquet"))).columns.tolist() == list(table.columns)
    assert day_reuse(path, set()) is None
    events = _events()
    again, touched = _write(engine, spark, events, path, set(_day(events)))
    assert touched == "all" and again.row_count == len(events)
