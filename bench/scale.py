"""Scale run through the assets themselves: raw -> features -> online store -> datasets.

Usage: .venv/bin/python bench/scale.py --preset 1m [--preset 10m ...]
           [--select 'group:raw or group:features or group:datasets'] [--timeout 5400]
           [--workdir DIR] [--land EVENTS]

For each synthetic preset: a fresh DAGSTER_HOME and data dir in a temporary folder (or kept in
``--workdir``), then ``dagster asset materialize -m recs_assets.definitions --select SELECT
--partition-range <the source's days>`` with
``RECS_SOURCE=synthetic:<preset>`` and default settings otherwise. While it runs, the resident
memory of its process tree is sampled every 0.5 s: the peak of the Python driver and of the Spark
JVM are reported apart. Afterwards the wall time of every step is read from the instance's event
log. A failed step is reported with its error, and a run past ``--timeout`` is killed and reported
as such. Prints a table per preset and writes ``bench/results/scale_<preset>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SELECT = "group:raw or group:features or group:datasets"
LAND_SELECT = "group:raw or group:features"


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def _rss_and_kind(pid: int) -> tuple[int, str]:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return 0, ""
    rss = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")), 0
    )
    return rss * 1024, "jvm" if "java" in Path(cmd).name else "python"


class TreeSampler(threading.Thread):
    """Peak RSS of the driver (largest Python process) and the JVM in a process tree."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peaks = {"python": 0, "jvm": 0}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for p in _tree(self.pid):
                rss, kind = _rss_and_kind(p)
                if kind:
                    self.peaks[kind] = max(self.peaks[kind], rss)
            self.stop.wait(0.5)


def step_times(home: Path, since: float = 0.0) -> list[dict[str, object]]:
    """Each step's wall time and status from the instance's event log (events after ``since``)."""
    from dagster import DagsterEventType, DagsterInstance, EventRecordsFilter

    rows: dict[str, dict[str, object]] = {}
    with DagsterInstance.from_config(str(home)) as instance:
        for kind in (
            DagsterEventType.STEP_START,
            DagsterEventType.STEP_SUCCESS,
            DagsterEventType.STEP_FAILURE,
        ):
            for record in instance.get_event_records(EventRecordsFilter(event_type=kind)):
                entry = record.event_log_entry
                if entry.timestamp < since:
                    continue
                step = entry.step_key or "?"
                row = rows.setdefault(step, {"step": step})
                if kind == DagsterEventType.STEP_START:
                    row["start"] = entry.timestamp
                else:
                    row["end"] = entry.timestamp
                    row["status"] = (
                        "success" if kind == DagsterEventType.STEP_SUCCESS else "failure"
                    )
                    if kind == DagsterEventType.STEP_FAILURE and entry.dagster_event is not None:
                        error = entry.dagster_event.step_failure_data.error
                        row["error"] = error.message.strip()[:500] if error else ""
    out = []
    for row in sorted(rows.values(), key=lambda r: float(r.get("start", 0.0))):
        if "start" in row and "end" in row:
            row["seconds"] = round(float(row["end"]) - float(row["start"]), 1)
        out.append({k: v for k, v in row.items() if k not in ("start", "end")})
    return out


def materialize(
    env: dict[str, str], tmp: Path, select: str, days: str, timeout: float, log_name: str
) -> dict[str, object]:
    """One ``dagster asset materialize`` over ``days``: exit, wall time, peak RSS, step times."""
    bin_dir = Path(sys.executable).parent
    cmd = [str(bin_dir / "dagster"), "asset", "materialize", "-m", "recs_assets.definitions"]
    cmd += ["--partition-range", days, "--select", select]
    started, since = time.monotonic(), time.time()
    with open(tmp / log_name, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        try:
            code: int | str = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for pid in reversed(_tree(proc.pid)):
                with contextlib.suppress(OSError):
                    os.kill(pid, 9)
            proc.wait()
            code = f"killed after {timeout:.0f} s"
        sampler.stop.set()
        sampler.join()
    wall = time.monotonic() - started
    tail = (tmp / log_name).read_text()[-2000:]
    return {
        "select": select,
        "partition_range": days,
        "exit": code,
        "wall_seconds": round(wall, 1),
        "peak_rss_driver_gib": round(sampler.peaks["python"] / 2**30, 2),
        "peak_rss_jvm_gib": round(sampler.peaks["jvm"] / 2**30, 2),
        "steps": step_times(Path(env["DAGSTER_HOME"]), since),
        "log_tail": tail if code != 0 else "",
    }


def landed_days(landing: Path) -> str:
    """FIRST...LAST, the UTC days of the newest landed batch's events."""
    import pandas as pd

    newest = max(landing.glob("batch-*.parquet"), key=lambda f: f.name)
    ts = pd.to_datetime(pd.read_parquet(newest, columns=["timestamp"])["timestamp"], utc=True)
    return f"{ts.min():%Y-%m-%d}...{ts.max():%Y-%m-%d}"


def run_preset(
    preset: str,
    select: str,
    timeout: float,
    workdir: Path | None = None,
    land: int = 0,
    land_select: str = LAND_SELECT,
) -> dict[str, object]:
    keep = contextlib.nullcontext(str(workdir)) if workdir else None
    with keep or tempfile.TemporaryDirectory(prefix=f"recs-scale-{preset}-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "DAGSTER_HOME": str(tmp / "dagster_home"),
            "RECS_DATA_DIR": str(tmp / "data"),
            "RECS_SOURCE": f"synthetic:{preset}",
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
            "RECS_REDIS_URL": "",
        }
        recs = str(Path(sys.executable).parent / "recs")
        subprocess.run([recs, "dagster-home"], env=env, check=True)
        days = subprocess.run(
            [recs, "partition-range"], env=env, check=True, capture_output=True, text=True
        ).stdout.strip()
        result = {"preset": preset, **materialize(env, tmp, select, days, timeout, "run.log")}
        if land and result["exit"] == 0:
            # one day of new events lands; the raw tables take in its days, then the features
            # and the online store are brought up to date (what the landing sensor requests)
            subprocess.run(
                [recs, "generate-batch", "-n", str(land), "--days", "1", "--seed", "1"],
                env=env,
                check=True,
            )
            batch_days = landed_days(tmp / "data" / "landing")
            result["landing"] = {
                "events": land,
                **materialize(env, tmp, land_select, batch_days, timeout, "landing.log"),
            }
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", required=True, help="synthetic preset(s)")
    parser.add_argument("--select", default=DEFAULT_SELECT, help="Dagster asset selection")
    parser.add_argument("--timeout", type=float, default=5400, help="seconds per preset")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep the instance and data here (one preset); a second run with another --select "
        "reuses what the first materialized",
    )
    parser.add_argument(
        "--land",
        type=int,
        default=0,
        help="after the run, land a one-day batch of this many events and bring the raw and "
        "feature groups up to date over its days (timed apart)",
    )
    args = parser.parse_args()
    if args.workdir and len(args.preset) > 1:
        parser.error("--workdir takes one --preset")
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    for preset in args.preset:
        result = run_preset(preset, args.select, args.timeout, args.workdir, args.land)
        (out_dir / f"scale_{preset}.json").write_text(json.dumps(result, indent=2) + "\n")
        report(preset, result)
        if "landing" in result:
            report(f"{preset}, one landed day", result["landing"])  # type: ignore[arg-type]


def report(title: str, result: dict[str, object]) -> None:
    print(
        f"\n{title}: exit {result['exit']}, {result['wall_seconds']} s, peak RSS driver "
        f"{result['peak_rss_driver_gib']} GiB, JVM {result['peak_rss_jvm_gib']} GiB"
    )
    for step in result["steps"]:  # type: ignore[union-attr]
        line = f"  {step['step']:<60} {step.get('seconds', '?'):>8} s  {step.get('status', '')}"
        print(line + (f"  {step['error']}" if step.get("error") else ""))
    if result["log_tail"]:
        print(result["log_tail"])


if __name__ == "__main__":
    main()
