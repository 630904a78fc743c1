"""Asset ``context_features``: per-event context (time, device, session position) as Parquet."""

from dagster import AssetExecutionContext, Output, asset

from recs_assets.core.features.spark_frames import as_spark
from recs_assets.core.features.tables import FeatureTable, write_feature_table
from recs_assets.core.features.transforms.context import (
    CONTEXT_CATALOG,
)
from recs_assets.core.features.transforms.context import (
    context_features as context_features_transform,
)
from recs_assets.features.feature_job import FeatureJobConfig, feature_metadata
from recs_assets.platform.data_dir import DataDirResource
from recs_assets.platform.spark_resource import SparkResource
from recs_assets.platform.table_io_manager import RawTable, spark_table_in


# the raw tables are read by Spark from storage, never through the driver
@asset(ins={"raw_interactions": spark_table_in()})
def context_features(
    context: AssetExecutionContext,
    config: FeatureJobConfig,
    spark: SparkResource,
    data_dir: DataDirResource,
    raw_interactions: RawTable,
) -> Output[FeatureTable]:
    """Per-event hour, weekday, device, platform and position-in-session features."""
    with spark.failing_with_cause("context_features"):
        session = spark.get_session()
        events = as_spark(session, raw_interactions, "interactions")
        table = write_feature_table(
            context_features_transform(events, session_gap_minutes=config.session_gap_minutes),
            "context_features",
            data_dir.feature_path("context_features"),
        )
        preview = session.read.parquet(table.path).limit(5).toPandas()
        context.log.info(f"context_features: {table.row_count} rows")
    return Output(table, metadata=feature_metadata(table, CONTEXT_CATALOG, preview))
