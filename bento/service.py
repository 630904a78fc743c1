"""recs recommendation API: top-k, batch, similar items and scores for the exported model.

Serve from the repository root: ``bentoml serve bento.service:RecsService`` (port 3001). The model
is the BentoML model named by ``RECS_BENTO_MODEL`` (``recs_recommender:latest``); the response
cache is Redis when ``RECS_REDIS_URL`` is set, else an in-process LRU. Other settings: see
``recs_assets.serving.settings``. The logic lives in ``recs_assets.serving.engine``.
"""

from __future__ import annotations

import logging
import os
from typing import Annotated

import bentoml
from pydantic import Field

from recs_assets.serving.cache import make_cache
from recs_assets.serving.engine import RecommendationEngine
from recs_assets.serving.export import serving_model_from_store
from recs_assets.serving.metrics import default_metrics
from recs_assets.serving.schemas import (
    BatchRecommendations,
    ModelInfo,
    Recommendations,
    RequestContext,
    Scores,
    SimilarItems,
)
from recs_assets.serving.settings import DEFAULT_MODEL_TAG, ServingSettings

logger = logging.getLogger("recs.service")

UserId = Annotated[str, Field(min_length=1, max_length=256, description="External user id.")]
ItemId = Annotated[str, Field(min_length=1, max_length=256, description="External item id.")]
K = Annotated[
    int, Field(ge=1, le=100, strict=True, description="Number of items to return, 1-100.")
]
ExcludeSeen = Annotated[
    bool, Field(strict=True, description="Leave out items the user interacted with in training.")
]


@bentoml.service(name="recs", http={"port": 3001}, traffic={"timeout": 30})
class RecsService:
    """Recommendations from the champion model, cached, with a popularity fallback."""

    bento_model = bentoml.models.BentoModel(os.environ.get("RECS_BENTO_MODEL", DEFAULT_MODEL_TAG))

    def __init__(self) -> None:
        self.settings = ServingSettings.from_env()
        self.model = serving_model_from_store(self.bento_model)
        self.engine: RecommendationEngine | None = None
        logger.info("loaded %s (%s)", self.bento_model.tag, self.model.model_name)

    @bentoml.on_startup
    def open_cache(self) -> None:
        """Per-worker cache connection (lazy: Redis is contacted on the first request)."""
        s = self.settings
        cache = make_cache(
            s.redis_url, s.cache_ttl_s, s.cache_size, s.redis_timeout_s, s.redis_backoff_s
        )
        self.engine = RecommendationEngine(self.model, cache, s, default_metrics())
        logger.info("cache: %s", cache.kind)

    def __is_ready__(self) -> bool:
        return self.engine is not None

    def _engine(self) -> RecommendationEngine:
        if self.engine is None:
            raise bentoml.exceptions.ServiceUnavailable("service is starting: cache not opened yet")
        return self.engine

    @bentoml.api
    def recommend(
        self,
        user_id: UserId,
        k: K = 10,
        exclude_seen: ExcludeSeen = True,
        context: Annotated[
            RequestContext | None, Field(description="Optional request context (device, hour).")
        ] = None,
    ) -> Recommendations:
        """Top-k items for one user; unknown users get the most popular items (source fallback)."""
        ctx = context.model_dump(exclude_none=True) if context is not None else None
        return self._engine().recommend(user_id, k, exclude_seen, ctx)

    @bentoml.api
    def recommend_batch(
        self,
        user_ids: Annotated[
            list[UserId],
            Field(min_length=1, description="User ids (at most RECS_MAX_BATCH_USERS)."),
        ],
        k: K = 10,
        exclude_seen: ExcludeSeen = True,
    ) -> BatchRecommendations:
        """Top-k items for several users in one call, in request order."""
        return self._engine().recommend_batch(user_ids, k, exclude_seen)

    @bentoml.api
    def similar_items(self, item_id: ItemId, k: K = 10) -> SimilarItems:
        """Items most similar to one item (404 for an unknown item)."""
        return self._engine().similar_items(item_id, k)

    @bentoml.api
    def score(
        self,
        user_id: UserId,
        item_ids: Annotated[
            list[ItemId],
            Field(min_length=1, description="Items to score (at most RECS_MAX_SCORE_ITEMS)."),
        ],
    ) -> Scores:
        """Scores of given items for one user (404 when an item is unknown)."""
        return self._engine().score(user_id, item_ids)

    @bentoml.api
    def model_info(self) -> ModelInfo:
        """Model version, labels, load status and cache counters of this worker."""
        return self._engine().info()
