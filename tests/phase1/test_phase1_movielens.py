"""MovieLens 100K as published -> canonical tables; 50 injected bad rows are quarantined exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from movielens_fixtures import inject_bad_ratings

from recs_assets.core.phase1.movielens import load_movielens
from recs_assets.core.phase1.privacy import pseudonym_key, pseudonymize_id
from recs_assets.core.phase1.validation import validate_tables

NOW = pd.Timestamp("2025-01-01", tz="UTC")


@pytest.fixture(scope="module")
def ml(ml100k_dir: Path) -> pd.DataFrame:
    return load_movielens(ml100k_dir)


def test_published_counts_and_zero_rejects(ml, ml100k_dir: Path) -> None:
    result = validate_tables(ml, NOW)
    assert (len(result.interactions), len(result.users), len(result.items)) == (100_000, 943, 1_682)
    assert result.quarantine.empty
    i = result.interactions
    assert (i["event_type"] == "rate").all()
    assert str(i["timestamp"].dtype) == "datetime64[us, UTC]"
    raw = np.loadtxt(ml100k_dir / "u.data", dtype=np.int64)
    assert i["rating"].sum() == raw[:, 2].sum()
    assert i["timestamp"].min() == pd.Timestamp(int(raw[:, 3].min()), unit="s", tz="UTC")
    assert i["event_id"].tolist()[:2] == ["ml-0", "ml-1"]
    # first u.data line is "196 242 3 881250949"
    first = i.iloc[0]
    assert first["user_id"] == pseudonymize_id("196", pseudonym_key()) and first["item_id"] == "242"
    assert first["timestamp"] == pd.Timestamp("1997-12-04 15:55:49", tz="UTC")


def test_items_and_users_mapped(ml, ml100k_dir: Path) -> None:
    items = ml.items.set_index("item_id")
    assert items.loc["1", "title"] == "Toy Story (1995)"
    assert items.loc["1", "categories"] == "Animation|Children's|Comedy"
    assert items.loc["1", "created_at"] == pd.Timestamp("1995-01-01", tz="UTC")
    users = ml.users.set_index("user_id")
    first = users.loc[pseudonymize_id("1", pseudonym_key())]  # "1|24|M|technician|85711"
    assert (first["age"], first["gender"], first["occupation"], first["region"]) == (
        "24",
        "M",
        "technician",
        "Mountain",
    )


def test_no_raw_user_id_or_zip_is_stored(ml, ml100k_dir: Path) -> None:
    raw_users = pd.read_csv(ml100k_dir / "u.user", sep="|", header=None, dtype=str)
    stored = set(ml.users.astype(str).to_numpy().ravel()) | set(ml.interactions["user_id"])
    assert not stored & set(raw_users[4])  # no ZIP anywhere
    assert ml.users["user_id"].str.fullmatch(r"u_[0-9a-f]{16}").all()
    assert "zip" not in ml.users.columns


def test_exactly_the_injected_rows_are_quarantined(ml100k_dir: Path, tmp_path: Path) -> None:
    expected = inject_bad_ratings(ml100k_dir, tmp_path)
    result = validate_tables(load_movielens(tmp_path), NOW)
    q = result.quarantine
    assert (q["table"] == "interactions").all()
    got = {
        int(r): (c, col)
        for r, c, col in q[["row_index", "check", "column"]].itertuples(index=False)
    }
    assert got == expected
    assert len(result.interactions) == 100_000
    good_rows = sorted(set(range(100_050)) - set(expected))
    assert result.interactions["event_id"].tolist() == [f"ml-{r}" for r in good_rows]
    assert q["raw_row"].str.contains('"event_id": "ml-').all()
