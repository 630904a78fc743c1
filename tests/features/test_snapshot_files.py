"""Snapshot feature tables hold one file per snapshot: a build that keeps a snapshot hard-links
its file instead of writing its rows again, and a table in another layout (several snapshots
in one file, as Spark writes them) still has its kept rows read and written."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from recs_assets.core.features import duck
from recs_assets.core.features.engines import DuckEngine
from recs_assets.core.features.incremental import BuildInputs
from recs_assets.core.features.tables import single_snapshot, snapshot_file_name
from recs_assets.core.phase1.synthetic import generate_synthetic

T1, T2, T3 = (datetime(2024, 1, d, 6, tzinfo=UTC) for d in (10, 20, 30))
INPUTS = BuildInputs(days={}, tables={}, settings="s")


@pytest.fixture(scope="module")
def engine():
    data = generate_synthetic(n_users=120, n_items=60, n_interactions=4_000, seed=2, days=30)
    t = data.tables
    e = DuckEngine(t.interactions, t.users, t.items)
    yield e
    e.close()


def _rows(path: Path | str, as_of: datetime | None = None) -> pd.DataFrame:
    df = pd.concat([pd.read_parquet(f) for f in duck.parquet_files(path)], ignore_index=True)
    if as_of is not None:
        df = df[df["feature_timestamp"] == pd.Timestamp(as_of)]
    return df.sort_values(["feature_timestamp", "item_id"]).reset_index(drop=True)


def test_a_kept_snapshot_is_linked_not_rewritten(engine: DuckEngine, tmp_path: Path) -> None:
    path = tmp_path / "item_features"
    first = engine.write_snapshots(
        {t: engine.item_snapshot(t) for t in (T1, T2)}, [], "item_features", path, (T1, T2), INPUTS
    )
    names = sorted(f.name for f in path.glob("*.parquet"))
    assert names == sorted(snapshot_file_name(t) for t in (T1, T2))
    assert [single_snapshot(str(path / snapshot_file_name(t))) for t in (T1, T2)] == [T1, T2]
    kept_file = path / snapshot_file_name(T2)
    inode, before = kept_file.stat().st_ino, _rows(path, T2)

    second = engine.write_snapshots(
        {T3: engine.item_snapshot(T3)}, [T2], "item_features", path, (T2, T3), INPUTS
    )
    assert sorted(f.name for f in path.glob("*.parquet")) == sorted(
        snapshot_file_name(t) for t in (T2, T3)
    )
    assert kept_file.stat().st_ino == inode  # the same file, not a copy of its rows
    pd.testing.assert_frame_equal(_rows(path, T2), before)
    assert second.snapshots == (T2, T3)
    assert second.row_count == len(_rows(path)) == len(before) + len(_rows(path, T3))
    assert second.columns == first.columns


def test_kept_rows_of_a_file_holding_several_snapshots_are_read(
    engine: DuckEngine, tmp_path: Path
) -> None:
    path = tmp_path / "item_features"
    both = " UNION ALL ".join(f"({engine.item_snapshot(t)})" for t in (T1, T2))
    duck.write_parquet(engine.db.con, both, path)  # the one-file layout
    (old,) = duck.parquet_files(path)
    assert single_snapshot(old) is None
    before = _rows(path)

    table = engine.write_snapshots(
        {T3: engine.item_snapshot(T3)}, [T1, T2], "item_features", path, (T1, T2, T3), INPUTS
    )
    assert sorted(f.name for f in path.glob("*.parquet")) == sorted(
        snapshot_file_name(t) for t in (T1, T2, T3)
    )
    after = _rows(path)
    pd.testing.assert_frame_equal(after[after["feature_timestamp"] < pd.Timestamp(T3)], before)
    assert table.row_count == len(after)


def test_an_empty_or_mixed_file_names_no_snapshot(engine: DuckEngine, tmp_path: Path) -> None:
    empty = duck.write_parquet(
        engine.db.con, f"SELECT * FROM ({engine.item_snapshot(T1)}) LIMIT 0", tmp_path / "e"
    )
    assert single_snapshot(duck.parquet_files(empty.path)[0]) is None
    no_column = tmp_path / "plain.parquet"
    pd.DataFrame({"item_id": ["a"]}).to_parquet(no_column)
    assert single_snapshot(str(no_column)) is None
