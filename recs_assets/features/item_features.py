"""Asset ``item_features``: per-item feature snapshots written as Parquet by Spark."""

from functools import reduce

from dagster import AssetExecutionContext, Output, asset

from recs_assets.core.features.snapshots import snapshot_times
from recs_assets.core.features.spark_frames import as_spark, time_range
from recs_assets.core.features.tables import FeatureTable, write_feature_table
from recs_assets.core.features.transforms.item import ITEM_CATALOG
from recs_assets.core.features.transforms.item import item_features as item_features_transform
from recs_assets.features.feature_job import FeatureJobConfig, feature_metadata
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
        snapshots = snapshot_times(
            oldest, newest, config.snapshot_interval_days, config.max_snapshots
        )
        frames = [item_features_transform(events, items, as_of=t) for t in snapshots]
        table = write_feature_table(
            reduce(lambda a, b: a.unionByName(b), frames),
            "item_features",
            data_dir.feature_path("item_features"),
            snapshots,
        )
        events.unpersist()
        items.unpersist()
        preview = session.read.parquet(table.path).limit(5).toPandas()
        context.log.info(f"item_features: {table.row_count} rows over {len(snapshots)} snapshot(s)")
    return Output(table, metadata=feature_metadata(table, ITEM_CATALOG, preview))
