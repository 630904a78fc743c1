"""Names the pipeline and the service share, each defined once on the floor below both.

Environment variables, Redis keys and published-table locations that a Dagster asset writes and
the Bento reads (or the other way round). Paths of generated data are in ``core.paths``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from recs_assets.core.paths import data_subdir

CHAMPION_MODEL = "recs-champion"
"""Registered MLflow model whose versions are the promoted champions, whatever their family, so
"the previous champion" is simply the previous version (what ``recs rollback`` moves back to)."""

CHAMPION_ALIAS = "champion"
"""MLflow alias of the version the service answers with (it follows the alias without restart)."""

CHALLENGER_ALIAS = "challenger"
"""MLflow alias of a gated version waiting for promotion."""

DEPLOYMENT_ENV = "RECS_DEPLOYMENT"
"""``local`` (embedded defaults) or ``production`` (real services and real secrets required)."""


def is_production(env: Mapping[str, str]) -> bool:
    """``RECS_DEPLOYMENT=production`` (case and surrounding spaces ignored)."""
    return env.get(DEPLOYMENT_ENV, "").strip().lower() == "production"


REDIS_URL_ENV = "RECS_REDIS_URL"
"""Redis for the Feast online store, the API cache and the trending list (unset: none)."""

TRENDING_KEY = "recs:trending:v1"
"""Redis sorted set of trending items (member: item id, score: trending score)."""


def trending_path() -> Path:
    """Parquet file of trending items when Redis is not configured."""
    return data_subdir("trending") / "trending_items.parquet"
