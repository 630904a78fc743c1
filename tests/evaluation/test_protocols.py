"""Splits: exact hand cases, train + test == input, no leakage, and the P1 reference numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from evaluation_helpers import events, ml100k_interactions
from reference_numbers import P1_POPULARITY_ML100K, assert_reference

from recs_assets.core import metrics as M
from recs_assets.core.evaluation.protocols import (
    ImplicitFeedback,
    loo_sampled,
    make_split,
    positive_interactions,
    stratified_split,
    temporal_split,
    validation_split,
)
from recs_assets.core.models.popularity import PopularityRecommender

# rows 0..7 alternate between users a and b; every row its own item
ALTERNATING = events([("a" if r % 2 == 0 else "b", f"i{r}", r, "rate", 4.0) for r in range(8)])


def test_stratified_global_shuffle_by_hand() -> None:
    # RandomState(42).permutation(8) = [1 5 0 7 2 4 3 6]. In that order a's rows are 0, 2, 4, 6
    # and b's are 1, 5, 7, 3; round(0.75 * 4) = 3 go to train, so test = rows 6 and 3.
    s = stratified_split(ALTERNATING)
    assert sorted(s.test_frame.index) == [3, 6]
    assert sorted(s.train_frame.index) == [0, 1, 2, 4, 5, 7]


def test_stratified_per_user_shuffle_by_hand() -> None:
    # RandomState(42).permutation(4) = [1 3 0 2]: a's rows [0 2 4 6] become [2 6 0 4] and b's
    # [1 3 5 7] become [3 7 1 5]; the last one of each is test.
    s = stratified_split(ALTERNATING, shuffle="per_user")
    assert sorted(s.test_frame.index) == [4, 5]


def test_stratified_keeps_every_user_with_two_rows_in_both() -> None:
    # round(0.75 * 2) = 2 would leave no test row: clamped to 1 train + 1 test; a single row
    # cannot be in both and stays in train
    df = events(
        [("a", "x", 1, "rate", 1.0), ("a", "y", 2, "rate", 1.0), ("b", "x", 3, "rate", 1.0)]
    )
    s = stratified_split(df)
    assert s.train.matrix[s.train.user_index("a")].nnz == 1
    assert s.test.matrix[s.test.user_index("a")].nnz == 1
    assert s.test.matrix[s.test.user_index("b")].nnz == 0


def test_temporal_split_by_hand() -> None:
    # timestamps 1..8, 8, 9: 20% of 10 rows = 2, the cut-off is the 9th time (8); both rows at 8
    # go to test so no instant straddles the cut. User c acts only after the cut: cold start.
    times = [1, 2, 3, 4, 5, 6, 7, 8, 8, 9]
    users = ["a", "b", "a", "b", "a", "b", "a", "b", "c", "a"]
    df = events(
        [(u, f"i{n}", t, "rate", 1.0) for n, (u, t) in enumerate(zip(users, times, strict=True))]
    )
    s = temporal_split(df)
    assert sorted(s.test_frame.index) == [7, 8, 9]
    assert list(s.user_ids[s.cold_users]) == ["c"]
    assert s.train_frame["timestamp"].max() < s.test_frame["timestamp"].min()


def test_loo_sampled_by_hand() -> None:
    df = events(
        [
            ("a", "x", 1, "rate", 1.0),
            ("a", "z", 3, "rate", 1.0),
            ("a", "y", 2, "rate", 1.0),
            ("b", "x", 5, "rate", 1.0),
            ("b", "w", 5, "rate", 1.0),  # same second as x: the later row is the latest
            ("c", "v", 1, "rate", 1.0),  # a single row stays in train
        ]
    )
    s = loo_sampled(df, n_negatives=2)
    assert sorted(s.test_frame.index) == [1, 4]
    items = s.item_ids
    cand = s.candidates
    a, b, c = (s.train.user_index(u) for u in "abc")
    assert items[cand[a, 0]] == "z" and items[cand[b, 0]] == "w"
    assert (cand[c] == -1).all()
    # a saw x, y, z: its two negatives are exactly the unseen v and w
    assert sorted(items[cand[a, 1:]]) == ["v", "w"]
    assert set(items[cand[b, 1:]]) <= {"v", "y", "z"}
    with pytest.raises(ValueError, match="fewer than 3 items"):
        loo_sampled(df, n_negatives=3)


def test_feedback_rule() -> None:
    df = events(
        [
            ("a", "x", 2, "view", None),
            ("a", "x", 1, "purchase", 5.0),  # earlier event of the same pair: the one kept
            ("a", "y", 3, "view", None),
            ("b", "y", 4, "purchase", 2.0),
        ]
    )
    everything = positive_interactions(df, ImplicitFeedback())
    assert list(everything.index) == [1, 2, 3]
    purchases = positive_interactions(
        df, ImplicitFeedback(positive_events=("purchase",), weight="rating")
    )
    assert list(purchases.index) == [1, 3]
    assert list(purchases["weight"]) == [5.0, 2.0]
    with pytest.raises(ValueError, match="2 positive rows have no rating"):
        positive_interactions(df, ImplicitFeedback(weight="rating"))
    with pytest.raises(ValueError, match="no positive interactions"):
        positive_interactions(df, ImplicitFeedback(positive_events=("click",)))
    with pytest.raises(ValueError, match="lacks column"):
        positive_interactions(df.drop(columns=["timestamp"]), ImplicitFeedback())
    # id maps cover every user and item of the input, also those without any positive
    s = stratified_split(df, feedback=ImplicitFeedback(positive_events=("purchase",)))
    assert list(s.item_ids) == ["x", "y"] and list(s.user_ids) == ["a", "b"]


def test_unknown_protocol() -> None:
    with pytest.raises(ValueError, match="unknown protocol 'random'"):
        make_split("random", ALTERNATING)


# ---- MovieLens 100K ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ml(ml100k_dir: Path) -> pd.DataFrame:
    return ml100k_interactions(ml100k_dir)


def _pairs(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["user_id"], frame["item_id"], strict=True))


@pytest.mark.parametrize("protocol", ["stratified", "temporal", "loo-sampled"])
def test_train_plus_test_is_input_without_leakage(ml: pd.DataFrame, protocol: str) -> None:
    s = make_split(protocol, ml)
    idx = np.concatenate([s.train_frame.index, s.test_frame.index])
    assert len(idx) == len(ml) and set(idx) == set(ml.index)
    assert not _pairs(s.train_frame) & _pairs(s.test_frame)
    assert s.train.nnz + s.test.nnz == len(ml)
    assert s.train.n_users == 943 and s.train.n_items == 1682
    assert (s.train.user_ids == s.test.user_ids).all()


def test_stratified_on_ml100k(ml: pd.DataFrame) -> None:
    s = stratified_split(ml)
    per_user = ml.groupby("user_id").size()
    assert (np.diff(s.train.matrix.indptr) > 0).all() and (np.diff(s.test.matrix.indptr) > 0).all()
    # each user's train part is round(0.75 n) (every user has >= 20 ratings, no clamping)
    expected = {u: round(0.75 * n) for u, n in per_user.items()}
    got = s.train_frame.groupby("user_id").size().to_dict()
    assert got == expected
    assert s.train.nnz == sum(expected.values())
    assert stratified_split(ml).test_frame.index.equals(s.test_frame.index)  # deterministic


def test_popularity_reproduces_the_p1_reference(ml: pd.DataFrame) -> None:
    s = stratified_split(ml)
    model = PopularityRecommender().fit(s.train)
    top, _ = model.recommend(np.arange(s.train.n_users), 10, exclude=s.train.matrix)
    v = M.summarize(top, s.test.matrix, s.train.matrix, k=10).values
    assert_reference(v, P1_POPULARITY_ML100K)


def test_temporal_on_ml100k(ml: pd.DataFrame) -> None:
    s = temporal_split(ml)
    assert s.train_frame["timestamp"].max() < s.test_frame["timestamp"].min()
    assert s.test.nnz >= round(0.2 * len(ml))
    has_train = np.diff(s.train.matrix.indptr) > 0
    has_test = np.diff(s.test.matrix.indptr) > 0
    assert list(s.cold_users) == list(np.flatnonzero(has_test & ~has_train))
    assert len(s.cold_users) > 0


def test_loo_sampled_on_ml100k(ml: pd.DataFrame) -> None:
    s = loo_sampled(ml)
    assert s.test.nnz == 943 and s.candidates is not None and s.candidates.shape == (943, 101)
    latest = ml.assign(t=ml["timestamp"]).groupby("user_id")["t"].max()
    test_t = s.test_frame.set_index("user_id")["timestamp"]
    assert (test_t.sort_index() == latest.sort_index()).all()
    seen = s.train.matrix + s.test.matrix
    rows = np.repeat(np.arange(943), 100)
    assert seen[rows, s.candidates[:, 1:].ravel()].sum() == 0  # negatives never interacted
    assert all(len(set(r)) == 101 for r in s.candidates)
    assert (loo_sampled(ml).candidates == s.candidates).all()  # seeded


@pytest.mark.parametrize("protocol", ["stratified", "temporal"])
def test_validation_split_comes_from_train_only(ml: pd.DataFrame, protocol: str) -> None:
    s = make_split(protocol, ml)
    v = validation_split(s)
    assert (v.user_ids == s.user_ids).all() and (v.item_ids == s.item_ids).all()
    assert set(v.train_frame.index) | set(v.test_frame.index) == set(s.train_frame.index)
    assert not set(v.test_frame.index) & set(s.test_frame.index)
    assert v.protocol == protocol
