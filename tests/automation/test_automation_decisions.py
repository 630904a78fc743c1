"""The pure decisions behind sensors and schedules, on hand-written inputs."""

from __future__ import annotations

import json

import pytest

from recs_assets.core.automation_decisions import (
    CheckOutcome,
    decide_daily_retrain,
    decide_drift_retrain,
    decide_freshness_retrain,
    decide_retrain,
    fingerprint,
    freshness_transitions,
    new_check_failures,
)


def test_decide_retrain_new_changed_and_unchanged_files() -> None:
    first = decide_retrain({"b1.parquet": 100.0}, None)
    assert first.new_files == ("b1.parquet",)
    assert first.run_key is not None and first.run_key.startswith("landing-")
    assert json.loads(first.cursor) == {"b1.parquet": 100.0}

    same = decide_retrain({"b1.parquet": 100.0}, first.cursor)
    assert (same.new_files, same.run_key, same.cursor) == ((), None, first.cursor)

    # b2 is new and b1 was rewritten (mtime moved): both go in one run
    both = decide_retrain({"b1.parquet": 150.0, "b2.csv": 120.0}, first.cursor)
    assert both.new_files == ("b1.parquet", "b2.csv")
    assert both.run_key != first.run_key
    # the key depends only on the files: evaluating the same state twice gives the same key
    assert (
        decide_retrain({"b1.parquet": 150.0, "b2.csv": 120.0}, first.cursor).run_key == both.run_key
    )

    gone = decide_retrain({}, both.cursor)  # files removed: nothing to run, forgotten
    assert gone.run_key is None and json.loads(gone.cursor) == {}


def test_decide_retrain_rejects_a_bad_cursor() -> None:
    with pytest.raises(ValueError, match="landing cursor is not JSON"):
        decide_retrain({}, "not json")


def _o(check: str, rid: int, passed: bool, severity: str = "ERROR") -> CheckOutcome:
    return CheckOutcome(check, rid, passed, severity, run_id=f"r{rid}")


def test_new_check_failures_acts_once_per_evaluation() -> None:
    outcomes = [_o("feature_drift/within", 5, False), _o("prediction_drift/within", 3, True)]
    d = new_check_failures(outcomes, None)
    assert [f.record_id for f in d.failures] == [5]
    assert d.run_key == "checks-feature_drift.within@5"
    assert json.loads(d.cursor) == {"feature_drift/within": 5, "prediction_drift/within": 3}
    # same records again: nothing new
    again = new_check_failures(outcomes, d.cursor)
    assert again.failures == () and again.run_key is None
    # a newer failing evaluation of the other check
    later = new_check_failures([_o("prediction_drift/within", 9, False)], d.cursor)
    assert [f.check for f in later.failures] == ["prediction_drift/within"]


def test_drift_retrain_ignores_warnings_unless_asked() -> None:
    warn = [_o("feature_drift/within", 7, False, "WARN")]
    assert decide_drift_retrain(warn, None).run_key is None
    assert (
        decide_drift_retrain(warn, None, retrain_on_warn=True).run_key
        == "checks-feature_drift.within@7"
    )
    assert decide_drift_retrain([_o("feature_drift/within", 8, True)], None).run_key is None


def test_daily_retrain_runs_on_source_change_or_dagster_staleness() -> None:
    data = fingerprint({"source/u.data": "100:1.0"})
    first = decide_daily_retrain(data, None, {})
    assert first.run and first.reason == "no earlier scheduled retrain"
    unchanged = decide_daily_retrain(data, data, {})
    assert not unchanged.run and "unchanged" in unchanged.reason and "fresh" in unchanged.reason
    assert decide_daily_retrain("d2", data, {}).reason == "source data changed"
    stale = {"ease_model": "ease_model has a new code version", "champion_model": "x"}
    code = decide_daily_retrain(data, data, stale)
    assert code.run and code.stale == ("champion_model", "ease_model")
    assert code.reason == (
        "stale in Dagster: champion_model (x); ease_model (ease_model has a new code version)"
    )
    both = decide_daily_retrain("d2", data, stale)
    assert both.reason.startswith("source data changed, stale in Dagster: ")
    env = decide_daily_retrain(data, data, {}, "e2", "e1")
    assert env.run and env.reason == "serving environment (bento/, pyproject.toml) changed"
    assert not decide_daily_retrain(data, data, {}, "e2", None).run  # a run from before the tag
    many = decide_daily_retrain(data, data, {f"a{i}": "never materialized" for i in range(8)})
    assert many.reason.endswith("and 3 more") and len(many.stale) == 8
    # fingerprints do not depend on the order of the parts
    assert fingerprint({"a": "1", "b": "2"}) == fingerprint({"b": "2", "a": "1"})


def test_freshness_transitions_alert_once_per_failure() -> None:
    stale, cur = freshness_transitions({"user_features": "FAIL", "raw_items": "PASS"}, None)
    assert stale == ["user_features"]
    stale, cur = freshness_transitions({"user_features": "FAIL"}, cur)
    assert stale == []  # still failing: no second alert
    stale, cur = freshness_transitions({"user_features": "PASS"}, cur)
    stale, _ = freshness_transitions({"user_features": "FAIL"}, cur)
    assert stale == ["user_features"]  # failed again after recovering


def test_freshness_retrain_only_for_retrained_assets_once_per_failure() -> None:
    retrained = {"ease_model", "user_features"}
    d = decide_freshness_retrain({"ease_model": "FAIL", "raw_items": "FAIL"}, retrained, None)
    assert d.stale == ("ease_model",) and d.run_key is not None  # raw tables only alert
    again = decide_freshness_retrain({"ease_model": "FAIL"}, retrained, d.cursor)
    assert again.stale == () and again.run_key is None  # still stale: no second retrain
    healed = decide_freshness_retrain({"ease_model": "PASS"}, retrained, again.cursor)
    assert healed.run_key is None
    stale_again = decide_freshness_retrain({"ease_model": "FAIL"}, retrained, healed.cursor)
    assert stale_again.stale == ("ease_model",)
    assert stale_again.run_key != d.run_key  # a new failure is a new run
    assert decide_freshness_retrain({"raw_items": "FAIL"}, retrained, None).run_key is None
