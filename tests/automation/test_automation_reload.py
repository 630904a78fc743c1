"""Hot reload: the service follows the MLflow champion alias; `recs rollback` takes effect in seconds.

Real pieces throughout: an MLflow store in a temporary folder, models exported into a temporary
BentoML store, the real router and engines; the slow case runs ``bentoml serve`` and the
``recs rollback`` command.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import bentoml
import httpx
import pytest
import redis
from prometheus_client import CollectorRegistry
from serving_helpers import LABELS, model_store, tiny_items, write_serving_folder

from recs_assets.cli.rollback import rollback
from recs_assets.core.models.base import Recommender
from recs_assets.core.models.ease import EASERecommender
from recs_assets.core.serving.abtest import Experiment, ExperimentRouter, Variant, no_experiment
from recs_assets.core.serving.cache import make_cache
from recs_assets.core.serving.champion_watcher import (
    ChampionWatcher,
    champion_watcher_from_settings,
    mlflow_alias_reader,
    newest_with_label,
    store_loader,
    version_label,
)
from recs_assets.core.serving.export import export_model, load_serving_model
from recs_assets.core.serving.launch import start_service
from recs_assets.core.serving.settings import (
    DEFAULT_ALIAS,
    DEFAULT_REGISTERED_MODEL,
    ServingSettings,
)
from recs_assets.core.serving.telemetry import ServingMetrics
from recs_assets.models.mlflow_tracker import CHAMPION, CHAMPION_MODEL, MlflowTracker

BENTO_NAME = "recs_recommender"
SOURCE = "file:///nonexistent/artifact"  # registry entries only; nothing is downloaded


def export_version(home: Path, version: int, model: Recommender | None = None) -> str:
    """Export a tiny model labelled ``recs-champion/<version>`` into the store at ``home``."""
    serving = write_serving_folder(home.parent / f"fit-{version}-{uuid.uuid4().hex[:6]}", model)
    labels = {**LABELS, "model_version": version_label(CHAMPION_MODEL, version)}
    with model_store(home):
        tag = export_model(
            serving.recommender, serving.train, tiny_items(), serving.popularity, labels
        )
    return str(tag)


def register_versions(tracker: MlflowTracker, n: int, champion: int) -> None:
    """``n`` versions of the champion model in the registry, the alias on ``champion``."""
    client = tracker.client()
    client.create_registered_model(CHAMPION_MODEL)
    for _ in range(n):
        client.create_model_version(CHAMPION_MODEL, source=SOURCE)
    tracker.set_alias(CHAMPION_MODEL, CHAMPION, champion)


@pytest.fixture()
def tracker(tmp_path: Path) -> MlflowTracker:
    return MlflowTracker(local_root=str(tmp_path / "mlflow"))


def test_settings_and_registry_names_agree() -> None:
    # the service does not import the Dagster-side module; the names must still be the same
    assert (DEFAULT_REGISTERED_MODEL, DEFAULT_ALIAS) == (CHAMPION_MODEL, CHAMPION)
    s = ServingSettings.from_env({"RECS_MODEL_POLL_S": "0.5", "RECS_MODEL_NAME": "m"})
    assert (s.model_poll_s, s.registered_model, s.model_alias) == (0.5, "m", "champion")
    assert ServingSettings.from_env({}).model_poll_s == 5.0
    with pytest.raises(ValueError, match="model_poll_s"):
        ServingSettings.from_env({"RECS_MODEL_POLL_S": "-1"})


def test_newest_with_label_picks_the_latest_export(tmp_path: Path) -> None:
    home = tmp_path / "bentoml"
    first = export_version(home, 1)
    export_version(home, 2)
    again = export_version(home, 1)  # version 1 exported a second time, later
    with model_store(home):
        models = bentoml.models.list(BENTO_NAME)
    assert len(models) == 3
    assert str(newest_with_label(models, "model_version", "recs-champion/1").tag) == again
    assert again != first
    assert newest_with_label(models, "model_version", "recs-champion/9") is None


def test_alias_reader_on_a_real_store(tmp_path: Path, tracker: MlflowTracker) -> None:
    missing_db = tmp_path / "none" / "mlflow.db"
    assert mlflow_alias_reader(f"sqlite:///{missing_db}", CHAMPION_MODEL, CHAMPION)() is None
    assert not missing_db.exists()  # the service never creates a registry
    read = mlflow_alias_reader(tracker.resolved_uri(), CHAMPION_MODEL, CHAMPION)
    assert read() is None  # store exists, no registered model yet
    tracker.client().create_registered_model(CHAMPION_MODEL)
    assert read() is None  # model, no alias
    tracker.client().create_model_version(CHAMPION_MODEL, source=SOURCE)
    tracker.client().create_model_version(CHAMPION_MODEL, source=SOURCE)
    tracker.set_alias(CHAMPION_MODEL, CHAMPION, 2)
    assert read() == "recs-champion/2"
    tracker.set_alias(CHAMPION_MODEL, CHAMPION, 1)
    assert read() == "recs-champion/1"


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Path]:
    """A BentoML store holding recs-champion/1 (popularity) and /2 (EASE), active for the test."""
    home = tmp_path / "bentoml"
    export_version(home, 1)
    export_version(home, 2, EASERecommender())
    with model_store(home):
        yield home


def stored_tag(version: int) -> str:
    """Tag of the newest export of ``recs-champion/<version>`` in the active store."""
    models = bentoml.models.list(BENTO_NAME)
    return str(newest_with_label(models, "model_version", f"recs-champion/{version}").tag)


def _router(
    tag: str, metrics: ServingMetrics, experiment: Experiment | None = None
) -> ExperimentRouter:
    experiment = experiment or no_experiment()
    models = {v.name: load_serving_model(tag) for v in experiment.variants}
    return ExperimentRouter.create(
        experiment, models, make_cache(None, 60, 100), ServingSettings(), metrics, None
    )


def test_watcher_follows_alias_and_keeps_serving_when_version_missing(
    store: Path,
    tracker: MlflowTracker,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    metrics = ServingMetrics.create(registry)
    router = _router(stored_tag(1), metrics)
    register_versions(tracker, 2, champion=2)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracker.resolved_uri())
    watcher = champion_watcher_from_settings(router, ServingSettings(model_poll_s=0.1), metrics)
    assert watcher is not None

    def info(version: str, name: str) -> float | None:
        labels = {"model_version": version, "model_name": name, "variant": "champion"}
        return registry.get_sample_value("recs_model_info", {**labels, "loaded": "true"})

    # u3 is cached under the v1 Bento tag before the swap
    assert router.recommend("u3", 2, True, None).source == "model"
    assert router.recommend("u3", 2, True, None).source == "cache"

    result = watcher.poll_once()
    assert (result.outcome, result.served, result.wanted) == (
        "swapped",
        "recs-champion/2",
        "recs-champion/2",
    )
    after = router.recommend("u3", 2, True, None)
    # a cache miss: keys carry the Bento tag, so v1's cached list is not served as v2's
    assert (after.model_version, after.source) == ("recs-champion/2", "model")
    assert router.control_engine.model.model_name == "ease"
    assert info("recs-champion/1", "popularity") == 0.0
    assert info("recs-champion/2", "ease") == 1.0
    assert watcher.poll_once().outcome == "unchanged"

    # feedback on a list the previous model served is still accepted
    ack = router.feedback("u3", "i2", "click", model_version="recs-champion/1")
    assert ack.model_version == "recs-champion/1"

    # the alias names a version that was never exported: warn once, count, keep serving v2
    tracker.client().create_model_version(CHAMPION_MODEL, source=SOURCE)
    tracker.set_alias(CHAMPION_MODEL, CHAMPION, 3)
    with caplog.at_level(logging.WARNING, logger="recs.reload"):
        outcomes = [watcher.poll_once() for _ in range(3)]
    assert [o.outcome for o in outcomes] == ["missing"] * 3
    assert {o.served for o in outcomes} == {"recs-champion/2"}
    warnings = [r for r in caplog.records if "recs-champion/3" in r.getMessage()]
    assert len(warnings) == 1 and "no BentoML model" in warnings[0].getMessage()
    assert registry.get_sample_value("recs_model_reloads_total", {"result": "missing"}) == 3.0
    assert watcher.wanted == "recs-champion/3"

    # once exported, the next poll serves it
    export_version(store, 3)
    assert watcher.poll_once().outcome == "swapped"
    assert router.recommend("u1", 1, True, None).model_version == "recs-champion/3"


def test_watcher_thread_survives_failed_polls(store: Path) -> None:
    """The poll raises (MLflow down) twice, then answers: serving never stops, then it swaps."""
    registry = CollectorRegistry()
    metrics = ServingMetrics.create(registry)
    router = _router(stored_tag(1), metrics)
    calls = {"n": 0}

    def flaky_alias() -> str:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise ConnectionError("MLflow unreachable")
        return "recs-champion/2"

    watcher = ChampionWatcher(
        flaky_alias,
        store_loader(BENTO_NAME),
        lambda m: router.replace_model("champion", m),
        lambda: router.control_engine.model.version,
        interval_s=0.05,
        metrics=metrics,
    )
    watcher.start()
    try:
        deadline = time.monotonic() + 10
        while router.control_engine.model.version != "recs-champion/2":
            assert router.recommend("u2", 1, True, None).user_id == "u2"  # serving goes on
            assert time.monotonic() < deadline, "the watcher never swapped"
            time.sleep(0.02)
    finally:
        watcher.stop()
    assert registry.get_sample_value("recs_model_reloads_total", {"result": "error"}) == 2.0
    assert registry.get_sample_value("recs_model_reloads_total", {"result": "swapped"}) == 1.0


def test_no_watcher_when_polling_off_or_control_pinned(store: Path) -> None:
    metrics = ServingMetrics.create(CollectorRegistry())
    tag = stored_tag(1)
    assert (
        champion_watcher_from_settings(
            _router(tag, metrics), ServingSettings(model_poll_s=0), metrics
        )
        is None
    )
    pinned = Experiment(
        name="pinned",
        variants=(
            Variant(name="control", model=tag, share=0.5),
            Variant(name="treatment", model="default", share=0.5),
        ),
    )
    assert (
        champion_watcher_from_settings(_router(tag, metrics, pinned), ServingSettings(), metrics)
        is None
    )
    follows = Experiment(
        name="follows",
        variants=(
            Variant(name="control", model="default", share=0.5),
            Variant(name="treatment", model=tag, share=0.5),
        ),
    )
    assert (
        champion_watcher_from_settings(_router(tag, metrics, follows), ServingSettings(), metrics)
        is not None
    )


@pytest.mark.slow
def test_rollback_switches_the_running_service_within_seconds(
    tmp_path: Path, tracker: MlflowTracker, record_property
) -> None:
    """`recs rollback` against a running `bentoml serve`: v2 -> v1 with no failed request."""
    home = tmp_path / "bentoml"
    export_version(home, 1)
    export_version(home, 2, EASERecommender())  # `latest`: what the service starts with
    register_versions(tracker, 2, champion=2)
    uri = tracker.resolved_uri()
    prefix = f"recs-reload-{uuid.uuid4().hex[:8]}"
    redis_url = "redis://127.0.0.1:6379/15"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RECS_")},
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "True",
        "MLFLOW_TRACKING_URI": uri,
        "RECS_MODEL_POLL_S": "0.5",
        "RECS_REDIS_URL": redis_url,
        "RECS_CACHE_PREFIX": prefix,
        "RECS_DATA_DIR": str(tmp_path / "data"),
    }
    service = start_service(env, tmp_path / "serve.log")
    seen: list[tuple[float, int, str]] = []  # (time, status, model_version)
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=service.url, timeout=10) as http:
            i = 0
            while not stop.is_set():
                r = http.post("/recommend", json={"user_id": f"u{i % 5}", "k": 2})
                version = r.json().get("model_version", "") if r.status_code == 200 else ""
                seen.append((time.time(), r.status_code, version))
                i += 1

    def info() -> dict:
        return httpx.post(f"{service.url}/model_info", json={}, timeout=10).json()

    worker = threading.Thread(target=traffic)
    try:
        assert info()["model_version"] == "recs-champion/2"
        worker.start()
        time.sleep(1.5)
        assert rollback(tracker, CHAMPION_MODEL) == ("2", "1")  # what `recs rollback` runs
        moved = time.time()  # the alias is on version 1 from here
        deadline = moved + 15
        while not any(v == "recs-champion/1" for _, _, v in seen[-5:]):
            assert time.time() < deadline, "the service did not switch within 15 s"
            time.sleep(0.05)
        switched = next(t for t, _, v in seen if v == "recs-champion/1")
        time.sleep(1.0)
        stop.set()
        worker.join(30)
        seconds = switched - moved
        print(
            f"\nrollback: served version 1 {seconds:.2f} s after the alias moved (poll 0.5 s); "
            f"{len(seen)} requests during the switch, all 200"
        )
        record_property("rollback_switch_s", round(seconds, 2))
        assert seconds < 5.0
        statuses = {s for _, s, _ in seen}
        assert statuses == {200}, statuses
        versions = [v for _, _, v in seen]
        first_v1 = versions.index("recs-champion/1")
        # one worker: v2 until the swap, v1 after it, never back
        assert set(versions[:first_v1]) == {"recs-champion/2"}
        assert set(versions[first_v1:]) == {"recs-champion/1"}
        body = info()
        assert (body["model_version"], body["champion_alias"]) == (
            "recs-champion/1",
            "recs-champion/1",
        )
        assert body["model_name"] == "popularity"
        keys = redis.Redis.from_url(redis_url).keys(f"{prefix}:*")
        namespaces = {k.decode().split(":")[1] for k in keys}
        assert len(namespaces) == 2  # the cache holds each version's lists under its own tag

        # `recs rollback --to 3`: a version that is not in the store; the service keeps version 1
        tracker.client().create_model_version(CHAMPION_MODEL, source=SOURCE)
        out = subprocess.run(
            [str(Path(sys.executable).parent / "recs"), "rollback", "--to", "3"]
            + ["--tracking-uri", uri],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "champion moved from version 1 to version 3" in out.stdout
        time.sleep(2.0)
        body = info()
        assert (body["model_version"], body["champion_alias"]) == (
            "recs-champion/1",
            "recs-champion/3",
        )
        metrics = httpx.get(f"{service.url}/metrics", timeout=10).text
        assert 'recs_model_reloads_total{result="missing"}' in metrics
        assert 'model_version="recs-champion/1"' in metrics
        export_version(home, 3)  # exported later: picked up on the next poll
        deadline = time.time() + 10
        while info()["model_version"] != "recs-champion/3":
            assert time.time() < deadline, "version 3 was not picked up after its export"
            time.sleep(0.2)
        log = (tmp_path / "serve.log").read_text()
        assert "no BentoML model with that model_version label" in log
    finally:
        stop.set()
        if worker.is_alive():
            worker.join(30)
        service.stop()
        client15 = redis.Redis.from_url(redis_url)
        stale = client15.keys(f"{prefix}:*")
        if stale:
            client15.delete(*stale)


def test_a_version_that_cannot_load_is_load_failed_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A corrupt version behind the alias: every poll counts ``load_failed`` (not ``error``),
    one warning per version without a traceback, and the served model stays."""
    from prometheus_client import CollectorRegistry

    from recs_assets.core.serving.champion_watcher import ChampionWatcher
    from recs_assets.core.serving.telemetry import ServingMetrics

    def corrupt(version: str):
        raise ValueError(f"state.npz of {version} is truncated\nmore detail")

    swapped = []
    metrics = ServingMetrics.create(CollectorRegistry())
    watcher = ChampionWatcher(
        lambda: "recs-champion/3", corrupt, swapped.append, lambda: "recs-champion/2", 60.0, metrics
    )
    with caplog.at_level("WARNING", logger="recs.reload"):
        outcomes = [watcher.poll_once().outcome for _ in range(3)]
    assert outcomes == ["load_failed"] * 3 and swapped == []
    assert metrics.reloads.labels(result="load_failed")._value.get() == 3  # noqa: SLF001
    lines = [r for r in caplog.records if "failed to load" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert "ValueError: state.npz of recs-champion/3 is truncated" in lines[0].getMessage()
    assert watcher.wanted == "recs-champion/3"  # /model_info shows what the alias names
