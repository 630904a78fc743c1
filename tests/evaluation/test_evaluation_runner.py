"""The evaluation runner: split -> fit -> score -> metrics, on models whose answer is known."""

from __future__ import annotations

from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from evaluation_helpers import events, ml100k_interactions
from reference_numbers import P1_POPULARITY_ML100K, P3_POPULARITY_ML100K, assert_reference

from recs_assets.core.evaluation.protocols import Split, make_split
from recs_assets.core.evaluation.runner import (
    SideTables,
    build_side_info,
    evaluate,
    evaluate_models,
    evaluate_split,
    item_category_matrix,
    resolve_models,
    with_lift,
)
from recs_assets.core.models.base import InteractionMatrix, Recommender, SideInfo


class Fixed(Recommender):
    """Scores given up front: an oracle when they are the test matrix, a constant when zeros."""

    name = "fixed"

    def __init__(self, scores: np.ndarray) -> None:
        super().__init__()
        self.scores = np.asarray(scores, dtype=np.float64)

    def fit(self, train: InteractionMatrix, side: SideInfo | None = None) -> Self:
        self._check_train(train)
        self._fitted = True
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        s = self.scores[self._check_users(users)]
        return s if items is None else s[:, items]


def oracle(split: Split):
    return lambda: Fixed(split.test.matrix.toarray())


# 3 users x 6 items, 4 rows each at distinct times
ROWS = [
    (u, f"i{(j * 2 + n) % 6}", 10 * n + j, "rate", 3.0)
    for n, u in enumerate(["a", "b", "c"])
    for j in range(4)
]
SMALL = events(ROWS)


def test_oracle_is_perfect_and_lifts_over_popularity() -> None:
    split = make_split("stratified", SMALL)
    side = build_side_info(split, None)
    ev = evaluate_split(oracle(split), split, side, k=2)
    # each user has exactly one test item (4 rows -> 3 train, 1 test), ranked first:
    # precision@2 = 1/2, recall 1, NDCG 1, AUC 1
    assert ev.metrics["precision@2"] == pytest.approx(0.5)
    assert ev.metrics["recall@2"] == pytest.approx(1.0)
    assert ev.metrics["ndcg@2"] == pytest.approx(1.0)
    assert ev.metrics["auc"] == pytest.approx(1.0)
    assert ev.metrics["n_users"] == 3
    assert ev.curve["recall"][0] == pytest.approx(1.0)
    pop = evaluate_split("popularity", split, side, k=2)
    lifted = with_lift(ev, pop)
    assert lifted.lift["ndcg@2"] == pytest.approx(1.0 / pop.metrics["ndcg@2"] - 1.0)


def test_constant_scores_get_half_auc() -> None:
    split = make_split("stratified", SMALL)
    ev = evaluate_split(lambda: Fixed(np.zeros((3, 6))), split, build_side_info(split, None), k=2)
    # every candidate ties with the positive: AUC counts ties one half
    assert ev.metrics["auc"] == pytest.approx(0.5)


def test_temporal_cold_start_is_reported_separately() -> None:
    # a rates i0..i3 at times 0..3, b i2..i5 at 10..13, c i2, i6, i7, i8 at 20..23.
    # 40% of 12 rows = round(4.8) = 5: the cut-off is the 8th time, 13, so test = b's i5
    # (b is warm) and all of c's rows (c is cold start)
    rows = [("a", f"i{j}", j, "rate", 1.0) for j in range(4)]
    rows += [("b", f"i{j + 2}", 10 + j, "rate", 1.0) for j in range(4)]
    rows += [("c", item, 20 + j, "rate", 1.0) for j, item in enumerate(["i2", "i6", "i7", "i8"])]
    split = make_split("temporal", events(rows), test_share=0.4)
    assert list(split.user_ids[split.cold_users]) == ["c"]
    assert split.test.nnz == 5
    ev = evaluate_split("popularity", split, build_side_info(split, None), k=3)
    assert ev.metrics["n_users"] == 1  # b only
    assert ev.cold_start is not None and ev.cold_start["n_users"] == 1  # c only
    # c gets the popularity fallback: train counts i2 = i3 = 2 lead, so i2 is in c's top 3 and
    # c's other items (never in train) are not: precision@3 = 1/3, recall 1/4
    assert ev.cold_start["precision@3"] == pytest.approx(1 / 3)
    assert ev.cold_start["recall@3"] == pytest.approx(1 / 4)


def test_loo_sampled_oracle_and_constant() -> None:
    rows = [(u, f"i{j}", j + 10 * n, "rate", 1.0) for n, u in enumerate("ab") for j in range(3)]
    rows += [("z", f"i{j}", 99, "rate", 1.0) for j in range(3, 9)]  # more items to sample from
    split = make_split("loo-sampled", events(rows), n_negatives=3)
    side = build_side_info(split, None)
    ev = evaluate_split(oracle(split), split, side, k=1)
    assert ev.metrics["hit_rate@1"] == 1.0 and ev.metrics["ndcg@1"] == 1.0
    flat = evaluate_split(lambda: Fixed(np.zeros((3, 9))), split, side, k=1)
    # ties go against the held-out item: rank 3 of 4 -> no hit, sampled AUC 0
    assert flat.metrics["hit_rate@1"] == 0.0 and flat.metrics["auc"] == 0.0


def test_side_info_alignment() -> None:
    items = pd.DataFrame({"item_id": ["i1", "i0", "i9"], "categories": ["A|B", "B", None]})
    m, names = item_category_matrix(items, np.array(["i0", "i1", "i2"], dtype=object))
    assert names == ("A", "B")
    # i0 -> {B}; i1 -> {A, B}; i2 is not in the table -> no categories
    np.testing.assert_array_equal(m.toarray(), [[0, 1], [1, 1], [0, 0]])
    users = pd.DataFrame({"user_id": ["b", "a"], "gender": ["F", "M"], "age": [70, 20]})
    split = make_split("stratified", SMALL)
    side = build_side_info(split, SideTables(users=users, items=items))
    assert list(side.user_groups["gender"]) == ["M", "F", None]
    assert list(side.user_groups["age_band"]) == ["18-24", "55+", None]
    assert isinstance(side.item_categories, sp.csr_matrix)


def test_bad_names() -> None:
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        resolve_models(["popularity", "nope"])
    assert "popularity" in resolve_models(["all"])
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate("popularity", SMALL, "random")


def test_popularity_on_ml100k_all_protocols(ml100k_dir: Path) -> None:
    ml = ml100k_interactions(ml100k_dir)
    report = evaluate_models(["popularity"], ml, ["stratified", "temporal", "loo-sampled"], k=10)
    p1 = report.get("stratified", "popularity")
    assert_reference(p1.metrics, P1_POPULARITY_ML100K, ["precision@10", "ndcg@10"])
    assert p1.metrics["auc"] == pytest.approx(0.86, abs=0.01)
    assert p1.lift["ndcg@10"] == 0.0  # popularity against itself
    p2 = report.get("temporal", "popularity")
    assert p2.cold_start is not None and report.splits["temporal"].n_cold_users > 0
    p3 = report.get("loo-sampled", "popularity")
    # Dacrema et al.'s TopPopular on ML-100K under a similar protocol
    assert_reference(p3.metrics, P3_POPULARITY_ML100K)
