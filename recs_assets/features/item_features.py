"""Asset ``item_features``: per-item feature snapshots written as Parquet by Spark."""

from dagster import AssetExecutionContext, Output, asset

from recs_assets.core.features.spark_frames import as_spark, time_range
from recs_assets.core.features.tables import FeatureTable, write_snapshot_table
from recs_assets.core.features.transforms.item import ITEM_CATALOG
from recs_assets.core.features.transforms.item import item_features as item_features_transform
from recs_assets.features.feature_job import (
    FeatureJobConfig,
    build_inputs,
    planned_snapshots,
    reuse_plan,
    snapshot_metadata,
)
from recs_assets.platform.data_dir import DataDirResource
from recs_assets.platform.spark_resource import SparkResource
from recs_assets.platform.table_io_manager import RawTable, spark_table_in


# the raw tables are read by Spark from storage, never through the driver
@asset(ins={"raw_interactions": spark_table_in(), "raw_items": spark_table_in()})
def item_features(
    context: AssetExecutionContext,
    config: FeatureJobConfig,
    spark: SparkResource,
    data_dir: DataDirResource,
    raw_interactions: RawTable,
    raw_items: RawTable,
) -> Output[FeatureTable]:
    """Per-item popularity, trend, rating quality, catalog and freshness features per snapshot."""
    with spark.failing_with_cause("item_features"):
        session = spark.get_session()
        events = as_spark(session, raw_interactions, "interactions").cache()
        items = as_spark(session, raw_items, "items").cache()
        oldest, newest = time_range(events)
        snapshots = planned_snapshots(config, oldest, newest)
        path = data_dir.feature_path("item_features")
        inputs = build_inputs(context, config, raw_interactions, {"items": raw_items})
        kept = reuse_plan(context, path, inputs, snapshots)
        frames = [
            item_features_transform(events, items, as_of=t) for t in snapshots if t not in kept
        ]
        table = write_snapshot_table(
            session, frames, kept, "item_features", path, snapshots, inputs
        )
        events.unpersist()
        items.unpersist()
        preview = session.read.parquet(table.path).limit(5).toPandas()
        context.log.info(f"item_features: {table.row_count} rows over {len(snapshots)} snapshot(s)")
    return Output(table, metadata=snapshot_metadata(table, ITEM_CATALOG, preview, snapshots, kept))
