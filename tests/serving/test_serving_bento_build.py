"""``recommendation_bento``'s build: a real ``bentoml build`` of bento/bentofile.yaml pinned to an
exported model, labelled, holding the service code and that model; failures are explained."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recs_assets.core.serving.export import export_model
from recs_assets.serving.recommendation_bento import BentoBuildError, build_bento
from tests.serving_helpers import LABELS, model_store, tiny_items, write_serving_folder


def test_build_pins_the_exported_model_and_labels(tmp_path: Path) -> None:
    home = tmp_path / "bentoml"
    fitted = write_serving_folder(tmp_path / "fit")
    with model_store(home):
        model_tag = str(
            export_model(fitted.recommender, fitted.train, tiny_items(), fitted.popularity, LABELS)
        )
    env = {**os.environ, "BENTOML_HOME": str(home)}
    tag = build_bento(model_tag, {"model_version": "v-test-1", "dagster_run_id": "run-1"}, env=env)
    name, version = tag.split(":")
    folder = home / "bentos" / name / version
    info = yaml.safe_load((folder / "bento.yaml").read_text())
    assert info["labels"]["model_version"] == "v-test-1"
    assert info["labels"]["dagster_run_id"] == "run-1"
    assert [m["tag"] for m in info["services"][0]["models"]] == [model_tag]
    assert {"name": "RECS_BENTO_MODEL", "value": model_tag, "stage": "all"} in info["envs"]
    src = folder / "src"
    assert (src / "bento" / "service.py").is_file()
    assert (src / "recs_assets" / "core" / "serving" / "engine.py").is_file()
    assert not (src / "recs_assets" / "definitions.py").exists()  # the pipeline stays out


def test_build_of_a_missing_model_says_why(tmp_path: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "empty")}
    with pytest.raises(BentoBuildError, match="recs_recommender:nope"):
        build_bento("recs_recommender:nope", {}, env=env)


# Run inside the built Bento's src/ folder, as a container would: the checkout's editable install
# is taken off the import system, so a module the Bento lacks fails here as it would there.
STANDALONE_IMPORT = """
import json, sys
src = sys.argv[1]
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
sys.path[:] = [src] + [p for p in sys.path if "site-packages" in p or p.startswith(sys.base_prefix)]
import bento.service
import recs_assets.core.models.registry  # every family the champion may be
from recs_assets.core.serving.export import load_serving_model
model = load_serving_model(sys.argv[2])
loaded = {m: getattr(sys.modules[m], "__file__", None) or "" for m in list(sys.modules)}
print(json.dumps({
    "outside": sorted(m for m, f in loaded.items()
                      if m.split(".")[0] in ("recs_assets", "bento") and f and not f.startswith(src)),
    "dagster": sorted(m for m in loaded if m.split(".")[0].startswith("dagster")),
    "model": model.model_name,
}))
"""


def test_the_built_bento_imports_its_service_from_its_own_source(tmp_path: Path) -> None:
    home = tmp_path / "bentoml"
    fitted = write_serving_folder(tmp_path / "fit")
    with model_store(home):
        model_tag = str(
            export_model(fitted.recommender, fitted.train, tiny_items(), fitted.popularity, LABELS)
        )
    env = {**os.environ, "BENTOML_HOME": str(home)}
    tag = build_bento(model_tag, {"model_version": "v-test-1"}, env=env)
    name, version = tag.split(":")
    src = home / "bentos" / name / version / "src"
    done = subprocess.run(
        [sys.executable, "-c", STANDALONE_IMPORT, str(src), model_tag],
        cwd=src,
        env={**env, "RECS_BENTO_MODEL": model_tag, "PYTHONPATH": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]  # e.g. ModuleNotFoundError: a missing module
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["outside"] == []  # every recs module came from the Bento, none from the checkout
    assert report["dagster"] == []
    assert report["model"] == fitted.model_name
