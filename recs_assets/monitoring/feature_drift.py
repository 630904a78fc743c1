"""Asset ``feature_drift`` (PSI and KS per feature, reference vs latest window) and its check."""

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

from recs_assets.core.monitoring.drift import (
    DEFAULT_BINS,
    DriftThresholds,
    classify,
    drift_table,
    overall_status,
)
from recs_assets.core.monitoring.plots import distribution_grid, table_markdown
from recs_assets.core.monitoring.windows import monitored_features, split_windows


class FeatureDriftConfig(Config):
    """Window lengths (hours) and the number of quantile bins for PSI."""

    latest_hours: float = 24.0
    reference_hours: float = 24.0 * 7
    bins: int = DEFAULT_BINS


class DriftCheckConfig(Config):
    """Thresholds: above ``warn_*`` the check warns, above ``fail_*`` it fails (severity ERROR)."""

    warn_psi: float = DriftThresholds.warn_psi
    fail_psi: float = DriftThresholds.fail_psi
    warn_ks: float = DriftThresholds.warn_ks
    fail_ks: float = DriftThresholds.fail_ks
    min_samples: int = DriftThresholds.min_samples

    def thresholds(self) -> DriftThresholds:
        return DriftThresholds(
            self.warn_psi, self.fail_psi, self.warn_ks, self.fail_ks, self.min_samples
        )


@asset
def feature_drift(
    context: AssetExecutionContext,
    config: FeatureDriftConfig,
    raw_interactions: pd.DataFrame,
    raw_items: pd.DataFrame,
) -> Output[pd.DataFrame]:
    """PSI and KS of each monitored interaction feature between the reference and latest window."""
    windows = split_windows(raw_interactions, config.latest_hours, config.reference_hours)
    reference, latest = monitored_features(raw_interactions, raw_items, windows)
    table = drift_table(reference, latest, config.bins)
    shown = classify(table, DriftThresholds())
    context.log.info(f"feature drift (default thresholds: {overall_status(shown)}):\n{shown}")
    return Output(
        table,
        metadata={
            "dagster/row_count": len(table),
            "max_psi": float(table["psi"].max()),
            "max_ks": float(table["ks"].max()),
            "status_at_default_thresholds": overall_status(shown),
            "reference_window": f"{windows.reference_start} .. {windows.latest_start}",
            "latest_window": f"{windows.latest_start} .. {windows.end}",
            "reference_events": len(windows.reference),
            "latest_events": len(windows.latest),
            "drift": MetadataValue.md(table_markdown(shown)),
            "distributions": MetadataValue.md(
                distribution_grid(reference, latest, "feature distributions: reference vs latest")
            ),
        },
    )


def drift_check_result(table: pd.DataFrame, thresholds: DriftThresholds) -> AssetCheckResult:
    """Pass when no feature warns or fails; a warning is severity WARN, a failure ERROR."""
    classified = classify(table, thresholds)
    status = overall_status(classified)
    flagged = classified[classified["status"].isin(["warn", "fail"])]
    too_few = classified.loc[classified["status"] == "too_few", "feature"].tolist()
    unjudged = f"; too few samples to judge {', '.join(too_few)}" if too_few else ""
    return AssetCheckResult(
        passed=status == "ok",
        severity=AssetCheckSeverity.ERROR if status == "fail" else AssetCheckSeverity.WARN,
        description=(
            "no feature drifted" + unjudged
            if status == "ok"
            else f"{status}: "
            + ", ".join(
                f"{r.feature} (PSI {r.psi:.3f}, KS {r.ks:.3f})" for r in flagged.itertuples()
            )
        ),
        metadata={
            "status": status,
            "drifted_features": MetadataValue.json(flagged["feature"].tolist()),
            "max_psi": float(table["psi"].max()),
            "max_ks": float(table["ks"].max()),
            "fail_psi": thresholds.fail_psi,
            "fail_ks": thresholds.fail_ks,
            "table": MetadataValue.md(table_markdown(classified)),
        },
    )


@asset_check(asset=feature_drift)
def feature_drift_within_limits(
    config: DriftCheckConfig, feature_drift: pd.DataFrame
) -> AssetCheckResult:
    """No monitored feature's PSI or KS is above the configured limits."""
    return drift_check_result(feature_drift, config.thresholds())
