"""Code versions follow the code an asset runs: its module and the recs modules it imports."""

from __future__ import annotations

from recs_assets.platform.code_versions import closure, code_version


def test_closure_follows_imports_into_the_core_and_no_further() -> None:
    user = closure("recs_assets.features.user_features")
    assert "recs_assets.core.features.transforms.user" in user  # the transform it calls
    assert "recs_assets.core.phase1.schema" in user  # reached through the transform
    assert "recs_assets.core.serving.engine" not in user  # never imported on that path
    assert "recs_assets.core.features.transforms.user" not in closure(
        "recs_assets.monitoring.trending_items"
    )


def test_versions_are_stable_and_differ_with_the_code() -> None:
    a = code_version("recs_assets.features.user_features")
    assert a == code_version("recs_assets.features.user_features")
    assert len(a) == 12 and a != code_version("recs_assets.monitoring.trending_items")


def test_every_asset_carries_its_module_version() -> None:
    from dagster import AssetKey

    from recs_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    assert all(graph.get(k).code_version for k in graph.get_all_asset_keys())
    assert graph.get(AssetKey("user_features")).code_version == code_version(
        "recs_assets.features.user_features"
    )
