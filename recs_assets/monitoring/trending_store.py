"""Where trending items are published for the service: a Redis sorted set, or Parquet without Redis.

The scores themselves are computed in ``recs_assets.core.monitoring.trending``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import redis
from dagster import ConfigurableResource

from recs_assets.core.contracts import REDIS_URL_ENV, TRENDING_KEY, trending_path


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
        return trending_path()

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
