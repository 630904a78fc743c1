"""Asset ``user_features``: per-user feature snapshots written as Parquet (Spark or DuckDB)."""

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from recs_assets.core.features.incremental import read_manifest
from recs_assets.core.features.tables import FeatureTable
from recs_assets.core.features.transforms.user import USER_CATALOG
from recs_assets.features.feature_job import (
    FeatureJobConfig,
    build_inputs,
    feature_engine,
    newest_carry,
    planned_snapshots,
    reuse_plan,
    snapshot_metadata,
)
from recs_assets.platform.data_dir import DataDirResource
from recs_assets.platform.spark_resource import SparkResource
from recs_assets.platform.table_io_manager import RawTable, table_in


# the raw tables are read by the engine from storage, never through the driver
@asset(ins={"raw_interactions": table_in(), "raw_users": table_in(), "raw_items": table_in()})
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
        engine = feature_engine(context, config, spark, raw_interactions, raw_users, raw_items)
        try:
            categories = engine.top_categories(config.max_categories)
            oldest, newest = engine.time_range()
            snapshots = planned_snapshots(config, oldest, newest)
            path = data_dir.feature_path("user_features")
            inputs = build_inputs(
                context,
                config,
                raw_interactions,
                {"users": raw_users, "items": raw_items},
                path,
                categories=categories,
            )
            previous = read_manifest(path)
            kept = reuse_plan(context, previous, inputs, snapshots)
            # the newest snapshot starts from the previous build's newest (recomputing only the
            # users whose rows may have moved) where the engine can
            last = snapshots[-1]
            carry = newest_carry(engine.name, previous, inputs, snapshots, kept, path)
            if carry is not None:
                context.log.info(
                    f"user_features: the newest snapshot starts from {carry.previous.isoformat()}"
                    f" ({len(carry.changed_days)} changed day(s))"
                )
            computed = {
                t: engine.user_snapshot(
                    t,
                    categories,
                    config.session_gap_minutes,
                    carry if t == last else None,
                    path,
                )
                for t in snapshots
                if t not in kept
            }
            table = engine.write_snapshots(computed, kept, "user_features", path, snapshots, inputs)
            preview = engine.preview(table.path)
        finally:
            engine.close()
        context.log.info(f"user_features: {table.row_count} rows over {len(snapshots)} snapshot(s)")
    metadata = snapshot_metadata(table, USER_CATALOG, preview, snapshots, kept)
    # the previous snapshot the newest one was carried from ("" when computed in full)
    metadata["newest_carried_from"] = MetadataValue.text(
        carry.previous.isoformat() if carry else ""
    )
    return Output(table, metadata=metadata)
