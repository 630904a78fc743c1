"""The source's events read a column or a few row groups at a time: the same rows, at the same
positions, as the whole frame ``load()`` gives, with landed batches and forgotten users."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from recs_assets.automation.landing_source import LandedPhase1Source
from recs_assets.cli.generate_batch import write_batch
from recs_assets.core.phase1.daily import days_between, undated_interactions, validate_days
from recs_assets.core.phase1.event_rows import ConcatRows, FrameRows, ParquetRows
from recs_assets.core.phase1.files import read_parquet_frame
from recs_assets.core.phase1.forgetting import forget_requests

NOW = pd.Timestamp("2025-01-01", tz="UTC")


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "event_id": [f"e{k}" for k in range(n)],
            "user_id": pd.array([f"u{k % 7}" for k in range(n)], dtype="string"),
            "rating": np.where(rng.random(n) < 0.3, np.nan, rng.integers(1, 6, n)),
            "timestamp": pd.date_range("2024-01-01", periods=n, freq="37min", tz="UTC"),
        }
    )


def test_parquet_rows_read_only_the_row_groups_asked_for(tmp_path: Path) -> None:
    frame = _frame(1_000)
    path = tmp_path / "events.parquet"
    frame.to_parquet(path, index=False, row_group_size=64)
    whole = read_parquet_frame(path)
    rows = ParquetRows(path)
    assert len(rows) == 1_000 and pq.ParquetFile(path).metadata.num_row_groups == 16
    pd.testing.assert_series_equal(rows.column("timestamp"), whole["timestamp"])
    picks = np.sort(np.random.default_rng(0).choice(1_000, 150, replace=False))
    pd.testing.assert_frame_equal(rows.take(picks), whole.iloc[picks].reset_index(drop=True))
    empty = rows.take(np.arange(0))
    assert empty.empty and (empty.dtypes == whole.dtypes).all()
    # only some file rows count (a forgotten user's left out): positions are among those
    keep = np.flatnonzero(whole["user_id"] != "u3")
    kept = ParquetRows(path, keep=keep)
    expected = whole.iloc[keep].reset_index(drop=True)
    assert len(kept) == len(expected)
    pd.testing.assert_series_equal(kept.column("event_id"), expected["event_id"])
    inside = picks[picks < len(kept)]
    pd.testing.assert_frame_equal(kept.take(inside), expected.iloc[inside].reset_index(drop=True))
    # one after another
    both = ConcatRows([kept, FrameRows(frame.iloc[:10])])
    joined = pd.concat([expected, frame.iloc[:10]], ignore_index=True)
    assert len(both) == len(joined)
    at = np.array([0, 5, len(expected) - 1, len(expected), len(expected) + 9])
    pd.testing.assert_frame_equal(both.take(at), joined.iloc[at].reset_index(drop=True))
    pd.testing.assert_series_equal(both.column("event_id"), joined["event_id"])


def test_the_landed_synthetic_source_reads_as_load_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECS_DATA_DIR", str(tmp_path))
    source = LandedPhase1Source(kind="synthetic", preset="small", seed=5)
    base = source.load().interactions
    # a batch with new events, one event already in the base and one repeated, from a user
    # who then asks to be forgotten, and one from a user who stays
    batch = base.iloc[[11, 12, 12]].copy()  # users u0299 and u1393
    batch["event_id"] = ["new-1", "new-2", str(base["event_id"].iloc[3])]
    batch["timestamp"] = pd.Timestamp("2024-04-02T10:00:00Z")
    write_batch(pd.concat([batch, batch.iloc[:1]]), tmp_path / "landing", "batch-1.parquet")
    forget_requests().record(str(base["user_id"].iloc[40]), "test", "{}")
    forget_requests().record(str(batch["user_id"].iloc[1]), "test", "{}")
    loaded = source.load()
    rows = source.event_rows()
    assert isinstance(rows, ConcatRows) and isinstance(rows.parts[0], ParquetRows)
    assert len(rows) == len(loaded.interactions)
    pd.testing.assert_frame_equal(rows.take(np.arange(len(rows))), loaded.interactions)
    pd.testing.assert_series_equal(rows.column("timestamp"), loaded.interactions["timestamp"])
    dims = source.load_dimensions()
    assert dims.interactions.empty and list(dims.interactions) == list(loaded.interactions)
    pd.testing.assert_frame_equal(dims.users, loaded.users)
    pd.testing.assert_frame_equal(dims.items, loaded.items)
    # the raw steps' results do not depend on how the events were read
    days = days_between("2024-03-25", "2024-04-02")
    by_rows = validate_days(rows, loaded.users, loaded.items, days, NOW, chunk_events=5_000)
    by_frame = validate_days(loaded.interactions, loaded.users, loaded.items, days, NOW)
    assert by_rows.rows_in == by_frame.rows_in > 0 and by_rows.valid["2024-04-02"].shape[0] == 1
    for day in days:
        pd.testing.assert_frame_equal(by_rows.valid[day], by_frame.valid[day])
        pd.testing.assert_frame_equal(by_rows.quarantine[day], by_frame.quarantine[day])
    pd.testing.assert_frame_equal(
        undated_interactions(rows, "2024-02-01", "2024-03-01"),
        undated_interactions(loaded.interactions, "2024-02-01", "2024-03-01"),
    )
