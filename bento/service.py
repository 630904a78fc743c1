"""recs recommendation API: top-k, batch, similar items and scores for the exported model.

Serve from the repository root: ``bentoml serve bento.service:RecsService`` (port 3001). The model
is the BentoML model named by ``RECS_BENTO_MODEL`` (``recs_recommender:latest``); the response
cache is Redis when ``RECS_REDIS_URL`` is set, else an in-process LRU. Other settings: see
``recs_assets.core.serving.settings``. The logic lives in ``recs_assets.core.serving.engine``; A/B
experiments (``RECS_AB_CONFIG``) and the exposure log in ``recs_assets.core.serving.abtest`` and
``recs_assets.core.serving.exposure`` (see docs/ab_testing.md). The champion model follows the MLflow
``champion`` alias without a restart (``RECS_MODEL_POLL_S``; ``recs_assets.core.serving.champion_watcher``).
With ``RECS_FEAST_REPO``, a feature-based model answers users it never saw from their Feast online
features (``recs_assets.core.serving.online_feature_reader``). Trending items (``RECS_TRENDING_*``) answer the
other new users and fill trending slots (``recs_assets.core.serving.trending_follower``).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated, Literal

import bentoml
from bentoml._internal.context import server_context
from pydantic import Field
from threadpoolctl import threadpool_limits

from recs_assets.core.forget import forget_user, targets_from_env
from recs_assets.core.serving.abtest import ExperimentRouter, load_experiment, load_variant_models
from recs_assets.core.serving.access import AccessControl, checked_keys
from recs_assets.core.serving.cache import Cache, LRUCache, make_cache
from recs_assets.core.serving.champion_watcher import (
    ChampionWatcher,
    champion_watcher_from_settings,
)
from recs_assets.core.serving.engine import RecommendationEngine
from recs_assets.core.serving.export import (
    StartupModelError,
    check_startup_model,
    load_serving_model,
    serving_model_from_store,
)
from recs_assets.core.serving.exposure import exposure_log_from_env
from recs_assets.core.serving.heap import freeze_long_lived
from recs_assets.core.serving.impressions import impression_index_from_env
from recs_assets.core.serving.limits import BodyLimit, max_body_bytes
from recs_assets.core.serving.online_feature_reader import (
    OnlineFeatureReader,
    online_feature_reader_from_settings,
)
from recs_assets.core.serving.openapi import ApiContract
from recs_assets.core.serving.schemas import (
    BatchRecommendations,
    FeedbackAck,
    ForgetAck,
    ModelInfo,
    Recommendations,
    RequestContext,
    Scores,
    SimilarItems,
    WholeNumber,
)
from recs_assets.core.serving.settings import (
    ServingSettings,
    bento_model_tag,
    native_threads,
    serving_workers,
)
from recs_assets.core.serving.telemetry import (
    bounded_route_metrics,
    default_metrics,
    quiet_client_errors,
)
from recs_assets.core.serving.trending_follower import (
    TrendingFollower,
    trending_follower_from_settings,
)

logger = logging.getLogger("recs.service")
quiet_client_errors()  # a rejected request logs one line, not a traceback
bounded_route_metrics()  # /metrics labels: declared routes only, unknown paths share one

# printable ids only: a NUL byte or a line break in an id would be stored in the feedback and
# exposure logs and the training data (400 names the field)
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
UserId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=256,
        pattern=PRINTABLE,
        description="External user id (no control characters).",
    ),
]
ItemId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=256,
        pattern=PRINTABLE,
        description="External item id (no control characters).",
    ),
]
K = Annotated[
    int,
    Field(ge=1, le=100, strict=True, description="Number of items to return, 1-100."),
    WholeNumber,  # 10.0 is an integer to JSON Schema; true and "10" stay a 400
]
ExcludeSeen = Annotated[
    bool, Field(strict=True, description="Leave out items the user interacted with in training.")
]


# A short request timeout keeps few requests' timers and traces alive at once: at 200 requests/s a
# 30 s timeout kept ~200,000 objects for the collector to scan (100 ms pauses); 5 s keeps p99 low.
REQUEST_TIMEOUT_S = float(os.environ.get("RECS_REQUEST_TIMEOUT_S", "5"))
# RECS_BENTO_MODEL, else the model a built Bento was made for, else the newest exported one
MODEL_TAG = bento_model_tag(__file__)
# Threads per worker for the endpoints (BentoML's default is 1: a batch would stall every other
# request of its worker until it ends), and the interpreter's thread switch interval.
THREADS = int(os.environ.get("RECS_THREADS", "4"))
SWITCH_INTERVAL_S = float(os.environ.get("RECS_SWITCH_INTERVAL_S", "0.001"))
try:
    WORKERS = serving_workers()  # RECS_WORKERS; one per core in production, one locally
    BLAS_THREADS = native_threads(WORKERS)  # RECS_NATIVE_THREADS; the cores shared by workers
except ValueError as exc:  # one line, like the other configuration errors below
    raise SystemExit(str(exc)) from None


@bentoml.service(
    name="recs",
    http={"port": 3001},
    traffic={"timeout": REQUEST_TIMEOUT_S},
    threads=THREADS,
    workers=WORKERS,
)
class RecsService:
    """Recommendations from the champion model, cached, with a popularity fallback."""

    bento_model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        self.settings = ServingSettings.from_env()
        self.experiment = load_experiment(variant=self.settings.variant)
        self.models = load_variant_models(
            self.experiment, serving_model_from_store(self.bento_model), load_serving_model
        )
        self.router: ExperimentRouter | None = None
        self.watcher: ChampionWatcher | None = None
        self.features: OnlineFeatureReader | None = None
        self.trending: TrendingFollower | None = None
        self.cache: Cache | None = None
        for name, m in self.models.items():
            logger.info("variant %s: %s (%s)", name, m.labels.get("bento_tag"), m.model_name)

    @bentoml.on_startup
    def start_worker(self) -> None:
        """Open this worker's connections and threads: the response cache (lazy: Redis is
        contacted on the first request), the online feature reader, the trending follower, the
        experiment router, and the watcher that follows the champion alias."""
        s = self.settings
        # a long batch holds the GIL at most 1 ms at a time (default 5 ms), so the requests beside
        # it get their turns: /recommend p99 beside maximal batches (bench/faults.py)
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        # workers scoring at once share the cores instead of each spawning a BLAS thread per core
        threadpool_limits(limits=BLAS_THREADS, user_api="blas")
        cache = make_cache(
            s.redis_url, s.cache_ttl_s, s.cache_size, s.redis_timeout_s, s.redis_backoff_s
        )
        self.cache = cache
        metrics = default_metrics()
        self.features = online_feature_reader_from_settings(s, cache, metrics)
        self.trending = trending_follower_from_settings(s, metrics)
        if self.trending is not None:
            self.trending.start()  # reads now, then every RECS_TRENDING_REFRESH_S on a thread
        self.router = ExperimentRouter.create(
            self.experiment,
            self.models,
            cache,
            s,
            metrics,
            exposure_log_from_env(),
            self.features,
            self.trending,
            impression_index_from_env(redis_url=s.redis_url, prefix=s.cache_prefix),
        )
        logger.info("cache: %s; experiment %s", cache.kind, self.experiment.name)
        freeze_long_lived()  # everything loaded so far lives as long as the worker
        self.watcher = champion_watcher_from_settings(self.router, s, metrics)
        if self.watcher is not None:
            self.watcher.start()

    @bentoml.on_shutdown
    def stop_worker(self) -> None:
        """Stop the watcher and the follower; write the exposure log's buffered rows; close."""
        if self.watcher is not None:
            self.watcher.stop()
        if self.router is not None:
            self.router.close()
        if self.features is not None:
            self.features.close()
        if self.trending is not None:
            self.trending.stop()

    def __is_ready__(self) -> bool:
        return self.router is not None

    def _engine(self) -> RecommendationEngine:
        """The control variant's engine (the one hot reload swaps)."""
        return self._router().control_engine

    def _router(self) -> ExperimentRouter:
        if self.router is None:
            raise bentoml.exceptions.ServiceUnavailable("service is starting: cache not opened yet")
        return self.router

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
        """Top-k items for one user; unknown users get trending, else popular items (fallback)."""
        ctx = context.model_dump(exclude_none=True) if context is not None else None
        return self._router().recommend(user_id, k, exclude_seen, ctx)

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
        return self._router().recommend_batch(user_ids, k, exclude_seen)

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
        return self._router().score(user_id, item_ids)

    @bentoml.api
    def feedback(
        self,
        user_id: UserId,
        item_id: ItemId,
        event: Annotated[Literal["click", "conversion"], Field(description="What the user did.")],
        variant: Annotated[
            str | None, Field(description="Variant shown; default: the user's assignment.")
        ] = None,
        model_version: Annotated[
            str | None, Field(description="Model version shown; default: the variant's.")
        ] = None,
    ) -> FeedbackAck:
        """Record a click or conversion on a recommended item (400 for unknown items/variants)."""
        return self._router().feedback(user_id, item_id, event, variant, model_version)

    @bentoml.api
    def forget_user(self, user_id: UserId) -> ForgetAck:
        """Admin: remove a user (the id the tables hold) from the data dir's tables and logs, the
        online store, the caches and impressions, and log the request so retrains leave the user
        out. The served model forgets the user at the next retrain (docs/security.md)."""
        router = self._router()
        if router.exposure is not None:
            router.exposure.flush()  # rows still buffered would bring the user back
        report = forget_user(targets_from_env(), user_id, requested_by="api")
        cached = self.cache.forget_user(user_id) if isinstance(self.cache, LRUCache) else 0
        if router.impressions is not None:
            router.impressions.forget_user(user_id)
        return ForgetAck(
            user_id=user_id,
            request_id=report.request_id,
            parquet_rows=report.parquet_rows,
            online_store_rows=report.online_store_rows,
            redis_keys=report.redis_keys,
            cached_lists=cached,
        )

    @bentoml.api
    def model_info(self) -> ModelInfo:
        """Model version, labels, load status and cache counters of this worker."""
        info = self._engine().info()
        if self.watcher is not None:
            info.champion_alias = self.watcher.wanted
        return info


# API keys with scopes and per-key rate limits (off in the local default; required in production).
# A broken key configuration stops `bentoml serve` here, before any worker starts, with one line.
# A model that cannot load stops it too, checked in the serving process before any worker starts
# (workers have a worker_index; a plain import or `bentoml build` does not check): one line and
# exit status 1, not a restart loop.
try:
    checked_keys()
    if server_context.worker_index is None and sys.argv[1:2] == ["serve"]:  # `bentoml serve`
        check_startup_model(MODEL_TAG)
except (ValueError, StartupModelError) as exc:
    raise SystemExit(str(exc)) from None
RecsService.add_asgi_middleware(AccessControl)
# bodies above RECS_MAX_BODY_BYTES get 413 before they are read whole
RecsService.add_asgi_middleware(BodyLimit, max_bytes=max_body_bytes())
# /docs.json declares every answer (errors, nullable fields); error bodies are objects
RecsService.add_asgi_middleware(ApiContract)
