"""The default IO manager on a real instance: DataFrame assets land as Parquet tables (with row
count and column schema metadata) that pandas, DuckDB and Spark read straight from storage;
downstream assets load them back; no DataFrame is pickled into the instance's storage."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
from dagster import AssetKey, DagsterInstance, asset, materialize

from recs_assets.core.table_store import partitions, read_table
from recs_assets.monitoring.trending_items import trending_items
from recs_assets.monitoring.trending_store import TrendingStore
from recs_assets.platform.spark_resource import SparkResource
from recs_assets.platform.table_io_manager import TableIOManager
from recs_assets.raw.partitions import range_tags
from recs_assets.raw.raw_tables import daily_interactions, raw_tables
from recs_assets.raw.source_resource import Phase1Source

NOW = "2025-01-01T00:00:00+00:00"
RAW_CONFIG = {"ops": {n: {"config": {"now": NOW}} for n in ("raw_tables", "daily_interactions")}}
SMALL_DAYS = ("2024-01-01", "2024-03-31")  # the days of the synthetic small preset's events


@asset
def interaction_count(raw_interactions: pd.DataFrame) -> int:
    """A non-table value (stored as an artifact) computed from a table loaded back."""
    return len(raw_interactions)


def test_tables_on_storage_read_by_every_engine(tmp_path: Path, spark) -> None:
    root = tmp_path / "tables"
    resources = {
        "io_manager": TableIOManager(root=str(root), artifacts_root=str(tmp_path / "artifacts")),
        "phase1": Phase1Source(kind="synthetic", preset="small", seed=3),
        "spark": SparkResource(master="local[2]", app_name="recs-tests"),
        "trending_store": TrendingStore(path=str(tmp_path / "trending.parquet"), redis_url=""),
    }
    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "home")) as instance:
        first = materialize(
            [raw_tables, daily_interactions],
            resources=resources,
            instance=instance,
            run_config=RAW_CONFIG,
            tags=range_tags(*SMALL_DAYS),
        )
        assert first.success
        parts = first.output_for_node("daily_interactions", "raw_interactions").parts
        assert sorted(parts) == partitions(root, "raw_interactions") and len(parts) == 91
        raw = pd.concat([parts[d] for d in sorted(parts)], ignore_index=True)
        # a second run: downstream assets load raw_interactions back from the table
        second = materialize(
            [raw_tables, daily_interactions, trending_items, interaction_count],
            selection=[trending_items, interaction_count],
            resources=resources,
            instance=instance,
        )
        assert second.success
        assert second.output_for_node("interaction_count") == len(raw)
        # one day rewritten alone: its materialization carries the row count of that day
        day = materialize(
            [raw_tables, daily_interactions],
            selection=[daily_interactions],
            resources=resources,
            instance=instance,
            run_config={"ops": {"daily_interactions": RAW_CONFIG["ops"]["daily_interactions"]}},
            partition_key="2024-02-01",
        )
        assert day.success
        event = instance.get_latest_materialization_event(AssetKey("raw_interactions"))
        metadata = event.asset_materialization.metadata
        storage = Path(instance.storage_directory())
    assert event.asset_materialization.partition == "2024-02-01"
    assert metadata["dagster/row_count"].value == len(parts["2024-02-01"]) > 0
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
                [raw_tables, daily_interactions],
                resources=resources,
                instance=instance,
                run_config=RAW_CONFIG,
                tags=range_tags(*SMALL_DAYS),
            ).success
            result = materialize(
                [raw_tables, daily_interactions, context_features],
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


def test_dataset_frames_are_read_by_duckdb_and_spark(tmp_path: Path, spark) -> None:
    """A training dataset is an artifact, but its frames are Parquet files named for their field,
    which DuckDB and Spark read straight from storage."""
    from recs_assets.core.artifact_store import load_artifact, save_artifact
    from recs_assets.core.datasets.dataset import TrainingDataset
    from recs_assets.core.evaluation.protocols import stratified_split
    from recs_assets.core.phase1.synthetic import generate_synthetic

    tables = generate_synthetic(n_users=80, n_items=40, n_interactions=2_000, seed=1, days=5).tables
    split = stratified_split(tables.interactions)
    dataset = TrainingDataset("stratified_dataset", split, len(split.train_frame), "", "", 0, 0)
    folder = tmp_path / "artifacts" / "stratified_dataset"
    save_artifact(dataset, folder)
    for field, frame in (("train_frame", split.train_frame), ("test_frame", split.test_frame)):
        path = folder / "frames" / f"split.{field}.parquet"
        count = duckdb.sql(f"select count(*) from read_parquet('{path}')").fetchall()[0][0]
        assert count == spark.read.parquet(str(path)).count() == len(frame) > 0
    loaded = load_artifact(folder)
    pd.testing.assert_frame_equal(loaded.split.train_frame, split.train_frame)
