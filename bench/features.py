"""Benchmark of the feature job and of online reads.

Usage: .venv/bin/python bench/features.py [--datasets ml100k,1m,10m] [--redis-calls 1000]

For each data set: wall time of the feature job (pandas -> Spark, user/item features at the newest
event, context features, all written as Parquet), with the JVM already started (a warm-up job
runs first), and the peak resident memory of the Python driver and of the JVM. Then p50/p99
latency of ``get_online_features`` for one user from Redis (ML-100K features, temporary project,
cleaned up). Prints one JSON line per measurement; writes bench/results/features.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recs_assets.core.features.spark_frames import to_spark  # noqa: E402
from recs_assets.core.features.transforms.context import context_features  # noqa: E402
from recs_assets.core.features.transforms.item import item_features, top_categories  # noqa: E402
from recs_assets.core.features.transforms.user import user_features  # noqa: E402
from recs_assets.core.phase1.schema import Phase1Tables  # noqa: E402
from recs_assets.platform.spark_resource import SparkResource  # noqa: E402


def _tables(name: str) -> Phase1Tables:
    if name == "ml100k":
        from recs_assets.core.phase1.movielens import load_movielens

        return load_movielens(REPO.parent / "shared" / "data" / "ml-100k")
    from recs_assets.core.phase1.synthetic import generate_preset

    return generate_preset(name).tables


def _jvm_peak_mb(spark) -> float:
    pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def feature_job(spark, tables: Phase1Tables, out: Path) -> dict[str, int]:
    """The measured job: convert, compute the three tables at the newest event, write Parquet."""
    ev = to_spark(spark, tables.interactions, "interactions").cache()
    us = to_spark(spark, tables.users, "users")
    it = to_spark(spark, tables.items, "items").cache()
    as_of = tables.interactions["timestamp"].max().to_pydatetime()
    cats = [r.category for r in top_categories(it, 32).collect()]
    user_features(ev, us, it, as_of=as_of, categories=cats).write.mode("overwrite").parquet(
        str(out / "u")
    )
    item_features(ev, it, as_of=as_of).write.mode("overwrite").parquet(str(out / "i"))
    context_features(ev).write.mode("overwrite").parquet(str(out / "c"))
    ev.unpersist()
    it.unpersist()
    return {k: spark.read.parquet(str(out / k)).count() for k in ("u", "i", "c")}


def redis_latency(spark, tables: Phase1Tables, out: Path, calls: int) -> dict[str, float]:
    from recs_assets.core.features.feast_repo.feature_views import feature_objects
    from recs_assets.features.feast_resource import FeastResource

    ev = to_spark(spark, tables.interactions, "interactions")
    it = to_spark(spark, tables.items, "items")
    as_of = tables.interactions["timestamp"].max().to_pydatetime()
    cats = [r.category for r in top_categories(it, 32).collect()]
    us = to_spark(spark, tables.users, "users")
    user_features(ev, us, it, as_of=as_of, categories=cats).write.mode("overwrite").parquet(
        str(out / "fu")
    )
    item_features(ev, it, as_of=as_of).write.mode("overwrite").parquet(str(out / "fi"))
    url = os.environ.get("RECS_REDIS_URL", "redis://127.0.0.1:6379/0")
    feast = FeastResource(
        project=f"bench_{uuid.uuid4().hex[:8]}", repo_dir=str(out / "repo"), redis_url=url
    )
    store = feast.store()
    try:
        store.apply(feature_objects(out / "fu", out / "fi"))
        store.materialize(as_of - timedelta(seconds=1), as_of + timedelta(seconds=1))
        user = str(tables.interactions["user_id"].iloc[0])
        refs = [
            "user_features:events_all",
            "user_features:rating_mean",
            "user_features:top_category",
        ]
        store.get_online_features(features=refs, entity_rows=[{"user_id": user}])  # warm-up
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            store.get_online_features(features=refs, entity_rows=[{"user_id": user}]).to_dict()
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        store.teardown()
    q = statistics.quantiles(times, n=100)
    return {"calls": calls, "p50_ms": round(q[49], 3), "p99_ms": round(q[98], 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="ml100k,1m")
    ap.add_argument("--redis-calls", type=int, default=1000)
    ap.add_argument("--master", default="local[*]")
    ap.add_argument(
        "--shuffle-partitions",
        default="8",
        help="spark.sql.shuffle.partitions (the assets' default: 8, $RECS_SPARK_SHUFFLE_PARTITIONS)",
    )
    args = ap.parse_args()
    spark = SparkResource(
        master=args.master,
        app_name="recs-bench",
        conf={
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.driver.memory": "8g",
            "spark.sql.shuffle.partitions": args.shuffle_partitions,
        },
    ).get_session()
    spark.sparkContext.setLogLevel("ERROR")
    spark.range(1000).selectExpr("sum(id)").collect()  # JVM and executors warm: not measured
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets.split(","):
            t0 = time.perf_counter()
            tables = _tables(name)
            load_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            rows = feature_job(spark, tables, Path(tmp) / name)
            rec = {
                "dataset": name,
                "interactions": len(tables.interactions),
                "load_s": round(load_s, 2),
                "feature_job_s": round(time.perf_counter() - t0, 2),
                "rows": rows,
                "driver_peak_rss_mb": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
                ),
                "jvm_peak_rss_mb": round(_jvm_peak_mb(spark), 1),
                "cpus": os.cpu_count(),
            }
            print(json.dumps(rec), flush=True)
            results.append(rec)
        if args.redis_calls > 0:
            rec = {
                "redis_get_online_features": redis_latency(
                    spark, _tables("ml100k"), Path(tmp), args.redis_calls
                )
            }
            print(json.dumps(rec), flush=True)
            results.append(rec)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "features.json").write_text(json.dumps(results, indent=2))
    spark.stop()


if __name__ == "__main__":
    main()
