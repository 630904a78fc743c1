"""The feature catalog: every feature's name, type, definition, entity and owner, kept in code.

Each transform module declares its catalog next to the code that computes it; assets render it
into materialization metadata and ``docs/features.md`` is generated from it
(``python -m recs_assets.features.catalog``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dagster import TableColumn, TableRecord, TableSchema

OWNER = "features"


@dataclass(frozen=True)
class FeatureSpec:
    """One documented feature.

    Attributes:
        name: column name in the feature table (a ``<...>`` part stands for a family of columns).
        dtype: Spark SQL type name (``bigint``, ``double``, ``string``, ``timestamp``, ``int``).
        definition: what the value means, precisely enough to recompute it.
        entity: the key the feature belongs to (``user``, ``item`` or ``event``).
        owner: team or helper responsible for it.
    """

    name: str
    dtype: str
    definition: str
    entity: str
    owner: str = OWNER


def catalog_table(specs: Sequence[FeatureSpec]) -> tuple[TableSchema, list[TableRecord]]:
    """The catalog as a Dagster table (schema + records) for asset metadata."""
    schema = TableSchema(
        columns=[
            TableColumn("name", "string"),
            TableColumn("type", "string"),
            TableColumn("entity", "string"),
            TableColumn("owner", "string"),
            TableColumn("definition", "string"),
        ]
    )
    records = [
        TableRecord(
            {
                "name": s.name,
                "type": s.dtype,
                "entity": s.entity,
                "owner": s.owner,
                "definition": s.definition,
            }
        )
        for s in specs
    ]
    return schema, records


def catalog_markdown(title: str, specs: Sequence[FeatureSpec]) -> str:
    """A markdown section listing ``specs``."""
    lines = [
        f"## {title}",
        "",
        "| name | type | entity | owner | definition |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in specs:
        definition = s.definition.replace("|", "\\|")
        lines.append(f"| `{s.name}` | {s.dtype} | {s.entity} | {s.owner} | {definition} |")
    return "\n".join(lines) + "\n"


def all_catalogs() -> dict[str, tuple[FeatureSpec, ...]]:
    """Feature table name -> catalog, for every feature table recs builds."""
    from recs_assets.features.transforms.context import CONTEXT_CATALOG
    from recs_assets.features.transforms.item import ITEM_CATALOG
    from recs_assets.features.transforms.user import USER_CATALOG

    return {
        "user_features": USER_CATALOG,
        "item_features": ITEM_CATALOG,
        "context_features": CONTEXT_CATALOG,
    }


def render_catalog_doc() -> str:
    """The generated catalog part of ``docs/features.md``."""
    return "\n".join(catalog_markdown(f"`{name}`", specs) for name, specs in all_catalogs().items())


if __name__ == "__main__":
    print(render_catalog_doc())
