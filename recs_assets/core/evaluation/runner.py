"""Evaluate models under a protocol: split, fit, score, metrics. The one code path of the
``evaluation_report`` asset and of ``recs eval``.

``evaluate`` handles one model and one protocol; ``evaluate_models`` handles many of each and
splits only once per protocol, evaluating the popularity baseline once for the lifts.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recs_assets.core import metrics as M
from recs_assets.core.evaluation.protocols import ImplicitFeedback, Split, make_split
from recs_assets.core.models.attributes import attributes
from recs_assets.core.models.base import InteractionMatrix, Recommender, SideInfo, top_k
from recs_assets.core.models.popularity import PopularityRecommender
from recs_assets.core.models.registry import MODEL_FACTORIES, model_factory
from recs_assets.core.phase1.schema import CATEGORY_SEP

BASELINE = "popularity"
# metrics where "higher is better" and a lift over popularity is meaningful
LIFT_METRICS: tuple[str, ...] = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate", "auc")

ModelSpec = str | Callable[..., Recommender]


@dataclass(frozen=True)
class SideTables:
    """Optional user and item tables (canonical Phase 1 schema) that enrich an evaluation.

    Attributes:
        users: ``user_id``, ``age``, ``gender`` ... -> fairness segments; None to skip them.
        items: ``item_id``, ``categories``, ``title`` -> ILD and item side information.
    """

    users: pd.DataFrame | None = None
    items: pd.DataFrame | None = None


PAIRED_METRICS: tuple[str, ...] = ("ndcg", "recall", "precision")
"""Metrics whose per-user values each evaluation keeps for paired comparisons."""


@dataclass(frozen=True)
class ModelEvaluation:
    """Everything measured for one model under one protocol.

    Attributes:
        model: registry name (or class name of a custom factory).
        protocol: protocol name.
        k: list length of the headline metrics.
        metrics: metric name -> value (see ``docs/evaluation.md``); for P2 over warm users only.
        fit_seconds: wall time of ``fit``.
        score_seconds: wall time of scoring and top-k selection for every evaluated user.
        segments: segment name -> group label -> NDCG@k (fairness tables).
        segment_counts: segment name -> group label -> number of evaluated users.
        curve: "precision" and "recall" at 1..len(curve) (for the plots); empty for P3.
        lift: metric -> relative lift over popularity under the same split (0.1 = +10%).
        cold_start: P2 only: metrics over cold-start users (no train row), scored by the
            popularity fallback; None for other protocols or when there are none.
        params: hyper-parameters of the fitted model.
        per_user: metric -> per-user values (``ndcg@k``, ``recall@k``, ``precision@k``) over
            ``per_user_rows``, for paired comparisons (``core.evaluation.uncertainty``).
        per_user_rows: the user indices (of the split's matrices) of those values.
        request_ms: percentiles (``p50``, ``p95``, ``p99``) of one-user request times in ms,
            when timed (``core.evaluation.latency``; what the latency gate reads).
        fit_summary: what the fitted model says of its own fit, its ``summary()`` when it has
            one (the ranker: the prior's weights, the trees kept, their held-out NDCG@10).
    """

    model: str
    protocol: str
    k: int
    metrics: dict[str, float]
    fit_seconds: float
    score_seconds: float
    segments: dict[str, dict[str, float]] = field(default_factory=dict)
    segment_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    curve: dict[str, list[float]] = field(default_factory=dict)
    lift: dict[str, float] = field(default_factory=dict)
    cold_start: dict[str, float] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    per_user: dict[str, np.ndarray] = field(default_factory=dict)
    per_user_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    request_ms: dict[str, float] = field(default_factory=dict)
    fit_summary: dict[str, float] = field(default_factory=dict)

    def flat(self) -> dict[str, float]:
        """Metrics plus timings in one flat dict (what ``recs eval --json`` writes per model)."""
        out = dict(self.metrics)
        out["fit_seconds"] = self.fit_seconds
        out["score_seconds"] = self.score_seconds
        out.update({f"lift_{m}": v for m, v in self.lift.items()})
        if self.cold_start:
            out.update({f"cold_{m}": v for m, v in self.cold_start.items()})
        out.update({f"request_{q}_ms": v for q, v in self.request_ms.items()})
        return out


@dataclass(frozen=True)
class SplitSummary:
    """Sizes of one protocol's split, for the report."""

    protocol: str
    n_users: int
    n_items: int
    n_train: int
    n_test: int
    n_test_users: int
    n_cold_users: int

    @classmethod
    def of(cls, split: Split) -> SplitSummary:
        return cls(
            split.protocol,
            split.train.n_users,
            split.train.n_items,
            split.train.nnz,
            split.test.nnz,
            len(split.test_users()),
            len(split.cold_users),
        )


@dataclass(frozen=True)
class EvaluationReport:
    """Every model under every protocol on one data set.

    Attributes:
        dataset: a name for the data (e.g. "movielens:/path").
        k: list length.
        evaluations: one entry per (protocol, model), protocols in the order given.
        splits: protocol -> split sizes.
    """

    dataset: str
    k: int
    evaluations: list[ModelEvaluation]
    splits: dict[str, SplitSummary]

    def by_protocol(self, protocol: str) -> list[ModelEvaluation]:
        return [e for e in self.evaluations if e.protocol == protocol]

    def get(self, protocol: str, model: str) -> ModelEvaluation:
        for e in self.evaluations:
            if e.protocol == protocol and e.model == model:
                return e
        raise KeyError(f"no evaluation of {model!r} under {protocol!r}")

    @property
    def protocols(self) -> list[str]:
        return list(self.splits)


# ---- side information ---------------------------------------------------------------------------
def _aligned(frame: pd.DataFrame, id_col: str, ids: np.ndarray, what: str) -> pd.DataFrame:
    if id_col not in frame.columns:
        raise ValueError(f"{what} table lacks column {id_col!r}; has {list(frame.columns)}")
    keyed = frame.assign(_key=frame[id_col].astype(str)).drop_duplicates("_key").set_index("_key")
    return keyed.reindex(pd.Index([str(i) for i in ids]))


def item_category_matrix(
    items: pd.DataFrame, item_ids: np.ndarray
) -> tuple[sp.csr_matrix, tuple[str, ...]]:
    """Binary (n_items, n_categories) CSR from the ``|``-joined ``categories`` column.

    Items missing from ``items`` or without categories get an empty row.
    """
    cats = _aligned(items, "item_id", item_ids, "items")["categories"]
    lists = [
        [c for c in str(v).split(CATEGORY_SEP) if c] if isinstance(v, str) else [] for v in cats
    ]
    names = tuple(sorted({c for lst in lists for c in lst}))
    col = {c: j for j, c in enumerate(names)}
    rows = [i for i, lst in enumerate(lists) for _ in lst]
    cols = [col[c] for lst in lists for c in lst]
    m = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(item_ids), len(names))
    )
    m.sum_duplicates()
    m.data[:] = 1.0
    return m, names


def user_segments(
    users: pd.DataFrame | None, user_ids: np.ndarray, train: InteractionMatrix
) -> dict[str, np.ndarray]:
    """Fairness segments per user: gender, age band (when the users table has them) and
    activity (light/heavy by train interactions, split at the median)."""
    groups: dict[str, np.ndarray] = {"activity": M.activity_groups(np.diff(train.matrix.indptr))}
    if users is not None:
        u = _aligned(users, "user_id", user_ids, "users")
        if "gender" in u.columns and u["gender"].notna().any():
            groups["gender"] = np.array(
                [None if pd.isna(g) else str(g) for g in u["gender"]], dtype=object
            )
        if "age" in u.columns and u["age"].notna().any():
            ages = pd.to_numeric(u["age"], errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
            groups["age_band"] = M.age_bands(ages)
    return groups


def build_side_info(split: Split, tables: SideTables | None) -> SideInfo:
    """``SideInfo`` aligned with ``split``'s id maps: item categories, titles, user segments,
    and the users' and items' attributes (for the ranker's trees)."""
    tables = tables or SideTables()
    cats, names, titles = None, (), None
    if tables.items is not None:
        cats, names = item_category_matrix(tables.items, split.item_ids)
        aligned = _aligned(tables.items, "item_id", split.item_ids, "items")
        if "title" in aligned.columns:
            titles = tuple("" if pd.isna(t) else str(t) for t in aligned["title"])
    return SideInfo(
        item_categories=cats,
        category_names=names,
        item_titles=titles,
        user_groups=user_segments(tables.users, split.user_ids, split.train),
        interaction_days=interaction_days(split),
        interaction_ratings=interaction_ratings(split),
        split=split.protocol,
        # the raw tables hold static attributes only (no interaction counts): no leak
        user_attributes=None
        if tables.users is None
        else attributes(tables.users, "user_id", split.user_ids),
        item_attributes=None
        if tables.items is None
        else attributes(tables.items, "item_id", split.item_ids),
    )


def interaction_days(split: Split) -> sp.csr_matrix | None:
    """The newest day (days since the epoch) of each training interaction, aligned with
    ``split.train``; None when the split's rows carry no timestamp."""
    frame = split.train_frame
    if "timestamp" not in frame.columns or frame.empty:
        return None
    ts = pd.to_datetime(frame["timestamp"], utc=True)
    days = (ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy() / 86400.0
    rows = pd.Index(split.user_ids).get_indexer(frame["user_id"].astype(str))
    cols = pd.Index(split.item_ids).get_indexer(frame["item_id"].astype(str))
    ok = (rows >= 0) & (cols >= 0)
    latest = (
        pd.DataFrame({"r": rows[ok], "c": cols[ok], "d": days[ok]}).groupby(["r", "c"])["d"].max()
    )
    r, c = (latest.index.get_level_values(i).to_numpy() for i in (0, 1))
    return sp.csr_matrix((latest.to_numpy(), (r, c)), shape=split.train.matrix.shape)


def interaction_ratings(split: Split) -> sp.csr_matrix | None:
    """The mean rating of each rated training interaction, aligned with ``split.train``; None
    when the split's rows carry no rating (implicit-only data)."""
    frame = split.train_frame
    if "rating" not in frame.columns or frame.empty:
        return None
    values = pd.to_numeric(frame["rating"], errors="coerce").astype(float)
    finite = np.isfinite(values.to_numpy())
    rated = frame[finite]
    if rated.empty:
        return None
    rows = pd.Index(split.user_ids).get_indexer(rated["user_id"].astype(str))
    cols = pd.Index(split.item_ids).get_indexer(rated["item_id"].astype(str))
    ok = (rows >= 0) & (cols >= 0)
    mean = (
        pd.DataFrame({"r": rows[ok], "c": cols[ok], "v": values.to_numpy()[finite][ok]})
        .groupby(["r", "c"])["v"]
        .mean()
    )
    r, c = (mean.index.get_level_values(i).to_numpy() for i in (0, 1))
    # a rating of 0 is a value (0-10 scales): kept as an explicit entry, never eliminated
    return sp.csr_matrix((mean.to_numpy(), (r, c)), shape=split.train.matrix.shape)


# ---- scoring --------------------------------------------------------------------------------------
def _scores(model: Recommender, users: np.ndarray) -> np.ndarray:
    s = np.asarray(model.score(users), dtype=np.float64)
    if s.shape != (len(users), model.n_items_):
        raise ValueError(
            f"{model.name}.score returned shape {s.shape}, expected {(len(users), model.n_items_)}"
        )
    if np.isnan(s).any():
        raise ValueError(
            f"{model.name}.score returned NaN for {int(np.isnan(s).any(axis=1).sum())} users"
        )
    return s


def ranked_lists(
    model: Recommender,
    users: np.ndarray,
    exclude: sp.csr_matrix,
    test: sp.csr_matrix,
    n: int,
    block_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``n`` lists (``-1`` where fewer than n candidates remain) and per-user AUC.

    Train items (``exclude``) are removed before ranking; the full score rows are used for AUC
    one block at a time so memory stays O(block_size * n_items).
    """
    out = np.full((len(users), min(n, exclude.shape[1])), -1, dtype=np.int64)
    auc = np.empty(len(users))
    for start in range(0, len(users), block_size):
        block = users[start : start + block_size]
        s = _scores(model, block)
        ex = exclude[block]
        auc[start : start + len(block)] = M.auc_per_user(s, test[block], ex)
        s[np.repeat(np.arange(len(block)), np.diff(ex.indptr)), ex.indices] = -np.inf
        idx, sc = top_k(s, n)
        out[start : start + len(block)] = np.where(np.isneginf(sc), -1, idx)
    return out, auc


def fit_summary(model: Recommender) -> dict[str, float]:
    """``model.summary()`` as floats when the model has one (the ranker), else empty."""
    summary = getattr(model, "summary", None)
    return {str(n): float(v) for n, v in summary().items()} if callable(summary) else {}


# ---- one model --------------------------------------------------------------------------------------
def _resolve(spec: ModelSpec) -> tuple[str, Callable[..., Recommender]]:
    if isinstance(spec, str):
        return spec, model_factory(spec)
    name = getattr(spec, "name", None)
    return (name if isinstance(name, str) else getattr(spec, "__name__", "model")), spec


def fit_model(
    factory: Callable[..., Recommender] | str,
    split: Split,
    side: SideInfo,
    params: Mapping[str, Any] | None = None,
    progress: Callable[[Any], None] | None = None,
) -> tuple[Recommender, float]:
    """Fit a model (a registry family name or a factory) on ``split.train``; pass ``progress`` to
    models that report per-epoch progress (a ``callback`` parameter of ``fit``).

    Returns (model, seconds spent in ``fit``).
    """
    make = model_factory(factory) if isinstance(factory, str) else factory
    model = make(**dict(params or {}))
    kwargs: dict[str, Any] = {}
    if progress is not None and "callback" in inspect.signature(model.fit).parameters:
        kwargs["callback"] = progress
    t0 = time.perf_counter()
    model.fit(split.train, side, **kwargs)
    return model, time.perf_counter() - t0


def _topk_metrics(
    top: np.ndarray,
    auc: np.ndarray,
    rows: np.ndarray,
    split: Split,
    side: SideInfo,
    k: int,
) -> M.MetricSummary:
    """Metrics for the users ``rows`` whose lists are ``top`` (aligned with ``rows``)."""
    n_users = split.train.n_users
    full = np.full((n_users, top.shape[1]), -1, dtype=np.int64)
    full[rows] = top
    keep = np.zeros(n_users, dtype=bool)
    keep[rows] = True
    test = split.test.matrix.multiply(keep[:, None]).tocsr()  # only these users are evaluated
    summary = M.summarize(
        full,
        test,
        split.train.matrix,
        k=k,
        item_categories=side.item_categories,
        user_groups=side.user_groups,
    )
    auc_full = np.full(n_users, np.nan)
    auc_full[rows] = auc
    per_auc = auc_full[summary.rows]
    summary.values["auc"] = (
        float(np.nanmean(per_auc)) if (~np.isnan(per_auc)).any() else float("nan")
    )
    summary.per_user["auc"] = per_auc
    return summary


def evaluate_split(
    model: ModelSpec,
    split: Split,
    side: SideInfo,
    *,
    k: int = 10,
    params: Mapping[str, Any] | None = None,
    curve_k: int = 20,
) -> ModelEvaluation:
    """Fit ``model`` on ``split.train`` and measure it on ``split.test`` (no lift yet)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    name, factory = _resolve(model)
    fitted, fit_seconds = fit_model(factory, split, side, params)
    return measure(name, fitted, split, side, k=k, fit_seconds=fit_seconds, curve_k=curve_k)


def measure(
    name: str,
    fitted: Recommender,
    split: Split,
    side: SideInfo,
    *,
    k: int = 10,
    fit_seconds: float = float("nan"),
    curve_k: int = 20,
) -> ModelEvaluation:
    """Measure an already fitted ``model`` (fitted on ``split.train``) on ``split.test``."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    test_users = split.test_users()
    if split.candidates is not None:  # P3: rank the held-out item among sampled negatives
        t0 = time.perf_counter()
        cand = split.candidates[test_users]
        cand_scores = np.empty(cand.shape)
        for start in range(0, len(test_users), 1024):
            rows = slice(start, start + 1024)
            full = _scores(fitted, test_users[rows])
            cand_scores[rows] = np.take_along_axis(full, cand[rows], axis=1)
        ranks = M.sampled_ranks(cand_scores)
        score_seconds = time.perf_counter() - t0
        values = M.sampled_metrics(ranks, k, cand.shape[1])
        return ModelEvaluation(
            name,
            split.protocol,
            k,
            values,
            fit_seconds,
            score_seconds,
            params=fitted.params(),
            fit_summary=fit_summary(fitted),
        )

    cold = set(split.cold_users.tolist())
    warm_users = np.array([u for u in test_users if u not in cold], dtype=np.int64)
    n_list = max(k, curve_k)
    t0 = time.perf_counter()
    top, auc = ranked_lists(fitted, warm_users, split.train.matrix, split.test.matrix, n_list)
    score_seconds = time.perf_counter() - t0
    summary = _topk_metrics(top, auc, warm_users, split, side, k)
    sub = split.test.matrix[warm_users]
    curve = {
        "precision": [M.precision_at_k(top[:, :j], sub) for j in range(1, top.shape[1] + 1)],
        "recall": [M.recall_at_k(top[:, :j], sub) for j in range(1, top.shape[1] + 1)],
    }
    cold_values = None
    if len(cold):  # P2 cold start: the popularity fallback, reported separately
        cold_users = np.array(sorted(cold), dtype=np.int64)
        fallback = PopularityRecommender().fit(split.train)
        ctop, cauc = ranked_lists(
            fallback, cold_users, split.train.matrix, split.test.matrix, n_list
        )
        cold_values = _topk_metrics(ctop, cauc, cold_users, split, side, k).values
    return ModelEvaluation(
        model=name,
        protocol=split.protocol,
        k=k,
        metrics=summary.values,
        fit_seconds=fit_seconds,
        score_seconds=score_seconds,
        segments={g: dict(gap.means) for g, gap in summary.groups.items()},
        segment_counts={g: dict(gap.counts) for g, gap in summary.groups.items()},
        curve=curve,
        cold_start=cold_values,
        params=fitted.params(),
        fit_summary=fit_summary(fitted),
        per_user={
            f"{name}@{k}": np.asarray(summary.per_user[name], dtype=np.float64)
            for name in PAIRED_METRICS
        },
        per_user_rows=np.asarray(summary.rows, dtype=np.int64),
    )


def with_lift(evaluation: ModelEvaluation, baseline: ModelEvaluation) -> ModelEvaluation:
    """``evaluation`` with relative lifts over ``baseline`` for every accuracy metric."""
    lift: dict[str, float] = {}
    for metric, value in evaluation.metrics.items():
        if metric.split("@")[0] in LIFT_METRICS and metric in baseline.metrics:
            base = baseline.metrics[metric]
            lift[metric] = float(value / base - 1.0) if base > 0 else float("nan")
    return replace(evaluation, lift=lift)


def evaluate(
    model: ModelSpec,
    interactions: pd.DataFrame,
    protocol: str,
    side_info: SideTables | None = None,
    *,
    k: int = 10,
    params: Mapping[str, Any] | None = None,
    feedback: ImplicitFeedback | None = None,
) -> ModelEvaluation:
    """Split ``interactions`` under ``protocol``, fit and measure ``model`` (a registry name or
    a factory) and its lift over popularity under the same split."""
    report = evaluate_models(
        [model],
        interactions,
        [protocol],
        side_info,
        k=k,
        params={_resolve(model)[0]: dict(params or {})},
        feedback=feedback,
    )
    return report.evaluations[0]


def resolve_models(names: Sequence[str]) -> list[str]:
    """Expand ``["all"]`` to every registry entry and check the other names exist."""
    if list(names) == ["all"]:
        return sorted(MODEL_FACTORIES)
    for n in names:
        model_factory(n)
    return list(names)


def evaluate_models(
    models: Sequence[ModelSpec],
    interactions: pd.DataFrame,
    protocols: Sequence[str],
    side_info: SideTables | None = None,
    *,
    k: int = 10,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    protocol_params: Mapping[str, Mapping[str, Any]] | None = None,
    feedback: ImplicitFeedback | None = None,
    dataset: str = "interactions",
    progress: Callable[[str], None] | None = None,
) -> EvaluationReport:
    """Every model under every protocol; each protocol is split once and popularity is measured
    once per protocol as the lift baseline (and reported only when it is among ``models``).

    ``params``: model name -> hyper-parameters; ``protocol_params``: protocol name -> split
    parameters (e.g. ``{"loo-sampled": {"n_negatives": 50}}``).
    """
    if not models:
        raise ValueError("no models to evaluate")
    if not protocols:
        raise ValueError("no protocols to evaluate under")
    params = params or {}
    tables = side_info or SideTables()
    extra_users = list(tables.users["user_id"].astype(str)) if tables.users is not None else None
    extra_items = list(tables.items["item_id"].astype(str)) if tables.items is not None else None
    evaluations: list[ModelEvaluation] = []
    splits: dict[str, SplitSummary] = {}
    for protocol in protocols:
        split = make_split(
            protocol,
            interactions,
            feedback=feedback,
            user_ids=extra_users,
            item_ids=extra_items,
            **dict((protocol_params or {}).get(protocol, {})),
        )
        splits[protocol] = SplitSummary.of(split)
        side = build_side_info(split, tables)
        done: dict[str, ModelEvaluation] = {}
        for spec in [BASELINE, *[m for m in models if m != BASELINE]]:
            name = _resolve(spec)[0]
            if progress:
                progress(f"{protocol}: {name}")
            done[name] = evaluate_split(spec, split, side, k=k, params=params.get(name, {}))
        names = [_resolve(m)[0] for m in models]
        evaluations += [with_lift(done[n], done[BASELINE]) for n in names]
    return EvaluationReport(dataset, k, evaluations, splits)
