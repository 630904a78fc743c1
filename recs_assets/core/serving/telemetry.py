"""Prometheus metrics of the recommendation service (exposed by BentoML at ``/metrics``).

Created lazily, never at import: BentoML workers set ``PROMETHEUS_MULTIPROC_DIR`` after importing
the service module, and ``prometheus_client`` must see it when metrics are made.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache

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
