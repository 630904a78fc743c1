"""The raw assets and their blocking checks, materialized in process."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from click.testing import CliRunner
from dagster import AssetKey, asset
from pipeline_fixtures import materialize_raw

from recs_assets.cli.generate import generate_command
from recs_assets.core.phase1.files import write_tables
from recs_assets.core.phase1.synthetic import generate_synthetic
from recs_assets.core.table_store import partitions, read_table
from recs_assets.raw.source_resource import Phase1Source

NOW = "2025-01-01T00:00:00+00:00"


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


def test_materialize_raw_assets_from_movielens(ml100k_dir: Path, tmp_path: Path) -> None:
    source = Phase1Source(kind="movielens", path=str(ml100k_dir))
    result = materialize_raw(source, tmp_path, NOW)
    assert result.success
    runs = {
        m.asset_key: m.metadata
        for m in result.asset_materializations_for_node("daily_interactions")
    }
    # the days were validated in groups and written as they were taken: every row counted once
    assert runs[AssetKey("raw_interactions")]["rows_in_run"].value == 100_000
    assert runs[AssetKey("quarantined_interactions")]["rows_in"].value == 100_000
    assert len(result.output_for_node("raw_tables", "raw_users")) == 943
    assert len(result.output_for_node("raw_tables", "quarantined_rows")) == 0
    meta = {m.asset_key: m.metadata for m in result.asset_materializations_for_node("raw_tables")}
    items = meta[AssetKey("raw_items")]
    assert items["dagster/row_count"].value == 1_682 and items["rejected"].value == 0
    assert "| item_id" in items["preview"].value and "Drama\\|War" in items["preview"].value
    assert all(e.passed for e in result.get_asset_check_evaluations())
    assert len(result.get_asset_check_evaluations()) == 3
    # one partition per UTC day from the first rating (1997-09-20) to the last (1998-04-22)
    days = partitions(tmp_path / "tables", "raw_interactions")
    assert days[0] == "1997-09-20" and days[-1] == "1998-04-22" and len(days) == 215
    assert len(read_table(tmp_path / "tables", "raw_interactions")) == 100_000
    one_day = read_table(tmp_path / "tables", "raw_interactions", ["1997-11-13"])
    assert len(one_day) > 0
    assert (one_day["timestamp"].dt.strftime("%Y-%m-%d") == "1997-11-13").all()


def test_blocking_check_fails_above_one_percent_and_stops_downstream(tmp_path: Path) -> None:
    _files_with_bad_users(tmp_path, n_bad=4)  # 4 of 200 users = 2% > 1%
    source = Phase1Source(kind="files", path=str(tmp_path))
    result = materialize_raw(source, tmp_path, NOW, extra=[user_count], raise_on_error=False)
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
    ops = {
        "raw_users_raw_users_rejected_share": loose,
        "daily_interactions": {"config": {"now": NOW, "max_rejected_share": 0.2}},
    }
    source = Phase1Source(kind="files", path=str(tmp_path))
    result = materialize_raw(source, tmp_path, NOW, extra=[user_count], ops=ops)
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


def test_the_spark_engine_writes_the_same_days_and_quarantine(tmp_path: Path) -> None:
    """``daily_interactions`` on Spark SQL and on pandas, same source with bad rows: the same
    valid events and the same quarantine, day by day."""
    folder = tmp_path / "source"
    folder.mkdir()
    _files_with_bad_users(folder, n_bad=4)  # their events fail referential integrity
    events = pd.read_parquet(folder / "interactions.parquet").astype(object)
    events.loc[3, "rating"], events.loc[3, "event_type"] = 9.0, "rate"  # off the 1-5 scale
    events.loc[5, "timestamp"] = "not a time"
    events.loc[8, "event_id"] = events.loc[7, "event_id"]  # a duplicate id
    events.to_csv(folder / "interactions.csv", index=False)
    (folder / "interactions.parquet").unlink()
    source = Phase1Source(kind="files", path=str(folder))
    tables = {}
    for engine in ("pandas", "spark"):
        ops = {
            "raw_users_raw_users_rejected_share": {"config": {"max_rejected_share": 0.5}},
            "daily_interactions": {
                "config": {"now": NOW, "engine": engine, "max_rejected_share": 0.5}
            },
        }
        result = materialize_raw(source, tmp_path / engine, NOW, ops=ops)
        assert result.success
        meta = result.asset_materializations_for_node("daily_interactions")[0].metadata
        assert meta["engine"].value == engine
        root = tmp_path / engine / "tables"
        tables[engine] = (
            read_table(root, "raw_interactions"),
            read_table(root, "quarantined_interactions"),
            partitions(root, "raw_interactions"),
        )
    (valid_p, bad_p, days_p), (valid_s, bad_s, days_s) = tables["pandas"], tables["spark"]
    assert days_s == days_p
    pd.testing.assert_frame_equal(valid_s, valid_p)
    key = ["row_index", "check", "column"]
    assert bad_s[key].values.tolist() == bad_p[key].values.tolist()
    # the off-scale rating, the duplicate id and the orphaned events of the rejected users
    assert set(bad_p["check"]) == {"range", "unique", "referential_integrity"}
    assert {3, 8} <= set(bad_p["row_index"])


def test_the_engine_follows_the_deployment_and_the_size() -> None:
    from recs_assets.raw.raw_tables import DailyInteractionsConfig, use_spark

    auto = DailyInteractionsConfig(spark_above_events=1_000)
    assert not use_spark(auto, "local[*]", 999)
    assert use_spark(auto, "local[*]", 1_001)
    assert use_spark(auto, "spark://master:7077", 10)
    assert not use_spark(DailyInteractionsConfig(engine="pandas"), "spark://m:7077", 10**9)
    assert use_spark(DailyInteractionsConfig(engine="spark"), "local[1]", 1)
    # by default, local mode stays on pandas at any size (the source is on the driver anyway)
    assert not use_spark(DailyInteractionsConfig(), "local[*]", 10**9)


def test_raw_tables_carry_content_data_versions(tmp_path: Path) -> None:
    """The same rows give the same data version (a rerun leaves what depends on them fresh in
    Dagster); changed rows give a new one (what depends on them turns stale)."""
    folder = tmp_path / "source"
    tables = generate_synthetic(n_users=60, n_items=30, n_interactions=500, seed=2, days=3).tables
    write_tables(tables, folder, fmt="parquet")
    source = Phase1Source(kind="files", path=str(folder))

    def versions(run: int) -> dict[str, str]:
        result = materialize_raw(source, tmp_path / f"run{run}", NOW)
        assert result.success
        return {
            m.asset_key.to_user_string(): m.tags["dagster/data_version"]
            for m in result.asset_materializations_for_node("raw_tables")
        }

    first, again = versions(1), versions(2)
    assert set(first) == {"raw_users", "raw_items", "quarantined_rows"}
    assert again == first
    users = tables.users.copy()
    users.loc[0, "age"] = 77 if users.loc[0, "age"] != 77 else 78
    users.to_parquet(folder / "users.parquet", index=False)
    changed = versions(3)
    assert changed["raw_users"] != first["raw_users"]
    assert changed["raw_items"] == first["raw_items"]
