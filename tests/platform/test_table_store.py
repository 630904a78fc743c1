"""The Parquet table store: exact round trips of the canonical dtypes, partitions, atomic writes,
clear errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from recs_assets.core.table_store import (
    DATA_FILE,
    delete_table,
    has_table,
    partitions,
    read_table,
    write_table,
)


def frame(day: str, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": pd.array([f"{day}-{i}" for i in range(n)], dtype="string"),
            "user_id": pd.array(["u1", None, "u3"][:n], dtype="string"),
            "timestamp": pd.to_datetime([f"{day} 10:0{i}:00" for i in range(n)], utc=True).astype(
                "datetime64[us, UTC]"
            ),
            "rating": pd.array([4.0, None, 2.5][:n], dtype="float64"),
            "age": pd.array([31, None, 7][:n], dtype="Int64"),
        }
    )


def test_round_trip_keeps_values_and_dtypes(tmp_path: Path) -> None:
    df = frame("2024-01-01", 3)
    info = write_table(df, tmp_path, "raw_interactions")
    assert info.path == tmp_path / "raw_interactions" / DATA_FILE
    assert info.row_count == 3
    assert dict(info.columns)["timestamp"] == "timestamp[us, tz=UTC]"
    pd.testing.assert_frame_equal(read_table(tmp_path, "raw_interactions"), df)


def test_partitions_are_written_and_read_one_by_one_or_whole(tmp_path: Path) -> None:
    write_table(frame("2024-01-02", 1), tmp_path, "t", partition="2024-01-02")
    write_table(frame("2024-01-01", 2), tmp_path, "t", partition="2024-01-01")
    assert partitions(tmp_path, "t") == ["2024-01-01", "2024-01-02"]
    assert (tmp_path / "t" / "partition=2024-01-01" / DATA_FILE).is_file()  # Hive style
    whole = read_table(tmp_path, "t")
    assert whole["event_id"].tolist() == ["2024-01-01-0", "2024-01-01-1", "2024-01-02-0"]
    one = read_table(tmp_path, "t", ["2024-01-02"])
    pd.testing.assert_frame_equal(one, frame("2024-01-02", 1))
    # rewriting a partition replaces it and leaves the others alone
    write_table(frame("2024-01-02", 3), tmp_path, "t", partition="2024-01-02")
    assert len(read_table(tmp_path, "t")) == 5


def test_a_whole_write_replaces_old_partitions(tmp_path: Path) -> None:
    write_table(frame("2024-01-01", 2), tmp_path, "t", partition="2024-01-01")
    write_table(frame("2024-01-05", 1), tmp_path, "t")
    assert partitions(tmp_path, "t") == []
    assert read_table(tmp_path, "t")["event_id"].tolist() == ["2024-01-05-0"]


def test_no_temporary_file_is_left_behind(tmp_path: Path) -> None:
    write_table(frame("2024-01-01", 2), tmp_path, "t")
    write_table(frame("2024-01-01", 3), tmp_path, "t")
    assert [p.name for p in (tmp_path / "t").iterdir()] == [DATA_FILE]


def test_errors_name_the_table_and_partition(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="table 'nope' has not been written"):
        read_table(tmp_path, "nope")
    write_table(frame("2024-01-01", 1), tmp_path, "t", partition="2024-01-01")
    with pytest.raises(FileNotFoundError, match=r"no partition\(s\) \['2024-01-09'\]"):
        read_table(tmp_path, "t", ["2024-01-01", "2024-01-09"])
    with pytest.raises(ValueError, match="reserved for partitions"):
        write_table(frame("2024-01-01", 1).assign(partition="x"), tmp_path, "u")
    for bad in ("", "../x", ".hidden", "a/b"):
        with pytest.raises(ValueError):
            write_table(frame("2024-01-01", 1), tmp_path, bad)
    assert has_table(tmp_path, "t") and not has_table(tmp_path, "t", "2024-01-09")
    delete_table(tmp_path, "t")
    assert not has_table(tmp_path, "t")


def test_written_partitions_keep_the_asked_order_and_skip_the_missing(tmp_path) -> None:
    from recs_assets.core.table_store import PartitionedFrame, written_partitions

    frame = pd.DataFrame({"x": [1, 2]})
    for day in ("2024-01-02", "2024-01-01"):
        write_table(frame, tmp_path, "t", day)
    wanted = ["2024-01-03", "2024-01-02", "2024-01-01"]
    assert written_partitions(tmp_path, "t", wanted) == ["2024-01-02", "2024-01-01"]
    assert PartitionedFrame({"a": frame, "b": frame.iloc[:0]}).row_count == 2
