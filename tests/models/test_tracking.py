"""MLflow tracking through MlflowTracker: local embedded store and a real `mlflow server`."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import mlflow
import pytest

from recs_assets.models.mlflow_tracker import CHAMPION, MlflowTracker


def _exercise(tracker: MlflowTracker, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "params.json").write_text('{"name": "popularity"}')
    with tracker.start_run(
        "popularity", dagster_run_id="abc123", asset_key="popularity_model"
    ) as run:
        tracker.log_params({f"p{i}": i for i in range(150)})  # more than one MLflow batch
        mlflow.log_metric("ndcg_at_10", 0.25, step=0)
        run_id = run.info.run_id
    version = tracker.register_folder(run_id, model_dir, "recs-test-model")
    tracker.set_alias("recs-test-model", CHAMPION, version.version)

    client = tracker.client()
    stored = client.get_run(run_id)
    assert stored.data.tags["dagster.run_id"] == "abc123"
    assert stored.data.tags["dagster.asset_key"] == "popularity_model"
    assert len(stored.data.params) == 150
    assert stored.data.metrics["ndcg_at_10"] == 0.25
    champion = tracker.version_by_alias("recs-test-model", CHAMPION)
    assert champion is not None and champion.version == version.version
    assert champion.run_id == run_id
    artifacts = [a.path for a in client.list_artifacts(run_id, "model")]
    assert artifacts == ["model/params.json"]


def test_local_store_tracks_registers_and_aliases(tmp_path: Path) -> None:
    tracker = MlflowTracker(local_root=str(tmp_path / "mlflow"))
    assert tracker.resolved_uri().startswith("sqlite:///")
    _exercise(tracker, tmp_path)


@pytest.mark.parametrize("given", ["default", "field", "environment"])
def test_an_sqlite_store_keeps_artifacts_beside_it(
    given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedded default, or an SQLite store named by the field or the environment: a new
    experiment's artifacts go to ``artifacts/`` beside the store's file (``.mlflow/`` in the
    checkout), not to MLflow's ``./mlruns``, also after ``start_run`` put the URI in
    ``$MLFLOW_TRACKING_URI``."""
    from recs_assets.models import mlflow_tracker

    root = tmp_path / "store"
    root.mkdir()
    uri = f"sqlite:///{root / 'mlflow.db'}"
    monkeypatch.setattr(mlflow_tracker, "LOCAL_MLFLOW_DIR", root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # restored (or removed) afterwards
    if given != "environment":
        monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(tmp_path)
    tracker = MlflowTracker(tracking_uri=uri if given == "field" else "")
    with tracker.start_run("first") as run:
        mlflow.log_dict({"a": 1}, "a.json")
    assert os.environ["MLFLOW_TRACKING_URI"] == tracker.resolved_uri() == uri
    with tracker.start_run("second") as second:
        mlflow.log_dict({"b": 2}, "b.json")
    for r in (run, second):
        assert r.info.artifact_uri.startswith((root / "artifacts").as_uri())
    assert (root / "mlflow.db").is_file()
    assert not (tmp_path / "mlruns").exists()


def test_failed_block_marks_run_failed(tmp_path: Path) -> None:
    tracker = MlflowTracker(local_root=str(tmp_path / "mlflow"))
    with pytest.raises(RuntimeError, match="boom"), tracker.start_run("broken") as run:
        run_id = run.info.run_id
        raise RuntimeError("boom")
    assert tracker.client().get_run(run_id).info.status == "FAILED"


@pytest.mark.slow
def test_real_mlflow_server(tmp_path: Path, mlflow_server: str) -> None:
    tracker = MlflowTracker(tracking_uri=mlflow_server)
    _exercise(tracker, tmp_path)
    assert tracker.run_url("r1").startswith(f"{mlflow_server}/#/experiments/")


def _champion_as_pyfunc(
    tracker: MlflowTracker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A family version registered as a pyfunc, promoted to the champion alias, loads through
    ``models:/recs-champion@champion`` and recommends: exclude_seen, k, unknown users."""
    import sys

    import pandas as pd

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from serving_helpers import tiny_items, tiny_train

    from recs_assets.core.models.popularity import PopularityRecommender
    from recs_assets.core.serving.artifacts import write_artifacts
    from recs_assets.core.serving.champion import item_popularity
    from recs_assets.models.mlflow_tracker import CHAMPION_MODEL

    train = tiny_train()
    model = PopularityRecommender().fit(train)
    folder = tmp_path / "serving"
    write_artifacts(folder, model, train, tiny_items(), item_popularity(train))
    with (
        warnings.catch_warnings(record=True) as caught,
        tracker.start_run("popularity", dagster_run_id="run-1"),
    ):
        warnings.simplefilter("always")
        version = tracker.register_pyfunc(folder, "recs-popularity", example_users=["u1"])
    # the signature is declared: no schema inference and its warning on every version
    assert not [w for w in caught if "Inferred schema" in str(w.message)]
    tracker.promote(version)
    # the version is its model's code and the serving folder, no pickle: it loads where pickle
    # deserialization is off
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{CHAMPION_MODEL}@{CHAMPION}"))
    assert not list(local.rglob("*.pkl"))
    assert "model_code_path" in (local / "MLmodel").read_text()
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    loaded = mlflow.pyfunc.load_model(f"models:/{CHAMPION_MODEL}@{CHAMPION}")
    out = loaded.predict(pd.DataFrame({"user_id": ["u3", "ghost"]}), params={"k": 2})
    assert list(out.columns) == ["user_id", "rank", "item_id", "score", "title", "source"]
    u3 = out[out["user_id"] == "u3"]
    assert u3["item_id"].tolist() == ["i2", "i3"]  # u3 saw i0, i1; then by popularity
    assert set(u3["source"]) == {"model"} and u3["rank"].tolist() == [1, 2]
    ghost = out[out["user_id"] == "ghost"]
    assert set(ghost["source"]) == {"fallback"} and len(ghost) == 2
    meta = loaded.metadata
    assert meta.get_input_schema().input_names() == ["user_id"]
    assert meta.get_output_schema().input_names() == list(out.columns)
    assert {p.name for p in meta.get_params_schema().params} == {"k", "exclude_seen"}
    with pytest.raises(Exception, match="k must be between 1 and 100"):
        loaded.predict(pd.DataFrame({"user_id": ["u3"]}), params={"k": 0})
    # the version's environment names what loading any family imports
    uri = f"models:/{CHAMPION_MODEL}@{CHAMPION}"
    reqs = Path(mlflow.pyfunc.get_model_dependencies(uri))
    names = {line.split("==")[0] for line in reqs.read_text().split()}
    assert {"mlflow", "numpy", "lightfm-next", "torch", "lightgbm", "faiss-cpu"} <= names


def test_registered_versions_are_mlflow_pyfunc_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _champion_as_pyfunc(MlflowTracker(local_root=str(tmp_path / "mlflow")), tmp_path, monkeypatch)


@pytest.mark.slow
def test_champion_pyfunc_from_a_real_mlflow_server(
    tmp_path: Path, mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _champion_as_pyfunc(MlflowTracker(tracking_uri=mlflow_server), tmp_path, monkeypatch)
