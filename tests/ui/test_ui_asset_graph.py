"""A real browser opens the Dagster UI served from this workspace and sees the raw assets."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from recs_assets.cli.dagster_home import prepare_dagster_home
from tests.ui_helpers import CHROMIUM, CHROMIUM_ARGS, dagster_webserver, dismiss_dagster_dialogs

pytestmark = pytest.mark.slow


def test_asset_graph_shows_raw_group_and_assets(tmp_path: Path) -> None:
    home = prepare_dagster_home(tmp_path / "dagster_home", env={})
    with dagster_webserver(home) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        dismiss_dagster_dialogs(page)
        # The asset graph of the `raw` group in the `recs` code location. The graph only draws the
        # nodes in view (the group now feeds many assets), so read the names from its List tab.
        page.goto(f"{url}/locations/recs/asset-groups/raw", wait_until="domcontentloaded")
        lineage = tmp_path / "asset_graph_raw_lineage.png"
        page.get_by_text("Asset Group in").first.wait_for(timeout=120_000)
        page.screenshot(path=str(lineage))
        page.get_by_role("tab", name="List").click()
        for name in ("raw_interactions", "raw_users", "raw_items", "quarantined_rows"):
            page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
        shot = tmp_path / "asset_graph_raw.png"
        page.screenshot(path=str(shot))
        if os.environ.get("RECS_SCREENSHOTS"):  # keep the picture for a person to look at
            shutil.copy(shot, Path(os.environ["RECS_SCREENSHOTS"]) / shot.name)
        # Each row names its code location and group: `raw` for all four.
        assert page.get_by_text("raw", exact=True).count() >= 4
        browser.close()
