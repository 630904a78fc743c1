"""Asset ``trending_items``: the top-N time-decayed popular items, published to Redis or Parquet."""

import os

import pandas as pd
from dagster import AssetExecutionContext, AutomationCondition, Config, MetadataValue, Output, asset

from recs_assets.core.monitoring.plots import bar_chart, table_markdown
from recs_assets.core.monitoring.trending import top_trending, trending_scores
from recs_assets.monitoring.trending_store import TrendingStore

TRENDING_CRON_ENV = "RECS_TRENDING_CRON"
TRENDING_CRON = os.environ.get(TRENDING_CRON_ENV, "") or "*/5 * * * *"
# At most once per cron window, and only after new interactions: both parts stay true until the
# asset is requested, so an update is never lost however the sensor's evaluations fall around a
# tick (``on_cron`` forgets an update that lands late in a window). No "deps missing" clause:
# raw_interactions has a partition per day and most days of its range never hold data, so it is
# always "missing" somewhere; an update of any day is what counts.
TRENDING_CONDITION = (
    AutomationCondition.cron_tick_passed(TRENDING_CRON).since_last_handled()
    & AutomationCondition.any_deps_updated().since_last_handled()
    & ~AutomationCondition.in_progress()
).with_label(f"after new interactions, at most once per window of {TRENDING_CRON}")


class TrendingConfig(Config):
    """``now``: ISO 8601 time to score at; empty = the newest event (the data's own clock).

    ``purchase_weight`` etc.: event weights (a view counts ``view_weight``).
    """

    half_life_hours: float = 6.0
    top_n: int = 100
    now: str = ""
    view_weight: float = 1.0
    click_weight: float = 2.0
    add_to_cart_weight: float = 3.0
    purchase_weight: float = 5.0
    rate_weight: float = 2.0

    def event_weights(self) -> dict[str, float]:
        return {
            "view": self.view_weight,
            "click": self.click_weight,
            "add_to_cart": self.add_to_cart_weight,
            "purchase": self.purchase_weight,
            "rate": self.rate_weight,
        }


@asset(automation_condition=TRENDING_CONDITION)
def trending_items(
    context: AssetExecutionContext,
    config: TrendingConfig,
    trending_store: TrendingStore,
    raw_interactions: pd.DataFrame,
) -> Output[pd.DataFrame]:
    """Items ranked by time-decayed, event-weighted popularity (the top ``top_n``)."""
    if raw_interactions.empty:
        raise ValueError("trending_items: raw_interactions is empty")
    now = pd.Timestamp(config.now) if config.now else raw_interactions["timestamp"].max()
    scores = trending_scores(raw_interactions, now, config.half_life_hours, config.event_weights())
    top = top_trending(scores, config.top_n)
    where = trending_store.publish(top)
    context.log.info(f"published {len(top)} trending items to {where}")
    return Output(
        top,
        metadata={
            "dagster/row_count": len(top),
            "now": str(now),
            "published_to": where,
            "half_life_hours": config.half_life_hours,
            "top": MetadataValue.md(table_markdown(top.head(20))),
            "plot": MetadataValue.md(
                bar_chart(top.head(20), "item_id", "score", "trending top 20")
            ),
        },
    )
