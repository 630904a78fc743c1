"""Wires the recs code location: asset domains with their groups, checks, jobs, automation and
resources. Only wiring lives here; resources per deployment come from ``recs_assets.resources``.
"""

from __future__ import annotations

from types import ModuleType

from dagster import (
    AssetsDefinition,
    Definitions,
    in_process_executor,
    load_asset_checks_from_modules,
    load_assets_from_modules,
)

from recs_assets import groups
from recs_assets.automation import jobs, schedules, sensors
from recs_assets.automation.freshness import with_freshness_policies
from recs_assets.datasets import dataset_checks, training_datasets
from recs_assets.evaluation import evaluation_report
from recs_assets.features import (
    context_features,
    feature_checks,
    item_features,
    online_feature_store,
    user_features,
)
from recs_assets.models import family_models, tuning_studies
from recs_assets.monitoring import feature_drift, online_quality, prediction_drift, trending_items
from recs_assets.platform.code_versions import code_version
from recs_assets.raw import raw_tables
from recs_assets.raw.partitions import ONE_RUN_PER_RANGE
from recs_assets.resources import build_resources, deployment
from recs_assets.serving import (
    ab_test_report,
    batch_recommendations,
    bento_model,
    recommendation_bento,
)

# module -> group; a module's assets all land in its domain's group.
DOMAINS: dict[str, list[ModuleType]] = {
    groups.RAW: [raw_tables],
    groups.FEATURES: [user_features, item_features, context_features, online_feature_store],
    groups.DATASETS: [training_datasets],
    groups.MODELS: [tuning_studies, family_models],
    groups.EVALUATION: [evaluation_report],
    groups.SERVING: [bento_model, recommendation_bento, batch_recommendations, ab_test_report],
    groups.MONITORING: [feature_drift, prediction_drift, online_quality, trending_items],
}
CHECK_MODULES: list[ModuleType] = [
    *(m for modules in DOMAINS.values() for m in modules),
    feature_checks,
    dataset_checks,
]


def _assets() -> list[AssetsDefinition]:
    """Every domain's assets in its group, each with the code version of its module (a hash of
    the module and the recs code it imports: the UI shows what changed since materializing)."""
    versioned = [
        a.map_asset_specs(
            lambda spec, m=module: spec.replace_attributes(code_version=code_version(m.__name__))
        )
        for group, modules in DOMAINS.items()
        for module in modules
        for a in load_assets_from_modules([module], group_name=group)
        if isinstance(a, AssetsDefinition)
    ]
    # a run over a range of days (``--partition-range``, a UI backfill) computes each
    # unpartitioned asset once, over the whole table, after the days it reads
    return [
        a if a.backfill_policy else a.with_attributes(backfill_policy=ONE_RUN_PER_RANGE)
        for a in versioned
    ]


defs = with_freshness_policies(
    Definitions(
        assets=_assets(),
        asset_checks=load_asset_checks_from_modules(CHECK_MODULES),
        jobs=jobs.JOBS,
        sensors=[
            # a landed batch reaches the served model
            sensors.build_landing_sensor(jobs.refresh_job),
            sensors.build_drift_retrain_sensor(jobs.retrain_job),
            # a stale feature, dataset, model or serving asset asks for a refresh, not only an alert
            sensors.build_freshness_retrain_sensor(jobs.refresh_job),
            sensors.run_failure_alert,
            sensors.asset_health_alert,
            # automation conditions (trending_items) evaluated from the first start
            sensors.automation_condition_sensor,
        ],
        schedules=[schedules.build_daily_retrain_schedule(jobs.refresh_job)],
        resources=build_resources(),
        # One process per step costs ~20 s of imports each on a 2-core laptop: run steps in-process
        # locally (one shared Spark session); production keeps Dagster's multiprocess default.
        executor=in_process_executor if deployment() == "local" else None,
    )
)
