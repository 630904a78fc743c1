"""The raw assets and their blocking checks, materialized in process."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from click.testing import CliRunner
from dagster import AssetKey, asset, materialize

from recs_assets.cli.generate import generate_command
from recs_assets.core.phase1.files import write_tables
from recs_assets.core.phase1.synthetic import generate_synthetic
from recs_assets.raw.raw_tables import RAW_CHECKS, raw_tables
from recs_assets.raw.source_resource import Phase1Source

RUN_CONFIG = {"ops": {"raw_tables": {"config": {"now": "2025-01-01T00:00:00+00:00"}}}}


@asset
def user_count(raw_users: pd.DataFrame) -> int:
    """Stand-in downstream asset: must not run when the blocking check on raw_users fails."""
    return len(raw_users)


def _files_with_bad_users(folder: Path, n_bad: int) -> None:
    tables = generate_synthetic(
        n_users=200, n_items=50, n_interactions=1_000, seed=1, days=5
    ).tables
    users = tables.users.astype(object).copy()
    users.loc[: n_bad - 1, "age"] = 500  # out of range: these users are quarantined
    write_tables(tables, folder, fmt="parquet")
    users.to_csv(folder / "users.csv", index=False)
    (folder / "users.parquet").unlink()


def test_materialize_raw_assets_from_movielens(ml100k_dir: Path) -> None:
    result = materialize(
        [raw_tables, *RAW_CHECKS],
        resources={"phase1": Phase1Source(kind="movielens", path=str(ml100k_dir))},
        run_config=RUN_CONFIG,
    )
    assert result.success
    assert len(result.output_for_node("raw_tables", "raw_interactions")) == 100_000
    assert len(result.output_for_node("raw_tables", "raw_users")) == 943
    assert len(result.output_for_node("raw_tables", "quarantined_rows")) == 0
    meta = {m.asset_key: m.metadata for m in result.asset_materializations_for_node("raw_tables")}
    items = meta[AssetKey("raw_items")]
    assert items["dagster/row_count"].value == 1_682 and items["rejected"].value == 0
    assert "| item_id" in items["preview"].value and "Drama\\|War" in items["preview"].value
    assert all(e.passed for e in result.get_asset_check_evaluations())
    assert len(result.get_asset_check_evaluations()) == 3


def test_blocking_check_fails_above_one_percent_and_stops_downstream(tmp_path: Path) -> None:
    _files_with_bad_users(tmp_path, n_bad=4)  # 4 of 200 users = 2% > 1%
    result = materialize(
        [raw_tables, *RAW_CHECKS, user_count],
        resources={"phase1": Phase1Source(kind="files", path=str(tmp_path))},
        run_config=RUN_CONFIG,
        raise_on_error=False,
    )
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["raw_users_rejected_share"].passed
    assert checks["raw_users_rejected_share"].metadata["rejected_share"].value == 0.02
    assert checks["raw_items_rejected_share"].passed
    materialized = {m.asset_key for m in result.get_asset_materialization_events()}
    assert AssetKey("raw_users") in materialized and AssetKey("user_count") not in materialized
    quarantine = result.output_for_node("raw_tables", "quarantined_rows")
    assert (quarantine.loc[quarantine["table"] == "users", "check"] == "range").sum() == 4


def test_check_threshold_comes_from_config(tmp_path: Path) -> None:
    _files_with_bad_users(tmp_path, n_bad=4)
    # the 4 rejected users also orphan their interactions, so both limits are raised
    loose = {"config": {"max_rejected_share": 0.2}}
    config = {
        "ops": {
            **RUN_CONFIG["ops"],
            "raw_users_raw_users_rejected_share": loose,
            "raw_interactions_raw_interactions_rejected_share": loose,
        }
    }
    result = materialize(
        [raw_tables, *RAW_CHECKS, user_count],
        resources={"phase1": Phase1Source(kind="files", path=str(tmp_path))},
        run_config=config,
    )
    assert result.success and result.output_for_node("user_count") == 196


def test_generate_command_writes_the_files_schema(tmp_path: Path) -> None:
    out = CliRunner().invoke(generate_command, ["--out", str(tmp_path), "--format", "csv"])
    assert out.exit_code == 0, out.output
    assert "50,000 interactions" in out.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "interactions.csv",
        "items.csv",
        "users.csv",
    ]
