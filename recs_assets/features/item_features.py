"""Asset ``item_features``: per-item feature snapshots written as Parquet (Spark or DuckDB)."""

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from recs_assets.core.features.incremental import read_manifest
from recs_assets.core.features.tables import FeatureTable
from recs_assets.core.features.transforms.item import ITEM_CATALOG
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
@asset(ins={"raw_interactions": table_in(), "raw_items": table_in()})
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
        engine = feature_engine(context, config, spark, raw_interactions, items=raw_items)
        try:
            oldest, newest = engine.time_range()
            snapshots = planned_snapshots(config, oldest, newest)
            path = data_dir.feature_path("item_features")
            inputs = build_inputs(context, config, raw_interactions, {"items": raw_items}, path)
            previous = read_manifest(path)
            kept = reuse_plan(context, previous, inputs, snapshots)
            # the newest snapshot starts from the item state that the previous build kept
            # beside the table (core/features/item_state.py), where the engine can
            last = snapshots[-1]
            carry = newest_carry(engine.name, previous, inputs, snapshots, kept, path)
            computed = {
                t: engine.item_snapshot(
                    t, carry if t == last else None, path, newest=t == last, days=inputs.days
                )
                for t in snapshots
                if t not in kept
            }
            carried = getattr(engine, "item_carried_from", None)
            refused = getattr(engine, "item_carry_refused", None)
            if carried is not None:
                context.log.info(f"item_features: the newest snapshot starts from {carried}")
            elif refused:
                context.log.info(
                    f"item_features: the newest snapshot is computed in full: {refused}"
                )
            table = engine.write_snapshots(computed, kept, "item_features", path, snapshots, inputs)
            preview = engine.preview(table.path)
        finally:
            engine.close()
        context.log.info(f"item_features: {table.row_count} rows over {len(snapshots)} snapshot(s)")
    metadata = snapshot_metadata(table, ITEM_CATALOG, preview, snapshots, kept)
    # the previous snapshot the newest one's item state was carried from ("" when in full)
    metadata["newest_carried_from"] = MetadataValue.text(
        carried.isoformat() if carried is not None else ""
    )
    return Output(table, metadata=metadata)
