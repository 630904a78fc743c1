"""NCF tuning: the study's search space (MLP layers searched as strings), the trial-only budget,
the defaults as trial 0, and the ``ncf_tuning`` -> ``ncf_model`` assets with MLflow trials."""

from pathlib import Path

import pytest
from dagster import materialize

from recs_assets.core.evaluation.protocols import Split, stratified_split, validation_split
from recs_assets.core.evaluation.tuning import (
    CODECS,
    SEARCH_SPACES,
    TUNING_BUDGET,
    decode_layers,
    default_params,
    encode_layers,
    tune,
)
from recs_assets.core.models.ncf import NCFRecommender
from recs_assets.core.models.registry import model_factory
from recs_assets.core.phase1.synthetic import SyntheticData, generate_synthetic
from recs_assets.models.family_models import build_model_asset
from recs_assets.models.mlflow_tracker import MlflowTracker
from recs_assets.models.tuning_studies import NCFTuningConfig, TuningConfig, build_tuning_asset
from tests.pipeline_fixtures import upstream_assets

# One short epoch per network keeps a trial well under a second on this data.
TINY = {"epochs": 1, "patience": 0, "refit": False}
NCF_DEFAULTS = {
    "factors": 64,
    "layers": "128-64-32",
    "learning_rate": 2e-3,
    "weight_decay": 1e-6,
    "n_negatives": 16,
}


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate_synthetic(n_users=200, n_items=100, n_interactions=6000, seed=7)


@pytest.fixture(scope="module")
def p1(data: SyntheticData) -> Split:
    return stratified_split(data.tables.interactions)


@pytest.fixture(scope="module")
def val(p1: Split) -> Split:
    return validation_split(p1)


def test_layers_are_searched_as_strings_and_decoded() -> None:
    assert encode_layers((128, 64, 32)) == "128-64-32"
    assert decode_layers("256-128-64") == (256, 128, 64)
    for choice in SEARCH_SPACES["ncf"]["layers"].choices:  # type: ignore[attr-defined]
        assert encode_layers(decode_layers(choice)) == choice
        # Every choice is a valid MLP tower: >= 2 sizes, even first size (two embeddings).
        sizes = decode_layers(choice)
        assert len(sizes) >= 2 and sizes[0] % 2 == 0


def test_the_ncf_defaults_lie_in_the_space_so_trial_0_measures_them(val: Split) -> None:
    defaults = default_params(model_factory("ncf"), SEARCH_SPACES["ncf"], CODECS["ncf"])
    assert defaults == NCF_DEFAULTS
    result = tune("ncf", val, None, n_trials=2, seed=0, budget=TINY)
    first = result.trials.iloc[0]
    assert {k: first[k] for k in NCF_DEFAULTS} == NCF_DEFAULTS
    # The best is the better of the two trials, so never below the defaults on validation.
    assert result.best_value == result.trials["value"].max() >= first["value"]


def test_budget_reaches_every_trial_but_not_the_best_parameters(val: Split) -> None:
    result = tune("ncf", val, None, n_trials=2, seed=0, budget=TINY)
    assert list(result.trials["state"]) == ["COMPLETE", "COMPLETE"]
    assert result.budget == TINY
    # The best parameters are the searched ones (decoded) plus the fixed thread count; the
    # epoch cap and the skipped refit stay in the study.
    assert set(result.best_params) == set(SEARCH_SPACES["ncf"]) | {"num_threads"}
    assert isinstance(result.best_params["layers"], tuple)
    model = NCFRecommender(**result.best_params)
    assert model.layers == result.best_params["layers"]
    assert model.config.epochs == 30 and model.refit  # the family's own values
    # The budget does reach the factory: an impossible cap fails every trial with its reason.
    with pytest.raises(ValueError, match="all 2 trials failed.*epochs must be > 0"):
        tune("ncf", val, None, n_trials=2, seed=0, budget={**TINY, "epochs": 0})
    with pytest.raises(ValueError, match="both budget and searched"):
        tune("ncf", val, None, n_trials=1, budget={"factors": 8})


def test_the_default_ncf_budget_is_small() -> None:
    assert TUNING_BUDGET["ncf"] == {"epochs": 10, "patience": 2, "refit": False}
    config = NCFTuningConfig()
    assert config.n_trials == 4 and config.max_epochs == 10
    assert NCFTuningConfig(max_epochs=3).trial_budget("ncf")["epochs"] == 3
    assert TuningConfig().trial_budget("ease") == {}
    with pytest.raises(ValueError, match="max_epochs must be >= 1"):
        NCFTuningConfig(max_epochs=0).trial_budget("ncf")


# ---- the assets ------------------------------------------------------------------------------
def test_ncf_tuning_asset_logs_trials_and_feeds_the_model_asset(
    tmp_path: Path, data: SyntheticData, p1: Split, val: Split
) -> None:
    tracker = MlflowTracker(local_root=str(tmp_path / "mlflow"))
    result = materialize(
        upstream_assets(data.tables, p1, val)
        + [build_tuning_asset("ncf"), build_model_asset("ncf", tuned=True)],
        resources={"mlflow_tracker": tracker},
        run_config={
            "ops": {
                "ncf_tuning": {"config": {"n_trials": 2, "max_epochs": 1}},
                # Cheap final fit: fewer epochs, no pre-training; the searched values still come
                # from the study because the override does not name them.
                "ncf_model": {
                    "config": {
                        "hyperparameters": {"epochs": 2, "pretrain": False},
                        "register_version": False,
                    }
                },
            }
        },
    )
    assert result.success
    tuning = result.output_for_node("ncf_tuning")
    assert len(tuning.trials) == 2 and tuning.budget["epochs"] == 1
    trained = result.output_for_node("ncf_model")
    params = trained.model.params()
    for name in ("factors", "learning_rate", "weight_decay", "n_negatives"):
        assert params[name] == pytest.approx(tuning.best_params[name])
    assert tuple(params["layers"]) == tuning.best_params["layers"]
    assert params["epochs"] == 2 and params["patience"] == 3 and params["refit"]

    (mat,) = [
        m for m in result.get_asset_materialization_events() if m.asset_key.path[0] == "ncf_tuning"
    ]
    meta = mat.materialization.metadata
    assert meta["trial_budget"].value == {"epochs": 1, "patience": 2, "refit": False}
    assert meta["best_params_json"].value["layers"] == list(tuning.best_params["layers"])

    client = tracker.client()
    exp = client.get_experiment_by_name("recs")
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "tuning"]
    assert parent.data.params["budget.epochs"] == "1"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.params["layers"] for r in children) == sorted(tuning.trials["layers"])
    assert sorted(r.data.metrics["validation_ndcg_at_10"] for r in children) == sorted(
        tuning.trials["value"]
    )
