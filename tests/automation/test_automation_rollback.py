"""Rollback: the pure version choice, and `recs rollback` against a local MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from recs_assets.cli.rollback import previous_version, rollback, rollback_command
from recs_assets.models.mlflow_tracker import CHAMPION, MlflowTracker


def test_previous_version() -> None:
    assert previous_version([1, 2, 3], 3) == "2"
    assert previous_version(["1", "4", "7"], "7") == "4"  # gaps: the next older registered one
    assert previous_version([1, 2, 3], 2) == "1"
    with pytest.raises(ValueError, match="oldest"):
        previous_version([1, 2], 1)
    with pytest.raises(ValueError, match="not among"):
        previous_version([1, 2], 5)


@pytest.fixture()
def tracker(tmp_path: Path) -> MlflowTracker:
    t = MlflowTracker(local_root=str(tmp_path / "mlflow"))
    client = t.client()
    client.create_registered_model("recs-model")
    for _ in range(3):
        client.create_model_version("recs-model", source=str(tmp_path / "artifact"))
    t.set_alias("recs-model", CHAMPION, 3)
    return t


def test_rollback_moves_champion(tracker: MlflowTracker) -> None:
    assert rollback(tracker, "recs-model") == ("3", "2")
    assert str(tracker.version_by_alias("recs-model", CHAMPION).version) == "2"
    assert rollback(tracker, "recs-model", to="3") == ("2", "3")
    with pytest.raises(ValueError, match="no version 9"):
        rollback(tracker, "recs-model", to="9")
    with pytest.raises(ValueError, match="no 'challenger' alias"):
        rollback(tracker, "recs-model", alias="challenger")
    with pytest.raises(ValueError, match="no registered model 'other'"):
        rollback(tracker, "other")


def test_rollback_command(tracker: MlflowTracker) -> None:
    uri = tracker.resolved_uri()
    runner = CliRunner()
    result = runner.invoke(rollback_command, ["--model", "recs-model", "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert "champion moved from version 3 to version 2" in result.output
    assert str(tracker.version_by_alias("recs-model", CHAMPION).version) == "2"
    result = runner.invoke(
        rollback_command, ["--model", "recs-model", "--tracking-uri", uri, "--to", "1"]
    )
    assert (
        result.exit_code == 0
        and str(tracker.version_by_alias("recs-model", CHAMPION).version) == "1"
    )
    result = runner.invoke(rollback_command, ["--model", "recs-model", "--tracking-uri", uri])
    assert result.exit_code != 0 and "oldest" in result.output
