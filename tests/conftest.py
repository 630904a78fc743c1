"""Shared fixtures: the MovieLens 100K folder beside the checkout, and one Spark session per run."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import prometheus_client  # noqa: F401 - before Feast: see below
import pytest

from recs_assets.core.paths import REPO_ROOT as REPO

# Importing Feast sets PROMETHEUS_MULTIPROC_DIR when it is unset; prometheus_client chooses how
# metric values are stored when it is first imported, so imported after Feast every registry's
# values go to shared files and a test's counters count other tests' requests (seen when
# test_features_assets ran just before test_serving_online_features). Imported first, each
# test's own registry counts only its own.


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


REQUIRE_ML100K_ENV = "RECS_REQUIRE_ML100K"  # `make test` (CI) sets it: a missing copy fails there


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """The MovieLens 100K folder; the tests that need it skip (one reason) when it is missing,
    except under ``make test``, where a missing copy is an error."""
    path = ml100k_path()
    if not (path / "u.data").is_file():
        reason = (
            f"MovieLens 100K not found at {path}: put the published files in "
            "../shared/data/ml-100k or set RECS_ML100K_DIR"
        )
        if os.environ.get(REQUIRE_ML100K_ENV) == "1":
            raise FileNotFoundError(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def spark():
    """One small local SparkSession for the whole test run (started on first use)."""
    from recs_assets.platform.spark_resource import SparkResource

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


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real ``mlflow server`` (SQLite store, local artifacts) on a free loopback port."""
    from tests.ui_helpers import free_port, server_process

    port = free_port()
    args = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination", str(tmp_path / "server-artifacts"),
    ]  # fmt: skip
    with server_process(args, "/health", port) as url:
        yield url
