"""Ranking metrics over top-k lists: pure, vectorized numpy / scipy.sparse functions.

Shapes and conventions (documented for people in ``docs/evaluation.md``):

- ``top``: int array (n_users, k) of item indices, best first. ``-1`` marks an empty slot (the
  model could not fill the list, e.g. fewer than k candidates); empty slots are never hits.
- ``test``: CSR (n_users, n_items) whose non-zeros are the relevant (held-out) items of each row.
  Row ``u`` of ``test`` belongs to row ``u`` of ``top``.
- Accuracy metrics are averaged over the rows with at least one relevant item; rows without are
  ignored (``evaluated_rows``). Per-user variants (``*_per_user``) return one value per row, NaN
  where the metric is undefined, so callers can average over any segment.
- Beyond-accuracy metrics (coverage, diversity, novelty, popularity) use every row they are
  given; ``summarize`` passes them the evaluated rows only.

Every function here is checked against a slow, obvious loop in ``tests/test_metrics.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata


def _check_top(
    top: np.ndarray, n_rows: int | None = None, n_items: int | None = None
) -> np.ndarray:
    top = np.asarray(top)
    if top.ndim != 2:
        raise ValueError(
            f"top must be a 2-d (n_users, k) array of item indices, got shape {top.shape}"
        )
    if not np.issubdtype(top.dtype, np.integer):
        raise ValueError(f"top must hold integer item indices, got dtype {top.dtype}")
    if n_rows is not None and top.shape[0] != n_rows:
        raise ValueError(f"top has {top.shape[0]} rows but the test matrix has {n_rows}")
    if top.size and top.min() < -1:
        raise ValueError(f"top holds negative item indices other than -1: {int(top.min())}")
    if n_items is not None and top.size and top.max() >= n_items:
        raise ValueError(f"top holds item index {int(top.max())} >= n_items {n_items}")
    return top.astype(np.int64, copy=False)


def _csr(m: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    out = sp.csr_matrix(m)
    out.eliminate_zeros()
    if not out.has_sorted_indices:
        out = out.sorted_indices()
    return out


def relevant_counts(test: sp.spmatrix) -> np.ndarray:
    """Number of relevant items per row (explicit zeros do not count)."""
    return np.diff(_csr(test).indptr).astype(np.int64)


def evaluated_rows(test: sp.spmatrix) -> np.ndarray:
    """Boolean mask of the rows with at least one relevant item."""
    return relevant_counts(test) > 0


def hits(top: np.ndarray, test: sp.spmatrix) -> np.ndarray:
    """Boolean (n_users, k): whether ``top[u, j]`` is a relevant item of row ``u``.

    Vectorized membership test: every (row, item) pair becomes the key ``row * n_items + item``;
    CSR keys are already sorted, so one ``searchsorted`` answers all n_users * k lookups.
    """
    test = _csr(test)
    n_users, n_items = test.shape
    top = _check_top(top, n_users, n_items)
    rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(test.indptr))
    keys = rows * n_items + test.indices.astype(np.int64)
    query = np.arange(n_users, dtype=np.int64)[:, None] * n_items + top
    if keys.size == 0:
        return np.zeros(top.shape, dtype=bool)
    pos = np.searchsorted(keys, query)
    pos = np.minimum(pos, keys.size - 1)
    return (keys[pos] == query) & (top >= 0)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def _masked(values: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    out = values.astype(np.float64)
    out[n_rel == 0] = np.nan
    return out


def precision_per_user(top: np.ndarray, test: sp.spmatrix) -> np.ndarray:
    """hits in the list / k (empty slots count as misses)."""
    h = hits(top, test)
    return _masked(h.sum(axis=1) / max(h.shape[1], 1), relevant_counts(test))


def recall_per_user(top: np.ndarray, test: sp.spmatrix) -> np.ndarray:
    """hits in the list / number of relevant items."""
    h = hits(top, test)
    n_rel = relevant_counts(test)
    return _masked(h.sum(axis=1) / np.maximum(n_rel, 1), n_rel)


def ndcg_per_user(top: np.ndarray, test: sp.spmatrix) -> np.ndarray:
    """Binary-gain DCG / ideal DCG, the ideal list holding min(#relevant, k) hits."""
    h = hits(top, test)
    k = h.shape[1]
    n_rel = relevant_counts(test)
    disc = _discounts(k)
    dcg = h.astype(np.float64) @ disc
    ideal_cum = np.concatenate([[0.0], np.cumsum(disc)])
    idcg = ideal_cum[np.minimum(n_rel, k)]
    return _masked(dcg / np.where(idcg > 0, idcg, 1.0), n_rel)


def ap_per_user(top: np.ndarray, test: sp.spmatrix) -> np.ndarray:
    """Average precision at k: sum of precision@j over hit positions j, / min(#relevant, k)."""
    h = hits(top, test).astype(np.float64)
    k = h.shape[1]
    n_rel = relevant_counts(test)
    prec_at = np.cumsum(h, axis=1) / np.arange(1, k + 1, dtype=np.float64)
    ap = (prec_at * h).sum(axis=1) / np.maximum(np.minimum(n_rel, k), 1)
    return _masked(ap, n_rel)


def reciprocal_rank_per_user(top: np.ndarray, test: sp.spmatrix) -> np.ndarray:
    """1 / (1-based position of the first hit), 0 when the list has no hit (MRR@k)."""
    h = hits(top, test)
    first = np.argmax(h, axis=1)
    rr = np.where(h.any(axis=1), 1.0 / (first + 1.0), 0.0)
    return _masked(rr, relevant_counts(test))


def hit_per_user(top: np.ndarray, test: sp.spmatrix) -> np.ndarray:
    """1 when the list holds at least one relevant item, else 0 (hit rate / HR@k)."""
    return _masked(hits(top, test).any(axis=1), relevant_counts(test))


def _mean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def precision_at_k(top: np.ndarray, test: sp.spmatrix) -> float:
    return _mean(precision_per_user(top, test))


def recall_at_k(top: np.ndarray, test: sp.spmatrix) -> float:
    return _mean(recall_per_user(top, test))


def ndcg_at_k(top: np.ndarray, test: sp.spmatrix) -> float:
    return _mean(ndcg_per_user(top, test))


def map_at_k(top: np.ndarray, test: sp.spmatrix) -> float:
    return _mean(ap_per_user(top, test))


def mrr_at_k(top: np.ndarray, test: sp.spmatrix) -> float:
    return _mean(reciprocal_rank_per_user(top, test))


def hit_rate_at_k(top: np.ndarray, test: sp.spmatrix) -> float:
    return _mean(hit_per_user(top, test))


# ---- AUC ------------------------------------------------------------------------------------
def auc_per_user(
    scores: np.ndarray, test: sp.spmatrix, exclude: sp.spmatrix | None = None
) -> np.ndarray:
    """Per-row ROC AUC of a full score matrix, via rank sums (Mann-Whitney U).

    Positives are the relevant items of the row; negatives are all other items except those in
    ``exclude`` (typically the training items). Ties count one half. NaN where a row has no
    positive or no negative. ``scores`` is (n_users, n_items) and may be NaN-free only.
    """
    scores = np.asarray(scores, dtype=np.float64)
    test = _csr(test)
    if scores.shape != test.shape:
        raise ValueError(f"scores shape {scores.shape} != test shape {test.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN; AUC needs a score for every item")
    pos = test.toarray() != 0
    excl = np.zeros_like(pos) if exclude is None else (_csr(exclude).toarray() != 0) & ~pos
    # Excluded items are moved below every candidate (-inf) so they take ranks 1..n_excl and
    # shift the candidates' ranks by exactly n_excl. A candidate scored -inf itself would tie
    # with them, so move real -infs just above: the lowest finite value minus one.
    s = scores.copy()
    finite = np.isfinite(s)
    floor = (np.min(s[finite]) if finite.any() else 0.0) - 1.0
    s[np.isneginf(s)] = floor
    s[np.isposinf(s)] = (np.max(s[finite]) if finite.any() else 0.0) + 1.0
    s[excl] = -np.inf
    ranks = rankdata(s, method="average", axis=1)
    n_excl = excl.sum(axis=1)
    n_pos = pos.sum(axis=1)
    n_neg = s.shape[1] - n_excl - n_pos
    rank_sum = np.where(pos, ranks - n_excl[:, None], 0.0).sum(axis=1)
    u_stat = rank_sum - n_pos * (n_pos + 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = u_stat / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


def auc(scores: np.ndarray, test: sp.spmatrix, exclude: sp.spmatrix | None = None) -> float:
    return _mean(auc_per_user(scores, test, exclude))


# ---- beyond accuracy ------------------------------------------------------------------------
def item_counts(train: sp.spmatrix) -> np.ndarray:
    """Training popularity: number of distinct users per item (non-zeros per column)."""
    m = sp.csc_matrix(train)
    m.eliminate_zeros()
    return np.diff(m.indptr).astype(np.int64)


def catalog_coverage(top: np.ndarray, n_items: int) -> float:
    """Share of the catalog that appears in at least one list."""
    top = _check_top(top, n_items=n_items)
    if n_items <= 0:
        raise ValueError(f"n_items must be positive, got {n_items}")
    return float(np.unique(top[top >= 0]).size / n_items)


def user_coverage(top: np.ndarray, k: int) -> float:
    """Share of rows whose list holds k items (no empty slot)."""
    top = _check_top(top)
    if top.shape[0] == 0:
        return float("nan")
    if top.shape[1] < k:
        return 0.0
    return float(((top[:, :k] >= 0).all(axis=1)).mean())


def ild_per_user(top: np.ndarray, item_categories: sp.spmatrix) -> np.ndarray:
    """Intra-list diversity: mean over item pairs in a list of (1 - Jaccard of category sets).

    Two items without any category count as identical (distance 0) so missing data never looks
    diverse. NaN for lists with fewer than two items.
    """
    cats = _csr(item_categories)
    cats.data[:] = 1.0
    top = _check_top(top, n_items=cats.shape[0])
    n, k = top.shape
    sizes = np.diff(cats.indptr).astype(np.float64)
    total = np.zeros(n)
    pairs = np.zeros(n)
    for a in range(k):
        for b in range(a + 1, k):
            ia, ib = top[:, a], top[:, b]
            ok = (ia >= 0) & (ib >= 0)
            if not ok.any():
                continue
            inter = np.asarray(cats[ia[ok]].multiply(cats[ib[ok]]).sum(axis=1)).ravel()
            union = sizes[ia[ok]] + sizes[ib[ok]] - inter
            jac = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 1.0)
            total[ok] += 1.0 - jac
            pairs[ok] += 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, total / np.where(pairs > 0, pairs, 1.0), np.nan)


def intra_list_diversity(top: np.ndarray, item_categories: sp.spmatrix) -> float:
    return _mean(ild_per_user(top, item_categories))


def _per_list_mean(values: np.ndarray, top: np.ndarray) -> np.ndarray:
    valid = top >= 0
    total = np.where(valid, values[np.where(valid, top, 0)], 0.0).sum(axis=1)
    n = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.where(n > 0, n, 1), np.nan)


def self_information(counts: np.ndarray) -> np.ndarray:
    """-log2(popularity share) per item; share = count / total count.

    An item never seen in training is treated as seen once (the least popularity observable),
    so novelty stays finite.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise ValueError("item counts sum to zero: popularity is undefined on an empty train set")
    return -np.log2(np.maximum(counts, 1.0) / total)


def novelty_per_user(top: np.ndarray, counts: np.ndarray) -> np.ndarray:
    top = _check_top(top, n_items=len(counts))
    return _per_list_mean(self_information(counts), top)


def novelty(top: np.ndarray, counts: np.ndarray) -> float:
    """Mean self-information of recommended items (per list, then over lists)."""
    return _mean(novelty_per_user(top, counts))


def head_items(counts: np.ndarray, head_share: float = 0.2) -> np.ndarray:
    """Boolean mask of the ``round(head_share * n_items)`` most popular items.

    Items are ordered by count, descending; ties go to the lower item index (stable).
    """
    if not 0.0 <= head_share <= 1.0:
        raise ValueError(f"head_share must be in [0, 1], got {head_share}")
    counts = np.asarray(counts)
    order = np.argsort(-counts, kind="stable")
    mask = np.zeros(len(counts), dtype=bool)
    mask[order[: int(round(head_share * len(counts)))]] = True
    return mask


def long_tail_share_per_user(
    top: np.ndarray, counts: np.ndarray, head_share: float = 0.2
) -> np.ndarray:
    top = _check_top(top, n_items=len(counts))
    return _per_list_mean((~head_items(counts, head_share)).astype(np.float64), top)


def long_tail_share(top: np.ndarray, counts: np.ndarray, head_share: float = 0.2) -> float:
    """Share of recommended items outside the ``head_share`` most popular (per list, averaged)."""
    return _mean(long_tail_share_per_user(top, counts, head_share))


def popularity_percentiles(counts: np.ndarray) -> np.ndarray:
    """Percentile of each item's count in [0, 1]: (average rank - 1) / (n_items - 1).

    1.0 is the most popular item, 0.0 the least; tied items share their average rank.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if len(counts) == 1:
        return np.ones(1)
    return (rankdata(counts, method="average") - 1.0) / (len(counts) - 1.0)


def popularity_bias_per_user(top: np.ndarray, counts: np.ndarray) -> np.ndarray:
    top = _check_top(top, n_items=len(counts))
    return _per_list_mean(popularity_percentiles(counts), top)


def popularity_bias(top: np.ndarray, counts: np.ndarray) -> float:
    """Mean popularity percentile of recommended items (per list, then averaged)."""
    return _mean(popularity_bias_per_user(top, counts))


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 = perfectly equal, (n-1)/n = one holds all."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.size == 0:
        raise ValueError("gini of an empty array is undefined")
    if (x < 0).any():
        raise ValueError("gini needs non-negative values")
    total = x.sum()
    if total == 0:
        return 0.0
    n = x.size
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def exposure_gini(top: np.ndarray, n_items: int) -> float:
    """Gini of how often each catalog item appears across all lists (unexposed items count 0)."""
    top = _check_top(top, n_items=n_items)
    exposure = np.bincount(top[top >= 0], minlength=n_items)
    return gini(exposure)


# ---- fairness -------------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupGap:
    """A metric compared across user groups.

    Attributes:
        means: mean metric per group label (groups without any defined value are left out).
        counts: number of users with a defined value per group.
        gap: largest group mean minus smallest group mean (0.0 with one group).
    """

    means: dict[str, float]
    counts: dict[str, int]
    gap: float


def group_gap(values: np.ndarray, groups: np.ndarray) -> GroupGap:
    """Per-group means of a per-user metric (NaN values and null labels are ignored)."""
    values = np.asarray(values, dtype=np.float64)
    groups = np.asarray(groups, dtype=object)
    if values.shape != groups.shape:
        raise ValueError(f"values shape {values.shape} != groups shape {groups.shape}")
    ok = ~np.isnan(values) & np.array([g is not None and g == g for g in groups], dtype=bool)
    labels = groups[ok].astype(str)
    vals = values[ok]
    uniq, inv = np.unique(labels, return_inverse=True)
    sums = np.bincount(inv, weights=vals, minlength=len(uniq))
    cnts = np.bincount(inv, minlength=len(uniq))
    means = {str(g): float(s / c) for g, s, c in zip(uniq, sums, cnts, strict=True)}
    counts = {str(g): int(c) for g, c in zip(uniq, cnts, strict=True)}
    gap = float(max(means.values()) - min(means.values())) if means else float("nan")
    return GroupGap(means, counts, gap)


AGE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("<18", -np.inf, 18),
    ("18-24", 18, 25),
    ("25-34", 25, 35),
    ("35-44", 35, 45),
    ("45-54", 45, 55),
    ("55+", 55, np.inf),
)


def age_bands(ages: np.ndarray) -> np.ndarray:
    """Age band label per user (``AGE_BANDS``); None where the age is unknown."""
    ages = np.asarray(ages, dtype=np.float64)
    out = np.full(ages.shape, None, dtype=object)
    for label, lo, hi in AGE_BANDS:
        out[(ages >= lo) & (ages < hi)] = label
    return out


def activity_groups(train_counts: np.ndarray, heavy_quantile: float = 0.5) -> np.ndarray:
    """ "heavy" for users whose train interaction count exceeds the ``heavy_quantile`` quantile
    of the counts of users with any train interaction, "light" for the other such users, None
    for users without train interactions (cold start has its own report)."""
    counts = np.asarray(train_counts, dtype=np.float64)
    out = np.full(counts.shape, None, dtype=object)
    active = counts > 0
    if not active.any():
        return out
    threshold = np.quantile(counts[active], heavy_quantile)
    out[active] = np.where(counts[active] > threshold, "heavy", "light")
    return out


# ---- all at once ----------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricSummary:
    """Every metric of one top-k evaluation.

    Attributes:
        values: metric name -> value (names as in ``docs/evaluation.md``, e.g. ``ndcg@10``).
        per_user: per-user arrays over the evaluated rows (``precision``, ``recall``, ``ndcg``,
            ``ap``, ``rr``, ``hit``, ``auc`` when scores were given), aligned with ``rows``.
        rows: indices (into the input rows) of the evaluated rows.
        groups: fairness comparisons by segment name (NDCG@k per group).
    """

    values: dict[str, float]
    per_user: dict[str, np.ndarray]
    rows: np.ndarray
    groups: dict[str, GroupGap]


def summarize(
    top: np.ndarray,
    test: sp.spmatrix,
    train: sp.spmatrix,
    *,
    k: int = 10,
    scores: np.ndarray | None = None,
    item_categories: sp.spmatrix | None = None,
    user_groups: Mapping[str, np.ndarray] | None = None,
    head_share: float = 0.2,
) -> MetricSummary:
    """Compute every metric for the rows of ``top``/``test`` with at least one relevant item.

    ``train`` gives popularity (counts), the AUC exclusions and nothing else. ``scores`` (full
    (n_users, n_items) score matrix) enables AUC; ``item_categories`` enables ILD;
    ``user_groups`` (label per row, by segment name) enables fairness gaps.
    """
    test = _csr(test)
    train = _csr(train)
    if train.shape != test.shape:
        raise ValueError(f"train shape {train.shape} != test shape {test.shape}")
    top = _check_top(top, test.shape[0], test.shape[1])
    if top.shape[1] < k:
        raise ValueError(f"top holds {top.shape[1]} columns, fewer than k={k}")
    rows = np.flatnonzero(evaluated_rows(test))
    t, te = top[rows, :k], test[rows]
    counts = item_counts(train)
    n_items = test.shape[1]
    per_user = {
        "precision": precision_per_user(t, te),
        "recall": recall_per_user(t, te),
        "ndcg": ndcg_per_user(t, te),
        "ap": ap_per_user(t, te),
        "rr": reciprocal_rank_per_user(t, te),
        "hit": hit_per_user(t, te),
    }
    v = {
        f"precision@{k}": _mean(per_user["precision"]),
        f"recall@{k}": _mean(per_user["recall"]),
        f"ndcg@{k}": _mean(per_user["ndcg"]),
        f"map@{k}": _mean(per_user["ap"]),
        f"mrr@{k}": _mean(per_user["rr"]),
        f"hit_rate@{k}": _mean(per_user["hit"]),
    }
    if scores is not None:
        per_user["auc"] = auc_per_user(np.asarray(scores)[rows], te, train[rows])
        v["auc"] = _mean(per_user["auc"])
    v["catalog_coverage"] = catalog_coverage(t, n_items)
    v["user_coverage"] = user_coverage(t, k)
    if item_categories is not None:
        v["ild"] = intra_list_diversity(t, item_categories)
    v["novelty"] = novelty(t, counts)
    v["long_tail_share"] = long_tail_share(t, counts, head_share)
    v["popularity_bias"] = popularity_bias(t, counts)
    v["exposure_gini"] = exposure_gini(t, n_items)
    groups: dict[str, GroupGap] = {}
    for name, labels in (user_groups or {}).items():
        labels = np.asarray(labels, dtype=object)
        if labels.shape[0] != test.shape[0]:
            raise ValueError(
                f"user group {name!r} has {labels.shape[0]} labels for {test.shape[0]} users"
            )
        groups[name] = group_gap(per_user["ndcg"], labels[rows])
        v[f"ndcg_gap_{name}"] = groups[name].gap
    v["n_users"] = float(len(rows))
    return MetricSummary(v, per_user, rows, groups)


# ---- sampled ranking (P3) ---------------------------------------------------------------------
def sampled_ranks(candidate_scores: np.ndarray) -> np.ndarray:
    """0-based rank of column 0 (the held-out item) among each row's candidates.

    Ties are broken against the held-out item: rank = number of other candidates scoring at
    least as high, so a model that scores everything equal earns nothing.
    """
    s = np.asarray(candidate_scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValueError(f"candidate scores must be (n_users, 1 + n_negatives), got {s.shape}")
    if np.isnan(s).any():
        raise ValueError("candidate scores contain NaN")
    return (s[:, 1:] >= s[:, :1]).sum(axis=1)


def sampled_metrics(ranks: np.ndarray, k: int, n_candidates: int) -> dict[str, float]:
    """HR@k, NDCG@k (one relevant item: 1/log2(rank+2) inside the top k) and sampled AUC."""
    ranks = np.asarray(ranks, dtype=np.float64)
    inside = ranks < k
    return {
        f"hit_rate@{k}": float(inside.mean()),
        f"ndcg@{k}": float(np.where(inside, 1.0 / np.log2(ranks + 2.0), 0.0).mean()),
        f"mrr@{k}": float(np.where(inside, 1.0 / (ranks + 1.0), 0.0).mean()),
        "auc": float((1.0 - ranks / (n_candidates - 1)).mean()),
        "n_users": float(len(ranks)),
    }
