"""The popularity baseline and the model registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recs_assets.core.models.base import InteractionMatrix, RecommenderError, SideInfo
from recs_assets.core.models.popularity import PopularityRecommender
from recs_assets.core.models.registry import MODEL_FACTORIES, model_factory

# 4 users x 4 items; item counts (distinct users): [3, 2, 1, 0]; user 3 saw item 1 twice (weight 2)
DENSE = np.array(
    [
        [1, 1, 0, 0],
        [1, 0, 1, 0],
        [1, 0, 0, 0],
        [0, 2, 0, 0],
    ],
    dtype=np.float32,
)
TRAIN = InteractionMatrix(
    sp.csr_matrix(DENSE), np.array(list("abcd"), dtype=object), np.array(list("wxyz"), dtype=object)
)


def test_scores_are_train_counts() -> None:
    m = PopularityRecommender().fit(TRAIN)
    np.testing.assert_array_equal(m.score(np.array([0, 3])), [[3, 2, 1, 0], [3, 2, 1, 0]])
    np.testing.assert_array_equal(m.score(np.array([1]), np.array([2, 0])), [[1, 3]])
    # summing weights instead: item 1 gets 1 + 2
    w = PopularityRecommender(use_weights=True).fit(TRAIN)
    np.testing.assert_array_equal(w.score(np.array([0]))[0], [3, 3, 1, 0])


def test_recommend_excludes_train_items() -> None:
    m = PopularityRecommender().fit(TRAIN)
    items, _ = m.recommend(np.array([0, 1]), k=2, exclude=TRAIN.matrix)
    # user 0 saw w, x -> y, z; user 1 saw w, y -> x, z
    np.testing.assert_array_equal(items, [[2, 3], [1, 3]])


def test_segment_popularity() -> None:
    # group g1 = users a, b: counts [2, 1, 1, 0]; g2 = user d: [0, 1, 0, 0]; c has no label
    side = SideInfo(user_groups={"seg": np.array(["g1", "g1", None, "g2"], dtype=object)})
    m = PopularityRecommender(segment="seg").fit(TRAIN, side)
    s = m.score(np.arange(4))
    # within g1, items x and y tie at 1: the global count (x 2 > y 1) breaks the tie
    assert list(np.argsort(-s[0], kind="stable")) == [0, 1, 2, 3]
    assert s[3].argmax() == 1  # g2's only item
    np.testing.assert_array_equal(s[2], [3, 2, 1, 0])  # unlabelled user: global counts
    with pytest.raises(RecommenderError, match="segment 'age'"):
        PopularityRecommender(segment="age").fit(TRAIN, side)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    side = SideInfo(user_groups={"seg": np.array(["g1", "g1", None, "g2"], dtype=object)})
    m = PopularityRecommender(segment="seg").fit(TRAIN, side)
    loaded = PopularityRecommender.load(m.save(tmp_path / "pop"))
    np.testing.assert_array_equal(loaded.score(np.arange(4)), m.score(np.arange(4)))
    assert loaded.params() == {"segment": "seg", "use_weights": False}


def test_bad_input() -> None:
    empty = InteractionMatrix(sp.csr_matrix((2, 2)), np.array(["a", "b"]), np.array(["x", "y"]))
    with pytest.raises(RecommenderError, match="empty"):
        PopularityRecommender().fit(empty)
    with pytest.raises(RecommenderError, match="not fitted"):
        PopularityRecommender().score(np.array([0]))
    with pytest.raises(RecommenderError, match="out of range"):
        PopularityRecommender().fit(TRAIN).score(np.array([9]))


def test_registry() -> None:
    assert MODEL_FACTORIES["popularity"] is PopularityRecommender
    assert isinstance(model_factory("popularity")(), PopularityRecommender)
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        model_factory("nope")
