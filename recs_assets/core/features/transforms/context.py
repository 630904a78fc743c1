"""Context features: one row per event, describing when and where it happened.

Pure Spark. Every value uses only the event itself and earlier events of the same user, so the
table can be joined to training examples without leakage.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recs_assets.core.features.feature_spec import FeatureSpec
from recs_assets.core.features.transforms._columns import (
    DEFAULT_SESSION_GAP_MINUTES,
    with_session_key,
)

UNKNOWN = "unknown"

CONTEXT_CATALOG: tuple[FeatureSpec, ...] = (
    FeatureSpec("event_id", "string", "Event key.", "event"),
    FeatureSpec("user_id", "string", "User of the event.", "event"),
    FeatureSpec("item_id", "string", "Item of the event.", "event"),
    FeatureSpec("timestamp", "timestamp", "Event time (UTC).", "event"),
    FeatureSpec("hour_of_day", "int", "UTC hour, 0-23.", "event"),
    FeatureSpec("day_of_week", "int", "UTC ISO day of week, 1 = Monday ... 7 = Sunday.", "event"),
    FeatureSpec("is_weekend", "boolean", "day_of_week is 6 or 7.", "event"),
    FeatureSpec("device", "string", f"Event device, '{UNKNOWN}' when not recorded.", "event"),
    FeatureSpec("platform", "string", f"Event platform, '{UNKNOWN}' when not recorded.", "event"),
    FeatureSpec(
        "session_key",
        "string",
        "session_id when given, else '<user_id>#<n>' with a new session after a 30-minute gap; "
        "sessions are per user (a session_id shared by two users is two sessions).",
        "event",
    ),
    FeatureSpec(
        "position_in_session",
        "int",
        "1-based rank of the event in its session by (timestamp, event_id).",
        "event",
    ),
    FeatureSpec(
        "seconds_since_session_start",
        "double",
        "Event time minus the session's first event.",
        "event",
    ),
    FeatureSpec(
        "seconds_since_prev_event",
        "double",
        "Gap to the user's previous event; null for the user's first event.",
        "event",
    ),
)


def context_features(
    interactions: DataFrame, *, session_gap_minutes: int = DEFAULT_SESSION_GAP_MINUTES
) -> DataFrame:
    """One row per event with the columns of ``CONTEXT_CATALOG``."""
    # Sessions belong to one user: every window is within a user, so one shuffle by user serves all.
    # Every column reads only the user's events at or before the row (lag, running numbers, the
    # session's minimum time): an incremental build keeps the rows of the days before the first
    # changed one (``tables.day_reuse``). A column that looks ahead (a session's end or length)
    # would break that rule.
    ev = with_session_key(interactions.repartition("user_id"), session_gap_minutes)
    in_session = Window.partitionBy("user_id", "session_key").orderBy("timestamp", "event_id")
    session_all = Window.partitionBy("user_id", "session_key")
    by_user = Window.partitionBy("user_id").orderBy("timestamp", "event_id")
    secs = F.col("timestamp").cast("double")
    day_of_week = F.weekday("timestamp") + 1
    return ev.select(
        "event_id",
        "user_id",
        "item_id",
        "timestamp",
        F.hour("timestamp").alias("hour_of_day"),
        day_of_week.alias("day_of_week"),
        (day_of_week >= 6).alias("is_weekend"),
        F.coalesce(F.col("device"), F.lit(UNKNOWN)).alias("device"),
        F.coalesce(F.col("platform"), F.lit(UNKNOWN)).alias("platform"),
        "session_key",
        F.row_number().over(in_session).cast("int").alias("position_in_session"),
        (secs - F.min(secs).over(session_all)).alias("seconds_since_session_start"),
        (secs - F.lag(secs).over(by_user)).alias("seconds_since_prev_event"),
    )
