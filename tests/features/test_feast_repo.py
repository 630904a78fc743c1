"""The committed Feast repo (``feature_repo/``): the Feast CLI plans it against the pipeline's data
dir, and it describes exactly what the ``online_feature_store`` asset applies."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from recs_assets.core.features.feast_repo.feature_views import feature_objects
from recs_assets.core.paths import REPO_ROOT
from recs_assets.features.feast_resource import FeastResource

FEAST = str(Path(sys.executable).with_name("feast"))
T = datetime(2024, 1, 10, tzinfo=UTC)


def feature_tables(data_dir: Path) -> None:
    for name, key in (("user_features", "user_id"), ("item_features", "item_id")):
        folder = data_dir / "features" / name
        folder.mkdir(parents=True)
        pd.DataFrame(
            {
                key: ["a"],
                "feature_timestamp": pd.Series([T]).astype("datetime64[us, UTC]"),
                "events_all": [3],
            }
        ).to_parquet(folder / "part-0.parquet", index=False)


def feast(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RECS_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [FEAST, "-c", str(REPO_ROOT / "feature_repo"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_feast_plan_finds_the_definitions(tmp_path: Path) -> None:
    feature_tables(tmp_path)
    done = feast("plan", data_dir=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("entity user", "entity item", "feature view user_features", "recs_features"):
        assert name in done.stdout


def test_the_repo_matches_what_the_pipeline_applies(tmp_path: Path) -> None:
    feature_tables(tmp_path)
    resource = FeastResource(repo_dir=str(tmp_path / "feast_repo"), redis_url="")
    features = tmp_path / "features"
    resource.store().apply(feature_objects(features / "user_features", features / "item_features"))
    done = feast("plan", data_dir=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # same project, registry and objects: the CLI finds nothing to change in the registry
    assert "No changes to registry" in done.stdout


def test_without_a_data_dir_the_repo_says_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RECS_DATA_DIR"}
    done = subprocess.run(
        [FEAST, "-c", str(REPO_ROOT / "feature_repo"), "plan"],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert "set RECS_DATA_DIR" in done.stdout + done.stderr
