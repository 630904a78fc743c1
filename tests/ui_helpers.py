"""Helpers for tests that drive real servers in subprocesses and a real headless Chromium."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Page

from recs_assets.core.paths import REPO_ROOT as REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers 2xx/3xx; fail with the server's output if it died."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(
                f"server exited with {proc.returncode} before answering:\n{out[-4000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 400:
                    return
        except Exception as exc:  # noqa: BLE001 - retried until the deadline, then re-raised
            last = exc
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last}")


@contextlib.contextmanager
def server_process(
    args: list[str], ready_path: str, port: int, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Run a server subprocess (``args``) listening on ``port``; yield its URL once
    ``ready_path`` answers, and stop it afterwards."""
    proc = subprocess.Popen(
        args,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}{ready_path}", timeout=120, proc=proc)
        yield url
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Terminate ``proc``; kill it when it has not exited after ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextlib.contextmanager
def dagster_daemon(env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """A real ``dagster-daemon`` over the repo's workspace with ``env`` (``DAGSTER_HOME`` set),
    stopped afterwards."""
    exe = Path(sys.executable).parent / "dagster-daemon"
    proc = subprocess.Popen(
        [str(exe), "run", "-w", str(REPO / "workspace.yaml")],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        stop_process(proc, timeout=30)


@contextlib.contextmanager
def dagster_webserver(dagster_home: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``dagster-webserver`` on a free loopback port with the repo's workspace; yield its URL."""
    port = free_port()
    exe = Path(sys.executable).parent / "dagster-webserver"
    args = [str(exe), "-h", "127.0.0.1", "-p", str(port), "-w", str(REPO / "workspace.yaml")]
    with server_process(
        args, "/server_info", port, {"DAGSTER_HOME": str(dagster_home), **(env or {})}
    ) as url:
        wait_code_location(url)
        yield url


_LOCATIONS_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def wait_code_location(url: str, timeout: float = 300) -> None:
    """Wait until every code location of the webserver is loaded; fail with its load error."""
    deadline = time.monotonic() + timeout
    entries: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        body = json.dumps({"query": _LOCATIONS_QUERY}).encode()
        req = urllib.request.Request(
            f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            data = json.load(resp)["data"]["workspaceOrError"]
        entries = data.get("locationEntries", [])
        if entries and all(e["loadStatus"] == "LOADED" for e in entries):
            for e in entries:
                loaded = e["locationOrLoadError"] or {}
                if loaded.get("__typename") == "PythonError":
                    raise RuntimeError(f"code location {e['name']} failed: {loaded['message']}")
            return
        time.sleep(1)
    raise TimeoutError(f"code locations not loaded within {timeout}s: {entries}")


def dismiss_dagster_dialogs(page: Page) -> None:
    """Keep the newsletter dialog a fresh Dagster home shows on localhost out of the way.

    The UI stores its dismissal in local storage (``communityNux``), set here before every page
    load. Should it still appear, its Skip button is clicked by event: a dialog opened above it
    (the launchpad) would take a pointer click."""
    page.add_init_script("window.localStorage.setItem('communityNux', JSON.stringify('1'))")
    page.add_locator_handler(
        page.get_by_role("button", name="Skip"), lambda skip: skip.dispatch_event("click")
    )


def dagster_materialize(env: dict[str, str], selection: str, *extra: str) -> None:
    """``dagster asset materialize`` of ``selection`` (plus ``extra`` flags) over the repo's
    definitions, as a person runs it; fails with its output."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "asset", "materialize"]
        + ["-m", "recs_assets.definitions", "--select", selection, *extra],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
