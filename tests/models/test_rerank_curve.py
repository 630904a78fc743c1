"""The re-ranking curve of ``bench/rerank_curve.py``: knob choice, frontier, and the curve's
end points on small synthetic data."""

import numpy as np
import pytest

from bench.rerank_curve import CurvePoint, choose_tradeoff, curve, pareto_frontier
from recs_assets.core import metrics as M
from recs_assets.core.evaluation.protocols import stratified_split
from recs_assets.core.evaluation.runner import SideTables, build_side_info
from recs_assets.core.models.ease import EASERecommender
from recs_assets.core.models.rerank import DEFAULT_TRADEOFF
from recs_assets.core.phase1.synthetic import generate_synthetic


def point(t: float, ndcg: float, ild: float, tail: float) -> CurvePoint:
    return CurvePoint(t, ndcg, ild, tail, coverage=0.0, novelty=0.0)


POINTS = [
    point(0.0, 0.47, 0.80, 0.01),
    point(0.5, 0.45, 0.86, 0.20),
    point(0.7, 0.40, 0.90, 0.30),  # first to meet both goals (ILD > 0.6, long tail >= 0.30)
    point(0.9, 0.20, 0.95, 0.45),
    point(1.0, 0.15, 0.94, 0.45),  # dominated by 0.9 on every axis
]


def test_choose_the_smallest_knob_meeting_both_goals() -> None:
    assert choose_tradeoff(POINTS) == 0.7
    assert choose_tradeoff(POINTS, min_long_tail=0.5) is None
    # ILD must be strictly above the goal: 0.90 is not > 0.90.
    assert choose_tradeoff(POINTS, min_ild=0.90) == 0.9
    assert 0.0 <= DEFAULT_TRADEOFF <= 1.0


def test_frontier_drops_only_dominated_points() -> None:
    assert [p.tradeoff for p in pareto_frontier(POINTS)] == [0.0, 0.5, 0.7, 0.9]


def test_curve_starts_at_the_model_and_buys_long_tail() -> None:
    data = generate_synthetic(n_users=150, n_items=80, n_interactions=4000, seed=5)
    split = stratified_split(data.tables.interactions)
    side = build_side_info(split, SideTables(items=data.tables.items))
    points = curve(split, side, "ease", [0.0, 1.0], n_cand=30, k=10)
    # tradeoff 0 keeps the model's own order: the plain EASE top-10 metrics.
    users = split.test_users()
    top, _ = EASERecommender().fit(split.train).recommend(users, 10, split.train.matrix)
    test = split.test.matrix[users]
    assert points[0].ndcg == pytest.approx(M.ndcg_at_k(top, test), abs=1e-12)
    counts = M.item_counts(split.train.matrix)
    assert points[0].long_tail == pytest.approx(M.long_tail_share(top, counts), abs=1e-12)
    # tradeoff 1 ignores relevance: less popular, more diverse lists.
    assert points[1].long_tail > points[0].long_tail
    assert points[1].ild > points[0].ild
    assert np.isfinite([p.novelty for p in points]).all()
