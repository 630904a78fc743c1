"""ALS fitted by Spark MLlib on a real (local) Spark session: same contract as ``als``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from models_synthetic import make_blocks, recall_at

from recs_assets.core.models.als import SparkALSRecommender
from recs_assets.core.serving.ann import DotProductModel


def test_spark_als_recommends_own_block_and_round_trips(spark, tmp_path: Path) -> None:
    blocks = make_blocks(seed=0)
    model = SparkALSRecommender(factors=4, iterations=10, regularization=0.05)
    model.fit(blocks.train)
    users = np.arange(blocks.train.n_users)
    top, _ = model.recommend(users, k=6, exclude=blocks.train.matrix)
    assert recall_at(top, blocks.test) >= 0.9
    # scores are dot products of its factors: ANN retrieval applies to it as to als
    assert isinstance(model, DotProductModel)
    np.testing.assert_allclose(
        model.score(users[:3]), model.user_vectors(users[:3]) @ model.item_vectors().T, rtol=1e-6
    )
    loaded = SparkALSRecommender.load(model.save(tmp_path / "spark_als"))
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    assert loaded.params() == model.params()


def test_spark_als_model_asset_trains_on_the_session(spark, tmp_path: Path) -> None:
    from dagster import materialize
    from pipeline_fixtures import upstream_assets

    from recs_assets.core.evaluation.protocols import stratified_split
    from recs_assets.core.phase1.synthetic import generate_synthetic
    from recs_assets.models.family_models import build_model_asset
    from recs_assets.models.mlflow_tracker import MlflowTracker

    data = generate_synthetic(n_users=200, n_items=100, n_interactions=6_000, seed=4)
    result = materialize(
        [*upstream_assets(data.tables, stratified_split(data.tables.interactions))]
        + [build_model_asset("spark_als")],
        resources={"mlflow_tracker": MlflowTracker(local_root=str(tmp_path / "mlflow"))},
        run_config={"ops": {"spark_als_model": {"config": {"register_version": False}}}},
    )
    assert result.success
    trained = result.output_for_node("spark_als_model")
    assert trained.model.name == "spark_als" and trained.evaluation.metrics["ndcg@10"] > 0
