"""Reproduce the model table on MovieLens 100K, protocol P1 (fit time, NDCG@10, precision@10).

    .venv/bin/python bench/models.py [ML100K_DIR] [--models ease,rp3beta,...] [--no-validation]

For each registry model (default hyper-parameters, see ``docs/models.md``) it reports the
validation numbers (P1 applied again to the train part; what the defaults were tuned on) and the
test numbers (fit on the P1 train part, scored on the P1 test part). Uses the evaluation
helper's split, side information and runner, so the numbers are those ``recs eval`` reports.
Set OMP_NUM_THREADS=1 on shared machines.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from recs_assets.core.evaluation.protocols import stratified_split, validation_split
from recs_assets.core.evaluation.runner import SideTables, build_side_info, evaluate_split
from recs_assets.core.phase1.movielens import load_movielens

DEFAULT_MODELS = (
    "popularity",
    "ease",
    "rp3beta",
    "lightfm",
    "lightfm_bpr",
    "lightfm_hybrid",
    "ncf",
    "content",
    "blend",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"
    parser.add_argument("path", nargs="?", type=Path, default=default)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--no-validation", action="store_true", help="test numbers only")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    tables = load_movielens(args.path)
    side_tables = SideTables(users=tables.users, items=tables.items)
    split = stratified_split(tables.interactions)
    val = validation_split(split)
    side, val_side = build_side_info(split, side_tables), build_side_info(val, side_tables)

    print("| model | fit s | val NDCG@10 | val P@10 | test NDCG@10 | test P@10 | test coverage |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in args.models.split(","):
        v = "-", "-"
        if not args.no_validation:
            ev = evaluate_split(name, val, val_side)
            v = f"{ev.metrics['ndcg@10']:.4f}", f"{ev.metrics['precision@10']:.4f}"
        et = evaluate_split(name, split, side)
        m = et.metrics
        print(
            f"| {name} | {et.fit_seconds:.1f} | {v[0]} | {v[1]} | {m['ndcg@10']:.4f} | "
            f"{m['precision@10']:.4f} | {m['catalog_coverage']:.3f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
