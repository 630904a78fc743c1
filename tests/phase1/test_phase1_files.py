"""The files source (Parquet/CSV round trip, privacy on read) and the source resource."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from recs_assets.core.phase1.files import read_tables, write_tables
from recs_assets.core.phase1.privacy import pseudonymize_series
from recs_assets.core.phase1.schema import TABLE_COLUMNS, Phase1Tables
from recs_assets.core.phase1.synthetic import generate_synthetic
from recs_assets.core.phase1.validation import validate_tables
from recs_assets.raw.source_resource import SOURCE_ENV, Phase1Source

NOW = pd.Timestamp("2025-01-01", tz="UTC")


@pytest.fixture(scope="module")
def tables() -> Phase1Tables:
    return generate_synthetic(
        n_users=200, n_items=100, n_interactions=3_000, seed=3, days=10
    ).tables


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_round_trip_is_exact(tables: Phase1Tables, tmp_path: Path, fmt: str) -> None:
    write_tables(tables, tmp_path, fmt=fmt)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{t}.{fmt}" for t in TABLE_COLUMNS)
    back = validate_tables(read_tables(tmp_path, pseudonymize=False), NOW)
    assert back.quarantine.empty
    for table in TABLE_COLUMNS:
        pd.testing.assert_frame_equal(back.tables.table(table), tables.table(table))


def test_reading_pseudonymizes_user_ids_everywhere(tables: Phase1Tables, tmp_path: Path) -> None:
    write_tables(tables, tmp_path, fmt="csv")
    back = validate_tables(read_tables(tmp_path, key=b"k"), NOW)
    expected_users = pseudonymize_series(tables.users["user_id"], b"k")
    pd.testing.assert_series_equal(back.users["user_id"], expected_users, check_names=False)
    expected = pseudonymize_series(tables.interactions["user_id"], b"k")
    pd.testing.assert_series_equal(back.interactions["user_id"], expected, check_names=False)
    assert len(back.interactions) == len(tables.interactions)  # references still resolve


def test_zip_column_becomes_region_and_is_dropped(tables: Phase1Tables, tmp_path: Path) -> None:
    write_tables(tables, tmp_path, fmt="csv")
    users = pd.DataFrame({"user_id": ["a", "b", "c"], "zip": ["85711", "T8H1N", "02138"]})
    users.to_csv(tmp_path / "users.csv", index=False)
    read = read_tables(tmp_path)
    assert read.users["region"].tolist() == ["Mountain", "unknown", "New England"]
    assert "zip" not in read.users.columns
    assert not read.users.astype(str).isin(["85711", "T8H1N", "02138"]).any().any()


def test_missing_or_doubled_files_are_clear_errors(tables: Phase1Tables, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no interactions.parquet or interactions.csv"):
        read_tables(tmp_path)
    write_tables(tables, tmp_path, fmt="csv")
    write_tables(tables, tmp_path, fmt="parquet")
    with pytest.raises(ValueError, match="both interactions.parquet and interactions.csv"):
        read_tables(tmp_path)
    with pytest.raises(ValueError, match="unknown format 'json'"):
        write_tables(tables, tmp_path, fmt="json")


def test_source_specs_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SOURCE_ENV, raising=False)
    assert Phase1Source.from_env() == Phase1Source(kind="synthetic", preset="small")
    monkeypatch.setenv(SOURCE_ENV, "synthetic:1m")
    assert Phase1Source.from_env().preset == "1m"
    monkeypatch.setenv(SOURCE_ENV, "files:/data/x")
    assert (Phase1Source.from_env().kind, Phase1Source.from_env().path) == ("files", "/data/x")
    monkeypatch.setenv(SOURCE_ENV, "movielens:/d/ml-100k")
    assert Phase1Source.from_env().kind == "movielens"
    for bad, message in [("kafka:topic", "unknown kind 'kafka'"), ("files", "needs a folder")]:
        monkeypatch.setenv(SOURCE_ENV, bad)
        with pytest.raises(ValueError, match=message):
            Phase1Source.from_env()


def test_source_load_errors_and_files_kind(tables: Phase1Tables, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown Phase1Source kind 'db'"):
        Phase1Source(kind="db").load()
    with pytest.raises(ValueError, match="needs a path"):
        Phase1Source(kind="movielens").load()
    with pytest.raises(ValueError, match="unknown synthetic preset 'tiny'"):
        Phase1Source(preset="tiny").load()
    write_tables(tables, tmp_path, fmt="parquet")
    loaded = Phase1Source(kind="files", path=str(tmp_path)).load()
    assert len(loaded.interactions) == 3_000
