"""Asset ``context_features``: per-event context (time, device, session position) as Parquet."""

from dagster import AssetExecutionContext, Output, asset
from pyspark.sql import functions as F

from recs_assets.core.features.incremental import changed_days, read_manifest
from recs_assets.core.features.spark_frames import as_spark
from recs_assets.core.features.tables import FeatureTable, write_swapped
from recs_assets.core.features.transforms.context import (
    CONTEXT_CATALOG,
)
from recs_assets.core.features.transforms.context import (
    context_features as context_features_transform,
)
from recs_assets.features.feature_job import FeatureJobConfig, build_inputs, feature_metadata
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
        path = data_dir.feature_path("context_features")
        inputs = build_inputs(context, config, raw_interactions, {})
        changed = changed_days(read_manifest(path), inputs)
        gap = config.session_gap_minutes
        if changed is None:
            df = context_features_transform(events, session_gap_minutes=gap)
            touched = "all"
        else:
            # every value reads only the user's own events: recompute the users with an event
            # on a changed day, keep every other user's rows
            touched_users = (
                events.where(F.date_format("timestamp", "yyyy-MM-dd").isin(sorted(changed)))
                .select("user_id")
                .distinct()
                .cache()
            )
            fresh = context_features_transform(
                events.join(touched_users, "user_id", "left_semi"), session_gap_minutes=gap
            )
            kept = session.read.parquet(str(path)).join(touched_users, "user_id", "left_anti")
            df = fresh.unionByName(kept)
            touched = str(touched_users.count())
        table = write_swapped(df, "context_features", path, (), inputs)
        if changed is not None:
            touched_users.unpersist()
        context.log.info(
            f"context_features: {len(changed) if changed is not None else 'all'} changed day(s), "
            f"users recomputed: {touched}"
        )
        preview = session.read.parquet(table.path).limit(5).toPandas()
        context.log.info(f"context_features: {table.row_count} rows")
    return Output(
        table,
        metadata={
            **feature_metadata(table, CONTEXT_CATALOG, preview),
            "changed_days": len(changed) if changed is not None else -1,
            "users_recomputed": touched,
        },
    )
