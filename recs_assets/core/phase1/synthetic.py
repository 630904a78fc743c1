"""A seeded, fully vectorized generator of realistic Phase 1 tables driven by a hidden ground truth.

How behaviour arises (the ``GroundTruth`` keeps every hidden quantity for later simulation):

- every user has a taste vector over ``CATEGORIES`` (Dirichlet, concentrated on a few categories),
  an activity level (log-normal) and a usual device; every item has 1-3 categories, a quality in
  (0, 1) and an exposure weight that follows a power law over a random item ranking;
- sessions are drawn per user in proportion to activity, at times drawn from an hourly intensity
  with a daily cycle (evening peak, lunch bump, night trough), a weekly cycle (busier weekends)
  and an upward trend; each session holds 1 + Poisson(2) item views spaced ~90 s apart;
- a viewed item's category comes from the user's taste (or, with probability ``EXPLORATION``, from
  the global category mix); the item within that category is drawn by exposure weight;
- a view turns into a click with ``click_probability`` (affinity and quality), a click into
  add-to-cart, a cart into a purchase, and a click may be rated 1-5 in line with affinity and
  quality.

So popularity alone explains exposure, but taste explains which categories each user sees and
clicks: a personalized model beats popularity. No Python loop runs per event.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recs_assets.core.phase1.files import read_parquet_frame
from recs_assets.core.phase1.privacy import ZIP_REGIONS
from recs_assets.core.phase1.schema import CATEGORY_SEP, TS_DTYPE, Phase1Tables, conform

CATEGORIES: tuple[str, ...] = (
    "Books",
    "Electronics",
    "Home",
    "Garden",
    "Toys",
    "Sports",
    "Fashion",
    "Beauty",
    "Grocery",
    "Music",
    "Movies",
    "Games",
    "Health",
    "Automotive",
    "Pets",
    "Office",
)
OCCUPATIONS: tuple[str, ...] = (
    "student",
    "engineer",
    "educator",
    "healthcare",
    "administrator",
    "artist",
    "sales",
    "technician",
    "retired",
    "homemaker",
    "programmer",
    "writer",
    "other",
)
DEVICES: tuple[str, ...] = ("mobile", "desktop", "tablet")
DEVICE_SHARES: tuple[float, ...] = (0.55, 0.35, 0.10)
# platform shares per device (columns: web, ios, android)
PLATFORMS: tuple[str, ...] = ("web", "ios", "android")
PLATFORM_SHARES: dict[str, tuple[float, ...]] = {
    "mobile": (0.10, 0.40, 0.50),
    "desktop": (1.0, 0.0, 0.0),
    "tablet": (0.30, 0.45, 0.25),
}
ADJECTIVES: tuple[str, ...] = (
    "Bright", "Silent", "Golden", "Swift", "Classic", "Urban", "Wild", "Tiny", "Grand", "Clever",
    "Cosy", "Bold", "Fresh", "Lucky", "Smart", "Vivid",
)  # fmt: skip
NOUNS: tuple[str, ...] = (
    "Harbor", "Garden", "Rocket", "Lantern", "Journey", "Castle", "River", "Signal", "Canvas",
    "Puzzle", "Compass", "Meadow", "Engine", "Orchid", "Summit", "Voyage",
)  # fmt: skip

EXPLORATION = 0.15  # share of views whose category ignores the user's taste
LATENT_DIM = 8  # dimensions of the item-level latent taste
LATENT_STRENGTH = 3.0  # how strongly latent taste beats exposure among a category's candidates
CANDIDATES = 20  # items drawn by exposure per view, one of which the latent taste picks
MEAN_EXTRA_VIEWS_PER_SESSION = 2.0  # session length = 1 + Poisson(this)
MEAN_VIEW_GAP_S = 90.0
TREND = 0.5  # the last hour of the window is 1 + TREND times as busy as the first
DEFAULT_START = pd.Timestamp("2024-01-01", tz="UTC")
_US_PER_S = 1_000_000
_US_PER_H = 3600 * _US_PER_S
_US_PER_DAY = 24 * _US_PER_H
_AFFINITY_CHUNK = 250_000  # rows per gather in affinity()


@dataclass(frozen=True)
class SyntheticPreset:
    """Sizes of a named synthetic data set."""

    n_users: int
    n_items: int
    n_interactions: int
    days: float
    chunk_events: int = 0
    """Above 0: the events are generated (and cached) in windows of about this many events, one
    window at a time (``generate_preset_chunks``), so no more than one window is ever in memory;
    0: all at once (``generate_preset``)."""


PRESETS: dict[str, SyntheticPreset] = {
    "small": SyntheticPreset(n_users=2_000, n_items=1_000, n_interactions=50_000, days=90),
    # another shape: a catalog four times larger than the user base, sparser per item
    "wide": SyntheticPreset(n_users=1_500, n_items=6_000, n_interactions=60_000, days=120),
    "1m": SyntheticPreset(n_users=20_000, n_items=5_000, n_interactions=1_000_000, days=180),
    "10m": SyntheticPreset(n_users=200_000, n_items=20_000, n_interactions=10_000_000, days=365),
    "50m": SyntheticPreset(
        n_users=1_000_000,
        n_items=50_000,
        n_interactions=50_000_000,
        days=365,
        chunk_events=5_000_000,
    ),
}


@dataclass(frozen=True)
class GroundTruth:
    """The hidden truth behind a synthetic data set, kept to simulate later behaviour (A/B tests).

    Attributes:
        categories: category names, the columns of ``user_taste`` and ``item_categories``.
        user_ids: external id of each user (object array of str), row ``u`` of every user array.
        item_ids: external id of each item (object array of str), row ``i`` of every item array.
        user_taste: (n_users, n_categories), rows sum to 1: how much each user likes each category.
        user_activity: (n_users,), sums to 1: relative number of sessions per user.
        user_device: (n_users,) object array: the device a user mostly uses.
        user_signup_us: (n_users,) int64 microseconds since the epoch (UTC): no event before it.
        item_categories: (n_items, n_categories), rows sum to 1: an item's category membership.
        item_quality: (n_items,) in (0, 1): raises click, purchase and rating probability.
        item_popularity: (n_items,), sums to 1: power-law exposure weight of each item.
        category_share: (n_categories,), sums to 1: the category mix of exploratory views.
        user_factors: (n_users, LATENT_DIM) latent item-level taste (within a category, a user
            prefers items whose ``item_factors`` align with theirs).
        item_factors: (n_items, LATENT_DIM) latent item traits.
    """

    categories: tuple[str, ...]
    user_ids: np.ndarray
    item_ids: np.ndarray
    user_taste: np.ndarray
    user_activity: np.ndarray
    user_device: np.ndarray
    user_signup_us: np.ndarray
    item_categories: np.ndarray
    item_quality: np.ndarray
    item_popularity: np.ndarray
    category_share: np.ndarray
    user_factors: np.ndarray | None = None
    item_factors: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


@dataclass(frozen=True)
class SyntheticData:
    """Generated tables in the canonical schema together with the truth that produced them."""

    tables: Phase1Tables
    ground_truth: GroundTruth


def affinity(ground_truth: GroundTruth, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
    """Relative affinity in [0, 1] of users for items (elementwise over broadcast index arrays).

    ``taste[u] . categories[i] / max(taste[u])``: 1 when the item lies wholly in the user's
    favourite category, near 0 for categories the user ignores.
    """
    u, i = np.broadcast_arrays(np.asarray(user_idx), np.asarray(item_idx))
    shape = u.shape
    u, i = u.ravel(), i.ravel()
    taste, cats = ground_truth.user_taste, ground_truth.item_categories
    out = np.empty(u.shape, dtype=np.float64)
    for lo in range(0, len(u), _AFFINITY_CHUNK):
        hi = lo + _AFFINITY_CHUNK
        out[lo:hi] = np.einsum("ij,ij->i", taste[u[lo:hi]], cats[i[lo:hi]])
    return (out / taste.max(axis=1)[u]).reshape(shape)


def click_probability(
    ground_truth: GroundTruth, user_idx: np.ndarray, item_idx: np.ndarray
) -> np.ndarray:
    """Probability that user ``user_idx`` clicks item ``item_idx`` when shown it (elementwise).

    ``sigmoid(-2.2 + 3.0 * affinity + 2.0 * (quality - 0.5))``; the generator uses exactly this
    function, so a simulator that calls it reproduces the logged behaviour.
    """
    aff = affinity(ground_truth, user_idx, item_idx)
    return _click_probability(aff, ground_truth.item_quality[np.asarray(item_idx)])


def _click_probability(aff: np.ndarray, quality: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(-2.2 + 3.0 * aff + 2.0 * (quality - 0.5))))


def shifted_ground_truth(ground_truth: GroundTruth, taste_shift: float) -> GroundTruth:
    """The same truth with tastes moved toward other categories (for drift tests).

    New taste = ``(1 - s) * taste + s * roll(taste, n_categories // 2)``: at ``s = 1`` every user
    likes what their category "opposite" used to get; rows still sum to 1.
    """
    if not 0.0 <= taste_shift <= 1.0:
        raise ValueError(f"taste_shift must be in [0, 1], got {taste_shift}")
    if taste_shift == 0.0:
        return ground_truth
    taste = ground_truth.user_taste
    rolled = np.roll(taste, taste.shape[1] // 2, axis=1)
    new = (1.0 - taste_shift) * taste + taste_shift * rolled
    return _replace_taste(ground_truth, new)


def _replace_taste(gt: GroundTruth, taste: np.ndarray) -> GroundTruth:
    return dataclasses.replace(gt, user_taste=taste)


def generate_synthetic(
    n_users: int = PRESETS["small"].n_users,
    n_items: int = PRESETS["small"].n_items,
    n_interactions: int = PRESETS["small"].n_interactions,
    seed: int = 42,
    start: pd.Timestamp = DEFAULT_START,
    days: float = PRESETS["small"].days,
) -> SyntheticData:
    """Generate users, items and exactly ``n_interactions`` events in ``[start, start + days)``.

    Deterministic: the same arguments give identical frames. Events are sorted by time and get ids
    ``e-0``, ``e-1``, ... in that order.
    """
    if n_users < 1 or n_items < 1 or n_interactions < 0:
        raise ValueError(
            f"need n_users >= 1, n_items >= 1, n_interactions >= 0; got {n_users}, {n_items}, "
            f"{n_interactions}"
        )
    if days <= 0:
        raise ValueError(f"days must be > 0, got {days}")
    start = _utc(start)
    rng = np.random.default_rng(seed)
    gt, users, items = _ground_truth(rng, n_users, n_items, start, days)
    interactions = _events(
        gt, rng, n_interactions, start, days, id_prefix="e-", session_prefix="s-"
    )
    return SyntheticData(tables=Phase1Tables(interactions, users, items), ground_truth=gt)


def generate_preset(preset: str = "small", seed: int = 42) -> SyntheticData:
    """``generate_synthetic`` with the sizes of a named preset (``small``, ``1m``, ``10m``); a
    preset generated in windows (``chunk_events``) is its windows' events concatenated."""
    p = _preset(preset)
    if p.chunk_events:
        chunked = generate_preset_chunks(preset, seed)
        interactions = pd.concat(list(chunked.interactions), ignore_index=True)
        tables = Phase1Tables(interactions, chunked.users, chunked.items)
        return SyntheticData(tables=tables, ground_truth=chunked.ground_truth)
    return generate_synthetic(p.n_users, p.n_items, p.n_interactions, seed=seed, days=p.days)


@dataclass(frozen=True)
class ChunkedData:
    """A preset's users, items and truth, and its events as an iterator of time windows.

    ``interactions`` yields each window's events (sorted by time within the window; a session
    that starts near a window's end may run a few minutes into the next one) with ids ``e-0``,
    ``e-1``, ... counting on across windows; session ids carry the window (``s-w3-17``).
    """

    users: pd.DataFrame
    items: pd.DataFrame
    ground_truth: GroundTruth
    interactions: Iterator[pd.DataFrame]


def generate_preset_chunks(preset: str, seed: int = 42) -> ChunkedData:
    """A preset generated one window of about ``chunk_events`` events at a time (whole days), so
    50 million events never sit in memory at once (all at once, the ``50m`` preset was killed at
    an 18 GiB memory cap). Each window gets the share of the events that the whole period's
    hourly intensity (daily and weekly cycles, one trend over the whole period) puts in it, and
    its own random stream (``[seed, window]``); users and items are those of ``seed``."""
    p = _preset(preset)
    start = DEFAULT_START
    rng = np.random.default_rng(seed)
    gt, users, items = _ground_truth(rng, p.n_users, p.n_items, start, p.days)
    windows = max(1, -(-p.n_interactions // max(1, p.chunk_events or p.n_interactions)))
    cdf, hours = _hourly_cdf(start, p.days)
    whole_days = int(np.ceil(p.days))
    bounds_h = [min(hours, round(whole_days * k / windows) * 24) for k in range(windows + 1)]
    counts = np.diff(np.rint(np.asarray(cdf)[bounds_h] * p.n_interactions).astype(np.int64))

    def events() -> Iterator[pd.DataFrame]:
        first_id = 0
        for k in range(windows):
            lo, hi = bounds_h[k], bounds_h[k + 1]
            frame = _events(
                gt,
                np.random.default_rng([seed, k]),
                int(counts[k]),
                start + pd.Timedelta(hours=lo),
                (hi - lo) / 24,
                id_prefix="e-",
                session_prefix=f"s-w{k}-",
                first_id=first_id,
                trend=(lo, hours),
            )
            first_id += len(frame)
            yield frame

    return ChunkedData(users=users, items=items, ground_truth=gt, interactions=events())


def preset_ground_truth(preset: str, seed: int = 42) -> GroundTruth:
    """The hidden truth of a preset (``generate_preset(preset, seed).ground_truth``) without
    generating its events: what a later batch is drawn from (users and items come first from
    the seed's stream, so they do not depend on the events)."""
    p = _preset(preset)
    return _ground_truth(np.random.default_rng(seed), p.n_users, p.n_items, DEFAULT_START, p.days)[
        0
    ]


def _preset(preset: str) -> SyntheticPreset:
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic preset {preset!r}; known: {', '.join(PRESETS)}")
    return PRESETS[preset]


def generate_batch(
    ground_truth: GroundTruth,
    n_interactions: int,
    after: pd.Timestamp,
    days: float = 1.0,
    seed: int = 0,
    taste_shift: float = 0.0,
) -> pd.DataFrame:
    """A batch of new events strictly after ``after`` (within ``days``) from the same truth.

    ``taste_shift`` in [0, 1] moves tastes (``shifted_ground_truth``) to simulate drift; users,
    items, quality and popularity stay the same. Event and session ids carry a prefix built from
    ``after`` and ``seed`` so they never collide with earlier data or other batches.
    """
    if days <= 0:
        raise ValueError(f"days must be > 0, got {days}")
    after = _utc(after)
    gt = shifted_ground_truth(ground_truth, taste_shift)
    rng = np.random.default_rng([seed, int(after.value // 1000) % (2**63)])
    tag = f"b{after.strftime('%Y%m%dT%H%M%S')}-{seed}-"
    window_start = after + pd.Timedelta(microseconds=1)
    return _events(gt, rng, n_interactions, window_start, days, "e-" + tag, "s-" + tag)


# ---------------------------------------------------------------------------------------------
# ground truth, users and items


def _ground_truth(
    rng: np.random.Generator, n_users: int, n_items: int, start: pd.Timestamp, days: float
) -> tuple[GroundTruth, pd.DataFrame, pd.DataFrame]:
    n_cat = len(CATEGORIES)
    start_us = int(start.value // 1000)
    category_share = rng.dirichlet(np.full(n_cat, 2.0))

    # users
    taste = rng.dirichlet(np.full(n_cat, 0.25), size=n_users)
    taste = np.maximum(taste, 1e-12)
    taste /= taste.sum(axis=1, keepdims=True)
    activity = rng.lognormal(0.0, 1.0, size=n_users)
    activity /= activity.sum()
    device = np.asarray(DEVICES, dtype=object)[rng.choice(len(DEVICES), n_users, p=DEVICE_SHARES)]
    late = rng.random(n_users) < 0.15  # 15% sign up during the first half of the window
    signup_us = np.where(
        late,
        start_us + (rng.random(n_users) * 0.5 * days * _US_PER_DAY).astype(np.int64),
        start_us - (rng.random(n_users) * 730 * _US_PER_DAY).astype(np.int64) - _US_PER_H,
    ).astype(np.int64)
    age = np.clip(np.rint(rng.normal(34.0, 12.0, n_users)), 16, 80).astype(np.int64)
    gender = np.asarray(("M", "F", "X"), dtype=object)[rng.choice(3, n_users, p=(0.48, 0.48, 0.04))]
    occupation = np.asarray(OCCUPATIONS, dtype=object)[rng.integers(0, len(OCCUPATIONS), n_users)]
    region_names = np.asarray(list(ZIP_REGIONS.values()), dtype=object)
    region = region_names[rng.integers(0, len(region_names), n_users)]
    width = len(str(n_users))
    user_ids = np.asarray([f"u{k:0{width}d}" for k in range(1, n_users + 1)], dtype=object)

    # items
    member = np.zeros((n_items, n_cat), dtype=bool)
    member[np.arange(n_items), rng.choice(n_cat, n_items, p=category_share)] = True
    for share in (0.4, 0.15):  # a second and a third category for some items
        extra = rng.random(n_items) < share
        member[np.flatnonzero(extra), rng.choice(n_cat, int(extra.sum()), p=category_share)] = True
    item_cats = member / member.sum(axis=1, keepdims=True)
    quality = rng.beta(2.0, 2.0, n_items).clip(0.01, 0.99)
    rank = rng.permutation(n_items) + 1
    popularity = rank.astype(np.float64) ** -0.9 * (0.5 + quality)
    popularity /= popularity.sum()
    width = len(str(n_items))
    item_ids = np.asarray([f"i{k:0{width}d}" for k in range(1, n_items + 1)], dtype=object)
    names = np.asarray(CATEGORIES, dtype=object)
    cat_str = np.full(n_items, "", dtype=object)
    for c in range(n_cat):
        cat_str = np.where(member[:, c], cat_str + CATEGORY_SEP + names[c], cat_str)
    cat_str = np.asarray([s[1:] for s in cat_str], dtype=object)
    adj = np.asarray(ADJECTIVES, dtype=object)[rng.integers(0, len(ADJECTIVES), n_items)]
    noun = np.asarray(NOUNS, dtype=object)[rng.integers(0, len(NOUNS), n_items)]
    primary = np.argmax(member, axis=1)
    base_price = np.exp(np.linspace(2.0, 4.5, n_cat))[primary]  # categories differ in price level
    price = np.round(base_price * rng.lognormal(0.0, 0.5, n_items), 2)
    created_us = (
        start_us - (rng.random(n_items) * 3 * 365 * _US_PER_DAY).astype(np.int64) - _US_PER_H
    )

    gt = GroundTruth(
        categories=CATEGORIES,
        user_ids=user_ids,
        item_ids=item_ids,
        user_taste=taste,
        user_activity=activity,
        user_device=device,
        user_signup_us=signup_us,
        item_categories=item_cats,
        item_quality=quality,
        item_popularity=popularity,
        category_share=category_share,
        user_factors=rng.normal(0.0, 1.0, (n_users, LATENT_DIM)) / np.sqrt(LATENT_DIM),
        item_factors=rng.normal(0.0, 1.0, (n_items, LATENT_DIM)),
    )
    users = pd.DataFrame(
        {
            "user_id": pd.array(user_ids, dtype="string"),
            "age": pd.array(age, dtype="Int64"),
            "gender": pd.array(gender, dtype="string"),
            "occupation": pd.array(occupation, dtype="string"),
            "region": pd.array(region, dtype="string"),
            "device": pd.array(device, dtype="string"),
            "signup_time": _us_to_ts(signup_us),
        }
    )
    items = pd.DataFrame(
        {
            "item_id": pd.array(item_ids, dtype="string"),
            "title": pd.array(adj + " " + noun, dtype="string"),
            "categories": pd.array(cat_str, dtype="string"),
            "price": price.astype(np.float64),
            "quality": np.round(quality, 4).astype(np.float64),
            "created_at": _us_to_ts(created_us),
        }
    )
    return gt, conform(users, "users"), conform(items, "items")


# ---------------------------------------------------------------------------------------------
# events


def _events(
    gt: GroundTruth,
    rng: np.random.Generator,
    n_events: int,
    start: pd.Timestamp,
    days: float,
    id_prefix: str,
    session_prefix: str,
    first_id: int = 0,
    trend: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """``n_events`` events in ``[start, start + days)``: ids ``id_prefix`` + ``first_id`` on;
    ``trend`` (hours from the trend's start to ``start``, the trend's length in hours) places
    the window on a longer period's trend (default: the window is the period)."""
    # Every view yields at least one row, so n_events views always suffice; the surplus is cut.
    n_views = n_events
    start_us = int(start.value // 1000)
    cdf, hours = _hourly_cdf(start, days, trend)

    # sessions: user (by activity over the time they are signed up), start time, length
    lo = _cdf_at(cdf, (gt.user_signup_us - start_us) / _US_PER_H)
    weight = gt.user_activity * (1.0 - lo)
    if weight.sum() <= 0:
        raise ValueError("no user is signed up before the end of the window")
    n_sessions = max(1, int(np.ceil(n_views / (1.0 + MEAN_EXTRA_VIEWS_PER_SESSION) * 1.3)) + 16)
    lengths = 1 + rng.poisson(MEAN_EXTRA_VIEWS_PER_SESSION, n_sessions)
    while lengths.sum() < n_views:  # rare: top up with more sessions
        lengths = np.concatenate([lengths, 1 + rng.poisson(2.0, n_sessions)])
    n_sessions = int(np.searchsorted(np.cumsum(lengths), n_views) + 1) if n_views else 0
    lengths = lengths[:n_sessions]
    if n_sessions:
        lengths[-1] -= int(lengths.sum() - n_views)
    s_user = rng.choice(gt.n_users, n_sessions, p=weight / weight.sum())
    u01 = lo[s_user] + rng.random(n_sessions) * (1.0 - lo[s_user])
    s_start_us = start_us + (_inverse_cdf(cdf, u01) * _US_PER_H).astype(np.int64)
    s_device = np.where(
        rng.random(n_sessions) < 0.8,
        gt.user_device[s_user],
        np.asarray(DEVICES, dtype=object)[rng.choice(len(DEVICES), n_sessions, p=DEVICE_SHARES)],
    )
    s_platform = _platforms(rng, s_device)

    # views: session, user, time, item
    v_session = np.repeat(np.arange(n_sessions), lengths)
    v_user = s_user[v_session]
    gaps = rng.exponential(MEAN_VIEW_GAP_S * _US_PER_S, n_views).astype(np.int64)
    first = np.zeros(n_views, dtype=bool)
    first[np.cumsum(lengths) - lengths] = True
    gaps[first] = 0
    csum = np.cumsum(gaps)
    v_time = s_start_us[v_session] + csum - csum[np.flatnonzero(first)][v_session]
    v_item = _sample_items(gt, rng, v_user)

    # funnel per view: view -> click -> add_to_cart -> purchase; rate after a click
    aff = affinity(gt, v_user, v_item)
    quality = gt.item_quality[v_item]
    click = rng.random(n_views) < _click_probability(aff, quality)
    cart = click & (rng.random(n_views) < 0.10 + 0.35 * aff)
    purchase = cart & (rng.random(n_views) < 0.35 + 0.40 * quality)
    rate = click & (rng.random(n_views) < 0.08 + 0.50 * purchase)
    present = np.column_stack([np.ones(n_views, dtype=bool), click, cart, purchase, rate])
    steps_s = np.column_stack(
        [
            np.zeros(n_views),
            rng.uniform(2, 20, n_views),
            rng.uniform(10, 120, n_views),
            rng.uniform(30, 600, n_views),
            rng.uniform(30, 300, n_views),
        ]
    )
    offset_us = (np.cumsum(steps_s * present, axis=1) * _US_PER_S).astype(np.int64)
    rating = np.clip(
        np.rint(1.0 + 4.0 * (0.55 * aff + 0.45 * quality) + rng.normal(0, 0.6, n_views)), 1, 5
    )

    # flatten the (view, stage) grid row-major and keep exactly n_events rows
    view_idx, stage = np.nonzero(present)
    view_idx, stage = view_idx[:n_events], stage[:n_events]
    times = v_time[view_idx] + offset_us[view_idx, stage]
    order = np.lexsort((stage, view_idx, times))
    view_idx, stage, times = view_idx[order], stage[order], times[order]
    sess = v_session[view_idx]

    event_types = np.asarray(("view", "click", "add_to_cart", "purchase", "rate"), dtype=object)
    n = len(view_idx)
    frame = pd.DataFrame(
        {
            "event_id": _ids(id_prefix, first_id + np.arange(n)),
            "user_id": pd.array(gt.user_ids[v_user[view_idx]], dtype="string"),
            "item_id": pd.array(gt.item_ids[v_item[view_idx]], dtype="string"),
            "event_type": pd.array(event_types[stage], dtype="string"),
            "timestamp": _us_to_ts(times),
            "rating": np.where(stage == 4, rating[view_idx], np.nan),
            "session_id": _ids(session_prefix, sess),
            "device": pd.array(s_device[sess], dtype="string"),
            "platform": pd.array(s_platform[sess], dtype="string"),
        }
    )
    return conform(frame, "interactions")


def _sample_items(gt: GroundTruth, rng: np.random.Generator, users: np.ndarray) -> np.ndarray:
    """Category from taste (or the global mix when exploring), then item by exposure weight."""
    n = len(users)
    n_cat = len(gt.categories)
    explore = rng.random(n) < EXPLORATION
    r = rng.random(n)
    cat = np.zeros(n, dtype=np.int64)
    cum_taste = np.cumsum(gt.user_taste, axis=1)
    cum_share = np.cumsum(gt.category_share)
    for c in range(n_cat - 1):
        threshold = np.where(explore, cum_share[c], cum_taste[users, c])
        cat += r >= threshold
    items = np.empty(n, dtype=np.int64)
    r_item = rng.random(n)
    all_items = np.arange(gt.n_items)
    for c in range(n_cat):
        where = np.flatnonzero(cat == c)
        if where.size == 0:
            continue
        members = all_items[gt.item_categories[:, c] > 0]
        if members.size == 0:  # an empty category: fall back to the whole catalog
            members = all_items
        cum_w = np.cumsum(gt.item_popularity[members])
        if gt.user_factors is None or gt.item_factors is None:
            pick = np.searchsorted(cum_w, r_item[where] * cum_w[-1], side="right")
            items[where] = members[np.minimum(pick, members.size - 1)]
            continue
        # Draw CANDIDATES items by exposure, then let the user's latent taste (plus Gumbel noise)
        # choose among them: popular items are seen more, but which one a user picks is personal.
        r_cand = rng.random((where.size, CANDIDATES))
        pick = np.searchsorted(cum_w, r_cand * cum_w[-1], side="right")
        cand = members[np.minimum(pick, members.size - 1)]
        fit = np.einsum("nd,ncd->nc", gt.user_factors[users[where]], gt.item_factors[cand])
        gumbel = -np.log(-np.log(rng.random((where.size, CANDIDATES)).clip(1e-12, 1 - 1e-12)))
        choice = np.argmax(LATENT_STRENGTH * fit + gumbel, axis=1)
        items[where] = cand[np.arange(where.size), choice]
    return items


def _hourly_cdf(
    start: pd.Timestamp, days: float, trend_hours: tuple[int, int] | None = None
) -> tuple[np.ndarray, int]:
    """CDF at hour boundaries (length hours + 1) of the daily x weekly x trend intensity; the
    trend rises over the window, or (``trend_hours`` = (offset, length)) over a longer period
    the window starts ``offset`` hours into."""
    hours = max(1, int(np.ceil(days * 24)))
    offset, span = trend_hours if trend_hours is not None else (0, hours)
    grid = start + pd.to_timedelta(np.arange(hours), unit="h")
    hod = grid.hour.to_numpy() + 0.5
    daily = (
        0.15
        + np.exp(-((hod - 20.5) ** 2) / (2 * 3.0**2))
        + 0.5 * np.exp(-((hod - 12.5) ** 2) / (2 * 1.5**2))
    )
    weekly = np.where(grid.dayofweek.to_numpy() >= 5, 1.3, 1.0)
    trend = 1.0 + TREND * (offset + np.arange(hours)) / span
    intensity = daily * weekly * trend
    cdf = np.concatenate([[0.0], np.cumsum(intensity)])
    return cdf / cdf[-1], hours


def _cdf_at(cdf: np.ndarray, hour: np.ndarray) -> np.ndarray:
    """The CDF (piecewise linear in hours) at fractional hours since the window start, clipped."""
    return np.interp(hour, np.arange(len(cdf)), cdf, left=0.0, right=1.0)


def _inverse_cdf(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Fractional hours since the window start at which the CDF reaches ``u`` (linear within hours)."""
    k = np.clip(np.searchsorted(cdf, u, side="right") - 1, 0, len(cdf) - 2)
    width = cdf[k + 1] - cdf[k]
    frac = np.where(width > 0, (u - cdf[k]) / np.where(width > 0, width, 1.0), 0.0)
    return k + np.clip(frac, 0.0, 1.0 - 1e-9)


def _platforms(rng: np.random.Generator, devices: np.ndarray) -> np.ndarray:
    out = np.empty(len(devices), dtype=object)
    names = np.asarray(PLATFORMS, dtype=object)
    for device, shares in PLATFORM_SHARES.items():
        where = np.flatnonzero(devices == device)
        out[where] = names[rng.choice(len(names), where.size, p=shares)]
    return out


def _ids(prefix: str, numbers: np.ndarray) -> pd.Series:
    return pd.Series(prefix + pd.Series(numbers, dtype="int64").astype(str), dtype="string")


def _us_to_ts(us: np.ndarray) -> pd.Series:
    return pd.Series(np.asarray(us, dtype="datetime64[us]")).dt.tz_localize("UTC").astype(TS_DTYPE)


def _utc(ts: pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _generator_digest() -> str:
    """A digest of what the generated tables depend on (this module's code, the schema and
    privacy modules it calls, pandas and pyarrow versions): a cached preset is reused only with
    the same generator."""
    import hashlib

    import pyarrow

    from recs_assets.core.phase1 import privacy, schema

    digest = hashlib.blake2b(digest_size=8)
    for module in (__file__, schema.__file__, privacy.__file__):
        digest.update(Path(module).read_bytes())
    digest.update(f"{pd.__version__} {pyarrow.__version__}".encode())
    return digest.hexdigest()


def cached_preset_folder(preset: str, seed: int, cache_dir: Path) -> Path:
    """The folder of ``generate_preset(preset, seed).tables`` as Parquet (``interactions``,
    ``users``, ``items``), generated once into ``cache_dir`` (on ``10m`` generating takes about
    100 s, reading a few seconds; ``50m`` is written a window at a time). The folder is
    named by the preset, the seed and a digest of the generator's code, so a changed generator
    never serves stale data; it is written beside and renamed into place, so two
    processes generating at once never read a half-written cache."""
    import contextlib
    import shutil
    import tempfile

    stem = f"synthetic-{preset}-seed{seed}-"
    folder = cache_dir / f"{stem}{_generator_digest()}"
    names = ("interactions", "users", "items")
    if not all((folder / f"{n}.parquet").exists() for n in names):
        cache_dir.mkdir(parents=True, exist_ok=True)
        # an incomplete folder, or one of an older generator, goes (10m is about 200 MB)
        for old in cache_dir.glob(f"{stem}*"):
            shutil.rmtree(old, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=cache_dir))
        try:
            if _preset(preset).chunk_events:
                _write_chunked(generate_preset_chunks(preset, seed), tmp)
            else:
                tables = generate_preset(preset, seed=seed).tables
                for name in names:
                    tables.table(name).to_parquet(tmp / f"{name}.parquet", index=False)
            # another process may have got there first: its copy is the same data
            with contextlib.suppress(OSError):
                tmp.rename(folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def cached_preset(preset: str, seed: int, cache_dir: Path) -> Phase1Tables:
    """The three tables of ``cached_preset_folder`` read back (on the first run too, so every run
    sees the same types: Arrow-backed strings)."""
    folder = cached_preset_folder(preset, seed, cache_dir)
    names = ("interactions", "users", "items")
    return Phase1Tables(
        **{n: read_parquet_frame(folder / f"{n}.parquet") for n in names}  # type: ignore[arg-type]
    )


def _write_chunked(data: ChunkedData, folder: Path) -> None:
    """The tables of a preset generated in windows, each window appended to
    ``interactions.parquet`` as it is generated (so one window is in memory at a time)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data.users.to_parquet(folder / "users.parquet", index=False)
    data.items.to_parquet(folder / "items.parquet", index=False)
    writer: pq.ParquetWriter | None = None
    try:
        for frame in data.interactions:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(folder / "interactions.parquet", table.schema)
            writer.write_table(table.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()
