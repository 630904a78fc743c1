"""The feature catalog in code, its docs, and the contracts agree."""

from __future__ import annotations

from recs_assets.core.features.catalog import all_catalogs, render_catalog_doc
from recs_assets.core.features.table_contracts import CONTRACTS
from recs_assets.core.paths import REPO_ROOT

DOC = REPO_ROOT / "docs" / "features.md"


def test_docs_hold_the_generated_catalog() -> None:
    # regenerate with: python -m recs_assets.core.features.catalog
    assert render_catalog_doc() in DOC.read_text()


def test_every_contract_column_is_in_the_catalog() -> None:
    for table, model in CONTRACTS.items():
        names = {spec.name for spec in all_catalogs()[table]}
        missing = set(model.to_schema().columns) - names
        assert not missing, f"{table}: contract columns not documented: {sorted(missing)}"


def test_catalog_entries_are_complete() -> None:
    for specs in all_catalogs().values():
        for spec in specs:
            assert spec.name and spec.dtype and spec.definition and spec.entity and spec.owner
