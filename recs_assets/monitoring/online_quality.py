"""Asset ``online_quality`` (CTR per model version from feedback events) and its check."""

from pathlib import Path

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    Config,
    MetadataValue,
    Output,
    asset,
    asset_check,
)

from recs_assets.core.monitoring.plots import bar_chart, table_markdown
from recs_assets.core.monitoring.quality import ctr_by_version, read_folder
from recs_assets.core.paths import data_subdir


def default_feedback_dir() -> Path:
    """``$RECS_FEEDBACK_DIR``, else ``<data dir>/feedback``."""
    return data_subdir("feedback", "RECS_FEEDBACK_DIR")


class OnlineQualityConfig(Config):
    """``feedback_path``: a file or folder of feedback events; empty = ``default_feedback_dir()``."""

    feedback_path: str = ""


class CtrCheckConfig(Config):
    """A version whose CTR upper bound is below ``fail_ctr`` fails; below ``warn_ctr`` warns.

    Versions with fewer than ``min_impressions`` are not judged.
    """

    warn_ctr: float = 0.05
    fail_ctr: float = 0.02
    min_impressions: int = 500


@asset(tags={"recs/input": "live_traffic"})  # fed by the service; no job runs it
def online_quality(
    context: AssetExecutionContext, config: OnlineQualityConfig
) -> Output[pd.DataFrame]:
    """Impressions, clicks and CTR (95% Wilson interval) per served model version."""
    path = Path(config.feedback_path) if config.feedback_path else default_feedback_dir()
    table = ctr_by_version(read_folder(path, "feedback event"))
    context.log.info(f"online quality from {path}:\n{table}")
    return Output(
        table,
        metadata={
            "dagster/row_count": len(table),
            "feedback_path": str(path),
            "impressions": int(table["impressions"].sum()),
            "ctr": MetadataValue.md(table_markdown(table)),
            "plot": MetadataValue.md(
                bar_chart(
                    table, "model_version", "ctr", "CTR per model version", ("ctr_low", "ctr_high")
                )
            ),
        },
    )


def ctr_check_result(
    table: pd.DataFrame, warn_ctr: float, fail_ctr: float, min_impressions: int
) -> AssetCheckResult:
    """Judge each version with enough impressions by the upper end of its CTR interval."""
    judged = table[table["impressions"] >= min_impressions]
    failing = judged[judged["ctr_high"] < fail_ctr]["model_version"].tolist()
    warning = judged[judged["ctr_high"] < warn_ctr]["model_version"].tolist()
    passed = not warning
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.ERROR if failing else AssetCheckSeverity.WARN,
        description=(
            f"CTR clearly below {fail_ctr:.1%} for {failing}"
            if failing
            else f"CTR clearly below {warn_ctr:.1%} for {warning}"
            if warning
            else f"{len(judged)} version(s) judged, none clearly below {warn_ctr:.1%}"
        ),
        metadata={
            "failing_versions": MetadataValue.json(failing),
            "warning_versions": MetadataValue.json(warning),
            "judged_versions": len(judged),
        },
    )


@asset_check(asset=online_quality)
def online_ctr_above_floor(
    config: CtrCheckConfig, online_quality: pd.DataFrame
) -> AssetCheckResult:
    """No model version's CTR is clearly (95% upper bound) below the configured floor."""
    return ctr_check_result(
        online_quality, config.warn_ctr, config.fail_ctr, config.min_impressions
    )
