"""API keys with scopes and rate limits in front of the service (in-process ASGI, real Redis)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from serving_helpers import export_tiny, model_store, serve_expecting_exit, service_asgi

from recs_assets.cli.api_key import api_key_command
from recs_assets.core.serving.access import AccessControl, RateLimiter, digest, new_key

REDIS_URL = "redis://127.0.0.1:6379/15"


def _keys() -> tuple[dict[str, str], str]:
    reader, read_entry = new_key("app", ["read"])
    writer, write_entry = new_key("tracker", ["read", "write"])
    admin, admin_entry = new_key("ops", ["admin"])
    return {"read": reader, "write": writer, "admin": admin}, json.dumps(
        [read_entry, write_entry, admin_entry]
    )


def test_keys_and_scopes_guard_every_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.testclient import TestClient

    home = tmp_path / "bentoml"
    export_tiny(home)
    keys, config = _keys()
    monkeypatch.delenv("RECS_REDIS_URL", raising=False)
    monkeypatch.setenv("RECS_API_KEYS", config)
    with model_store(home), TestClient(service_asgi(), raise_server_exceptions=False) as client:
        body = {"user_id": "u3", "k": 2}
        anonymous = client.post("/recommend", json=body)
        assert anonymous.status_code == 401 and "API key" in anonymous.json()["error"]
        wrong = client.post("/recommend", json=body, headers={"X-API-Key": "recs_guess"})
        assert wrong.status_code == 401
        bearer = {"Authorization": f"Bearer {keys['read']}"}
        assert client.post("/recommend", json=body, headers=bearer).status_code == 200
        click = {"user_id": "u3", "item_id": "i2", "event": "click"}
        denied = client.post("/feedback", json=click, headers=bearer)
        assert denied.status_code == 403 and "'write'" in denied.json()["error"]
        writer = {"X-API-Key": keys["write"]}
        assert client.post("/feedback", json=click, headers=writer).status_code == 200
        assert client.post("/model_info", json={}, headers=writer).status_code == 403
        admin = {"X-API-Key": keys["admin"]}
        assert client.post("/model_info", json={}, headers=admin).status_code == 200
        assert client.get("/metrics", headers=bearer).status_code == 403
        # probes and the API docs stay open
        assert client.get("/readyz").status_code == 200
        assert client.get("/docs.json").status_code == 200


def test_rate_limit_answers_429_with_retry_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.testclient import TestClient

    home = tmp_path / "bentoml"
    export_tiny(home)
    keys, config = _keys()
    monkeypatch.setenv("RECS_API_KEYS", config)
    monkeypatch.setenv("RECS_RATE_LIMIT_PER_S", "1")
    monkeypatch.setenv("RECS_REDIS_URL", REDIS_URL)
    prefix = f"recs-access-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("RECS_CACHE_PREFIX", prefix)
    monkeypatch.setenv(
        "RECS_REDIS_TIMEOUT_S", "2"
    )  # a loaded CI machine must not look like a dead Redis
    with model_store(home), TestClient(service_asgi(), raise_server_exceptions=False) as client:
        headers = {"X-API-Key": keys["read"]}
        codes = [
            client.post("/recommend", json={"user_id": "u3"}, headers=headers) for _ in range(30)
        ]
        limited = [r for r in codes if r.status_code == 429]
        assert limited, "30 requests in a row never hit a limit of 1/s"
        assert all(r.status_code in (200, 429) for r in codes)
        assert int(limited[0].headers["retry-after"]) >= 1
        assert "1 requests/s" in limited[0].json()["error"]
        # counted in Redis (shared by every worker), under the deployment's prefix
        assert any(redis.Redis.from_url(REDIS_URL).scan_iter(f"{prefix}-rate:key:app:*"))


def test_a_dead_redis_degrades_to_counting_in_process() -> None:
    limiter = RateLimiter(3, "redis://127.0.0.1:1/0")  # nothing listens on port 1
    results = [limiter.allow("key:app", now=1_000.2)[0] for _ in range(5)]
    assert results == [True, True, True, False, False]
    # a new second is a new window; another client has its own count
    assert limiter.allow("key:app", now=1_001.0) == (True, 1.0)
    assert limiter.allow("key:other", now=1_000.9)[0]
    allowed, retry = limiter.allow("key:app", now=1_000.5)
    assert not allowed and retry == pytest.approx(0.5)


def test_production_refuses_to_start_without_keys_and_keys_are_stored_hashed() -> None:
    async def app(scope, receive, send) -> None:  # pragma: no cover - never called
        return None

    with pytest.raises(ValueError, match="RECS_DEPLOYMENT=production needs API keys"):
        AccessControl(app, env={"RECS_DEPLOYMENT": "production"})
    guarded = AccessControl(app, env={"RECS_DEPLOYMENT": "production", "RECS_API_KEYS": _keys()[1]})
    assert guarded.limiter.per_second == 100  # production default
    assert AccessControl(app, env={}).limiter.per_second == 0  # local default: no limit
    with pytest.raises(ValueError, match="scopes must be among"):
        AccessControl(
            app,
            env={
                "RECS_API_KEYS": json.dumps([{"name": "x", "sha256": "0" * 64, "scopes": ["root"]}])
            },
        )
    out = CliRunner().invoke(api_key_command, ["--name", "app", "--scopes", "read,write"])
    assert out.exit_code == 0, out.output
    key = out.output.split("key (shown once): ")[1].split()[0]
    entry = json.loads(out.output.strip().splitlines()[-1])
    assert entry == {"name": "app", "sha256": digest(key), "scopes": ["read", "write"]}
    assert key not in out.output.strip().splitlines()[-1]
    bad = CliRunner().invoke(api_key_command, ["--name", "app", "--scopes", "root"])
    assert bad.exit_code != 0 and "scopes" in bad.output


def test_client_errors_log_one_line_server_errors_keep_their_traceback() -> None:
    import logging
    import sys

    from recs_assets.core.serving.telemetry import OneLineClientErrors

    class Rejected(Exception):
        error_code = 404

    def record(error: Exception) -> logging.LogRecord:
        try:
            raise error
        except Exception:  # noqa: BLE001 - building a record as BentoML logs it
            info = sys.exc_info()
        return logging.LogRecord("x", logging.ERROR, "f", 1, "Exception on /score [POST]", (), info)

    rejected = record(Rejected("unknown item_id 'zz'\nmore"))
    assert OneLineClientErrors().filter(rejected)
    assert rejected.exc_info is None and rejected.levelname == "INFO"
    assert rejected.getMessage() == (
        "rejected (404): Exception on /score [POST]: Rejected: unknown item_id 'zz'"
    )
    crashed = record(RuntimeError("boom"))
    assert OneLineClientErrors().filter(crashed)
    assert crashed.exc_info is not None and crashed.levelname == "ERROR"


@pytest.mark.slow
def test_bentoml_serve_in_production_without_keys_stops_at_once(tmp_path: Path) -> None:
    """No restart loop: the server process exits with the reason before any worker starts."""
    export_tiny(tmp_path / "bentoml")
    status, said, seconds = serve_expecting_exit(
        tmp_path / "bentoml",
        {"RECS_DEPLOYMENT": "production", "RECS_API_KEYS": "", "RECS_API_KEYS_FILE": ""},
    )
    assert status != 0 and seconds < 60
    assert len(said) == 1 and "RECS_DEPLOYMENT=production needs API keys" in said[0], said
