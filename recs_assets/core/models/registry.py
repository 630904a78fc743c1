"""Every model family by name: ``MODEL_FACTORIES[name](**params) -> Recommender``.

One line per family. Factories are called with keyword hyper-parameters (none for defaults);
the evaluation runner, the CLI (``recs eval --models NAME,...``) and the Dagster evaluation
asset all look models up here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from recs_assets.core.models.als import ImplicitMFRecommender, SparkALSRecommender, implicit_bpr
from recs_assets.core.models.base import Recommender
from recs_assets.core.models.content import ContentRecommender
from recs_assets.core.models.ease import EASERecommender
from recs_assets.core.models.ensemble import BlendRecommender
from recs_assets.core.models.lightfm_model import LightFMRecommender, lightfm_bpr, lightfm_hybrid
from recs_assets.core.models.ncf import NCFRecommender
from recs_assets.core.models.popularity import PopularityRecommender, RecentPopularityRecommender
from recs_assets.core.models.ranker import RankerRecommender
from recs_assets.core.models.rp3beta import RP3betaRecommender

MODEL_FACTORIES: dict[str, Callable[..., Recommender]] = {
    "popularity": PopularityRecommender,
    "recent_popularity": RecentPopularityRecommender,
    "ease": EASERecommender,
    "rp3beta": RP3betaRecommender,
    "lightfm": LightFMRecommender,
    "lightfm_bpr": lightfm_bpr,
    "lightfm_hybrid": lightfm_hybrid,
    "ncf": NCFRecommender,
    "content": ContentRecommender,
    "blend": BlendRecommender,
    "als": ImplicitMFRecommender,
    "implicit_bpr": implicit_bpr,
    "spark_als": SparkALSRecommender,
    "ranker": RankerRecommender,
}

# The families the pipeline materializes as model assets and evaluates by default (the others,
# e.g. the LightFM variants and ``implicit_bpr``, are available to ``recs eval``).
PIPELINE_FAMILIES: tuple[str, ...] = (
    "popularity",
    "ease",
    "rp3beta",
    "lightfm",
    "als",
    "ncf",
    "content",
    "blend",
    "ranker",
)
FAMILIES_ENV = "RECS_MODEL_FAMILIES"
SPARK_MASTER_ENV = "RECS_SPARK_MASTER"
# families a pipeline may name besides PIPELINE_FAMILIES (spark_als: ALS on the Spark cluster)
OPTIONAL_FAMILIES: tuple[str, ...] = ("spark_als",)


def pipeline_families(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The families the pipeline builds: ``$RECS_MODEL_FAMILIES`` (comma-separated names from
    ``PIPELINE_FAMILIES`` and ``OPTIONAL_FAMILIES``, e.g. ``popularity,ease`` for a quick run),
    else all of ``PIPELINE_FAMILIES``, with ``spark_als`` in place of ``als`` when
    ``$RECS_SPARK_MASTER`` names a Spark cluster.

    Read when the asset modules are imported, so set it before Dagster loads the definitions.
    """
    env = os.environ if env is None else env
    raw = env.get(FAMILIES_ENV, "").strip()
    if not raw:
        if env.get(SPARK_MASTER_ENV, "").strip():
            return tuple("spark_als" if f == "als" else f for f in PIPELINE_FAMILIES)
        return PIPELINE_FAMILIES
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    known = PIPELINE_FAMILIES + OPTIONAL_FAMILIES
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(
            f"{FAMILIES_ENV}={raw!r}: unknown or no family names {unknown}; "
            f"use comma-separated names from {', '.join(known)}"
        )
    return names


def model_factory(name: str) -> Callable[..., Recommender]:
    """The factory registered under ``name``; a clear error listing the known names otherwise."""
    try:
        return MODEL_FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered: {sorted(MODEL_FACTORIES)}") from None
