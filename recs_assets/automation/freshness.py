"""Freshness policies (Dagster's time-window ``FreshnessPolicy``) per asset group.

Features should follow the data within the plan's one-hour goal: they warn when their last
materialization is over an hour old and fail after a day and an hour (the daily schedule plus
slack). Models, evaluation and serving are retrained daily: they warn after a day and an hour and
fail after two. The freshness daemon (``freshness: enabled`` in ``dagster.yaml``) evaluates them;
``sensors.asset_health_alert`` sends an alert when an asset turns FAIL. The data lag itself (newest
raw event vs newest online feature value) is the ``online_feature_freshness`` check's business.
"""

from __future__ import annotations

from datetime import timedelta

from dagster import AssetSpec, Definitions, FreshnessPolicy, apply_freshness_policy

from recs_assets import groups

FEATURE_POLICY = FreshnessPolicy.time_window(
    fail_window=timedelta(hours=25), warn_window=timedelta(hours=1)
)
DAILY_POLICY = FreshnessPolicy.time_window(
    fail_window=timedelta(hours=49), warn_window=timedelta(hours=25)
)
POLICIES: dict[str, FreshnessPolicy] = {
    groups.FEATURES: FEATURE_POLICY,
    groups.DATASETS: DAILY_POLICY,
    groups.MODELS: DAILY_POLICY,
    groups.EVALUATION: DAILY_POLICY,
    groups.SERVING: DAILY_POLICY,
}


def policy_for(spec: AssetSpec) -> AssetSpec:
    """``spec`` with its group's policy (specs of other groups unchanged)."""
    policy = POLICIES.get(spec.group_name or "")
    return apply_freshness_policy(spec, policy) if policy is not None else spec


def with_freshness_policies(defs: Definitions) -> Definitions:
    """``defs`` with every asset of a group in ``POLICIES`` carrying that group's policy."""
    return defs.map_asset_specs(func=policy_for)
