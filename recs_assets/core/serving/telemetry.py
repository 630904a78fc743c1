"""Prometheus metrics of the recommendation service (exposed by BentoML at ``/metrics``).

Created lazily, never at import: BentoML workers set ``PROMETHEUS_MULTIPROC_DIR`` after importing
the service module, and ``prometheus_client`` must see it when metrics are made.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, MutableMapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class ServingMetrics:
    """The service's own counters and histograms.

    Attributes:
        requests: answers by endpoint and source (model / cache / fallback).
        cache: cache lookups by result (hit / miss) and backend errors (error).
        fallbacks: popularity/co-occurrence answers by reason.
        errors: failed or rejected requests by endpoint and kind.
        latency: seconds spent computing an answer, by endpoint.
        model_info: 1 for the model version this worker serves (labels say which), 0 for the
            versions it served before a hot reload.
        reloads: polls of the champion alias by outcome (``recs_assets.core.serving.champion_watcher.OUTCOMES``).
        online_features: online-feature lookups of unknown users by result
            (``recs_assets.core.serving.online_feature_reader.RESULTS``).
        trending_reads: reads of the published trending list by result
            (``recs_assets.core.serving.trending_follower.RESULTS``).
        cold_start: lists for users the model never saw and features did not answer, by the
            list they got (``trending`` or ``popularity``).
        blended: items placed into lists by their slot (``trending`` / ``exploration``).
        registry: where they are registered (None: not registered, multiprocess files only).
    """

    requests: Counter
    cache: Counter
    fallbacks: Counter
    errors: Counter
    latency: Histogram
    model_info: Gauge
    reloads: Counter
    online_features: Counter
    trending_reads: Counter
    cold_start: Counter
    blended: Counter
    registry: CollectorRegistry | None = None

    @classmethod
    def create(cls, registry: CollectorRegistry | None) -> ServingMetrics:
        """Metrics registered in ``registry`` (a fresh ``CollectorRegistry()`` in tests)."""
        kw = {"registry": registry}
        return cls(
            requests=Counter("recs_requests", "Answers served", ["endpoint", "source"], **kw),
            cache=Counter("recs_cache", "Cache lookups and errors", ["result"], **kw),
            fallbacks=Counter("recs_fallbacks", "Fallback answers", ["reason"], **kw),
            errors=Counter(
                "recs_errors", "Failed or rejected requests", ["endpoint", "kind"], **kw
            ),
            latency=Histogram(
                "recs_inference_seconds",
                "Time to compute an answer",
                ["endpoint"],
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
                **kw,
            ),
            model_info=Gauge(
                "recs_model_info",
                "Model served by this worker (value 1)",
                ["model_version", "model_name", "variant", "loaded"],
                multiprocess_mode="livemax",
                **kw,
            ),
            reloads=Counter(
                "recs_model_reloads", "Polls of the champion alias by outcome", ["result"], **kw
            ),
            online_features=Counter(
                "recs_online_features",
                "Online-feature lookups of unknown users by result",
                ["result"],
                **kw,
            ),
            trending_reads=Counter(
                "recs_trending_reads", "Reads of the trending list by result", ["result"], **kw
            ),
            cold_start=Counter(
                "recs_cold_start", "Lists for unknown users by the list served", ["list"], **kw
            ),
            blended=Counter(
                "recs_blended_items", "Items placed in lists by slot kind", ["reason"], **kw
            ),
            registry=registry,
        )


@cache
def default_metrics() -> ServingMetrics:
    """The process-wide metrics in prometheus_client's default registry (one set per process)."""
    return ServingMetrics.create(REGISTRY)


class OneLineClientErrors(logging.Filter):
    """A rejected request (a 4xx: validation error, unknown item) logs one line, no traceback.

    BentoML logs every exception of an endpoint with its traceback at ERROR, the 400s of bad
    input included (2.3 KB each): a client could fill the log. Installed on BentoML's HTTP-app
    logger; a server error (5xx) keeps its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or record.exc_info[1] is None:
            return True
        error = record.exc_info[1]
        status = _client_status(error)
        if status is None:
            return True
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        record.msg = f"rejected ({status}): {record.getMessage()}: {type(error).__name__}: {first}"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _client_status(error: BaseException) -> int | None:
    """The 4xx status an exception answers with, or None for a server error."""
    code = getattr(error, "error_code", None)
    status = int(code) if code is not None else None
    if status is None and type(error).__name__ == "ValidationError":  # pydantic: a 400
        status = 400
    return status if status is not None and 400 <= status < 500 else None


HTTP_APP_LOGGER = "bentoml._internal.server.http_app"


def quiet_client_errors() -> None:
    """Install ``OneLineClientErrors`` on BentoML's HTTP-app logger (once)."""
    target = logging.getLogger(HTTP_APP_LOGGER)
    if not any(isinstance(f, OneLineClientErrors) for f in target.filters):
        target.addFilter(OneLineClientErrors())


# BentoML's own pages; every other path outside the service's API routes shares UNMATCHED
BUILTIN_ROUTES = frozenset(
    {"/", "/docs.json", "/schema.json", "/metrics", "/healthz", "/livez", "/readyz", "/health"}
)
UNMATCHED = "/<unmatched>"
STATIC_PREFIX = "/static_content/"


def route_label(path: str, routes: Collection[str]) -> str:
    """The ``endpoint`` label of a request: its path when it is a declared API route or one of
    BentoML's pages, ``/static_content`` for the Swagger UI's files, else ``UNMATCHED``.

    A label made from any path a client sends is a new Prometheus series per path: 200 random
    paths grew ``/metrics`` from 136 KB to 860 KB, and the series live as long as the process.
    """
    if path in routes or path in BUILTIN_ROUTES:
        return path
    if path.startswith(STATIC_PREFIX):
        return STATIC_PREFIX.rstrip("/")
    return UNMATCHED


_ORIGINAL_PATH = "recs.original_path"


def bounded_route_metrics() -> None:
    """Make BentoML's HTTP metrics middleware label requests with ``route_label``.

    BentoML puts its metrics middleware outside every user middleware and labels each request
    with the raw ``scope["path"]``, so a user middleware cannot bound the labels. This swaps in
    a subclass, before the worker builds its app, that gives the middleware a copy of the scope
    with the bounded label as its path and restores the real path for the app inside. Call it at
    import of the service module (``bento/service.py``); it is idempotent.
    """
    from bentoml._internal.context import server_context
    from bentoml._internal.server.http import instruments

    base = instruments.RunnerTrafficMetricsMiddleware
    if getattr(base, "bounded_routes", False):
        return

    class BoundedRouteMetrics(base):  # type: ignore[misc, valid-type]
        bounded_routes = True

        def __init__(self, app: Any, **kwargs: Any) -> None:
            async def restore_path(
                scope: MutableMapping[str, Any], receive: Any, send: Any
            ) -> None:
                if _ORIGINAL_PATH in scope:
                    scope = {**scope, "path": scope[_ORIGINAL_PATH]}
                await app(scope, receive, send)

            super().__init__(restore_path, **kwargs)

        async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                label = route_label(scope["path"], server_context.service_routes)
                if label != scope["path"]:
                    scope = {**scope, "path": label, _ORIGINAL_PATH: scope["path"]}
            await super().__call__(scope, receive, send)

    instruments.RunnerTrafficMetricsMiddleware = BoundedRouteMetrics
