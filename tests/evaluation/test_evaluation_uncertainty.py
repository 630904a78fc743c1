"""Paired bootstrap intervals of metric differences: they separate a real gain from noise, and the
report shows them against the best model."""

from __future__ import annotations

import numpy as np
import pytest

from recs_assets.core.evaluation.report import render_markdown
from recs_assets.core.evaluation.runner import evaluate_models
from recs_assets.core.evaluation.uncertainty import compare_to_best, paired_bootstrap
from recs_assets.core.phase1.synthetic import generate_synthetic


def test_a_real_gain_is_significant_and_noise_is_not() -> None:
    rng = np.random.default_rng(1)
    base = rng.random(2_000)
    gain = paired_bootstrap(base + 0.05 + rng.normal(0, 0.05, 2_000), base)
    assert gain.significant and gain.low > 0.04 and gain.high < 0.06
    assert gain.p_value < 0.01 and gain.n_users == 2_000
    assert gain.clears(0.03) and not gain.clears(0.055)
    noise = paired_bootstrap(base + rng.normal(0, 0.05, 2_000), base)
    assert not noise.significant and noise.low < 0 < noise.high and noise.p_value > 0.05
    same = paired_bootstrap(base, base)
    assert (same.mean, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_pairs_skip_missing_users_and_refuse_misaligned_input() -> None:
    a = np.array([1.0, np.nan, 0.5, 0.2])
    b = np.array([0.5, 0.3, np.nan, 0.1])
    assert paired_bootstrap(a, b).n_users == 2
    with pytest.raises(ValueError, match="aligned"):
        paired_bootstrap(a, b[:3])
    with pytest.raises(ValueError, match="no user"):
        paired_bootstrap(np.array([np.nan]), np.array([1.0]))
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap(a, b, level=1.0)


def test_the_report_compares_every_model_to_the_best_with_an_interval() -> None:
    tables = generate_synthetic(n_users=300, n_items=120, n_interactions=12_000, seed=3, days=30)
    report = evaluate_models(
        ["popularity", "ease", "rp3beta"], tables.tables.interactions, ["stratified"], k=10
    )
    compared = compare_to_best(report.by_protocol("stratified"), "ndcg@10")
    assert compared is not None
    best, diffs = compared
    assert best == max(report.evaluations, key=lambda e: e.metrics["ndcg@10"]).model
    assert set(diffs) == {"popularity", "ease", "rp3beta"} - {best}
    # popularity ignores the user: clearly worse than the best personalised model
    assert best != "popularity"
    assert diffs["popularity"].significant and diffs["popularity"].high < 0
    for model, d in diffs.items():
        ev = report.get("stratified", model)
        assert d.mean == pytest.approx(
            ev.metrics["ndcg@10"] - report.get("stratified", best).metrics["ndcg@10"]
        )
    text = render_markdown(report, plots=False)
    assert f"Against the best model ({best}), NDCG@10" in text
    assert "95% interval" in text
