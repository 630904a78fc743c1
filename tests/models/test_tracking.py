"""MLflow tracking through MlflowTracker: local embedded store and a real `mlflow server`."""

from __future__ import annotations

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
