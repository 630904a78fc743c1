"""Sensors and the daily schedule against a real (temporary) Dagster instance.

The drift case runs the real ``feature_drift`` asset and check on synthetic data with a landed batch:
shifted tastes fail the check and the sensor requests retraining; an unshifted batch does not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import (
    AssetMaterialization,
    DagsterInstance,
    DagsterRunStatus,
    DataVersion,
    Definitions,
    Output,
    RunRequest,
    SensorResult,
    SkipReason,
    asset,
    build_schedule_context,
    build_sensor_context,
    define_asset_job,
    instance_for_test,
    materialize,
)
from dagster._core.test_utils import create_run_for_test

from recs_assets.automation.jobs import refresh_job, retrain_job
from recs_assets.automation.schedules import (
    DATA_TAG,
    SCHEDULE_TAG,
    build_daily_retrain_schedule,
    stale_assets,
)
from recs_assets.automation.sensors import build_drift_retrain_sensor, build_landing_sensor
from recs_assets.core.phase1.synthetic import generate_batch, generate_preset
from recs_assets.definitions import defs
from recs_assets.monitoring.feature_drift import feature_drift, feature_drift_within_limits
from recs_assets.raw.partitions import RANGE_END_TAG, RANGE_START_TAG
from recs_assets.raw.source_resource import SOURCE_ENV


@pytest.fixture()
def instance():
    with instance_for_test() as inst:
        yield inst


def _tick(sensor_def: Any, cursor: str | None, instance: DagsterInstance) -> Any:
    """One evaluation of ``sensor_def``; its context is closed here, not when garbage-collected
    during a later test (see the schedule test)."""
    with build_sensor_context(cursor=cursor, instance=instance) as context:
        return sensor_def(context)


def _touch(path: Path, mtime: float) -> None:
    path.write_bytes(b"x")
    os.utime(path, (mtime, mtime))


def _land(path: Path, mtime: float, *days: str) -> None:
    """A batch file with one view event on each of ``days`` (noon UTC)."""
    batch = pd.DataFrame(
        {
            "event_id": [f"{path.stem}-{k}" for k in range(len(days))],
            "user_id": "u1",
            "item_id": "i1",
            "event_type": "view",
            "timestamp": [f"{d}T12:00:00Z" for d in days],
        }
    )
    if path.suffix == ".csv":
        batch.to_csv(path, index=False)
    else:
        batch.to_parquet(path)
    os.utime(path, (mtime, mtime))


def test_landing_sensor_requests_once_per_new_batch(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    sensor_def = build_landing_sensor(refresh_job, landing_dir=str(tmp_path))

    empty = _tick(sensor_def, None, instance)
    assert isinstance(empty, SensorResult) and empty.run_requests == []
    assert empty.cursor == "{}"

    _land(tmp_path / "batch-1.parquet", 1000.0, "2024-04-02", "2024-04-01")
    first = _tick(sensor_def, empty.cursor, instance)
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert request.run_key.startswith("landing-")
    assert request.tags["recs/batches"] == "batch-1.parquet"
    # one run over the days the batch's events belong to
    assert request.tags[RANGE_START_TAG] == "2024-04-01"
    assert request.tags[RANGE_END_TAG] == "2024-04-02"
    assert json.loads(first.cursor) == {"batch-1.parquet": 1000.0}

    again = _tick(sensor_def, first.cursor, instance)
    assert again.run_requests == [] and again.cursor == first.cursor

    _land(tmp_path / "batch-2.csv", 2000.0, "2024-04-03")
    second = _tick(sensor_def, first.cursor, instance)
    assert [r.tags["recs/batches"] for r in second.run_requests] == ["batch-2.csv"]
    assert second.run_requests[0].tags[RANGE_START_TAG] == "2024-04-03"
    assert json.loads(second.cursor) == {"batch-1.parquet": 1000.0, "batch-2.csv": 2000.0}


def test_landing_sensor_skips_a_batch_it_cannot_read_and_says_why(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    sensor_def = build_landing_sensor(refresh_job, landing_dir=str(tmp_path))
    (tmp_path / "broken.parquet").write_bytes(b"x")
    result = _tick(sensor_def, "{}", instance)
    assert result.run_requests == []
    assert "broken.parquet" in result.skip_reason.skip_message
    assert "cannot be read" in result.skip_reason.skip_message
    assert json.loads(result.cursor) == {
        "broken.parquet": pytest.approx(os.path.getmtime(tmp_path / "broken.parquet"))
    }


@pytest.fixture(scope="module")
def synthetic():
    return generate_preset("small", seed=42)


def _materialize_drift(synthetic, shift: float, instance: DagsterInstance) -> bool:
    base = synthetic.tables.interactions
    batch = generate_batch(
        synthetic.ground_truth, 3000, base["timestamp"].max(), days=1.0, seed=5, taste_shift=shift
    )
    events = pd.concat([base, batch], ignore_index=True)

    @asset(name="raw_interactions")
    def raw_interactions_stub() -> pd.DataFrame:
        return events

    @asset(name="raw_items")
    def raw_items_stub() -> pd.DataFrame:
        return synthetic.tables.items

    result = materialize(
        [raw_interactions_stub, raw_items_stub, feature_drift, feature_drift_within_limits],
        instance=instance,
        raise_on_error=True,
    )
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 1
    return evaluations[0].passed


def test_drift_sensor_retrains_on_shifted_tastes_only(synthetic, instance: DagsterInstance) -> None:
    sensor_def = build_drift_retrain_sensor(retrain_job)

    assert _materialize_drift(synthetic, 0.0, instance) is True
    calm = _tick(sensor_def, None, instance)
    assert calm.run_requests == []  # unshifted batch: the check passed, no retraining
    check_key = "feature_drift:feature_drift_within_limits"
    first_id = json.loads(calm.cursor)[check_key]

    assert _materialize_drift(synthetic, 1.0, instance) is False
    drifted = _tick(sensor_def, calm.cursor, instance)
    assert len(drifted.run_requests) == 1
    request = drifted.run_requests[0]
    assert request.tags["recs/trigger"] == "drift"
    new_id = json.loads(drifted.cursor)[check_key]
    assert new_id > first_id
    assert request.run_key == f"checks-feature_drift.feature_drift_within_limits@{new_id}"

    # the same failed evaluation does not retrain twice
    again = _tick(sensor_def, drifted.cursor, instance)
    assert again.run_requests == []


def _versioned_assets(version: str, value: int = 1) -> list:
    """Two assets as Dagster versions them: ``scores`` (code version ``version``, its data version
    its value) -> ``report``."""

    @asset(code_version=version)
    def scores() -> Output[int]:
        return Output(value, data_version=DataVersion(str(value)))

    @asset(code_version="1")
    def report(scores: int) -> int:
        return scores + 1

    return [scores, report]


def test_daily_schedule_follows_dagster_staleness_and_the_source_files(
    tmp_path: Path, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    _touch(source / "interactions.csv", 1000.0)
    monkeypatch.setenv(SOURCE_ENV, f"files:{source}")
    env = tmp_path / "env"
    (env / "bento").mkdir(parents=True)
    (env / "bento" / "bentofile.yaml").write_text("service: a\n")
    (env / "pyproject.toml").write_text("[project]\n")
    job = define_asset_job("small_refresh", selection="*")
    sched = build_daily_retrain_schedule(job, env_root=str(env))

    # the definitions as two code versions would load them
    repos = {
        v: Definitions(
            assets=_versioned_assets(v), jobs=[job], schedules=[sched]
        ).get_repository_def()
        for v in ("1", "2")
    }

    def evaluate(version: str = "1") -> RunRequest | SkipReason:
        # the context closes what it opened on the instance now, not when garbage-collected
        # during a later test
        with build_schedule_context(instance=instance, repository_def=repos[version]) as context:
            return sched(context)

    def run(assets: list) -> bool:
        return materialize(assets, instance=instance).success

    def record_success(request: RunRequest) -> None:
        create_run_for_test(
            instance,
            job_name=job.name,
            status=DagsterRunStatus.SUCCESS,
            tags={**request.tags, SCHEDULE_TAG: "daily_retrain"},
        )

    # nothing to refresh before raw_interactions has days
    nothing = evaluate()
    assert isinstance(nothing, SkipReason) and "no day yet" in nothing.skip_message
    for day in ("2024-01-02", "2024-01-05"):
        instance.report_runless_asset_event(
            AssetMaterialization(asset_key="raw_interactions", partition=day)
        )
    first = evaluate()
    assert isinstance(first, RunRequest)
    assert first.tags["recs/reason"] == "no earlier scheduled retrain"
    # one run over the days materialized so far
    assert (first.tags[RANGE_START_TAG], first.tags[RANGE_END_TAG]) == ("2024-01-02", "2024-01-05")
    record_success(first)

    # the job's assets were never materialized: Dagster says so
    missing = evaluate()
    assert isinstance(missing, RunRequest)
    assert missing.tags["recs/reason"] == (
        "stale in Dagster: report (never materialized); scores (never materialized)"
    )
    assert run(_versioned_assets("1"))
    record_success(missing)
    skipped = evaluate()
    assert isinstance(skipped, SkipReason)
    assert "unchanged" in skipped.skip_message and "fresh in Dagster" in skipped.skip_message

    # new code for one asset: Dagster marks it stale, with the cause
    code_changed = evaluate("2")
    assert isinstance(code_changed, RunRequest)
    assert code_changed.tags["recs/reason"] == (
        "stale in Dagster: scores (scores has a new code version)"
    )
    assert code_changed.tags[DATA_TAG] == first.tags[DATA_TAG]
    # a failed run does not count, and neither do Dagster's stale assets until rematerialized
    create_run_for_test(
        instance,
        job_name=job.name,
        status=DagsterRunStatus.FAILURE,
        tags={**code_changed.tags, SCHEDULE_TAG: "daily_retrain"},
    )
    assert isinstance(evaluate("2"), RunRequest)
    assert run(_versioned_assets("2"))
    assert isinstance(evaluate("2"), SkipReason)

    # the source's files changed: Dagster cannot see that, the fingerprint does
    _touch(source / "interactions.csv", 2000.0)
    data_changed = evaluate("2")
    assert isinstance(data_changed, RunRequest)
    assert data_changed.tags["recs/reason"] == "source data changed"
    assert data_changed.tags[DATA_TAG] != first.tags[DATA_TAG]
    record_success(data_changed)
    assert isinstance(evaluate("2"), SkipReason)

    # new data upstream (scores rematerialized alone, with another value): its dependant is stale
    assert run(_versioned_assets("2", value=5)[:1])
    upstream = evaluate("2")
    assert isinstance(upstream, RunRequest)
    assert upstream.tags["recs/reason"].startswith("stale in Dagster: report (")
    assert run(_versioned_assets("2", value=5))
    record_success(upstream)
    assert isinstance(evaluate("2"), SkipReason)

    # the service or the pinned packages changed: Dagster's code versions do not hash them
    (env / "bento" / "bentofile.yaml").write_text("service: b\n")
    served = evaluate("2")
    assert isinstance(served, RunRequest)
    assert served.tags["recs/reason"] == "serving environment (bento/, pyproject.toml) changed"


def test_stale_assets_on_the_real_definitions(instance: DagsterInstance) -> None:
    repo = defs.get_repository_def()
    with build_schedule_context(instance=instance, repository_def=repo) as context:
        stale = stale_assets(context, "refresh_job")
    # a fresh instance: every unpartitioned asset of the job is missing, the daily raw
    # partitions are the landing sensor's and the source's business
    assert stale and set(stale.values()) == {"never materialized"}
    assert "champion_model" in stale and "raw_interactions" not in stale
