"""Tuning: the pure Optuna study (validation NDCG, seeded, test part never read) and the
``{family}_tuning`` assets with every trial as a nested MLflow run."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from dagster import materialize
from optuna.distributions import FloatDistribution, IntDistribution

from recs_assets.core.evaluation.protocols import Split, stratified_split, validation_split
from recs_assets.core.evaluation.runner import SideTables, build_side_info, measure
from recs_assets.core.evaluation.tuning import (
    SEARCH_SPACES,
    default_params,
    skipped_result,
    tune,
    tuned_hyperparameters,
    validation_ndcg,
)
from recs_assets.core.models.base import Recommender
from recs_assets.core.models.registry import model_factory
from recs_assets.core.models.rp3beta import RP3betaRecommender
from recs_assets.core.phase1.synthetic import SyntheticData, generate_synthetic
from recs_assets.models.mlflow_tracker import MlflowTracker
from recs_assets.models.tuning_studies import TUNING_ASSETS, build_tuning_asset
from tests.pipeline_fixtures import upstream_assets


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate_synthetic(n_users=200, n_items=100, n_interactions=6000, seed=7)


@pytest.fixture(scope="module")
def p1(data: SyntheticData) -> Split:
    return stratified_split(data.tables.interactions)


@pytest.fixture(scope="module")
def val(p1: Split) -> Split:
    return validation_split(p1)


def _without_seconds(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=["seconds"])


def slow_ndcg(model: Recommender, split: Split, k: int) -> float:
    """Obvious reference: per user, sort unseen items by score, binary DCG / ideal DCG."""
    train, test = split.train.matrix, split.test.matrix
    values = []
    for u in range(train.shape[0]):
        relevant = set(test[u].indices.tolist())
        if not relevant:
            continue
        scores = model.score(np.array([u]))[0].astype(np.float64)
        seen = set(train[u].indices.tolist())
        ranked = sorted(
            (i for i in range(train.shape[1]) if i not in seen), key=lambda i: (-scores[i], i)
        )[:k]
        dcg = sum(1.0 / np.log2(r + 2) for r, i in enumerate(ranked) if i in relevant)
        idcg = sum(1.0 / np.log2(r + 2) for r in range(min(len(relevant), k)))
        values.append(dcg / idcg)
    return float(np.mean(values))


def test_validation_ndcg_matches_a_slow_loop(val: Split) -> None:
    model = RP3betaRecommender(alpha=0.8, beta=0.3, top_k=50).fit(val.train)
    assert validation_ndcg(model, val, 10) == pytest.approx(slow_ndcg(model, val, 10), abs=1e-12)


def test_study_is_seeded_and_reports_its_best_trial(val: Split) -> None:
    first = tune("ease", val, None, n_trials=6, seed=3)
    again = tune("ease", val, None, n_trials=6, seed=3)
    other = tune("ease", val, None, n_trials=6, seed=4)
    pd.testing.assert_frame_equal(_without_seconds(first.trials), _without_seconds(again.trials))
    assert not np.allclose(first.trials["lam"], other.trials["lam"])  # the seed drives TPE
    lam = first.trials["lam"].to_numpy()
    assert ((lam >= 50.0) & (lam <= 5000.0)).all()
    best_row = first.trials.loc[first.trials["value"].idxmax()]
    assert first.best_value == best_row["value"]
    assert first.best_params == {"lam": best_row["lam"]}
    assert first.best_trial == best_row["number"]
    assert list(first.trials["state"]) == ["COMPLETE"] * 6
    # Trial 0 measures the family's default (EASE lam=600), so tuning never loses to it.
    assert first.trials.loc[0, "lam"] == 600.0 == other.trials.loc[0, "lam"]
    fresh = tune("ease", val, None, n_trials=2, seed=3, start_from_defaults=False)
    assert fresh.trials.loc[0, "lam"] != 600.0


def test_defaults_are_enqueued_only_when_inside_the_space() -> None:
    factory = model_factory("lightfm")
    defaults = default_params(factory, SEARCH_SPACES["lightfm"])
    # LightFM's defaults: 128 components (on the 32-step grid), lr 0.02, 50 samples, 30 epochs.
    assert defaults == {
        "no_components": 128,
        "learning_rate": 0.02,
        "max_sampled": 50,
        "item_alpha": 1e-6,
        "user_alpha": 1e-6,
        "epochs": 30,
    }
    off_grid = {"no_components": IntDistribution(30, 130, step=20)}  # 128 is not on it
    assert default_params(factory, off_grid) == {}
    assert default_params(model_factory("ease"), {"lam": FloatDistribution(1.0, 10.0)}) == {}


def test_best_value_is_what_the_evaluation_runner_measures(data: SyntheticData, val: Split) -> None:
    # The objective must be the P1 NDCG@10 of the runner on the same (validation) split.
    result = tune("rp3beta", val, None, n_trials=4, seed=0)
    side = build_side_info(val, SideTables(users=data.tables.users, items=data.tables.items))
    model = model_factory("rp3beta")(**result.best_params).fit(val.train)
    assert measure("rp3beta", model, val, side).metrics["ndcg@10"] == pytest.approx(
        result.best_value, abs=1e-12
    )


def test_the_p1_test_part_is_never_read(p1: Split) -> None:
    # Blank out the P1 test part: the validation split, and so every trial, must not change.
    empty = p1.test.with_matrix(sp.csr_matrix(p1.test.matrix.shape, dtype=np.float32))
    blind = replace(p1, test=empty, test_frame=p1.test_frame.iloc[:0])
    a = tune("ease", validation_split(p1), None, n_trials=3, seed=1)
    b = tune("ease", validation_split(blind), None, n_trials=3, seed=1)
    pd.testing.assert_frame_equal(_without_seconds(a.trials), _without_seconds(b.trials))


def test_failed_trials_are_recorded_not_scored(val: Split) -> None:
    # lam <= 0 is rejected by EASE (RecommenderError): those trials are FAIL with no value.
    space = {"lam": FloatDistribution(-100.0, 100.0)}
    result = tune("ease", val, None, n_trials=8, seed=0, search_space=space)
    failed = result.trials[result.trials["state"] == "FAIL"]
    done = result.trials[result.trials["state"] == "COMPLETE"]
    assert len(failed) and len(done)
    assert (failed["lam"] <= 0).all() and failed["value"].isna().all()
    assert failed["error"].str.contains("lam must be > 0").all()
    assert result.best_params["lam"] > 0
    assert result.best_value == done["value"].max()


def test_bad_requests_raise_clear_errors(val: Split) -> None:
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        tune("nope", val, None, 2)
    with pytest.raises(ValueError, match="n_trials must be >= 1"):
        tune("ease", val, None, 0)
    with pytest.raises(ValueError, match="search space is empty"):
        tune("ease", val, None, 2, search_space={})
    with pytest.raises(ValueError, match=r"\['lambda'\] are not keywords"):
        tune("ease", val, None, 2, search_space={"lambda": FloatDistribution(1.0, 2.0)})
    with pytest.raises(ValueError, match="both fixed and searched"):
        tune("ease", val, None, 2, fixed={"lam": 5.0})
    with pytest.raises(ValueError, match="all 2 trials failed"):
        tune("ease", val, None, 2, search_space={"lam": FloatDistribution(-2.0, -1.0)})


def test_every_default_space_runs_for_lightfm_and_ncf(val: Split) -> None:
    lfm = tune("lightfm", val, None, n_trials=2, seed=0)
    assert set(lfm.best_params) == set(SEARCH_SPACES["lightfm"]) | {"num_threads"}
    small_ncf = {"epochs": 2, "patience": 0, "validation_fraction": 0.0, "pretrain": False}
    ncf = tune("ncf", val, None, n_trials=2, seed=0, fixed=small_ncf)
    assert set(ncf.best_params) == set(SEARCH_SPACES["ncf"]) | set(small_ncf)
    for result in (lfm, ncf):
        assert 0.0 < result.best_value <= 1.0  # type: ignore[operator]
    space = {"factors": IntDistribution(4, 8)}
    with pytest.raises(ValueError, match="ncf: parameters"):
        tune("ncf", val, None, 1, search_space=space, fixed={"factors": 4})


# ---- the assets ------------------------------------------------------------------------------
def test_tuning_assets_log_trials_to_mlflow_and_show_best_params(
    tmp_path: Path, data: SyntheticData, p1: Split, val: Split
) -> None:
    assert [a.key.path[0] for a in TUNING_ASSETS] == [
        "ease_tuning",
        "rp3beta_tuning",
        "lightfm_tuning",
        "als_tuning",
        "ncf_tuning",
    ]
    tracker = MlflowTracker(local_root=str(tmp_path / "mlflow"))
    result = materialize(
        upstream_assets(data.tables, p1, val)
        + [build_tuning_asset(f) for f in ("ease", "rp3beta")],
        resources={"mlflow_tracker": tracker},
        run_config={
            "ops": {
                "ease_tuning": {"config": {"n_trials": 3, "seed": 5}},
                "rp3beta_tuning": {"config": {"n_trials": 0}},
            }
        },
    )
    assert result.success
    ease = result.output_for_node("ease_tuning")
    assert len(ease.trials) == 3 and ease.best_value is not None
    # Same study outside Dagster: same trials (the asset adds only tracking).
    pure = tune("ease", val, None, n_trials=3, seed=5)
    pd.testing.assert_frame_equal(_without_seconds(ease.trials), _without_seconds(pure.trials))

    skipped = result.output_for_node("rp3beta_tuning")
    assert skipped.skipped and skipped.best_params == {}

    (mat,) = [
        m for m in result.get_asset_materialization_events() if m.asset_key.path[0] == "ease_tuning"
    ]
    meta = mat.materialization.metadata
    assert f"| lam | {ease.best_params['lam']!r} |" in meta["best_params"].value
    assert meta["n_trials"].value == 3

    client = tracker.client()
    exp = client.get_experiment_by_name("recs")
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "tuning"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 3
    assert sorted(r.data.metrics["validation_ndcg_at_10"] for r in children) == sorted(
        ease.trials["value"]
    )
    assert parent.data.metrics["best_validation_ndcg_at_10"] == ease.best_value
    assert parent.data.tags["dagster.run_id"] == result.run_id


def test_tuned_hyperparameters_feed_the_model_asset(val: Split) -> None:
    result = tune("ease", val, None, n_trials=2, seed=0)
    best = result.best_params["lam"]
    assert tuned_hyperparameters(result) == {"lam": best}
    # An explicit config override wins over the study; a skipped study leaves the defaults.
    assert tuned_hyperparameters(result, {"lam": 1.0, "binary": False}) == {
        "lam": 1.0,
        "binary": False,
    }
    assert tuned_hyperparameters(skipped_result("ease"), {"binary": False}) == {"binary": False}
    assert tuned_hyperparameters(None) == {}
