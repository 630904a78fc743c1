"""User features as of one point in time: activity, ratings, category affinity, sessions, timing.

Pure Spark: ``user_features(interactions, users, items, as_of=..., categories=...)`` reads only
events with ``timestamp <= as_of`` and returns one row per user.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recs_assets.core.features.feature_spec import FeatureSpec
from recs_assets.core.features.transforms._columns import (
    DEFAULT_SESSION_GAP_MINUTES,
    age_days,
    as_of_col,
    category_columns,
    entropy_of_counts,
    item_category_weights,
    with_session_key,
)
from recs_assets.core.phase1.schema import EVENT_TYPES

WINDOWS_DAYS: tuple[int, ...] = (7, 30)
DAY_PARTS: tuple[tuple[str, int, int], ...] = (
    ("night", 0, 6),
    ("morning", 6, 12),
    ("afternoon", 12, 18),
    ("evening", 18, 24),
)
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CATEGORY_PREFIX = "cat_share_"


def _window_suffix(days: int | None) -> str:
    return "all" if days is None else f"{days}d"


COUNT_COLUMNS: tuple[str, ...] = (
    *(f"events_{_window_suffix(d)}" for d in (*WINDOWS_DAYS, None)),
    *(f"{t}_count_{_window_suffix(d)}" for t in EVENT_TYPES for d in (*WINDOWS_DAYS, None)),
    "distinct_items",
    "rating_count",
    "session_count",
    "active_days",
)

USER_CATALOG: tuple[FeatureSpec, ...] = (
    FeatureSpec("user_id", "string", "User key.", "user"),
    FeatureSpec(
        "feature_timestamp",
        "timestamp",
        "as_of: features use events with timestamp <= this.",
        "user",
    ),
    FeatureSpec("events_7d", "bigint", "Events in (as_of - 7 days, as_of].", "user"),
    FeatureSpec("events_30d", "bigint", "Events in (as_of - 30 days, as_of].", "user"),
    FeatureSpec("events_all", "bigint", "Events up to as_of.", "user"),
    FeatureSpec(
        "<event_type>_count_<7d|30d|all>",
        "bigint",
        f"Events of one type ({', '.join(EVENT_TYPES)}) in the same three windows.",
        "user",
    ),
    FeatureSpec("distinct_items", "bigint", "Distinct items the user interacted with.", "user"),
    FeatureSpec(
        "days_since_last_event",
        "double",
        "Recency: as_of minus newest event, days; null without events.",
        "user",
    ),
    FeatureSpec(
        "days_since_first_event",
        "double",
        "Tenure: as_of minus oldest event, days; null without events.",
        "user",
    ),
    FeatureSpec("rating_count", "bigint", "Events with a rating.", "user"),
    FeatureSpec("rating_mean", "double", "Mean rating; null without ratings.", "user"),
    FeatureSpec(
        "rating_var", "double", "Population variance of ratings; null without ratings.", "user"
    ),
    FeatureSpec(
        f"{CATEGORY_PREFIX}<category>",
        "double",
        "Share of the user's category mass on this category; an event on an item in k categories "
        "adds 1/k to each. Shares over all categories sum to 1 (0 without categorised events).",
        "user",
    ),
    FeatureSpec(
        "top_category", "string", "Category with the largest share (ties: alphabetical).", "user"
    ),
    FeatureSpec(
        "session_count",
        "bigint",
        "Sessions: session_id when given, else a new session after a 30-minute gap.",
        "user",
    ),
    FeatureSpec("events_per_session", "double", "Mean events per session.", "user"),
    FeatureSpec(
        "session_length_s",
        "double",
        "Mean session length (last minus first event), seconds.",
        "user",
    ),
    FeatureSpec(
        "hour_share_<night|morning|afternoon|evening>",
        "double",
        "Share of events in UTC hours [0,6), [6,12), [12,18), [18,24).",
        "user",
    ),
    FeatureSpec("dow_share_<mon..sun>", "double", "Share of events per UTC day of week.", "user"),
    FeatureSpec("weekend_share", "double", "Share of events on Saturday or Sunday (UTC).", "user"),
    FeatureSpec(
        "hour_entropy", "double", "Entropy (bits) of the 24-bin hour-of-day distribution.", "user"
    ),
    FeatureSpec(
        "dow_entropy", "double", "Entropy (bits) of the 7-bin day-of-week distribution.", "user"
    ),
    FeatureSpec("active_days", "bigint", "Distinct UTC dates with an event.", "user"),
    FeatureSpec("age", "bigint", "Age from the users table (null if unknown).", "user"),
    FeatureSpec("gender", "string", "Gender from the users table.", "user"),
    FeatureSpec("occupation", "string", "Occupation from the users table.", "user"),
    FeatureSpec("region", "string", "Region from the users table.", "user"),
    FeatureSpec("signup_device", "string", "Device recorded at sign-up (users.device).", "user"),
    FeatureSpec(
        "account_age_days", "double", "as_of minus signup_time, days; null if unknown.", "user"
    ),
)


def share_columns(categories: Sequence[str]) -> list[str]:
    """The share and entropy columns (0.0 for a user without events), in output order."""
    return [
        *category_columns(CATEGORY_PREFIX, categories),
        *(f"hour_share_{name}" for name, _, _ in DAY_PARTS),
        *(f"dow_share_{d}" for d in WEEKDAYS),
        "weekend_share",
        "hour_entropy",
        "dow_entropy",
    ]


def user_columns(categories: Sequence[str]) -> list[str]:
    """The columns of a ``user_features`` table for ``categories``, in order (every engine)."""
    shares = share_columns(categories)
    return [
        "user_id",
        "feature_timestamp",
        *COUNT_COLUMNS[: 3 * (len(EVENT_TYPES) + 1)],
        "distinct_items",
        "days_since_last_event",
        "days_since_first_event",
        "rating_count",
        "rating_mean",
        "rating_var",
        *category_columns(CATEGORY_PREFIX, categories),
        "top_category",
        "session_count",
        "events_per_session",
        "session_length_s",
        *shares[len(categories) :],
        "active_days",
        "age",
        "gender",
        "occupation",
        "region",
        "signup_device",
        "account_age_days",
    ]


def _counts(ev: DataFrame) -> DataFrame:
    aggs = []
    for days in (*WINDOWS_DAYS, None):
        in_window = F.lit(True) if days is None else F.col("_age") < days
        suffix = _window_suffix(days)
        aggs.append(F.sum(F.when(in_window, 1).otherwise(0)).cast("long").alias(f"events_{suffix}"))
        for t in EVENT_TYPES:
            hit = in_window & (F.col("event_type") == t)
            aggs.append(
                F.sum(F.when(hit, 1).otherwise(0)).cast("long").alias(f"{t}_count_{suffix}")
            )
    aggs += [
        F.countDistinct("item_id").alias("distinct_items"),
        F.min("_age").alias("days_since_last_event"),
        F.max("_age").alias("days_since_first_event"),
        F.count("rating").alias("rating_count"),
        F.avg("rating").alias("rating_mean"),
        F.var_pop("rating").alias("rating_var"),
        F.countDistinct(F.to_date("timestamp")).alias("active_days"),
    ]
    return ev.groupBy("user_id").agg(*aggs)


def _timing(ev: DataFrame) -> DataFrame:
    """Hour-of-day and day-of-week shares and entropies, from one (user, hour, day) count pass.

    Kept apart from ``_counts`` so neither aggregation outgrows Spark's 64 KB generated-code limit
    (past it Spark compiles, fails and falls back to slow interpreted code)."""
    cells = ev.groupBy(
        "user_id",
        F.hour("timestamp").alias("_hour"),
        F.weekday("timestamp").alias("_dow"),  # 0 = Monday
    ).agg(F.count("*").alias("_n"))
    per_user = cells.groupBy("user_id").agg(
        *(
            F.sum(F.when(F.col("_hour") == h, F.col("_n")).otherwise(0)).alias(f"_h{h}")
            for h in range(24)
        ),
        *(
            F.sum(F.when(F.col("_dow") == d, F.col("_n")).otherwise(0)).alias(f"_d{d}")
            for d in range(7)
        ),
    )
    hours = [F.col(f"_h{h}") for h in range(24)]
    days = [F.col(f"_d{d}") for d in range(7)]
    n = F.col("_events")
    return per_user.withColumn("_events", sum(days[1:], days[0])).select(
        "user_id",
        *(
            (sum(hours[lo + 1 : hi], hours[lo]) / n).alias(f"hour_share_{name}")
            for name, lo, hi in DAY_PARTS
        ),
        *((days[i] / n).alias(f"dow_share_{d}") for i, d in enumerate(WEEKDAYS)),
        ((days[5] + days[6]) / n).alias("weekend_share"),
        entropy_of_counts(hours, n).alias("hour_entropy"),
        entropy_of_counts(days, n).alias("dow_entropy"),
    )


def _category_shares(ev: DataFrame, items: DataFrame, categories: Sequence[str]) -> DataFrame:
    cols = category_columns(CATEGORY_PREFIX, categories)
    mass = (
        ev.select("user_id", "item_id")
        .join(item_category_weights(items), "item_id")
        .groupBy("user_id", "category")
        .agg(F.sum("weight").alias("mass"))
    )
    total = F.sum("mass").over(Window.partitionBy("user_id"))
    # ranked on the mass to 9 decimals: 1/k weights summed in another order must still tie
    top = Window.partitionBy("user_id").orderBy(F.desc(F.round("mass", 9)), F.asc("category"))
    shares = mass.withColumn("share", F.col("mass") / total)
    top_cat = (
        shares.withColumn("_rank", F.row_number().over(top))
        .where(F.col("_rank") == 1)
        .select("user_id", F.col("category").alias("top_category"))
    )
    pivoted = shares.groupBy("user_id").pivot("category", list(categories)).agg(F.first("share"))
    pivoted = pivoted.select(
        "user_id", *(F.col(f"`{c}`").alias(name) for c, name in zip(categories, cols, strict=True))
    )
    return pivoted.join(top_cat, "user_id", "outer")


def _sessions(ev: DataFrame, gap_minutes: int) -> DataFrame:
    per_session = (
        with_session_key(ev, gap_minutes)
        .groupBy("user_id", "session_key")
        .agg(
            F.count("*").alias("_n"),
            (F.max("timestamp").cast("double") - F.min("timestamp").cast("double")).alias("_len"),
        )
    )
    return per_session.groupBy("user_id").agg(
        F.count("*").alias("session_count"),
        F.avg("_n").alias("events_per_session"),
        F.avg("_len").alias("session_length_s"),
    )


def user_features(
    interactions: DataFrame,
    users: DataFrame,
    items: DataFrame,
    *,
    as_of: datetime,
    categories: Sequence[str],
    session_gap_minutes: int = DEFAULT_SESSION_GAP_MINUTES,
) -> DataFrame:
    """One row per user known at ``as_of`` (in ``users`` with signup <= as_of, or with an event).

    Args:
        interactions: canonical interactions (``INTERACTION_COLUMNS``).
        users: canonical users (``USER_COLUMNS``).
        items: canonical items (``ITEM_COLUMNS``), for category affinity.
        as_of: timezone-aware cut-off; only events with ``timestamp <= as_of`` are read.
        categories: the categories that get a ``cat_share_<category>`` column, in column order.
        session_gap_minutes: inactivity gap that starts a derived session.

    Returns:
        The columns of ``USER_CATALOG`` (category family expanded), counts 0 for users without
        events and means/recency null.
    """
    ev = interactions.where(F.col("timestamp") <= as_of_col(as_of)).withColumn(
        "_age", age_days("timestamp", as_of)
    )
    known_users = users.where(
        F.col("signup_time").isNull() | (F.col("signup_time") <= as_of_col(as_of))
    ).select("user_id")
    base = known_users.union(ev.select("user_id")).distinct()
    # Every per-user part below groups, windows or joins by user_id: one shuffle of the events by
    # user (reused by all parts) instead of one per part.
    ev = ev.repartition("user_id")
    demographics = users.select(
        "user_id",
        "age",
        "gender",
        "occupation",
        "region",
        F.col("device").alias("signup_device"),
        age_days("signup_time", as_of).alias("account_age_days"),
    ).dropDuplicates(["user_id"])
    out = base
    for part in (
        _counts(ev),
        _category_shares(ev, items, categories),
        _sessions(ev, session_gap_minutes),
        _timing(ev),
        demographics,
    ):
        out = out.join(part, "user_id", "left")
    share_cols = share_columns(categories)
    out = out.fillna(0, subset=list(COUNT_COLUMNS)).fillna(0.0, subset=share_cols)
    ordered = ["user_id", *user_columns(categories)[2:]]
    return out.select(as_of_col(as_of).alias("feature_timestamp"), *ordered).select(
        "user_id", "feature_timestamp", *ordered[1:]
    )
