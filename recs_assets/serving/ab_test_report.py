"""Asset ``ab_test_report``: per-variant CTR and conversion with intervals and a two-proportion test."""

from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, Config, MetadataValue, Output, asset

from recs_assets.core.monitoring.ab_stats import compare_variants, variant_rates
from recs_assets.core.monitoring.plots import bar_chart, table_markdown
from recs_assets.core.serving.abtest import load_experiment
from recs_assets.core.serving.exposure import exposure_dirs, read_ab_events


class AbTestReportConfig(Config):
    """``feedback_path``: the feedback folder (empty = ``$RECS_FEEDBACK_DIR`` or
    ``<data dir>/feedback``); ``control``: the baseline variant (empty = the first variant of
    ``$RECS_AB_CONFIG`` when it is in the data, else the first variant by name)."""

    feedback_path: str = ""
    control: str = ""


def pick_control(variants: list[str], wanted: str) -> str:
    """``wanted`` if given (it must be present), else the experiment's control, else the first."""
    if wanted:
        if wanted not in variants:
            raise ValueError(f"control variant {wanted!r} not in the data: {variants}")
        return wanted
    configured = load_experiment().control
    return configured if configured in variants else sorted(variants)[0]


@asset(tags={"recs/input": "live_traffic"})  # fed by the service; no job runs it
def ab_test_report(
    context: AssetExecutionContext, config: AbTestReportConfig
) -> Output[pd.DataFrame]:
    """Impressions, CTR and conversion rate per experiment variant with 95% Wilson intervals."""
    path = Path(config.feedback_path) if config.feedback_path else exposure_dirs().feedback
    events, dropped = read_ab_events(path)
    rates = variant_rates(events)
    control = pick_control(rates["variant"].tolist(), config.control)
    tests = compare_variants(rates, control)
    context.log.info(f"A/B report from {path} (control {control}):\n{rates}\n{tests}")
    metadata: dict[str, object] = {
        "dagster/row_count": len(rates),
        "feedback_path": str(path),
        "control": control,
        "impressions": int(rates["impressions"].sum()),
        "rows_without_variant": dropped,
        "variants": MetadataValue.md(table_markdown(rates)),
        "tests": MetadataValue.md(table_markdown(tests)),
        "ctr_plot": MetadataValue.md(
            bar_chart(rates, "variant", "ctr", "CTR per variant", ("ctr_low", "ctr_high"))
        ),
        "conversion_plot": MetadataValue.md(
            bar_chart(
                rates,
                "variant",
                "conversion_rate",
                "Conversions per impression",
                ("conversion_rate_low", "conversion_rate_high"),
            )
        ),
    }
    ctr = tests[tests["metric"] == "ctr"]
    for _, row in ctr.iterrows():
        v = row["variant"]
        metadata[f"ctr_uplift_{v}"] = float(row["uplift"])
        metadata[f"ctr_uplift_{v}_low"] = float(row["uplift_low"])
        metadata[f"ctr_uplift_{v}_high"] = float(row["uplift_high"])
        metadata[f"ctr_p_value_{v}"] = float(row["p_value"])
    return Output(rates, metadata=metadata)
