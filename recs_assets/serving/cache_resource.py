"""Serving resources: the response cache that ``batch_recommendations`` warms."""

from __future__ import annotations

from dagster import ConfigurableResource

from recs_assets.core.serving.cache import Cache, make_cache


class ServingCacheResource(ConfigurableResource):
    """The service's response cache, as seen from Dagster (to warm it after an export).

    Attributes:
        redis_url: Redis URL of the deployed service's cache; empty means no shared cache
            (local deployment: nothing to warm).
        ttl_s: lifetime of warmed entries, seconds.
        prefix: key prefix, the same as the service's ``RECS_CACHE_PREFIX``.
    """

    redis_url: str = ""
    ttl_s: int = 600
    prefix: str = "recs"

    def cache(self) -> Cache | None:
        """A Redis cache, or None when no ``redis_url`` is configured."""
        return make_cache(self.redis_url, self.ttl_s, 1) if self.redis_url else None
