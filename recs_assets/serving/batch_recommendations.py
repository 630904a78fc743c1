"""Asset ``batch_recommendations``: top-k for every user of the served model, as Parquet."""

import time

import numpy as np
from dagster import AssetExecutionContext, Config, MetadataValue, Output, asset
from pydantic import Field

from recs_assets.core.serving.batch_scoring import (
    batch_top_k,
    most_active_users,
    recommendations_frame,
    write_recommendations,
)
from recs_assets.core.serving.engine import RecommendationEngine
from recs_assets.core.serving.export import load_serving_model
from recs_assets.core.serving.settings import ServingSettings
from recs_assets.core.serving.telemetry import ServingMetrics
from recs_assets.platform.data_dir import DataDirResource
from recs_assets.serving.cache_resource import ServingCacheResource


class BatchRecommendationsConfig(Config):
    """How many items per user, and how many of the most active users to pre-cache."""

    k: int = Field(10, ge=1, le=100, description="Items per user.")
    exclude_seen: bool = Field(True, description="Leave out training interactions.")
    block: int = Field(2048, ge=1, description="Users scored per dense block.")
    warm_users: int = Field(1000, ge=0, description="Most active users written to the cache.")


@asset
def batch_recommendations(
    context: AssetExecutionContext,
    config: BatchRecommendationsConfig,
    data_dir: DataDirResource,
    serving_cache: ServingCacheResource,
    bento_model: str,
) -> Output[str]:
    """Parquet path of the top-k list (user_id, rank, item_id, score) of every known user."""
    serving = load_serving_model(bento_model)
    if serving.recommender is None:
        raise RuntimeError(f"{bento_model} has no loadable model: {serving.load_error}")
    train = serving.train
    users = np.arange(train.n_users)
    start = time.perf_counter()
    exclude = train.matrix if config.exclude_seen else None
    items, scores = batch_top_k(serving.recommender, users, config.k, exclude, config.block)
    seconds = time.perf_counter() - start
    frame = recommendations_frame(train, users, items, scores)
    path = write_recommendations(
        frame, data_dir.root() / "serving" / "batch_recommendations.parquet"
    )
    warmed = 0
    cache = serving_cache.cache()
    if cache is not None and config.warm_users:
        settings = ServingSettings(
            cache_ttl_s=serving_cache.ttl_s, cache_prefix=serving_cache.prefix
        )
        engine = RecommendationEngine(serving, cache, settings, ServingMetrics.create(None))
        active = most_active_users(train, config.warm_users)
        warmed = engine.warm(active, config.k, config.exclude_seen, config.block)
        cache.close()
    context.log.info(f"{len(users)} users scored in {seconds:.2f}s; {warmed} cached")
    return Output(
        str(path),
        metadata={
            "path": MetadataValue.path(str(path)),
            "bento_model": bento_model,
            "rows": len(frame),
            "users": len(users),
            "seconds": round(seconds, 3),
            "catalog_coverage": round(frame["item_id"].nunique() / train.n_items, 4),
            "warmed_users": warmed,
            "preview": MetadataValue.md(frame.head(10).to_markdown(index=False)),
        },
    )
