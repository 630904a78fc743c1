"""Sensors: thin factories around the pure decisions in ``decisions``.

- landing: a new or rewritten batch file in the landing folder -> one run of the given job.
- drift retrain: a failed drift check evaluation -> one run of the retrain job.
- run failure alert: a failed run -> webhook + log.
- asset health alert: a failed asset check, or an asset whose freshness turned FAIL -> webhook + log.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DagsterInstance,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from recs_assets import groups
from recs_assets.automation.alerts import AlertWebhook, alert_payload
from recs_assets.core.automation_decisions import (
    CheckOutcome,
    decide_drift_retrain,
    decide_freshness_retrain,
    decide_retrain,
    freshness_transitions,
    new_check_failures,
)
from recs_assets.core.phase1.daily import day_range, event_days
from recs_assets.core.phase1.files import read_table
from recs_assets.core.phase1.landing import default_landing_dir, landed_files
from recs_assets.core.phase1.schema import conform
from recs_assets.raw.partitions import clip_to_bounds, materialized_range, range_tags

DRIFT_CHECKS: tuple[AssetCheckKey, ...] = (
    AssetCheckKey(AssetKey("feature_drift"), "feature_drift_within_limits"),
    AssetCheckKey(AssetKey("prediction_drift"), "prediction_drift_within_limits"),
)


def check_outcomes(instance: DagsterInstance, keys: Sequence[AssetCheckKey]) -> list[CheckOutcome]:
    """The latest stored evaluation of each check in ``keys`` (checks never evaluated are absent)."""
    outcomes = []
    for key in keys:
        record = instance.get_latest_asset_check_evaluation_record(key)
        evaluation = record.evaluation if record else None
        if record is None or evaluation is None:
            continue
        outcomes.append(
            CheckOutcome(
                check=key.to_user_string(),
                record_id=record.id,
                passed=evaluation.passed,
                severity=evaluation.severity.value,
                run_id=record.run_id,
            )
        )
    return outcomes


def landed_days(folder: Path, names: Sequence[str]) -> tuple[tuple[str, str] | None, list[str]]:
    """The first and last day (within the partitions) of the events in the batches ``names``,
    and the batches that cannot be read, each with why."""
    frames, unreadable = [], []
    for name in names:
        try:
            frames.append(conform(read_table(folder / name), "interactions"))
        except (OSError, ValueError, pa.ArrowException) as err:
            unreadable.append(f"{name} cannot be read ({str(err).splitlines()[0][:160]})")
    if not frames:
        return None, unreadable
    days = day_range(event_days(pd.concat(frames, ignore_index=True)["timestamp"]))
    return (clip_to_bounds(*days) if days else None), unreadable


def build_landing_sensor(
    job: UnresolvedAssetJobDefinition,
    landing_dir: str = "",
    name: str = "landing_sensor",
    minimum_interval_seconds: int = 30,
):
    """A sensor that runs ``job`` once per set of new or rewritten batches in the landing folder."""

    @sensor(
        name=name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Runs the job when interaction batches land (cursor: landed files and mtimes).",
    )
    def _landing(context: SensorEvaluationContext) -> SensorResult:
        folder = Path(landing_dir) if landing_dir else default_landing_dir()
        decision = decide_retrain(landed_files(folder), context.cursor)
        if decision.run_key is None:
            return SensorResult(
                skip_reason=SkipReason(f"no new batch in {folder}"), cursor=decision.cursor
            )
        context.log.info(f"new batches in {folder}: {', '.join(decision.new_files)}")
        days, unreadable = landed_days(folder, decision.new_files)
        for problem in unreadable:
            context.log.warning(f"landing batch {problem}")
        if days is None:
            why = "; ".join(unreadable) or "no event within the daily partitions"
            return SensorResult(
                skip_reason=SkipReason(f"new batches {', '.join(decision.new_files)}: {why}"),
                cursor=decision.cursor,
            )
        request = RunRequest(
            run_key=decision.run_key,
            tags={
                "recs/trigger": "landing",
                "recs/batches": ",".join(decision.new_files)[:200],
                **range_tags(*days),
            },
        )
        return SensorResult(run_requests=[request], cursor=decision.cursor)

    return _landing


def build_drift_retrain_sensor(
    job: UnresolvedAssetJobDefinition,
    checks: Sequence[AssetCheckKey] = DRIFT_CHECKS,
    retrain_on_warn: bool = False,
    name: str = "drift_retrain_sensor",
    minimum_interval_seconds: int = 30,
):
    """A sensor that runs ``job`` once per failed evaluation of a drift check."""

    @sensor(
        name=name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Retrains when a drift check fails (cursor: last check evaluation ids).",
    )
    def _drift(context: SensorEvaluationContext) -> SensorResult:
        decision = decide_drift_retrain(
            check_outcomes(context.instance, checks), context.cursor, retrain_on_warn
        )
        if decision.run_key is None:
            return SensorResult(
                skip_reason=SkipReason("no new failing drift check"), cursor=decision.cursor
            )
        failed = ", ".join(f.check for f in decision.failures)
        context.log.info(f"drift checks failed: {failed}; requesting {job.name}")
        request = RunRequest(
            run_key=decision.run_key,
            tags={"recs/trigger": "drift", "recs/drift_checks": failed[:200]},
        )
        return SensorResult(run_requests=[request], cursor=decision.cursor)

    return _drift


def run_failure_payload(job_name: str, run_id: str, message: str, url: str) -> dict:
    """The alert for a failed run."""
    return alert_payload(
        "run_failure",
        f"run of {job_name} failed",
        details={"job": job_name, "run_id": run_id, "message": message},
        url=url,
    )


@run_failure_sensor(name="run_failure_alert", default_status=DefaultSensorStatus.RUNNING)
def run_failure_alert(context: RunFailureSensorContext, alert_webhook: AlertWebhook) -> None:
    """Posts every failed run to the alert webhook (and the log)."""
    run = context.dagster_run
    message = context.failure_event.message or ""
    alert_webhook.send(
        run_failure_payload(run.job_name, run.run_id, message, alert_webhook.run_link(run.run_id))
    )


@sensor(
    name="asset_health_alert",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Alerts on failed asset checks (ERROR and WARN) and assets whose freshness fails.",
)
def asset_health_alert(
    context: SensorEvaluationContext, alert_webhook: AlertWebhook
) -> SensorResult:
    """Sends one alert per new failed check evaluation and per asset turning stale."""
    state = json.loads(context.cursor) if context.cursor else {}
    graph = context.repository_def.asset_graph
    checks = new_check_failures(
        check_outcomes(context.instance, sorted(graph.asset_check_keys)),
        state.get("checks"),
        ("ERROR", "WARN"),
    )
    for f in checks.failures:
        alert_webhook.send(
            alert_payload(
                "check_failure",
                f"asset check {f.check} failed",
                severity=f.severity,
                details={"check": f.check, "run_id": f.run_id},
                url=alert_webhook.run_link(f.run_id),
            )
        )
    records = context.instance.get_freshness_state_records(sorted(graph.get_all_asset_keys()))
    states = {k.to_user_string(): r.freshness_state.value for k, r in records.items()}
    stale, fresh_cursor = freshness_transitions(states, state.get("freshness"))
    for asset in stale:
        alert_webhook.send(
            alert_payload("freshness_failure", f"asset {asset} is stale", details={"asset": asset})
        )
    cursor = json.dumps({"checks": checks.cursor, "freshness": fresh_cursor})
    sent = len(checks.failures) + len(stale)
    skip = None if sent else SkipReason("no new failed check and no asset turned stale")
    return SensorResult(skip_reason=skip, cursor=cursor)


# Assets a refresh brings back to fresh; raw tables and monitoring only alert when stale.
RETRAINED_GROUPS: tuple[str, ...] = (
    groups.FEATURES,
    groups.DATASETS,
    groups.MODELS,
    groups.EVALUATION,
    groups.SERVING,
)


def build_freshness_retrain_sensor(
    job: UnresolvedAssetJobDefinition,
    retrained_groups: Sequence[str] = RETRAINED_GROUPS,
    name: str = "freshness_retrain_sensor",
    minimum_interval_seconds: int = 60,
):
    """A sensor that runs ``job`` when an asset of ``retrained_groups`` turns stale (its
    freshness policy FAILs), once per such change."""

    @sensor(
        name=name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Retrains when a feature, dataset, model, evaluation or serving asset's "
        "freshness policy fails (cursor: the last freshness states seen).",
    )
    def _freshness(context: SensorEvaluationContext) -> SensorResult:
        graph = context.repository_def.asset_graph
        keys = sorted(graph.get_all_asset_keys())
        retrained = {
            k.to_user_string() for k in keys if graph.get(k).group_name in retrained_groups
        }
        records = context.instance.get_freshness_state_records(keys)
        states = {k.to_user_string(): r.freshness_state.value for k, r in records.items()}
        decision = decide_freshness_retrain(states, retrained, context.cursor)
        if decision.run_key is None:
            return SensorResult(
                skip_reason=SkipReason("no retrained asset turned stale"), cursor=decision.cursor
            )
        stale = ", ".join(decision.stale)
        context.log.info(f"stale: {stale}; requesting {job.name}")
        days = materialized_range(context.instance)
        if days is None:
            return SensorResult(
                skip_reason=SkipReason(f"stale: {stale}, but raw_interactions has no day yet"),
                cursor=decision.cursor,
            )
        request = RunRequest(
            run_key=decision.run_key,
            tags={
                "recs/trigger": "freshness",
                "recs/stale_assets": stale[:200],
                **range_tags(*days),
            },
        )
        return SensorResult(run_requests=[request], cursor=decision.cursor)

    return _freshness


__all__ = [
    "DRIFT_CHECKS",
    "asset_health_alert",
    "build_drift_retrain_sensor",
    "build_freshness_retrain_sensor",
    "build_landing_sensor",
    "check_outcomes",
    "run_failure_alert",
    "run_failure_payload",
]


# Dagster creates its default automation-condition sensor STOPPED on a fresh instance, so assets
# with automation conditions (``trending_items``) would never refresh on their own; this one
# replaces it and runs from the start.
automation_condition_sensor = AutomationConditionSensorDefinition(
    "automation_condition_sensor",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates every asset's automation condition (trending_items' cron) and runs "
    "what is due; running from the first start of an instance.",
)
