"""Automation conditions run by themselves on a fresh instance: the project's automation-condition
sensor starts RUNNING (Dagster's default one starts stopped), so after new raw interactions land,
the real daemon materializes ``trending_items`` at the next tick of its cron window without anyone
toggling anything."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, DefaultSensorStatus
from ui_helpers import dagster_daemon, dagster_materialize

from recs_assets.automation.sensors import automation_condition_sensor
from recs_assets.cli.dagster_home import prepare_dagster_home

RAW = "raw_users,raw_items,raw_interactions,quarantined_rows,quarantined_interactions"
SMALL_DAYS = "2024-01-01...2024-03-31"  # every day of the synthetic small preset's events


def test_the_sensor_targets_every_asset_and_starts_running() -> None:
    assert automation_condition_sensor.default_status == DefaultSensorStatus.RUNNING
    from recs_assets.definitions import defs

    names = {s.name for s in defs.sensors}
    assert "automation_condition_sensor" in names
    graph = defs.resolve_asset_graph()
    conditioned = {k for k in graph.get_all_asset_keys() if graph.get(k).automation_condition}
    assert AssetKey("trending_items") in conditioned


@pytest.mark.slow
def test_trending_items_materializes_by_itself_on_a_fresh_instance(tmp_path: Path) -> None:
    home = prepare_dagster_home(tmp_path / "dagster_home", env={})
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "RECS_DATA_DIR": str(tmp_path / "data"),
        "RECS_SOURCE": "synthetic",
        "RECS_REDIS_URL": "",  # trending goes to Parquet in the data dir
        "RECS_TRENDING_CRON": "* * * * *",  # a window a minute long keeps the test short
    }
    with dagster_daemon(env) as daemon:
        # let the sensor evaluate once (30 s interval) before the data lands, so the update is
        # seen as new; the run then follows at the next minute tick
        time.sleep(40)
        dagster_materialize(env, RAW, "--partition-range", SMALL_DAYS)
        with DagsterInstance.from_config(str(home)) as instance:
            assert instance.get_latest_materialization_event(AssetKey("trending_items")) is None
            deadline = time.monotonic() + 420
            event = None
            while event is None and time.monotonic() < deadline:
                assert daemon.poll() is None, "the daemon exited"
                event = instance.get_latest_materialization_event(AssetKey("trending_items"))
                time.sleep(5)
            assert event is not None, "trending_items was not materialized by the daemon"
            run = instance.get_run_by_id(event.run_id)
            assert run is not None
            # launched by the sensor, not by the CLI: Dagster tags automation runs
            assert run.tags.get("dagster/sensor_name") == "automation_condition_sensor"
        assert (tmp_path / "data" / "trending" / "trending_items.parquet").is_file()
