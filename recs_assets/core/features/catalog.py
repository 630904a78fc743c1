"""The feature catalog: every feature's name, type, definition, entity and owner, kept in code.

Each transform module declares its catalog next to the code that computes it; assets render it
into materialization metadata and ``docs/features.md`` is generated from it
(``python -m recs_assets.core.features.catalog``).
"""

from __future__ import annotations

from collections.abc import Sequence

from recs_assets.core.features.feature_spec import FeatureSpec
from recs_assets.core.features.transforms.context import CONTEXT_CATALOG
from recs_assets.core.features.transforms.item import ITEM_CATALOG
from recs_assets.core.features.transforms.user import USER_CATALOG


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
