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
        # the run's value was streamed into storage: read the days back from there
        days = partitions(root, "raw_interactions")
        assert len(days) == 91
        parts = {d: read_table(root, "raw_interactions", [d]) for d in days}
        raw = pd.concat([parts[d] for d in days], ignore_index=True)
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


def test_feature_assets_write_the_same_tables_on_spark_and_duckdb(tmp_path: Path, spark) -> None:
    """Through the assets (engine picked by config, raw tables read from storage), Spark and
    DuckDB write the same feature tables."""
    from recs_assets.features.context_features import context_features
    from recs_assets.features.item_features import item_features
    from recs_assets.features.user_features import user_features
    from recs_assets.platform.data_dir import DataDirResource
    from tests.features.test_duck_parity import assert_same_rows

    features = {"user_features": "user_id", "item_features": "item_id"}
    features["context_features"] = "event_id"
    written: dict[str, dict[str, pd.DataFrame]] = {}
    for engine in ("spark", "duckdb"):
        root = tmp_path / engine
        session = SparkResource(master="local[2]", app_name="recs-tests")
        resources = {
            "io_manager": TableIOManager(
                root=str(root / "tables"), artifacts_root=str(root / "artifacts")
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
            assets = [user_features, item_features, context_features]
            config = {"config": {"engine": engine, "max_snapshots": 2}}
            result = materialize(
                [raw_tables, daily_interactions, *assets],
                selection=assets,
                resources=resources,
                instance=instance,
                run_config={"ops": {name: config for name in features}},
            )
            assert result.success
        written[engine] = {
            name: spark.read.parquet(result.output_for_node(name).path).toPandas()
            for name in features
        }
    for name, key in features.items():
        assert len(written["spark"][name]) > 0
        keys = [key, "feature_timestamp"] if name != "context_features" else key
        assert_same_rows(written["spark"][name], written["duckdb"][name], keys)


def test_a_table_input_is_a_reference_to_the_files(tmp_path: Path, spark) -> None:
    """An input marked ``table_in()`` is a ``TableRef``: no engine starts to hand it over, and
    Spark and DuckDB read its files straight from storage."""
    from dagster import build_input_context

    from recs_assets.core.features import duck
    from recs_assets.core.table_store import TableRef, write_table
    from recs_assets.platform.table_io_manager import FORMAT_KEY, REF_FORMAT

    frame = pd.DataFrame({"item_id": pd.array(["a", "b"], dtype="string"), "n": [1, 2]})
    write_table(frame, tmp_path, "raw_items", partition="2024-01-01")
    write_table(frame.assign(item_id=["c", "d"]), tmp_path, "raw_items", partition="2024-01-02")
    manager = TableIOManager(root=str(tmp_path))
    marked = build_input_context(
        asset_key=AssetKey("raw_items"), definition_metadata={FORMAT_KEY: REF_FORMAT}
    )
    got = manager.load_input(marked)
    assert isinstance(got, TableRef) and got.row_count() == 4
    frame_all = got.spark(spark)
    assert frame_all.columns == ["item_id", "n"]  # the Hive partition column is dropped
    assert sorted(r.item_id for r in frame_all.collect()) == ["a", "b", "c", "d"]
    one_day = TableRef(tmp_path, "raw_items", ("2024-01-02",))
    assert sorted(r.item_id for r in one_day.spark(spark).collect()) == ["c", "d"]
    rows = duckdb.sql(f"SELECT item_id FROM {duck.files_relation(one_day.files())}").fetchall()
    assert sorted(r[0] for r in rows) == ["c", "d"]
    plain = manager.load_input(build_input_context(asset_key=AssetKey("raw_items")))
    assert sorted(plain["item_id"]) == ["a", "b", "c", "d"]  # unmarked inputs stay pandas


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
