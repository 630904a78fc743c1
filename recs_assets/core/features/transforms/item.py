"""Item features as of one point in time: popularity, trend, rating quality, catalog, freshness.

Pure Spark: ``item_features(interactions, items, as_of=...)`` reads only events with
``timestamp <= as_of`` and returns one row per item.
"""

from __future__ import annotations

import math
from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recs_assets.core.features.feature_spec import FeatureSpec
from recs_assets.core.features.transforms._columns import age_days, as_of_col
from recs_assets.core.phase1.schema import CATEGORY_SEP, EVENT_TYPES

DEFAULT_HALF_LIFE_DAYS = 7.0
DEFAULT_PRIOR_WEIGHT = 10.0

ITEM_CATALOG: tuple[FeatureSpec, ...] = (
    FeatureSpec("item_id", "string", "Item key.", "item"),
    FeatureSpec(
        "feature_timestamp",
        "timestamp",
        "as_of: features use events with timestamp <= this.",
        "item",
    ),
    FeatureSpec("events_7d", "bigint", "Events in (as_of - 7 days, as_of].", "item"),
    FeatureSpec("events_30d", "bigint", "Events in (as_of - 30 days, as_of].", "item"),
    FeatureSpec("events_all", "bigint", "Events up to as_of (popularity).", "item"),
    FeatureSpec(
        "<event_type>_count_all",
        "bigint",
        f"Events of one type ({', '.join(EVENT_TYPES)}).",
        "item",
    ),
    FeatureSpec("distinct_users_all", "bigint", "Distinct users up to as_of.", "item"),
    FeatureSpec(
        "distinct_users_30d", "bigint", "Distinct users in (as_of - 30 days, as_of].", "item"
    ),
    FeatureSpec(
        "decayed_events",
        "double",
        "Sum over events of 2^(-age_days / half_life), half_life = 7 days.",
        "item",
    ),
    FeatureSpec(
        "trending_score",
        "double",
        "Recent rate / long-run rate: recent rate = decayed_events * ln2 / half_life (events/day, "
        "time-decayed), long-run rate = events_all / max(days since first event, 1). >1 rising, "
        "<1 cooling; 0 without events.",
        "item",
    ),
    FeatureSpec("rating_count", "bigint", "Events with a rating.", "item"),
    FeatureSpec("rating_mean", "double", "Mean rating; null without ratings.", "item"),
    FeatureSpec(
        "bayes_rating",
        "double",
        "(C * m + sum of ratings) / (C + rating_count), m = mean of all ratings up to as_of, C = 10.",
        "item",
    ),
    FeatureSpec(
        "categories", "string", f"Categories joined by '{CATEGORY_SEP}' (items table).", "item"
    ),
    FeatureSpec("category_count", "int", "Number of categories.", "item"),
    FeatureSpec("price", "double", "Price from the items table (null if unknown).", "item"),
    FeatureSpec("quality", "double", "Quality from the items table (null if unknown).", "item"),
    FeatureSpec(
        "age_days",
        "double",
        "Freshness: as_of minus created_at (else minus first event), days; null if neither.",
        "item",
    ),
    FeatureSpec(
        "days_since_last_event",
        "double",
        "as_of minus newest event, days; null without events.",
        "item",
    ),
    FeatureSpec(
        "weekend_share", "double", "Seasonality: share of events on Saturday/Sunday (UTC).", "item"
    ),
    FeatureSpec(
        "dow_concentration",
        "double",
        "Seasonality: 7 x the largest day-of-week share (1 = uniform week, 7 = one day only); "
        "null without events.",
        "item",
    ),
)

ITEM_COLUMNS: tuple[str, ...] = (
    "item_id",
    "feature_timestamp",
    "events_7d",
    "events_30d",
    "events_all",
    *(f"{t}_count_all" for t in EVENT_TYPES),
    "distinct_users_all",
    "distinct_users_30d",
    "decayed_events",
    "trending_score",
    "rating_count",
    "rating_mean",
    "bayes_rating",
    "categories",
    "category_count",
    "price",
    "quality",
    "age_days",
    "days_since_last_event",
    "weekend_share",
    "dow_concentration",
)
"""The columns of an ``item_features`` table, in order (every engine)."""

_COUNTS: tuple[str, ...] = (
    "events_7d",
    "events_30d",
    "events_all",
    *(f"{t}_count_all" for t in EVENT_TYPES),
    "distinct_users_all",
    "distinct_users_30d",
    "rating_count",
)


def item_features(
    interactions: DataFrame,
    items: DataFrame,
    *,
    as_of: datetime,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    prior_weight: float = DEFAULT_PRIOR_WEIGHT,
) -> DataFrame:
    """One row per item known at ``as_of`` (created_at <= as_of or unknown, or with an event).

    Args:
        interactions: canonical interactions.
        items: canonical items.
        as_of: timezone-aware cut-off; only events with ``timestamp <= as_of`` are read.
        half_life_days: half-life of the decay in ``decayed_events`` / ``trending_score``.
        prior_weight: C in the Bayesian-smoothed ``bayes_rating``.

    Returns:
        The columns of ``ITEM_CATALOG`` (event-type family expanded).
    """
    if half_life_days <= 0 or prior_weight < 0:
        raise ValueError(
            f"half_life_days must be > 0 and prior_weight >= 0, got {half_life_days}, {prior_weight}"
        )
    ev = interactions.where(F.col("timestamp") <= as_of_col(as_of)).withColumn(
        "_age", age_days("timestamp", as_of)
    )
    in_30 = F.col("_age") < 30
    dow = F.weekday("timestamp")
    # One shuffle of the events by item, shared by the aggregation and the joins below.
    ev = ev.repartition("item_id")
    agg = (
        ev.groupBy("item_id")
        .agg(
            F.sum(F.when(F.col("_age") < 7, 1).otherwise(0)).cast("long").alias("events_7d"),
            F.sum(F.when(in_30, 1).otherwise(0)).cast("long").alias("events_30d"),
            F.count("*").alias("events_all"),
            *(
                F.sum(F.when(F.col("event_type") == t, 1).otherwise(0))
                .cast("long")
                .alias(f"{t}_count_all")
                for t in EVENT_TYPES
            ),
            F.countDistinct("user_id").alias("distinct_users_all"),
            F.countDistinct(F.when(in_30, F.col("user_id"))).alias("distinct_users_30d"),
            F.sum(F.pow(F.lit(2.0), -F.col("_age") / half_life_days)).alias("decayed_events"),
            F.max("_age").alias("_first_age"),
            F.min("_age").alias("days_since_last_event"),
            F.count("rating").alias("rating_count"),
            F.sum("rating").alias("_rating_sum"),
            F.avg("rating").alias("rating_mean"),
            (F.sum(F.when(dow >= 5, 1).otherwise(0)) / F.count("*")).alias("weekend_share"),
            *(F.sum(F.when(dow == d, 1).otherwise(0)).alias(f"_dow{d}") for d in range(7)),
        )
        .withColumn(
            "dow_concentration",
            7.0 * F.greatest(*(F.col(f"_dow{d}") for d in range(7))) / F.col("events_all"),
        )
    )
    global_mean = ev.agg(F.avg("rating").alias("_global_mean"))
    known = items.where(F.col("created_at").isNull() | (F.col("created_at") <= as_of_col(as_of)))
    base = known.select("item_id").union(ev.select("item_id")).distinct()
    catalog = items.dropDuplicates(["item_id"]).select(
        "item_id", "categories", "price", "quality", "created_at"
    )
    recent_rate = F.col("decayed_events") * math.log(2) / half_life_days
    long_run_rate = F.col("events_all") / F.greatest(F.col("_first_age"), F.lit(1.0))
    n_categories = F.when(
        F.col("categories").isNull() | (F.length("categories") == 0), F.lit(0)
    ).otherwise(F.size(F.split("categories", "\\" + CATEGORY_SEP)))
    out = (
        base.join(agg, "item_id", "left")
        .join(catalog, "item_id", "left")
        .crossJoin(global_mean)
        .fillna(0, subset=list(_COUNTS))
        .fillna(0.0, subset=["decayed_events", "weekend_share"])
        .withColumn(
            "trending_score",
            F.when(F.col("events_all") > 0, recent_rate / long_run_rate).otherwise(0.0),
        )
        .withColumn(
            "bayes_rating",
            (prior_weight * F.col("_global_mean") + F.coalesce(F.col("_rating_sum"), F.lit(0.0)))
            / (prior_weight + F.col("rating_count")),
        )
        .withColumn("category_count", n_categories.cast("int"))
        .withColumn(
            "age_days",
            F.coalesce(age_days("created_at", as_of), F.col("_first_age")),
        )
    )
    return out.select(
        "item_id",
        as_of_col(as_of).alias("feature_timestamp"),
        *ITEM_COLUMNS[2:],
    )


def top_categories(items: DataFrame, limit: int) -> DataFrame:
    """(category, n_items) of the ``limit`` categories with most items (ties alphabetical)."""
    cats = F.explode(F.split(F.col("categories"), "\\" + CATEGORY_SEP)).alias("category")
    return (
        items.where(F.col("categories").isNotNull())
        .select("item_id", cats)
        .where(F.length("category") > 0)
        .dropDuplicates()
        .groupBy("category")
        .agg(F.count("*").alias("n_items"))
        .orderBy(F.desc("n_items"), F.asc("category"))
        .limit(limit)
    )
