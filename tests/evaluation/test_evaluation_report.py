"""Quality gates (pure decisions) and the markdown / HTML report."""

from __future__ import annotations

import math
from dataclasses import replace
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


def test_latency_gate_reads_the_request_p95() -> None:
    cfg = GateConfig(max_request_p95_ms=20.0)
    fast = replace(ev("ease", auc=0.9), request_ms={"p95": 20.0})
    slow = replace(ev("ease", auc=0.9), request_ms={"p95": 20.1})
    assert [(r.gate, r.passed) for r in evaluate_gates(fast, cfg)][-1] == ("request p95 ms", True)
    assert not passed(evaluate_gates(slow, cfg)[-1:])
    # no limit configured, or nothing measured (another protocol's refit): no latency gate
    no_limit = GateConfig(max_request_p95_ms=0.0)
    assert "request p95 ms" not in [r.gate for r in evaluate_gates(slow, no_limit)]
    assert "request p95 ms" not in [r.gate for r in evaluate_gates(ev("ease", auc=0.9), cfg)]


def test_request_latency_times_one_user_requests() -> None:
    import time

    import numpy as np
    import scipy.sparse as sp

    from recs_assets.core.evaluation.latency import request_latency
    from recs_assets.core.models.base import InteractionMatrix
    from recs_assets.core.models.popularity import PopularityRecommender

    rng = np.random.default_rng(0)
    dense = (rng.random((50, 40)) < 0.2).astype(np.float32)
    dense[0] = 0.0  # a user without interactions is never timed
    train = InteractionMatrix(
        sp.csr_matrix(dense), np.array([f"u{i}" for i in range(50)]), np.arange(40).astype(str)
    )
    model = PopularityRecommender().fit(train)
    quick = request_latency(model, train.matrix, k=5, n_users=30)
    assert quick.requests == 30 and 0 < quick.p50_ms <= quick.p95_ms <= quick.p99_ms

    class Slow(PopularityRecommender):
        def score(self, users, items=None):
            time.sleep(0.01)
            return super().score(users, items)

    slow = request_latency(Slow().fit(train), train.matrix, k=5, n_users=10)
    assert slow.p50_ms >= 10.0 and slow.requests == 10


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
