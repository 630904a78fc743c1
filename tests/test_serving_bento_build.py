"""``recommendation_bento``'s build: a real ``bentoml build`` of bento/bentofile.yaml pinned to an
exported model, labelled, holding the service code and that model; failures are explained."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from recs_assets.serving.export import export_model
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
    assert (src / "recs_assets" / "serving" / "engine.py").is_file()
    assert not (src / "recs_assets" / "definitions.py").exists()  # the pipeline stays out


def test_build_of_a_missing_model_says_why(tmp_path: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "empty")}
    with pytest.raises(BentoBuildError, match="recs_recommender:nope"):
        build_bento("recs_recommender:nope", {}, env=env)
