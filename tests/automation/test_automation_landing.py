"""Landing batches: dedupe on event_id, idempotent re-runs, file reading, `recs generate-batch`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from recs_assets.automation.landing_source import LandedPhase1Source
from recs_assets.cli.generate_batch import batch_file_name, generate_batch_command
from recs_assets.core.phase1.landing import append_batches, landed_files, read_batches, with_landed
from recs_assets.core.phase1.privacy import pseudonymize_id
from recs_assets.core.phase1.schema import Phase1Tables, conform
from recs_assets.core.phase1.synthetic import generate_preset


def _events(ids: list[str], user: str = "u1") -> pd.DataFrame:
    return conform(
        pd.DataFrame(
            {
                "event_id": pd.array(ids, dtype="string"),
                "user_id": pd.array([user] * len(ids), dtype="string"),
                "item_id": pd.array(["i1"] * len(ids), dtype="string"),
                "event_type": pd.array(["view"] * len(ids), dtype="string"),
                "timestamp": pd.to_datetime(["2024-01-02"] * len(ids), utc=True).astype(
                    "datetime64[us, UTC]"
                ),
            }
        ),
        "interactions",
    )


def test_append_batches_dedupes_and_is_idempotent() -> None:
    existing = _events(["e1", "e2"])
    batches = [_events(["e2", "e3", "e3"]), _events(["e4", "e1"])]
    merged, n_new, n_dup = append_batches(existing, batches)
    # 5 landed rows: e2 and e1 already exist, the second e3 repeats the first -> new e3, e4
    assert merged["event_id"].tolist() == ["e1", "e2", "e3", "e4"]
    assert (n_new, n_dup) == (2, 3)
    again, n_new2, n_dup2 = append_batches(merged, batches)
    assert again["event_id"].tolist() == ["e1", "e2", "e3", "e4"]
    assert (n_new2, n_dup2) == (0, 5)
    assert existing["event_id"].tolist() == ["e1", "e2"]  # input untouched


def test_append_batches_edge_cases() -> None:
    existing = _events(["e1"])
    merged, n_new, n_dup = append_batches(existing, [])
    assert merged["event_id"].tolist() == ["e1"] and (n_new, n_dup) == (0, 0)
    merged, n_new, _ = append_batches(_events([]), [_events(["a", "b"])])
    assert merged["event_id"].tolist() == ["a", "b"] and n_new == 2
    bad = _events(["x"]).assign(event_id=pd.array([None], dtype="string"))
    with pytest.raises(ValueError, match="1 landed row"):
        append_batches(existing, [bad])


def test_read_batches_parquet_and_csv_in_name_order(tmp_path: Path) -> None:
    _events(["p1", "p2"]).to_parquet(tmp_path / "b-2.parquet", index=False)
    _events(["c1"]).to_csv(tmp_path / "b-1.csv", index=False)
    (tmp_path / ".b-3.parquet.tmp").write_bytes(b"partial")  # still being written: skipped
    (tmp_path / "notes.txt").write_text("not a batch")
    assert list(landed_files(tmp_path)) == ["b-1.csv", "b-2.parquet"]
    frames = read_batches(tmp_path)
    assert [f["event_id"].tolist() for f in frames] == [["c1"], ["p1", "p2"]]
    assert landed_files(tmp_path / "missing") == {}
    pd.DataFrame({"user_id": ["u"]}).to_csv(tmp_path / "b-0.csv", index=False)
    with pytest.raises(ValueError, match=r"b-0\.csv.*required column"):
        read_batches(tmp_path)


def test_with_landed_pseudonymizes_like_the_source(tmp_path: Path) -> None:
    tables = Phase1Tables(_events(["e1"], user="u_base"), pd.DataFrame(), pd.DataFrame())
    _events(["e1", "e9"], user="7").to_parquet(tmp_path / "b.parquet", index=False)
    key = b"k"
    merged, stats = with_landed(tables, tmp_path, pseudonymize=True, key=key)
    assert merged.interactions["event_id"].tolist() == ["e1", "e9"]
    assert merged.interactions["user_id"].tolist() == ["u_base", pseudonymize_id("7", key)]
    assert (stats.files, stats.new_events, stats.duplicates) == (("b.parquet",), 1, 1)


def test_generate_batch_lands_after_newest_and_is_picked_up(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["--events", "300", "--seed", "3", "--landing", str(tmp_path), "--source", "synthetic"]
    first = runner.invoke(generate_batch_command, args)
    assert first.exit_code == 0, first.output
    second = runner.invoke(generate_batch_command, [*args, "--shift-tastes", "0.5"])
    assert second.exit_code == 0, second.output
    files = list(landed_files(tmp_path))
    assert len(files) == 2
    base = generate_preset("small", seed=42).tables.interactions
    b1, b2 = read_batches(tmp_path)
    # the first batch starts after the base data, the second after the first
    assert files[0] == batch_file_name(base["timestamp"].max(), 3, "parquet")
    assert b1["timestamp"].min() > base["timestamp"].max()
    assert b2["timestamp"].min() > b1["timestamp"].max()
    assert len(b1) == len(b2) == 300

    source = LandedPhase1Source(kind="synthetic", preset="small", landing_dir=str(tmp_path))
    tables, stats = source.load_with_stats()
    assert len(tables.interactions) == len(base) + 600
    assert (stats.new_events, stats.duplicates) == (600, 0)
    assert (
        len(source.load().interactions) == len(base) + 600
    )  # idempotent: a re-load adds nothing new


def test_generate_batch_refuses_non_synthetic_source(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        generate_batch_command, ["--source", "movielens:/nowhere", "--landing", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert "ground truth" in result.output
