"""A person opens the evaluation report in the Dagster UI (real webserver, headless Chromium)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from dagster import AssetsDefinition, DagsterInstance, materialize
from pipeline_fixtures import upstream_assets
from playwright.sync_api import sync_playwright

from recs_assets.cli.dagster_home import prepare_dagster_home
from recs_assets.core.evaluation.protocols import stratified_split, temporal_split
from recs_assets.core.phase1.synthetic import SyntheticData, generate_synthetic
from recs_assets.evaluation.evaluation_report import build_evaluation_report
from recs_assets.models.family_models import build_model_asset
from recs_assets.models.mlflow_tracker import MlflowTracker
from tests.ui_helpers import CHROMIUM, CHROMIUM_ARGS, dagster_webserver, dismiss_dagster_dialogs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate_synthetic(n_users=300, n_items=150, n_interactions=12_000, seed=3)


@pytest.fixture(scope="module")
def upstream(data: SyntheticData) -> list[AssetsDefinition]:
    """Raw tables and the P1 / P2 datasets of the synthetic data, as stand-in assets."""
    interactions = data.tables.interactions
    return upstream_assets(
        data.tables, stratified_split(interactions), temporal=temporal_split(interactions)
    )


def keep(shot: Path) -> None:
    """Copy a screenshot to $RECS_SCREENSHOTS, when set, for a person to look at."""
    if os.environ.get("RECS_SCREENSHOTS"):
        shutil.copy(shot, Path(os.environ["RECS_SCREENSHOTS"]) / shot.name)


def test_report_renders_in_the_ui(tmp_path: Path, upstream: list[AssetsDefinition]) -> None:
    home = prepare_dagster_home(tmp_path / "home", env={})
    instance = DagsterInstance.from_config(str(home))
    families = ("popularity", "ease")
    result = materialize(
        [*upstream, *(build_model_asset(f) for f in families), build_evaluation_report(families)],
        instance=instance,
        resources={"mlflow_tracker": MlflowTracker(local_root=str(tmp_path / "mlflow"))},
        run_config={
            "ops": {"evaluation_report": {"config": {"report_dir": str(tmp_path / "reports")}}}
        },
    )
    assert result.success
    instance.dispose()

    with dagster_webserver(home) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1400})
        dismiss_dagster_dialogs(page)
        page.goto(f"{url}/assets/evaluation_report", wait_until="domcontentloaded")
        # The lineage a person reads: the report's inputs are the model assets it reports on.
        for family in families:
            page.get_by_role("link", name=f"{family}_model").first.wait_for(timeout=60_000)
        # The latest materialization's metadata: the metric table names both models.
        page.get_by_text("html_report").first.wait_for(timeout=60_000)
        page.get_by_text("report", exact=True).first.wait_for(timeout=60_000)
        shot = tmp_path / "evaluation_report_asset.png"
        page.screenshot(path=str(shot), full_page=True)
        keep(shot)
        # Open the markdown report itself.
        page.get_by_text("[Show Markdown]").first.click(timeout=30_000)
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("ndcg@10").first.wait_for(timeout=30_000)
        assert dialog.locator("img").count() >= 3  # precision/recall vs k, popularity, segments
        assert dialog.get_by_text("ease").count() > 0
        report_shot = tmp_path / "evaluation_report_markdown.png"
        dialog.screenshot(path=str(report_shot))
        keep(report_shot)
        browser.close()
