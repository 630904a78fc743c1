"""The user-feature encoder replays training's encoding on rows as serving reads them, and LightFM
scores a user it never saw from such a row exactly as LightFM's own ``predict`` does."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recs_assets.core.datasets.feature_side import entity_features
from recs_assets.core.models.base import InteractionMatrix, SideInfo
from recs_assets.core.models.feature_encoder import ColumnEncoding, FeatureEncoder
from recs_assets.core.models.lightfm_model import LightFMRecommender, identity_plus

AS_OF = pd.Timestamp("2024-01-31", tz="UTC")


def _users() -> pd.DataFrame:
    """Six users of one snapshot: numeric (with a missing age), text and multi-valued columns."""
    return pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3", "u4", "u5", "u6"],
            "feature_timestamp": AS_OF,
            "age": pd.array([20, 30, 40, None, 50, 30], dtype="Int64"),
            "gender": ["F", "M", "F", "M", None, "F"],
            "occupation": ["artist", "artist", "writer", "nurse", "writer", "writer"],
            "categories": ["Drama|Comedy", "Drama", None, "Comedy", "Drama", "Action"],
        }
    )


def test_encoding_rows_as_serving_reads_them_gives_the_training_rows() -> None:
    frame = _users()
    ids = ["u6", "u2", "u1", "u5", "u3", "u4"]
    f = entity_features(frame, "user", ids, None, n_bins=3, min_support=2)
    # Serving reads one dict per user from Feast (None for missing values) and a JSON encoder.
    encoder = FeatureEncoder.from_json(json.loads(json.dumps(f.encoder.to_json())))
    assert encoder == f.encoder and encoder.names == f.names
    records = frame.set_index("user_id").loc[ids].reset_index().to_dict("records")
    online = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in records]
    assert (encoder.encode(online) != f.matrix).nnz == 0
    # One row at a time (the service's case) gives the same rows.
    for pos, row in enumerate(online):
        assert (encoder.encode([row]) != f.matrix[pos]).nnz == 0


def test_new_rows_use_the_training_bins_and_vocabulary() -> None:
    f = entity_features(_users(), "user", ["u1", "u2", "u3", "u4", "u5", "u6"], None, n_bins=2)
    enc = f.encoder
    # age over 20, 30, 40, 50, 30 (u4 missing): median 30 -> bins [-inf,30) and [30,inf);
    # [-inf,30) holds u1 only (support 1 < 2), so it was dropped: an age of 5 activates nothing.
    assert [n for n in enc.names if n.startswith("age")] == ["age[30,inf)"]
    row = enc.encode([{"age": 99, "gender": "F", "occupation": "pilot", "categories": "Drama"}])
    active = {enc.names[i]: v for i, v in zip(row.indices, row.data, strict=True)}
    # 99 is past every edge (last bin); pilot was never seen; three features of weight 1/3.
    assert active == pytest.approx(
        {"age[30,inf)": 1 / 3, "gender=F": 1 / 3, "categories=Drama": 1 / 3}
    )
    young = enc.encode([{"age": 5, "gender": None, "occupation": "pilot"}])
    assert young.nnz == 0 and young.shape == (1, enc.n_features)
    assert enc.encode([{}]).nnz == 0  # columns absent from the row count as missing


def test_bad_encoder_json_is_rejected() -> None:
    good = entity_features(_users(), "user", ["u1", "u2", "u3"], None, min_support=1).encoder
    data = good.to_json()
    with pytest.raises(ValueError, match="format"):
        FeatureEncoder.from_json({**data, "format": 99})
    with pytest.raises(ValueError, match="exactly once"):
        FeatureEncoder.from_json({**data, "names": data["names"][:-1]})
    with pytest.raises(ValueError, match="bin features"):
        ColumnEncoding("age", "bins", edges=(1.0, 2.0), bin_features=(0, 1))


# ---- LightFM: a new user scored from features ---------------------------------------------------
def _data() -> tuple[InteractionMatrix, pd.DataFrame]:
    """20 users x 10 items: women (even users) consume i0-i4, men i5-i9."""
    rng = np.random.default_rng(1)
    users = [f"u{j}" for j in range(20)]
    items = [f"i{i}" for i in range(10)]
    rows = [
        (u, it)
        for j, u in enumerate(users)
        for it in rng.choice(items[:5] if j % 2 == 0 else items[5:], 3, replace=False)
    ]
    train = InteractionMatrix.from_frame(
        pd.DataFrame(rows, columns=["user_id", "item_id"]), user_ids=users, item_ids=items
    )
    frame = pd.DataFrame(
        {
            "user_id": users,
            "feature_timestamp": AS_OF,
            "gender": ["F" if j % 2 == 0 else "M" for j in range(20)],
            "age": pd.array([20 + j for j in range(20)], dtype="Int64"),
        }
    )
    return train, frame


def test_lightfm_scores_a_new_user_like_lightfm_predict_with_an_empty_identity(
    tmp_path: Path,
) -> None:
    from lightfm import LightFM

    train, frame = _data()
    f = entity_features(frame, "user", train.user_ids, None, n_bins=2)
    params = {"no_components": 6, "epochs": 5, "learning_rate": 0.05, "random_state": 3}
    rec = LightFMRecommender(hybrid_users=True, **params).fit(
        train, SideInfo(user_features=f.matrix)
    )
    assert rec.n_user_features == f.encoder.n_features
    # The twin: LightFM itself, fitted the way LightFMRecommender fits it (same seed, one thread).
    user_f = identity_plus(f.matrix, train.n_users)
    twin = LightFM(
        no_components=6,
        learning_rate=0.05,
        loss="warp",
        max_sampled=50,
        item_alpha=1e-6,
        user_alpha=1e-6,
        random_state=np.random.RandomState(3),
    )
    interactions = sp.coo_matrix(train.matrix, dtype=np.float32)
    for _ in range(5):
        twin.fit_partial(interactions, user_features=user_f, epochs=1, num_threads=1)
    np.testing.assert_allclose(twin.get_user_representations(user_f)[1], rec.user_repr_, rtol=1e-6)
    # A new woman aged 39: LightFM predicts from a row [0 ... 0 | her features].
    new = f.encoder.encode([{"gender": "F", "age": 39}])
    assert new.nnz == 2
    rows = sp.vstack([user_f, sp.hstack([sp.csr_matrix((1, train.n_users)), new])]).tocsr()
    expected = twin.predict(
        np.full(train.n_items, train.n_users), np.arange(train.n_items), user_features=rows
    )
    np.testing.assert_allclose(rec.score_user_features(new)[0], expected, rtol=1e-5, atol=1e-5)
    # A subset of items, and the arrays survive save/load.
    cols = np.array([7, 2])
    loaded = LightFMRecommender.load(rec.save(tmp_path / "m"))
    np.testing.assert_allclose(loaded.score_user_features(new, cols)[0], expected[cols], rtol=1e-5)
    with pytest.raises(ValueError, match="columns"):
        rec.score_user_features(sp.csr_matrix((1, 3), dtype=np.float32))
    plain = LightFMRecommender(**params).fit(train)
    assert plain.n_user_features == 0
    with pytest.raises(ValueError, match="no user side features"):
        plain.score_user_features(new)
