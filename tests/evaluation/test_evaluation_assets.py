"""The evaluation_report asset and its blocking gate checks, materialized on tiny raw tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetCheckSeverity, asset, materialize
from evaluation_helpers import events

from recs_assets.core.evaluation.report import write_html
from recs_assets.core.evaluation.runner import evaluate_models
from recs_assets.evaluation.evaluation_report import (
    GateCheckConfig,
    build_gate_checks,
    evaluation_report,
    gate_check_result,
    log_to_mlflow,
)
from recs_assets.models.mlflow_tracker import MlflowTracker

# user n (0..5) rates items i0..i(n+3) (4 to 9 ratings): popularity falls with the item index,
# so a user's held-out items are always more popular than the items the user never rated and
# popularity ranks them high (AUC about 0.9 here, full lists): it passes its gates
ROWS = [(u, f"i{j}", 10 * n + j, "rate", 3.0) for n, u in enumerate("abcdef") for j in range(n + 4)]
USERS = pd.DataFrame(
    {"user_id": list("abcdef"), "gender": list("MFMFMF"), "age": [17, 22, 30, 40, 50, 60]}
)
ITEMS = pd.DataFrame({"item_id": [f"i{i}" for i in range(10)], "categories": ["A|B", "B"] * 5})


@asset(name="raw_interactions")
def fake_interactions() -> pd.DataFrame:
    return events(ROWS)


@asset(name="raw_users")
def fake_users() -> pd.DataFrame:
    return USERS


@asset(name="raw_items")
def fake_items() -> pd.DataFrame:
    return ITEMS


def _run(tmp_path: Path, check_config: dict[str, object] | None = None):
    checks = build_gate_checks(["popularity"])
    run_config: dict[str, object] = {
        "ops": {
            "evaluation_report": {
                "config": {
                    "models": ["popularity"],
                    "protocols": ["stratified"],
                    "k": 3,
                    "report_dir": str(tmp_path),
                }
            },
            **(
                {"evaluation_report_popularity_quality_gates": {"config": check_config}}
                if check_config
                else {}
            ),
        }
    }
    return materialize(
        [fake_interactions, fake_users, fake_items, evaluation_report, *checks],
        run_config=run_config,
        resources={"mlflow_tracker": MlflowTracker(local_root=str(tmp_path / "mlflow"))},
        raise_on_error=False,
    )


def test_materialize_report_and_gates(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert result.success
    report = result.output_for_node("evaluation_report")
    expected = evaluate_models(["popularity"], events(ROWS), ["stratified"], k=3)
    # the asset is the runner's answer on the same tables
    assert (
        report.get("stratified", "popularity").metrics["ndcg@3"]
        == expected.evaluations[0].metrics["ndcg@3"]
    )
    md = result.asset_materializations_for_node("evaluation_report")[0].metadata
    html = Path(md["html_report"].value)
    assert html.parent == tmp_path.resolve() and html.read_text().startswith("<!doctype html>")
    assert "data:image/png;base64," in md["report"].value
    assert "| stratified | popularity |" in md["metrics"].value
    (check,) = result.get_asset_check_evaluations()
    assert check.passed, check.description
    assert check.metadata["auc"].value == report.get("stratified", "popularity").metrics["auc"]


def test_failing_gate_blocks(tmp_path: Path) -> None:
    result = _run(tmp_path, {"min_auc": 1.01})  # no AUC can reach 1.01
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == AssetCheckSeverity.ERROR
    assert "auc" in (check.description or "")


def test_model_not_evaluated_is_a_warning() -> None:
    report = evaluate_models(["popularity"], events(ROWS), ["stratified"], k=3)
    res = gate_check_result(report, "ease", GateCheckConfig())
    assert not res.passed and res.severity == AssetCheckSeverity.WARN


def test_mlflow_logs_one_run_with_report_artifacts(tmp_path: Path) -> None:
    tracker = MlflowTracker(local_root=str(tmp_path / "mlflow"))
    report = evaluate_models(["popularity"], events(ROWS), ["stratified"], k=3)
    html = write_html(report, tmp_path / "report.html")
    run_id = log_to_mlflow(tracker, report, html, "# report", dagster_run_id="r1")
    run = tracker.client().get_run(run_id)
    expected = report.evaluations[0].metrics["ndcg@3"]
    assert run.data.metrics["stratified.popularity.ndcg_at_3"] == pytest.approx(expected)
    assert run.data.tags["dagster.run_id"] == "r1"
    artifacts = {a.path for a in tracker.client().list_artifacts(run_id, "report")}
    assert artifacts == {
        "report/report.html",
        "report/evaluation_report.md",
        "report/metrics.csv",
    }
