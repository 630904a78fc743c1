"""``{family}_tuning`` assets: an Optuna study per family on the validation split, every trial a
nested MLflow run, the best parameters in the UI.

No ``from __future__ import annotations`` here: Dagster resolves ``Config`` annotations at runtime.
"""

import json
from typing import Any

import mlflow
import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    Config,
    MetadataValue,
    Output,
    asset,
)

from recs_assets.core.datasets.dataset import TrainingDataset
from recs_assets.core.evaluation.trained import side_info
from recs_assets.core.evaluation.tuning import (
    TUNING_BUDGET,
    TrialRecord,
    TuningResult,
    params_markdown,
    skipped_result,
    tune,
)
from recs_assets.core.models.registry import pipeline_families
from recs_assets.models.mlflow_tracker import MlflowTracker

TUNED_FAMILIES: tuple[str, ...] = ("ease", "rp3beta", "lightfm", "als", "ncf")


class TuningConfig(Config):
    """``n_trials``: the study's budget (0 skips the study: the model keeps its defaults);
    ``seed``: the TPE sampler's seed; ``k``: list length of the validation NDCG objective."""

    n_trials: int = 10
    seed: int = 42
    k: int = 10

    def trial_budget(self, family: str) -> dict[str, Any]:
        """Trial-only keywords that bound a trial's cost (``tuning.TUNING_BUDGET``)."""
        return dict(TUNING_BUDGET.get(family, {}))


class NCFTuningConfig(TuningConfig):
    """NCF trains three networks per trial (GMF and MLP pre-training, then NeuMF), so its study
    is small by default: ``n_trials`` 4 (trial 0 measures the defaults) and ``max_epochs`` 10,
    the epoch cap of each network during the study only (early stopping still picks the best
    epoch; the ``ncf_model`` asset trains with the family's own epochs, patience and refit).
    One trial of the defaults on ML-100K: 66 s on one CPU thread."""

    n_trials: int = 4
    max_epochs: int = 10

    def trial_budget(self, family: str) -> dict[str, Any]:
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        return {**super().trial_budget(family), "epochs": self.max_epochs}


# The config class of each family's study (the launchpad shows its defaults).
TUNING_CONFIGS: dict[str, type[TuningConfig]] = {"ncf": NCFTuningConfig}


def trials_markdown(result: TuningResult, limit: int = 10) -> str:
    """The best ``limit`` trials as a markdown table, best first."""
    names = list(result.search_space)
    head = "| trial | " + " | ".join([result.metric, *names, "seconds", "state"]) + " |"
    sep = "| " + " | ".join(["---"] * (len(names) + 4)) + " |"
    table = result.trials.sort_values(["value", "number"], ascending=[False, True]).head(limit)
    rows = []
    for _, t in table.iterrows():
        value = "-" if pd.isna(t["value"]) else f"{t['value']:.4f}"
        cells = [f"{t[n]:.4g}" if isinstance(t[n], float) else str(t[n]) for n in names]
        rows.append(
            f"| {int(t['number'])} | {value} | "
            + " | ".join(cells)
            + f" | {t['seconds']:.1f} | {t['state']} |"
        )
    return "\n".join([head, sep, *rows])


def build_tuning_asset(family: str) -> AssetsDefinition:
    """The ``{family}_tuning`` asset."""
    config_class = TUNING_CONFIGS.get(family, TuningConfig)

    @asset(
        name=f"{family}_tuning",
        ins={"validation_dataset": AssetIn(), "raw_users": AssetIn(), "raw_items": AssetIn()},
        description=f"Best {family} hyper-parameters by validation NDCG (Optuna TPE study).",
    )
    def _tuning(
        context: AssetExecutionContext,
        config: config_class,  # type: ignore[valid-type]
        mlflow_tracker: MlflowTracker,
        validation_dataset: TrainingDataset,
        raw_users: pd.DataFrame,
        raw_items: pd.DataFrame,
    ) -> Output[TuningResult]:
        if config.n_trials < 0:
            raise ValueError(f"n_trials must be >= 0, got {config.n_trials}")
        if config.n_trials == 0:
            context.log.info(f"{family}: tuning skipped (n_trials=0); the defaults stay")
            result = skipped_result(family, config.seed, config.k)
            return Output(
                result,
                metadata={
                    "skipped": MetadataValue.bool(True),
                    "best_params": MetadataValue.md(params_markdown({})),
                },
            )
        split = validation_dataset.split
        side = side_info(split, raw_users, raw_items)
        budget = config.trial_budget(family)
        metric = f"validation_ndcg_at_{config.k}"
        with mlflow_tracker.start_run(
            f"{family}-tuning",
            dagster_run_id=context.run.run_id,
            asset_key=f"{family}_tuning",
            tags={"family": family, "kind": "tuning"},
        ) as run:
            mlflow_tracker.log_params(
                {
                    "family": family,
                    "n_trials": config.n_trials,
                    "seed": config.seed,
                    "k": config.k,
                    **{f"budget.{k}": v for k, v in budget.items()},
                }
            )

            def on_trial(record: TrialRecord) -> None:
                context.log.info(
                    f"{family} trial {record.number}: {record.state} {record.value} "
                    f"{record.params} ({record.seconds:.1f}s) {record.error}"
                )
                with mlflow.start_run(
                    run_name=f"{family}-trial-{record.number}",
                    nested=True,
                    experiment_id=run.info.experiment_id,
                ):
                    mlflow_tracker.log_params(record.params)
                    mlflow.set_tags({"trial": str(record.number), "state": record.state})
                    if record.value is not None:
                        mlflow.log_metric(metric, record.value)
                    mlflow.log_metric("seconds", record.seconds)
                if record.value is not None:
                    mlflow.log_metric(f"trial_{metric}", record.value, step=record.number)

            result = tune(
                family,
                split,
                side,
                config.n_trials,
                config.seed,
                budget=budget,
                k=config.k,
                on_trial=on_trial,
            )
            best = result.best_value
            if best is None:  # tune() returns a value whenever it ran a trial
                raise RuntimeError(f"{family}: the study ran but reported no best value")
            mlflow.log_metric(f"best_{metric}", best)
            mlflow.log_dict(result.best_params, "best_params.json")
            mlflow.log_dict(result.search_space, "search_space.json")
            mlflow.log_text(result.trials.to_csv(index=False), "trials.csv")
            run_id = run.info.run_id
        failed = int((result.trials["state"] == "FAIL").sum())
        return Output(
            result,
            metadata={
                f"best {result.metric}": MetadataValue.float(best),
                "best_params": MetadataValue.md(params_markdown(result.best_params)),
                "best_params_json": MetadataValue.json(json.loads(json.dumps(result.best_params))),
                "trials": MetadataValue.md(trials_markdown(result)),
                "n_trials": MetadataValue.int(len(result.trials)),
                "failed_trials": MetadataValue.int(failed),
                "search_space": MetadataValue.json(result.search_space),
                "trial_budget": MetadataValue.json(result.budget),
                "mlflow_run": MetadataValue.text(mlflow_tracker.run_url(run_id)),
            },
        )

    return _tuning


TUNING_ASSETS = [build_tuning_asset(f) for f in TUNED_FAMILIES if f in pipeline_families()]
