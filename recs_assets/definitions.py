"""Wires the recs code location: asset domains with their groups, checks, resources, automation.

Only wiring lives here. Resources are chosen per deployment by ``RECS_DEPLOYMENT``
(``local``, the embedded default, or ``production``) in ``recs_assets.resources``.
"""

from __future__ import annotations

from dagster import Definitions

defs = Definitions()
