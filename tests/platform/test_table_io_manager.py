"""The default IO manager on a real instance: DataFrame assets land as Parquet tables (with row
count and column schema metadata) that pandas, DuckDB and Spark read straight from storage;
downstream assets load them back; no DataFrame is pickled into the instance's storage."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
from dagster import AssetKey, DagsterInstance, asset, materialize

from recs_assets.core.table_store import read_table
from recs_assets.monitoring.trending_items import trending_items
from recs_assets.monitoring.trending_store import TrendingStore
from recs_assets.platform.table_io_manager import TableIOManager
from recs_assets.raw.raw_tables import raw_tables
from recs_assets.raw.source_resource import Phase1Source

NOW = "2025-01-01T00:00:00+00:00"


@asset
def interaction_count(raw_interactions: pd.DataFrame) -> int:
    """A non-table value (stored as an artifact) computed from a table loaded back."""
    return len(raw_interactions)


def test_tables_on_storage_read_by_every_engine(tmp_path: Path, spark) -> None:
    root = tmp_path / "tables"
    resources = {
        "io_manager": TableIOManager(root=str(root), artifacts_root=str(tmp_path / "artifacts")),
        "phase1": Phase1Source(kind="synthetic", preset="small", seed=3),
        "trending_store": TrendingStore(path=str(tmp_path / "trending.parquet"), redis_url=""),
    }
    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "home")) as instance:
        first = materialize(
            [raw_tables],
            resources=resources,
            instance=instance,
            run_config={"ops": {"raw_tables": {"config": {"now": NOW}}}},
        )
        assert first.success
        raw = first.output_for_node("raw_tables", "raw_interactions")
        # a second run: downstream assets load raw_interactions back from the table
        second = materialize(
            [raw_tables, trending_items, interaction_count],
            selection=[trending_items, interaction_count],
            resources=resources,
            instance=instance,
        )
        assert second.success
        assert second.output_for_node("interaction_count") == len(raw)
        event = instance.get_latest_materialization_event(AssetKey("raw_interactions"))
        metadata = event.asset_materialization.metadata
        storage = Path(instance.storage_directory())
    assert metadata["dagster/row_count"].value == len(raw)
    columns = {c.name: c.type for c in metadata["dagster/column_schema"].value.columns}
    assert list(columns) == list(raw.columns)
    assert columns["timestamp"] == "timestamp[us, tz=UTC]"
    pd.testing.assert_frame_equal(read_table(root, "raw_interactions"), raw)
    # DuckDB and Spark read the same files, straight from storage
    for table in ("raw_interactions", "raw_users", "raw_items", "trending_items"):
        glob = str(root / table / "**" / "*.parquet")
        count = duckdb.sql(f"select count(*) from read_parquet('{glob}')").fetchall()[0][0]
        assert count == spark.read.parquet(str(root / table)).count() > 0
    # nothing is pickled in the instance's storage: other values are artifacts
    assert [p for p in storage.rglob("*") if p.is_file()] == []
    assert (tmp_path / "artifacts" / "interaction_count" / "artifact.json").is_file()


def test_feature_assets_read_the_raw_tables_with_spark(tmp_path: Path, spark) -> None:
    """The same features whether Spark reads the raw tables' files or pandas frames are
    converted on the driver (the small-data path)."""
    from recs_assets.features.context_features import context_features
    from recs_assets.platform.data_dir import DataDirResource
    from recs_assets.platform.spark_resource import SparkResource

    session = SparkResource(master="local[2]", app_name="recs-tests")
    written = {}
    for path in ("spark", "pandas"):
        root = tmp_path / path
        resources = {
            "io_manager": TableIOManager(
                root=str(root / "tables"),
                artifacts_root=str(root / "artifacts"),
                spark=session if path == "spark" else None,
            ),
            "phase1": Phase1Source(kind="synthetic", preset="small", seed=3),
            "spark": session,
            "data_dir": DataDirResource(path=str(root / "data")),
        }
        with DagsterInstance.ephemeral(tempdir=str(root / "home")) as instance:
            assert materialize(
                [raw_tables],
                resources=resources,
                instance=instance,
                run_config={"ops": {"raw_tables": {"config": {"now": NOW}}}},
            ).success
            result = materialize(
                [raw_tables, context_features],
                selection=[context_features],
                resources=resources,
                instance=instance,
            )
            assert result.success
        table = result.output_for_node("context_features")
        written[path] = (
            spark.read.parquet(table.path).orderBy("event_id").toPandas().reset_index(drop=True)
        )
    assert len(written["spark"]) > 0
    pd.testing.assert_frame_equal(written["spark"], written["pandas"])


def test_a_spark_input_is_a_spark_dataframe_over_the_files(tmp_path: Path, spark) -> None:
    from dagster import build_input_context
    from pyspark.sql import DataFrame as SparkDataFrame

    from recs_assets.core.table_store import write_table
    from recs_assets.platform.spark_resource import SparkResource
    from recs_assets.platform.table_io_manager import FORMAT_KEY, SPARK_FORMAT

    frame = pd.DataFrame({"item_id": pd.array(["a", "b"], dtype="string"), "n": [1, 2]})
    write_table(frame, tmp_path, "raw_items", partition="2024-01-01")
    manager = TableIOManager(root=str(tmp_path), spark=SparkResource(master="local[2]"))
    marked = build_input_context(
        asset_key=AssetKey("raw_items"), definition_metadata={FORMAT_KEY: SPARK_FORMAT}
    )
    got = manager.load_input(marked)
    assert isinstance(got, SparkDataFrame)
    assert got.columns == ["item_id", "n"]  # the Hive partition column is dropped
    assert sorted(r.item_id for r in got.collect()) == ["a", "b"]
    plain = manager.load_input(build_input_context(asset_key=AssetKey("raw_items")))
    pd.testing.assert_frame_equal(plain, frame)  # unmarked inputs stay pandas
