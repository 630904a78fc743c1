"""Wires the recs code location: asset domains with their groups, checks, resources, automation.

Only wiring lives here. Resources are chosen per deployment by ``RECS_DEPLOYMENT``
(``local``, the embedded default, or ``production``) in ``recs_assets.resources``.
"""

from __future__ import annotations

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from recs_assets import groups
from recs_assets.evaluation import assets as evaluation_assets
from recs_assets.phase1 import assets as phase1_assets
from recs_assets.resources import build_resources

_DOMAINS = [
    (phase1_assets, groups.RAW),
    (evaluation_assets, groups.EVALUATION),
]

defs = Definitions(
    assets=[
        a
        for module, group in _DOMAINS
        for a in load_assets_from_modules([module], group_name=group)
    ],
    asset_checks=[c for module, _ in _DOMAINS for c in load_asset_checks_from_modules([module])],
    resources=build_resources(),
)
