"""Model assets end to end in Dagster: fit, held-out metrics, MLflow run + registry, gates and the
champion alias. Upstream assets are small real ones (synthetic data, the real P1 split)."""

from pathlib import Path

import mlflow
import pytest
from dagster import AssetsDefinition, ExecuteInProcessResult, asset, materialize
from pipeline_fixtures import raw_stand_ins

from recs_assets.core.datasets.dataset import TrainingDataset
from recs_assets.core.evaluation.protocols import stratified_split, validation_split
from recs_assets.core.phase1.synthetic import SyntheticData, generate_synthetic
from recs_assets.core.serving.champion import ChampionModel
from recs_assets.models.family_models import (
    build_champion_asset,
    build_gate_check,
    build_model_asset,
    champion_passed_gates,
)
from recs_assets.models.mlflow_tracker import CHALLENGER, CHAMPION, CHAMPION_MODEL, MlflowTracker
from recs_assets.models.tuning_studies import build_tuning_asset


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate_synthetic(n_users=300, n_items=150, n_interactions=12_000, seed=7)


@pytest.fixture(scope="module")
def upstream(data: SyntheticData) -> dict[str, AssetsDefinition]:
    """``raw_users``, ``raw_items``, ``stratified_dataset`` and ``validation_dataset``: each
    dataset asset splits the synthetic interactions when it runs."""

    raw = raw_stand_ins(data.tables)

    @asset
    def stratified_dataset() -> TrainingDataset:
        split = stratified_split(data.tables.interactions)
        return TrainingDataset("stratified_dataset", split, len(split.train_frame), "", "", 0, 0)

    @asset
    def validation_dataset() -> TrainingDataset:
        split = validation_split(stratified_split(data.tables.interactions))
        return TrainingDataset("validation_dataset", split, len(split.train_frame), "", "", 0, 0)

    datasets = (stratified_dataset, validation_dataset)
    return {"raw_users": raw["raw_users"], "raw_items": raw["raw_items"]} | {
        a.key.path[0]: a for a in datasets
    }


def test_models_register_and_champion_takes_best_passing_family(
    tmp_path: Path, upstream: dict[str, AssetsDefinition]
) -> None:
    families = ("popularity", "ease")
    tracker = MlflowTracker(local_root=str(tmp_path / "mlflow"))
    result = materialize(
        [upstream["raw_users"], upstream["raw_items"], upstream["stratified_dataset"]]
        + [build_model_asset(f) for f in families]
        + [build_champion_asset(families), champion_passed_gates]
        + [build_gate_check(f) for f in families],  # the gates run as checks on the models
        resources={"mlflow_tracker": tracker},
    )
    assert result.success
    gates = {e.asset_key.path[0]: e.passed for e in result.get_asset_check_evaluations()}
    assert gates == {"popularity_model": True, "ease_model": True, "champion_model": True}

    ease = result.output_for_node("ease_model")
    pop = result.output_for_node("popularity_model")
    # Synthetic users follow hidden category tastes, so EASE must clearly beat popularity on
    # held-out data: its lift is the gate, and it is measured on the same split.
    assert ease.evaluation.metrics["ndcg@10"] > 1.1 * pop.evaluation.metrics["ndcg@10"]
    assert ease.passed_gates

    champion = result.output_for_node("champion_model")
    assert isinstance(champion, ChampionModel)
    assert champion.model.name == ease.model.name
    # The champion becomes version 1 of the one champion model, pointing at EASE's artifacts.
    assert champion.version == f"{CHAMPION_MODEL}/1"
    alias = tracker.version_by_alias(CHAMPION_MODEL, CHAMPION)
    assert alias is not None and str(alias.version) == "1"
    assert alias.tags["promoted_from"] == "recs-ease/1"
    assert alias.run_id == ease.mlflow_run_id
    assert tracker.version_by_alias("recs-popularity", CHALLENGER) is not None

    run = tracker.client().get_run(ease.mlflow_run_id)
    assert run.data.tags["dagster.run_id"] == result.run_id
    assert run.data.metrics["ndcg_at_10"] == pytest.approx(ease.evaluation.metrics["ndcg@10"])
    assert "lambda" in "".join(run.data.params) or run.data.params["family"] == "ease"

    # With popularity as the incumbent, EASE replaces it only when its gain clears the minimum
    # over the whole 95% paired-bootstrap interval.
    tracker.promote(tracker.client().get_model_version("recs-popularity", "1"))

    def rerun(min_gain: float) -> dict:
        again = materialize(
            [upstream["raw_users"], upstream["raw_items"], upstream["stratified_dataset"]]
            + [build_model_asset(f) for f in families]
            + [build_champion_asset(families)],
            resources={"mlflow_tracker": tracker},
            run_config={"ops": {"champion_model": {"config": {"min_gain": min_gain}}}},
        )
        assert again.success
        (event,) = again.asset_materializations_for_node("champion_model")
        return {k: v.value for k, v in event.metadata.items()}

    kept = rerun(min_gain=0.5)  # no NDCG@10 gain of 0.5 is possible here
    assert kept["incumbent_family"] == "popularity"
    assert kept["decision"].startswith("popularity stays: ease's gain")
    assert tracker.version_by_alias(CHAMPION_MODEL, CHAMPION).tags["family"] == "popularity"
    replaced = rerun(min_gain=0.0)
    assert replaced["decision"].startswith("ease replaces popularity")
    assert "95% interval" in replaced["decision"]
    assert tracker.version_by_alias(CHAMPION_MODEL, CHAMPION).tags["family"] == "ease"


def test_tuned_model_trains_with_the_studys_best_parameters(
    tmp_path: Path, upstream: dict[str, AssetsDefinition]
) -> None:
    tracker = MlflowTracker(local_root=str(tmp_path / "mlflow"))
    result = materialize(
        [
            upstream["raw_users"],
            upstream["raw_items"],
            upstream["stratified_dataset"],
            upstream["validation_dataset"],
        ]
        + [build_tuning_asset("ease"), build_model_asset("ease", tuned=True)],
        resources={"mlflow_tracker": tracker},
        run_config={"ops": {"ease_tuning": {"config": {"n_trials": 3}}}},
    )
    assert result.success
    tuning = result.output_for_node("ease_tuning")
    model = result.output_for_node("ease_model")
    assert len(tuning.trials) == 3
    # The study ran on the validation split only; the model asset used its winner.
    assert model.model.params()["lam"] == pytest.approx(tuning.best_params["lam"])


def with_tuned_ease(
    family: str, tmp_path: Path, upstream: dict[str, AssetsDefinition]
) -> tuple[ExecuteInProcessResult, MlflowTracker, float]:
    """Materialize ``ease_tuning`` and the composite ``family``'s model (not registered): the
    result, its tracker and the study's best ``lam``."""
    tracker = MlflowTracker(local_root=str(tmp_path / "mlflow"))
    result = materialize(
        [
            upstream["raw_users"],
            upstream["raw_items"],
            upstream["stratified_dataset"],
            upstream["validation_dataset"],
        ]
        + [build_tuning_asset("ease"), build_model_asset(family, member_tunings=("ease",))],
        resources={"mlflow_tracker": tracker},
        run_config={
            "ops": {
                "ease_tuning": {"config": {"n_trials": 2}},
                f"{family}_model": {"config": {"register_version": False}},
            }
        },
    )
    assert result.success
    return result, tracker, result.output_for_node("ease_tuning").best_params["lam"]


def test_blend_members_take_their_families_tuned_parameters(
    tmp_path: Path, upstream: dict[str, AssetsDefinition]
) -> None:
    result, _, tuned = with_tuned_ease("blend", tmp_path, upstream)
    members = {m["name"]: m["params"] for m in result.output_for_node("blend_model").model.members}
    assert members["ease"]["lam"] == pytest.approx(tuned)
    assert members["lightfm"]["hybrid_items"] is True  # the member's own parameter stays
    assert members["rp3beta"] == {}  # no study in this run: the family defaults


def test_ranker_takes_tuned_generators_and_logs_its_feature_importance(
    tmp_path: Path, upstream: dict[str, AssetsDefinition]
) -> None:
    result, tracker, tuned = with_tuned_ease("ranker", tmp_path, upstream)
    trained = result.output_for_node("ranker_model")
    generators = {g["name"]: g["params"] for g in trained.model.generators}
    assert generators["ease"]["lam"] == pytest.approx(tuned)
    assert generators["als"] == {}  # no study in this run: the family defaults

    # feature importance: a table in the asset's metadata (the UI) and the MLflow run
    importance = trained.model.feature_importance()
    assert set(importance) == set(trained.model.feature_names())
    # gains of the trees it serves: none when the prior alone beat them on the held-out users
    assert (sum(importance.values()) > 0) == (trained.model.n_trees_ > 0)
    mat = result.asset_materializations_for_node("ranker_model")[0]
    summary = mat.metadata["ranker_prior"].value
    assert summary["trees"] == trained.model.n_trees_
    assert summary["prior_weight.ease"] == trained.model.prior_weights_[0]
    table = mat.metadata["feature_importance"].value
    top = max(importance, key=importance.__getitem__)
    assert table.splitlines()[2].startswith(f"| {top} |")  # largest gain first
    run = tracker.client().get_run(trained.mlflow_run_id)
    assert run.data.metrics[f"feature_gain.{top}"] == pytest.approx(importance[top])
    assert run.data.metrics["ranker.trees"] == trained.model.n_trees_
    logged = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/feature_importance.json")
    assert logged == pytest.approx(importance)


def test_pipeline_composites_read_their_members_studies() -> None:
    """The definitions' blend and ranker take the studies of their tuned members as inputs."""
    from dagster import AssetKey

    from recs_assets.models.family_models import MODEL_ASSETS, tuned_member_families

    assert tuned_member_families("ranker") == ("ease", "als", "rp3beta", "lightfm")
    assert tuned_member_families("blend") == ("ease", "rp3beta", "lightfm")
    assert tuned_member_families("ease") == ()
    by_key = {a.key: a for a in MODEL_ASSETS}
    for family in ("ranker", "blend"):
        deps = set(by_key[AssetKey(f"{family}_model")].dependency_keys)
        assert {AssetKey(f"{m}_tuning") for m in tuned_member_families(family)} <= deps
    with pytest.raises(ValueError, match="composite families only"):
        build_model_asset("ease", member_tunings=("rp3beta",))


def test_a_family_below_its_gates_is_a_warning_that_says_it_is_not_eligible(
    tmp_path: Path, upstream: dict[str, AssetsDefinition]
) -> None:
    from dagster import AssetCheckSeverity

    tracker = MlflowTracker(local_root=str(tmp_path / "mlflow"))
    result = materialize(
        [upstream["raw_users"], upstream["raw_items"], upstream["stratified_dataset"]]
        + [build_model_asset("ease"), build_gate_check("ease")],
        resources={"mlflow_tracker": tracker},
        run_config={"ops": {"ease_model": {"config": {"min_ndcg_lift": 50.0}}}},
    )
    assert result.success  # a family missing its gates does not fail the run
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert check.description.startswith("ease: not eligible for champion on this data (")
    assert "below 50.0000" in check.description
