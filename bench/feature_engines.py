"""The two feature engines side by side: DuckDB and local Spark on the same raw tables.

Usage::

    .venv/bin/python bench/feature_engines.py --preset 1m --engines duckdb,spark
    .venv/bin/python bench/feature_engines.py --preset 10m --engines duckdb

For each synthetic preset (or ``ml100k``): the raw tables are written as the IO manager writes
them (``raw_interactions`` in day partitions, ``raw_users``, ``raw_items``), then each engine runs
in a process of its own, as a feature build does: ``context_features``, and ``item_features`` /
``user_features`` at every snapshot time of the default job config (calendar grid, up to 8), each
written as Parquet. Reported per engine: wall time per table (Spark's session start apart), rows,
and the peak resident memory of the process (and of Spark's JVM). Prints JSON lines and writes
``bench/results/feature_engines_<preset>.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _peak_mib(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def write_raw(preset: str, root: Path) -> int:
    from recs_assets.core.table_store import write_table

    if preset == "ml100k":
        from recs_assets.core.phase1.movielens import load_movielens

        tables = load_movielens(REPO.parent / "shared" / "data" / "ml-100k")
    else:
        from recs_assets.core.phase1.synthetic import generate_preset

        tables = generate_preset(preset).tables
    events = tables.interactions
    for day, part in events.groupby(events["timestamp"].dt.strftime("%Y-%m-%d")):
        write_table(part.reset_index(drop=True), root, "raw_interactions", str(day))
    write_table(tables.users, root, "raw_users")
    write_table(tables.items, root, "raw_items")
    return len(events)


def run_engine(engine: str, root: Path, out: Path) -> dict[str, object]:
    """One build of the three tables on ``engine`` (in this process)."""
    from recs_assets.core.features.engines import DuckEngine, SparkEngine
    from recs_assets.core.features.incremental import BuildInputs
    from recs_assets.core.table_store import TableRef
    from recs_assets.features.feature_job import FeatureJobConfig, planned_snapshots

    config = FeatureJobConfig()
    refs = [TableRef(root, t) for t in ("raw_interactions", "raw_users", "raw_items")]
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if engine == "spark":
        from recs_assets.platform.spark_resource import SparkResource
        from recs_assets.resources import build_resources

        conf = dict(build_resources({}).get("spark").conf)  # the default deployment's settings
        session = SparkResource(conf=conf).get_session()
        timings["session_start"] = round(time.perf_counter() - t0, 1)
        make = lambda: SparkEngine(session, *refs)  # noqa: E731
    else:
        make = lambda: DuckEngine(*refs)  # noqa: E731
    inputs = BuildInputs(days={}, tables={}, settings="bench")
    rows: dict[str, int] = {}
    e = make()
    try:
        t = time.perf_counter()
        table, _ = e.write_context(out / "context_features", inputs, None, 30)
        timings["context_features"] = round(time.perf_counter() - t, 1)
        rows["context_features"] = table.row_count
        t = time.perf_counter()
        categories = e.top_categories(config.max_categories)
        oldest, newest = e.time_range()
        snapshots = planned_snapshots(config, oldest, newest)
        timings["plan"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        table = e.write_snapshots(
            {s: e.item_snapshot(s) for s in snapshots},
            [],
            "item_features",
            out / "item_features",
            snapshots,
            inputs,
        )
        timings["item_features"] = round(time.perf_counter() - t, 1)
        rows["item_features"] = table.row_count
        t = time.perf_counter()
        table = e.write_snapshots(
            {s: e.user_snapshot(s, categories, 30) for s in snapshots},
            [],
            "user_features",
            out / "user_features",
            snapshots,
            inputs,
        )
        timings["user_features"] = round(time.perf_counter() - t, 1)
        rows["user_features"] = table.row_count
    finally:
        e.close()
    result: dict[str, object] = {
        "engine": engine,
        "snapshots": len(snapshots),
        "seconds": timings,
        "features_seconds": round(
            sum(timings[k] for k in ("context_features", "plan", "item_features", "user_features")),
            1,
        ),
        "rows": rows,
        "peak_rss_mib": _peak_mib(),
    }
    if engine == "spark":
        pid = session.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
        result["peak_rss_jvm_mib"] = _peak_mib(pid)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="1m")
    ap.add_argument("--engines", default="duckdb,spark")
    ap.add_argument("--child", nargs=3, metavar=("ENGINE", "ROOT", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        engine, root, out = args.child
        print(json.dumps(run_engine(engine, Path(root), Path(out))))
        return
    results: dict[str, object] = {"preset": args.preset}
    with tempfile.TemporaryDirectory(prefix="recs-engines-") as tmp:
        t = time.perf_counter()
        results["events"] = write_raw(args.preset, Path(tmp) / "tables")
        results["write_raw_seconds"] = round(time.perf_counter() - t, 1)
        print(json.dumps(results), flush=True)
        for engine in args.engines.split(","):
            out = Path(tmp) / engine
            proc = subprocess.run(
                [sys.executable, __file__, "--child", engine, str(Path(tmp) / "tables"), str(out)],
                capture_output=True,
                text=True,
                check=False,
            )
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode != 0 or not lines:
                results[engine] = {"exit": proc.returncode, "stderr": proc.stderr[-2000:]}
            else:
                results[engine] = json.loads(lines[-1])
            print(json.dumps({engine: results[engine]}), flush=True)
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"feature_engines_{args.preset}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
