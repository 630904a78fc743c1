"""Ranking metrics: hand-computed cases, and the vectorized code against slow obvious loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recs_assets.core import metrics as M


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n_items))


# ---- hand-computed ---------------------------------------------------------------------------
# user 0: list [3, 1, 0], relevant {1, 2}   -> hit at position 2 only
# user 1: list [0, 2, 4], relevant {0, 4}   -> hits at positions 1 and 3
# user 2: list [1, 2, 3], relevant {}       -> not evaluated
TOP = np.array([[3, 1, 0], [0, 2, 4], [1, 2, 3]])
TEST = csr([[1, 2], [0, 4], []], 5)


def test_accuracy_metrics_by_hand() -> None:
    # precision: user0 1/3, user1 2/3 -> mean 1/2
    assert M.precision_at_k(TOP, TEST) == pytest.approx(0.5)
    # recall: user0 1/2, user1 2/2 -> 3/4
    assert M.recall_at_k(TOP, TEST) == pytest.approx(0.75)
    # ndcg: user0 (1/log2 3) / (1 + 1/log2 3); user1 (1 + 1/log2 4) / (1 + 1/log2 3)
    ideal = 1 + 1 / math.log2(3)
    u0 = (1 / math.log2(3)) / ideal
    u1 = (1 + 0.5) / ideal
    assert M.ndcg_at_k(TOP, TEST) == pytest.approx((u0 + u1) / 2)
    # AP: user0 (1/2) / min(2,3) = 1/4; user1 (1/1 + 2/3) / 2 = 5/6
    assert M.map_at_k(TOP, TEST) == pytest.approx((0.25 + 5 / 6) / 2)
    # MRR: user0 first hit at 2 -> 1/2; user1 at 1 -> 1
    assert M.mrr_at_k(TOP, TEST) == pytest.approx(0.75)
    assert M.hit_rate_at_k(TOP, TEST) == pytest.approx(1.0)
    np.testing.assert_array_equal(M.evaluated_rows(TEST), [True, True, False])


def test_empty_slots_are_misses_and_break_user_coverage() -> None:
    top = np.array([[1, -1, -1], [0, 2, 4]])
    test = csr([[1, 2], [0, 4]], 5)
    # user0 has 1 hit out of k=3 slots; the empty slots are misses
    assert M.precision_per_user(top, test)[0] == pytest.approx(1 / 3)
    assert M.user_coverage(top, 3) == pytest.approx(0.5)
    # items shown: {0, 1, 2, 4} of 5
    assert M.catalog_coverage(top, 5) == pytest.approx(0.8)


def test_auc_by_hand() -> None:
    # 4 items; item 0 is train (excluded), item 2 relevant.
    # candidates 1, 2, 3 with scores 0.5, 0.9, 0.9: positive beats item 1, ties item 3 -> (1 + .5)/2
    scores = np.array([[10.0, 0.5, 0.9, 0.9]])
    test = csr([[2]], 4)
    train = csr([[0]], 4)
    assert M.auc(scores, test, train) == pytest.approx(0.75)
    # without the exclusion item 0 (score 10) beats the positive too -> 1.5 / 3
    assert M.auc(scores, test) == pytest.approx(0.5)


def test_beyond_accuracy_by_hand() -> None:
    counts = np.array([8, 4, 2, 1, 1])  # total 16
    top = np.array([[0, 1], [3, 4]])
    # self-information: item0 -log2(8/16)=1, item1 2, item3 4, item4 4 -> lists 1.5 and 4
    assert M.novelty(top, counts) == pytest.approx((1.5 + 4) / 2)
    # head = round(0.2 * 5) = 1 item (item 0): list0 half tail, list1 all tail
    assert M.long_tail_share(top, counts) == pytest.approx((0.5 + 1.0) / 2)
    # percentiles by average rank: item0 1.0, item1 0.75, items 3,4 tie at rank 1.5 -> 0.125
    assert M.popularity_bias(top, counts) == pytest.approx((0.875 + 0.125) / 2)
    # exposure [1, 1, 0, 1, 1]: sorted [0,1,1,1,1]; gini = sum((2i-n-1) x)/(n sum) = 4/20
    assert M.exposure_gini(top, 5) == pytest.approx(0.2)
    # an item never seen in training counts as seen once (finite novelty)
    assert M.self_information(np.array([0, 3]))[0] == pytest.approx(math.log2(3))


def test_ild_by_hand() -> None:
    # item0 {A,B}, item1 {B}, item2 {C}, item3 {} , item4 {}
    cats = csr([[0, 1], [1], [2], [], []], 3)
    top = np.array([[0, 1, 2], [3, 4, -1], [0, -1, -1]])
    # list0 pairs: (0,1) J=1/2 -> .5; (0,2) J=0 -> 1; (1,2) -> 1; mean 2.5/3
    # list1: two items without categories count as identical -> 0
    # list2: one item -> undefined, left out of the mean
    per = M.ild_per_user(top, cats)
    assert per[0] == pytest.approx(2.5 / 3)
    assert per[1] == pytest.approx(0.0)
    assert np.isnan(per[2])
    assert M.intra_list_diversity(top, cats) == pytest.approx(2.5 / 6)


def test_fairness_groups_by_hand() -> None:
    values = np.array([1.0, 0.0, 0.5, np.nan, 0.25])
    groups = np.array(["M", "M", "F", "F", None], dtype=object)
    g = M.group_gap(values, groups)
    # M: (1 + 0)/2 = .5; F: .5 (the NaN is skipped); unknown label skipped
    assert g.means == {"F": 0.5, "M": 0.5}
    assert g.counts == {"F": 1, "M": 2}
    assert g.gap == 0.0
    np.testing.assert_array_equal(
        M.age_bands(np.array([17, 18, 24, 25, 54, 55, np.nan])),
        np.array(["<18", "18-24", "18-24", "25-34", "45-54", "55+", None], dtype=object),
    )
    # median of the active users' counts [1, 2, 3, 10] is 2.5: 3 and 10 are heavy; the user
    # without train rows has no activity group
    np.testing.assert_array_equal(
        M.activity_groups(np.array([1, 0, 2, 3, 10])),
        np.array(["light", None, "light", "heavy", "heavy"], dtype=object),
    )


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="rows"):
        M.precision_at_k(np.zeros((2, 3), dtype=int), csr([[1]], 5))
    with pytest.raises(ValueError, match="integer"):
        M.precision_at_k(np.zeros((1, 3)), csr([[1]], 5))
    with pytest.raises(ValueError, match="n_items"):
        M.catalog_coverage(np.array([[7]]), 5)
    with pytest.raises(ValueError, match="NaN"):
        M.auc(np.array([[np.nan, 1.0]]), csr([[1]], 2))


# ---- against slow reference loops on random data ---------------------------------------------
def random_case(seed: int, n_users: int = 60, n_items: int = 40, k: int = 7):
    rng = np.random.default_rng(seed)
    train = (rng.random((n_users, n_items)) < 0.15).astype(float)
    test = (rng.random((n_users, n_items)) < 0.1).astype(float) * (1 - train)
    test[:5] = 0  # some users without relevant items
    scores = np.round(rng.random((n_users, n_items)), 1)  # coarse scores -> many ties
    top = np.argsort(-np.where(train > 0, -np.inf, scores), axis=1, kind="stable")[:, :k]
    top[7, 3:] = -1  # a short list
    cats = (rng.random((n_items, 5)) < 0.3).astype(float)
    return train, test, scores, top, cats


def ref_loops(train, test, scores, top, cats, k):
    out: dict[str, list[float]] = {m: [] for m in ["p", "r", "ndcg", "ap", "rr", "hit", "auc"]}
    for u in range(test.shape[0]):
        rel = set(np.flatnonzero(test[u]))
        if not rel:
            continue
        lst = [i for i in top[u]]
        h = [1 if i >= 0 and i in rel else 0 for i in lst]
        out["p"].append(sum(h) / k)
        out["r"].append(sum(h) / len(rel))
        dcg = sum(h[j] / math.log2(j + 2) for j in range(k))
        idcg = sum(1 / math.log2(j + 2) for j in range(min(len(rel), k)))
        out["ndcg"].append(dcg / idcg)
        ap, seen = 0.0, 0
        for j in range(k):
            if h[j]:
                seen += 1
                ap += seen / (j + 1)
        out["ap"].append(ap / min(len(rel), k))
        out["rr"].append(next((1 / (j + 1) for j in range(k) if h[j]), 0.0))
        out["hit"].append(float(any(h)))
        neg = [i for i in range(test.shape[1]) if i not in rel and train[u, i] == 0]
        if neg:
            wins = sum(
                1.0 if scores[u, p] > scores[u, n] else 0.5 if scores[u, p] == scores[u, n] else 0.0
                for p in rel
                for n in neg
            )
            out["auc"].append(wins / (len(rel) * len(neg)))
    return {m: float(np.mean(v)) for m, v in out.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accuracy_matches_reference_loops(seed: int) -> None:
    train, test, scores, top, cats = random_case(seed)
    k = top.shape[1]
    ref = ref_loops(train, test, scores, top, cats, k)
    te, tr = sp.csr_matrix(test), sp.csr_matrix(train)
    assert M.precision_at_k(top, te) == pytest.approx(ref["p"])
    assert M.recall_at_k(top, te) == pytest.approx(ref["r"])
    assert M.ndcg_at_k(top, te) == pytest.approx(ref["ndcg"])
    assert M.map_at_k(top, te) == pytest.approx(ref["ap"])
    assert M.mrr_at_k(top, te) == pytest.approx(ref["rr"])
    assert M.hit_rate_at_k(top, te) == pytest.approx(ref["hit"])
    assert M.auc(scores, te, tr) == pytest.approx(ref["auc"])


@pytest.mark.parametrize("seed", [0, 1])
def test_beyond_accuracy_matches_reference_loops(seed: int) -> None:
    train, test, scores, top, cats = random_case(seed)
    n_items = train.shape[1]
    counts = (train > 0).sum(axis=0)
    lists = [[i for i in row if i >= 0] for row in top]
    # ILD
    sets = [set(np.flatnonzero(cats[i])) for i in range(n_items)]
    ilds = []
    for lst in lists:
        d = []
        for a in range(len(lst)):
            for b in range(a + 1, len(lst)):
                sa, sb = sets[lst[a]], sets[lst[b]]
                jac = len(sa & sb) / len(sa | sb) if sa | sb else 1.0
                d.append(1 - jac)
        if d:
            ilds.append(np.mean(d))
    assert M.intra_list_diversity(top, sp.csr_matrix(cats)) == pytest.approx(np.mean(ilds))
    # novelty
    total = counts.sum()
    nov = [np.mean([-math.log2(max(counts[i], 1) / total) for i in lst]) for lst in lists]
    assert M.novelty(top, counts) == pytest.approx(np.mean(nov))
    # long tail: head = the round(.2 n) most popular, ties to the lower index
    ranked = sorted(range(n_items), key=lambda i: (-counts[i], i))
    head = set(ranked[: round(0.2 * n_items)])
    tail = [np.mean([i not in head for i in lst]) for lst in lists]
    assert M.long_tail_share(top, counts) == pytest.approx(np.mean(tail))
    # popularity percentile: share of other items strictly less popular + half the ties
    pct = [
        (
            sum(counts[j] < counts[i] for j in range(n_items))
            + 0.5 * (sum(counts[j] == counts[i] for j in range(n_items)) - 1)
        )
        / (n_items - 1)
        for i in range(n_items)
    ]
    assert M.popularity_bias(top, counts) == pytest.approx(
        np.mean([np.mean([pct[i] for i in lst]) for lst in lists])
    )
    # coverage and gini
    shown = {i for lst in lists for i in lst}
    assert M.catalog_coverage(top, n_items) == pytest.approx(len(shown) / n_items)
    exposure = [sum(lst.count(i) for lst in lists) for i in range(n_items)]
    mean_abs_diff = sum(abs(a - b) for a in exposure for b in exposure) / n_items**2
    assert M.exposure_gini(top, n_items) == pytest.approx(mean_abs_diff / (2 * np.mean(exposure)))
    assert M.user_coverage(top, top.shape[1]) == pytest.approx(
        np.mean([len(lst) == top.shape[1] for lst in lists])
    )


def test_summarize_uses_evaluated_rows_and_groups() -> None:
    train, test, scores, top, cats = random_case(3)
    k = top.shape[1]
    groups = {"g": np.array(["a" if u % 2 else "b" for u in range(train.shape[0])], dtype=object)}
    s = M.summarize(
        top,
        sp.csr_matrix(test),
        sp.csr_matrix(train),
        k=k,
        scores=scores,
        item_categories=sp.csr_matrix(cats),
        user_groups=groups,
    )
    ref = ref_loops(train, test, scores, top, cats, k)
    assert s.values[f"ndcg@{k}"] == pytest.approx(ref["ndcg"])
    assert s.values["auc"] == pytest.approx(ref["auc"])
    assert s.values["n_users"] == (test.sum(axis=1) > 0).sum()
    # rows 0..4 have no relevant item and are left out everywhere
    assert s.rows.min() == 5
    ndcg = s.per_user["ndcg"]
    odd = s.rows % 2 == 1
    assert s.groups["g"].means["a"] == pytest.approx(ndcg[odd].mean())
    assert s.values["ndcg_gap_g"] == pytest.approx(abs(ndcg[odd].mean() - ndcg[~odd].mean()))
