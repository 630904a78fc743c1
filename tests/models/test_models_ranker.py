"""The two-stage ranker on timestamped data: the day matrix it reads, its time features, its
feature importance, and a save/load round trip of the whole context."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recs_assets.core.evaluation.protocols import stratified_split
from recs_assets.core.evaluation.runner import (
    SideTables,
    build_side_info,
    interaction_days,
    interaction_ratings,
)
from recs_assets.core.metrics import ndcg_at_k
from recs_assets.core.models._helpers import fold_splits
from recs_assets.core.models.attributes import Attributes, attributes
from recs_assets.core.models.base import InteractionMatrix, RecommenderError, SideInfo
from recs_assets.core.models.popularity import RecentPopularityRecommender
from recs_assets.core.models.ranker import (
    RankerRecommender,
    fit_prior_weights,
    group_ndcg,
    newest_split,
    rating_stats,
    surely_better,
    validation_groups,
)
from recs_assets.core.phase1.synthetic import generate_synthetic

SMALL = {
    "generators": [{"name": "ease", "params": {"lam": 50.0}}, {"name": "als", "params": {}}],
    "n_candidates": 30,
    "n_estimators": 20,
    "num_threads": 1,
}


@pytest.fixture(scope="module")
def split_and_side():
    data = generate_synthetic(n_users=150, n_items=100, n_interactions=5_000, seed=3)
    split = stratified_split(data.tables.interactions)
    return split, build_side_info(split, SideTables(items=data.tables.items))


def test_interaction_days_hold_the_newest_day_of_each_training_pair(split_and_side) -> None:
    split, side = split_and_side
    days = interaction_days(split)
    assert days is not None and days.shape == split.train.matrix.shape
    assert days.nnz == split.train.nnz  # one day per training pair, nothing else
    row = split.train_frame.iloc[0]
    u = list(split.user_ids).index(str(row["user_id"]))
    i = list(split.item_ids).index(str(row["item_id"]))
    same = split.train_frame[
        (split.train_frame["user_id"] == row["user_id"])
        & (split.train_frame["item_id"] == row["item_id"])
    ]
    newest = pd.to_datetime(same["timestamp"], utc=True).max()
    expected = (newest - pd.Timestamp(0, tz="UTC")).total_seconds() / 86400
    assert days[u, i] == pytest.approx(expected)
    assert side.interaction_days is not None


def test_ranker_uses_time_features_and_round_trips(split_and_side, tmp_path: Path) -> None:
    split, side = split_and_side
    model = RankerRecommender(**SMALL).fit(split.train, side)
    ctx = model.context_
    assert ctx is not None and ctx.item_day_cum is not None and ctx.user_category_share is not None
    importance = model.feature_importance()
    assert set(importance) == set(model.feature_names())
    # trees on their own (no prior) learn from the features
    no_prior = RankerRecommender(**SMALL, prior="none").fit(split.train, side)
    assert no_prior.n_trees_ >= 1 and sum(no_prior.feature_importance().values()) > 0
    users = np.arange(split.train.n_users)
    scores = model.score(users)
    # candidates (seen items left out) rank above every other item
    top = np.argsort(-scores, axis=1)[:, :10]
    seen = np.asarray(split.train.matrix[users[:, None], top].todense())
    assert not seen.any()
    loaded = RankerRecommender.load(model.save(tmp_path / "ranker"))
    np.testing.assert_array_equal(loaded.score(users), scores)
    # one request's candidates are predicted on one thread: the scores of a block (up to the
    # rounding of the generators' matrix products for one row vs many)
    assert loaded._predict_threads(30) == 1
    np.testing.assert_allclose(loaded.score(users[:1]), scores[:1], rtol=1e-9, atol=1e-6)


def test_folds_hold_every_interaction_out_once_and_keep_lone_ones() -> None:
    rng = np.random.default_rng(0)
    dense = (rng.random((40, 30)) < 0.2).astype(np.float32)
    dense[0] = 0.0
    dense[0, 5] = 1.0  # a user with one interaction
    dense[1] = 0.0
    dense[1, [2, 7]] = 1.0  # fewer interactions than folds
    matrix = sp.csr_matrix(dense)
    folds = fold_splits(matrix, 3, seed=1)
    assert len(folds) == 3
    held_total = sp.csr_matrix(matrix.shape, dtype=np.float32)
    for kept, held in folds:
        np.testing.assert_array_equal((kept + held).toarray(), dense)
        assert not kept.multiply(held).nnz  # no overlap
        # everyone with an interaction keeps at least one
        assert (np.diff(kept.indptr) > 0).sum() == (dense.sum(axis=1) > 0).sum()
        held_total = held_total + held
    once = dense.copy()
    once[0, 5] = 0.0  # the lone interaction is never held out
    np.testing.assert_array_equal(held_total.toarray(), once)


def test_out_of_fold_training_fits_scores_and_validates(split_and_side) -> None:
    split, side = split_and_side
    one = RankerRecommender(**SMALL, prior="none", n_folds=1).fit(split.train, side)
    three = RankerRecommender(**SMALL, prior="none").fit(split.train, side)
    assert three.params()["n_folds"] == 3  # the default
    for model in (one, three):  # early stopping keeps the best iteration, within the budget
        assert 1 <= model.n_trees_ <= SMALL["n_estimators"]
    scores = three.score(np.arange(5))
    assert np.isfinite(scores).all()
    assert not np.array_equal(scores, one.score(np.arange(5)))  # other labels, other trees
    with pytest.raises(RecommenderError, match="n_folds"):
        RankerRecommender(n_folds=0)


def test_group_ndcg_is_the_metric_of_the_candidates() -> None:
    rng = np.random.default_rng(4)
    scores = rng.normal(size=(6, 25))
    labels = rng.random((6, 25)) < 0.2
    labels[0] = False  # a group without a positive is left out, like a user without test items
    top = np.argsort(-scores, axis=1)[:, :10]
    assert group_ndcg(scores, labels) == pytest.approx(ndcg_at_k(top, sp.csr_matrix(labels)))


def test_prior_weights_leave_out_a_generator_that_carries_nothing() -> None:
    rng = np.random.default_rng(5)
    labels = rng.random((300, 40)) < 0.1
    informative = labels + rng.normal(scale=0.8, size=labels.shape)
    noise = rng.normal(size=labels.shape)
    weights = fit_prior_weights(np.stack([noise, informative], axis=2), labels)
    assert weights[0] == 0.0 and weights[1] > 0.0
    assert group_ndcg(informative, labels) > group_ndcg(informative + noise, labels)


def test_ranker_serves_trees_only_when_they_beat_its_prior(split_and_side) -> None:
    split, side = split_and_side
    model = RankerRecommender(**SMALL).fit(split.train, side)
    summary = model.summary()
    assert set(summary) >= {"prior_weight.ease", "prior_weight.als", "trees"}
    assert (model.prior_weights_ >= 0).all() and model.prior_weights_.any()
    if model.n_trees_:
        assert model.ranker_ndcg_ > model.prior_ndcg_
    else:
        assert not any(model.feature_importance().values())
    with pytest.raises(RecommenderError, match="prior"):
        RankerRecommender(prior="learned")


def test_a_ranker_saved_before_the_prior_loads_and_serves_all_its_trees(
    split_and_side, tmp_path: Path
) -> None:
    """Registry versions saved by the previous ranker (no prior in their state) still load, so a
    rollback to one of them works."""
    split, side = split_and_side
    model = RankerRecommender(**SMALL, prior="none").fit(split.train, side)
    model.n_trees_ = model.booster_.num_trees()  # what the previous ranker served: every tree
    folder = model.save(tmp_path / "ranker")
    state_file = next(Path(folder).glob("*.npz"))
    state = dict(np.load(state_file))
    for key in ("prior_weights", "n_trees", "held_out_ndcg"):
        del state[key]
    np.savez(state_file, **state)
    legacy = RankerRecommender.load(folder)
    assert legacy.n_trees_ == model.n_trees_ and not legacy.prior_weights_.any()
    users = np.arange(20)
    np.testing.assert_allclose(legacy.score(users), model.score(users))


def test_validation_groups_hold_whole_users_and_never_all_of_them() -> None:
    group_users = np.repeat(np.arange(10), 3)  # three folds: a group per user and fold
    val, fit = validation_groups(group_users, 0.2, seed=1)
    assert set(group_users[val]).isdisjoint(group_users[fit])
    assert len(set(group_users[val])) == 2 and len(val) + len(fit) == 30
    for fraction in (0.001, 0.999):  # at least one user on each side
        val, fit = validation_groups(group_users, fraction, seed=1)
        assert len(val) and len(fit)
    with pytest.raises(ValueError, match="2 or more"):
        validation_groups(np.zeros(4, dtype=int), 0.2, seed=1)


def test_seen_candidates_do_not_steer_the_prior() -> None:
    """A generator that scores the user's seen items highest is not penalized for it: serving
    never ranks seen items."""
    rng = np.random.default_rng(6)
    labels = rng.random((200, 30)) < 0.15
    seen = ~labels & (rng.random((200, 30)) < 0.3)
    good = labels + rng.normal(scale=0.5, size=labels.shape)
    seen_first = good + 5.0 * seen  # the same order among unseen items, seen ones on top
    zs = np.stack([seen_first, rng.normal(size=labels.shape)], axis=2)
    assert fit_prior_weights(zs, labels)[0] < fit_prior_weights(zs, labels, exclude=seen)[0]
    assert fit_prior_weights(zs, labels, exclude=seen)[1] == 0.0


def test_trees_are_kept_only_on_a_sure_gain() -> None:
    rng = np.random.default_rng(7)
    base = rng.random(300)
    assert surely_better(base + 0.05 + rng.normal(scale=0.05, size=300), base)
    assert not surely_better(base + rng.normal(scale=0.05, size=300), base + 0.001)
    assert not surely_better(np.array([1.0]), np.array([0.0]))  # one group proves nothing


def test_without_item_categories_the_ranker_fits_lightfm_as_pure_cf(split_and_side) -> None:
    split, _ = split_and_side
    model = RankerRecommender(
        generators=[
            {"name": "ease", "params": {"lam": 50.0}},
            {"name": "lightfm", "params": {"hybrid_items": True, "epochs": 2}},
        ],
        n_candidates=30,
        n_estimators=5,
    ).fit(split.train)  # no side information at all
    # the fitted member is pure CF; the request (params) stays as asked, so a refit with
    # categories gets the hybrid
    assert model.generators_[1]["params"]["hybrid_items"] is False
    assert model.params()["generators"][1]["params"]["hybrid_items"] is True
    assert np.isfinite(model.score(np.arange(3))).all()


def test_without_item_categories_the_blend_fits_lightfm_as_pure_cf(split_and_side) -> None:
    from recs_assets.core.models.ensemble import BlendRecommender

    split, _ = split_and_side
    blend = BlendRecommender(
        members=[
            {"name": "ease", "params": {"lam": 50.0}},
            {"name": "lightfm", "params": {"hybrid_items": True, "epochs": 2}},
        ]
    ).fit(split.train)
    assert blend.params()["members"][1]["params"]["hybrid_items"] is False
    assert np.isfinite(blend.score(np.arange(3))).all()


def test_attributes_are_one_column_per_attribute() -> None:
    frame = pd.DataFrame(
        {
            "user_id": ["a", "b", "c", "c"],
            "age": [30, None, 50, 99],  # the later duplicate of c is ignored
            "gender": ["F", "M", "F", "M"],  # text: rank by frequency, F (2) before M (1)
            "signup_time": pd.to_datetime(["1970-01-02", "1970-01-03", None, None], utc=True),
            "categories": ["x|y", "x", None, None],  # -> category_count
            "constant": [1.0, 1.0, 1.0, 1.0],  # carries nothing: dropped
            "empty": [None, None, None, None],  # carries nothing: dropped
            "title": ["t1", "t2", "t3", "t4"],  # never an attribute
        }
    )
    attrs = attributes(frame, "user_id", ["c", "a", "b", "zz"])
    assert attrs.names == ("age", "gender", "signup_time", "category_count")
    expected = np.array(
        [
            [50.0, 0.0, np.nan, np.nan],
            [30.0, 0.0, 1.0, 2.0],
            [np.nan, 1.0, 2.0, 1.0],
            [np.nan] * 4,  # an id the table does not know
        ]
    )
    np.testing.assert_array_equal(attrs.values, expected)
    # constant over the ids asked for: gender (F, F) and signup_time (one known) carry nothing
    assert attributes(frame, "user_id", ["c", "a"]).names == ("age",)
    assert attributes(frame, "user_id", ["a", "c"], columns={"age"}).names == ("age",)
    with pytest.raises(ValueError, match="lacks its key"):
        attributes(frame, "item_id", ["a"])


def test_ranker_trees_read_user_and_item_attributes(tmp_path: Path) -> None:
    data = generate_synthetic(n_users=150, n_items=100, n_interactions=5_000, seed=3)
    split = stratified_split(data.tables.interactions)
    side = build_side_info(split, SideTables(users=data.tables.users, items=data.tables.items))
    assert side.user_attributes is not None and side.item_attributes is not None
    assert "quality" in side.item_attributes.names and "age" in side.user_attributes.names
    model = RankerRecommender(**SMALL, prior="none").fit(split.train, side)
    names = model.feature_names()
    assert {"user.age", "item.quality"} <= set(names)
    assert set(model.feature_importance()) == set(names)
    assert sum(g for n, g in model.feature_importance().items() if "." in n) > 0
    users = np.arange(split.train.n_users)
    loaded = RankerRecommender.load(model.save(tmp_path / "ranker"))
    assert loaded.feature_names() == names
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    # switched off, or absent from the side: the trees read no attribute
    off = RankerRecommender(**SMALL, prior="none", attributes=False).fit(split.train, side)
    assert not any("." in n for n in off.feature_names())
    bare = build_side_info(split, SideTables(items=data.tables.items))
    assert not [
        n
        for n in RankerRecommender(**SMALL).fit(split.train, bare).feature_names()
        if n.startswith("user.")
    ]
    # attributes of another id map are refused, not silently misaligned
    wrong = replace(side, user_attributes=Attributes(np.zeros((3, 1)), ("age",)))
    with pytest.raises(RecommenderError, match="3 user attribute rows"):
        RankerRecommender(**SMALL).fit(split.train, wrong)


def test_recent_popularity_weighs_interactions_by_their_age(tmp_path: Path) -> None:
    # item 0: three old interactions; item 1: one on the newest day; item 2: none
    m = sp.csr_matrix(np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0]], dtype=np.float32))
    days = sp.csr_matrix(np.array([[10.0, 0, 0], [10.0, 0, 0], [10.0, 24.0, 0]]))
    train = InteractionMatrix(m, np.array(["a", "b", "c"]), np.array(["x", "y", "z"]))
    model = RecentPopularityRecommender(half_life_days=7.0).fit(
        train, SideInfo(interaction_days=days)
    )
    assert model.has_days_
    # 14 days old is two half-lives: each old interaction weighs 1/4
    np.testing.assert_allclose(model.score(np.array([0]))[0], np.log1p([0.75, 1.0, 0.0]))
    # without days: all-time counts
    loaded = RecentPopularityRecommender.load(model.save(tmp_path / "recent"))
    np.testing.assert_array_equal(loaded.score(np.array([2])), model.score(np.array([2])))
    counts = RecentPopularityRecommender().fit(train)
    assert not counts.has_days_
    np.testing.assert_allclose(counts.score(np.array([1]))[0], np.log1p([3.0, 1.0, 0.0]))
    with pytest.raises(RecommenderError, match="half_life_days"):
        RecentPopularityRecommender(half_life_days=0)


def test_ranker_learns_from_the_newest_interactions_with_a_recency_generator(
    split_and_side, tmp_path: Path
) -> None:
    split, side = split_and_side
    generators = [*SMALL["generators"], {"name": "recent_popularity", "params": {}}]
    model = RankerRecommender(**{**SMALL, "generators": generators}, holdout="newest")
    model.fit(split.train, side)
    assert model.params()["holdout"] == "newest"
    assert {"recent_popularity_z", "recent_popularity_rank"} <= set(model.feature_names())
    recency = model.models_[-1]
    assert isinstance(recency, RecentPopularityRecommender) and recency.has_days_
    users = np.arange(split.train.n_users)
    loaded = RankerRecommender.load(model.save(tmp_path / "ranker"))
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    with pytest.raises(RecommenderError, match="holdout must be one of"):
        RankerRecommender(holdout="oldest")


def test_newest_holdout_cuts_every_user_at_one_day() -> None:
    rng = np.random.default_rng(0)
    dense = (rng.random((30, 20)) < 0.4).astype(np.float32)
    m = sp.csr_matrix(dense)
    days = m.copy()
    days.data = rng.integers(1, 100, m.nnz).astype(np.float64)
    kept, held = newest_split(m, days, 0.2)
    assert kept.nnz + held.nnz == m.nnz and kept.multiply(held).nnz == 0
    held_days = days.multiply(held > 0).tocsr().data
    kept_days = days.multiply(kept > 0).tocsr().data
    assert held_days.min() > kept_days.max()  # one cut in time for everyone
    assert 0.15 < held.nnz / m.nnz < 0.25  # about the fraction (days tie at the cut)


def test_two_generators_of_one_family_keep_their_own_features(split_and_side) -> None:
    split, side = split_and_side
    generators = [*SMALL["generators"], {"name": "als", "params": {"factors": 8, "seed": 3}}]
    model = RankerRecommender(**{**SMALL, "generators": generators}).fit(split.train, side)
    assert model.generator_labels() == ["ease", "als", "als_2"]
    assert {"als_z", "als_2_z"} <= set(model.feature_names())
    assert {"prior_weight.als", "prior_weight.als_2"} <= set(model.summary())


def test_dynamic_attributes_are_kept_only_when_they_predate_the_labels(split_and_side) -> None:
    split, side = split_and_side
    days = side.interaction_days
    n = split.train.n_users
    values = np.stack([np.arange(n, dtype=np.float64), np.arange(n) % 7.0], axis=1)

    def fitted(as_of_day: float) -> RankerRecommender:
        users = Attributes(values, ("age", "events_all"), (False, True), as_of_day)
        model = RankerRecommender(**SMALL)
        return model.fit(split.train, replace(side, user_attributes=users))

    # computed before every interaction: the counts cannot hold the ranker's labels
    before = fitted(float(days.data.min()) - 1.0)
    assert {"user.age", "user.events_all"} <= set(before.feature_names())
    # computed at the end of the data: they count the held-out labels, so they are left out
    after = fitted(float(days.data.max()))
    assert "user.age" in after.feature_names()
    assert "user.events_all" not in after.feature_names()
    # labels of unknown days: static columns only
    no_days = replace(side, interaction_days=None)
    users = Attributes(values, ("age", "events_all"), (False, True), 0.0)
    unknown = RankerRecommender(**SMALL).fit(split.train, replace(no_days, user_attributes=users))
    assert "user.events_all" not in unknown.feature_names()


def test_attributes_mark_dynamic_columns_and_count_categories() -> None:
    frame = pd.DataFrame(
        {
            "item_id": ["a", "b", "c"],
            "categories": ["x|y", "x", "z|y|w"],
            "price": [1.0, 2.0, 3.0],
            "events_all": [5, 0, 2],
        }
    )
    attrs = attributes(
        frame, "item_id", ["a", "b", "c"], static={"categories", "price"}, as_of_day=9.0
    )
    assert attrs.names == ("category_count", "price", "events_all")
    assert attrs.dynamic == (False, False, True) and attrs.as_of_day == 9.0
    assert attrs.usable_before(10.0) is attrs
    early = attrs.usable_before(9.0)  # computed on the day the labels start: they count
    assert early.names == ("category_count", "price") and early.as_of_day is None
    # a table with its own count: the categories are counted only when the count is not read
    counted = frame.assign(category_count=[9, 9, 1])
    only_categories = attributes(counted, "item_id", ["a", "b", "c"], columns={"categories"})
    assert only_categories.names == ("category_count",)
    np.testing.assert_array_equal(only_categories.values[:, 0], [2.0, 1.0, 3.0])
    own = attributes(counted, "item_id", ["a", "b", "c"])
    assert own.names.count("category_count") == 1
    np.testing.assert_array_equal(own.values[:, own.names.index("category_count")], [9, 9, 1])
    with pytest.raises(ValueError, match="as_of_day"):
        attributes(frame, "item_id", ["a", "b"], static={"price"})


def test_newest_holdout_needs_days_and_one_cut(split_and_side) -> None:
    split, side = split_and_side
    with pytest.raises(RecommenderError, match="needs the days"):
        RankerRecommender(**SMALL, holdout="newest").fit(
            split.train, replace(side, interaction_days=None)
        )
    # the newest holdout is one cut in time, whatever n_folds says
    newest = RankerRecommender(**SMALL, holdout="newest", n_folds=3)
    newest._resolve_task(side)
    assert len(newest._folds(split.train.matrix, side)) == 1
    # half the interactions on the newest day: that day is held out
    m = sp.csr_matrix(np.ones((4, 5), dtype=np.float32))
    days = m.copy()
    days.data = np.array([1.0] * 10 + [2.0] * 10)
    kept, held = newest_split(m, days, 0.2)
    assert held.nnz == 10 and kept.nnz == 10
    days.data[:] = 3.0
    with pytest.raises(RecommenderError, match="one day"):
        newest_split(m, days, 0.2)


def test_a_split_in_time_makes_the_ranker_learn_what_comes_next(
    split_and_side, tmp_path: Path
) -> None:
    """``auto``: trained on a temporal split the ranker holds out the newest interactions, takes
    each generator's own picks as candidates and adds a recency generator to the defaults; on a
    random split it keeps the random holdout and the blend's candidates."""
    split, side = split_and_side
    small = {k: v for k, v in SMALL.items() if k != "generators"}
    temporal, stratified = replace(side, split="temporal"), replace(side, split="stratified")
    in_time = RankerRecommender(**small).fit(split.train, temporal)
    assert (in_time.holdout_, in_time.candidates_) == ("newest", "union")
    assert [g["name"] for g in in_time.generators_][-1] == "recent_popularity"
    assert "recent_popularity_z" in in_time.feature_names()
    at_random = RankerRecommender(**small).fit(split.train, stratified)
    assert (at_random.holdout_, at_random.candidates_) == ("random", "sum")
    assert "recent_popularity" not in [g["name"] for g in at_random.generators_]
    # the request is kept: a refit from params() (the evaluation report refits each family
    # on the other protocol's split) or a second fit on other data resolves anew
    assert at_random.params()["holdout"] == "auto" and at_random.params()["candidates"] == "auto"
    refit = RankerRecommender(**at_random.params()).fit(split.train, temporal)
    assert (refit.holdout_, refit.candidates_) == ("newest", "union")
    assert [g["name"] for g in refit.generators_][-1] == "recent_popularity"
    in_time.fit(split.train, stratified)
    assert (in_time.holdout_, in_time.candidates_) == ("random", "sum")
    assert "recent_popularity" not in [g["name"] for g in in_time.generators_]
    in_time.fit(split.train, temporal)
    # without the days a split in time cannot be cut: the random holdout, no error
    no_days = replace(side, split="temporal", interaction_days=None)
    assert RankerRecommender(**small).fit(split.train, no_days).holdout_ == "random"
    # named generators are kept as they are; an explicit holdout is not overridden
    named = RankerRecommender(**SMALL).fit(split.train, temporal)
    assert [g["name"] for g in named.generators_] == ["ease", "als"]
    kept = RankerRecommender(**SMALL, holdout="random").fit(split.train, temporal)
    assert (kept.holdout_, kept.candidates_) == ("random", "sum")
    # the resolved choices are saved: a loaded ranker scores the same
    users = np.arange(split.train.n_users)
    loaded = RankerRecommender.load(in_time.save(tmp_path / "ranker"))
    assert (loaded.candidates_, loaded.generators_) == ("union", in_time.generators_)
    np.testing.assert_array_equal(loaded.score(users), in_time.score(users))
    with pytest.raises(RecommenderError, match="candidates must be one of"):
        RankerRecommender(candidates="all")


def test_union_candidates_hold_each_generators_best_items(split_and_side) -> None:
    """Each generator's top unseen items are candidates whatever the others say."""
    split, side = split_and_side
    model = RankerRecommender(**SMALL, candidates="union").fit(split.train, side)
    users = np.arange(20)
    cand, _, zs, _ = model._candidates(model.models_, model.train_, users)
    seen = np.asarray(model.train_[users].todense()) > 0
    share = model.n_candidates // len(zs)
    for z in zs:
        best = np.argsort(-np.where(seen, -np.inf, z), axis=1)[:, :share]
        for u in range(len(users)):
            assert set(best[u]) <= set(cand[u])
    assert not np.take_along_axis(seen, cand, axis=1).any()


def test_rating_stats_read_only_the_masked_ratings_and_keep_a_zero_rating() -> None:
    # 3 users x 3 items; user 2 rated nothing; a 0 on a 0-10 scale is a rating, not a gap
    ratings = sp.csr_matrix(
        (np.array([4.0, 2.0, 0.0, 5.0]), (np.array([0, 0, 1, 1]), np.array([0, 1, 0, 2]))),
        shape=(3, 3),
    )
    mask = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=np.float32))
    item, user = rating_stats(ratings, mask, shrink=1.0)  # (1, 2) of user 1 is masked out
    np.testing.assert_allclose(user[0], [3.0, 1.0])
    np.testing.assert_allclose(user[1], [0.0, 0.0])
    assert np.isnan(user[2]).all()
    overall = (4.0 + 2.0 + 0.0) / 3
    np.testing.assert_allclose(
        item[:, 0], [(4.0 + 0.0 + overall) / 3, (2.0 + overall) / 2, overall]
    )
    # centered: user 0 rated item 0 one above their mean, user 1 rated it at their mean
    np.testing.assert_allclose(item[:, 1], [(1.0 + 0.0) / 3, -1.0 / 2, 0.0])


def test_interaction_ratings_hold_the_mean_rating_of_each_rated_training_pair() -> None:
    frame = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "b", "b", "c"],
            "item_id": ["x", "x", "y", "x", "z", "y"],
            "rating": [4.0, 5.0, None, 0.5, 3.0, None],
            "timestamp": pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC"),
        }
    )
    split = stratified_split(frame, ratio=0.99)
    ratings = interaction_ratings(split)
    assert ratings is not None and ratings.shape == split.train.matrix.shape
    at = {
        (split.user_ids[r], split.item_ids[c]): v for r, c, v in zip(*sp.find(ratings), strict=True)
    }
    kept = {
        (str(u), str(i))
        for u, i in zip(split.train_frame["user_id"], split.train_frame["item_id"], strict=True)
    }
    expected = {("a", "x"): 4.5, ("b", "x"): 0.5, ("b", "z"): 3.0}
    assert at == {k: v for k, v in expected.items() if k in kept}
    assert (
        interaction_ratings(replace(split, train_frame=split.train_frame.drop(columns="rating")))
        is None
    )


def test_ranker_reads_rating_statistics_and_loads_a_model_saved_without_them(
    split_and_side, tmp_path: Path
) -> None:
    split, side = split_and_side
    rng = np.random.default_rng(0)
    rated = sp.csr_matrix(split.train.matrix, dtype=np.float64, copy=True)
    rated.data = rng.integers(1, 11, rated.nnz).astype(np.float64)  # a 1-10 scale
    with_ratings = replace(side, interaction_ratings=rated)
    model = RankerRecommender(**SMALL, prior="none").fit(split.train, with_ratings)
    assert model.context_ is not None and model.context_.item_rating is not None
    assert {"item_rating_mean", "user_rating_std"} <= set(model.feature_importance())
    users = np.arange(30)
    loaded = RankerRecommender.load(model.save(tmp_path / "rated"))
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    # a version saved before the rating columns existed: its trees read none, and it still serves
    before = RankerRecommender(**SMALL, ratings=False).fit(split.train, with_ratings)
    assert not set(before.feature_names()) & {"item_rating_mean", "user_rating_mean"}
    folder = before.save(tmp_path / "before")
    state_file = next(Path(folder).glob("*.npz"))
    state = dict(np.load(state_file))
    del state["rating_features"]
    np.savez(state_file, **state)
    meta_file = Path(folder) / "params.json"
    meta = json.loads(meta_file.read_text())
    del meta["params"]["ratings"]
    meta_file.write_text(json.dumps(meta))
    legacy = RankerRecommender.load(folder)
    assert not legacy.rating_features_
    np.testing.assert_allclose(legacy.score(users), before.score(users))
