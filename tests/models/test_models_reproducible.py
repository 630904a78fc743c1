"""Reproducible training: with fixed seeds and one thread, two trainings of a family give
identical held-out metrics (the path of the model assets: ``fit_model`` + ``held_out_evaluation``).

``test_models_contract.py`` already checks identical *scores* for LightFM, NeuMF and the blend on
block data; this adds EASE and RP3beta and checks every metric the assets report, on synthetic
users with a P1 split, and that the seed is what makes the runs equal (another seed differs).
"""

from collections.abc import Iterator
from typing import Any

import pytest
from threadpoolctl import threadpool_limits

from recs_assets.core.evaluation.protocols import Split, stratified_split
from recs_assets.core.evaluation.runner import SideTables, build_side_info, fit_model
from recs_assets.core.evaluation.trained import held_out_evaluation
from recs_assets.core.models.base import SideInfo
from recs_assets.core.phase1.synthetic import SyntheticData, generate_synthetic

NCF_SMALL: dict[str, Any] = {
    "factors": 8,
    "layers": (16, 8),
    "epochs": 3,
    "batch_size": 128,
    "patience": 1,
    "validation_fraction": 0.1,
    "num_threads": 1,
    "device": "cpu",
}
# family -> (params, name of the seed parameter or None for deterministic closed forms)
FAMILIES: dict[str, tuple[dict[str, Any], str | None]] = {
    "ease": ({"lam": 50.0}, None),
    "rp3beta": ({"alpha": 0.9, "beta": 0.4, "top_k": 40}, None),
    "lightfm": ({"no_components": 16, "epochs": 5, "num_threads": 1}, "random_state"),
    "ncf": (NCF_SMALL, "seed"),
    "als": ({"factors": 16, "iterations": 1, "regularization": 0.1, "num_threads": 1}, "seed"),
    "implicit_bpr": ({"factors": 16, "iterations": 20, "num_threads": 1}, "seed"),
    "blend": (
        {
            "members": [
                {"name": "ease", "params": {"lam": 50.0}},
                {"name": "lightfm", "params": {"no_components": 16, "epochs": 5}},
            ]
        },
        "seed",
    ),
}


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate_synthetic(n_users=150, n_items=80, n_interactions=4000, seed=11)


@pytest.fixture(scope="module")
def split(data: SyntheticData) -> Split:
    return stratified_split(data.tables.interactions)


@pytest.fixture(scope="module")
def side(data: SyntheticData, split: Split) -> SideInfo:
    return build_side_info(split, SideTables(users=data.tables.users, items=data.tables.items))


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):  # BLAS / OpenMP pools of numpy, scipy and torch
        yield


def metrics_of(
    family: str, params: dict[str, Any], split: Split, side: SideInfo
) -> dict[str, float]:
    model, seconds = fit_model(family, split, side, params)
    evaluation = held_out_evaluation(family, model, seconds, split, side)
    return dict(evaluation.metrics)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_two_trainings_give_identical_metrics(family: str, split: Split, side: SideInfo) -> None:
    params, seed_name = FAMILIES[family]
    first = metrics_of(family, params, split, side)
    second = metrics_of(family, params, split, side)
    assert first.keys() == second.keys()
    assert "ndcg@10" in first and first["ndcg@10"] > 0
    # Exact equality (NaN, e.g. an undefined fairness gap, equals itself here).
    assert {k: repr(v) for k, v in first.items()} == {k: repr(v) for k, v in second.items()}
    if seed_name is not None:  # the seed, not luck, makes them equal: another seed differs
        other = metrics_of(family, {**params, seed_name: 7}, split, side)
        assert {k: repr(v) for k, v in other.items()} != {k: repr(v) for k, v in first.items()}
