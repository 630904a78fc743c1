"""docs/architecture.md lists exactly what the definitions hold: every asset (with its group),
every check (with whether it blocks), every job, sensor and schedule."""

from __future__ import annotations

import importlib

import pytest

from recs_assets.core.paths import REPO_ROOT

DOC = REPO_ROOT / "docs" / "architecture.md"


def table_rows(header: str) -> list[list[str]]:
    """The cells (backticks stripped) of the markdown table whose header row starts ``header``."""
    lines = DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip().strip("`") for c in line.strip().strip("|").split("|")])
    return rows


@pytest.fixture(scope="module")
def defs():
    from recs_assets.definitions import defs

    return defs


def test_asset_table_matches_the_definitions(defs) -> None:
    graph = defs.resolve_asset_graph()
    defined = {(k.to_user_string(), graph.get(k).group_name) for k in graph.get_all_asset_keys()}
    documented = {(row[0], row[1]) for row in table_rows("| asset | group | module |")}
    assert documented == defined


def test_each_asset_is_defined_in_its_documented_module() -> None:
    from dagster import AssetsDefinition, load_assets_from_modules

    for name, _, module, _ in table_rows("| asset | group | module |"):
        loaded = load_assets_from_modules([importlib.import_module(f"recs_assets.{module}")])
        keys = {
            k.to_user_string() for a in loaded if isinstance(a, AssetsDefinition) for k in a.keys
        }
        assert name in keys, f"{name} is not defined in recs_assets.{module}"


def test_check_table_matches_the_definitions(defs) -> None:
    graph = defs.resolve_asset_graph()
    defined = {
        (k.asset_key.to_user_string(), k.name, graph.get_check_spec(k).blocking)
        for k in graph.asset_check_keys
    }
    documented = {
        (asset, check, blocking == "yes")
        for asset, check, blocking in table_rows("| asset | check | blocking |")
    }
    assert documented == defined


def test_jobs_sensors_and_schedules_are_listed(defs) -> None:
    assert {r[0] for r in table_rows("| job |")} == {j.name for j in defs.jobs}
    assert {r[0] for r in table_rows("| sensor |")} == {s.name for s in defs.sensors}
    assert {(r[0], r[1]) for r in table_rows("| schedule |")} == {
        (s.name, s.cron_schedule) for s in defs.schedules
    }
