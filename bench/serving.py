"""Serving benchmark: Zipf-distributed user replay against the recs service and two references.

Run from the repository root (Redis on 127.0.0.1:6379; uses db 14 under a unique prefix)::

    .venv/bin/python bench/serving.py [--rate 200 --requests 6000 --concurrency 8 --model ease]

Fits the model on MovieLens 100K, exports it into a temporary BENTOML_HOME and starts
``bentoml serve bento.service:RecsService`` (one worker) with Redis. Load comes from a separate
process on loopback:

1. open loop at ``--rate`` requests/s from a cold cache: users drawn from a Zipf law over the users
   ranked by activity (plus 5% unknown users); p50/p95/p99 per answer source (``cache`` = hit,
   ``model`` = miss, ``fallback`` = unknown user), errors and the cache hit ratio;
2. closed loop (``--concurrency`` connections, each sends as soon as its answer came) over users
   already cached: cache-hit throughput;
3. the same closed loop against a hello-world BentoML service (one worker, a fixed answer: the
   framework's floor) and a bare Starlette app under uvicorn (the ceiling);
4. top-10 for every ML-100K user in-process (what the batch asset does).

Prints the report and writes bench/results/serving.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from recs_assets.core.serving.launch import free_port
from recs_assets.core.serving.settings import serving_workers

REPO = Path(__file__).resolve().parents[1]
ML100K = REPO.parent / "shared" / "data" / "ml-100k"


def zipf_users(user_ids: list[str], n: int, a: float, unknown_share: float, seed: int) -> list[str]:
    """``n`` user ids: rank r drawn with probability proportional to 1 / r^a, some unknown ids."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, len(user_ids) + 1)
    p = 1.0 / ranks**a
    picks = rng.choice(len(user_ids), size=n, p=p / p.sum())
    out = [user_ids[i] for i in picks]
    for i in np.flatnonzero(rng.random(n) < unknown_share):
        out[i] = f"new-{i}"
    return out


def _post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes]:
    conn.request("POST", "/recommend", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    return r.status, r.read()


def _source(status: int, payload: bytes) -> str:
    if status != 200:
        return "error"
    return str(json.loads(payload).get("source", "?"))


def open_loop(
    url: str, users: list[str], rate: float, workers: int, k: int
) -> list[tuple[float, float, str]]:
    """Send request ``i`` at ``start + i / rate`` whatever the answers' pace (open loop).

    Returns (latency_ms, send_lag_ms, source) per request: latency is response received minus
    request sent; the lag (sent minus scheduled) shows whether the generator kept the schedule.
    """
    host, port = url.removeprefix("http://").split(":")
    out: list[tuple[float, float, str]] = [(0.0, 0.0, "")] * len(users)
    nxt = iter(range(len(users)))
    lock = threading.Lock()
    start = time.perf_counter() + 0.2

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        while True:
            with lock:
                i = next(nxt, None)
            if i is None:
                break
            due = start + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            body = json.dumps({"user_id": users[i], "k": k}).encode()
            sent = time.perf_counter()
            try:
                status, payload = _post(conn, body)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                status, payload = 599, b""
            done = time.perf_counter()
            out[i] = ((done - sent) * 1000, (sent - due) * 1000, _source(status, payload))
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def closed_loop(url: str, users: list[str], concurrency: int, k: int) -> dict[str, float]:
    """Each of ``concurrency`` connections sends its next request as soon as the last answer came:
    the most requests per second the server answers (throughput) and the latencies meanwhile."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    sources: dict[str, int] = {}
    lock = threading.Lock()

    def worker(chunk: list[str]) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        mine: list[float] = []
        seen: dict[str, int] = {}
        for uid in chunk:
            body = json.dumps({"user_id": uid, "k": k}).encode()
            t0 = time.perf_counter()
            src = _source(*_post(conn, body))
            mine.append((time.perf_counter() - t0) * 1000)
            seen[src] = seen.get(src, 0) + 1
        conn.close()
        with lock:
            latencies.extend(mine)
            for s, n in seen.items():
                sources[s] = sources.get(s, 0) + n

    t0 = time.perf_counter()
    threads = [
        threading.Thread(target=worker, args=(users[i::concurrency],)) for i in range(concurrency)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {
        "requests": len(users),
        "errors": sources.get("error", 0),
        "throughput_rps": round(len(users) / wall, 1),
        **_quantiles(latencies),
        "sources": sources,
    }


def _quantiles(ms: list[float]) -> dict[str, float]:
    if not ms:
        return {"n": 0}
    a = np.asarray(ms)
    return {
        "n": int(a.size),
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p95_ms": round(float(np.percentile(a, 95)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "max_ms": round(float(a.max()), 2),
    }


def summarize_open_loop(rows: list[tuple[float, float, str]], rate: float) -> dict[str, object]:
    """Latency quantiles per answer source (cache = hit, model = miss, fallback = unknown user)."""
    by_source: dict[str, list[float]] = {}
    for lat, _, src in rows:
        by_source.setdefault(src, []).append(lat)
    served = sum(len(v) for s, v in by_source.items() if s != "error")
    hits = len(by_source.get("cache", []))
    misses = len(by_source.get("model", []))
    return {
        "rate_rps": rate,
        "requests": len(rows),
        "errors": len(by_source.get("error", [])),
        "cache_hit_ratio": round(hits / served, 3) if served else 0.0,
        "hit_ratio_known_users": round(hits / (hits + misses), 3) if hits + misses else 0.0,
        "all": _quantiles([r[0] for r in rows]),
        "cache_hit": _quantiles(by_source.get("cache", [])),
        "cache_miss": _quantiles(by_source.get("model", [])),
        "fallback": _quantiles(by_source.get("fallback", [])),
        "send_lag_p99_ms": round(float(np.percentile([r[1] for r in rows], 99)), 2),
        "cache_miss_by_window": miss_timeline(rows, rate),
    }


def miss_timeline(
    rows: list[tuple[float, float, str]], rate: float, window_s: float = 5.0
) -> list[dict[str, float]]:
    """Cache misses per ``window_s`` of the schedule (request i is due at i / rate): how many,
    and their p50 / p99 / max, to tell a cold-start queue from a steady tail."""
    per = max(int(round(window_s * rate)), 1)
    out = []
    for start in range(0, len(rows), per):
        ms = [r[0] for r in rows[start : start + per] if r[2] == "model"]
        out.append({"from_s": round(start / rate, 1), **_quantiles(ms)})
    return out


def wait_ready(url: str, path: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            if httpx.get(url + path, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def export_ml100k(home: Path, model_name: str) -> None:
    sys.path.insert(0, str(REPO))
    import pandas as pd
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    from recs_assets.core.models.base import InteractionMatrix
    from recs_assets.core.serving.artifacts import model_class
    from recs_assets.core.serving.champion import item_popularity
    from recs_assets.core.serving.export import export_model

    raw = pd.read_csv(
        ML100K / "u.data", sep="\t", names=["user_id", "item_id", "r", "t"], dtype=str
    )
    items = pd.read_csv(
        ML100K / "u.item", sep="|", header=None, encoding="latin-1", usecols=[0, 1], dtype=str
    )
    items.columns = ["item_id", "title"]
    train = InteractionMatrix.from_frame(raw)
    params = {"lam": 500.0} if model_name == "ease" else {}
    model = model_class(model_name)(**params).fit(train)
    (home / "models").mkdir(parents=True, exist_ok=True)
    labels = {
        "model_version": f"bench-{model_name}",
        "dagster_run_id": "bench",
        "data_version": "ml-100k",
    }
    with BentoMLContainer.model_store.patch(ModelStore(home / "models")):
        export_model(model, train, items, item_popularity(train), labels)
    counts = np.diff(train.matrix.indptr)
    ranked = [str(train.user_ids[i]) for i in np.argsort(-counts, kind="stable")]
    (home / "users.json").write_text(json.dumps(ranked))


def run_load(spec: dict[str, object]) -> dict[str, object]:
    """Run one load phase in this (separate) process."""
    url, users, k = str(spec["url"]), list(spec["users"]), int(spec["k"])  # type: ignore[arg-type]
    if spec["mode"] == "open":
        rate = float(spec["rate"])  # type: ignore[arg-type]
        rows = open_loop(url, users, rate, int(spec["workers"]), k)  # type: ignore[arg-type]
        return summarize_open_loop(rows, rate)
    return closed_loop(url, users, int(spec["concurrency"]), k)  # type: ignore[arg-type]


def load_phase(**spec: object) -> dict[str, object]:
    """A load phase from a separate Python process (the generator never shares the server's GIL)."""
    out = subprocess.run(
        [sys.executable, __file__, "--load", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def start_server(
    cmd: list[str], env: dict[str, str], ready_path: str
) -> tuple[str, subprocess.Popen]:
    port = free_port()
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, ready_path, proc)
    except Exception:
        stop_server(proc)
        raise
    return url, proc


def stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


def batch_all_users(model_name: str) -> dict[str, float]:
    """Top-10 for every ML-100K user in-process (what the batch asset does), seconds."""
    import pandas as pd

    from recs_assets.core.models.base import InteractionMatrix
    from recs_assets.core.serving.artifacts import model_class
    from recs_assets.core.serving.batch_scoring import batch_top_k

    raw = pd.read_csv(
        ML100K / "u.data", sep="\t", names=["user_id", "item_id", "r", "t"], dtype=str
    )
    train = InteractionMatrix.from_frame(raw)
    params = {"lam": 500.0} if model_name == "ease" else {}
    model = model_class(model_name)(**params).fit(train)
    users = np.arange(train.n_users)
    batch_top_k(model, users, 10, exclude=train.matrix)  # warm-up
    t0 = time.perf_counter()
    batch_top_k(model, users, 10, exclude=train.matrix)
    return {
        "users": int(train.n_users),
        "items": int(train.n_items),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop requests per second")
    parser.add_argument("--requests", type=int, default=6000, help="open-loop requests")
    parser.add_argument("--workers", type=int, default=16, help="open-loop sender threads")
    parser.add_argument("--throughput-requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=8, help="closed-loop connections")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--zipf-a", type=float, default=1.1)
    parser.add_argument(
        "--model", default="ease", choices=["ease", "popularity", "als", "blend", "ranker"]
    )
    parser.add_argument("--load", help=argparse.SUPPRESS)  # internal: run the load generator
    args = parser.parse_args()
    if args.load:
        print(json.dumps(run_load(json.loads(args.load))))
        return

    os.environ["BENTOML_DO_NOT_TRACK"] = "True"
    tmp = Path(tempfile.mkdtemp(prefix="recs-bench-"))
    home = tmp / "bentoml"
    export_ml100k(home, args.model)
    ranked = json.loads((home / "users.json").read_text())
    users = zipf_users(ranked, args.requests, args.zipf_a, 0.05, 0)
    prefix = f"recs-bench-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "BENTOML_HOME": str(home),
        "RECS_REDIS_URL": "redis://127.0.0.1:6379/14",
        "RECS_CACHE_PREFIX": prefix,
        "RECS_CACHE_TTL_S": "3600",
    }
    # Closed-loop cache-hit traffic: known users already answered (and so cached) in the open loop.
    known = [u for u in dict.fromkeys(users) if not u.startswith("new-")]
    hot = [known[i % len(known)] for i in range(args.throughput_requests)]
    closed = {"users": hot, "concurrency": args.concurrency, "k": args.k, "mode": "closed"}
    report: dict[str, object] = {
        "model": args.model,
        "zipf_a": args.zipf_a,
        "cpus": os.cpu_count(),
        "workers_per_service": serving_workers(),  # what bentoml serve starts (RECS_WORKERS)
    }
    try:
        url, proc = start_server(
            [sys.executable, "-m", "bentoml", "serve", "bento.service:RecsService"], env, "/readyz"
        )
        try:
            report["open_loop"] = load_phase(
                url=url, users=users, rate=args.rate, workers=args.workers, k=args.k, mode="open"
            )
            report["recs_cache_hit_closed_loop"] = load_phase(url=url, **closed)
        finally:
            stop_server(proc)
        for name, cmd, ready in (
            (
                "hello_world_bentoml",
                [sys.executable, "-m", "bentoml", "serve", "bench.hello_service:Hello"],
                "/readyz",
            ),
            (
                "bare_starlette",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "bench.starlette_app:app",
                    "--log-level",
                    "warning",
                ],
                "/recommend",
            ),
        ):
            url, proc = start_server(cmd, env, ready)
            try:
                report[name] = load_phase(url=url, **closed)
            finally:
                stop_server(proc)
    finally:
        import redis

        client = redis.Redis.from_url("redis://127.0.0.1:6379/14")
        stale = client.keys(f"{prefix}:*")
        if stale:
            client.delete(*stale)
    hit = report["recs_cache_hit_closed_loop"]["throughput_rps"]  # type: ignore[index]
    hello = report["hello_world_bentoml"]["throughput_rps"]  # type: ignore[index]
    report["cache_hit_throughput_vs_hello_world"] = round(hit / hello, 3)
    report["batch_top10_all_users"] = batch_all_users(args.model)
    print(json.dumps(report, indent=2))
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
