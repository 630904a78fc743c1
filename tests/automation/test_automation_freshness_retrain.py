"""A stale model asks for a retrain on a real instance: with the freshness windows shortened
(``RECS_FRESHNESS_SCALE``), the freshness daemon marks a model FAIL and the running
``freshness_retrain_sensor`` requests ``refresh_job`` (the run stays queued here)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, AssetMaterialization, DagsterInstance, RunsFilter
from ui_helpers import dagster_daemon

from recs_assets.cli.dagster_home import prepare_dagster_home


@pytest.mark.slow
def test_a_stale_model_requests_a_refresh(tmp_path: Path) -> None:
    home = prepare_dagster_home(tmp_path / "dagster_home", env={})
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    config["run_queue"] = {"max_concurrent_runs": 0}  # requested runs stay queued: nothing runs
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "RECS_DATA_DIR": str(tmp_path / "data"),
        "RECS_FRESHNESS_SCALE": "0.0005",  # a model fails freshness 2 minutes after materializing
    }
    with DagsterInstance.from_config(str(home)) as instance:
        # a model is trained on raw days: the refresh covers the days materialized so far
        for day in ("2024-01-01", "2024-01-02"):
            instance.report_runless_asset_event(
                AssetMaterialization("raw_interactions", partition=day)
            )
        instance.report_runless_asset_event(AssetMaterialization("ease_model"))
        with dagster_daemon(env) as daemon:
            deadline = time.monotonic() + 360
            runs = []
            while not runs and time.monotonic() < deadline:
                assert daemon.poll() is None, "the daemon exited"
                runs = instance.get_runs(RunsFilter(tags={"recs/trigger": "freshness"}))
                time.sleep(5)
            assert runs, "no refresh was requested for the stale model"
            run = runs[0]
            assert run.job_name == "refresh_job"
            assert run.tags["dagster/sensor_name"] == "freshness_retrain_sensor"
            assert "ease_model" in run.tags["recs/stale_assets"]
            assert run.tags["dagster/asset_partition_range_start"] == "2024-01-01"
            assert run.tags["dagster/asset_partition_range_end"] == "2024-01-02"
            state = instance.get_freshness_state_records([AssetKey("ease_model")])
            assert state[AssetKey("ease_model")].freshness_state.value == "FAIL"
