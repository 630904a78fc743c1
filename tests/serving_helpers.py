"""Tiny hand-written data and builders shared by the serving tests.

Five users, six items; item i_k is consumed by exactly 5 - k users, so popularity is strict:
i0 (5) > i1 (4) > i2 (3) > i3 (2) > i4 (1) > i5 (0, never consumed).

    u0: i0 i1 i2 i3 i4
    u1: i0 i1 i2 i3
    u2: i0 i1 i2
    u3: i0 i1
    u4: i0
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import redis

from recs_assets.core.models.base import InteractionMatrix, Recommender
from recs_assets.core.models.popularity import PopularityRecommender
from recs_assets.core.serving.artifacts import ServingModel, write_artifacts

USERS = [f"u{i}" for i in range(5)]
ITEMS = [f"i{i}" for i in range(6)]
HISTORY = {
    "u0": ["i0", "i1", "i2", "i3", "i4"],
    "u1": ["i0", "i1", "i2", "i3"],
    "u2": ["i0", "i1", "i2"],
    "u3": ["i0", "i1"],
    "u4": ["i0"],
}
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")  # no usage pings from tests

LABELS = {"model_version": "v-test-1", "dagster_run_id": "run-abc", "data_version": "d-1"}


def tiny_train() -> InteractionMatrix:
    rows = [(u, i) for u, items in HISTORY.items() for i in items]
    df = pd.DataFrame(rows, columns=["user_id", "item_id"])
    return InteractionMatrix.from_frame(df, user_ids=USERS, item_ids=ITEMS)


def tiny_items() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ITEMS,
            "title": [f"Title {i}" for i in range(6)],
            "categories": ["Action", "Comedy", "Drama|Action", None, "Comedy", "Drama"],
        }
    )


def popularity_of(train: InteractionMatrix) -> np.ndarray:
    return np.diff(train.matrix.tocsc().indptr).astype(np.float64)


def write_serving_folder(folder: Path, model: Recommender | None = None) -> ServingModel:
    """Fit (popularity by default) on the tiny data, write a serving folder, load it back."""
    train = tiny_train()
    model = model if model is not None else PopularityRecommender()
    if not model._fitted:
        model.fit(train)
    write_artifacts(folder, model, train, tiny_items(), popularity_of(train))
    return ServingModel.load(folder, labels=dict(LABELS), version=LABELS["model_version"])


@contextlib.contextmanager
def model_store(home: Path) -> Iterator[None]:
    """Point this process's BentoML model store at ``home/models`` for the block."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    (home / "models").mkdir(parents=True, exist_ok=True)
    with BentoMLContainer.model_store.patch(ModelStore(home / "models")):
        yield


def service_asgi() -> object:
    """A fresh ASGI app of ``bento.service.RecsService``, built for the current environment.

    The service binds its model (``RECS_BENTO_MODEL``, the store under ``BENTOML_HOME``) and its
    experiment when the module is imported, so the module is imported anew for each app. BentoML
    also registers its request metrics in prometheus_client's global registry per app; those of an
    earlier app in this test process are removed first.
    """
    import importlib
    import sys

    from prometheus_client import REGISTRY

    for collector in list(REGISTRY._collector_to_names):  # noqa: SLF001 - test-only cleanup
        names = REGISTRY._collector_to_names[collector]  # noqa: SLF001
        if any(n.startswith("bentoml_") for n in names):
            REGISTRY.unregister(collector)
    sys.modules.pop("bento.service", None)
    return importlib.import_module("bento.service").RecsService.to_asgi()


def start_redis(port: int, folder: Path) -> subprocess.Popen:
    """A private ``redis-server`` on ``port`` (nothing persisted; files under ``folder``), up."""
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    for _ in range(100):
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"redis-server did not start on port {port}")


def export_tiny(home: Path) -> str:
    """Export the tiny popularity model into ``home`` (a BENTOML_HOME); returns its tag."""
    from recs_assets.core.serving.export import export_model

    serving = write_serving_folder(home.parent / "fit")
    with model_store(home):
        tag = export_model(
            serving.recommender, serving.train, tiny_items(), serving.popularity, LABELS
        )
    return str(tag)


def serve_expecting_exit(home: Path, extra_env: dict[str, str]) -> tuple[int, list[str], float]:
    """``serve_until_exit`` with ``home`` as BENTOML_HOME and ``extra_env``."""
    from recs_assets.core.serving.launch import serve_until_exit

    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True", **extra_env}
    return serve_until_exit(env)
