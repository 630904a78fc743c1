"""Asset values without pickle: a real split, a fitted model with its id maps and nested
dataclasses come back equal; what cannot be stored that way is refused, naming where it sits."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recs_assets.core.artifact_store import STRUCTURE, has_artifact, load_artifact, save_artifact
from recs_assets.core.evaluation.protocols import stratified_split
from recs_assets.core.models.ease import EASERecommender
from recs_assets.core.phase1.synthetic import generate_synthetic
from recs_assets.core.serving.champion import ChampionModel


def test_nested_values_round_trip(tmp_path: Path) -> None:
    value = {
        "name": "x",
        "when": datetime(2024, 1, 2, 3, 4, tzinfo=UTC),
        "stamp": pd.Timestamp("2024-05-01T00:00:00Z"),
        "scores": np.array([1.5, np.nan, -2.0], dtype=np.float32),
        "ids": np.array(["u1", "u2"], dtype=object),
        "matrix": sp.csr_matrix(np.array([[0, 1.0], [2.0, 0]])),
        "frame": pd.DataFrame({"a": pd.array([1, None], dtype="Int64"), "b": ["p", "q"]}),
        "nested": {"nan": (float("nan"), 1.0), "inf": (float("inf"),)},
        "keyed": {("a", 1): [1, 2]},
        "missing": None,
    }
    back = load_artifact(save_artifact(value, tmp_path / "v"))
    assert back["name"] == "x" and back["when"] == value["when"]
    assert isinstance(back["stamp"], pd.Timestamp) and back["stamp"] == value["stamp"]
    np.testing.assert_array_equal(back["scores"], value["scores"])
    assert back["scores"].dtype == np.float32
    assert back["ids"].dtype == object and list(back["ids"]) == ["u1", "u2"]
    assert (back["matrix"] != value["matrix"]).nnz == 0
    pd.testing.assert_frame_equal(back["frame"], value["frame"])
    assert np.isnan(back["nested"]["nan"][0]) and back["nested"]["inf"] == (float("inf"),)
    assert back["keyed"] == {("a", 1): [1, 2]} and back["missing"] is None
    # the structure is plain JSON and nothing in the folder is a pickle
    json.loads((tmp_path / "v" / STRUCTURE).read_text())
    with np.load(tmp_path / "v" / "arrays.npz", allow_pickle=False) as z:
        assert len(z.files) == 5  # scores, ids and the three arrays of the CSR matrix


def test_a_fitted_model_with_its_split_scores_the_same_after_loading(tmp_path: Path) -> None:
    data = generate_synthetic(n_users=120, n_items=60, n_interactions=2_500, seed=4)
    split = stratified_split(data.tables.interactions)
    model = EASERecommender().fit(split.train)
    champion = ChampionModel(
        model=model, train=split.train, version="7", gates=(("auc", True, 0.8, 0.7),)
    )
    back = load_artifact(save_artifact((champion, split), tmp_path / "c"))
    loaded, loaded_split = back
    users = np.arange(split.train.n_users)
    np.testing.assert_allclose(loaded.model.score(users), model.score(users))
    assert list(loaded.train.user_ids) == list(split.train.user_ids)
    assert loaded.train.user_index(str(split.train.user_ids[3])) == 3  # id maps rebuilt
    assert loaded.passed_gates and loaded.version == "7"
    pd.testing.assert_frame_equal(loaded_split.test_frame, split.test_frame)
    assert (loaded_split.test.matrix != split.test.matrix).nnz == 0
    assert (tmp_path / "c" / "models").is_dir()  # the model's own params.json + state.npz


def test_what_needs_pickle_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"value\[1\]: a set cannot be stored without pickle"):
        save_artifact(["ok", {1, 2}], tmp_path / "bad")
    with pytest.raises(TypeError, match=r"object array holding non-strings"):
        save_artifact(np.array([1, "a"], dtype=object), tmp_path / "bad")
    assert not has_artifact(tmp_path / "bad") and list(tmp_path.iterdir()) == []


def test_only_recs_classes_are_rebuilt(tmp_path: Path) -> None:
    folder = save_artifact({"k": 1}, tmp_path / "v")
    doc = json.loads((folder / STRUCTURE).read_text())
    doc["value"] = {"$dataclass": "subprocess:Popen", "fields": {}}
    (folder / STRUCTURE).write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="refusing to load subprocess:Popen"):
        load_artifact(folder)


def test_saving_again_replaces_the_folder(tmp_path: Path) -> None:
    save_artifact({"a": np.arange(3)}, tmp_path / "v")
    save_artifact([1, 2], tmp_path / "v")
    assert load_artifact(tmp_path / "v") == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v"]
