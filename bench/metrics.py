"""Time every metric for every user of MovieLens 100K (budget: under one second).

    .venv/bin/python bench/metrics.py [ML100K_DIR] [--repeat 5]

Splits with P1, fits popularity, then times ``metrics.summarize`` (accuracy, AUC from the full
score matrix, coverage, ILD over genres, novelty, long tail, popularity bias, Gini, fairness
gaps) alone, and exits 1 when the best of the repeats exceeds the budget.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from recs_assets.core import metrics as M
from recs_assets.core.evaluation.protocols import stratified_split
from recs_assets.core.evaluation.runner import SideTables, build_side_info
from recs_assets.core.models.popularity import PopularityRecommender
from recs_assets.core.phase1.movielens import load_movielens

BUDGET_SECONDS = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"
    parser.add_argument("path", nargs="?", type=Path, default=default)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    tables = load_movielens(args.path)
    split = stratified_split(tables.interactions)
    side = build_side_info(split, SideTables(users=tables.users, items=tables.items))
    model = PopularityRecommender().fit(split.train)
    users = np.arange(split.train.n_users)
    top, _ = model.recommend(users, 10, exclude=split.train.matrix)
    scores = model.score(users)

    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        summary = M.summarize(
            top,
            split.test.matrix,
            split.train.matrix,
            k=10,
            scores=scores,
            item_categories=side.item_categories,
            user_groups=side.user_groups,
        )
        times.append(time.perf_counter() - t0)
    best = min(times)
    print(
        f"{int(summary.values['n_users'])} users x {split.train.n_items} items, "
        f"{len(summary.values)} metrics"
    )
    print(
        f"summarize: best {best:.3f} s, median {float(np.median(times)):.3f} s "
        f"(budget {BUDGET_SECONDS:.1f} s)"
    )
    return 0 if best <= BUDGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
