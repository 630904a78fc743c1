"""Fault drills against a running recs service: what a hostile client or a failing dependency does.

Run from the repository root (needs ``redis-server`` on the PATH; MovieLens 100K under
``../shared/data/ml-100k``)::

    .venv/bin/python bench/faults.py [--model ease --seconds 8 --rate 50]

Fits the model on MovieLens 100K, exports it into a temporary BENTOML_HOME and starts
``bentoml serve bento.service:RecsService`` with a private ``redis-server`` as its cache. Then:

1. **oversized body**: a 50 MB ``/recommend`` body (declared length; the client waits for the
   answer before sending it) and the same body streamed in chunks: status and milliseconds;
2. **large batch beside small requests** (after a warm-up that is not measured): ``/recommend`` open loop at ``--rate`` requests/s from a
   separate process, alone, then while another client sends maximal ``/recommend_batch`` requests
   (``RECS_MAX_BATCH_USERS`` users and the k that fills ``RECS_MAX_BATCH_ITEMS``) back to back:
   p50/p99/max of ``/recommend`` and the batch's own time; with one worker (the local default),
   then with one worker per core (at least 2; the production default);
3. **unknown paths**: 1,000 GETs of random paths; ``/metrics`` lines before and after;
4. **Redis killed, then hung** (SIGKILL, restart; SIGSTOP for 3 s, SIGCONT) under the open loop:
   answers that were not 200 and p99 in each phase;
5. **corrupt model at start-up**: ``bentoml serve`` of a model whose files are garbage: exit status,
   seconds to exit and the lines it printed.

Prints the report and writes bench/results/faults.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import (  # noqa: E402 - the sibling benchmark's helpers
    REPO,
    _quantiles,
    export_ml100k,
    load_phase,
    open_loop,
    start_server,
    stop_server,
    zipf_users,
)

from recs_assets.core.serving.launch import free_port, serve_until_exit  # noqa: E402

SERVICE = [sys.executable, "-m", "bentoml", "serve", "bento.service:RecsService"]


def start_redis(port: int, folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"redis-server did not start on port {port}")


def oversized_body(url: str, mb: int = 50) -> dict[str, object]:
    """A body of ``mb`` MB: declared in Content-Length (the answer is read before sending it, as
    a client with ``Expect: 100-continue`` would), then streamed in chunks without a length."""
    host, port = url.removeprefix("http://").split(":")
    size = mb * 1024 * 1024
    out: dict[str, object] = {}
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    started = time.perf_counter()
    conn.putrequest("POST", "/recommend")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    r = conn.getresponse()
    r.read()
    out["declared"] = {"status": r.status, "ms": round((time.perf_counter() - started) * 1e3, 1)}
    conn.close()

    chunk = b"[" + b'"x",' * 262_144  # about 1 MB per chunk
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    started = time.perf_counter()
    sent = 0
    try:
        conn.putrequest("POST", "/recommend")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        while sent < size:
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        conn.send(b"0\r\n\r\n")
        r = conn.getresponse()
        r.read()
        status: int | str = r.status
    except OSError as exc:  # the server answered and closed while the body was still coming
        try:
            r = conn.getresponse()
            r.read()
            status = r.status
        except (OSError, http.client.HTTPException):
            status = f"connection closed ({type(exc).__name__})"
    out["chunked"] = {
        "status": status,
        "ms": round((time.perf_counter() - started) * 1e3, 1),
        "mb_sent_before_answer": round(sent / 2**20, 1),
    }
    conn.close()
    return out


def batch_beside_small(
    url: str, users: list[str], rate: float, seconds: float, batch_users: int, batch_k: int
) -> dict[str, object]:
    """``/recommend`` p50/p99 alone, then while maximal batches run back to back."""
    n = int(rate * seconds)
    # warm-up, not measured: the first few hundred answers of a new worker are slower (first
    # connections, lazily built structures), and one batch
    load_phase(
        mode="open",
        url=url,
        users=zipf_users(users, 300, 1.0, 0.05, seed=2),
        rate=rate,
        workers=8,
        k=10,
    )
    warm = json.dumps({"user_ids": users[:batch_users], "k": batch_k}).encode()
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("POST", "/recommend_batch", warm, {"Content-Type": "application/json"})
    conn.getresponse().read()
    conn.close()
    small = zipf_users(users, n, 1.0, 0.05, seed=3)
    alone = load_phase(mode="open", url=url, users=small, rate=rate, workers=8, k=10)

    stop = threading.Event()
    batch_ms: list[float] = []
    statuses: list[int] = []

    def batches() -> None:
        rng = random.Random(5)
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        while not stop.is_set():
            body = json.dumps(
                {"user_ids": rng.choices(users, k=batch_users), "k": batch_k}
            ).encode()
            started = time.perf_counter()
            conn.request("POST", "/recommend_batch", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            batch_ms.append((time.perf_counter() - started) * 1e3)
            statuses.append(r.status)
        conn.close()

    failures: list[BaseException] = []

    def guarded() -> None:
        try:
            batches()
        except BaseException as exc:  # re-raised in the main thread below
            failures.append(exc)
            raise

    worker = threading.Thread(target=guarded)
    worker.start()
    time.sleep(0.5)
    small2 = zipf_users(users, n, 1.0, 0.05, seed=4)
    try:
        beside = load_phase(mode="open", url=url, users=small2, rate=rate, workers=8, k=10)
    finally:
        stop.set()
        worker.join(120)
    if failures:
        raise RuntimeError("the batch client failed") from failures[0]
    return {
        "rate": rate,
        "alone": alone,
        "beside_batches": beside,
        "batches": len(batch_ms),
        "batch_statuses": sorted(set(statuses)),
        "batch_ms": _quantiles(batch_ms),
        "batch_users": batch_users,
        "batch_k": batch_k,
    }


def unknown_paths(url: str, n: int = 1000) -> dict[str, int]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)

    def get(path: str) -> tuple[int, bytes]:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()

    get("/warm-up-unknown")
    before = len(get("/metrics")[1].splitlines())
    codes = [get(f"/{uuid.uuid4().hex}/{i}")[0] for i in range(n)]
    after = len(get("/metrics")[1].splitlines())
    conn.close()
    return {"requests": n, "404s": codes.count(404), "lines_before": before, "lines_after": after}


def redis_faults(
    url: str, users: list[str], rate: float, redis_proc: subprocess.Popen, port: int, tmp: Path
) -> tuple[dict[str, object], subprocess.Popen]:
    """Open loop while Redis is killed (then restarted), then hung with SIGSTOP for 3 s."""
    phases: dict[str, object] = {}
    n = int(rate * 9)
    load: dict[str, object] = {}

    def run(name: str, seed: int) -> None:
        picks = zipf_users(users, n, 1.0, 0.05, seed=seed)
        rows = open_loop(url, picks, rate, 8, 10)
        ms = [r[0] for r in rows]
        load[name] = {
            "requests": len(rows),
            "not_200": sum(1 for r in rows if r[2] == "error"),
            **_quantiles(ms),
        }

    t = threading.Thread(target=run, args=("kill", 11))
    t.start()
    time.sleep(3)
    redis_proc.kill()
    redis_proc.wait(10)
    time.sleep(3)
    redis_proc = start_redis(port, tmp)
    t.join()
    phases["redis_killed_3s_then_restarted"] = load["kill"]

    t = threading.Thread(target=run, args=("hang", 12))
    t.start()
    time.sleep(3)
    os.kill(redis_proc.pid, signal.SIGSTOP)
    time.sleep(3)
    os.kill(redis_proc.pid, signal.SIGCONT)
    t.join()
    phases["redis_hung_3s"] = load["hang"]
    return phases, redis_proc


def corrupt_model_start(home: Path) -> dict[str, object]:
    """Serve a copy of the store whose training matrix is garbage: exit status and time."""
    import shutil

    broken = home.parent / "broken-home"
    shutil.copytree(home, broken)
    for f in (broken / "models").rglob("train.npz"):
        f.write_bytes(b"garbage" * 100)
    env = {**os.environ, "BENTOML_HOME": str(broken), "BENTOML_DO_NOT_TRACK": "True"}
    status, lines, seconds = serve_until_exit(env)
    return {
        "exit_status": status,
        "seconds": round(seconds, 2),
        "lines": len(lines),
        "first_line": lines[0][:200] if lines else "",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="ease")
    ap.add_argument("--rate", type=float, default=50.0, help="small requests per second")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of the batch phase")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="recs-faults-"))
    home = tmp / "bentoml"
    export_ml100k(home, args.model)
    users = json.loads((home / "users.json").read_text())
    batch_users = int(os.environ.get("RECS_MAX_BATCH_USERS", "1000"))
    batch_k = min(100, int(os.environ.get("RECS_MAX_BATCH_ITEMS", "10000")) // batch_users)
    redis_port = free_port()
    redis_proc = start_redis(redis_port, tmp)
    env = {
        **os.environ,
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "True",
        "RECS_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "RECS_REDIS_TIMEOUT_S": "0.1",
        "RECS_REDIS_BACKOFF_S": "1",
        "RECS_TRENDING_FILE": "",
    }
    report: dict[str, object] = {"model": args.model, "cores": os.cpu_count()}
    url, proc = start_server(SERVICE, env, "/readyz")
    try:
        report["oversized_body"] = oversized_body(url)
        report["batch_beside_small"] = batch_beside_small(
            url, users, args.rate, args.seconds, batch_users, batch_k
        )
        report["unknown_paths"] = unknown_paths(url)
        report["redis"], redis_proc = redis_faults(
            url, users, args.rate, redis_proc, redis_port, tmp
        )
    finally:
        stop_server(proc)
    # the same drill with one worker per core (the production default): the batch occupies one
    workers = max(2, os.cpu_count() or 1)
    url, proc = start_server(SERVICE, {**env, "RECS_WORKERS": str(workers)}, "/readyz")
    try:
        report[f"batch_beside_small_{workers}_workers"] = batch_beside_small(
            url, users, args.rate, args.seconds, batch_users, batch_k
        )
    finally:
        stop_server(proc)
        redis_proc.kill()
    report["corrupt_model_at_start"] = corrupt_model_start(home)
    print(json.dumps(report, indent=2))
    out = REPO / "bench" / "results" / "faults.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
