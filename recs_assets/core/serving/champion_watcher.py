"""Hot reload: the service follows the MLflow ``champion`` alias without a restart.

Every ``RECS_MODEL_POLL_S`` seconds (default 5; 0 turns it off) a daemon thread in each service
worker reads which version of the registered model ``RECS_MODEL_NAME`` (``recs-champion``) the
alias ``champion`` names. The ``bento_model`` asset labels each export with that version
(``model_version=recs-champion/3``), so when the alias moves (a new champion, or ``recs rollback``)
the watcher takes the BentoML model of the local store whose label matches (the newest one when a
version was exported twice), loads it and swaps it in (``ExperimentRouter.replace_model``): one
reference assignment, so a request finishes on the model it started with, and cache keys carry the
BentoML tag, so no list of the previous model is served from the cache.

When the alias names a version that is not in the store (exported elsewhere, or a Bento built
before that version existed), the watcher logs a warning once, counts every such poll
(``recs_model_reloads_total{result="missing"}``) and keeps serving the current model; it picks the
version up as soon as it is exported. A model that fails to load (a load error, or an exception
while reading it: a corrupt version) is not swapped in; every such poll counts ``load_failed``,
with one warning line per version and no traceback. A failed poll (MLflow unreachable, locked SQLite file) is logged and counted
(``error``); serving never depends on MLflow.

A/B experiments: only the control variant follows the alias, and only when it serves the
service's own model (``"model": "default"``); other variants keep the model they started with.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import bentoml

from recs_assets.core.paths import local_mlflow_uri
from recs_assets.core.serving.abtest import DEFAULT_MODEL, ExperimentRouter
from recs_assets.core.serving.artifacts import ServingModel
from recs_assets.core.serving.export import serving_model_from_store
from recs_assets.core.serving.heap import freeze_long_lived
from recs_assets.core.serving.settings import ServingSettings
from recs_assets.core.serving.telemetry import ServingMetrics

logger = logging.getLogger("recs.reload")


OUTCOMES: tuple[str, ...] = (
    "unchanged",  # the alias names the served version
    "swapped",  # a new version is served from now on
    "missing",  # the alias names a version absent from the local BentoML store
    "load_failed",  # that version's model did not load; the current one stays
    "no_alias",  # no registry, model or alias (yet)
    "error",  # the poll itself failed (e.g. MLflow unreachable)
)


@dataclass(frozen=True)
class PollResult:
    """What one poll saw and did.

    Attributes:
        outcome: one of ``OUTCOMES``.
        served: the version served after the poll.
        wanted: the version the alias named (None: no alias, or the poll failed).
    """

    outcome: str
    served: str
    wanted: str | None


def version_label(registered_model: str, version: str | int) -> str:
    """The ``model_version`` label ``bento_model`` gives registered version ``version``."""
    return f"{registered_model}/{version}"


def newest_with_label(
    models: Iterable[bentoml.Model], key: str, value: str
) -> bentoml.Model | None:
    """The most recently created model whose label ``key`` equals ``value`` (None: no such one)."""
    matching = [m for m in models if m.info.labels.get(key) == value]
    return max(matching, key=lambda m: m.creation_time) if matching else None


def resolved_tracking_uri(env: dict[str, str] | None = None) -> str:
    """``$MLFLOW_TRACKING_URI``, else the repository's embedded store (as the pipeline uses)."""
    env = dict(os.environ) if env is None else env
    return env.get("MLFLOW_TRACKING_URI", "").strip() or local_mlflow_uri()


def mlflow_alias_reader(
    tracking_uri: str, registered_model: str, alias: str
) -> Callable[[], str | None]:
    """A function returning the ``model_version`` label the alias names now (None: no alias).

    A SQLite store that does not exist yet means no alias; it is not created from here.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    sqlite_file = Path(tracking_uri.removeprefix("sqlite:///"))
    client: MlflowClient | None = None

    def read() -> str | None:
        nonlocal client
        if tracking_uri.startswith("sqlite:///") and not sqlite_file.is_file():
            return None
        if client is None:
            client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        try:
            mv = client.get_model_version_by_alias(registered_model, alias)
        except MlflowException as err:
            if err.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(err).lower():
                return None
            raise
        return version_label(registered_model, mv.version)

    return read


def store_loader(bento_name: str) -> Callable[[str], ServingModel | None]:
    """A function loading the newest BentoML model named ``bento_name`` with a given
    ``model_version`` label from the local store (None: no such model there)."""

    def load(version: str) -> ServingModel | None:
        stored = newest_with_label(bentoml.models.list(bento_name), "model_version", version)
        return None if stored is None else serving_model_from_store(stored)

    return load


class ChampionWatcher:
    """Polls which version should be served and swaps it in when it changed.

    Args:
        read_alias: returns the wanted ``model_version`` (None: nothing to follow).
        load_version: loads the model of a version (None: not available).
        swap: starts serving a loaded model.
        served: returns the version served now.
        interval_s: seconds between polls (> 0).
        metrics: where poll outcomes are counted (``reloads``), optional.
    """

    def __init__(
        self,
        read_alias: Callable[[], str | None],
        load_version: Callable[[str], ServingModel | None],
        swap: Callable[[ServingModel], None],
        served: Callable[[], str],
        interval_s: float,
        metrics: ServingMetrics | None = None,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"poll interval must be > 0 s, got {interval_s}")
        self._read_alias = read_alias
        self._load_version = load_version
        self._swap = swap
        self._served = served
        self.interval_s = interval_s
        self._metrics = metrics
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned: set[tuple[str, str]] = set()
        self.last: PollResult | None = None

    @property
    def wanted(self) -> str | None:
        """The version the alias named at the last successful poll."""
        return self.last.wanted if self.last is not None else None

    def _result(self, outcome: str, wanted: str | None) -> PollResult:
        result = PollResult(outcome, self._served(), wanted)
        if self._metrics is not None:
            self._metrics.reloads.labels(result=outcome).inc()
        if outcome != "error":
            self.last = result
        return result

    def _warn_once(self, kind: str, version: str, message: str, *args: object) -> None:
        if (kind, version) not in self._warned:
            self._warned.add((kind, version))
            logger.warning(message, *args)

    def poll_once(self) -> PollResult:
        """Read the alias; when it names another version than the served one, swap that in."""
        wanted = self._read_alias()
        if wanted is None:
            return self._result("no_alias", None)
        served = self._served()
        if wanted == served:
            return self._result("unchanged", wanted)
        try:
            model = self._load_version(wanted)
        except Exception as err:  # a corrupt version: one line per version, counted load_failed
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
            self._warn_once(
                "load_failed",
                wanted,
                "model %s failed to load (%s: %s); still serving %s",
                wanted,
                type(err).__name__,
                first,
                served,
            )
            return self._result("load_failed", wanted)
        if model is None:
            self._warn_once(
                "missing",
                wanted,
                "champion alias names %s but no BentoML model with that model_version label is "
                "in the local store; still serving %s (export it with the bento_model asset)",
                wanted,
                served,
            )
            return self._result("missing", wanted)
        if model.recommender is None:
            self._warn_once(
                "load_failed",
                wanted,
                "model %s failed to load (%s); still serving %s",
                wanted,
                model.load_error,
                served,
            )
            return self._result("load_failed", wanted)
        self._swap(model)
        logger.warning("now serving %s (was %s): the champion alias moved", wanted, served)
        return self._result("swapped", wanted)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # a failed poll must never stop the thread or touch serving
                logger.exception("model poll failed; still serving %s", self._served())
                self._result("error", None)
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        """Poll now and then every ``interval_s`` seconds in a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("model watcher already started")
        self._thread = threading.Thread(target=self._run, name="recs-model-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop polling (waits for a poll in progress up to ``timeout_s``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)


def champion_watcher_from_settings(
    router: ExperimentRouter, settings: ServingSettings, metrics: ServingMetrics
) -> ChampionWatcher | None:
    """A watcher that makes the control variant follow the champion alias, or None when polling
    is off (``model_poll_s`` 0) or the control variant is pinned to an explicit model tag."""
    if settings.model_poll_s <= 0:
        logger.info("model polling off (RECS_MODEL_POLL_S=0): serving one model until restart")
        return None
    control = router.experiment.variant(router.experiment.control)
    if control.model != DEFAULT_MODEL:
        logger.info(
            "control variant %s is pinned to %s: it does not follow the champion alias",
            control.name,
            control.model,
        )
        return None
    uri = resolved_tracking_uri()
    logger.info(
        "following alias %r of %s at %s every %.1f s",
        settings.model_alias,
        settings.registered_model,
        uri,
        settings.model_poll_s,
    )

    def swap(model: ServingModel) -> None:
        router.replace_model(control.name, model)
        freeze_long_lived()  # frees the old model, keeps the new one out of the collector's scans

    return ChampionWatcher(
        read_alias=mlflow_alias_reader(uri, settings.registered_model, settings.model_alias),
        load_version=store_loader(settings.model_tag.split(":")[0]),
        swap=swap,
        served=lambda: router.engines[control.name].model.version,
        interval_s=settings.model_poll_s,
        metrics=metrics,
    )
