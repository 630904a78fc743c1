"""The BentoML service over HTTP: in-process ASGI, then ``bentoml serve`` with real Redis."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from serving_helpers import (
    export_tiny,
    model_store,
    serve_expecting_exit,
    service_asgi,
    start_redis,
)

from recs_assets.core.serving.launch import Service, free_port, start_service

ENDPOINTS = ["/recommend", "/recommend_batch", "/similar_items", "/score", "/model_info"]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    """Start ``bentoml serve`` with extra env; yields a function env -> base URL. Stops it after."""
    services: list[Service] = []

    def start(env: dict[str, str]) -> str:
        full_env = {
            **os.environ,
            "BENTOML_HOME": str(tmp_path / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "True",
            "RECS_DATA_DIR": str(tmp_path / "data"),  # exposure logs stay out of the checkout
            **env,
        }
        service = start_service(full_env, tmp_path / f"serve-{len(services)}.log")
        services.append(service)
        return service.url

    yield start
    for service in services:
        service.stop()


def test_service_through_asgi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service app in-process (lifespan runs on_startup): answers, 4xx, OpenAPI."""
    from starlette.testclient import TestClient

    home = tmp_path / "bentoml"
    export_tiny(home)
    monkeypatch.delenv("RECS_REDIS_URL", raising=False)
    with model_store(home), TestClient(service_asgi(), raise_server_exceptions=False) as client:
        r = client.post("/recommend", json={"user_id": "u3", "k": 2})
        assert r.status_code == 200
        body = r.json()
        # u3 saw i0, i1: next by popularity are i2 (3 users), i3 (2 users)
        assert [it["item_id"] for it in body["items"]] == ["i2", "i3"]
        assert (body["source"], body["model_version"], body["variant"]) == (
            "model",
            "v-test-1",
            "champion",
        )
        assert client.post("/recommend", json={"user_id": "u3", "k": 2}).json()["source"] == "cache"
        assert client.post("/recommend", json={"user_id": "ghost"}).json()["source"] == "fallback"
        info = client.post("/model_info", json={}).json()
        assert info["cache"] == "lru" and info["labels"]["dagster_run_id"] == "run-abc"
        bad = client.post("/recommend", json={"user_id": "u3", "k": 101})
        assert bad.status_code == 400 and "less than or equal to 100" in bad.text
        assert client.post("/similar_items", json={"item_id": "zz"}).status_code == 404
        assert client.get("/readyz").status_code == 200
        spec = client.get("/docs.json").json()
        assert set(ENDPOINTS) <= set(spec["paths"])
        schema = spec["paths"]["/recommend"]["post"]["requestBody"]["content"]["application/json"][
            "schema"
        ]
        assert schema["properties"]["k"]["description"] == "Number of items to return, 1-100."


def test_bad_ids_and_oversized_bodies_are_refused_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ids with control characters are a 400 naming the field; a body over RECS_MAX_BODY_BYTES is
    a 413, whether its length is declared or it arrives in chunks; other requests still answer."""
    from starlette.testclient import TestClient

    home = tmp_path / "bentoml"
    export_tiny(home)
    monkeypatch.delenv("RECS_REDIS_URL", raising=False)
    monkeypatch.setenv("RECS_MAX_BODY_BYTES", "4096")
    with model_store(home), TestClient(service_asgi(), raise_server_exceptions=False) as client:
        for bad in ("u3\x00", "u3\r\nX-Injected: 1", "\x7f"):
            r = client.post("/feedback", json={"user_id": bad, "item_id": "i2", "event": "click"})
            assert r.status_code == 400 and "user_id" in r.text, r.text
        r = client.post("/recommend", json={"user_id": "tab\there"})
        assert r.status_code == 400
        ok = client.post("/recommend", json={"user_id": "u3 é ü", "k": 2})
        assert ok.status_code == 200  # printable non-ASCII ids are fine
        big = {"user_ids": [f"user-{i:06d}" for i in range(1000)], "k": 10}
        r = client.post("/recommend_batch", json=big)
        assert r.status_code == 413
        assert "limit is 4096" in r.json()["error"] and "RECS_MAX_BODY_BYTES" in r.json()["error"]

        def chunks():
            yield b'{"user_ids": ['
            for i in range(1000):
                yield (f'"user-{i:06d}",').encode()
            yield b'"u3"], "k": 10}'

        r = client.post(
            "/recommend_batch", content=chunks(), headers={"content-type": "application/json"}
        )
        assert r.status_code == 413
        assert client.post("/recommend", json={"user_id": "u3", "k": 2}).status_code == 200


@pytest.mark.slow
def test_bentoml_serve_with_redis(tmp_path: Path, serve) -> None:
    """Real server, real Redis db 15 under a unique prefix: answers, 400s, docs, metrics."""
    export_tiny(tmp_path / "bentoml")
    prefix = f"recs-http-{uuid.uuid4().hex[:8]}"
    url = serve({"RECS_REDIS_URL": "redis://127.0.0.1:6379/15", "RECS_CACHE_PREFIX": prefix})
    import bentoml

    try:
        with bentoml.SyncHTTPClient(url) as client:
            first = client.recommend(user_id="u3", k=2)
            assert [it["item_id"] for it in first["items"]] == ["i2", "i3"]
            assert first["source"] == "model"
            assert client.recommend(user_id="u3", k=2)["source"] == "cache"
            batch = client.recommend_batch(user_ids=["u3", "ghost"], k=2)
            assert [r["source"] for r in batch["results"]] == ["cache", "fallback"]
            sim = client.similar_items(item_id="i3", k=2)
            assert [it["item_id"] for it in sim["items"]] == ["i2", "i1"]  # cosine 0.816, 0.707
            scores = client.score(user_id="u1", item_ids=["i4", "i0"])
            assert [s["score"] for s in scores["scores"]] == [1.0, 5.0]  # popularity counts
        keys = redis.Redis.from_url("redis://127.0.0.1:6379/15").keys(f"{prefix}:*")
        assert len(keys) == 1  # only u3 (model answer); fallbacks and co-occurrence are not cached
        assert all(b"recs_recommender-" in k for k in keys)  # keys carry the model version

        bad_requests = [
            ("/recommend", {"user_id": "u1", "k": 0}),
            ("/recommend", {"user_id": "u1", "k": "ten"}),
            ("/recommend", {"k": 3}),
            ("/recommend", {"user_id": 17}),
            ("/recommend_batch", {"user_ids": []}),
            ("/recommend_batch", {"user_ids": [f"u{i}" for i in range(1001)]}),
            ("/score", {"user_id": "u1", "item_ids": "i0"}),
        ]
        for path, payload in bad_requests:
            r = httpx.post(url + path, json=payload, timeout=10)
            assert r.status_code == 400, (path, payload, r.text)
            assert "error" in r.text
        r = httpx.post(
            url + "/score", json={"user_id": "u1", "item_ids": ["i0", "nope"]}, timeout=10
        )
        assert r.status_code == 404 and "nope" in r.text

        page = httpx.get(url + "/", timeout=10)
        assert page.status_code == 200 and "swagger" in page.text.lower()
        spec = httpx.get(url + "/docs.json", timeout=10).json()
        assert set(ENDPOINTS) <= set(spec["paths"])
        for path in ENDPOINTS:
            props = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"][
                "schema"
            ]
            for name, prop in props.get("properties", {}).items():
                assert prop.get("description"), f"{path} field {name} has no description"
        metrics = httpx.get(url + "/metrics", timeout=10).text
        assert 'recs_cache_total{result="hit"} 2.0' in metrics
        assert 'recs_fallbacks_total{reason="unknown_user"} 1.0' in metrics
        assert (
            'recs_model_info{loaded="true",model_name="popularity",model_version="v-test-1"'
            in metrics
        )
        assert "bentoml_service_request_total" in metrics
        # unknown paths share one label: 1,000 of them add no line to /metrics
        with httpx.Client(base_url=url, timeout=10) as http:
            assert http.get("/no-such-page").status_code == 404  # creates the shared series
            # BentoML records a request after its answer is sent: wait until it is counted
            before = _metrics_once_counted(http, 1)
            for _ in range(1000):
                assert http.get(f"/x/{uuid.uuid4().hex}").status_code == 404
            after = _metrics_once_counted(http, 1001)

        def series(text: str) -> set[str]:  # the label sets of every sample line
            return {line.rsplit(" ", 1)[0] for line in text.splitlines() if "{" in line}

        # no series appeared for the 1,000 paths (other endpoints' series may appear meanwhile:
        # /metrics itself is recorded after its answer, so its own lines can come late)
        assert {s for s in series(after) - series(before) if "/metrics" not in s} == set()
        assert 'endpoint="/<unmatched>"' in after and "/x/" not in after
        assert 'endpoint="/recommend"' in after
        # each rejected request is one log line, without a traceback
        log = (tmp_path / "serve-0.log").read_text()
        assert log.count("rejected (400)") >= len(bad_requests)
        assert "rejected (404)" in log and "Traceback" not in log
    finally:
        client15 = redis.Redis.from_url("redis://127.0.0.1:6379/15")
        stale = client15.keys(f"{prefix}:*")
        if stale:
            client15.delete(*stale)


@pytest.mark.slow
def _metrics_once_counted(http: httpx.Client, unmatched: int) -> str:
    """``/metrics`` once ``unmatched`` requests to unknown paths have been counted (5 s at most)."""
    pattern = re.compile(
        r'^bentoml_service_request_total\{endpoint="/<unmatched>"[^}]*\} (\S+)$', re.M
    )
    deadline = time.monotonic() + 5
    while True:
        text = http.get("/metrics").text
        counted = sum(float(v) for v in pattern.findall(text))
        if counted >= unmatched or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def test_redis_dying_mid_traffic_fails_no_request(
    tmp_path: Path, serve, record_property: Callable[[str, object], None]
) -> None:
    """Kill the cache's redis-server under load: every request still succeeds; it reconnects."""
    export_tiny(tmp_path / "bentoml")
    redis_port = free_port()
    redis_proc = start_redis(redis_port, tmp_path)
    url = serve(
        {
            "RECS_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "RECS_REDIS_BACKOFF_S": "0.5",
            "RECS_REDIS_TIMEOUT_S": "0.2",
        }
    )
    statuses: list[int] = []
    sources: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            i = 0
            while not stop.is_set():
                r = http.post("/recommend", json={"user_id": f"u{i % 6}", "k": 2})
                statuses.append(r.status_code)
                if r.status_code == 200:
                    sources.append(r.json()["source"])
                i += 1

    workers = [threading.Thread(target=traffic) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        time.sleep(2.0)
        before_kill = len(statuses)
        redis_proc.kill()  # SIGKILL: open connections are reset mid-traffic
        redis_proc.wait(10)
        time.sleep(2.0)
        during_outage = len(statuses) - before_kill
        redis_proc = start_redis(redis_port, tmp_path)  # Redis comes back on the same port
        time.sleep(2.5)
    finally:
        stop.set()
        for w in workers:
            w.join(30)
        redis_proc.kill()
        redis_proc.wait(10)
    assert statuses and all(s == 200 for s in statuses), sorted(set(statuses))
    assert before_kill > 10 and during_outage > 10  # traffic really flowed in both phases
    info = httpx.post(url + "/model_info", json={}, timeout=10).json()
    record_property("requests", len(statuses))
    record_property("during_outage", during_outage)
    record_property("cache_errors", info["cache_errors"])
    assert info["cache_errors"] >= 1  # the outage was seen and counted
    assert "cache" in sources[-20:]  # hits again after Redis came back: reconnected


@pytest.mark.slow
@pytest.mark.parametrize("broken", ["train.npz", "model/state.npz"])
def test_a_model_that_cannot_load_stops_the_server_with_one_line(
    tmp_path: Path, broken: str
) -> None:
    """No restart loop behind an open port: ``bentoml serve`` exits 1 within 30 s, saying why."""
    home = tmp_path / "bentoml"
    tag = export_tiny(home)
    name, version = tag.split(":")
    (home / "models" / name / version / broken).write_bytes(b"not a numpy file" * 8)
    status, said, seconds = serve_expecting_exit(home, {})
    assert status == 1 and seconds < 30, (status, seconds)
    assert len(said) == 1, said
    assert said[0].startswith("recs: cannot start, model recs_recommender:latest does not load")


def _workers_under(root: int) -> int:
    """Service worker processes descended from the ``bentoml serve`` process ``root``."""
    parent: dict[int, int] = {}
    cmdlines: dict[int, bytes] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdlines[int(proc.name)] = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        parent[int(proc.name)] = int(stat.rsplit(")", 1)[1].split()[1])

    def descends(pid: int) -> bool:
        while pid > 1:
            pid = parent.get(pid, 0)
            if pid == root:
                return True
        return False

    return sum(
        1
        for pid, cmd in cmdlines.items()
        if b"_bentoml_impl.worker.service" in cmd and descends(pid)
    )


@pytest.mark.slow
def test_recs_workers_sets_the_worker_processes(tmp_path: Path) -> None:
    """``RECS_WORKERS=2``: two worker processes answer (one is the local default)."""
    home = tmp_path / "bentoml"
    export_tiny(home)
    env = {
        **os.environ,
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "True",
        "RECS_WORKERS": "2",
        "RECS_REDIS_URL": "",
    }
    service = start_service(env, tmp_path / "serve.log")
    try:
        assert _workers_under(service.proc.pid) == 2
        with httpx.Client(base_url=service.url, timeout=10) as http:
            for i in range(20):
                r = http.post("/recommend", json={"user_id": f"u{i % 6}", "k": 2})
                assert r.status_code == 200
    finally:
        service.stop()


def test_forget_user_endpoint_clears_this_worker_and_logs_the_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``POST /forget_user`` (admin): the worker's cached lists and impressions of the user go,
    the exposure log's buffered rows are written then scrubbed, the request is logged."""
    from starlette.testclient import TestClient

    from recs_assets.core.phase1.forgetting import forget_requests, user_digest

    home = tmp_path / "bentoml"
    export_tiny(home)
    monkeypatch.delenv("RECS_REDIS_URL", raising=False)
    monkeypatch.setenv("RECS_DATA_DIR", str(tmp_path / "data"))
    with model_store(home), TestClient(service_asgi(), raise_server_exceptions=False) as client:
        shown = client.post("/recommend", json={"user_id": "u3", "k": 2}).json()
        assert client.post("/recommend", json={"user_id": "u3", "k": 2}).json()["source"] == "cache"
        item = shown["items"][0]["item_id"]
        ok = client.post("/feedback", json={"user_id": "u3", "item_id": item, "event": "click"})
        assert ok.status_code == 200
        r = client.post("/forget_user", json={"user_id": "u3"})
        assert r.status_code == 200, r.text
        ack = r.json()
        assert ack["cached_lists"] == 1
        assert sum(ack["parquet_rows"].values()) >= 2  # the served list and the click, flushed
        # impressions forgotten: a click on what was shown before the request is refused
        again = client.post("/feedback", json={"user_id": "u3", "item_id": item, "event": "click"})
        assert again.status_code == 400
        assert client.post("/recommend", json={"user_id": "u3", "k": 2}).json()["source"] == "model"
    assert forget_requests().digests() == {user_digest("u3")}
