"""Small Spark column helpers shared by the feature transforms (no sessions, no I/O)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recs_assets.core.phase1.schema import CATEGORY_SEP

SECONDS_PER_DAY = 86_400.0
DEFAULT_SESSION_GAP_MINUTES = 30


def check_as_of(as_of: datetime) -> datetime:
    """``as_of`` must be timezone-aware (UTC wall clock everywhere in recs)."""
    if as_of.tzinfo is None:
        raise ValueError(f"as_of must be timezone-aware (UTC), got naive {as_of!r}")
    return as_of


def as_of_col(as_of: datetime) -> Column:
    return F.lit(check_as_of(as_of)).cast("timestamp")


def age_days(ts: str | Column, as_of: datetime) -> Column:
    """Days from ``ts`` to ``as_of`` (fractional, >= 0 for events at or before ``as_of``)."""
    col = F.col(ts) if isinstance(ts, str) else ts
    return (as_of_col(as_of).cast("double") - col.cast("double")) / SECONDS_PER_DAY


def slug(name: str) -> str:
    """Column-safe lower-case name: ``"Children's"`` -> ``"children_s"``."""
    s = re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")
    return s or "unnamed"


def category_columns(prefix: str, categories: Sequence[str]) -> list[str]:
    """One column name per category; raises if two categories collide after slugging."""
    names = [f"{prefix}{slug(c)}" for c in categories]
    if len(set(names)) != len(names):
        raise ValueError(f"categories collide as column names: {list(categories)}")
    return names


def item_category_weights(items: DataFrame) -> DataFrame:
    """(item_id, category, weight) with weight 1/k for an item in k categories."""
    cats = F.split(F.col("categories"), re.escape(CATEGORY_SEP))
    return (
        items.where(F.col("categories").isNotNull() & (F.length("categories") > 0))
        .select("item_id", F.explode(cats).alias("category"))
        .where(F.length("category") > 0)
        .dropDuplicates(["item_id", "category"])
        .withColumn("weight", 1.0 / F.count("*").over(Window.partitionBy("item_id")))
    )


def with_session_key(
    events: DataFrame, gap_minutes: int = DEFAULT_SESSION_GAP_MINUTES
) -> DataFrame:
    """Add ``session_key``: the given ``session_id``, else a gap-based session of the user.

    A derived session starts at a user's first event and whenever the gap to the user's previous
    event exceeds ``gap_minutes``; its key is ``"<user_id>#<n>"`` with n counting from 1.
    """
    if gap_minutes <= 0:
        raise ValueError(f"gap_minutes must be positive, got {gap_minutes}")
    w = Window.partitionBy("user_id").orderBy("timestamp", "event_id")
    gap = F.col("timestamp").cast("double") - F.lag("timestamp").over(w).cast("double")
    starts = F.when(gap.isNull() | (gap > gap_minutes * 60.0), 1).otherwise(0)
    running = w.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    return (
        events.withColumn("_new_session", starts)
        .withColumn("_session_no", F.sum("_new_session").over(running))
        .withColumn(
            "session_key",
            F.coalesce(
                F.col("session_id"),
                F.concat(F.col("user_id"), F.lit("#"), F.col("_session_no").cast("string")),
            ),
        )
        .drop("_new_session", "_session_no")
    )


def entropy_of_counts(counts: Sequence[Column], total: Column) -> Column:
    """Shannon entropy in bits of the distribution given by bucket ``counts`` summing to ``total``
    (empty buckets add 0; a zero total gives 0). Computed per row: no extra grouping pass. Pass
    ``total`` as a column computed beforehand: inlining the sum into every term makes the
    generated code quadratic in the number of buckets."""
    terms = [F.when(c > 0, (c / total) * F.log2(c / total)).otherwise(F.lit(0.0)) for c in counts]
    return F.coalesce(F.abs(sum(terms[1:], terms[0])), F.lit(0.0))
