"""The daily partitions of ``raw_interactions`` (UTC days of the events' timestamps).

The first day is ``$RECS_PARTITIONS_START`` (``YYYY-MM-DD``), else ``core.phase1.daily.DEFAULT_FIRST_DAY``;
the last is today (UTC), so an event of today lands in today's partition. Events outside that range
are quarantined by ``raw_tables`` with a reason naming the setting (nothing is lost).
"""

from __future__ import annotations

import os

from dagster import AssetKey, BackfillPolicy, DagsterInstance, DailyPartitionsDefinition

from recs_assets.core.phase1.daily import FIRST_DAY_ENV, first_day

INTERACTION_DAYS = DailyPartitionsDefinition(
    start_date=first_day(os.environ.get(FIRST_DAY_ENV)), end_offset=1
)
"""One partition per UTC day, from the first day to today inclusive."""

ONE_RUN_PER_RANGE = BackfillPolicy.single_run()
"""A backfill of a range of days is one run: the source is read once, each day written apart."""


def partition_bounds() -> tuple[str, str]:
    """The first and last partition keys today."""
    first = INTERACTION_DAYS.get_first_partition_key()
    last = INTERACTION_DAYS.get_last_partition_key()
    if first is None or last is None:
        raise ValueError(f"no daily partition: {FIRST_DAY_ENV} is after today")
    return first, last


RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def clip_to_bounds(first: str, last: str) -> tuple[str, str] | None:
    """``[first, last]`` within the partitions (None when they do not overlap)."""
    low, high = partition_bounds()
    first, last = max(first, low), min(last, high)
    return (first, last) if first <= last else None


def range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags that make one run materialize the days ``first`` to ``last`` (single-run range)."""
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}


def materialized_range(instance: DagsterInstance) -> tuple[str, str] | None:
    """The first and last day of ``raw_interactions`` materialized so far (None: none yet)."""
    done = instance.get_materialized_partitions(AssetKey("raw_interactions"))
    return (min(done), max(done)) if done else None
