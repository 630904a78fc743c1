"""A landed batch reaches the running service: landing sensor -> refresh_job -> new champion ->
Bento -> hot reload. The wiring checks are quick; the end-to-end drill is ``slow``.

The drill is ``bench/landing_to_serving.py`` (the benchmark reports the same numbers): a baseline
``refresh_job`` run, ``bentoml serve`` on its model, ``recs generate-batch``, one evaluation of the
landing sensor of ``recs_assets.definitions`` with its cursor, the run it requests executed
in-process in a fresh Dagster process, then the service polled until it serves the new version.
Only popularity and EASE are trained (``RECS_MODEL_FAMILIES``) and tuning is off, so that it takes
minutes, not the time of the slowest learner.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.landing_to_serving import drill
from recs_assets.core.models.registry import PIPELINE_FAMILIES, pipeline_families
from recs_assets.raw.partitions import RANGE_END_TAG, RANGE_START_TAG


def test_model_families_from_the_environment() -> None:
    assert pipeline_families({}) == PIPELINE_FAMILIES
    assert pipeline_families({"RECS_MODEL_FAMILIES": " ease, popularity,ease "}) == (
        "ease",
        "popularity",
    )
    with pytest.raises(ValueError, match="unknown or no family names \\['svd'\\]"):
        pipeline_families({"RECS_MODEL_FAMILIES": "ease,svd"})
    with pytest.raises(ValueError, match="RECS_MODEL_FAMILIES"):
        pipeline_families({"RECS_MODEL_FAMILIES": ","})
    # with a Spark cluster configured, ALS trains on it
    on_spark = pipeline_families({"RECS_SPARK_MASTER": "spark://127.0.0.1:7077"})
    assert "spark_als" in on_spark and "als" not in on_spark
    assert pipeline_families({"RECS_MODEL_FAMILIES": "ease,spark_als"}) == ("ease", "spark_als")


def test_landing_sensor_runs_the_job_that_reaches_the_bento() -> None:
    from recs_assets.automation.jobs import REFRESH
    from recs_assets.definitions import defs

    assert defs.get_sensor_def("landing_sensor").job_name == "refresh_job"
    selected = {k.to_user_string() for k in REFRESH.resolve(defs.resolve_asset_graph())}
    assert {"raw_interactions", "online_feature_store", "champion_model", "bento_model"} <= selected
    # assets fed by live traffic fail before the service has answered: no job runs them
    assert not selected & {"ab_test_report", "online_quality", "prediction_drift"}


@pytest.mark.slow
def test_landed_batch_is_served_by_the_running_service(tmp_path: Path, record_property) -> None:
    report = drill(tmp_path, families="popularity,ease", events=2000, poll_s=0.5)
    print("\n" + json.dumps(report, indent=2, default=str))

    # the baseline run served version 1 and initialised the sensor's cursor (nothing landed yet)
    assert report["baseline_version"] == "recs-champion/1"
    assert report["baseline_requests"] == [] and json.loads(report["baseline_cursor"]) == {}
    # the batch made the sensor request one refresh_job run keyed by that batch
    (request,) = report["requests"]
    assert report["sensor_job"] == request["job_name"] == "refresh_job"
    assert request["run_key"].startswith("landing-")
    # over the days of the batch's events (a day after the newest event of the base data)
    tags = request["tags"]
    assert {k: tags[k] for k in ("recs/trigger", "recs/batches")} == {
        "recs/trigger": "landing",
        "recs/batches": report["landed_file"],
    }
    assert tags[RANGE_START_TAG] <= tags[RANGE_END_TAG]
    assert tags[RANGE_START_TAG] >= report["baseline_newest_day"]
    assert list(json.loads(report["cursor"])) == [report["landed_file"]]
    # the run ingested the 2,000 new events and promoted a new champion without a failed step
    assert report["run_success"] is True and report["failed_steps"] == []
    assert report["raw_interactions"] == report["baseline_raw_interactions"] + 2000
    assert report["champion"] == "recs-champion/2"
    # the service, started before the batch landed, now answers with it
    assert report["served_version"] == "recs-champion/2"
    assert report["watch_errors"] == []
    assert report["seconds_to_served"] is not None
    # (the service may load the Bento a moment before Dagster logs the step's success)
    assert report["seconds_to_features"] < report["seconds_to_bento"]
    assert report["seconds_to_features"] < report["seconds_to_served"]
    assert 0 <= report["feature_freshness_lag_s"] <= 3600  # the one-hour goal of the plan
    for key in ("seconds_to_features", "seconds_to_bento", "seconds_to_served"):
        record_property(key, report[key])
    print(
        f"landing -> features {report['seconds_to_features']} s, Bento "
        f"{report['seconds_to_bento']} s, served {report['seconds_to_served']} s; feature "
        f"freshness lag {report['feature_freshness_lag_s']:.1f} s"
    )
