"""Freshness policies (Dagster's time-window ``FreshnessPolicy``) per asset group.

Features should follow the data within the plan's one-hour goal: they warn when their last
materialization is over an hour old and fail after a day and an hour (the daily schedule plus
slack). Models, evaluation and serving are retrained daily: they warn after a day and an hour and
fail after two. The freshness daemon (``freshness: enabled`` in ``dagster.yaml``) evaluates them;
``sensors.asset_health_alert`` sends an alert when an asset turns FAIL, and
``sensors.freshness_retrain_sensor`` requests a retrain when one that retraining refreshes does. The data lag itself (newest
raw event vs newest online feature value) is the ``online_feature_freshness`` check's business.
"""

from __future__ import annotations

import os
from datetime import timedelta

from dagster import AssetSpec, Definitions, FreshnessPolicy, apply_freshness_policy

from recs_assets import groups

SCALE_ENV = "RECS_FRESHNESS_SCALE"
MIN_WINDOW = timedelta(minutes=1)  # Dagster's floor for both windows (warn < fail)


def time_window(fail: timedelta, warn: timedelta, scale: float = 1.0) -> FreshnessPolicy:
    """A time-window policy with both windows multiplied by ``scale``, kept within Dagster's
    constraints: each at least a minute, the warn window below the fail window."""
    fail_window = max(fail * scale, 2 * MIN_WINDOW)
    warn_window = max(warn * scale, MIN_WINDOW)
    if warn_window >= fail_window:
        warn_window = fail_window / 2
    return FreshnessPolicy.time_window(fail_window=fail_window, warn_window=warn_window)


# RECS_FRESHNESS_SCALE shortens every window (tests and drills: 0.001 turns 49 h into 3 minutes)
_SCALE = float(os.environ.get(SCALE_ENV, "") or 1.0)
FEATURE_POLICY = time_window(timedelta(hours=25), timedelta(hours=1), _SCALE)
DAILY_POLICY = time_window(timedelta(hours=49), timedelta(hours=25), _SCALE)
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
