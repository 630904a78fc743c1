"""The ``evaluation_report`` asset: the fitted model assets, evaluated on the held-out parts of
their datasets, side by side in one report (HTML, markdown, MLflow run).

Its inputs are the model assets themselves and the dataset assets: under the stratified protocol
(the split every model asset is fitted on) the report holds each model's own held-out evaluation,
the same numbers its ``quality_gates`` check gated; under ``temporal`` (the ``temporal_dataset``)
each family is fitted again with its model asset's hyper-parameters. Gates live on the model
assets only (thresholds: ``core.evaluation.gates.GateConfig``); the report shows their results.
"""

import math
from collections.abc import Collection, Sequence
from pathlib import Path

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
from pydantic import Field, field_validator

from recs_assets.core.datasets.dataset import TrainingDataset
from recs_assets.core.evaluation.report import report_blocks, to_html, to_markdown
from recs_assets.core.evaluation.runner import EvaluationReport
from recs_assets.core.evaluation.trained import (
    TrainedModel,
    report_of_trained,
    side_info,
    version_label,
)
from recs_assets.models.family_models import GATED_FAMILIES, MODEL_FAMILIES
from recs_assets.models.mlflow_tracker import MlflowTracker
from recs_assets.platform.data_dir import default_data_dir

REFIT_PROTOCOLS: tuple[str, ...] = ("temporal",)  # protocols with a dataset asset besides P1


class EvaluationConfig(Config):
    """Which other protocols the report refits the families under, and where the report goes.

    ``refit_protocols``: protocols whose dataset asset the plain families (not the feature-store
    models, whose features are built for the stratified split) are fitted on again with their
    model asset's hyper-parameters (``temporal``: ``temporal_dataset``; ``[]``: only the model
    assets' own evaluations); ``report_dir``: folder of the standalone HTML report (default:
    ``<data dir>/reports``); ``log_to_mlflow``: log the metrics and the report (HTML, markdown,
    CSV) as artifacts of one MLflow run per materialization.
    """

    refit_protocols: list[str] = Field(default_factory=lambda: list(REFIT_PROTOCOLS))
    report_dir: str = ""
    log_to_mlflow: bool = True

    @field_validator("refit_protocols")
    @classmethod
    def _known(cls, protocols: list[str]) -> list[str]:
        unknown = sorted(set(protocols) - set(REFIT_PROTOCOLS))
        if unknown:
            raise ValueError(
                f"refit_protocols {unknown}: only {list(REFIT_PROTOCOLS)} have a dataset"
            )
        return protocols


def metric_frame(report: EvaluationReport) -> pd.DataFrame:
    """One row per (protocol, model) with every metric and timing (the metadata table)."""
    rows = [{"protocol": e.protocol, "model": e.model, **e.flat()} for e in report.evaluations]
    return pd.DataFrame(rows)


def log_to_mlflow(
    tracker: MlflowTracker,
    report: EvaluationReport,
    html_path: Path,
    markdown: str,
    dagster_run_id: str | None = None,
) -> str:
    """One MLflow run per materialization: every metric as ``<protocol>.<model>.<metric>``, and
    the report (HTML, markdown, metric table as CSV) as artifacts under ``report/``."""
    with tracker.start_run(
        "evaluation_report",
        dagster_run_id=dagster_run_id,
        asset_key="evaluation_report",
        tags={"dataset": report.dataset, "protocols": ",".join(report.protocols)},
    ) as run:
        mlflow.log_metrics(
            {
                f"{e.protocol}.{e.model}.{m.replace('@', '_at_')}": v
                for e in report.evaluations
                for m, v in e.flat().items()
                if math.isfinite(v)
            }
        )
        mlflow.log_artifact(str(html_path), "report")
        mlflow.log_text(markdown, "report/evaluation_report.md")
        mlflow.log_text(metric_frame(report).to_csv(index=False), "report/metrics.csv")
        return run.info.run_id


def gate_table(trained: list[TrainedModel]) -> str:
    """The model assets' own gate results (computed once, by each model asset)."""
    rows = [
        f"| {t.family} | {g.gate} | {g.value:.4f} | {g.threshold:.4f} | "
        f"{'pass' if g.passed else 'FAIL'} |"
        for t in trained
        for g in t.gates
    ]
    return "| model | gate | value | threshold | result |\n| --- | --- | --- | --- | --- |\n" + (
        "\n".join(rows)
    )


def build_evaluation_report(
    families: Sequence[str] = GATED_FAMILIES, refit_families: Collection[str] = MODEL_FAMILIES
) -> AssetsDefinition:
    """``evaluation_report`` over the ``{family}_model`` assets of ``families``; the ones in
    ``refit_families`` are also fitted again under the configured other protocols."""
    inputs = {f"{family}_model": family for family in families}

    @asset(
        name="evaluation_report",
        ins={
            **{name: AssetIn() for name in inputs},
            "stratified_dataset": AssetIn(),
            "temporal_dataset": AssetIn(),
            "raw_users": AssetIn(),
            "raw_items": AssetIn(),
        },
        description=(
            "The fitted model assets on their held-out test split (the numbers their gates "
            "checked), and the families refit under the temporal protocol, with an HTML report."
        ),
    )
    def _report(
        context: AssetExecutionContext,
        config: EvaluationConfig,
        mlflow_tracker: MlflowTracker,
        stratified_dataset: TrainingDataset,
        temporal_dataset: TrainingDataset,
        raw_users: pd.DataFrame,
        raw_items: pd.DataFrame,
        **models: TrainedModel,
    ) -> Output[EvaluationReport]:
        trained = [models[name] for name in inputs]
        datasets = {"temporal": temporal_dataset}
        refits = [
            (datasets[p].split, side_info(datasets[p].split, raw_users, raw_items))
            for p in config.refit_protocols
        ]
        report = report_of_trained(
            trained,
            stratified_dataset.split,
            dataset=", ".join(
                ["stratified_dataset", *(f"{p}_dataset" for p in config.refit_protocols)]
            ),
            refits=refits,
            refit_families=refit_families,
            progress=context.log.info,
        )
        blocks = report_blocks(report)
        report_dir = (
            Path(config.report_dir) if config.report_dir else default_data_dir() / "reports"
        )
        html_path = report_dir / f"evaluation_report_{context.run.run_id[:8]}.html"
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(to_html(blocks, "recs evaluation"))
        metadata: dict[str, object] = {
            "report": MetadataValue.md(to_markdown(blocks)),
            "metrics": MetadataValue.md(
                metric_frame(report).round(4).to_markdown(index=False) or "(empty)"
            ),
            "gates": MetadataValue.md(gate_table(trained)),
            "html_report": MetadataValue.path(str(html_path.resolve())),
            "models": MetadataValue.json({t.family: version_label(t) for t in trained}),
            "protocols": MetadataValue.json(report.protocols),
            "dagster/row_count": len(report.evaluations),
        }
        for e in report.evaluations:  # headline numbers, plotted over time by the UI
            key = f"ndcg@{e.k}"
            if key in e.metrics:
                metadata[f"{e.protocol}/{e.model}/{key}"] = float(e.metrics[key])
        if config.log_to_mlflow:
            run_id = log_to_mlflow(
                mlflow_tracker, report, html_path, to_markdown(blocks), context.run.run_id
            )
            metadata["mlflow_run"] = MetadataValue.text(mlflow_tracker.run_url(run_id))
        return Output(report, metadata=metadata)

    return _report


evaluation_report = build_evaluation_report()
