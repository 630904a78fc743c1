"""Shared fixtures: the MovieLens 100K folder beside the checkout, and one Spark session per run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def ml100k_path() -> Path:
    """MovieLens 100K as published, read from ../shared/data (never committed)."""
    env = os.environ.get("RECS_ML100K_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data" / "ml-100k"


@pytest.fixture(scope="session", autouse=True)
def isolated_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Everything the code writes under its data dir by default (served lists, feedback, reports,
    landing) goes to a temporary folder, never into the checkout's ``.data/``."""
    path = tmp_path_factory.mktemp("recs-data")
    old = os.environ.get("RECS_DATA_DIR")
    os.environ["RECS_DATA_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("RECS_DATA_DIR", None)
    else:
        os.environ["RECS_DATA_DIR"] = old


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    path = ml100k_path()
    if not (path / "u.data").is_file():
        raise FileNotFoundError(
            f"MovieLens 100K not found at {path}: put the published files in ../shared/data/ml-100k "
            "or set RECS_ML100K_DIR"
        )
    return path


@pytest.fixture(scope="session")
def spark():
    """One small local SparkSession for the whole test run (started on first use)."""
    from recs_assets.features.spark import SparkResource

    resource = SparkResource(
        master="local[2]",
        app_name="recs-tests",
        conf={
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.driver.memory": "2g",
        },
    )
    session = resource.get_session()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
