"""What a model asset hands downstream, and the pure pieces of training a model family."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from recs_assets.core.evaluation.gates import GateConfig, GateResult, evaluate_gates, passed
from recs_assets.core.evaluation.latency import request_latency
from recs_assets.core.evaluation.protocols import Split
from recs_assets.core.evaluation.runner import (
    EvaluationReport,
    ModelEvaluation,
    SideTables,
    SplitSummary,
    build_side_info,
    fit_model,
    measure,
    with_lift,
)
from recs_assets.core.evaluation.uncertainty import (
    DEFAULT_LEVEL,
    PairedDifference,
    paired_difference,
)
from recs_assets.core.models.base import InteractionMatrix, Recommender, SideInfo
from recs_assets.core.models.feature_encoder import FeatureEncoder
from recs_assets.core.models.popularity import PopularityRecommender


@dataclass(frozen=True)
class TrainedModel:
    """A fitted model family with its held-out evaluation and where MLflow keeps it.

    Attributes:
        family: registry name (``ease``, ``lightfm`` ...).
        model: the fitted recommender.
        train: the interaction matrix it was fitted on (id maps included).
        evaluation: P1 held-out metrics (with lift over popularity on the same split).
        gates: the quality gates evaluated on ``evaluation``.
        mlflow_run_id: the MLflow run of this training ("" when not tracked).
        model_version: the MLflow registered model version ("" when not registered).
        registered_name: the MLflow registered model name.
        user_encoder: how the user side features were encoded (feature-store models), so
            serving can encode a new user's online features the same way; None otherwise.
    """

    family: str
    model: Recommender
    train: InteractionMatrix
    evaluation: ModelEvaluation
    gates: tuple[GateResult, ...]
    mlflow_run_id: str = ""
    model_version: str = ""
    registered_name: str = ""
    user_encoder: FeatureEncoder | None = None

    @property
    def passed_gates(self) -> bool:
        return passed(list(self.gates))


def held_out_evaluation(
    family: str,
    model: Recommender,
    fit_seconds: float,
    split: Split,
    side: SideInfo,
    k: int = 10,
) -> ModelEvaluation:
    """``model``'s metrics on ``split.test`` with lifts over popularity fitted on the same train,
    and the time of one-user requests (``request_ms``; the latency gate reads its p95)."""
    own = measure(family, model, split, side, k=k, fit_seconds=fit_seconds)
    baseline = measure("popularity", PopularityRecommender().fit(split.train), split, side, k=k)
    timed = request_latency(model, split.train.matrix, k=k)
    return replace(
        with_lift(own, baseline),
        request_ms={"p50": timed.p50_ms, "p95": timed.p95_ms, "p99": timed.p99_ms},
    )


def gate_results(evaluation: ModelEvaluation, config: GateConfig) -> tuple[GateResult, ...]:
    return tuple(evaluate_gates(evaluation, config))


def side_info(split: Split, users: pd.DataFrame | None, items: pd.DataFrame | None) -> SideInfo:
    return build_side_info(split, SideTables(users=users, items=items))


def saved_folder(model: Recommender) -> Path:
    """Save ``model`` into a fresh temporary folder (caller logs it and may delete it)."""
    folder = Path(tempfile.mkdtemp(prefix=f"recs-{model.name}-"))
    model.save(folder / "model")
    return folder / "model"


def version_label(trained: TrainedModel) -> str:
    """How serving names a trained model: ``<registered name>/<version>``, or the family."""
    if trained.model_version:
        return f"{trained.registered_name}/{trained.model_version}"
    return trained.family


def choose_champion(candidates: list[TrainedModel], metric: str) -> list[TrainedModel]:
    """Candidates that passed their gates, best ``metric`` first (ties: family name)."""
    ok = [c for c in candidates if c.passed_gates and metric in c.evaluation.metrics]
    return sorted(ok, key=lambda c: (-c.evaluation.metrics[metric], c.family))


@dataclass(frozen=True)
class ChampionDecision:
    """Which eligible family to promote, and why.

    Attributes:
        champion: the family to promote (its model trained in this run).
        ranked: the eligible families, best ``metric`` first.
        incumbent: the family that held the champion alias before (None: none).
        difference: the best family's paired difference to the incumbent (best - incumbent),
            when they differ and both carry per-user values.
        reason: one sentence for the asset's metadata.
    """

    champion: TrainedModel
    ranked: list[TrainedModel]
    incumbent: str | None
    difference: PairedDifference | None
    reason: str


def decide_champion(
    candidates: list[TrainedModel],
    metric: str,
    incumbent: str | None = None,
    min_gain: float = 0.0,
    level: float = DEFAULT_LEVEL,
) -> ChampionDecision | None:
    """The family to promote: the best eligible one, unless the incumbent family is eligible
    and the best one's gain over it is not above ``min_gain`` with ``level`` confidence (paired
    bootstrap over the held-out users), in which case the incumbent stays. None: no family
    passed its gates."""
    ranked = choose_champion(candidates, metric)
    if not ranked:
        return None
    best = ranked[0]
    holder = next((c for c in ranked if c.family == incumbent), None)
    if incumbent is None:
        return ChampionDecision(
            best, ranked, None, None, f"no champion yet: {best.family} is the best"
        )
    if holder is None:
        return ChampionDecision(
            best,
            ranked,
            incumbent,
            None,
            f"the incumbent {incumbent} is not eligible this run: {best.family} is the best",
        )
    if holder is best:
        return ChampionDecision(
            best, ranked, incumbent, None, f"the incumbent {incumbent} is still the best"
        )
    diff = paired_difference(best.evaluation, holder.evaluation, metric, level=level)
    if diff is None:
        return ChampionDecision(
            best,
            ranked,
            incumbent,
            None,
            f"{best.family} is the best; no per-user values to compare with {incumbent}",
        )
    span = f"{metric} {diff.mean:+.4f}, {level:.0%} interval [{diff.low:+.4f}, {diff.high:+.4f}]"
    if diff.clears(min_gain):
        return ChampionDecision(
            best,
            ranked,
            incumbent,
            diff,
            f"{best.family} replaces {incumbent}: {span} lies above the minimum gain {min_gain}",
        )
    return ChampionDecision(
        holder,
        ranked,
        incumbent,
        diff,
        f"{incumbent} stays: {best.family}'s gain ({span}) is not above the minimum gain "
        f"{min_gain} with {level:.0%} confidence",
    )


def report_of_trained(
    trained: Sequence[TrainedModel],
    split: Split,
    *,
    dataset: str,
    refits: Sequence[tuple[Split, SideInfo]] = (),
    refit_families: Collection[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> EvaluationReport:
    """The evaluation report of fitted models, not of fresh fits.

    Under ``split.protocol`` (the split the models were fitted on), each entry is the model's own
    held-out evaluation, the very numbers its gates were computed on. For every ``(split, side)``
    in ``refits`` (another protocol's dataset), the families in ``refit_families`` (default: all)
    are fitted again on that split with the hyper-parameters of the fitted model, and measured
    with their lift over popularity on the same split.
    """
    if not trained:
        raise ValueError("no trained models to report on")
    ks = {t.evaluation.k for t in trained}
    if len(ks) != 1:
        raise ValueError(f"the models were evaluated at different list lengths {sorted(ks)}")
    (k,) = ks
    wrong = [t.family for t in trained if t.evaluation.protocol != split.protocol]
    if wrong:
        raise ValueError(f"{wrong} were not evaluated under {split.protocol!r}")
    evaluations = [t.evaluation for t in trained]
    splits = {split.protocol: SplitSummary.of(split)}
    for other, side in refits:
        splits[other.protocol] = SplitSummary.of(other)
        baseline = measure("popularity", PopularityRecommender().fit(other.train), other, side, k=k)
        for t in trained:
            if refit_families is not None and t.family not in refit_families:
                continue
            if progress:
                progress(f"{other.protocol}: {t.family} refit with its model's parameters")
            model, seconds = fit_model(t.family, other, side, t.model.params())
            own = measure(t.family, model, other, side, k=k, fit_seconds=seconds)
            evaluations.append(with_lift(own, baseline))
    return EvaluationReport(dataset, k, evaluations, splits)
