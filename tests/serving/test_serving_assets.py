"""The serving assets materialized together on tiny data: export, batch Parquet, cache warming."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import redis
from dagster import asset, materialize
from serving_helpers import model_store, tiny_items, tiny_train

from recs_assets.core.models.popularity import PopularityRecommender
from recs_assets.core.serving.champion import ChampionModel, data_version
from recs_assets.core.serving.export import load_serving_model
from recs_assets.platform.data_dir import DataDirResource
from recs_assets.serving.batch_recommendations import batch_recommendations
from recs_assets.serving.bento_model import bento_model
from recs_assets.serving.cache_resource import ServingCacheResource


@asset(name="champion_model")
def tiny_champion() -> ChampionModel:
    """Popularity fitted on the tiny matrix (stands in for the model selection step)."""
    train = tiny_train()
    return ChampionModel(PopularityRecommender().fit(train), train, version="7")


@asset(name="raw_items")
def tiny_raw_items() -> pd.DataFrame:
    """The tiny item catalog."""
    return tiny_items()


def test_bento_model_and_batch_recommendations(tmp_path: Path) -> None:
    prefix = f"recs-assets-{uuid.uuid4().hex[:8]}"
    cache = ServingCacheResource(redis_url="redis://127.0.0.1:6379/15", prefix=prefix)
    client = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    try:
        with model_store(tmp_path / "bentoml"):
            result = materialize(
                [tiny_champion, tiny_raw_items, bento_model, batch_recommendations],
                resources={
                    "data_dir": DataDirResource(path=str(tmp_path / "data")),
                    "serving_cache": cache,
                },
                run_config={
                    "ops": {"batch_recommendations": {"config": {"k": 2, "warm_users": 2}}}
                },
            )
            assert result.success
            tag = result.output_for_node("bento_model")
            served = load_serving_model(tag)
        assert served.labels["model_version"] == "7"
        assert served.labels["dagster_run_id"] == result.run_id
        assert served.labels["data_version"] == data_version(tiny_train())
        frame = pd.read_parquet(result.output_for_node("batch_recommendations"))
        # u0 saw i0..i4, so only i5 is left; u4 saw i0, so i1 (4 users) and i2 (3 users)
        assert frame[frame.user_id == "u0"]["item_id"].tolist() == ["i5"]
        assert frame[frame.user_id == "u4"]["item_id"].tolist() == ["i1", "i2"]
        assert len(frame) == 1 + 2 * 4
        meta = result.asset_materializations_for_node("batch_recommendations")[0].metadata
        assert meta["warmed_users"].value == 2 and meta["users"].value == 5
        # the two most active users (u0: 5, u1: 4 interactions) are in Redis under the model tag
        keys = sorted(k.decode() for k in client.keys(f"{prefix}:*"))
        ns = tag.replace(":", "-")
        assert keys == [f"{prefix}:{ns}:rec:k=2,u=u0,x=1", f"{prefix}:{ns}:rec:k=2,u=u1,x=1"]
    finally:
        stale = client.keys(f"{prefix}:*")
        if stale:
            client.delete(*stale)
