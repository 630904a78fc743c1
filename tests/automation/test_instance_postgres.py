"""The one-variable switch of Dagster storage to PostgreSQL, against the real server on :5432."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import yaml
from dagster import DagsterInstance, asset, materialize

from recs_assets.cli.dagster_home import PG_ENV, prepare_dagster_home, render_instance_config

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def test_render_without_variable_keeps_sqlite() -> None:
    config = render_instance_config({"telemetry": {"enabled": False}}, env={})
    assert "storage" not in config  # Dagster then stores runs in SQLite under DAGSTER_HOME


def test_render_with_variable_points_storage_at_env() -> None:
    config = render_instance_config({}, env={PG_ENV: "postgresql://x@y/z"})
    # The URL stays in the environment; the file only names the variable.
    assert config["storage"] == {"postgres": {"postgres_url": {"env": PG_ENV}}}


@pytest.fixture
def pg_database() -> Iterator[str]:
    name = f"recs_dagster_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(ADMIN_DSN)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@asset
def tiny_number() -> int:
    """A one-value asset to prove runs land in the configured storage."""
    return 7


def test_postgres_switch_stores_runs_in_postgres(
    tmp_path: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PG_ENV, pg_database)
    home = prepare_dagster_home(tmp_path / "home")
    written = yaml.safe_load((home / "dagster.yaml").read_text())
    assert written["storage"] == {"postgres": {"postgres_url": {"env": PG_ENV}}}

    instance = DagsterInstance.from_config(str(home))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = materialize([tiny_number], instance=instance)
        assert result.success
    finally:
        instance.dispose()

    with psycopg2.connect(pg_database) as conn, conn.cursor() as cur:
        cur.execute("SELECT run_id, status FROM runs")
        rows = cur.fetchall()
        cur.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
            (result.run_id, "ASSET_MATERIALIZATION"),
        )
        (materializations,) = cur.fetchone()
    assert rows == [(result.run_id, "SUCCESS")]
    assert materializations == 1
