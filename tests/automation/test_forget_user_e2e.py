"""``recs forget-user`` after a real pipeline run and real traffic: the user is gone from every
file under the data dir (tables, features, datasets, batch predictions, artifact frames, served
and feedback logs) and from Redis (cached lists, impressions, the Feast online store, which is
Redis here), and the next ``refresh_job`` trains a model that does not know the user."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest
import redis

from bench.landing_to_serving import run_step, workspace_env
from recs_assets.core.serving.launch import start_service

REDIS_DB = "redis://127.0.0.1:6379/15"


def _files_naming(root: Path, needle: str) -> list[str]:
    """Files under ``root`` whose bytes, or whose decoded Parquet values, contain ``needle``."""
    found = set()
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        in_bytes = needle.encode() in path.read_bytes()
        if in_bytes or (
            path.suffix == ".parquet" and needle in pq.read_table(path).to_pandas().to_json()
        ):
            found.add(str(path.relative_to(root)))
    return sorted(found)


def _model_users(bentoml_home: Path) -> set[str]:
    """User ids known to the newest exported model."""
    folders = sorted(
        (bentoml_home / "models" / "recs_recommender").glob("*/ids.json"),
        key=lambda p: p.stat().st_mtime,
    )
    return set(json.loads(folders[-1].read_text())["user_ids"])


@pytest.mark.slow
def test_forget_user_after_a_pipeline_run(tmp_path: Path) -> None:
    env = workspace_env(tmp_path, families="popularity")
    prefix = f"forget-e2e-{uuid.uuid4().hex[:8]}"
    # the exposure log writes within a second (not only at shutdown, which a loaded machine may
    # cut short)
    env.update(
        {"RECS_REDIS_URL": REDIS_DB, "RECS_CACHE_PREFIX": prefix, "RECS_EXPOSURE_FLUSH_S": "0.5"}
    )
    data = Path(env["RECS_DATA_DIR"])
    first = run_step("baseline", tmp_path, env)
    assert first["run"]["success"], first["run"]["failed_steps"]
    events = pd.read_parquet(data / "tables" / "raw_interactions")
    victim = str(events["user_id"].value_counts().index[0])  # the most active user
    assert victim in _model_users(tmp_path / "bentoml")

    service = start_service(env, tmp_path / "serve.log")
    try:
        with httpx.Client(base_url=service.url, timeout=10) as http:
            for k in (10, 5):
                shown = http.post("/recommend", json={"user_id": victim, "k": k})
                assert shown.status_code == 200 and shown.json()["source"] == "model"
            item = shown.json()["items"][0]["item_id"]
            clicked = http.post(
                "/feedback", json={"user_id": victim, "item_id": item, "event": "click"}
            )
            assert clicked.status_code == 200, clicked.text
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (
                list((data / "served").rglob("*.parquet"))
                and list((data / "feedback").rglob("*.parquet"))
            ):
                http.post("/recommend", json={"user_id": victim, "k": 5})  # a flush comes due
                time.sleep(0.5)
    finally:
        service.stop()  # writes the exposure log's buffered rows
    client = redis.Redis.from_url(REDIS_DB)
    try:
        before = _files_naming(data, victim)
        assert any(p.startswith("tables/raw_interactions/") for p in before), before
        assert any(p.startswith("served/") for p in before), before
        assert any(p.startswith("feedback/") for p in before), before
        keys = client.keys(f"*{victim}*")
        # cached lists and impressions, and the Feast online row (Redis with RECS_REDIS_URL)
        assert any(k.startswith(prefix.encode()) for k in keys), keys
        assert any(k.endswith(b"recs") for k in keys), keys

        done = subprocess.run(
            [str(Path(sys.executable).parent / "recs"), "forget-user", victim, "--pseudonym"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout)
        assert report["redis_keys"] >= 4  # two cached lists, impressions, the Feast row

        assert _files_naming(data, victim) == [], report
        # (other tests' services may leave lists under the default prefix in this db)
        left = [k for k in client.keys(f"*{victim}*") if k.startswith(prefix.encode())]
        assert left == [] and not [k for k in client.keys(f"*{victim}*") if k.endswith(b"recs")]

        # the next refresh trains without the user
        second = run_step("baseline", tmp_path, env)
        assert second["run"]["success"], second["run"]["failed_steps"]
        assert victim not in _model_users(tmp_path / "bentoml")
        assert _files_naming(data, victim) == []
    finally:
        stale = client.keys(f"{prefix}*")
        if stale:
            client.delete(*stale)
