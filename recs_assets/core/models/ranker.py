"""A two-stage recommender: candidate generators, then a learned LightGBM LambdaRank ranker.

Stage one: the generator families (default EASE, ALS, RP3beta, hybrid LightFM) score every
item; their per-user z-scores summed give each user ``n_candidates`` candidates (seen items left
out). Stage two: a LambdaRank model orders the candidates by features of the pair:

- per generator: the raw score, the per-user z-score and the rank among the candidates;
- the item's popularity and the user's activity (log counts of training interactions);
- the user's affinity to the item's categories (share of the user's items in them), when the
  item categories are known;
- time, when the interactions carry days (``SideInfo.interaction_days``): the item's popularity
  inside the user's active period (widened by ``window_days``), its share of the item's whole
  history, and the distance in days between the user's and the item's median interaction days;
- ratings, when the interactions carry them (``SideInfo.interaction_ratings``, ``ratings``):
  the item's shrunk mean and user-centered mean rating, the user's mean and spread;
- the user's and the item's attributes (``SideInfo.user_attributes`` / ``item_attributes``, one
  column each, ``user.<name>`` / ``item.<name>``), when given and ``attributes`` is on: in the
  pipeline they are the feature store's user and item features, read from the newest snapshot
  that saw no held-out interaction (``datasets/feature_side.feature_store_attributes``); their
  interaction-derived columns only when that snapshot also predates the interactions the ranker
  learns from (``label_safe_attributes``). They are stored with the model: serving reads each
  id's attributes as of the fit.

The default EASE generator also reads the order of each user's interactions in time (when the
interactions carry days): their windows of ``SEQUENCE_WINDOW`` consecutive interactions join its
Gram matrix (``EASERecommender(window=...)``), so items consumed in one sitting pull on each
other; ML-100K P1 validation NDCG@10 of EASE alone 0.2608 -> 0.2692 (docs/models.md).

The ranker is trained on candidates shaped like those it will rank: the training interactions
are dealt into ``n_folds`` folds per user (default 3), each held out in turn while the generators
are fitted on the others, their candidates labelled by the held-out items; only then are the
generators refitted on all of train. (With ``n_folds=1``, one random ``holdout_fraction``.)
The holdout has the shape of the task (``holdout="auto"``): on training data split in time
(``SideInfo.split``, e.g. the temporal protocol P2) the newest ``holdout_fraction`` of the
interactions, so the ranker learns what comes next; the candidates are then each generator's
own picks in turn (``candidates="union"``: a generator the others outvote still brings its best
items) and a recent-popularity generator joins the default ones. The newest holdout is one
cut in time (``n_folds`` is then unused). On a random split (P1), the random folds and the
blend's top candidates (``"sum"``). On ML-100K P2 this took NDCG@10 from 0.1885 to 0.2709; the
three parts only work together (docs/models.md).
The trees learn corrections on top of a prior, not the order from scratch: the prior is a
weighted sum of the generators' per-user z-scores, its weights found by coordinate search on
NDCG@10 of the held-out candidates (``prior="fitted"``; ``"sum"``: equal weights; ``"none"``: no
prior). LambdaRank starts from the prior (LightGBM's ``init_score``) and stops early on a share of
the held-out users (``validation_fraction``), set aside before the weights are fitted; unless
the trees beat the prior on those users with confidence (``surely_better``), the ranker serves
the prior alone (``n_trees_`` is 0), its weights fitted again on every user.
The test split is never seen. State is npz arrays only (the booster as its text model in bytes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from recs_assets.core.metrics import ndcg_per_user
from recs_assets.core.models._helpers import (
    coordinate_search,
    csr_from_state,
    csr_state,
    days_on,
    fold_splits,
    holdout_split,
    load_nested,
    member_specs,
    nested_state,
    usable_members,
)
from recs_assets.core.models.als import ImplicitMFRecommender
from recs_assets.core.models.attributes import Attributes
from recs_assets.core.models.base import (
    InteractionMatrix,
    Recommender,
    RecommenderError,
    SideInfo,
    top_k,
)
from recs_assets.core.models.ease import EASERecommender
from recs_assets.core.models.lightfm_model import LightFMRecommender
from recs_assets.core.models.popularity import RecentPopularityRecommender
from recs_assets.core.models.rp3beta import RP3betaRecommender

GENERATOR_CLASSES: dict[str, type[Recommender]] = {
    cls.name: cls
    for cls in (
        EASERecommender,
        ImplicitMFRecommender,
        RP3betaRecommender,
        LightFMRecommender,
        RecentPopularityRecommender,
    )
}
# EASE's sequence windows: chosen on the ML-100K P1 validation split among 5 and 10
# interactions, weight 1 and 2 (docs/models.md); without interaction days it is plain EASE
SEQUENCE_WINDOW: dict[str, Any] = {"window": 5, "window_weight": 2.0}
DEFAULT_GENERATORS: tuple[dict[str, Any], ...] = (
    {"name": "ease", "params": dict(SEQUENCE_WINDOW)},
    {"name": "als", "params": {}},
    {"name": "rp3beta", "params": {}},
    {"name": "lightfm", "params": {"hybrid_items": True}},
)
NON_CANDIDATE = -1e6  # non-candidates sort below every candidate, in generator order
BLOCK = 512
TIE_BREAK = 1e-6
SINGLE_THREAD_ROWS = 10_000  # below this many rows, predict on one thread (see _predict_threads)
PRIORS = ("fitted", "sum", "none")
HOLDOUTS = ("auto", "random", "newest")
CANDIDATE_RULES = ("auto", "sum", "union")
# splits that cut the data in time: a ranker trained on one learns what comes next
TIME_SPLITS = ("temporal",)
RECENCY_GENERATOR: dict[str, Any] = {"name": "recent_popularity", "params": {}}
WEIGHT_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
PRIOR_K = 10
KEEP_Z = 1.645  # the trees are kept when their gain over the prior is above 0 at 95% (one-sided)


def group_ndcgs(scores: np.ndarray, labels: np.ndarray, k: int = PRIOR_K) -> np.ndarray:
    """NDCG@k of each group (NaN for a group without a positive), ``metrics.ndcg_per_user`` over
    groups: ``scores`` and binary ``labels`` are (groups, candidates); the ideal list is the
    group's labelled candidates; ``-inf`` scores rank last."""
    top, _ = top_k(scores, k)
    return ndcg_per_user(top, sp.csr_matrix(labels))


def group_ndcg(scores: np.ndarray, labels: np.ndarray, k: int = PRIOR_K) -> float:
    """Mean NDCG@k over the groups with a positive (as ``metrics.ndcg_at_k`` over users)."""
    per_group = group_ndcgs(scores, labels, k)
    has = ~np.isnan(per_group)
    return float(per_group[has].mean()) if has.any() else float("nan")


def validation_groups(
    group_users: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(validation, fitting) group indices: ``fraction`` of the users (at least one, never all)
    with all their groups (one per fold) on the validation side."""
    users = np.unique(group_users)
    if len(users) < 2:
        raise ValueError(f"{len(users)} user(s): a validation side needs 2 or more")
    n_val = min(max(int(round(len(users) * fraction)), 1), len(users) - 1)
    is_val = np.isin(group_users, np.random.default_rng(seed).permutation(users)[:n_val])
    return np.flatnonzero(is_val), np.flatnonzero(~is_val)


def newest_split(
    matrix: sp.csr_matrix, days: sp.csr_matrix, fraction: float
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(kept, held-out): the entries of ``matrix`` on or before the day that leaves
    ``fraction`` of them after it, and those after it (``days``: the day of each entry)."""
    m = sp.csr_matrix(matrix)
    m.eliminate_zeros()
    binary = m.copy()
    binary.data[:] = 1.0
    d = days_on(days, binary)
    if d.nnz != m.nnz:
        raise RecommenderError("ranker: the interaction days do not cover the training entries")
    cut = float(np.quantile(d.data, 1.0 - fraction))
    late = d.copy()
    late.data = (late.data > cut).astype(np.float64)
    if not late.data.any():  # the newest day holds more than the fraction: hold it out
        late.data = (d.data >= cut).astype(np.float64)
    if late.data.all():
        raise RecommenderError(
            "ranker: every training interaction is on one day; holdout='newest' needs two"
        )
    late.eliminate_zeros()
    held = m.multiply(late).tocsr()
    kept = (m - held).tocsr()
    kept.eliminate_zeros()
    return kept, held


def surely_better(a: np.ndarray, b: np.ndarray, z: float = KEEP_Z) -> bool:
    """Whether per-group values ``a`` beat ``b`` with confidence: the one-sided normal lower
    bound of their mean paired difference is above 0 (groups NaN in either are left out)."""
    d = (a - b)[~(np.isnan(a) | np.isnan(b))]
    if len(d) < 2:
        return False
    return bool(d.mean() - z * d.std(ddof=1) / np.sqrt(len(d)) > 0)


def fit_prior_weights(
    zs: np.ndarray,
    labels: np.ndarray,
    grid: Sequence[float] = WEIGHT_GRID,
    passes: int = 2,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Non-negative weights of the generators' z-scores (``zs``: groups x candidates x
    generators) maximising ``group_ndcg`` of their weighted sum, by coordinate search from equal
    weights; they sum to 1 (the prior is standardized, so only their ratios matter). Candidates
    where ``exclude`` is true (seen by the user) rank last."""

    def ndcg(w: np.ndarray) -> float:
        scores = zs @ w
        return group_ndcg(scores if exclude is None else np.where(exclude, -np.inf, scores), labels)

    weights, _ = coordinate_search(ndcg, zs.shape[2], grid, rounds=passes)
    return weights


def _zscore(s: np.ndarray) -> np.ndarray:
    std = s.std(axis=1, keepdims=True)
    return (s - s.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)


@dataclass(frozen=True)
class Context:
    """What the features read besides the generators: counts, categories and time, from train."""

    item_log_count: np.ndarray
    user_log_count: np.ndarray
    user_category_share: np.ndarray | None  # (n_users, n_categories)
    item_categories: sp.csr_matrix | None
    item_day_cum: np.ndarray | None  # (n_items, n_bins + 1) cumulative counts per time bin
    bin_edges: np.ndarray | None
    user_day_range: np.ndarray | None  # (n_users, 2): first and last day
    user_median_day: np.ndarray | None
    item_median_day: np.ndarray | None
    user_attributes: np.ndarray | None = None  # (n_users, n_user_attributes)
    item_attributes: np.ndarray | None = None  # (n_items, n_item_attributes)
    item_rating: np.ndarray | None = None  # (n_items, 2): shrunk mean rating, centered mean
    user_rating: np.ndarray | None = None  # (n_users, 2): mean rating, standard deviation


CONTEXT_ARRAYS: tuple[str, ...] = (
    "item_log_count",
    "user_log_count",
    "user_category_share",
    "item_day_cum",
    "bin_edges",
    "user_day_range",
    "user_median_day",
    "item_median_day",
    "user_attributes",
    "item_attributes",
    "item_rating",
    "user_rating",
)
RATING_FEATURES = (
    "item_rating_mean",
    "item_rating_centered",
    "user_rating_mean",
    "user_rating_std",
)
RATING_SHRINK = 5.0  # an item's mean rating counts as this many ratings at the global mean


def rating_stats(
    ratings: sp.csr_matrix, mask: sp.spmatrix, shrink: float = RATING_SHRINK
) -> tuple[np.ndarray, np.ndarray]:
    """(item (n_items, 2), user (n_users, 2)) rating statistics over the rated entries of
    ``ratings`` that ``mask`` stores (the part the features may read): per item the mean rating
    and the mean of the users' centered ratings (rating minus the user's mean), both shrunk
    toward the global value by ``shrink`` pseudo-ratings (an item nobody rated: the global mean
    and 0); per user the mean and the standard deviation of their ratings (NaN for a user who
    rated nothing). Everything NaN when nothing at all is rated."""
    coo = sp.coo_matrix(ratings)
    inside = np.asarray(sp.csr_matrix(mask)[coo.row, coo.col]).ravel() != 0
    r, c, v = coo.row[inside], coo.col[inside], coo.data[inside].astype(np.float64)
    n_users, n_items = ratings.shape
    user = np.full((n_users, 2), np.nan)
    item = np.full((n_items, 2), np.nan)
    if not len(v):
        return item, user
    u_n = np.bincount(r, minlength=n_users).astype(np.float64)
    u_sum = np.bincount(r, weights=v, minlength=n_users)
    u_sq = np.bincount(r, weights=v * v, minlength=n_users)
    rated = u_n > 0
    user[rated, 0] = u_sum[rated] / u_n[rated]
    user[rated, 1] = np.sqrt(np.maximum(u_sq[rated] / u_n[rated] - user[rated, 0] ** 2, 0.0))
    centered = v - user[r, 0]
    i_n = np.bincount(c, minlength=n_items).astype(np.float64)
    overall = float(v.mean())
    item[:, 0] = (np.bincount(c, weights=v, minlength=n_items) + shrink * overall) / (i_n + shrink)
    item[:, 1] = np.bincount(c, weights=centered, minlength=n_items) / (i_n + shrink)
    return item, user


def _median_days(m: sp.csr_matrix) -> np.ndarray:
    out = np.full(m.shape[0], np.nan)
    for r in range(m.shape[0]):
        d = m.data[m.indptr[r] : m.indptr[r + 1]]
        if len(d):
            out[r] = np.median(d)
    return out


def side_attributes(
    side: SideInfo | None, shape: tuple[int, int]
) -> tuple[Attributes | None, Attributes | None]:
    """The side's (user, item) attributes, each None when absent, without columns, or not
    aligned with the (n_users, n_items) ``shape`` (which raises)."""
    out: list[Attributes | None] = []
    for what, attrs, n in (
        ("user", None if side is None else side.user_attributes, shape[0]),
        ("item", None if side is None else side.item_attributes, shape[1]),
    ):
        if attrs is not None and attrs.values.shape[0] != n:
            raise RecommenderError(
                f"ranker: {attrs.values.shape[0]} {what} attribute rows for {n} {what}s"
            )
        out.append(attrs if attrs is not None and attrs.names else None)
    return out[0], out[1]


def label_safe_attributes(
    side: SideInfo | None, folds: Sequence[tuple[sp.csr_matrix, sp.csr_matrix]]
) -> SideInfo | None:
    """``side`` with the dynamic attributes (interaction counts of a feature-store snapshot)
    kept only when computed before the earliest interaction the ranker learns from (its
    held-out folds): otherwise they would count its own labels. Labels of unknown days (no
    ``interaction_days``) keep the static attributes only. The trees are fitted and served on
    the same columns."""
    if side is None or (side.user_attributes is None and side.item_attributes is None):
        return side
    earliest: float | None = None
    days = side.interaction_days
    if days is not None:
        firsts = []
        for _, held in folds:
            held_days = days_on(days, sp.csr_matrix(held) != 0)
            if held_days.nnz:
                firsts.append(float(held_days.data.min()))
        earliest = min(firsts) if firsts else None
    return replace(
        side,
        user_attributes=None
        if side.user_attributes is None
        else side.user_attributes.usable_before(earliest),
        item_attributes=None
        if side.item_attributes is None
        else side.item_attributes.usable_before(earliest),
    )


def build_context(
    train: sp.csr_matrix,
    side: SideInfo | None,
    window_days: float,
    n_bins: int = 256,
    attributes: bool = True,
) -> Context:
    binary = sp.csr_matrix(train, dtype=np.float32, copy=True)
    binary.data[:] = 1.0
    item_count = np.asarray(binary.sum(axis=0)).ravel()
    user_count = np.asarray(binary.sum(axis=1)).ravel()
    share = cats = None
    if side is not None and side.item_categories is not None:
        cats = sp.csr_matrix(side.item_categories, dtype=np.float32)
        share = np.asarray((binary @ cats).todense()) / np.maximum(user_count, 1)[:, None]
    cum = edges = user_range = user_median = item_median = None
    days = None if side is None else side.interaction_days
    if days is not None and days.shape == train.shape:
        days = days_on(days, binary)  # the training entries' days only
        if days.nnz:
            lo, hi = float(days.data.min()), float(days.data.max())
            edges = np.linspace(lo, hi + 1e-9, n_bins + 1)
            bins = np.clip(np.searchsorted(edges, days.data, side="right") - 1, 0, n_bins - 1)
            cols = days.tocoo().col
            hist = np.zeros((train.shape[1], n_bins))
            np.add.at(hist, (cols, bins), 1.0)
            cum = np.concatenate([np.zeros((train.shape[1], 1)), hist.cumsum(axis=1)], axis=1)
            first = np.full(train.shape[0], np.nan)
            last = np.full(train.shape[0], np.nan)
            for r in range(train.shape[0]):
                d = days.data[days.indptr[r] : days.indptr[r + 1]]
                if len(d):
                    first[r], last[r] = d.min() - window_days, d.max() + window_days
            user_range = np.stack([first, last], axis=1)
            user_median = _median_days(days)
            item_median = _median_days(days.T.tocsr())
    users, items = side_attributes(side, train.shape) if attributes else (None, None)
    item_rating = user_rating = None
    ratings = None if side is None else side.interaction_ratings
    if ratings is not None and ratings.shape == train.shape:
        item_rating, user_rating = rating_stats(ratings, binary)
    return Context(
        np.log1p(item_count),
        np.log1p(user_count),
        share,
        cats,
        cum,
        edges,
        user_range,
        user_median,
        item_median,
        None if users is None else users.values,
        None if items is None else items.values,
        item_rating,
        user_rating,
    )


class _Groups:
    """The ranker's training groups as they are built: per block of users, the candidates'
    features, labels and seen flags (users x candidates) and the users."""

    def __init__(self) -> None:
        self.xs: list[np.ndarray] = []
        self.ys: list[np.ndarray] = []
        self.seen: list[np.ndarray] = []
        self.users: list[np.ndarray] = []

    def add(self, x: np.ndarray, y: np.ndarray, seen: np.ndarray, users: np.ndarray) -> None:
        self.xs.append(x.reshape(y.shape[0], y.shape[1], -1))
        self.ys.append(y.astype(np.int32))
        self.seen.append(seen)
        self.users.append(users)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(features (groups, candidates, features), labels, seen, user of each group)."""
        return (
            np.concatenate(self.xs),
            np.concatenate(self.ys),
            np.concatenate(self.seen),
            np.concatenate(self.users),
        )


class RankerRecommender(Recommender):
    """Generators, then LightGBM LambdaRank over their candidates (see the module docstring).

    Args:
        generators: list of {"name": family, "params": {...}} among ``GENERATOR_CLASSES``.
        n_candidates: candidates per user from the generators.
        candidates: ``sum`` (the top of the summed z-scores), ``union`` (each generator's best
            items in turn) or ``auto`` (union with the newest holdout, else sum).
        holdout_fraction: share of each user's training interactions the ranker learns from.
        holdout: ``random``, ``newest`` (one cut in time; needs ``SideInfo.interaction_days``)
            or ``auto`` (newest on a split in time, else random; see the module docstring).
        n_folds: with the random holdout, above 1 the ranker learns from every training
            interaction: each of ``n_folds`` folds is held out in turn and the generators are
            fitted on the others (``n_folds`` fits of each generator, one more on all of train;
            ``holdout_fraction`` is then unused); 1: one random ``holdout_fraction``. Unused by
            the newest holdout (one cut in time).
        window_days: how far the user's active period is widened for the item-in-window counts.
        attributes: whether the trees read the side's user and item attributes.
        ratings: whether the trees read rating statistics of the training interactions
            (``SideInfo.interaction_ratings``: the item's shrunk mean and centered mean rating,
            the user's mean and spread); NaN columns on data without ratings.
        prior: what the trees start from: ``fitted`` (z-scores weighted by held-out NDCG@10),
            ``sum`` (equal weights) or ``none``.
        validation_fraction: share of the held-out users LightGBM stops early on (and the prior
            alone is compared with).
        early_stopping_rounds: trees without a gain on those users before LightGBM stops.
        n_estimators, learning_rate, num_leaves, min_child_samples: LightGBM's.
        seed: holdout (or folds) and LightGBM seed.
        num_threads: LightGBM threads (0: its default).
    """

    name = "ranker"

    def __init__(
        self,
        generators: Sequence[Mapping[str, Any]] | None = None,
        n_candidates: int = 100,
        candidates: str = "auto",
        holdout_fraction: float = 0.2,
        holdout: str = "auto",
        n_folds: int = 3,
        window_days: float = 30.0,
        attributes: bool = True,
        ratings: bool = True,
        prior: str = "fitted",
        validation_fraction: float = 0.2,
        early_stopping_rounds: int = 20,
        n_estimators: int = 100,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 50,
        seed: int = 42,
        num_threads: int = 0,
    ) -> None:
        super().__init__()
        self.generators = member_specs(
            self.name,
            "generator",
            DEFAULT_GENERATORS if generators is None else generators,
            GENERATOR_CLASSES,
        )
        # the defaults, passed or not (a refit from ``params()`` names them): auto may extend them
        self._default_generators = self.generators == member_specs(
            self.name, "generator", DEFAULT_GENERATORS, GENERATOR_CLASSES
        )
        if n_candidates < 1:
            raise RecommenderError(f"{self.name}: n_candidates must be >= 1")
        if not 0.0 < holdout_fraction < 1.0:
            raise RecommenderError(f"{self.name}: holdout_fraction must be in (0, 1)")
        self.n_candidates = int(n_candidates)
        if candidates not in CANDIDATE_RULES:
            raise RecommenderError(
                f"{self.name}: candidates must be one of {CANDIDATE_RULES}, got {candidates!r}"
            )
        self.candidates = candidates
        self.holdout_fraction = float(holdout_fraction)
        if holdout not in HOLDOUTS:
            raise RecommenderError(
                f"{self.name}: holdout must be one of {HOLDOUTS}, got {holdout!r}"
            )
        self.holdout = holdout
        if n_folds < 1:
            raise RecommenderError(f"{self.name}: n_folds must be >= 1")
        self.n_folds = int(n_folds)
        self.window_days = float(window_days)
        self.attributes = bool(attributes)
        self.ratings = bool(ratings)
        # whether the fitted trees read the rating columns (a model saved before they existed
        # did not: its booster has no such columns)
        self.rating_features_ = self.ratings
        if prior not in PRIORS:
            raise RecommenderError(f"{self.name}: prior must be one of {PRIORS}, got {prior!r}")
        self.prior = prior
        if not 0.0 < validation_fraction < 1.0:
            raise RecommenderError(f"{self.name}: validation_fraction must be in (0, 1)")
        self.validation_fraction = float(validation_fraction)
        if early_stopping_rounds < 1:
            raise RecommenderError(f"{self.name}: early_stopping_rounds must be >= 1")
        self.early_stopping_rounds = int(early_stopping_rounds)
        self.n_estimators = int(n_estimators)
        self.learning_rate = float(learning_rate)
        self.num_leaves = int(num_leaves)
        self.min_child_samples = int(min_child_samples)
        self.seed = int(seed)
        self.num_threads = int(num_threads)
        self.models_: list[Recommender] = []
        self.booster_: Any = None
        # what a fit resolved ``auto`` to (before a fit, and for a model saved before ``auto``
        # existed: the random holdout and the blend's candidates)
        self.holdout_ = "random" if holdout == "auto" else holdout
        self.candidates_ = "sum" if candidates == "auto" else candidates
        self.generators_: list[dict[str, Any]] = [dict(g) for g in self.generators]
        self.prior_weights_ = np.zeros(len(self.generators))
        self.n_trees_ = 0
        self.prior_ndcg_ = float("nan")  # held-out NDCG@10 of the prior alone (early-stop users)
        self.ranker_ndcg_ = float("nan")  # and of the prior plus the trees
        self.context_: Context | None = None
        self.attribute_names_: tuple[str, ...] = ()  # user.<name>..., item.<name>...
        self.train_: sp.csr_matrix = sp.csr_matrix((0, 0))

    # ---- features ---------------------------------------------------------------------------
    def generator_labels(self) -> list[str]:
        """One label per generator: its family, numbered from the second of a family on
        (``lightfm``, ``lightfm_2``), so two generators of one family keep their own features."""
        seen: dict[str, int] = {}
        labels = []
        for g in self.generators_:
            seen[g["name"]] = seen.get(g["name"], 0) + 1
            n = seen[g["name"]]
            labels.append(g["name"] if n == 1 else f"{g['name']}_{n}")
        return labels

    def feature_names(self) -> list[str]:
        names = []
        for label in self.generator_labels():
            names += [f"{label}_score", f"{label}_z", f"{label}_rank"]
        names += ["item_log_count", "user_log_count", "category_affinity"]
        names += ["item_in_user_window", "item_window_share", "median_day_gap"]
        if self.rating_features_:
            names += list(RATING_FEATURES)
        return names + list(self.attribute_names_)

    def _candidates(
        self, models: Sequence[Recommender], seen: sp.csr_matrix, users: np.ndarray
    ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray], np.ndarray]:
        """(candidates (len(users), n), per-generator raw scores, their per-user z-scores,
        blend) for ``users``."""
        raw = [np.asarray(m.score(users), dtype=np.float64) for m in models]
        zs = [_zscore(r) for r in raw]
        blend = sum(zs)
        assert isinstance(blend, np.ndarray)
        ex = seen[users]
        rows = np.repeat(np.arange(len(users)), np.diff(ex.indptr))
        masked = blend.copy()
        masked[rows, ex.indices] = -np.inf
        n = min(self.n_candidates, blend.shape[1])
        if self.candidates_ == "union":
            # each generator's best items in turn: an item's key is its best rank in any
            # generator (ties: the blend), so one generator's picks are not outvoted by the rest
            best = np.full(blend.shape, np.inf)
            for z in zs:
                zm = z.copy()
                zm[rows, ex.indices] = -np.inf
                top = np.argpartition(-zm, n - 1, axis=1)[:, :n]
                ranked = np.take_along_axis(
                    top, np.argsort(-np.take_along_axis(zm, top, axis=1), axis=1), axis=1
                )
                current = np.take_along_axis(best, ranked, axis=1)
                ranks = np.broadcast_to(np.arange(n, dtype=np.float64), ranked.shape)
                np.put_along_axis(best, ranked, np.minimum(current, ranks), axis=1)
            key = best - 1e-4 * np.clip(np.where(np.isfinite(masked), masked, 0.0), -1e3, 1e3)
            key[rows, ex.indices] = np.inf
            part = np.argpartition(key, n - 1, axis=1)[:, :n]
        else:
            part = np.argpartition(-masked, n - 1, axis=1)[:, :n]
        return part, raw, zs, blend

    def _features(
        self,
        users: np.ndarray,
        cand: np.ndarray,
        raw: list[np.ndarray],
        zs: list[np.ndarray],
        ctx: Context,
    ) -> np.ndarray:
        n_users, n = cand.shape
        cols: list[np.ndarray] = []
        for r, z in zip(raw, zs, strict=True):
            s = np.take_along_axis(r, cand, axis=1)
            cols += [s, np.take_along_axis(z, cand, axis=1)]
            cols.append(np.argsort(np.argsort(-s, axis=1), axis=1).astype(np.float64))
        cols.append(ctx.item_log_count[cand])
        cols.append(np.repeat(ctx.user_log_count[users][:, None], n, axis=1))
        if ctx.user_category_share is not None and ctx.item_categories is not None:
            cats = ctx.item_categories
            n_cats = np.maximum(np.diff(cats.indptr), 1)
            aff = np.asarray(cats @ ctx.user_category_share[users].T).T  # (users, items)
            aff = aff / n_cats[None, :]
            cols.append(np.take_along_axis(aff, cand, axis=1))
        else:
            cols.append(np.full((n_users, n), np.nan))
        if ctx.item_day_cum is not None and ctx.bin_edges is not None:
            assert ctx.user_day_range is not None and ctx.user_median_day is not None
            assert ctx.item_median_day is not None
            nb = ctx.item_day_cum.shape[1] - 1
            lo = np.clip(np.searchsorted(ctx.bin_edges, ctx.user_day_range[users, 0]) - 1, 0, nb)
            hi = np.clip(np.searchsorted(ctx.bin_edges, ctx.user_day_range[users, 1]), 0, nb)
            inside = ctx.item_day_cum[cand, hi[:, None]] - ctx.item_day_cum[cand, lo[:, None]]
            total = ctx.item_day_cum[cand, -1]
            cols.append(np.log1p(inside))
            cols.append(inside / np.maximum(total, 1.0))
            gap = ctx.user_median_day[users][:, None] - ctx.item_median_day[cand]
            cols.append(gap)
        else:
            cols += [np.full((n_users, n), np.nan)] * 3
        if self.rating_features_:
            if ctx.item_rating is not None and ctx.user_rating is not None:
                item_rating = ctx.item_rating[cand]
                cols += [item_rating[..., 0], item_rating[..., 1]]
                cols += [np.repeat(u[:, None], n, axis=1) for u in ctx.user_rating[users].T]
            else:
                cols += [np.full((n_users, n), np.nan)] * len(RATING_FEATURES)
        if ctx.user_attributes is not None:
            cols += [np.repeat(a[:, None], n, axis=1) for a in ctx.user_attributes[users].T]
        if ctx.item_attributes is not None:
            cols += list(np.moveaxis(ctx.item_attributes[cand], 2, 0))
        return np.stack([c.reshape(-1) for c in cols], axis=1)

    def _prior(self, zc: np.ndarray) -> np.ndarray:
        """The prior of candidates whose generator z-scores are ``zc`` (users x candidates x
        generators): their weighted sum, standardized over each user's candidates so that
        LambdaRank's pairwise gradients are not saturated from the first tree."""
        return _zscore(zc @ self.prior_weights_)

    def _prior_weights(self, zs: np.ndarray, labels: np.ndarray, seen: np.ndarray) -> np.ndarray:
        if self.prior == "fitted":
            return fit_prior_weights(zs, labels, exclude=seen)
        return np.full(zs.shape[2], 1.0 if self.prior == "sum" else 0.0)

    # ---- training -----------------------------------------------------------------------------
    def _resolve_task(self, side: SideInfo | None) -> None:
        """Settle the ``auto`` choices on the training data: trained on a split in time (with
        the interactions' days known), the ranker learns the next interactions (the newest
        holdout), its candidates are each generator's own picks in turn, and a recent-
        popularity generator joins the default ones; otherwise a random holdout and the
        blend's candidates."""
        in_time = (
            side is not None and side.split in TIME_SPLITS and side.interaction_days is not None
        )
        holdout = self.holdout
        if holdout == "auto":
            holdout = "newest" if in_time else "random"
        candidates = self.candidates
        if candidates == "auto":
            candidates = "union" if holdout == "newest" else "sum"
        generators = [dict(g) for g in self.generators]
        if holdout == "newest" and self._default_generators:
            generators.append(dict(RECENCY_GENERATOR))
        # the requested values stay as they are (params(), a refit on other data resolves anew)
        self.holdout_, self.candidates_ = holdout, candidates
        self.generators_ = usable_members(generators, side)

    def _new_generators(self) -> list[Recommender]:
        return [GENERATOR_CLASSES[g["name"]](**g["params"]) for g in self.generators_]

    def _folds(
        self, matrix: sp.csr_matrix, side: SideInfo | None = None
    ) -> list[tuple[sp.csr_matrix, sp.csr_matrix]]:
        """(kept, held-out) pairs: with ``n_folds`` > 1 every training interaction held out
        once, in one of ``n_folds`` folds, else one random holdout of ``holdout_fraction``; with
        ``holdout="newest"`` (and the interactions' days known) the newest ``holdout_fraction``
        of the interactions, one cut in time for every user."""
        if self.holdout_ == "newest":
            days = None if side is None else side.interaction_days
            if days is None or days.shape != matrix.shape:
                raise RecommenderError(
                    f"{self.name}: holdout='newest' needs the days of the training "
                    "interactions (SideInfo.interaction_days); use holdout='random'"
                )
            return [newest_split(matrix, days, self.holdout_fraction)]
        if self.n_folds == 1:
            return [holdout_split(matrix, self.holdout_fraction, self.seed)]
        return fold_splits(matrix, self.n_folds, self.seed)

    def _training_groups(
        self,
        train: InteractionMatrix,
        side: SideInfo | None,
        kept: sp.csr_matrix,
        held: sp.csr_matrix,
        out: _Groups,
    ) -> None:
        """Fit the generators on ``kept``; append the features and labels (``held``) of their
        candidates to ``out``, one group per user with a held-out item among them."""
        part = train.with_matrix(kept)
        models = [m.fit(part, side) for m in self._new_generators()]
        ctx = build_context(kept, side, self.window_days, attributes=self.attributes)
        held = sp.csr_matrix(held)
        users = np.flatnonzero(np.diff(held.indptr) > 0)
        kept_csr = sp.csr_matrix(kept)
        for start in range(0, len(users), BLOCK):
            block = users[start : start + BLOCK]
            cand, raw, zs, _ = self._candidates(models, kept_csr, block)
            truth = np.asarray(held[block].todense())
            labels = np.take_along_axis(truth, cand, axis=1) > 0
            has = labels.any(axis=1)
            if not has.any():
                continue
            feats = self._features(
                block[has], cand[has], [r[has] for r in raw], [z[has] for z in zs], ctx
            )
            seen = np.take_along_axis(np.asarray(kept_csr[block].todense()), cand, axis=1) > 0
            out.add(feats, labels[has], seen[has], block[has])

    def fit(self, train: InteractionMatrix, side: SideInfo | None = None) -> Self:
        import lightgbm as lgb

        self._check_train(train)
        self._resolve_task(side)
        self.rating_features_ = self.ratings
        folds = self._folds(train.matrix, side)
        side = label_safe_attributes(side, folds)
        users, items = (
            side_attributes(side, train.matrix.shape) if self.attributes else (None, None)
        )
        self.attribute_names_ = tuple(
            [f"user.{n}" for n in (users.names if users else ())]
            + [f"item.{n}" for n in (items.names if items else ())]
        )
        data = _Groups()
        for kept, held in folds:
            if held.nnz:  # a fold of users with too few interactions may hold nothing out
                self._training_groups(train, side, kept, held, data)
        if not data.xs:
            raise RecommenderError(
                f"{self.name}: no held-out interaction is among the generators' candidates; "
                "raise n_candidates or use more data"
            )
        x3, y3, seen, group_users = data.arrays()
        if len(np.unique(group_users)) < 2:
            raise RecommenderError(
                f"{self.name}: {len(np.unique(group_users))} user(s) with a held-out item among "
                "the candidates; the ranker needs 2 or more (use more data or raise n_candidates)"
            )
        val, fit_ = validation_groups(group_users, self.validation_fraction, self.seed)
        zs = x3[:, :, [3 * g + 1 for g in range(len(self.generators_))]]
        weights = self._prior_weights(zs[fit_], y3[fit_], seen[fit_])
        prior = _zscore(zs @ weights)
        f = x3.shape[2]

        def dataset(rows: np.ndarray, **kw: Any) -> Any:
            # candidates the user has seen are left out: serving never ranks them
            unseen = ~seen[rows]
            return lgb.Dataset(
                x3[rows][unseen],
                y3[rows][unseen],
                group=unseen.sum(axis=1),
                init_score=prior[rows][unseen],
                feature_name=self.feature_names(),
                **kw,
            )

        fit_set = dataset(fit_)
        params = {
            "objective": "lambdarank",
            "metric": "ndcg",
            "eval_at": [PRIOR_K],
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples,
            "seed": self.seed,
            "verbose": -1,
            **({"num_threads": self.num_threads} if self.num_threads else {}),
        }
        self.booster_ = lgb.train(
            params,
            fit_set,
            num_boost_round=self.n_estimators,
            valid_sets=[dataset(val, reference=fit_set)],
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
        )
        best = int(self.booster_.best_iteration or self.booster_.num_trees())
        trees = self.booster_.predict(x3[val].reshape(-1, f), num_iteration=best).reshape(
            len(val), -1
        )
        hidden = seen[val]
        with_trees = group_ndcgs(np.where(hidden, -np.inf, prior[val] + trees), y3[val])
        self.ranker_ndcg_ = float(np.nanmean(with_trees))
        if self.prior == "none":  # the trees are all there is to serve
            self.prior_ndcg_, self.n_trees_, self.prior_weights_ = float("nan"), best, weights
        else:
            alone = group_ndcgs(np.where(hidden, -np.inf, prior[val]), y3[val])
            self.prior_ndcg_ = float(np.nanmean(alone))
            # the trees are kept only when they beat the prior on the held-out users with
            # confidence; else the prior alone is served, its weights fitted on every user
            if surely_better(with_trees, alone):
                self.n_trees_, self.prior_weights_ = best, weights
            else:
                self.n_trees_, self.prior_weights_ = 0, self._prior_weights(zs, y3, seen)
        self.models_ = [m.fit(train, side) for m in self._new_generators()]
        self.context_ = build_context(
            train.matrix, side, self.window_days, attributes=self.attributes
        )
        self.train_ = sp.csr_matrix(train.matrix)
        self._fitted = True
        return self

    def feature_importance(self) -> dict[str, float]:
        """Total gain of each feature in the trees the ranker serves (logged with every run);
        every gain is 0 when it serves the prior alone."""
        self._check_fitted()
        names = self.booster_.feature_name()
        if not self.n_trees_:
            return dict.fromkeys(names, 0.0)
        gains = self.booster_.feature_importance(importance_type="gain", iteration=self.n_trees_)
        return {n: float(g) for n, g in zip(names, gains, strict=True)}

    def summary(self) -> dict[str, float]:
        """The prior's weight per generator, the trees served, and NDCG@10 of the prior alone
        and with the trees on the held-out users LightGBM stopped on."""
        self._check_fitted()
        weights = {
            f"prior_weight.{label}": float(w)
            for label, w in zip(self.generator_labels(), self.prior_weights_, strict=True)
        }
        return {
            **weights,
            "trees": float(self.n_trees_),
            "held_out_ndcg_prior": self.prior_ndcg_,
            "held_out_ndcg_ranker": self.ranker_ndcg_,
        }

    # ---- scoring ------------------------------------------------------------------------------
    def _predict_threads(self, rows: int) -> int:
        """LightGBM threads for predicting ``rows`` candidate rows: one below
        ``SINGLE_THREAD_ROWS`` (one request's candidates: waking OpenMP threads costs more than
        the trees; measured on ML-100K, one user: p50 2.65 -> 1.42 ms, p99 12.3 -> 3.2 ms),
        else ``num_threads`` (0: LightGBM's default)."""
        return 1 if rows < SINGLE_THREAD_ROWS else self.num_threads

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        users = self._check_users(users)
        assert self.context_ is not None
        out = np.empty((len(users), self.n_items_))
        for start in range(0, len(users), BLOCK):
            block = users[start : start + BLOCK]
            cand, raw, zs, blend = self._candidates(self.models_, self.train_, block)
            zc = np.stack([np.take_along_axis(z, cand, axis=1) for z in zs], axis=2)
            pred = self._prior(zc)
            if self.n_trees_:  # the pair features are read only by the trees
                feats = self._features(block, cand, raw, zs, self.context_)
                pred = pred + self.booster_.predict(
                    feats,
                    num_iteration=self.n_trees_,
                    num_threads=self._predict_threads(len(feats)),
                ).reshape(cand.shape)
            # trees predict in steps: candidates in one step keep the generators' order
            pred = pred + TIE_BREAK * np.take_along_axis(blend, cand, axis=1)
            s = NON_CANDIDATE + blend
            np.put_along_axis(s, cand, pred, axis=1)
            out[start : start + len(block)] = s
        return out if items is None else out[:, self._check_items(items)]

    # ---- persistence --------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {
            "generators": self.generators,
            "n_candidates": self.n_candidates,
            "candidates": self.candidates,
            "holdout_fraction": self.holdout_fraction,
            "holdout": self.holdout,
            "n_folds": self.n_folds,
            "window_days": self.window_days,
            "attributes": self.attributes,
            "ratings": self.ratings,
            "prior": self.prior,
            "validation_fraction": self.validation_fraction,
            "early_stopping_rounds": self.early_stopping_rounds,
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "seed": self.seed,
            "num_threads": self.num_threads,
        }

    def _state(self) -> dict[str, np.ndarray]:
        assert self.context_ is not None
        out: dict[str, np.ndarray] = {
            "booster": np.frombuffer(self.booster_.model_to_string().encode(), dtype=np.uint8),
            **csr_state("train", self.train_),
            "prior_weights": self.prior_weights_,
            "n_trees": np.array([self.n_trees_]),
            "held_out_ndcg": np.array([self.prior_ndcg_, self.ranker_ndcg_]),
            "attribute_names": np.array(self.attribute_names_, dtype=np.str_),
            "rating_features": np.array([self.rating_features_]),
            "resolved": np.array(
                [
                    json.dumps(
                        {
                            "holdout": self.holdout_,
                            "candidates": self.candidates_,
                            "generators": self.generators_,
                        }
                    )
                ],
                dtype=np.str_,
            ),
        }
        for name in CONTEXT_ARRAYS:
            value = getattr(self.context_, name)
            if value is not None:
                out[f"ctx/{name}"] = value
        if self.context_.item_categories is not None:
            out.update(csr_state("ctx/item_categories", self.context_.item_categories))
        return {**out, **nested_state(self.models_, "g")}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        import lightgbm as lgb

        self.booster_ = lgb.Booster(model_str=state["booster"].tobytes().decode())
        if "resolved" in state:
            resolved = json.loads(str(state["resolved"][0]))
            self.holdout_, self.candidates_ = resolved["holdout"], resolved["candidates"]
            self.generators_ = [dict(g) for g in resolved["generators"]]
        self.train_ = csr_from_state("train", state)
        if "prior_weights" in state:
            self.prior_weights_ = np.asarray(state["prior_weights"], dtype=np.float64)
            self.n_trees_ = int(state["n_trees"][0])
            self.prior_ndcg_, self.ranker_ndcg_ = (float(v) for v in state["held_out_ndcg"])
        else:  # saved before the prior existed: every tree, no prior (what it served then)
            self.prior_weights_ = np.zeros(len(self.generators_))
            self.n_trees_ = int(self.booster_.num_trees())
        self.rating_features_ = (
            bool(state["rating_features"][0]) if "rating_features" in state else False
        )
        names = state.get("attribute_names")
        self.attribute_names_ = () if names is None else tuple(str(n) for n in names)
        arrays = {name: state.get(f"ctx/{name}") for name in CONTEXT_ARRAYS}
        cats = (
            csr_from_state("ctx/item_categories", state)
            if "ctx/item_categories_shape" in state
            else None
        )
        self.context_ = Context(item_categories=cats, **arrays)  # type: ignore[arg-type]
        self.models_ = self._new_generators()
        load_nested(self.models_, state, "g", (self.n_users_, self.n_items_))
