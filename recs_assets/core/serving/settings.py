"""Serving settings, read once from the environment when a service worker starts.

Environment variables (all optional):

- ``RECS_BENTO_MODEL``: tag of the model in the BentoML model store (``recs_recommender:latest``).
- ``RECS_REDIS_URL``: Redis URL for the response cache (``redis://127.0.0.1:6379/0``); unset means
  an in-process LRU cache per worker.
- ``RECS_CACHE_TTL_S``: cache entry lifetime in seconds (600).
- ``RECS_CACHE_PREFIX``: prefix of every cache key (``recs``).
- ``RECS_CACHE_SIZE``: entries kept by the in-process LRU (10000).
- ``RECS_REDIS_TIMEOUT_S``: Redis connect and socket timeout in seconds (0.1).
- ``RECS_REDIS_BACKOFF_S``: how long to stop calling Redis after a failure (1.0).
- ``RECS_MAX_BATCH_USERS``: most user ids in one ``/recommend_batch`` request (1000).
- ``RECS_MAX_SCORE_ITEMS``: most item ids in one ``/score`` request (1000).
- ``RECS_MAX_BATCH_ITEMS``: most items one ``/recommend_batch`` answer may hold, users x k
  (10000): 1,000 users x k=100 took 0.6 s of one worker; the cap keeps a maximal batch near 0.2 s
  (``bench/faults.py``).
- ``RECS_VARIANT``: experiment variant reported with every answer (``champion``).
- ``RECS_MODEL_POLL_S``: seconds between two reads of the MLflow champion alias; the service swaps
  in the model it names (``recs_assets.core.serving.champion_watcher``). 0 turns hot reload off (5).
- ``RECS_MODEL_NAME``: registered MLflow model whose alias is followed (``recs-champion``).
- ``RECS_MODEL_ALIAS``: the alias followed (``champion``).
- ``MLFLOW_TRACKING_URI``: where that registry is (default: the repository's ``.mlflow/`` store).
- ``RECS_FEAST_REPO``: folder of the Feast repo (``feature_store.yaml``, written by the
  ``FeastResource``: ``<data dir>/feast_repo``); a feature-based model then answers users it never
  saw from their online features (``recs_assets.core.serving.online_feature_reader``). Unset: off.
- ``RECS_FEAST_TIMEOUT_S``: longest wait for one online-feature read, seconds (0.05).
- ``RECS_FEAST_BACKOFF_S``: after a failed or slow read, skip the online store this long (5.0).
- ``RECS_TRENDING_REFRESH_S``: seconds between two reads of the published trending list (Redis
  sorted set with ``RECS_REDIS_URL``, else the Parquet file; ``recs_assets.core.serving.trending_follower``);
  users the model never saw get it (60). 0 turns trending off (popularity for them, as before).
- ``RECS_TRENDING_SLOTS``: the last positions of every model list given to trending items (0).
- ``RECS_EXPLORATION_SLOTS``: positions given to items with little feedback (active learning; 0: off).
- ``RECS_EXPLORATION_MAX_FEEDBACK``: items with at most this many training interactions are
  exploration candidates (5).

Slots are per list: trending and exploration slots together take at most ``k - 1`` positions of a
list of ``k`` (one model item is always kept); trending slots are filled first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from recs_assets.core.contracts import (
    CHAMPION_ALIAS,
    CHAMPION_MODEL,
    REDIS_URL_ENV,
    is_production,
)

DEFAULT_MODEL_TAG = "recs_recommender:latest"
DEFAULT_REGISTERED_MODEL = CHAMPION_MODEL
DEFAULT_ALIAS = CHAMPION_ALIAS
MAX_SLOTS = 100  # the largest k a request may ask for (recs_assets.core.serving.engine.MAX_K)


@dataclass(frozen=True)
class ServingSettings:
    """Everything a serving worker is configured with.

    Attributes:
        model_tag: BentoML model tag to load.
        redis_url: Redis URL of the shared cache, or None for the in-process LRU.
        cache_ttl_s: lifetime of a cached answer, seconds.
        cache_prefix: first part of every cache key.
        cache_size: capacity of the in-process LRU.
        redis_timeout_s: Redis connect/read timeout, seconds.
        redis_backoff_s: pause before calling Redis again after a failure, seconds.
        max_batch_users: most users per ``/recommend_batch`` call.
        max_score_items: most items per ``/score`` call.
        max_batch_items: most items (users x k) per ``/recommend_batch`` answer.
        variant: experiment variant name echoed in every answer.
        model_poll_s: seconds between reads of the champion alias (0: no hot reload).
        registered_model: MLflow registered model whose alias is followed.
        model_alias: the alias followed.
        feast_repo: Feast repo folder for online user features (None: not used).
        feast_timeout_s: longest wait for one online-feature read, seconds.
        feast_backoff_s: pause before reading the online store again after a failure, seconds.
        trending_refresh_s: seconds between reads of the published trending list (0: not read).
        trending_slots: last positions of a list given to trending items (0: lists unchanged).
        exploration_slots: positions given to low-feedback items (0: no exploration).
        exploration_max_feedback: most training interactions of an exploration candidate.
    """

    model_tag: str = DEFAULT_MODEL_TAG
    redis_url: str | None = None
    cache_ttl_s: int = 600
    cache_prefix: str = "recs"
    cache_size: int = 10_000
    redis_timeout_s: float = 0.1
    redis_backoff_s: float = 1.0
    max_batch_users: int = 1000
    max_score_items: int = 1000
    max_batch_items: int = 10000
    variant: str = "champion"
    model_poll_s: float = 5.0
    registered_model: str = DEFAULT_REGISTERED_MODEL
    model_alias: str = DEFAULT_ALIAS
    feast_repo: str | None = None
    feast_timeout_s: float = 0.05
    feast_backoff_s: float = 5.0
    trending_refresh_s: float = 60.0
    trending_slots: int = 0
    exploration_slots: int = 0
    exploration_max_feedback: int = 5

    def __post_init__(self) -> None:
        for name in (
            "cache_ttl_s",
            "cache_size",
            "max_batch_users",
            "max_score_items",
            "max_batch_items",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"serving setting {name} must be >= 1, got {getattr(self, name)}")
        for name in ("redis_timeout_s", "redis_backoff_s", "feast_timeout_s", "feast_backoff_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"serving setting {name} must be > 0, got {getattr(self, name)}")
        if self.model_poll_s < 0:
            raise ValueError(f"serving setting model_poll_s must be >= 0, got {self.model_poll_s}")
        if self.trending_refresh_s < 0:
            raise ValueError(
                f"serving setting trending_refresh_s must be >= 0, got {self.trending_refresh_s}"
            )
        for name in ("trending_slots", "exploration_slots"):
            if not 0 <= getattr(self, name) <= MAX_SLOTS:
                raise ValueError(
                    f"serving setting {name} must be between 0 and {MAX_SLOTS}, "
                    f"got {getattr(self, name)}"
                )
        if self.exploration_max_feedback < 0:
            raise ValueError(
                "serving setting exploration_max_feedback must be >= 0, "
                f"got {self.exploration_max_feedback}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingSettings:
        """Settings from ``RECS_*`` variables (``os.environ`` by default); unset ones keep defaults."""
        env = os.environ if env is None else env

        def get(name: str, cast: type, default: object) -> object:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                return cast(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a valid {cast.__name__}") from None

        d = cls()
        return cls(
            model_tag=str(get("RECS_BENTO_MODEL", str, d.model_tag)),
            redis_url=env.get(REDIS_URL_ENV, "").strip() or None,
            cache_ttl_s=int(get("RECS_CACHE_TTL_S", int, d.cache_ttl_s)),  # type: ignore[arg-type]
            cache_prefix=str(get("RECS_CACHE_PREFIX", str, d.cache_prefix)),
            cache_size=int(get("RECS_CACHE_SIZE", int, d.cache_size)),  # type: ignore[arg-type]
            redis_timeout_s=float(get("RECS_REDIS_TIMEOUT_S", float, d.redis_timeout_s)),  # type: ignore[arg-type]
            redis_backoff_s=float(get("RECS_REDIS_BACKOFF_S", float, d.redis_backoff_s)),  # type: ignore[arg-type]
            max_batch_users=int(get("RECS_MAX_BATCH_USERS", int, d.max_batch_users)),  # type: ignore[arg-type]
            max_score_items=int(get("RECS_MAX_SCORE_ITEMS", int, d.max_score_items)),  # type: ignore[arg-type]
            max_batch_items=int(get("RECS_MAX_BATCH_ITEMS", int, d.max_batch_items)),  # type: ignore[arg-type]
            variant=str(get("RECS_VARIANT", str, d.variant)),
            model_poll_s=float(get("RECS_MODEL_POLL_S", float, d.model_poll_s)),  # type: ignore[arg-type]
            registered_model=str(get("RECS_MODEL_NAME", str, d.registered_model)),
            model_alias=str(get("RECS_MODEL_ALIAS", str, d.model_alias)),
            feast_repo=env.get("RECS_FEAST_REPO", "").strip() or None,
            feast_timeout_s=float(get("RECS_FEAST_TIMEOUT_S", float, d.feast_timeout_s)),  # type: ignore[arg-type]
            feast_backoff_s=float(get("RECS_FEAST_BACKOFF_S", float, d.feast_backoff_s)),  # type: ignore[arg-type]
            trending_refresh_s=float(get("RECS_TRENDING_REFRESH_S", float, d.trending_refresh_s)),  # type: ignore[arg-type]
            trending_slots=int(get("RECS_TRENDING_SLOTS", int, d.trending_slots)),  # type: ignore[arg-type]
            exploration_slots=int(get("RECS_EXPLORATION_SLOTS", int, d.exploration_slots)),  # type: ignore[arg-type]
            exploration_max_feedback=int(
                get("RECS_EXPLORATION_MAX_FEEDBACK", int, d.exploration_max_feedback)  # type: ignore[arg-type]
            ),
        )


WORKERS_ENV = "RECS_WORKERS"


def serving_workers(env: Mapping[str, str] | None = None, cores: int | None = None) -> int:
    """Worker processes of ``bentoml serve``: ``RECS_WORKERS`` when set, else one per core with
    ``RECS_DEPLOYMENT=production`` and one in the local default.

    One local worker keeps the in-process LRU cache and rate counters in one place (each worker
    has its own); production shares them through Redis, so every core serves. Raises
    ``ValueError`` for a value that is not a positive integer.
    """
    env = os.environ if env is None else env
    raw = env.get(WORKERS_ENV, "").strip()
    if raw:
        try:
            workers = int(raw)
        except ValueError:
            workers = 0
        if workers < 1:
            raise ValueError(f"{WORKERS_ENV} must be a positive integer, got {raw!r}")
        return workers
    if is_production(env):
        return max(1, cores if cores is not None else (os.cpu_count() or 1))
    return 1


NATIVE_THREADS_ENV = "RECS_NATIVE_THREADS"


def native_threads(
    workers: int, env: Mapping[str, str] | None = None, cores: int | None = None
) -> int:
    """BLAS threads per serving worker: ``RECS_NATIVE_THREADS`` when set, else the cores shared
    out among the workers (at least one), so that workers scoring at once do not oversubscribe
    the cores. Raises ``ValueError`` for a value that is not a positive integer."""
    env = os.environ if env is None else env
    raw = env.get(NATIVE_THREADS_ENV, "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{NATIVE_THREADS_ENV} must be a positive integer, got {raw!r}")
        return int(raw)
    return max(1, (cores if cores is not None else (os.cpu_count() or 1)) // max(1, workers))


def bento_model_tag(
    service_file: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> str:
    """The model to serve: ``RECS_BENTO_MODEL`` when set; else, when the service runs from a
    built Bento (``<bento>/src/bento/service.py``), the model the Bento was built for (its
    ``bento.yaml`` envs: ``bentoml serve <tag>`` outside a container does not apply them); else
    ``DEFAULT_MODEL_TAG`` (the newest exported model)."""
    env = os.environ if env is None else env
    if env.get("RECS_BENTO_MODEL"):
        return env["RECS_BENTO_MODEL"]
    import yaml

    manifest = Path(service_file).resolve().parents[2] / "bento.yaml"
    if manifest.is_file():
        info = yaml.safe_load(manifest.read_text()) or {}
        for entry in info.get("envs") or []:
            if entry.get("name") == "RECS_BENTO_MODEL" and entry.get("value"):
                return str(entry["value"])
    return DEFAULT_MODEL_TAG
