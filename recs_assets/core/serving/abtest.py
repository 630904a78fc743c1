"""A/B experiments: the config, deterministic assignment of users to variants, and the router.

The config is a JSON file named by ``RECS_AB_CONFIG``::

    {"name": "ease-vs-pop", "salt": "2026-12",
     "variants": [{"name": "control", "model": "recs_recommender:abc", "share": 0.5},
                  {"name": "treatment", "model": "recs_recommender:def", "share": 0.5}]}

``model`` is a BentoML model tag (``name:version`` or ``name:latest``) or ``default`` (the
service's own ``RECS_BENTO_MODEL``). Without ``RECS_AB_CONFIG`` there is no experiment: one
variant (``RECS_VARIANT``, default ``champion``) serving the default model to everyone.

A user's variant is a pure function of (user id, salt): ``sha256(salt + ":" + user_id)`` read as
a number in [0, 1), looked up in the cumulative shares (variants in config order). Changing the
salt reshuffles everyone; changing shares moves only the users near the boundaries.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recs_assets.core.serving.artifacts import ServingModel
from recs_assets.core.serving.cache import Cache
from recs_assets.core.serving.engine import InputError, RecommendationEngine
from recs_assets.core.serving.exposure import FEEDBACK_KINDS, ExposureLog
from recs_assets.core.serving.impressions import ImpressionIndex
from recs_assets.core.serving.online_feature_reader import OnlineFeatureReader
from recs_assets.core.serving.schemas import (
    BatchRecommendations,
    FeedbackAck,
    Recommendations,
    Scores,
)
from recs_assets.core.serving.settings import ServingSettings
from recs_assets.core.serving.telemetry import ServingMetrics
from recs_assets.core.serving.trending_follower import TrendingFollower

DEFAULT_MODEL = "default"
SHARE_TOLERANCE = 1e-6


class Variant(BaseModel):
    """One arm of an experiment: a name, the model it serves and its share of users."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, description="Variant name (in answers/logs).")
    model: str = Field(DEFAULT_MODEL, min_length=1, description="BentoML model tag, or 'default'.")
    share: float = Field(ge=0.0, le=1.0, description="Fraction of users, 0-1.")


class Experiment(BaseModel):
    """Variants with traffic shares summing to 1, and the salt of the assignment hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("none", min_length=1, description="Experiment name.")
    salt: str = Field("", description="Mixed into the assignment hash; change to reshuffle.")
    variants: tuple[Variant, ...] = Field(min_length=1, description="Arms, in assignment order.")

    @model_validator(mode="after")
    def _check(self) -> Experiment:
        names = [v.name for v in self.variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"experiment {self.name!r}: duplicate variant name(s) {dupes}")
        total = sum(v.share for v in self.variants)
        if abs(total - 1.0) > SHARE_TOLERANCE:
            raise ValueError(
                f"experiment {self.name!r}: variant shares must sum to 1, got {total:.6f} "
                f"({', '.join(f'{v.name}={v.share}' for v in self.variants)})"
            )
        return self

    @property
    def control(self) -> str:
        """The first variant: answers requests that have no user (similar items, model info)."""
        return self.variants[0].name

    def variant(self, name: str) -> Variant:
        """The variant called ``name``; ``InputError`` (400) naming the known ones otherwise."""
        for v in self.variants:
            if v.name == name:
                return v
        raise InputError(
            f"unknown variant {name!r} in experiment {self.name!r}; "
            f"known: {[v.name for v in self.variants]}"
        )


def no_experiment(variant: str = "champion") -> Experiment:
    """The default: everyone gets ``variant`` served by the default model."""
    return Experiment(variants=(Variant(name=variant, model=DEFAULT_MODEL, share=1.0),))


def load_experiment(env: Mapping[str, str] | None = None, variant: str = "champion") -> Experiment:
    """The experiment in the JSON file ``$RECS_AB_CONFIG``, else ``no_experiment(variant)``."""
    env = os.environ if env is None else env
    raw = env.get("RECS_AB_CONFIG", "").strip()
    if not raw:
        return no_experiment(variant)
    path = Path(raw)
    if not path.is_file():
        raise FileNotFoundError(f"RECS_AB_CONFIG={raw!r}: no such experiment config file")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"RECS_AB_CONFIG={raw!r} is not valid JSON: {exc}") from None
    return Experiment.model_validate(data)


def assignment_bucket(user_id: str, salt: str) -> float:
    """Where ``user_id`` falls in [0, 1) for ``salt``: the first 8 bytes of a SHA-256, / 2**64."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_variant(experiment: Experiment, user_id: str) -> str:
    """The variant of ``user_id``: the first whose cumulative share exceeds its bucket."""
    bucket = assignment_bucket(str(user_id), experiment.salt)
    upper = 0.0
    for v in experiment.variants:
        upper += v.share
        if bucket < upper:
            return v.name
    # shares sum to 1 within SHARE_TOLERANCE: a bucket above the rounded sum goes to the last arm
    return [v for v in experiment.variants if v.share > 0][-1].name


def load_variant_models(
    experiment: Experiment,
    default: ServingModel,
    loader: Any,
) -> dict[str, ServingModel]:
    """One ``ServingModel`` per variant: ``default`` for model 'default', ``loader(tag)`` otherwise.

    Variants naming the same tag share one loaded model.
    """
    loaded: dict[str, ServingModel] = {DEFAULT_MODEL: default}
    out: dict[str, ServingModel] = {}
    for v in experiment.variants:
        if v.model not in loaded:
            loaded[v.model] = loader(v.model)
        out[v.name] = loaded[v.model]
    return out


class ExperimentRouter:
    """Sends each request to its user's variant engine and records what was served.

    Args:
        experiment: the variants and salt.
        engines: one ``RecommendationEngine`` per variant name.
        exposure: where served lists and feedback go (None: not recorded).
        impressions: the recently served (user, item) pairs that feedback must match (None:
            feedback for any known item).
    """

    def __init__(
        self,
        experiment: Experiment,
        engines: Mapping[str, RecommendationEngine],
        exposure: ExposureLog | None,
        impressions: ImpressionIndex | None = None,
    ) -> None:
        missing = [v.name for v in experiment.variants if v.name not in engines]
        if missing:
            raise ValueError(f"no engine for variant(s) {missing}")
        self.experiment = experiment
        self.engines = dict(engines)
        self.exposure = exposure
        self.impressions = impressions
        # versions served before a hot reload: feedback on their lists still counts
        self.retired_versions: set[str] = set()

    @classmethod
    def create(
        cls,
        experiment: Experiment,
        models: Mapping[str, ServingModel],
        cache: Cache,
        settings: ServingSettings,
        metrics: ServingMetrics,
        exposure: ExposureLog | None,
        features: OnlineFeatureReader | None = None,
        trending: TrendingFollower | None = None,
        impressions: ImpressionIndex | None = None,
    ) -> ExperimentRouter:
        """Engines over one shared cache (keys differ by model tag), each reporting its variant;
        ``features``: online user features for feature-based models, ``trending``: the published
        trending list (both shared by the engines)."""
        engines = {
            v.name: RecommendationEngine(
                models[v.name],
                cache,
                dataclasses.replace(settings, variant=v.name),
                metrics,
                features,
                trending,
            )
            for v in experiment.variants
        }
        return cls(experiment, engines, exposure, impressions)

    @property
    def control_engine(self) -> RecommendationEngine:
        return self.engines[self.experiment.control]

    def replace_model(self, name: str, model: ServingModel) -> RecommendationEngine:
        """Serve ``model`` for variant ``name`` from now on (hot reload, ``serving.reload``).

        A new engine over the same cache, settings and metrics replaces the old one in a single
        reference assignment: a request in flight finishes on the engine it started with. The
        old version's ``recs_model_info`` series drops to 0. Returns the new engine.
        """
        old = self.engines[name]
        new = RecommendationEngine(
            model, old.cache, old.settings, old.metrics, old.features, old.trending
        )
        self.engines[name] = new
        before = old.model
        if (before.version, before.model_name) != (model.version, model.model_name):
            old.metrics.model_info.labels(
                model_version=before.version,
                model_name=before.model_name,
                variant=old.settings.variant,
                loaded=str(before.recommender is not None).lower(),
            ).set(0)
            self.retired_versions.add(before.version)
        return new

    def engine_for(self, user_id: str) -> RecommendationEngine:
        return self.engines[assign_variant(self.experiment, user_id)]

    def recommend(
        self, user_id: str, k: int, exclude_seen: bool, context: dict[str, Any] | None
    ) -> Recommendations:
        """The user's variant's list, recorded in the exposure log."""
        answer = self.engine_for(user_id).recommend(user_id, k, exclude_seen, context)
        self._remember([answer])
        if self.exposure is not None:
            self.exposure.record_lists([answer], datetime.now(UTC))
        return answer

    def _remember(self, answers: Sequence[Recommendations]) -> None:
        if self.impressions is not None:
            self.impressions.remember_many(
                [(a.user_id, [it.item_id for it in a.items]) for a in answers]
            )

    def recommend_batch(
        self, user_ids: Sequence[str], k: int, exclude_seen: bool
    ) -> BatchRecommendations:
        """Each user's list from their variant, in request order (every list is recorded)."""
        by_variant: dict[str, list[int]] = {}
        for pos, uid in enumerate(user_ids):
            by_variant.setdefault(assign_variant(self.experiment, str(uid)), []).append(pos)
        results: list[Recommendations | None] = [None] * len(user_ids)
        for name, positions in by_variant.items():
            batch = self.engines[name].recommend_batch(
                [str(user_ids[p]) for p in positions], k, exclude_seen
            )
            for p, r in zip(positions, batch.results, strict=True):
                results[p] = r
        answers = [r for r in results if r is not None]
        self._remember(answers)
        if self.exposure is not None:
            self.exposure.record_lists(answers, datetime.now(UTC))
        versions = sorted({a.model_version for a in answers})
        return BatchRecommendations(
            results=answers, model_version=versions[0] if len(versions) == 1 else ",".join(versions)
        )

    def score(self, user_id: str, item_ids: Sequence[str]) -> Scores:
        return self.engine_for(user_id).score(user_id, item_ids)

    def feedback(
        self,
        user_id: str,
        item_id: str,
        event: str,
        variant: str | None = None,
        model_version: str | None = None,
    ) -> FeedbackAck:
        """Validate and record one click or conversion (``InputError`` -> HTTP 400)."""
        if event not in FEEDBACK_KINDS:
            raise InputError(f"event must be one of {list(FEEDBACK_KINDS)}, got {event!r}")
        name = variant if variant is not None else assign_variant(self.experiment, user_id)
        self.experiment.variant(name)  # raises on an unknown variant
        model = self.engines[name].model
        if not model.train.has_item(item_id):
            raise InputError(f"unknown item_id {item_id!r} for variant {name!r}")
        if self.impressions is not None and not self.impressions.seen(user_id, item_id):
            raise InputError(
                f"no impression of item {item_id!r} for user {user_id!r} in the last "
                f"{self.impressions.window_s:g} s: feedback is accepted only for items this "
                "service recommended to the user"
            )
        versions = sorted({e.model.version for e in self.engines.values()})
        version = model_version if model_version is not None else model.version
        if version not in versions and version not in self.retired_versions:
            raise InputError(f"unknown model_version {version!r}; this service serves {versions}")
        if self.exposure is not None:
            self.exposure.record_feedback(user_id, item_id, event, name, version, datetime.now(UTC))
        return FeedbackAck(
            user_id=user_id,
            item_id=item_id,
            event=event,  # type: ignore[arg-type]
            variant=name,
            model_version=version,
            recorded=self.exposure is not None,
        )

    def close(self) -> None:
        """Write out whatever the exposure log still buffers."""
        if self.exposure is not None:
            self.exposure.flush()
