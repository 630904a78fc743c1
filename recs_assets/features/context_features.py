"""Asset ``context_features``: per-event context (time, device, session position) as Parquet."""

from dagster import AssetExecutionContext, Output, asset

from recs_assets.core.features.incremental import changed_days, read_manifest
from recs_assets.core.features.tables import FeatureTable
from recs_assets.core.features.transforms.context import CONTEXT_CATALOG
from recs_assets.features.feature_job import (
    FeatureJobConfig,
    build_inputs,
    feature_engine,
    feature_metadata,
)
from recs_assets.platform.data_dir import DataDirResource
from recs_assets.platform.spark_resource import SparkResource
from recs_assets.platform.table_io_manager import RawTable, table_in


# the raw tables are read by the engine from storage, never through the driver
@asset(ins={"raw_interactions": table_in()})
def context_features(
    context: AssetExecutionContext,
    config: FeatureJobConfig,
    spark: SparkResource,
    data_dir: DataDirResource,
    raw_interactions: RawTable,
) -> Output[FeatureTable]:
    """Per-event hour, weekday, device, platform and position-in-session features."""
    with spark.failing_with_cause("context_features"):
        engine = feature_engine(context, config, spark, raw_interactions)
        try:
            path = data_dir.feature_path("context_features")
            inputs = build_inputs(context, config, raw_interactions, {}, path)
            # with changed days: the rows from the first one on are recomputed, the rest kept
            changed = changed_days(read_manifest(path), inputs)
            table, touched = engine.write_context(path, inputs, changed, config.session_gap_minutes)
            preview = engine.preview(table.path)
        finally:
            engine.close()
        context.log.info(
            f"context_features: {len(changed) if changed is not None else 'all'} changed day(s), "
            f"users recomputed: {touched}; {table.row_count} rows"
        )
    return Output(
        table,
        metadata={
            **feature_metadata(table, CONTEXT_CATALOG, preview),
            "changed_days": len(changed) if changed is not None else -1,
            "users_recomputed": touched,
        },
    )
