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


def test_eval_reports_what_the_ranker_fitted(tmp_path: Path) -> None:
    from recs_assets.core.phase1.files import write_tables
    from recs_assets.core.phase1.synthetic import generate_synthetic

    data = generate_synthetic(n_users=150, n_items=100, n_interactions=5_000, seed=3)
    write_tables(data.tables, tmp_path / "src")
    out = tmp_path / "out.json"
    args = ["--source", f"files:{tmp_path / 'src'}", "--models", "ranker,popularity"]
    result = CliRunner().invoke(eval_command, [*args, "--no-paired", "--json", str(out)])
    assert result.exit_code == 0, result.output
    fit = json.loads(out.read_text())["fit"]
    assert list(fit) == ["ranker"]  # popularity says nothing of its fit
    weights = [v for n, v in fit["ranker"].items() if n.startswith("prior_weight.")]
    assert len(weights) == 4 and sum(weights) == pytest.approx(1.0)
    assert fit["ranker"]["trees"] >= 0 and 0 < fit["ranker"]["held_out_ndcg_prior"] <= 1
    assert "ranker fit: prior_weight.ease" in result.output
