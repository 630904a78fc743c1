"""Time-decayed popularity ("trending") and where it is published (Redis sorted set or Parquet).

``score(item) = sum over the item's events at or before now of w(event_type) * 0.5 ** (age_h / half_life_h)``:
an event counts 1 when it is fresh and half as much every ``half_life_hours`` later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import redis
from dagster import ConfigurableResource

from recs_assets.paths import data_subdir

REDIS_URL_ENV = "RECS_REDIS_URL"
TRENDING_KEY = "recs:trending:v1"


def trending_scores(
    events: pd.DataFrame,
    now: pd.Timestamp,
    half_life_hours: float,
    event_weights: Mapping[str, float] | None = None,
) -> pd.Series:
    """Decayed event count per item (index ``item_id``), highest first, ties by item id.

    Events after ``now`` are ignored. ``event_weights`` (event_type -> weight; types not named
    weigh 0) default to 1 for every event.
    """
    if half_life_hours <= 0:
        raise ValueError(f"half_life_hours must be > 0, got {half_life_hours}")
    now = pd.Timestamp(now)
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware (UTC), got {now}")
    past = events[events["timestamp"] <= now]
    age_h = (now - past["timestamp"]).dt.total_seconds().to_numpy() / 3600.0
    weight = np.power(0.5, age_h / half_life_hours)
    if event_weights is not None:
        weight = weight * past["event_type"].map(dict(event_weights)).fillna(0.0).to_numpy(float)
    scores = pd.Series(weight, index=past["item_id"].astype(str).to_numpy()).groupby(level=0).sum()
    scores = scores[scores > 0]
    scores.index.name = "item_id"
    order = np.lexsort((scores.index.to_numpy(), -scores.to_numpy()))
    return scores.iloc[order].rename("score")


def top_trending(scores: pd.Series, n: int) -> pd.DataFrame:
    """The first ``n`` of ``trending_scores`` as a frame (rank from 1, item_id, score)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    top = scores.head(n)
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(top) + 1),
            "item_id": top.index.astype(str),
            "score": top.to_numpy(),
        }
    )


class TrendingStore(ConfigurableResource):
    """Where trending items are published for the service.

    Attributes:
        redis_url: Redis URL; empty means ``$RECS_REDIS_URL``; when neither is set, Parquet.
        key: the Redis sorted set (member item_id, score the trending score).
        path: Parquet file used without Redis; empty means ``<data dir>/trending/trending_items.parquet``.
    """

    redis_url: str = ""
    key: str = TRENDING_KEY
    path: str = ""

    def resolved_url(self) -> str:
        return self.redis_url or os.environ.get(REDIS_URL_ENV, "")

    def parquet_path(self) -> Path:
        if self.path:
            return Path(self.path)
        return data_subdir("trending") / "trending_items.parquet"

    def target(self) -> str:
        url = self.resolved_url()
        return f"redis sorted set {self.key} at {url}" if url else f"parquet {self.parquet_path()}"

    def publish(self, top: pd.DataFrame) -> str:
        """Replace the published list with ``top`` (rank, item_id, score) atomically; returns where."""
        url = self.resolved_url()
        if url:
            client = redis.Redis.from_url(url)
            staging = f"{self.key}:staging"
            pipe = client.pipeline(transaction=True)
            pipe.delete(staging)
            if len(top):
                pipe.zadd(
                    staging, dict(zip(top["item_id"], top["score"].astype(float), strict=True))
                )
                pipe.rename(staging, self.key)
            else:
                pipe.delete(self.key)
            pipe.execute()
            client.close()
        else:
            path = self.parquet_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            top.to_parquet(tmp, index=False)
            tmp.rename(path)
        return self.target()

    def read(self, n: int = -1) -> pd.DataFrame:
        """The published list, highest first (rank, item_id, score); ``n`` < 0 means all."""
        url = self.resolved_url()
        if url:
            client = redis.Redis.from_url(url)
            pairs = client.zrevrange(self.key, 0, n - 1 if n > 0 else -1, withscores=True)
            client.close()
            return pd.DataFrame(
                {
                    "rank": np.arange(1, len(pairs) + 1),
                    "item_id": [m.decode() for m, _ in pairs],
                    "score": [s for _, s in pairs],
                }
            )
        frame = pd.read_parquet(self.parquet_path())
        return frame if n < 0 else frame.head(n)
