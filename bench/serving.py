"""Serving benchmark: Zipf-distributed user replay against the recs service and two references.

Run from the repository root (Redis on 127.0.0.1:6379; uses db 14 under a unique prefix)::

    .venv/bin/python bench/serving.py --requests 3000 --concurrency 8 --model ease

Fits the model on MovieLens 100K, exports it into a temporary BENTOML_HOME, starts
``bentoml serve bento.service:RecsService`` with Redis, a hello-world BentoML service and a bare
Starlette app, then replays requests from a separate process (users drawn from a Zipf law over
the users ranked by activity, plus 5% unknown users) and prints p50/p95/p99 latency,
throughput and the cache hit ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ML100K = REPO.parent / "shared" / "data" / "ml-100k"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def load(url: str, users: list[str], concurrency: int, k: int) -> dict[str, float]:
    """Replay ``users`` against ``url``/recommend from ``concurrency`` threads."""
    import httpx

    latencies: list[float] = []
    sources: dict[str, int] = {}
    failures = 0
    lock = threading.Lock()
    chunks = [users[i::concurrency] for i in range(concurrency)]

    def worker(chunk: list[str]) -> None:
        nonlocal failures
        with httpx.Client(base_url=url, timeout=30) as http:
            for uid in chunk:
                start = time.perf_counter()
                r = http.post("/recommend", json={"user_id": uid, "k": k})
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
                    if r.status_code != 200:
                        failures += 1
                    else:
                        src = r.json().get("source", "?")
                        sources[src] = sources.get(src, 0) + 1

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    lat = np.array(latencies) * 1000
    served = sum(sources.values())
    return {
        "requests": len(users),
        "failures": failures,
        "throughput_rps": round(len(users) / wall, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p95_ms": round(float(np.percentile(lat, 95)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "cache_hit_ratio": round(sources.get("cache", 0) / served, 3) if served else 0.0,
        "fallback_share": round(sources.get("fallback", 0) / served, 3) if served else 0.0,
    }


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

    from recs_assets.models.base import InteractionMatrix
    from recs_assets.serving.artifacts import model_class
    from recs_assets.serving.champion import item_popularity
    from recs_assets.serving.export import export_model

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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--zipf-a", type=float, default=1.1)
    parser.add_argument("--model", default="ease", choices=["ease", "popularity"])
    parser.add_argument("--load", help=argparse.SUPPRESS)  # internal: run the load generator
    args = parser.parse_args()
    if args.load:
        spec = json.loads(args.load)
        print(json.dumps(load(spec["url"], spec["users"], spec["concurrency"], spec["k"])))
        return

    os.environ["BENTOML_DO_NOT_TRACK"] = "True"
    tmp = Path(tempfile.mkdtemp(prefix="recs-bench-"))
    home = tmp / "bentoml"
    export_ml100k(home, args.model)
    users = zipf_users(
        json.loads((home / "users.json").read_text()), args.requests, args.zipf_a, 0.05, 0
    )
    prefix = f"recs-bench-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "BENTOML_HOME": str(home),
        "RECS_REDIS_URL": "redis://127.0.0.1:6379/14",
        "RECS_CACHE_PREFIX": prefix,
    }
    targets = {
        "recs (BentoML + Redis)": (
            [sys.executable, "-m", "bentoml", "serve", "bento.service:RecsService"],
            "/readyz",
        ),
        "hello-world BentoML": (
            [sys.executable, "-m", "bentoml", "serve", "bench.hello_service:Hello"],
            "/readyz",
        ),
        "bare Starlette (uvicorn)": (
            [sys.executable, "-m", "uvicorn", "bench.starlette_app:app", "--log-level", "warning"],
            "/docs",
        ),
    }
    results: dict[str, dict[str, float]] = {}
    try:
        for name, (cmd, ready_path) in targets.items():
            port = free_port()
            cmd = [*cmd, "--port", str(port)]
            proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                url = f"http://127.0.0.1:{port}"
                wait_ready(url, ready_path, proc)
                spec = json.dumps(
                    {"url": url, "users": users, "concurrency": args.concurrency, "k": args.k}
                )
                out = subprocess.run(
                    [sys.executable, __file__, "--load", spec],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results[name] = json.loads(out.stdout)
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
    finally:
        import redis

        client = redis.Redis.from_url("redis://127.0.0.1:6379/14")
        stale = client.keys(f"{prefix}:*")
        if stale:
            client.delete(*stale)
    cols = [
        "requests",
        "failures",
        "throughput_rps",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "cache_hit_ratio",
        "fallback_share",
    ]
    print(
        f"model={args.model} requests={args.requests} concurrency={args.concurrency} zipf_a={args.zipf_a}"
    )
    print("| target | " + " | ".join(cols) + " |")
    print("| --- |" + " --- |" * len(cols))
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
