"""One materialize run of the feature domain on hand-written tables (Spark local, Feast SQLite),
and the proof that a failing contract check blocks the online store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import AssetKey, AssetsDefinition, Output, asset, materialize
from features_data import hand_tables
from pipeline_fixtures import raw_stand_ins

from recs_assets.core.contracts import REDIS_URL_ENV
from recs_assets.core.features.tables import FeatureTable, write_feature_table
from recs_assets.core.phase1.schema import Phase1Tables
from recs_assets.features.context_features import context_features
from recs_assets.features.feast_resource import FeastResource
from recs_assets.features.feature_checks import FEATURE_CHECKS
from recs_assets.features.item_features import item_features
from recs_assets.features.online_feature_store import online_feature_freshness, online_feature_store
from recs_assets.features.user_features import user_features
from recs_assets.platform.data_dir import DataDirResource
from recs_assets.platform.spark_resource import SparkResource

pytestmark = pytest.mark.slow

SPARK = SparkResource(
    master="local[2]",
    app_name="recs-tests",
    conf={"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"},
)


@pytest.fixture(scope="module")
def tables() -> Phase1Tables:
    return hand_tables()


@pytest.fixture(scope="module")
def raw_assets(tables: Phase1Tables) -> dict[str, AssetsDefinition]:
    """``raw_interactions``, ``raw_users`` and ``raw_items`` serving the hand-written tables."""
    return raw_stand_ins(tables)


# counted back from the newest event: the hand-computed times below
SNAPSHOT_CONFIG = {"snapshot_interval_days": 7, "max_snapshots": 2, "snapshot_anchor": "newest"}


def _resources(data: Path) -> dict[str, object]:
    return {
        "spark": SPARK,
        "data_dir": DataDirResource(path=str(data)),
        "feast": FeastResource(project="recs_test_assets", repo_dir=str(data / "feast")),
    }


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory,
    spark,  # noqa: ARG001 - shares the session
    raw_assets: dict[str, AssetsDefinition],
):
    mp = pytest.MonkeyPatch()
    mp.delenv(REDIS_URL_ENV, raising=False)  # SQLite online store here; Redis has its own test
    data = tmp_path_factory.mktemp("data")
    result = materialize(
        [
            raw_assets["raw_interactions"],
            raw_assets["raw_users"],
            raw_assets["raw_items"],
            user_features,
            item_features,
            context_features,
            *FEATURE_CHECKS,
            online_feature_store,
            online_feature_freshness,
        ],
        resources=_resources(data),
        run_config={
            "ops": {
                "user_features": {"config": SNAPSHOT_CONFIG},
                "item_features": {"config": SNAPSHOT_CONFIG},
            }
        },
    )
    yield result, data
    mp.undo()


def test_feature_tables_written_with_snapshots(run, spark) -> None:
    result, data = run
    assert result.success
    users: FeatureTable = result.output_for_node("user_features")
    # newest event e6 2024-02-05 12:00, one snapshot 7 days earlier. On 01-29 12:00 the known users
    # are u1 and u2 (signed up before; u4's only event is 01-31): 2 rows; on 02-05 u3 (signed up
    # 02-01) and u4 join: 4 rows. Items: i1, i2, i3 at both times (i4 is created 02-10): 3 + 3.
    assert users.snapshots == (
        datetime(2024, 1, 29, 12, tzinfo=UTC),
        datetime(2024, 2, 5, 12, tzinfo=UTC),
    )
    assert users.row_count == 6
    assert result.output_for_node("item_features").row_count == 6
    assert result.output_for_node("context_features").row_count == 6
    df = spark.read.parquet(str(data / "features" / "user_features")).toPandas()
    u1 = df[df.user_id == "u1"].set_index("feature_timestamp")["events_all"].to_dict()
    # u1 has e1 e2 e3 before 01-29 12:00, and also e4 and e6 by 02-05 12:00
    assert {str(k): v for k, v in u1.items()} == {
        "2024-01-29 12:00:00": 3,
        "2024-02-05 12:00:00": 5,
    }
    materialization = result.asset_materializations_for_node("user_features")[0]
    assert materialization.metadata["row_count"].value == 6
    names = [r.data["name"] for r in materialization.metadata["feature_catalog"].value.records]
    assert "trending_score" not in names and "cat_share_<category>" in names


def test_contract_checks_pass_on_valid_tables(run) -> None:
    result, _ = run
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations == {
        "user_features_contract": True,
        "item_features_contract": True,
        "context_features_contract": True,
        "online_feature_freshness": True,
    }


def test_online_store_serves_newest_snapshot(run) -> None:
    result, data = run
    state = result.output_for_node("online_feature_store")
    assert state.online_store == "sqlite"
    # features are stamped with the newest event, so the online store is exactly fresh
    assert state.lag.total_seconds() == 0.0
    store = FeastResource(project="recs_test_assets", repo_dir=str(data / "feast")).store()
    got = store.get_online_features(
        features=["user_features:events_all", "item_features:bayes_rating"],
        entity_rows=[{"user_id": "u1", "item_id": "i2"}],
    ).to_dict()
    # newest snapshot (02-05): u1 has 5 events; i2 has one rating 4 and the global mean is
    # (4 + 2) / 2 = 3, so bayes = (10 * 3 + 4) / 11
    assert got["events_all"] == [5]
    assert got["bayes_rating"][0] == pytest.approx(34 / 11)


def test_broken_feature_table_fails_check_and_blocks_online_store(
    tmp_path: Path, spark, tables: Phase1Tables, raw_assets: dict[str, AssetsDefinition]
) -> None:
    broken_path = tmp_path / "features" / "user_features"
    snapshot = datetime(2024, 2, 5, 12, tzinfo=UTC)

    @asset(name="user_features")
    def broken_user_features() -> Output[FeatureTable]:
        good = spark.read.parquet(str(_good_user_table(spark, tmp_path, tables)))
        # row 1: null key; row 2: negative count
        bad = spark.createDataFrame(
            good.limit(2).toPandas().assign(user_id=[None, "u9"], events_all=[3, -4]),
            schema=good.schema,
        )
        return Output(write_feature_table(bad, "user_features", broken_path, (snapshot,)))

    mp = pytest.MonkeyPatch()
    mp.delenv(REDIS_URL_ENV, raising=False)
    try:
        result = materialize(
            [
                raw_assets["raw_interactions"],
                raw_assets["raw_items"],
                broken_user_features,
                item_features,
                *FEATURE_CHECKS[:2],
                online_feature_store,
            ],
            resources=_resources(tmp_path),
            run_config={"ops": {"item_features": {"config": SNAPSHOT_CONFIG}}},
            raise_on_error=False,
        )
    finally:
        mp.undo()
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "user_features_contract"
    )
    assert not evaluation.passed
    assert evaluation.metadata["failing_rows"].value == 2
    message = evaluation.metadata["message"].value
    assert "user_id: not_nullable" in message and "events_all" in message and "u9" in message
    keys = {e.asset_key for e in result.get_asset_materialization_events()}
    assert AssetKey("user_features") in keys
    assert AssetKey("online_feature_store") not in keys
    assert not (tmp_path / "feast" / "online_store.db").exists()


def _good_user_table(spark, tmp_path: Path, tables: Phase1Tables) -> Path:
    """A valid user_features table computed by the real transform (schema for the broken one)."""
    from recs_assets.core.features.spark_frames import to_spark
    from recs_assets.core.features.transforms.user import user_features as transform

    out = tmp_path / "good_user_features"
    df = transform(
        to_spark(spark, tables.interactions, "interactions"),
        to_spark(spark, tables.users, "users"),
        to_spark(spark, tables.items, "items"),
        as_of=datetime(2024, 2, 5, 12, tzinfo=UTC),
        categories=["Action", "Comedy", "Drama"],
    )
    df.write.mode("overwrite").parquet(str(out))
    return out
