"""The ``evaluation_report`` asset and its quality-gate checks (one per model; promotion itself is
decided by ``champion_model``, which takes only models whose gates passed).

The asset evaluates every configured registry model under every configured protocol on the raw
Phase 1 tables, with the same ``runner.evaluate_models`` as ``recs eval``. Gates are pure
(``gates.evaluate_gates``); each check here only turns them into an ``AssetCheckResult``.
"""

import math
from collections.abc import Sequence
from pathlib import Path

import mlflow
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetExecutionContext,
    Config,
    MetadataValue,
    Output,
    asset,
    asset_check,
)
from pydantic import Field

from recs_assets.core.evaluation.gates import evaluate_gates, passed
from recs_assets.core.evaluation.report import report_blocks, to_html, to_markdown
from recs_assets.core.evaluation.runner import (
    EvaluationReport,
    SideTables,
    evaluate_models,
    resolve_models,
)
from recs_assets.core.models.registry import pipeline_families
from recs_assets.models.gate_thresholds import GateThresholds
from recs_assets.models.mlflow_tracker import MlflowTracker
from recs_assets.platform.data_dir import default_data_dir

DEFAULT_MODELS: tuple[str, ...] = pipeline_families()  # the families the pipeline builds
DEFAULT_PROTOCOLS: tuple[str, ...] = ("stratified", "temporal")


class EvaluationConfig(Config):
    """What ``evaluation_report`` evaluates and where the HTML report goes.

    ``models``: registry names (default: the pipeline families; ``["all"]`` = every registered
    model); ``protocols``: ``stratified``, ``temporal``, ``loo-sampled``; ``k``: list length;
    ``report_dir``: folder of the standalone HTML report (default: ``<data dir>/reports``);
    ``log_to_mlflow``: log the metrics and the report (HTML, markdown, CSV) as artifacts of one
    MLflow run per materialization.
    """

    models: list[str] = Field(default_factory=lambda: list(DEFAULT_MODELS))
    protocols: list[str] = Field(default_factory=lambda: list(DEFAULT_PROTOCOLS))
    k: int = 10
    report_dir: str = ""
    log_to_mlflow: bool = True


class GateCheckConfig(GateThresholds):
    """Thresholds of the quality gates and the protocol gated."""

    protocol: str = "stratified"


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


@asset(deps=[f"{family}_model" for family in DEFAULT_MODELS])
def evaluation_report(
    context: AssetExecutionContext,
    config: EvaluationConfig,
    mlflow_tracker: MlflowTracker,
    raw_interactions: pd.DataFrame,
    raw_users: pd.DataFrame,
    raw_items: pd.DataFrame,
) -> Output[EvaluationReport]:
    """Metrics of every configured model under every configured protocol, with an HTML report."""
    models = resolve_models(config.models)
    report = evaluate_models(
        models,
        raw_interactions,
        config.protocols,
        SideTables(users=raw_users, items=raw_items),
        k=config.k,
        dataset="raw_interactions",
        progress=context.log.info,
    )
    blocks = report_blocks(report)
    report_dir = Path(config.report_dir) if config.report_dir else default_data_dir() / "reports"
    html_path = report_dir / f"evaluation_report_{context.run.run_id[:8]}.html"
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(to_html(blocks, "recs evaluation"))
    metadata: dict[str, object] = {
        "report": MetadataValue.md(to_markdown(blocks)),
        "metrics": MetadataValue.md(
            metric_frame(report).round(4).to_markdown(index=False) or "(empty)"
        ),
        "html_report": MetadataValue.path(str(html_path.resolve())),
        "models": MetadataValue.json(models),
        "protocols": MetadataValue.json(list(config.protocols)),
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


def gate_check_result(
    report: EvaluationReport, model: str, config: GateCheckConfig
) -> AssetCheckResult:
    """The check result of ``model``'s gates under ``config.protocol``.

    A model missing from the report (not configured for this run) is a non-blocking warning.
    """
    try:
        evaluation = report.get(config.protocol, model)
    except KeyError:
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.WARN,
            description=f"{model} was not evaluated under {config.protocol} in this run",
        )
    results = evaluate_gates(evaluation, config.gate_config())
    table = pd.DataFrame(
        [
            {"gate": r.gate, "passed": r.passed, "value": r.value, "threshold": r.threshold}
            for r in results
        ]
    )
    failed = [r.gate for r in results if not r.passed]
    return AssetCheckResult(
        passed=passed(results),
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "gates": MetadataValue.md(table.to_markdown(index=False)),
            **{r.gate: float(r.value) for r in results},
        },
        description=(
            f"{model} passes every gate under {config.protocol}"
            if not failed
            else f"{model} fails under {config.protocol}: {', '.join(failed)}"
        ),
    )


def build_gate_checks(models: Sequence[str] | None = None) -> list[AssetChecksDefinition]:
    """One quality-gate check on ``evaluation_report`` per model name (default: every
    pipeline family, as evaluated by default)."""

    def make(model: str) -> AssetChecksDefinition:
        @asset_check(
            asset=evaluation_report,
            name=f"{model.replace('-', '_')}_quality_gates",
            blocking=False,  # promotion is decided by champion_model; nothing reads the report
            description=f"{model}: NDCG lift over popularity, AUC, user coverage and ILD gates.",
        )
        def _check(
            config: GateCheckConfig, evaluation_report: EvaluationReport
        ) -> AssetCheckResult:
            return gate_check_result(evaluation_report, model, config)

        return _check

    return [make(m) for m in (models if models is not None else DEFAULT_MODELS)]


EVALUATION_CHECKS = build_gate_checks()
