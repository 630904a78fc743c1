"""Start the recommendation service (``bentoml serve bento.service:RecsService``) as a process:
what the benchmarks, the drills and the HTTP tests share."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from recs_assets.core.paths import REPO_ROOT

SERVICE = "bento.service:RecsService"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    """A ``bentoml serve`` process and its URL."""

    proc: subprocess.Popen
    url: str
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def start_service(
    env: dict[str, str],
    log: Path,
    timeout_s: float = 180,
    service: str = SERVICE,
    python: str = sys.executable,
    cwd: Path = REPO_ROOT,
) -> Service:
    """``bentoml serve bento.service:RecsService`` on a free port, once ``/readyz`` answers.

    ``service`` may be a built Bento's tag, ``python`` another environment's interpreter (the
    one holding that Bento's requirements) and ``cwd`` a folder outside the checkout.
    """
    import httpx

    port = free_port()
    fh = open(log, "w")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [python, "-m", "bentoml", "serve", service, "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=fh,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    running = Service(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"bentoml serve exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{running.url}/readyz", timeout=1).status_code == 200:
                return running
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    running.stop()
    raise RuntimeError(f"bentoml serve not ready after {timeout_s} s:\n{log.read_text()[-3000:]}")


def serve_until_exit(
    env: dict[str, str], timeout_s: float = 120, service: str = SERVICE
) -> tuple[int, list[str], float]:
    """``bentoml serve`` for a start-up that should stop by itself (a broken configuration or
    model): (exit status, the lines it printed, seconds it ran)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bentoml", "serve", service, "--port", str(free_port())],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    said = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode, said, time.monotonic() - started
