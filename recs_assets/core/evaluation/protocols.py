"""Train/test splits for the evaluation protocols of ``PROTOCOL.md``: pure pandas -> ``Split``.

- P1 ``stratified_split``: shuffle each user's rows with seed 42 and put the first 75%
  (``round``) of them in train, the rest in test.
- P2 ``temporal_split``: one global cut-off time; the last 20% of interactions are test.
- P3 ``loo_sampled``: each user's latest interaction is test, ranked against 100 sampled items
  the user never interacted with.
- ``validation_split``: the same protocol applied again to a split's train part (for tuning).

All functions take an interactions frame in the canonical Phase 1 schema
(``recs_assets/core/phase1/schema.py``; only ``user_id``, ``item_id``, ``timestamp`` and, when the
feedback rule needs them, ``event_type`` and ``rating`` are read), never mutate it, and return a
``Split`` whose train and test matrices share id maps covering every user and item of the input.

Rows are first reduced to positive interactions by an ``ImplicitFeedback`` rule and deduplicated
to one row per (user, item) pair (the earliest), so a pair can never be in train and test at once.
Where a rule needs an order among equal keys (rows of one user before shuffling, equal
timestamps) the frame's row order decides, so a source must keep a stable order (the MovieLens
loader keeps ``u.data``'s file order).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from recs_assets.core.models.base import InteractionMatrix

WEIGHT_COL = "weight"


@dataclass(frozen=True)
class ImplicitFeedback:
    """Which rows count as positive interactions and what they weigh.

    Attributes:
        positive_events: event types that count; None means every event type (MovieLens: every
            rating is a positive, as P1 requires).
        min_rating: drop rows whose rating is below this; None keeps every row (P1 default:
            ratings are not a filter).
        weight: "binary" (1.0 per pair) or "rating" (the rating value as the matrix weight).
    """

    positive_events: tuple[str, ...] | None = None
    min_rating: float | None = None
    weight: Literal["binary", "rating"] = "binary"

    def __post_init__(self) -> None:
        if self.weight not in ("binary", "rating"):
            raise ValueError(f"weight must be 'binary' or 'rating', got {self.weight!r}")


@dataclass(frozen=True)
class Split:
    """A train/test split with shared id maps.

    Attributes:
        protocol: protocol name ("stratified", "temporal", "loo-sampled").
        train: users x items training matrix (all users and items of the input).
        test: held-out matrix with the same id maps as ``train``.
        train_frame: positive training rows (input columns + ``weight``), input order and index.
        test_frame: positive test rows, likewise.
        cold_users: indices of users with test rows but no training row (P2 cold start).
        candidates: P3 only: (n_users, 1 + n_negatives) item indices to rank per user, the held
            out item first; rows of users without a test item are -1.
        feedback: the rule used to pick positives.
        params: the protocol's parameters (ratio, seed, ...), reused by ``validation_split``.
    """

    protocol: str
    train: InteractionMatrix
    test: InteractionMatrix
    train_frame: pd.DataFrame
    test_frame: pd.DataFrame
    cold_users: np.ndarray
    candidates: np.ndarray | None = None
    feedback: ImplicitFeedback = field(default_factory=ImplicitFeedback)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def user_ids(self) -> np.ndarray:
        return self.train.user_ids

    @property
    def item_ids(self) -> np.ndarray:
        return self.train.item_ids

    def test_users(self) -> np.ndarray:
        """Indices of users with at least one test item."""
        return np.flatnonzero(np.diff(self.test.matrix.indptr) > 0)


# ---- shared steps ---------------------------------------------------------------------------
def _require(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(
            f"{what}: interactions frame lacks column(s) {missing}; has {list(df.columns)}"
        )


def _id_order(ids: Sequence[str]) -> np.ndarray:
    """Distinct ids, numerically sorted when all are integers ("2" before "10"), else sorted."""
    uniq = sorted({str(i) for i in ids})
    if uniq and all(u.isdigit() for u in uniq):
        uniq.sort(key=int)
    return np.array(uniq, dtype=object)


def positive_interactions(interactions: pd.DataFrame, feedback: ImplicitFeedback) -> pd.DataFrame:
    """Rows that count as positives under ``feedback``, one per (user, item): the earliest.

    Returns a copy in input order (original index kept) with an added float ``weight`` column.
    Raises ``ValueError`` on an empty result, null ids, or NaN ratings when ratings are used.
    """
    _require(interactions, ["user_id", "item_id", "timestamp"], "positive_interactions")
    if interactions["user_id"].isna().any() or interactions["item_id"].isna().any():
        raise ValueError(
            f"interactions hold {int(interactions['user_id'].isna().sum())} null user ids and "
            f"{int(interactions['item_id'].isna().sum())} null item ids"
        )
    if interactions["timestamp"].isna().any():
        raise ValueError(
            f"interactions hold {int(interactions['timestamp'].isna().sum())} null timestamps"
        )
    keep = np.ones(len(interactions), dtype=bool)
    if feedback.positive_events is not None:
        _require(interactions, ["event_type"], "positive_events")
        keep &= interactions["event_type"].isin(feedback.positive_events).to_numpy()
    needs_rating = feedback.min_rating is not None or feedback.weight == "rating"
    if needs_rating:
        _require(interactions, ["rating"], "rating feedback")
        rating = interactions["rating"].to_numpy(dtype=np.float64, na_value=np.nan)
        n_nan = int(np.isnan(rating[keep]).sum())
        if n_nan:
            raise ValueError(
                f"{n_nan} positive rows have no rating but the feedback rule uses ratings"
            )
        if feedback.min_rating is not None:
            keep &= rating >= feedback.min_rating
    df = interactions[keep]
    if df.empty:
        raise ValueError(
            f"no positive interactions among {len(interactions)} rows under {feedback}"
        )
    # earliest row per (user, item); a stable sort keeps input order among equal timestamps
    by_time = np.argsort(time_keys(df), kind="stable")
    dup_sorted = df[["user_id", "item_id"]].iloc[by_time].duplicated(keep="first").to_numpy()
    dup = np.empty(len(df), dtype=bool)
    dup[by_time] = dup_sorted
    out = df[~dup].copy()
    out[WEIGHT_COL] = (
        out["rating"].to_numpy(dtype=np.float64) if feedback.weight == "rating" else 1.0
    )
    return out


def time_keys(interactions: pd.DataFrame) -> np.ndarray:
    """The ``timestamp`` column as sortable int64 (nanoseconds since the epoch for datetimes)."""
    ts = interactions["timestamp"]
    if pd.api.types.is_datetime64_any_dtype(ts):
        return ts.to_numpy(dtype="datetime64[ns]").view(np.int64)
    if pd.api.types.is_numeric_dtype(ts):
        return ts.to_numpy(dtype=np.int64)
    raise ValueError(f"timestamp column must be datetime or numeric, got dtype {ts.dtype}")


def _id_maps(
    interactions: pd.DataFrame, user_ids: Sequence[str] | None, item_ids: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    # distinct values first: a 10-million-row frame holds far fewer ids than rows
    users = [str(u) for u in pd.unique(interactions["user_id"])] + [str(u) for u in user_ids or []]
    items = [str(i) for i in pd.unique(interactions["item_id"])] + [str(i) for i in item_ids or []]
    return _id_order(users), _id_order(items)


def _build(
    protocol: str,
    pos: pd.DataFrame,
    in_test: np.ndarray,
    users: np.ndarray,
    items: np.ndarray,
    feedback: ImplicitFeedback,
    params: dict[str, Any],
    candidates: np.ndarray | None = None,
) -> Split:
    train_frame, test_frame = pos[~in_test], pos[in_test]
    train = InteractionMatrix.from_frame(
        train_frame, user_ids=users, item_ids=items, weight_col=WEIGHT_COL
    )
    test = InteractionMatrix.from_frame(
        test_frame, user_ids=users, item_ids=items, weight_col=WEIGHT_COL
    )
    has_train = np.diff(train.matrix.indptr) > 0
    has_test = np.diff(test.matrix.indptr) > 0
    cold = np.flatnonzero(has_test & ~has_train)
    return Split(protocol, train, test, train_frame, test_frame, cold, candidates, feedback, params)


def _user_codes(pos: pd.DataFrame, users: np.ndarray) -> np.ndarray:
    return pd.Index(users).get_indexer(pos["user_id"].astype(str))


# ---- P1 -------------------------------------------------------------------------------------
def stratified_split(
    interactions: pd.DataFrame,
    *,
    ratio: float = 0.75,
    seed: int = 42,
    shuffle: Literal["global", "per_user"] = "global",
    feedback: ImplicitFeedback | None = None,
    user_ids: Sequence[str] | None = None,
    item_ids: Sequence[str] | None = None,
) -> Split:
    """P1: shuffle every user's rows with ``seed``; the first ``round(ratio * n)`` are train.

    ``shuffle="global"`` (default) shuffles all positive rows at once with
    ``np.random.RandomState(seed).permutation`` (what ``DataFrame.sample(frac=1,
    random_state=seed)`` does) and keeps each user's rows in that shuffled order; this is the
    split behind the reference numbers of ``PROTOCOL.md`` (popularity precision@10 0.2236 vs
    0.2231, NDCG@10 0.2457 vs 0.2454, coverage 0.029). ``shuffle="per_user"`` draws a fresh
    ``RandomState(seed).permutation(n)`` per user over the user's rows in input order, exactly
    Microsoft Recommenders' ``python_stratified_split`` (popularity 0.2267 / 0.2510).

    ``round`` is half-to-even, as Python's. The train size is clamped to [1, n - 1] so every
    user with two or more rows is in both parts (never triggered at 0.75 for users with >= 3
    rows); a user with a single row stays in train only.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    if shuffle not in ("global", "per_user"):
        raise ValueError(f"shuffle must be 'global' or 'per_user', got {shuffle!r}")
    feedback = feedback or ImplicitFeedback()
    pos = positive_interactions(interactions, feedback)
    users, items = _id_maps(interactions, user_ids, item_ids)
    codes = _user_codes(pos, users)
    n_rows = len(codes)
    sizes = np.bincount(codes, minlength=len(users))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n_train = np.round(ratio * sizes).astype(np.int64)
    n_train = np.where(sizes <= 1, sizes, np.clip(n_train, 1, np.maximum(sizes - 1, 1)))
    if shuffle == "global":
        shuffled_pos = np.empty(n_rows, dtype=np.int64)
        shuffled_pos[np.random.RandomState(seed).permutation(n_rows)] = np.arange(n_rows)
        order = np.lexsort((shuffled_pos, codes))  # by user, then shuffled position
        rank_sorted = np.arange(n_rows) - np.repeat(starts, sizes)
    else:
        order = np.argsort(codes, kind="stable")  # by user, input order inside
        within = np.arange(n_rows) - np.repeat(starts, sizes)
        size_of_row = sizes[codes[order]]
        rank_sorted = np.empty(n_rows, dtype=np.int64)
        for n in np.unique(size_of_row):
            perm = np.random.RandomState(seed).permutation(int(n))
            rank = np.empty(int(n), dtype=np.int64)
            rank[perm] = np.arange(int(n))  # rank[r]: where row r lands after the shuffle
            sel = size_of_row == n
            rank_sorted[sel] = rank[within[sel]]
    in_test = np.empty(n_rows, dtype=bool)
    in_test[order] = rank_sorted >= n_train[codes[order]]
    return _build(
        "stratified",
        pos,
        in_test,
        users,
        items,
        feedback,
        {"ratio": ratio, "seed": seed, "shuffle": shuffle},
    )


# ---- P2 -------------------------------------------------------------------------------------
def temporal_split(
    interactions: pd.DataFrame,
    *,
    test_share: float = 0.2,
    feedback: ImplicitFeedback | None = None,
    user_ids: Sequence[str] | None = None,
    item_ids: Sequence[str] | None = None,
) -> Split:
    """P2: one global cut-off; rows at or after it are test, earlier rows train.

    The cut-off is the timestamp of the row at position ``n - round(test_share * n)`` in time
    order; every row with that timestamp or later is test, so no instant straddles the cut (test
    may hold slightly more than ``test_share`` when timestamps tie). Users with test rows and no
    train row are ``cold_users``.
    """
    if not 0.0 < test_share < 1.0:
        raise ValueError(f"test_share must be in (0, 1), got {test_share}")
    feedback = feedback or ImplicitFeedback()
    pos = positive_interactions(interactions, feedback)
    users, items = _id_maps(interactions, user_ids, item_ids)
    ts = time_keys(pos)
    n = len(pos)
    n_test = max(1, round(test_share * n))
    if n_test >= n:
        raise ValueError(f"temporal split of {n} positive rows leaves no training row")
    cutoff = np.sort(ts, kind="stable")[n - n_test]
    in_test = ts >= cutoff
    if in_test.all():
        raise ValueError(
            f"every row is at or after the cut-off {cutoff}: timestamps do not separate train and test"
        )
    return _build(
        "temporal",
        pos,
        in_test,
        users,
        items,
        feedback,
        {"test_share": test_share, "cutoff": int(cutoff)},
    )


# ---- P3 -------------------------------------------------------------------------------------
def sample_negatives(seen: Any, users: np.ndarray, n_negatives: int, seed: int) -> np.ndarray:
    """Per user in ``users``, ``n_negatives`` distinct item indices not in row ``seen[u]``.

    Uniform without replacement: each (user, item) gets a random key from
    ``np.random.default_rng(seed)``, seen items get +inf, and the ``n_negatives`` smallest keys
    win. Raises when a user has fewer unseen items than ``n_negatives``.
    """
    seen = seen.tocsr()
    n_items = seen.shape[1]
    unseen = n_items - np.diff(seen.indptr)[users]
    if (unseen < n_negatives).any():
        bad = users[unseen < n_negatives][:5].tolist()
        raise ValueError(
            f"{int((unseen < n_negatives).sum())} users (e.g. indices {bad}) have fewer than "
            f"{n_negatives} items they never interacted with"
        )
    rng = np.random.default_rng(seed)
    out = np.empty((len(users), n_negatives), dtype=np.int64)
    block = max(1, 2_000_000 // max(n_items, 1))
    for start in range(0, len(users), block):
        u = users[start : start + block]
        keys = rng.random((len(u), n_items))
        s = seen[u]
        keys[np.repeat(np.arange(len(u)), np.diff(s.indptr)), s.indices] = np.inf
        part = np.argpartition(keys, n_negatives - 1, axis=1)[:, :n_negatives]
        order = np.argsort(np.take_along_axis(keys, part, axis=1), axis=1)
        out[start : start + len(u)] = np.take_along_axis(part, order, axis=1)
    return out


def loo_sampled(
    interactions: pd.DataFrame,
    *,
    n_negatives: int = 100,
    seed: int = 42,
    feedback: ImplicitFeedback | None = None,
    user_ids: Sequence[str] | None = None,
    item_ids: Sequence[str] | None = None,
) -> Split:
    """P3: each user's latest positive row is test; rank it among sampled unseen items.

    Latest = last in (timestamp, input order). Users with a single positive row keep it in
    train (and get no test item). Negatives are items the user has no row for at all in the
    input (any event type), sampled by ``sample_negatives`` with ``seed``.
    """
    if n_negatives < 1:
        raise ValueError(f"n_negatives must be >= 1, got {n_negatives}")
    feedback = feedback or ImplicitFeedback()
    pos = positive_interactions(interactions, feedback)
    users, items = _id_maps(interactions, user_ids, item_ids)
    codes = _user_codes(pos, users)
    ts = time_keys(pos)
    order = np.lexsort((np.arange(len(pos)), ts, codes))  # by user, then time, then input order
    sizes = np.bincount(codes, minlength=len(users))
    last_pos = np.cumsum(sizes) - 1
    eligible = sizes >= 2
    in_test = np.zeros(len(pos), dtype=bool)
    in_test[order[last_pos[eligible]]] = True
    split = _build("loo-sampled", pos, in_test, users, items, feedback, {})
    seen = InteractionMatrix.from_frame(interactions, user_ids=users, item_ids=items).matrix
    test_users = np.flatnonzero(eligible)
    negatives = sample_negatives(seen, test_users, n_negatives, seed)
    cand = np.full((len(users), 1 + n_negatives), -1, dtype=np.int64)
    test_m = split.test.matrix
    cand[test_users, 0] = test_m.indices[test_m.indptr[test_users]]
    cand[test_users, 1:] = negatives
    return replace(split, candidates=cand, params={"n_negatives": n_negatives, "seed": seed})


# ---- registry and validation ----------------------------------------------------------------
PROTOCOLS: dict[str, Callable[..., Split]] = {
    "stratified": stratified_split,
    "temporal": temporal_split,
    "loo-sampled": loo_sampled,
}


def make_split(
    protocol: str,
    interactions: pd.DataFrame,
    *,
    feedback: ImplicitFeedback | None = None,
    user_ids: Sequence[str] | None = None,
    item_ids: Sequence[str] | None = None,
    **params: Any,
) -> Split:
    """Split ``interactions`` under the protocol named ``protocol`` (a ``PROTOCOLS`` key)."""
    try:
        fn = PROTOCOLS[protocol]
    except KeyError:
        raise ValueError(f"unknown protocol {protocol!r}; known: {sorted(PROTOCOLS)}") from None
    return fn(interactions, feedback=feedback, user_ids=user_ids, item_ids=item_ids, **params)


def validation_split(split: Split) -> Split:
    """Carve a validation split out of ``split``'s train part with the same protocol and params.

    The result's test part is the validation set; its id maps equal ``split``'s, so a model
    tuned on it scores the same users and items. The test part of ``split`` is never read.
    """
    params = {k: v for k, v in split.params.items() if k != "cutoff"}
    train_rows = split.train_frame.drop(columns=[WEIGHT_COL])
    return make_split(
        split.protocol,
        train_rows,
        feedback=split.feedback,
        user_ids=list(split.user_ids),
        item_ids=list(split.item_ids),
        **params,
    )
