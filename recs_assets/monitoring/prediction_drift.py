"""Asset ``prediction_drift``: scores and popularity of served lists, reference vs latest window."""

from pathlib import Path

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    Config,
    MetadataValue,
    Output,
    asset,
    asset_check,
)

from recs_assets.core.monitoring.drift import (
    DEFAULT_BINS,
    DriftThresholds,
    classify,
    drift_table,
    overall_status,
)
from recs_assets.core.monitoring.plots import distribution_grid, table_markdown
from recs_assets.core.monitoring.quality import (
    list_summary,
    popularity_percentile,
    read_folder,
    served_list_features,
)
from recs_assets.core.monitoring.windows import split_windows
from recs_assets.core.paths import data_subdir
from recs_assets.monitoring.feature_drift import DriftCheckConfig, drift_check_result


def default_served_dir() -> Path:
    """``$RECS_SERVED_DIR``, else ``<data dir>/served``."""
    return data_subdir("served", "RECS_SERVED_DIR")


class PredictionDriftConfig(Config):
    """``served_path``: file or folder of served lists (empty = ``default_served_dir()``);
    windows by ``served_at`` as in ``feature_drift``."""

    served_path: str = ""
    latest_hours: float = 24.0
    reference_hours: float = 24.0 * 7
    bins: int = DEFAULT_BINS


@asset(tags={"recs/input": "live_traffic"})  # fed by the service; no job runs it
def prediction_drift(
    context: AssetExecutionContext,
    config: PredictionDriftConfig,
    raw_interactions: pd.DataFrame,
    raw_items: pd.DataFrame,
) -> Output[pd.DataFrame]:
    """PSI and KS of served scores and served-item popularity between the reference and latest window."""
    path = Path(config.served_path) if config.served_path else default_served_dir()
    served = read_folder(path, "served list")
    served = served.assign(
        timestamp=pd.to_datetime(served["served_at"], utc=True, format="ISO8601")
    )
    windows = split_windows(served, config.latest_hours, config.reference_hours)
    popularity = popularity_percentile(raw_interactions, raw_items["item_id"])
    reference = served_list_features(windows.reference, popularity)
    latest = served_list_features(windows.latest, popularity)
    table = drift_table(reference, latest, config.bins)
    shown = classify(table, DriftThresholds())
    summary = pd.DataFrame(
        [
            {"window": "reference", **list_summary(windows.reference, popularity)},
            {"window": "latest", **list_summary(windows.latest, popularity)},
        ]
    )
    context.log.info(f"prediction drift:\n{shown}\n{summary}")
    return Output(
        table,
        metadata={
            "dagster/row_count": len(table),
            "served_path": str(path),
            "max_psi": float(table["psi"].max()),
            "status_at_default_thresholds": overall_status(shown),
            "drift": MetadataValue.md(table_markdown(shown)),
            "served_lists": MetadataValue.md(table_markdown(summary)),
            "distributions": MetadataValue.md(
                distribution_grid(reference, latest, "served lists: reference vs latest")
            ),
        },
    )


@asset_check(asset=prediction_drift)
def prediction_drift_within_limits(
    config: DriftCheckConfig, prediction_drift: pd.DataFrame
) -> AssetCheckResult:
    """Served scores and popularity have not moved beyond the configured PSI/KS limits."""
    return drift_check_result(prediction_drift, config.thresholds())
