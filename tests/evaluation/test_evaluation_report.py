"""Quality gates (pure decisions) and the markdown / HTML report."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from evaluation_helpers import events

from recs_assets.core.evaluation.gates import GateConfig, evaluate_gates, passed
from recs_assets.core.evaluation.report import render_markdown, write_html
from recs_assets.core.evaluation.runner import ModelEvaluation, SideTables, evaluate_models


def ev(model: str, **metrics: float) -> ModelEvaluation:
    lift = {"ndcg@10": metrics.pop("lift")} if "lift" in metrics else {}
    return ModelEvaluation(model, "stratified", 10, metrics, 1.0, 1.0, lift=lift)


def test_gates_by_hand() -> None:
    cfg = GateConfig(min_ndcg_lift=0.1, min_auc=0.7, min_user_coverage=0.9, min_ild=0.5)
    good = evaluate_gates(ev("ease", auc=0.9, user_coverage=1.0, ild=0.6, lift=0.25), cfg)
    assert [(r.gate, r.passed) for r in good] == [
        ("ndcg@10 lift over popularity", True),
        ("auc", True),
        ("user_coverage", True),
        ("ild", True),
    ]
    assert passed(good)
    # lift exactly 10% passes (at least); AUC 0.69 fails; NaN ILD fails
    bad = evaluate_gates(ev("ease", auc=0.69, user_coverage=0.9, ild=math.nan, lift=0.1), cfg)
    assert [r.passed for r in bad] == [True, False, True, False]
    assert not passed(bad)
    # the baseline is not gated on lift over itself; a missing lift fails
    assert [r.gate for r in evaluate_gates(ev("popularity", auc=0.86), cfg)] == ["auc"]
    assert not evaluate_gates(ev("ease", auc=0.9), cfg)[0].passed


@pytest.fixture(scope="module")
def report():
    rows = [
        (u, f"i{(j * 3 + n) % 9}", 10 * n + j, "rate", 3.0)
        for n, u in enumerate("abcdef")
        for j in range(6)
    ]
    users = events([])[[]].assign(
        user_id=list("abcdef"), gender=list("MFMFMF"), age=[17, 22, 30, 40, 50, 60]
    )
    items = events([])[[]].assign(
        item_id=[f"i{i}" for i in range(9)], categories=["A|B", "B", "C"] * 3
    )
    return evaluate_models(
        ["popularity"],
        events(rows),
        ["stratified", "loo-sampled"],
        SideTables(users=users, items=items),
        k=3,
        dataset="tiny",
        protocol_params={"loo-sampled": {"n_negatives": 2}},
    )


def test_markdown_has_tables_segments_and_plots(report) -> None:
    md = render_markdown(report)
    p1 = report.get("stratified", "popularity")
    assert "## Protocol stratified" in md and "## Protocol loo-sampled" in md
    assert f"| popularity | {p1.metrics['precision@3']:.4f} |" in md
    assert "NDCG@3 by gender" in md and "NDCG@3 by age_band" in md
    # three plots for the full-ranking protocol, none for the sampled one
    assert md.count("](data:image/png;base64,") == 3
    assert "+0.0%" in md  # lift of popularity over itself


def test_html_is_standalone(report, tmp_path: Path) -> None:
    path = write_html(report, tmp_path / "r" / "report.html")
    text = path.read_text()
    assert text.startswith("<!doctype html>")
    assert text.count("src='data:image/png;base64,") == 3
    assert "<th>NDCG@3</th>" in text
    assert "http" not in text  # nothing fetched from elsewhere
