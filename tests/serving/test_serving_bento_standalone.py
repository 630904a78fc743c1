"""A Bento stands alone: served from a fresh venv that holds only the Bento's own requirements.

A tiny champion of every pipeline family is exported and built into its own Bento (the real
bento/bentofile.yaml). One venv is created with ``python -m venv`` (no system site-packages) and
``pip install -r <bento>/env/python/requirements.txt``, nothing else: the checkout and its
editable install are not in it, and ``bentoml serve <tag>`` runs from a folder outside the
checkout, so the service code comes from the Bento's ``src/``. Each family must answer
``/recommend`` from its model (not from the popularity fallback a failed load would give), and the
champion watcher (on by default) must read the MLflow alias from a SQLite store with the Bento's
packages. Docker is not available here: the generated Dockerfile and requirements are checked
instead (docs/runbook.md, "Containerize").

The venv (~1.8 GB, ~90 s to create) is kept under the pytest cache, keyed by the requirements'
hash, so a rerun with an unchanged bentofile reuses it; a changed bentofile makes a new one.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import bentoml
import httpx
import numpy as np
import pytest
import yaml
from serving_helpers import ITEMS, LABELS, model_store, tiny_items, tiny_train, write_serving_folder

from recs_assets.core.evaluation.runner import item_category_matrix
from recs_assets.core.models.als import ImplicitMFRecommender
from recs_assets.core.models.attributes import Attributes
from recs_assets.core.models.base import Recommender, SideInfo
from recs_assets.core.models.content import ContentRecommender
from recs_assets.core.models.ease import EASERecommender
from recs_assets.core.models.ensemble import BlendRecommender
from recs_assets.core.models.lightfm_model import LightFMRecommender
from recs_assets.core.models.ncf import NCFRecommender
from recs_assets.core.models.popularity import PopularityRecommender
from recs_assets.core.models.ranker import RankerRecommender
from recs_assets.core.models.registry import PIPELINE_FAMILIES
from recs_assets.core.models.rp3beta import RP3betaRecommender
from recs_assets.core.serving.export import export_model
from recs_assets.core.serving.launch import start_service
from recs_assets.core.serving.settings import DEFAULT_ALIAS, DEFAULT_REGISTERED_MODEL
from recs_assets.serving.recommendation_bento import build_bento

pytestmark = pytest.mark.slow

# One tiny fit per pipeline family (5 users, 6 items: fits take well under a second).
FAMILY_MODELS: dict[str, Callable[[], Recommender]] = {
    "popularity": PopularityRecommender,
    "ease": lambda: EASERecommender(lam=1.0),
    "rp3beta": lambda: RP3betaRecommender(top_k=5),
    "lightfm": lambda: LightFMRecommender(no_components=4, epochs=5),
    "ncf": lambda: NCFRecommender(
        "gmf", factors=4, layers=(8, 4), epochs=2, batch_size=8, patience=0, validation_fraction=0
    ),
    "content": lambda: ContentRecommender(use_categories=True, top_k=5),
    "als": lambda: ImplicitMFRecommender(factors=4, iterations=3),
    "blend": lambda: BlendRecommender(
        [{"name": "ease", "params": {"lam": 1.0}}, {"name": "rp3beta", "params": {"top_k": 5}}],
        weights=[1.0, 1.0],
    ),
    "ranker": lambda: RankerRecommender(
        [{"name": "ease", "params": {"lam": 1.0}}, {"name": "rp3beta", "params": {"top_k": 5}}],
        n_candidates=4,
        holdout_fraction=0.4,
        min_child_samples=1,
        n_estimators=5,
    ),
}

# What the service imports beyond the standard library, by distribution (env/python/requirements.txt)
SERVING_DISTRIBUTIONS = {
    "bentoml",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "redis",
    "prometheus-client",
    "lightfm-next",
    "torch",
    "faiss-cpu",
    "lightgbm",
    "mlflow-skinny",
    "sqlalchemy",
    "alembic",
    "feast",
}
# Variables of the developer's shell that would change what the Bento serves, or let it see the
# checkout: the served process gets none of them.
HOST_PREFIXES = ("RECS_", "MLFLOW_", "BENTOML_", "PYTHON", "VIRTUAL_ENV", "FEAST_")
ALIAS_VERSION = 1  # the champion alias names a version no Bento holds: the watcher reports it


@dataclass(frozen=True)
class Standalone:
    """Bentos of every family in one BentoML home, the venv that serves them, where to run."""

    home: Path
    bentos: dict[str, str]  # family -> Bento tag
    python: Path  # the fresh venv's interpreter
    workdir: Path  # outside the checkout
    mlflow_uri: str


def distribution_names(requirements: str) -> set[str]:
    """Normalized distribution names of a requirements file's requirement lines."""
    names = set()
    for line in requirements.splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        for sep in "<>=!~;[ @":
            line = line.split(sep)[0]
        names.add(line.strip().lower().replace("_", "-"))
    return names


def clean_env(**extra: str) -> dict[str, str]:
    """This environment (pip's index settings included) without the host's recs/Python variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(HOST_PREFIXES)}
    return {**env, "BENTOML_DO_NOT_TRACK": "True", **extra}


def venv_from(requirements: Path, root: Path) -> tuple[Path, subprocess.Popen | None]:
    """The venv made of ``requirements`` only, under ``root/<hash>``: reused when it was completed
    before, else started (``python -m venv`` and ``pip install -r``) in the background."""
    key = hashlib.sha256(requirements.read_bytes() + sys.version.encode()).hexdigest()[:16]
    venv = root / key
    if (venv / ".complete").is_file():
        return venv, None
    for old in root.iterdir():  # an older bentofile's venv, or an interrupted install
        shutil.rmtree(old, ignore_errors=True)
    python, folder, reqs = (shlex.quote(str(p)) for p in (sys.executable, venv, requirements))
    script = (
        f"{python} -m venv {folder} && {folder}/bin/python -m pip install -q -r {reqs} && "
        f"touch {folder}/.complete"
    )
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=root,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return venv, proc


def export_family(home: Path, family: str) -> str:
    """Fit ``family`` on the tiny data, export it into ``home``; returns the model tag."""
    train = tiny_train()
    model = FAMILY_MODELS[family]()
    cats, names = item_category_matrix(tiny_items(), np.array(ITEMS))
    # attributes too: the ranker stores them (and their names) with its state
    users = Attributes(np.arange(train.n_users, dtype=np.float64)[:, None], ("age",))
    items = Attributes(np.arange(train.n_items, dtype=np.float64)[:, None] % 3, ("price",))
    side = SideInfo(
        item_categories=cats, category_names=names, user_attributes=users, item_attributes=items
    )
    model.fit(train, side)
    serving = write_serving_folder(home.parent / "fit" / family, model)
    labels = {**LABELS, "model_version": f"{family}-1"}
    with model_store(home):
        tag = export_model(serving.recommender, train, tiny_items(), serving.popularity, labels)
    return str(tag)


def champion_registry(uri: str) -> None:
    """An MLflow SQLite store whose champion alias names version ``ALIAS_VERSION``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(DEFAULT_REGISTERED_MODEL)
    client.create_model_version(DEFAULT_REGISTERED_MODEL, source="file:///nonexistent/artifact")
    client.set_registered_model_alias(DEFAULT_REGISTERED_MODEL, DEFAULT_ALIAS, str(ALIAS_VERSION))


@pytest.fixture(scope="module")
def standalone(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Standalone]:
    assert set(FAMILY_MODELS) == set(PIPELINE_FAMILIES)  # a new family needs a case here
    root = tmp_path_factory.mktemp("standalone")
    home = root / "bentoml"
    env = {**os.environ, "BENTOML_HOME": str(home)}
    first, *others = PIPELINE_FAMILIES
    bentos = {first: build_bento(export_family(home, first), {"family": first}, env=env)}
    # every Bento has the same requirements: the venv installs while the others build
    requirements = bento_folder(home, bentos[first]) / "env" / "python" / "requirements.txt"
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    venvs = cache.mkdir("bento-standalone-venv") if cache else root / "venvs"
    venvs.mkdir(exist_ok=True)
    venv, proc = venv_from(requirements, venvs)
    try:
        for family in others:
            bentos[family] = build_bento(export_family(home, family), {"family": family}, env=env)
        out = proc.communicate(timeout=900)[0] if proc is not None else ""
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
    assert proc is None or proc.returncode == 0, (
        f"venv from the requirements failed:\n{out[-4000:]}"
    )
    uri = f"sqlite:///{root / 'mlflow.db'}"
    champion_registry(uri)
    workdir = root / "run"
    workdir.mkdir()
    yield Standalone(home, bentos, venv / "bin" / "python", workdir, uri)


def bento_folder(home: Path, tag: str) -> Path:
    """Where the Bento ``tag`` lies in the BentoML home ``home``."""
    name, version = tag.split(":")
    return home / "bentos" / name / version


def test_the_bento_declares_its_packages_and_the_dockerfile(standalone: Standalone) -> None:
    folder = bento_folder(standalone.home, standalone.bentos["ncf"])
    requirements = (folder / "env" / "python" / "requirements.txt").read_text()
    assert SERVING_DISTRIBUTIONS - distribution_names(requirements) == set()
    assert f"bentoml=={bentoml.__version__}" in requirements.splitlines()  # the dev venv's
    dockerfile = (folder / "env" / "docker" / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile  # docker: distro debian, python 3.11
    assert "libgomp1" in dockerfile  # lightfm's OpenMP runtime
    assert "pip install -r $BENTO_PATH/env/python/requirements.txt" in dockerfile
    image = yaml.safe_load((folder / "bento.yaml").read_text())["image"]
    assert (image["base_image"], image["python_version"]) == ("python:3.11-slim", "3.11")


def test_the_fresh_venv_has_no_checkout_and_imports_the_optional_paths(
    standalone: Standalone,
) -> None:
    run = standalone.workdir
    alone = subprocess.run(
        [standalone.python, "-c", "import recs_assets"],
        cwd=run,
        env=clean_env(),
        text=True,
        capture_output=True,
    )
    assert alone.returncode != 0 and "No module named 'recs_assets'" in alone.stderr
    # Feast is imported only with RECS_FEAST_REPO: from the Bento's src, it must import there too
    src = bento_folder(standalone.home, standalone.bentos["popularity"]) / "src"
    check = (
        "from recs_assets.core.serving.online_feature_reader import open_feature_store\n"
        "try:\n    open_feature_store('/nonexistent')\n"
        "except FileNotFoundError:\n    print('feast ok')\n"
    )
    done = subprocess.run(
        [standalone.python, "-c", check], cwd=src, env=clean_env(), text=True, capture_output=True
    )
    assert done.stdout.strip() == "feast ok", done.stderr[-3000:]


@pytest.mark.parametrize("family", PIPELINE_FAMILIES)
def test_the_built_bento_serves_its_family_from_the_fresh_venv(
    standalone: Standalone, family: str, tmp_path: Path
) -> None:
    # `bentoml serve <bento>` does not apply the Bento's envs (only the image does, as ENV
    # lines); without RECS_BENTO_MODEL the service reads the pin from the Bento's bento.yaml, so
    # each Bento serves its own family, not the newest model in the store
    folder = bento_folder(standalone.home, standalone.bentos[family])
    envs = yaml.safe_load((folder / "bento.yaml").read_text())["envs"]
    pinned = next(e["value"] for e in envs if e["name"] == "RECS_BENTO_MODEL")
    assert (
        f"ARG RECS_BENTO_MODEL={pinned}" in (folder / "env" / "docker" / "Dockerfile").read_text()
    )
    env = clean_env(
        BENTOML_HOME=str(standalone.home),
        MLFLOW_TRACKING_URI=standalone.mlflow_uri,
        RECS_MODEL_POLL_S="1",
        RECS_DATA_DIR=str(tmp_path / "data"),
    )
    service = start_service(
        env,
        tmp_path / "serve.log",
        service=standalone.bentos[family],
        python=str(standalone.python),
        cwd=standalone.workdir,
    )
    try:
        r = httpx.post(f"{service.url}/recommend", json={"user_id": "u3", "k": 3}, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        # from the model, not the popularity fallback a model that failed to load would give
        assert (body["source"], body["model_version"]) == ("model", f"{family}-1")
        assert len(body["items"]) == 3
        # u3 saw i0 and i1; exclude_seen keeps them out whatever the family ranks first
        assert {"i0", "i1"}.isdisjoint(it["item_id"] for it in body["items"])
        deadline = time.monotonic() + 60
        while True:  # the watcher's first poll reads the alias through the Bento's MLflow client
            info = httpx.post(f"{service.url}/model_info", json={}, timeout=30).json()
            if info["champion_alias"] is not None or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert (info["model_name"], info["model_loaded"]) == (family, True)
        assert info["champion_alias"] == f"{DEFAULT_REGISTERED_MODEL}/{ALIAS_VERSION}"
    finally:
        service.stop()
    log = service.log.read_text()
    assert "Traceback" not in log and "ModuleNotFoundError" not in log, log[-3000:]
