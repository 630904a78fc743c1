"""Model assets: one per family, fitted on the P1 train split, measured on held-out test data,
tracked and registered in MLflow; and ``champion_model``, the best family that passed its gates.

No ``from __future__ import annotations`` here: Dagster resolves ``Config`` annotations at runtime.
"""

import os
import shutil
import tempfile
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    Config,
    MetadataValue,
    Output,
    asset,
    asset_check,
)
from pydantic import Field

from recs_assets.core.datasets.dataset import TrainingDataset
from recs_assets.core.datasets.feature_side import feature_store_attributes, feature_store_side
from recs_assets.core.evaluation.runner import fit_model
from recs_assets.core.evaluation.trained import (
    TrainedModel,
    decide_champion,
    gate_results,
    held_out_evaluation,
    side_info,
    version_label,
)
from recs_assets.core.evaluation.tuning import TuningResult, tuned_hyperparameters, tuned_members
from recs_assets.core.models.ensemble import DEFAULT_MEMBERS
from recs_assets.core.models.feature_encoder import FeatureEncoder
from recs_assets.core.models.lightfm_model import LightFMRecommender
from recs_assets.core.models.ranker import DEFAULT_GENERATORS, RankerRecommender
from recs_assets.core.models.registry import SPARK_MASTER_ENV, pipeline_families
from recs_assets.core.serving.artifacts import write_artifacts
from recs_assets.core.serving.champion import ChampionModel, item_popularity
from recs_assets.models.gate_thresholds import GateThresholds
from recs_assets.models.mlflow_tracker import CHALLENGER, CHAMPION, CHAMPION_MODEL, MlflowTracker
from recs_assets.models.tuning_studies import TUNED_FAMILIES

MODEL_FAMILIES = pipeline_families()  # $RECS_MODEL_FAMILIES, default every pipeline family
REGISTERED_PREFIX = "recs"


# composite families: the hyper-parameter that lists their members, and its default; each member
# takes the tuned parameters of its family's study in this run
COMPOSITE_MEMBERS: dict[str, tuple[str, Sequence[Mapping[str, Any]]]] = {
    "blend": ("members", DEFAULT_MEMBERS),
    "ranker": ("generators", DEFAULT_GENERATORS),
}


def tuned_member_families(family: str) -> tuple[str, ...]:
    """The tuned families among ``family``'s default members that this pipeline builds."""
    if family not in COMPOSITE_MEMBERS:
        return ()
    return tuple(
        m["name"]
        for m in COMPOSITE_MEMBERS[family][1]
        if m["name"] in TUNED_FAMILIES and m["name"] in MODEL_FAMILIES
    )


class ModelTrainingConfig(GateThresholds):
    """How a model family is trained and gated.

    ``hyperparameters``: overrides of the family's tuned defaults (e.g. the tuning asset's best).
    ``register_version``: register the fitted model as a new MLflow model version.
    Gate thresholds: see ``docs/evaluation.md``.
    """

    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    k: int = 10
    register_version: bool = True


def importance_table(importance: Mapping[str, float]) -> str:
    """Markdown rows of features by total gain, largest first, with each one's share."""
    total = sum(importance.values()) or 1.0
    rows = sorted(importance.items(), key=lambda kv: -kv[1])
    return "| feature | gain | share |\n| --- | --- | --- |\n" + "\n".join(
        f"| {n} | {g:.1f} | {g / total:.1%} |" for n, g in rows
    )


def _metric_key(name: str) -> str:
    return name.replace("@", "_at_")


def build_model_asset(
    family: str,
    tuned: bool = False,
    *,
    feature_store: bool = False,
    defaults: Mapping[str, Any] | None = None,
    feature_columns: Mapping[str, Collection[str]] | None = None,
    member_tunings: Collection[str] = (),
    attributes: bool = False,
) -> AssetsDefinition:
    """The ``{family}_model`` asset; with ``tuned``, it trains with the best parameters of the
    ``{family}_tuning`` study (explicit ``hyperparameters`` in the config still win). With
    ``feature_store``, it reads the ``user_features`` and ``item_features`` tables and passes them
    as LightFM side features (``feature_side.feature_store_side``: leak-free snapshot, binned and
    one-hot; ``feature_columns`` maps ``user``/``item`` to the columns used, default all the leak
    rule allows). ``defaults`` are hyper-parameters under the tuned and configured ones. With
    ``member_tunings`` (the blend, the ranker), the members of those families take their studies'
    best parameters (``COMPOSITE_MEMBERS``). With ``attributes`` (the ranker), it reads the
    feature tables too and gives the model their users' and items' attributes, point in time
    (``feature_side.feature_store_attributes``: the newest snapshot without held-out
    interactions, else static columns only)."""
    if member_tunings and family not in COMPOSITE_MEMBERS:
        raise ValueError(
            f"{family}: member_tunings apply to composite families only ({sorted(COMPOSITE_MEMBERS)})"
        )
    tuning_in = {"tuning": AssetIn(f"{family}_tuning")} if tuned else {}
    tuning_in |= {f"{m}_tuning": AssetIn(f"{m}_tuning") for m in member_tunings}
    reads_store = feature_store or attributes
    features_in = {"user_features": AssetIn(), "item_features": AssetIn()} if reads_store else {}
    description = f"The {family} recommender fitted on the P1 train split, with held-out metrics."
    if feature_store:
        description = (
            f"The {family} recommender with user and item features from the feature store, "
            "fitted on the P1 train split, with held-out metrics."
        )
    if attributes:
        description = (
            f"The {family} recommender, its trees reading user and item attributes from the "
            "feature store (point in time), fitted on the P1 train split, with held-out metrics."
        )

    @asset(
        name=f"{family}_model",
        ins={
            "stratified_dataset": AssetIn(),
            "raw_users": AssetIn(),
            "raw_items": AssetIn(),
            **tuning_in,
            **features_in,
        },
        description=description,
    )
    def _model(
        context: AssetExecutionContext,
        config: ModelTrainingConfig,
        mlflow_tracker: MlflowTracker,
        stratified_dataset: TrainingDataset,
        raw_users: pd.DataFrame,
        raw_items: pd.DataFrame,
        **upstream: Any,  # tuning: TuningResult; user_features, item_features: FeatureTable
    ) -> Output[TrainedModel]:
        split = stratified_dataset.split
        tuning: TuningResult | None = upstream.get("tuning")
        members: dict[str, Any] = {}
        if member_tunings:
            tunings = {m: upstream[f"{m}_tuning"] for m in member_tunings}
            key, specs = COMPOSITE_MEMBERS[family]
            members = {key: tuned_members(specs, tunings)}
        hyperparameters = {
            **dict(defaults or {}),
            **members,
            **tuned_hyperparameters(tuning, config.hyperparameters),
        }
        side = side_info(split, raw_users, raw_items)
        side_meta: dict[str, MetadataValue] = {}
        user_encoder: FeatureEncoder | None = None
        if feature_store:
            columns = feature_columns or {}
            features = feature_store_side(
                split,
                upstream["user_features"],
                upstream["item_features"],
                user_columns=columns.get("user"),
                item_columns=columns.get("item"),
            )
            side = features.side_info(side)
            user_encoder = None if features.users is None else features.users.encoder
            side_meta = {"side_features": MetadataValue.json(features.summary())}
            context.log.info(f"{family}: side features {features.summary()}")
        if attributes:
            attrs = feature_store_attributes(
                split, upstream["user_features"], upstream["item_features"]
            )
            side = attrs.side_info(side)
            side_meta["side_features"] = MetadataValue.json(attrs.summary())
            context.log.info(f"{family}: attributes from the feature store {attrs.summary()}")
        asset_key = f"{family}_model"
        with mlflow_tracker.start_run(
            family, dagster_run_id=context.run.run_id, asset_key=asset_key, tags={"family": family}
        ) as run:

            def progress(report: Any) -> None:  # per-epoch progress of iterative models
                context.log.info(f"{family}: {report}")
                step = int(getattr(report, "epoch", 0))
                mlflow.log_metric(f"{getattr(report, 'stage', 'main')}_loss", report.loss, step)
                if getattr(report, "validation_ndcg", None) is not None:
                    mlflow.log_metric("validation_ndcg_at_10", report.validation_ndcg, step)

            model, fit_seconds = fit_model(family, split, side, hyperparameters or None, progress)
            if not (
                isinstance(model, LightFMRecommender)
                and user_encoder is not None
                and model.n_user_features == user_encoder.n_features
            ):
                user_encoder = None  # the model does not score user feature rows
            evaluation = held_out_evaluation(family, model, fit_seconds, split, side, k=config.k)
            if isinstance(model, RankerRecommender):  # what the ranker's trees learned from
                importance = model.feature_importance()
                mlflow.log_dict(importance, "feature_importance.json")
                mlflow.log_metrics({f"feature_gain.{n}": g for n, g in importance.items()})
                side_meta["feature_importance"] = MetadataValue.md(importance_table(importance))
                summary = model.summary()  # the prior's weights, the trees kept
                mlflow.log_metrics({f"ranker.{n}": v for n, v in summary.items() if v == v})
                side_meta["ranker_prior"] = MetadataValue.json(summary)
            gates = gate_results(evaluation, config.gate_config())
            mlflow_tracker.log_params({"family": family, **model.params()})
            if "side_features" in side_meta:
                mlflow.log_dict(side_meta["side_features"].value, "side_features.json")
            if user_encoder is not None:  # what serving encodes new users' online features with
                mlflow.log_dict(user_encoder.to_json(), "user_feature_encoder.json")
            flat = {_metric_key(k): float(v) for k, v in evaluation.flat().items()}
            mlflow.log_metrics({k: v for k, v in flat.items() if v == v})  # NaN is not loggable
            mlflow.log_dict(
                {
                    g.gate: {"passed": g.passed, "value": g.value, "threshold": g.threshold}
                    for g in gates
                },
                "gates.json",
            )
            version, registered = "", ""
            if config.register_version:
                # an MLflow pyfunc model over a serving folder (model, id maps, training matrix,
                # popularity, titles): mlflow.pyfunc.load_model(...) recommends
                folder = Path(tempfile.mkdtemp(prefix=f"recs-{family}-")) / "serving"
                write_artifacts(
                    folder,
                    model,
                    split.train,
                    raw_items,
                    item_popularity(split.train),
                    user_encoder,
                )
                registered = f"{REGISTERED_PREFIX}-{family}"
                mv = mlflow_tracker.register_pyfunc(
                    folder,
                    registered,
                    example_users=[str(u) for u in split.train.user_ids[:2]],
                    tags={"dagster.run_id": context.run.run_id, "family": family},
                )
                shutil.rmtree(folder.parent, ignore_errors=True)
                version = str(mv.version)
            run_id = run.info.run_id
        trained = TrainedModel(
            family, model, split.train, evaluation, gates, run_id, version, registered, user_encoder
        )
        m = evaluation.metrics
        return Output(
            trained,
            metadata={
                "ndcg@10": MetadataValue.float(float(m.get("ndcg@10", float("nan")))),
                "precision@10": MetadataValue.float(float(m.get("precision@10", float("nan")))),
                "recall@10": MetadataValue.float(float(m.get("recall@10", float("nan")))),
                "auc": MetadataValue.float(float(m.get("auc", float("nan")))),
                "ndcg lift over popularity": MetadataValue.float(
                    float(evaluation.lift.get("ndcg@10", 0.0))
                ),
                "fit_seconds": MetadataValue.float(fit_seconds),
                "passed_gates": MetadataValue.bool(trained.passed_gates),
                "params": MetadataValue.json(model.params()),
                "mlflow_run": MetadataValue.text(mlflow_tracker.run_url(run_id)),
                "mlflow_model_version": MetadataValue.text(
                    f"{registered} v{version}" if version else "(not registered)"
                ),
                **side_meta,
            },
        )

    return _model


def build_gate_check(family: str) -> AssetChecksDefinition:
    """Quality gates of ``{family}_model`` (non-blocking, WARN: ``champion_model`` only takes
    models that passed, and its own blocking ERROR check stops serving when none did)."""

    @asset_check(asset=AssetKey(f"{family}_model"), name="quality_gates")
    def _gates(trained: TrainedModel) -> AssetCheckResult:
        rows = "\n".join(
            f"| {g.gate} | {g.value:.4f} | {g.threshold:.4f} | {'pass' if g.passed else 'FAIL'} |"
            for g in trained.gates
        )
        failed = [g for g in trained.gates if not g.passed]
        reason = (
            f"{family}: eligible for champion"
            if trained.passed_gates
            else f"{family}: not eligible for champion on this data ("
            + "; ".join(f"{g.gate} {g.value:.4f} below {g.threshold:.4f}" for g in failed)
            + ")"
        )
        # a family that misses its gates is a warning, not an operator's emergency: the
        # champion simply comes from another family (champion_passed_gates is the ERROR)
        return AssetCheckResult(
            passed=trained.passed_gates,
            severity=AssetCheckSeverity.WARN,
            description=reason,
            metadata={
                "gates": MetadataValue.md(
                    "| gate | value | threshold | result |\n| --- | --- | --- | --- |\n" + rows
                )
            },
        )

    return _gates


class ChampionConfig(Config):
    """``metric``: the held-out metric that ranks the families that passed their gates.
    ``min_gain`` and ``confidence``: a family replaces the incumbent champion family only when its
    gain in ``metric`` lies above ``min_gain`` over the whole paired-bootstrap interval of that
    confidence (else the incumbent family, retrained on this run's data, stays)."""

    metric: str = "ndcg@10"
    min_gain: float = 0.0
    confidence: float = Field(default=0.95, gt=0.0, lt=1.0)


def build_champion_asset(families: Sequence[str]) -> AssetsDefinition:
    @asset(
        name="champion_model",
        ins={f"{f}_model": AssetIn() for f in families},
        description="The best model family that passed its quality gates: what serving loads.",
    )
    def _champion(
        context: AssetExecutionContext,
        config: ChampionConfig,
        mlflow_tracker: MlflowTracker,
        **trained_models: TrainedModel,
    ) -> Output[ChampionModel]:
        holder = mlflow_tracker.version_by_alias(CHAMPION_MODEL, CHAMPION)
        incumbent = (holder.tags or {}).get("family") if holder is not None else None
        decision = decide_champion(
            list(trained_models.values()),
            config.metric,
            incumbent,
            config.min_gain,
            config.confidence,
        )
        table = "\n".join(
            f"| {t.family} | {t.evaluation.metrics.get(config.metric, float('nan')):.4f} | "
            f"{'pass' if t.passed_gates else 'FAIL'} | {t.model_version or '-'} |"
            for t in sorted(trained_models.values(), key=lambda t: t.family)
        )
        if decision is None:
            raise ValueError(
                f"no model passed its quality gates; nothing can be promoted:\n{table}"
            )
        best, ranked = (
            decision.champion,
            [decision.champion] + [t for t in decision.ranked if t is not decision.champion],
        )
        version = version_label(best)
        if best.model_version:  # a new version of the one champion model, aliased `champion`
            source = mlflow_tracker.client().get_model_version(
                best.registered_name, best.model_version
            )
            promoted = mlflow_tracker.promote(source)
            version = f"{CHAMPION_MODEL}/{promoted.version}"
        if len(ranked) > 1 and ranked[1].model_version:
            second = ranked[1]
            mlflow_tracker.set_alias(second.registered_name, CHALLENGER, second.model_version)
        context.log.info(f"champion: {version} ({decision.reason})")
        return Output(
            ChampionModel(
                best.model,
                best.train,
                version,
                tuple((g.gate, g.passed, g.value, g.threshold) for g in best.gates),
                best.user_encoder,
            ),
            metadata={
                "champion": MetadataValue.text(version),
                "decision": MetadataValue.text(decision.reason),
                "incumbent_family": MetadataValue.text(decision.incumbent or "-"),
                config.metric: MetadataValue.float(float(best.evaluation.metrics[config.metric])),
                "candidates": MetadataValue.md(
                    f"| family | {config.metric} | gates | MLflow version |\n"
                    "| --- | --- | --- | --- |\n" + table
                ),
            },
        )

    return _champion


@asset_check(
    asset=AssetKey("champion_model"),
    name="champion_passed_gates",
    blocking=True,
    description="Blocks serving unless every quality gate of the champion passed.",
)
def champion_passed_gates(champion_model: ChampionModel) -> AssetCheckResult:
    rows = "\n".join(
        f"| {g} | {v:.4f} | {t:.4f} | {'pass' if ok else 'FAIL'} |"
        for g, ok, v, t in champion_model.gates
    )
    return AssetCheckResult(
        passed=champion_model.passed_gates,
        metadata={
            "champion": MetadataValue.text(champion_model.version),
            "gates": MetadataValue.md(
                "| gate | value | threshold | result |\n| --- | --- | --- | --- |\n"
                + (rows or "| (not gated) | - | - | FAIL |")
            ),
        },
    )


# LightFM hybrid with the feature store's user and item features (``lightfm_hybrid_model``), built
# with ``lightfm``: user demographics and item categories, the columns chosen on validation NDCG@10
# (ML-100K P1: 0.2683 against 0.2662 with every static item column and 0.2603 for pure WARP;
# docs/models.md). Under P1 the leak rule leaves static columns only.
HYBRID_FEATURE_COLUMNS: dict[str, tuple[str, ...]] = {"item": ("categories",)}
FEATURE_STORE_FAMILIES: tuple[str, ...] = ("lightfm_hybrid",) if "lightfm" in MODEL_FAMILIES else ()
GATED_FAMILIES: tuple[str, ...] = (*MODEL_FAMILIES, *FEATURE_STORE_FAMILIES)


# spark_als fits on the cluster $RECS_SPARK_MASTER names (not a secret: shown as is)
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "spark_als": {"spark_master": os.environ.get(SPARK_MASTER_ENV, "")}
}
MODEL_ASSETS = [
    build_model_asset(
        f,
        tuned=f in TUNED_FAMILIES,
        defaults=FAMILY_DEFAULTS.get(f),
        member_tunings=tuned_member_families(f),
        attributes=f == "ranker",
    )
    for f in MODEL_FAMILIES
] + [
    build_model_asset(
        f,
        feature_store=True,
        defaults={"hybrid_users": True},
        feature_columns=HYBRID_FEATURE_COLUMNS,
    )
    for f in FEATURE_STORE_FAMILIES
]
GATE_CHECKS = [build_gate_check(f) for f in GATED_FAMILIES]
CHAMPION_ASSET = build_champion_asset(GATED_FAMILIES)
