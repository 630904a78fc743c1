"""A person backfills three days of ``raw_interactions`` from the Dagster UI (a real browser, the
webserver and the daemon of this workspace) and sees those days materialized, then sees the
columns of ``user_features`` (computed over those days) on its Overview."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance
from playwright.sync_api import expect, sync_playwright

from recs_assets.cli.dagster_home import prepare_dagster_home
from recs_assets.core.table_store import partitions, read_table
from tests.ui_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    dagster_daemon,
    dagster_materialize,
    dagster_webserver,
    dismiss_dagster_dialogs,
)

pytestmark = pytest.mark.slow

DAYS = ["2024-01-01", "2024-01-02", "2024-01-03"]  # the synthetic source's first three days


def test_backfill_three_days_of_raw_interactions_from_the_ui(tmp_path: Path) -> None:
    home = prepare_dagster_home(tmp_path / "dagster_home", env={})
    data = tmp_path / "data"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "RECS_DATA_DIR": str(data),
        "RECS_SOURCE": "synthetic",
        "RECS_REDIS_URL": "",
    }
    # the valid users and items the days are checked against (unpartitioned, from the CLI)
    dagster_materialize(env, "raw_users,raw_items,quarantined_rows")

    with (
        dagster_daemon(env),
        dagster_webserver(home, env) as url,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        dismiss_dagster_dialogs(page)
        page.goto(f"{url}/assets/raw_interactions?view=partitions", wait_until="domcontentloaded")
        page.get_by_role("button", name="Materialize").first.click(timeout=120_000)
        # raw_interactions and quarantined_interactions are written by one multi-asset
        page.get_by_text("quarantined_interactions").first.wait_for(timeout=60_000)
        page.get_by_role("button", name="Confirm").click()
        page.get_by_text("Partition selection").wait_for(timeout=60_000)
        page.get_by_text("Show all partitions").click()
        # the dialog's partition text box takes a range, as a person types it
        selector = page.get_by_role("dialog").locator("input[type=text], input:not([type])")
        selector.first.fill(f"[{DAYS[0]}...{DAYS[-1]}]")
        selector.first.press("Enter")
        # exact: the header "N Partitions Selected" holds "3 partitions" whenever N ends in 3
        expect(page.get_by_text("3 partitions", exact=True)).to_be_visible(timeout=30_000)
        page.screenshot(path=str(tmp_path / "backfill_dialog.png"))
        page.get_by_role("button", name="Launch backfill").click()

        deadline = time.monotonic() + 420
        done_days: set[str] = set()
        with DagsterInstance.from_config(str(home)) as instance:
            while time.monotonic() < deadline and done_days != set(DAYS):
                done_days = set(instance.get_materialized_partitions(AssetKey("raw_interactions")))
                time.sleep(3)
        assert done_days == set(DAYS), f"materialized: {sorted(done_days)}"

        # the asset's Partitions tab counts the three days as materialized
        page.goto(f"{url}/assets/raw_interactions?view=partitions", wait_until="domcontentloaded")
        expect(page.get_by_text("Materialized (3)")).to_be_visible(timeout=60_000)
        page.screenshot(path=str(tmp_path / "backfill_partitions.png"))

        # user_features over those days; its Overview lists the columns the table was written with
        dagster_materialize(env, "user_features")
        page.goto(f"{url}/assets/user_features", wait_until="domcontentloaded")
        columns = page.get_by_role("heading", name="Columns")
        if not columns.count():
            columns = page.get_by_text("Columns", exact=True)
        columns.first.wait_for(timeout=60_000)
        for name in ("user_id", "feature_timestamp", "events_7d", "view_count_30d"):
            expect(page.get_by_text(name, exact=True).first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(tmp_path / "user_features_columns.png"), full_page=True)
        browser.close()

    # one file per day, each holding that day's events only
    tables = data / "tables"
    assert partitions(tables, "raw_interactions") == DAYS
    for day in DAYS:
        events = read_table(tables, "raw_interactions", [day])
        assert len(events) > 0
        assert (events["timestamp"].dt.strftime("%Y-%m-%d") == day).all()
