"""Asset ``user_features``: per-user feature snapshots written as Parquet by Spark."""

from dagster import AssetExecutionContext, Output, asset

from recs_assets.core.features.spark_frames import as_spark, time_range
from recs_assets.core.features.tables import FeatureTable, write_snapshot_table
from recs_assets.core.features.transforms.item import top_categories
from recs_assets.core.features.transforms.user import USER_CATALOG
from recs_assets.core.features.transforms.user import user_features as user_features_transform
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
@asset(
    ins={
        "raw_interactions": spark_table_in(),
        "raw_users": spark_table_in(),
        "raw_items": spark_table_in(),
    }
)
def user_features(
    context: AssetExecutionContext,
    config: FeatureJobConfig,
    spark: SparkResource,
    data_dir: DataDirResource,
    raw_interactions: RawTable,
    raw_users: RawTable,
    raw_items: RawTable,
) -> Output[FeatureTable]:
    """Per-user activity, rating, category, session and timing features at each snapshot time."""
    with spark.failing_with_cause("user_features"):
        session = spark.get_session()
        events = as_spark(session, raw_interactions, "interactions").cache()
        users = as_spark(session, raw_users, "users")
        items = as_spark(session, raw_items, "items").cache()
        categories = [r.category for r in top_categories(items, config.max_categories).collect()]
        oldest, newest = time_range(events)
        snapshots = planned_snapshots(config, oldest, newest)
        path = data_dir.feature_path("user_features")
        inputs = build_inputs(
            context,
            config,
            raw_interactions,
            {"users": raw_users, "items": raw_items},
            categories=categories,
        )
        kept = reuse_plan(context, path, inputs, snapshots)
        frames = [
            user_features_transform(
                events,
                users,
                items,
                as_of=t,
                categories=categories,
                session_gap_minutes=config.session_gap_minutes,
            )
            for t in snapshots
            if t not in kept
        ]
        table = write_snapshot_table(
            session, frames, kept, "user_features", path, snapshots, inputs
        )
        events.unpersist()
        items.unpersist()
        preview = session.read.parquet(table.path).limit(5).toPandas()
        context.log.info(f"user_features: {table.row_count} rows over {len(snapshots)} snapshot(s)")
    return Output(table, metadata=snapshot_metadata(table, USER_CATALOG, preview, snapshots, kept))
