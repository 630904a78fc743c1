"""LightFM side features from feature-store snapshots: alignment with the id maps, unknown ids,
binning and one-hots, the leak rule, and the ``lightfm_hybrid_model`` asset reading the tables."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from dagster import asset, materialize

from recs_assets.core.datasets.feature_side import (
    choose_snapshot,
    entity_features,
    feature_side,
    feature_store_attributes,
    feature_store_side,
    held_out_since,
    interaction_features_allowed,
)
from recs_assets.core.evaluation.protocols import Split, stratified_split, temporal_split
from recs_assets.core.evaluation.runner import SideTables, build_side_info
from recs_assets.core.features.tables import FeatureTable
from recs_assets.core.models.lightfm_model import LightFMRecommender, identity_plus
from recs_assets.core.phase1.schema import Phase1Tables
from recs_assets.core.phase1.synthetic import generate_synthetic
from recs_assets.models.family_models import CHAMPION_ASSET, MODEL_ASSETS, build_model_asset
from recs_assets.models.mlflow_tracker import MlflowTracker
from tests.pipeline_fixtures import upstream_assets

AS_OF = datetime(2024, 1, 31, tzinfo=UTC)


def _users(as_of: datetime = AS_OF) -> pd.DataFrame:
    """Five users as the feature store writes them (one snapshot): u9 is not in the split."""
    return pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3", "u4", "u9"],
            "feature_timestamp": pd.Timestamp(as_of),
            "events_all": [1, 2, 3, 40, 5],  # interaction-derived
            "top_category": ["Drama", "Drama", "Comedy", None, "Drama"],  # interaction-derived
            "age": pd.array([20, 30, 40, None, 50], dtype="Int64"),
            "gender": ["F", "M", "F", "M", "F"],
            "occupation": ["artist", "artist", "writer", "nurse", "artist"],  # nurse: 1 user
            "signup_device": [None, None, None, None, None],  # all missing: no feature
        }
    )


def _items(as_of: datetime = AS_OF) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ["i1", "i2", "i3"],
            "feature_timestamp": pd.Timestamp(as_of),
            "events_all": [10, 0, 3],
            "categories": ["Action|Comedy", "Comedy", None],
            "age_days": [100.0, 100.0, 3000.0],
        }
    )


def test_rows_follow_the_id_maps_and_unknown_ids_get_empty_rows() -> None:
    # Split order differs from the frame's; u5 has no row; u9 (not in the split) is ignored.
    ids = ["u3", "u1", "u5", "u2", "u4"]
    f = entity_features(_users(), "user", ids, held_out_since=None, n_bins=2, min_support=2)
    assert f.unknown_ids == 1 and f.with_interactions
    dense = pd.DataFrame(f.matrix.toarray(), index=ids, columns=list(f.names))
    assert (dense.loc["u5"] == 0).all()
    # Support is counted over the split's rows: occupation=artist has u1 and u2 (u9 is not in
    # the split); nurse and writer have one user each and are dropped (min_support 2).
    assert "occupation=artist" in f.names and "occupation=nurse" not in f.names
    assert not any(n.startswith("signup_device") for n in f.names)
    assert dense.loc["u3", "gender=F"] > 0 and dense.loc["u3", "gender=M"] == 0
    assert dense.loc["u1", "occupation=artist"] > 0 and dense.loc["u3", "occupation=artist"] == 0
    # Rows are L1-normalized: every known row's weights sum to 1.
    sums = np.asarray(f.matrix.sum(axis=1)).ravel()
    np.testing.assert_allclose(sums, [1.0, 1.0, 0.0, 1.0, 1.0], rtol=1e-6)
    assert f.matrix.dtype == np.float32 and f.matrix.shape == (5, len(f.names))


def test_numeric_columns_become_quantile_bins() -> None:
    # age over the split's users 20, 30, 40 (u4 missing): the median edge 30 splits them into
    # [-inf, 30) = {20} and [30, inf) = {30, 40}; with min_support 1 both bins stay.
    f = entity_features(_users(), "user", ["u1", "u2", "u3", "u4"], None, n_bins=2, min_support=1)
    age = [n for n in f.names if n.startswith("age")]
    assert age == ["age[-inf,30)", "age[30,inf)"]
    dense = pd.DataFrame(f.matrix.toarray(), index=["u1", "u2", "u3", "u4"], columns=list(f.names))
    assert dense.loc["u1", "age[-inf,30)"] > 0 and dense.loc["u2", "age[30,inf)"] > 0
    assert (dense.loc["u4", age] == 0).all()  # missing age activates nothing
    # u1 has events_all bin, top_category=Drama, age bin, gender, occupation: 5 features of 1/5.
    assert dense.loc["u1"][dense.loc["u1"] > 0].tolist() == pytest.approx([0.2] * 5)


def test_the_leak_rule_keeps_only_static_columns_after_the_cut() -> None:
    ids = ["u1", "u2", "u3", "u4"]
    # A held-out event at AS_OF itself is inside the snapshot (events <= as_of): not allowed.
    assert not interaction_features_allowed(AS_OF, AS_OF)
    assert interaction_features_allowed(AS_OF, AS_OF + timedelta(seconds=1))
    assert interaction_features_allowed(AS_OF, None)
    leaky = entity_features(_users(), "user", ids, AS_OF - timedelta(days=1), min_support=1)
    assert not leaky.with_interactions
    assert set(leaky.columns) == {"age", "gender", "occupation"}
    assert not any(n.startswith(("events_all", "top_category")) for n in leaky.names)
    clean = entity_features(_users(), "user", ids, AS_OF + timedelta(days=1), min_support=1)
    assert clean.with_interactions
    assert {"events_all", "top_category"} <= set(clean.columns)


def test_item_categories_are_multi_hot_and_identity_is_prepended_by_lightfm() -> None:
    side = feature_side(None, _items(), [], ["i2", "i1", "i3", "i7"], AS_OF, min_support=1)
    assert side.users is None
    items = side.items
    assert items is not None and items.unknown_ids == 1 and not items.with_interactions
    dense = pd.DataFrame(
        items.matrix.toarray(), index=["i2", "i1", "i3", "i7"], columns=list(items.names)
    )
    # i1 "Action|Comedy" -> both categories; Comedy is on i1 and i2 and Action on i1 only.
    assert dense.loc["i1", "categories=Action"] > 0 and dense.loc["i1", "categories=Comedy"] > 0
    assert dense.loc["i2", "categories=Action"] == 0
    assert not any(n.startswith("events_all") for n in items.names)  # interaction-derived
    lightfm = identity_plus(items.matrix, 4).toarray()
    # [I | normalized side]: own embedding with weight 1, features sharing weight 1.
    np.testing.assert_array_equal(lightfm[:, :4], np.eye(4))
    np.testing.assert_allclose(lightfm[:, 4:].sum(axis=1), [1.0, 1.0, 1.0, 0.0], rtol=1e-6)


def test_snapshot_choice_and_bad_frames() -> None:
    snaps = [AS_OF - timedelta(days=60), AS_OF - timedelta(days=30), AS_OF]
    assert choose_snapshot(snaps, AS_OF - timedelta(days=10)) == (snaps[1], True)
    assert choose_snapshot(snaps, AS_OF - timedelta(days=90)) == (snaps[2], False)
    assert choose_snapshot(snaps, None) == (snaps[2], True)
    two = pd.concat([_users(), _users(AS_OF - timedelta(days=1))])
    with pytest.raises(ValueError, match="must be one snapshot"):
        entity_features(two, "user", ["u1"], None)
    with pytest.raises(ValueError, match="duplicate user_id"):
        entity_features(pd.concat([_users(), _users()]), "user", ["u1"], None)
    with pytest.raises(ValueError, match="lack column"):
        entity_features(_users().drop(columns=["feature_timestamp"]), "user", ["u1"], None)


def test_held_out_since_is_the_earliest_test_event() -> None:
    data = generate_synthetic(n_users=60, n_items=40, n_interactions=1500, seed=3).tables
    p1 = stratified_split(data.interactions)
    p2 = temporal_split(data.interactions)
    assert held_out_since(p1) == p1.test_frame["timestamp"].min().to_pydatetime()
    # P2 holds out the newest events: every train event is before the cut.
    assert p2.train_frame["timestamp"].max() <= pd.Timestamp(held_out_since(p2))
    assert held_out_since(p1, p2) == min(held_out_since(p1), held_out_since(p2))


# ---- the model asset reads the feature tables -------------------------------------------------
@pytest.fixture(scope="module")
def tables() -> Phase1Tables:
    return generate_synthetic(n_users=150, n_items=80, n_interactions=5000, seed=11).tables


@pytest.fixture(scope="module")
def p1(tables: Phase1Tables) -> Split:
    return stratified_split(tables.interactions)


@pytest.fixture(scope="module")
def snapshots(tables: Phase1Tables, p1: Split) -> tuple[datetime, datetime]:
    """One snapshot just before the first held-out event, the newest at the last event."""
    last = tables.interactions["timestamp"].max().to_pydatetime()
    first_held_out = held_out_since(p1)
    return (first_held_out - timedelta(hours=1), last)


def _snapshot_rows(
    entity: str, ids: list[str], as_of: datetime, tables: Phase1Tables
) -> pd.DataFrame:
    """Feature-store rows: static attributes from the raw tables plus an interaction count."""
    rng = np.random.default_rng(len(ids))
    raw = tables.users if entity == "user" else tables.items
    key = f"{entity}_id"
    static = ["age", "gender", "occupation"] if entity == "user" else ["categories"]
    out = raw.set_index(key).reindex(ids)[static].reset_index()
    out.insert(1, "feature_timestamp", pd.Timestamp(as_of).as_unit("us"))
    out["events_all"] = rng.integers(0, 50, len(ids))
    return out


def _table(
    tmp_path: Path,
    entity: str,
    ids: list[str],
    tables: Phase1Tables,
    snaps: tuple[datetime, datetime],
) -> FeatureTable:
    """Two snapshots as Parquet: one before the first held-out event, the newest at the end."""
    frame = pd.concat([_snapshot_rows(entity, ids, t, tables) for t in snaps], ignore_index=True)
    path = tmp_path / f"{entity}_features"
    path.mkdir()
    frame.to_parquet(path / "part-0.parquet", index=False)
    return FeatureTable(f"{entity}_features", str(path), len(frame), tuple(frame.columns), snaps)


def _feature_assets(
    tmp_path: Path, tables: Phase1Tables, p1: Split, snapshots: tuple[datetime, datetime]
) -> tuple[FeatureTable, FeatureTable, list]:
    """The two feature tables on disk and the ``user_features`` / ``item_features`` assets
    that hand them downstream."""
    user_table = _table(tmp_path, "user", [str(u) for u in p1.user_ids], tables, snapshots)
    item_table = _table(tmp_path, "item", [str(i) for i in p1.item_ids], tables, snapshots)

    @asset
    def user_features() -> FeatureTable:
        return user_table

    @asset
    def item_features() -> FeatureTable:
        return item_table

    return user_table, item_table, [user_features, item_features]


def test_feature_store_side_reads_the_clean_snapshot(
    tmp_path: Path, tables: Phase1Tables, p1: Split, snapshots: tuple[datetime, datetime]
) -> None:
    users, items, _ = _feature_assets(tmp_path, tables, p1, snapshots)
    side = feature_store_side(p1, users, items)
    assert side.users is not None and side.items is not None
    # The snapshot before the first held-out event passes the leak rule, so its counts are used.
    assert side.users.as_of == users.snapshots[0] and side.users.with_interactions
    assert "events_all" in side.users.columns
    assert side.users.matrix.shape[0] == len(p1.user_ids) and side.users.unknown_ids == 0
    # Cut before every snapshot: the newest snapshot, static columns only.
    early = feature_store_side(p1, users, items, held_out=users.snapshots[0] - timedelta(days=1))
    assert early.users is not None and early.users.as_of == users.snapshots[1]
    assert not early.users.with_interactions and "events_all" not in early.users.columns
    # Column restriction (the pipeline's hybrid keeps item categories only).
    cats = feature_store_side(p1, users, items, item_columns={"categories"})
    assert cats.items is not None and cats.items.columns == ("categories",)
    assert all(n.startswith("categories=") for n in cats.items.names)


def test_the_pipeline_wires_features_into_the_hybrid_model() -> None:
    (hybrid,) = [a for a in MODEL_ASSETS if a.key.path[0] == "lightfm_hybrid_model"]
    deps = {k.path[0] for k in hybrid.keys_by_input_name.values()}
    assert {"user_features", "item_features", "stratified_dataset"} <= deps
    assert "lightfm_hybrid_model" in {k.path[0] for k in CHAMPION_ASSET.keys_by_input_name.values()}


def test_hybrid_model_asset_fits_on_the_feature_tables(
    tmp_path: Path, tables: Phase1Tables, p1: Split, snapshots: tuple[datetime, datetime]
) -> None:
    user_table, item_table, feature_assets = _feature_assets(tmp_path, tables, p1, snapshots)

    hybrid = build_model_asset(
        "lightfm_hybrid", feature_store=True, defaults={"hybrid_users": True}
    )
    deps = {k.path[0] for k in hybrid.keys_by_input_name.values()}
    assert {"user_features", "item_features"} <= deps  # lineage: features -> model
    tracker = MlflowTracker(local_root=str(tmp_path / "mlflow"))
    small = {"no_components": 8, "epochs": 3}
    result = materialize(
        [*upstream_assets(tables, p1), *feature_assets, hybrid],
        resources={"mlflow_tracker": tracker},
        run_config={
            "ops": {
                "lightfm_hybrid_model": {
                    "config": {"hyperparameters": small, "register_version": False}
                }
            }
        },
    )
    assert result.success
    trained = result.output_for_node("lightfm_hybrid_model")
    assert trained.model.params()["hybrid_users"] and trained.model.params()["hybrid_items"]
    # The fitted model is the one LightFM fits on the feature-store matrices (same seed and
    # threads: identical representations), not on the raw categories.
    expected = feature_store_side(p1, user_table, item_table)
    base = build_side_info(p1, SideTables(users=tables.users, items=tables.items))
    twin = LightFMRecommender(hybrid_items=True, hybrid_users=True, **small).fit(
        p1.train, expected.side_info(base)
    )
    np.testing.assert_allclose(trained.model.item_repr_, twin.item_repr_, rtol=1e-6)
    on_categories = LightFMRecommender(hybrid_items=True, **small).fit(p1.train, base)
    # Serving encodes new users' online features with the encoder of the training rows.
    assert trained.user_encoder == expected.users.encoder  # type: ignore[union-attr]
    assert trained.model.n_user_features == trained.user_encoder.n_features  # type: ignore[union-attr]
    assert not np.allclose(trained.model.item_repr_, on_categories.item_repr_)
    (mat,) = [
        m
        for m in result.get_asset_materialization_events()
        if m.asset_key.path[0] == "lightfm_hybrid_model"
    ]
    summary = mat.materialization.metadata["side_features"].value
    assert summary["user"]["interaction_features"] is True
    assert summary["item"]["n_features"] == len(expected.items.names)  # type: ignore[union-attr]
    run = tracker.client().get_run(trained.mlflow_run_id)
    assert run.data.params["hybrid_users"] == "True"
    assert sp.issparse(expected.users.matrix)  # type: ignore[union-attr]


def test_feature_store_attributes_follow_the_leak_rule(
    tmp_path: Path, tables: Phase1Tables, p1: Split, snapshots: tuple[datetime, datetime]
) -> None:
    users, items, _ = _feature_assets(tmp_path, tables, p1, snapshots)
    clean = feature_store_attributes(p1, users, items)
    assert clean.users is not None and clean.items is not None
    # the snapshot before the first held-out event: its interaction counts too
    assert clean.snapshots["user"] == (snapshots[0], True)
    assert {"age", "gender", "occupation", "events_all"} <= set(clean.users.names)
    assert clean.users.values.shape == (len(p1.user_ids), len(clean.users.names))
    # the values are those of that snapshot, row for row in id-map order
    first = pd.read_parquet(users.path)
    first = first[first["feature_timestamp"] == pd.Timestamp(snapshots[0])].set_index("user_id")
    col = clean.users.names.index("events_all")
    np.testing.assert_array_equal(
        clean.users.values[:, col], first.loc[[str(u) for u in p1.user_ids], "events_all"]
    )
    # cut before every snapshot: the newest one, static columns only
    early = feature_store_attributes(p1, users, items, held_out=snapshots[0] - timedelta(days=1))
    assert early.snapshots["user"] == (snapshots[1], False)
    assert early.users is not None and "events_all" not in early.users.names
    assert early.items is not None and early.items.names == ("category_count",)
    summary = early.summary()
    assert summary["user"]["interaction_features"] is False  # type: ignore[index]
    side = early.side_info(build_side_info(p1, SideTables(items=tables.items)))
    assert side.user_attributes is early.users and side.item_categories is not None


def test_ranker_asset_reads_attributes_from_the_feature_tables(
    tmp_path: Path, tables: Phase1Tables, p1: Split, snapshots: tuple[datetime, datetime]
) -> None:
    user_table, item_table, feature_assets = _feature_assets(tmp_path, tables, p1, snapshots)

    ranker = build_model_asset("ranker", attributes=True)
    deps = {k.path[0] for k in ranker.keys_by_input_name.values()}
    assert {"user_features", "item_features"} <= deps  # lineage: features -> ranker
    small = {
        "generators": [{"name": "ease", "params": {"lam": 50.0}}, {"name": "als", "params": {}}],
        "n_candidates": 30,
        "n_estimators": 10,
        "num_threads": 1,
    }
    result = materialize(
        [*upstream_assets(tables, p1), *feature_assets, ranker],
        resources={"mlflow_tracker": MlflowTracker(local_root=str(tmp_path / "mlflow"))},
        run_config={
            "ops": {
                "ranker_model": {"config": {"hyperparameters": small, "register_version": False}}
            }
        },
    )
    assert result.success
    model = result.output_for_node("ranker_model").model
    assert {"user.events_all", "user.age", "item.category_count"} <= set(model.feature_names())
    (mat,) = [
        m
        for m in result.get_asset_materialization_events()
        if m.asset_key.path[0] == "ranker_model"
    ]
    summary = mat.materialization.metadata["side_features"].value
    assert summary["user"]["snapshot"] == snapshots[0].isoformat()
    assert "events_all" in summary["user"]["columns"]
    if "ranker" in {a.key.path[0].removesuffix("_model") for a in MODEL_ASSETS}:
        (built,) = [a for a in MODEL_ASSETS if a.key.path[0] == "ranker_model"]
        assert {"user_features", "item_features"} <= {
            k.path[0] for k in built.keys_by_input_name.values()
        }
