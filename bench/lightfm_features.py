"""Hybrid LightFM with feature-store features against pure WARP on MovieLens 100K, protocol P1.

    OMP_NUM_THREADS=1 .venv/bin/python bench/lightfm_features.py [ML100K_DIR] [--no-validation]

Computes the ``user_features`` / ``item_features`` snapshots with the Spark transforms of the
feature assets (snapshot times as the assets choose them), writes them as Parquet feature
tables, and builds LightFM side features with ``feature_side.feature_store_side`` (the leak rule
picks the snapshot; under P1 only static columns qualify). Validation (P1 applied again to the
P1 train part) chooses between item features only and user + item features; the test part then
measures pure WARP and the chosen hybrid once. LightFM defaults (128 components, lr 0.02,
max_sampled 50, alphas 1e-6, 30 epochs), one thread. Writes bench/results/lightfm_features.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from functools import reduce
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recs_assets.core.datasets.feature_side import (  # noqa: E402
    choose_snapshot,
    feature_store_side,
    held_out_since,
)
from recs_assets.core.evaluation.protocols import Split, stratified_split, validation_split  # noqa: E402
from recs_assets.core.evaluation.runner import SideTables, build_side_info, measure  # noqa: E402
from recs_assets.core.features.snapshots import newest_and_oldest, snapshot_times  # noqa: E402
from recs_assets.core.features.spark_frames import to_spark  # noqa: E402
from recs_assets.core.features.tables import FeatureTable, write_feature_table  # noqa: E402
from recs_assets.core.features.transforms.item import item_features, top_categories  # noqa: E402
from recs_assets.core.features.transforms.user import user_features  # noqa: E402
from recs_assets.core.models.base import SideInfo  # noqa: E402
from recs_assets.core.models.lightfm_model import LightFMRecommender  # noqa: E402
from recs_assets.core.phase1.movielens import load_movielens  # noqa: E402
from recs_assets.features.feature_job import FeatureJobConfig  # noqa: E402
from recs_assets.platform.spark_resource import SparkResource  # noqa: E402

# name -> (LightFM keywords, side features: "fs" feature store, "fs-categories" feature store
# with item categories only, "raw" item categories from the items table, "" none)
VARIANTS: dict[str, tuple[dict[str, bool], str]] = {
    "warp": ({}, ""),
    "hybrid_items": ({"hybrid_items": True}, "fs"),
    "hybrid_users_items": ({"hybrid_items": True, "hybrid_users": True}, "fs"),
    "hybrid_users_categories": ({"hybrid_items": True, "hybrid_users": True}, "fs-categories"),
    "hybrid_raw_categories": ({"hybrid_items": True}, "raw"),
}


def feature_tables(tables, out: Path, needed: set) -> tuple[FeatureTable, FeatureTable, list]:
    """Feature tables as the assets write them, with only the ``needed`` snapshots computed."""
    cfg = FeatureJobConfig()
    spark = SparkResource(
        master="local[2]",
        conf={"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false"},
    ).get_session()
    spark.sparkContext.setLogLevel("ERROR")
    ev = to_spark(spark, tables.interactions, "interactions").cache()
    us = to_spark(spark, tables.users, "users")
    it = to_spark(spark, tables.items, "items").cache()
    cats = [r.category for r in top_categories(it, cfg.max_categories).collect()]
    oldest, newest = newest_and_oldest(tables.interactions)
    snaps = snapshot_times(oldest, newest, cfg.snapshot_interval_days, cfg.max_snapshots)
    wanted = [t for t in snaps if t in needed]
    u = [user_features(ev, us, it, as_of=t, categories=cats) for t in wanted]
    i = [item_features(ev, it, as_of=t) for t in wanted]
    union = lambda frames: reduce(lambda a, b: a.unionByName(b), frames)  # noqa: E731
    ut = write_feature_table(union(u), "user_features", out / "user_features", tuple(wanted))
    itab = write_feature_table(union(i), "item_features", out / "item_features", tuple(wanted))
    spark.stop()
    return ut, itab, list(snaps)


def evaluate(name: str, split: Split, sides: dict[str, SideInfo]) -> dict[str, float]:
    params, which = VARIANTS[name]
    side = sides[which]
    model = LightFMRecommender(**params)
    t0 = time.perf_counter()
    model.fit(split.train, side)
    fit = time.perf_counter() - t0
    m = measure(name, model, split, side, fit_seconds=fit).metrics
    row = {"ndcg@10": m["ndcg@10"], "precision@10": m["precision@10"], "fit_s": round(fit, 1)}
    print(f"  {name}: {row}", flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = REPO.parent / "shared" / "data" / "ml-100k"
    parser.add_argument("path", nargs="?", type=Path, default=default)
    parser.add_argument(
        "--validation", default="warp,hybrid_items,hybrid_users_items", help="variants"
    )
    parser.add_argument(
        "--test", default="warp", help="variants measured on test besides the choice"
    )
    parser.add_argument(
        "--choice", default="", help="the hybrid to test (default: best on validation)"
    )
    args = parser.parse_args()

    tables = load_movielens(args.path)
    split = stratified_split(tables.interactions)
    val = validation_split(split)
    base = SideTables(users=tables.users, items=tables.items)
    cut_test, cut_val = held_out_since(split), held_out_since(val, split)
    oldest, newest = newest_and_oldest(tables.interactions)
    cfg = FeatureJobConfig()
    snaps = snapshot_times(oldest, newest, cfg.snapshot_interval_days, cfg.max_snapshots)
    chosen = {choose_snapshot(snaps, cut)[0] for cut in (cut_test, cut_val)}
    report: dict[str, object] = {
        "snapshots": [t.isoformat() for t in snaps],
        "held_out_since": {"test": cut_test.isoformat(), "validation": cut_val.isoformat()},
    }
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        users_t, items_t, _ = feature_tables(tables, Path(tmp), chosen)
        report["feature_job_s"] = round(time.perf_counter() - t0, 1)
        sides = {}
        for s, cut in ((split, cut_test), (val, cut_val)):
            raw = build_side_info(s, base)
            fs = feature_store_side(s, users_t, items_t, held_out=cut)
            cats = feature_store_side(
                s, users_t, items_t, held_out=cut, item_columns={"categories"}
            )
            sides[s.protocol if s is split else "validation"] = {
                "": raw,
                "raw": raw,
                "fs": fs.side_info(raw),
                "fs-categories": cats.side_info(raw),
            }
            if s is split:
                report["side_features"] = fs.summary()
                report["user_feature_names"] = list(fs.users.names)  # type: ignore[union-attr]
                report["item_feature_names"] = list(fs.items.names)  # type: ignore[union-attr]
    print(json.dumps(report["side_features"], indent=1), flush=True)

    out = REPO / "bench" / "results" / "lightfm_features.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    validation = dict(previous.get("validation", {}))
    print("validation:", flush=True)
    for n in [v for v in args.validation.split(",") if v]:
        validation[n] = evaluate(n, val, sides["validation"])
    report["validation"] = validation
    hybrids = {n: r for n, r in validation.items() if n != "warp"}
    choice = args.choice or max(hybrids, key=lambda n: hybrids[n]["ndcg@10"])
    report["chosen"] = choice
    print(f"test (chosen on validation: {choice}):", flush=True)
    test = dict(previous.get("test", {}))
    for n in dict.fromkeys([*(v for v in args.test.split(",") if v), choice]):
        test[n] = evaluate(n, split, sides[split.protocol])
    report["test"] = test
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
