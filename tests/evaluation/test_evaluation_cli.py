"""``recs eval``: the acceptance run on MovieLens 100K through ``Phase1Source``, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from reference_numbers import P1_POPULARITY_ML100K, assert_reference

from recs_assets.cli.evaluate import eval_command


def test_eval_reproduces_the_p1_popularity_row(ml100k_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "pop.json"
    result = CliRunner().invoke(
        eval_command,
        [
            "--source",
            f"movielens:{ml100k_dir}",
            "--protocol",
            "stratified",
            "--models",
            "popularity,ease",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["protocol"] == "stratified" and doc["dataset"] == f"movielens:{ml100k_dir}"
    pop = doc["models"]["popularity"]
    assert_reference(pop, P1_POPULARITY_ML100K, ["precision@10", "ndcg@10"])
    for key in (
        "recall@10",
        "map@10",
        "auc",
        "catalog_coverage",
        "ild",
        "novelty",
        "fit_seconds",
        "score_seconds",
    ):
        assert isinstance(pop[key], float), key
    assert doc["split"]["n_train"] + doc["split"]["n_test"] == 100_000
    # every pair of models, paired per user: popularity is clearly below EASE
    paired = doc["paired"]["popularity - ease"]
    gap = pop["ndcg@10"] - doc["models"]["ease"]["ndcg@10"]
    assert paired["metric"] == "ndcg@10" and paired["n_users"] == pop["n_users"]
    assert paired["mean"] == pytest.approx(gap)
    assert paired["low"] <= paired["mean"] <= paired["high"] < 0
    assert "popularity - ease: ndcg@10" in result.output and "excludes 0" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "movielens"], "movielens needs a folder"),
        (["--source", "nosuch:/x"], "unknown kind 'nosuch'"),
        (["--source", "movielens:/x", "--models", "nope"], "unknown model 'nope'"),
        (["--source", "movielens:/x", "--protocol", "random"], "Invalid value for '--protocol'"),
    ],
)
def test_bad_arguments(args: list[str], message: str) -> None:
    result = CliRunner().invoke(eval_command, args)
    assert result.exit_code != 0
    assert message in result.output + str(result.exception)
