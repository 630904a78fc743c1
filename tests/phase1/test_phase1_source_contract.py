"""A source declares its rating scale and event types (manifest or config); rows outside them are
quarantined with a reason naming the declared scale, and a data set on another scale loses nothing
once its scale is declared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pipeline_fixtures import materialize_raw

from recs_assets.core.phase1.files import write_tables
from recs_assets.core.phase1.schema import Phase1Tables
from recs_assets.core.phase1.source_contract import MANIFEST, RatingScale, SourceContract
from recs_assets.core.phase1.synthetic import generate_synthetic
from recs_assets.core.phase1.validation import validate_tables
from recs_assets.raw.source_resource import Phase1Source

NOW = pd.Timestamp("2025-01-01", tz="UTC")


@pytest.fixture(scope="module")
def tables() -> Phase1Tables:
    return generate_synthetic(n_users=150, n_items=80, n_interactions=3_000, seed=5, days=10).tables


def rescaled(tables: Phase1Tables, ratings: pd.Series) -> Phase1Tables:
    """``tables`` with the ratings of its ``rate`` events replaced by ``ratings`` (same order)."""
    inter = tables.interactions.copy()
    rated = inter["rating"].notna()
    inter.loc[rated, "rating"] = ratings.to_numpy()[: int(rated.sum())]
    return Phase1Tables(interactions=inter, users=tables.users, items=tables.items)


def half_stars(tables: Phase1Tables) -> Phase1Tables:
    """Every rated event on a 0.5-5 half-star scale, every one of the ten values present."""
    n = int(tables.interactions["rating"].notna().sum())
    return rescaled(tables, pd.Series(np.resize(np.arange(1, 11) / 2, n)))


def test_scales_parse_and_print() -> None:
    assert RatingScale.parse("1-5") == RatingScale(1, 5, 1)
    assert RatingScale.parse("0.5-5 step 0.5") == RatingScale(0.5, 5, 0.5)
    assert RatingScale.parse("0-1 step any") == RatingScale(0, 1, None)
    assert RatingScale.parse("none") is None
    assert str(RatingScale(0.5, 5, 0.5)) == "0.5-5 step 0.5"
    for bad in ("five", "5", "5-1", "1-5 step 0", "1-5 step x"):
        with pytest.raises(ValueError):
            RatingScale.parse(bad)


def test_contains_is_exact_on_the_grid() -> None:
    scale = RatingScale(0.5, 5, 0.5)
    got = scale.contains(pd.Series([0.5, 0.75, 1.0, 4.5, 5.0, 5.5, 0.0, 0.1 + 0.2 + 0.2]))
    # 0.1 + 0.2 + 0.2 = 0.5000000000000001: float noise from text still lands on the grid
    assert got.tolist() == [True, False, True, True, True, False, False, True]


def test_half_star_folder_with_manifest_loses_nothing(tables: Phase1Tables, tmp_path: Path) -> None:
    write_tables(half_stars(tables), tmp_path, fmt="csv")
    (tmp_path / MANIFEST).write_text("rating_scale: 0.5-5 step 0.5\n")
    source = Phase1Source(kind="files", path=str(tmp_path))
    result = validate_tables(source.load(), NOW, source.contract())
    assert result.quarantine.empty
    assert len(result.interactions) == len(tables.interactions)
    assert sorted(result.interactions["rating"].dropna().unique()) == list(np.arange(1, 11) / 2)


def test_without_the_manifest_every_rating_off_1_to_5_is_quarantined_with_the_scale_named(
    tables: Phase1Tables, tmp_path: Path
) -> None:
    data = half_stars(tables)
    write_tables(data, tmp_path, fmt="csv")
    source = Phase1Source(kind="files", path=str(tmp_path))
    result = validate_tables(source.load(), NOW, source.contract())
    ratings = data.interactions["rating"]
    off_scale = ratings.notna() & ((ratings < 1) | (ratings % 1 != 0))  # 0.5, 1.5, ..., 4.5
    q = result.quarantine[result.quarantine["table"] == "interactions"]
    assert sorted(q["row_index"]) == list(np.flatnonzero(off_scale.to_numpy()))
    assert (q["check"] == "range").all()
    below_one = q[q["row_index"].isin(np.flatnonzero((ratings < 1).to_numpy()))]
    assert len(below_one) == int((ratings < 1).sum()) > 0
    assert below_one["reason"].str.contains("not on the declared rating scale 1-5 step 1").all()
    assert below_one["reason"].str.contains(MANIFEST).all()  # and how to declare another


def test_config_declares_a_ten_point_scale(tables: Phase1Tables) -> None:
    n = int(tables.interactions["rating"].notna().sum())
    data = rescaled(tables, pd.Series(np.resize(np.arange(1.0, 11.0), n)))
    default = validate_tables(data, NOW)
    assert (default.quarantine["check"] == "range").sum() == int(
        (data.interactions["rating"] > 5).sum()
    )
    declared = Phase1Source(rating_scale="1-10").contract()
    assert validate_tables(data, NOW, declared).quarantine.empty


def test_implicit_only_source_accepts_no_ratings_and_no_rate_events(tables: Phase1Tables) -> None:
    contract = SourceContract.from_mapping({"rating_scale": "none"})
    assert "rate" not in contract.accepted_events
    inter = tables.interactions
    implicit = inter[inter["event_type"] != "rate"].reset_index(drop=True)
    clean = Phase1Tables(interactions=implicit, users=tables.users, items=tables.items)
    assert validate_tables(clean, NOW, contract).quarantine.empty
    result = validate_tables(tables, NOW, contract)  # the rate events (with ratings) are rejected
    q = result.quarantine[result.quarantine["table"] == "interactions"]
    assert len(q) == int((inter["event_type"] == "rate").sum())
    assert q["reason"].str.contains("rating: .* given, but the declared rating scale is none").all()
    assert q["reason"].str.contains("event_type: 'rate' not one of").all()


def test_declared_event_types_restrict_rows(tables: Phase1Tables) -> None:
    contract = SourceContract(event_types=("rate", "click"))
    result = validate_tables(tables, NOW, contract)
    kinds = tables.interactions["event_type"]
    q = result.quarantine[result.quarantine["table"] == "interactions"]
    assert len(q) == int((~kinds.isin(["rate", "click"])).sum())
    assert set(result.interactions["event_type"]) <= {"rate", "click"}


def test_bad_manifests_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text("rating_scale: 1-5\nratings: yes\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['ratings'\]"):
        SourceContract.from_folder(tmp_path)
    (tmp_path / MANIFEST).write_text("event_types: [rate, swipe]\n")
    with pytest.raises(ValueError, match="event_types must be a non-empty subset"):
        SourceContract.from_folder(tmp_path)
    (tmp_path / MANIFEST).write_text("rating_scale: lots\n")
    with pytest.raises(ValueError, match="rating scale 'lots' not understood"):
        SourceContract.from_folder(tmp_path)


def test_raw_assets_of_a_declared_half_star_folder_pass_their_checks(
    tables: Phase1Tables, tmp_path: Path
) -> None:
    write_tables(half_stars(tables), tmp_path, fmt="parquet")
    (tmp_path / MANIFEST).write_text("rating_scale: 0.5-5 step 0.5\n")
    source = Phase1Source(kind="files", path=str(tmp_path))
    result = materialize_raw(source, tmp_path / "storage", str(NOW))
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    assert len(result.output_for_node("raw_tables", "quarantined_rows")) == 0
