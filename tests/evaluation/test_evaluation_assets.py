"""The evaluation_report asset over real model assets: it reports the fitted models themselves (the
numbers their gates checked) and refits the families under the temporal protocol."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dagster import AssetKey, materialize
from evaluation_helpers import events
from pipeline_fixtures import upstream_assets

from recs_assets.core.evaluation.gates import GateConfig, evaluate_gates
from recs_assets.core.evaluation.protocols import stratified_split, temporal_split
from recs_assets.core.evaluation.report import write_html
from recs_assets.core.evaluation.runner import evaluate_models
from recs_assets.core.evaluation.trained import (
    TrainedModel,
    held_out_evaluation,
    report_of_trained,
    side_info,
)
from recs_assets.core.models.popularity import PopularityRecommender
from recs_assets.core.phase1.synthetic import SyntheticData, generate_synthetic
from recs_assets.evaluation.evaluation_report import build_evaluation_report, log_to_mlflow
from recs_assets.models.family_models import build_gate_check, build_model_asset
from recs_assets.models.mlflow_tracker import MlflowTracker

FAMILIES = ("popularity", "ease")


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate_synthetic(n_users=200, n_items=120, n_interactions=6_000, seed=11)


def test_report_holds_the_model_assets_numbers_and_refits_under_temporal(
    tmp_path: Path, data: SyntheticData
) -> None:
    interactions = data.tables.interactions
    p1, p2 = stratified_split(interactions), temporal_split(interactions)
    report_asset = build_evaluation_report(FAMILIES, refit_families=("ease",))
    result = materialize(
        [
            *upstream_assets(data.tables, p1, temporal=p2),
            *(build_model_asset(f) for f in FAMILIES),
            *(build_gate_check(f) for f in FAMILIES),
            report_asset,
        ],
        resources={"mlflow_tracker": MlflowTracker(local_root=str(tmp_path / "mlflow"))},
        run_config={"ops": {"evaluation_report": {"config": {"report_dir": str(tmp_path)}}}},
    )
    assert result.success
    # the graph is true: the report's inputs are the model and dataset assets
    assert {AssetKey(f"{f}_model") for f in FAMILIES} | {
        AssetKey("stratified_dataset"),
        AssetKey("temporal_dataset"),
    } <= set(report_asset.asset_deps[AssetKey("evaluation_report")])

    report = result.output_for_node("evaluation_report")
    md = result.asset_materializations_for_node("evaluation_report")[0].metadata
    for family in FAMILIES:
        trained: TrainedModel = result.output_for_node(f"{family}_model")
        model_md = result.asset_materializations_for_node(f"{family}_model")[0].metadata
        reported = report.get("stratified", family)
        # the numbers the model asset published and gated are the report's numbers
        assert md[f"stratified/{family}/ndcg@10"].value == model_md["ndcg@10"].value
        assert reported.metrics == trained.evaluation.metrics
        gates = {g.gate: g.value for g in evaluate_gates(reported, GateConfig())}
        assert gates == {g.gate: g.value for g in trained.gates}
        assert f"| {family} | auc |" in md["gates"].value
    assert report.protocols == ["stratified", "temporal"]
    # temporal: only the refit families, fitted again with the model asset's parameters
    assert [e.model for e in report.by_protocol("temporal")] == ["ease"]
    refit = report.get("temporal", "ease")
    assert refit.params == result.output_for_node("ease_model").model.params()
    assert refit.metrics["ndcg@10"] != report.get("stratified", "ease").metrics["ndcg@10"]
    html = Path(md["html_report"].value)
    assert html.parent == tmp_path.resolve() and html.read_text().startswith("<!doctype html>")
    assert re.search(r"\| temporal +\| ease +\|", md["metrics"].value)


def test_report_of_trained_refuses_models_of_another_split(data: SyntheticData) -> None:
    interactions = data.tables.interactions
    p1, p2 = stratified_split(interactions), temporal_split(interactions)
    side = side_info(p2, data.tables.users, data.tables.items)
    model = PopularityRecommender().fit(p2.train)
    on_p2 = TrainedModel(
        "popularity", model, p2.train, held_out_evaluation("popularity", model, 0.0, p2, side), ()
    )
    with pytest.raises(ValueError, match="not evaluated under 'stratified'"):
        report_of_trained([on_p2], p1, dataset="d")
    with pytest.raises(ValueError, match="no trained models"):
        report_of_trained([], p1, dataset="d")


def test_mlflow_logs_one_run_with_report_artifacts(tmp_path: Path) -> None:
    tracker = MlflowTracker(local_root=str(tmp_path / "mlflow"))
    rows = [
        (u, f"i{j}", 10 * n + j, "rate", 3.0) for n, u in enumerate("abcdef") for j in range(n + 4)
    ]
    report = evaluate_models(["popularity"], events(rows), ["stratified"], k=3)
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
