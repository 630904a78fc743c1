"""A person opens the MLflow UI of a real ``mlflow server`` (headless Chromium) and sees the runs
logged through ``MlflowTracker`` and the registered model with its versions and aliases."""

import os
import shutil
from pathlib import Path

import mlflow
import pytest
from playwright.sync_api import Page, sync_playwright

from recs_assets.models.mlflow_tracker import CHALLENGER, CHAMPION, MlflowTracker
from tests.ui_helpers import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.slow

MODEL = "recs-ui-ease"


def keep(shot: Path) -> None:
    """Copy a screenshot to $RECS_SCREENSHOTS, when set, for a person to look at."""
    if os.environ.get("RECS_SCREENSHOTS"):
        shutil.copy(shot, Path(os.environ["RECS_SCREENSHOTS"]) / shot.name)


def _train_and_register(tracker: MlflowTracker, tmp_path: Path, n: int) -> tuple[str, str]:
    folder = tmp_path / f"model-{n}"
    folder.mkdir()
    (folder / "params.json").write_text(f'{{"name": "ease", "params": {{"lam": {100 * n}}}}}')
    with tracker.start_run(f"ease-ui-run-{n}", dagster_run_id=f"dagster-{n}") as run:
        tracker.log_params({"family": "ease", "lam": 100 * n})
        mlflow.log_metric("ndcg_at_10", 0.4 + n / 100)
        run_id = run.info.run_id
    version = tracker.register_folder(run_id, folder, MODEL, tags={"family": "ease"})
    return run_id, str(version.version)


def _shot(page: Page, tmp_path: Path, name: str) -> None:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    keep(shot)


def test_runs_and_registered_versions_are_visible(tmp_path: Path, mlflow_server: str) -> None:
    tracker = MlflowTracker(tracking_uri=mlflow_server, experiment_name="recs-ui")
    (_, v1), (_, v2) = (_train_and_register(tracker, tmp_path, n) for n in (1, 2))
    tracker.set_alias(MODEL, CHAMPION, v2)
    tracker.set_alias(MODEL, CHALLENGER, v1)
    assert (v1, v2) == ("1", "2")
    experiment = tracker.experiment_id()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        # The experiment's runs table lists both runs by name (MLflow 3 opens experiments on a
        # GenAI overview; the ``/runs`` tab is the "Training runs" table).
        page.goto(f"{mlflow_server}/#/experiments/{experiment}/runs", wait_until="domcontentloaded")
        page.get_by_text("ease-ui-run-2").first.wait_for(timeout=60_000)
        page.get_by_text("ease-ui-run-1").first.wait_for(timeout=30_000)
        _shot(page, tmp_path, "mlflow_experiment_runs.png")

        # The registered model page lists both versions and their aliases.
        page.goto(f"{mlflow_server}/#/models/{MODEL}", wait_until="domcontentloaded")
        page.get_by_text("Version 2").first.wait_for(timeout=60_000)
        page.get_by_text("Version 1").first.wait_for(timeout=30_000)
        page.get_by_text(f"@ {CHAMPION}").first.wait_for(timeout=30_000)
        page.get_by_text(f"@ {CHALLENGER}").first.wait_for(timeout=30_000)
        # Each alias sits in its version's row: champion -> 2, challenger -> 1.
        row2 = page.get_by_role("row").filter(has_text="Version 2")
        row1 = page.get_by_role("row").filter(has_text="Version 1")
        assert f"@ {CHAMPION}" in " ".join(row2.first.inner_text().split())  # nbsp -> space
        assert f"@ {CHALLENGER}" in " ".join(row1.first.inner_text().split())
        _shot(page, tmp_path, "mlflow_registered_model.png")
        browser.close()
