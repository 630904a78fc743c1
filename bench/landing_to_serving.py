"""Landing-to-serving drill: how long from a batch landing to the running service answering with
the model trained on it, and how fresh the online features are by then.

Run from the repository root (everything goes to a temporary workspace: Dagster home, data dir,
landing folder, MLflow store, BentoML store)::

    .venv/bin/python bench/landing_to_serving.py                 # synthetic default
    .venv/bin/python bench/landing_to_serving.py --source movielens:../shared/data/ml-100k

Steps:

1. baseline: ``refresh_job`` (raw -> features -> datasets -> models -> champion -> Bento) runs once
   in a Dagster process of its own, and the landing sensor's cursor is initialised;
2. ``bentoml serve bento.service:RecsService`` starts on that model, following the champion alias
   every ``--poll-s`` seconds;
3. a batch lands (``recs generate-batch`` for the synthetic source; sampled unseen (user, item)
   ratings for MovieLens), then, in a new Dagster process, the landing sensor of
   ``recs_assets.definitions`` is evaluated with its cursor and the job it requests runs in-process
   with the request's tags (what the daemon's run worker would do, minus the sensor interval of
   up to 30 s and the queueing);
4. the service is polled until it answers with the new champion version.

Reported (seconds from the batch file's rename into the landing folder): features in the online
store, Bento exported, new version served; and the feature-freshness lag of the online store
(newest raw event vs newest online feature value, ``online_feature_store`` metadata). The model
families default to ``popularity,ease`` with tuning off (``--families all`` for every pipeline
family) so that the number measures the plumbing, not the slowest learner. Prints one JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recs_assets.core.serving.launch import start_service

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FAMILIES = "popularity,ease"
TUNED = ("ease", "rp3beta", "lightfm", "ncf")  # families with a {family}_tuning asset
CURSOR_FILE = "landing_cursor.json"


def workspace_env(
    workdir: Path, source: str = "synthetic", families: str = DEFAULT_FAMILIES, poll_s: float = 1.0
) -> dict[str, str]:
    """Environment of the Dagster processes and the service: everything under ``workdir``."""
    kind, _, folder = source.partition(":")
    if kind in ("movielens", "files") and folder:  # the Dagster processes run in workdir
        source = f"{kind}:{Path(folder).resolve()}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RECS_", "DAGSTER_", "MLFLOW_", "BENTOML_"))
    }
    env.update(
        {
            "RECS_SOURCE": source,
            "RECS_DATA_DIR": str(workdir / "data"),
            "RECS_LANDING_DIR": str(workdir / "data" / "landing"),
            "DAGSTER_HOME": str(workdir / "dagster_home"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow' / 'mlflow.db'}",
            "BENTOML_HOME": str(workdir / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "True",
            "RECS_MODEL_POLL_S": str(poll_s),
            "RECS_SPARK_SHUFFLE_PARTITIONS": "2",
            "PYTHONHASHSEED": "0",
        }
    )
    if families != "all":
        env["RECS_MODEL_FAMILIES"] = families
    return env


def run_config(families: str, n_trials: int) -> dict[str, Any]:
    """Tuning budget ``n_trials`` for every tuned family that is built."""
    names = TUNED if families == "all" else [f for f in families.split(",") if f in TUNED]
    return {"ops": {f"{f}_tuning": {"config": {"n_trials": n_trials}} for f in names}}


# ---- inside a Dagster process (the environment of workspace_env) -------------------------------
def _run_summary(instance: Any, result: Any) -> dict[str, Any]:
    """Success, failed steps, when each step finished (epoch s), champion, Bento tag, lag."""
    from recs_assets.core.paths import data_subdir
    from recs_assets.core.table_store import read_table
    from recs_assets.platform.table_io_manager import TABLES_DIR_ENV

    done: dict[str, float] = {}
    failed: list[str] = []
    for entry in instance.all_logs(result.run_id):
        event = entry.dagster_event
        if event is None or entry.step_key is None:
            continue
        if event.event_type_value == "STEP_SUCCESS":
            done[entry.step_key] = entry.timestamp
        elif event.event_type_value == "STEP_FAILURE":
            failed.append(entry.step_key)

    def meta(node: str, key: str, asset: str | None = None) -> Any:
        found = [
            m.metadata.get(key)
            for m in result.asset_materializations_for_node(node)
            if asset is None or m.asset_key.to_user_string() == asset
        ]
        return found[-1].value if found and found[-1] is not None else None

    return {
        "run_id": result.run_id,
        "success": result.success,
        "failed_steps": sorted(failed),
        "step_done_at": done,
        "champion": meta("champion_model", "champion"),
        "bento_tag": meta("bento_model", "tag"),
        # every day of the table on storage, not only the days this run rewrote
        "raw_interactions": len(
            read_table(data_subdir("tables", TABLES_DIR_ENV), "raw_interactions")
        ),
        "freshness_lag_s": meta("online_feature_store", "freshness_lag_s"),
        "newest_raw_event": meta("online_feature_store", "newest_raw_event"),
    }


def dagster_step(step: str, workdir: Path, n_trials: int) -> dict[str, Any]:
    """``baseline``: run ``refresh_job`` and initialise the landing sensor's cursor. ``tick``:
    evaluate the landing sensor with its cursor and run what it requests."""
    from dagster import DagsterInstance, SensorResult, build_sensor_context

    from recs_assets.automation.landing_source import LandedPhase1Source
    from recs_assets.core.phase1.daily import day_range, event_days
    from recs_assets.definitions import defs
    from recs_assets.models.mlflow_tracker import MlflowTracker
    from recs_assets.raw.partitions import range_tags

    # the experiment's artifacts go under workdir (a bare sqlite URI would put them in ./mlruns)
    MlflowTracker(local_root=str(workdir / "mlflow")).experiment_id()
    config = run_config(os.environ.get("RECS_MODEL_FAMILIES", "all"), n_trials)
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    instance = DagsterInstance.get()
    sensor = defs.get_sensor_def("landing_sensor")
    cursor_path = workdir / CURSOR_FILE
    cursor = json.loads(cursor_path.read_text()) if cursor_path.is_file() else None
    out: dict[str, Any] = {"step": step, "sensor_job": sensor.job_name}
    if step == "baseline":
        job = defs.resolve_job_def(sensor.job_name)
        source = LandedPhase1Source.from_spec(os.environ["RECS_SOURCE"])
        days = day_range(event_days(source.load().interactions["timestamp"]))
        assert days is not None, "the source has no dated event"
        result = job.execute_in_process(
            run_config=config,
            instance=instance,
            tags={"recs/trigger": "baseline", **range_tags(*days)},
        )
        out["run"] = _run_summary(instance, result)
    tick = sensor(build_sensor_context(instance=instance, cursor=cursor))
    if not isinstance(tick, SensorResult):
        raise TypeError(f"landing sensor returned {type(tick).__name__}, expected SensorResult")
    cursor_path.write_text(json.dumps(tick.cursor))
    out["cursor"] = tick.cursor
    out["requests"] = [
        {"run_key": r.run_key, "job_name": r.job_name or sensor.job_name, "tags": dict(r.tags)}
        for r in tick.run_requests
    ]
    if step == "tick":
        runs = []
        for r, request in zip(out["requests"], tick.run_requests, strict=True):
            result = defs.resolve_job_def(r["job_name"]).execute_in_process(
                run_config=config,
                instance=instance,
                tags={**request.tags, "dagster/sensor_name": sensor.name},
            )
            runs.append(_run_summary(instance, result))
        out["runs"] = runs
    return out


# ---- the driver ------------------------------------------------------------------------------
def run_step(step: str, workdir: Path, env: dict[str, str], n_trials: int = 0) -> dict[str, Any]:
    """Run ``dagster_step`` in a fresh Python process; returns its JSON report."""
    log = workdir / f"dagster-{step}.log"
    out = workdir / f"dagster-{step}.json"
    with open(log, "a") as fh:
        proc = subprocess.run(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "step",
                step,
                "--workdir",
                str(workdir),
                "--trials",
                str(n_trials),
                "--out",
                str(out),
            ],
            cwd=workdir,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"dagster step {step} failed:\n{log.read_text()[-4000:]}")
    return json.loads(out.read_text())


def served_version(url: str) -> str:
    import httpx

    return str(httpx.post(f"{url}/model_info", json={}, timeout=5).json()["model_version"])


@dataclass
class VersionWatch:
    """Polls ``/model_info`` in a thread and notes when the version first differs from ``old``."""

    url: str
    old: str
    interval_s: float = 0.2
    changed_at: float | None = None
    new: str | None = None
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set() and self.changed_at is None:
            try:
                version = served_version(self.url)
                if version != self.old:
                    self.new, self.changed_at = version, time.time()
            except Exception as err:  # noqa: BLE001 - recorded, the caller asserts on it
                self.errors.append(f"{type(err).__name__}: {err}")
            self._stop.wait(self.interval_s)

    def start(self) -> VersionWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout_s: float) -> float | None:
        """Wait up to ``timeout_s`` for the change; returns when it was seen (epoch s) or None."""
        assert self._thread is not None
        self._thread.join(timeout_s)
        self._stop.set()
        return self.changed_at


def land_synthetic_batch(env: dict[str, str], events: int, seed: int) -> Path:
    """``recs generate-batch`` into the landing folder; returns the new file."""
    landing = Path(env["RECS_LANDING_DIR"])
    before = set(landing.glob("*")) if landing.is_dir() else set()
    subprocess.run(
        [str(Path(sys.executable).parent / "recs"), "generate-batch", "-n", str(events)]
        + ["--seed", str(seed)],
        env=env,
        check=True,
        capture_output=True,
    )
    (new,) = set(landing.glob("batch-*")) - before
    return new


def land_movielens_batch(env: dict[str, str], folder: Path, events: int, seed: int) -> Path:
    """``events`` ratings of (user, item) pairs not in ``u.data``, items drawn by popularity,
    timestamps in the day after the newest rating; written atomically (temp file, rename)."""
    import numpy as np
    import pandas as pd

    raw = pd.read_csv(folder / "u.data", sep="\t", names=["user", "item", "rating", "unix"])
    rng = np.random.default_rng(seed)
    seen = set(zip(raw["user"], raw["item"], strict=True))
    pop = raw["item"].value_counts()
    users = rng.choice(raw["user"].unique(), size=events * 2)
    items = rng.choice(pop.index.to_numpy(), size=events * 2, p=(pop / pop.sum()).to_numpy())
    pairs = [(u, i) for u, i in zip(users, items, strict=True) if (u, i) not in seen]
    pairs = list(dict.fromkeys(pairs))[:events]
    start = pd.Timestamp(int(raw["unix"].max()), unit="s", tz="UTC") + pd.Timedelta(seconds=1)
    offsets = np.sort(rng.uniform(0, 86_400, size=len(pairs)))
    batch = pd.DataFrame(
        {
            "event_id": [f"landed-{seed}-{n}" for n in range(len(pairs))],
            "user_id": [str(u) for u, _ in pairs],
            "item_id": [str(i) for _, i in pairs],
            "event_type": "rate",
            "timestamp": start + pd.to_timedelta(offsets, unit="s"),
            "rating": rng.integers(3, 6, size=len(pairs)).astype(float),
        }
    )
    landing = Path(env["RECS_LANDING_DIR"])
    landing.mkdir(parents=True, exist_ok=True)
    name = f"batch-{start:%Y%m%dT%H%M%S}-{seed}.parquet"
    tmp = landing / f".{name}.tmp"
    batch.to_parquet(tmp, index=False)
    tmp.rename(landing / name)
    return landing / name


def drill(
    workdir: Path,
    source: str = "synthetic",
    families: str = DEFAULT_FAMILIES,
    events: int = 2000,
    poll_s: float = 1.0,
    n_trials: int = 0,
    serve_timeout_s: float = 120,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Baseline, service, landed batch, sensor tick and run, new version served; the report."""
    env = workspace_env(workdir, source, families, poll_s)
    t0 = time.time()
    baseline = run_step("baseline", workdir, env, n_trials)
    log(f"baseline {baseline['run']['champion']} in {time.time() - t0:.1f} s")
    if not baseline["run"]["success"]:
        raise RuntimeError(f"baseline run failed: {baseline['run']['failed_steps']}")
    service = start_service(env, workdir / "serve.log")
    watch: VersionWatch | None = None
    try:
        old = served_version(service.url)
        log(f"service on {service.url} serves {old}")
        watch = VersionWatch(service.url, old).start()
        if source.startswith("movielens:"):
            path = land_movielens_batch(env, Path(source.split(":", 1)[1]), events, seed=7)
        else:
            path = land_synthetic_batch(env, events, seed=7)
        landed_at = path.stat().st_mtime
        log(f"landed {path.name}")
        tick = run_step("tick", workdir, env, n_trials)
        seen = watch.wait(serve_timeout_s)
        final = served_version(service.url)
    finally:
        if watch is not None:
            watch.wait(0)
        service.stop()
    run = tick["runs"][0] if tick["runs"] else {}
    done = run.get("step_done_at", {})

    def since_landing(step: str) -> float | None:
        return round(done[step] - landed_at, 1) if step in done else None

    return {
        "source": source,
        "families": families,
        "events": events,
        "poll_s": poll_s,
        "baseline_version": old,
        "baseline_requests": baseline["requests"],
        "baseline_cursor": baseline["cursor"],
        "baseline_raw_interactions": baseline["run"]["raw_interactions"],
        "baseline_newest_day": str(baseline["run"]["newest_raw_event"])[:10],
        "landed_file": path.name,
        "sensor_job": tick["sensor_job"],
        "requests": tick["requests"],
        "cursor": tick["cursor"],
        "raw_interactions": run.get("raw_interactions"),
        "run_success": run.get("success"),
        "failed_steps": run.get("failed_steps"),
        "champion": run.get("champion"),
        "served_version": final,
        "watch_errors": watch.errors[:5],
        "seconds_to_features": since_landing("online_feature_store"),
        "seconds_to_bento": since_landing("bento_model"),
        "seconds_to_served": round(seen - landed_at, 1) if seen is not None else None,
        "feature_freshness_lag_s": run.get("freshness_lag_s"),
        "baseline_seconds": round(
            max(baseline["run"]["step_done_at"].values(), default=t0) - t0, 1
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    step = sub.add_parser("step", help="internal: one Dagster step in this process")
    step.add_argument("name", choices=["baseline", "tick"])
    step.add_argument("--workdir", type=Path, required=True)
    step.add_argument("--trials", type=int, default=0)
    step.add_argument("--out", type=Path, required=True)
    parser.add_argument("--source", default="synthetic")
    parser.add_argument("--families", default=DEFAULT_FAMILIES, help="comma-separated, or all")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--poll-s", type=float, default=1.0)
    parser.add_argument("--trials", type=int, default=0, help="tuning trials per tuned family")
    parser.add_argument("--workdir", type=Path, default=None, help="kept; default a temp dir")
    args = parser.parse_args()
    if args.command == "step":
        args.out.write_text(json.dumps(dagster_step(args.name, args.workdir, args.trials)))
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="recs-landing-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        report = drill(workdir, args.source, args.families, args.events, args.poll_s, args.trials)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
