"""The re-ranking curve on MovieLens 100K, protocol P1: NDCG@10, genre ILD and long-tail share of
MMR re-ranked lists (``recs_assets/core/models/rerank.py``) over a sweep of the ``tradeoff`` knob.

    .venv/bin/python bench/rerank_curve.py [ML100K_DIR] [--model ease] [--candidates 100]

The model's top ``--candidates`` items (train items excluded) are re-ranked by MMR over genre
Jaccard similarity with a popularity-percentile penalty. The default knob is chosen on the
*validation* split (P1 applied again to the P1 train part): the smallest knob whose lists reach
ILD > 0.6 and long-tail share >= 0.30; the test numbers are then read off at that knob. When no
knob meets both goals the Pareto frontier (NDCG vs long-tail share vs ILD) is reported instead.
Prints a markdown table and writes ``bench/results/rerank_curve.json`` (git-ignored).
Set OMP_NUM_THREADS=1 on shared machines.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from recs_assets.core import metrics as M
from recs_assets.core.evaluation.protocols import Split, stratified_split, validation_split
from recs_assets.core.evaluation.runner import SideTables, build_side_info
from recs_assets.core.models.base import SideInfo
from recs_assets.core.models.registry import model_factory
from recs_assets.core.models.rerank import jaccard_similarity, mmr_rerank, popularity_percentile
from recs_assets.core.phase1.movielens import load_movielens

KNOBS: tuple[float, ...] = tuple(round(x, 3) for x in np.arange(0.0, 1.0001, 0.025))
MIN_ILD = 0.6
MIN_LONG_TAIL = 0.30


@dataclass(frozen=True)
class CurvePoint:
    """Metrics of the re-ranked top-k lists at one knob value (averaged over test users)."""

    tradeoff: float
    ndcg: float
    ild: float
    long_tail: float
    coverage: float
    novelty: float


def curve(
    split: Split, side: SideInfo, model_name: str, knobs: Sequence[float], n_cand: int, k: int
) -> list[CurvePoint]:
    """Fit ``model_name`` on ``split.train``, take its top ``n_cand`` per test user once, and
    measure the MMR re-ranked top ``k`` at every knob."""
    if side.item_categories is None:
        raise ValueError("the re-ranking curve needs item categories (genres)")
    model = model_factory(model_name)().fit(split.train, side)
    users = split.test_users()
    cand, scores = model.recommend(users, k=n_cand, exclude=split.train.matrix)
    sim = jaccard_similarity(side.item_categories)
    pop = popularity_percentile(split.train.matrix)
    counts = M.item_counts(split.train.matrix)
    test = split.test.matrix[users]
    out = []
    for t in knobs:
        top = mmr_rerank(cand, scores, sim, pop, k, t)
        out.append(
            CurvePoint(
                tradeoff=float(t),
                ndcg=M.ndcg_at_k(top, test),
                ild=M.intra_list_diversity(top, side.item_categories),
                long_tail=M.long_tail_share(top, counts),
                coverage=M.catalog_coverage(top, split.train.n_items),
                novelty=M.novelty(top, counts),
            )
        )
    return out


def choose_tradeoff(
    points: Sequence[CurvePoint], min_ild: float = MIN_ILD, min_long_tail: float = MIN_LONG_TAIL
) -> float | None:
    """The smallest knob whose lists reach ILD > ``min_ild`` and long tail >= ``min_long_tail``."""
    ok = [p.tradeoff for p in points if p.ild > min_ild and p.long_tail >= min_long_tail]
    return min(ok) if ok else None


def pareto_frontier(points: Sequence[CurvePoint]) -> list[CurvePoint]:
    """Points no other point beats on all of NDCG, long-tail share and ILD (ties kept)."""

    def dominated(p: CurvePoint) -> bool:
        return any(
            q.ndcg >= p.ndcg
            and q.long_tail >= p.long_tail
            and q.ild >= p.ild
            and (q.ndcg, q.long_tail, q.ild) != (p.ndcg, p.long_tail, p.ild)
            for q in points
        )

    return [p for p in points if not dominated(p)]


def _table(val: list[CurvePoint], test: list[CurvePoint]) -> str:
    lines = [
        "| tradeoff | val NDCG@10 | val ILD | val long tail | test NDCG@10 | test ILD | "
        "test long tail | test coverage | test novelty |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for v, t in zip(val, test, strict=True):
        lines.append(
            f"| {v.tradeoff:.3f} | {v.ndcg:.4f} | {v.ild:.3f} | {v.long_tail:.3f} | "
            f"{t.ndcg:.4f} | {t.ild:.3f} | {t.long_tail:.3f} | {t.coverage:.3f} | "
            f"{t.novelty:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"
    parser.add_argument("path", nargs="?", type=Path, default=default)
    parser.add_argument("--model", default="ease")
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "results" / "rerank_curve.json",
    )
    args = parser.parse_args()

    t0 = time.perf_counter()
    tables = load_movielens(args.path)
    side_tables = SideTables(users=tables.users, items=tables.items)
    split = stratified_split(tables.interactions)
    val = validation_split(split)
    val_points = curve(
        val, build_side_info(val, side_tables), args.model, KNOBS, args.candidates, args.k
    )
    test_points = curve(
        split, build_side_info(split, side_tables), args.model, KNOBS, args.candidates, args.k
    )
    chosen = choose_tradeoff(val_points)
    print(f"MMR re-ranking of {args.model}'s top {args.candidates} on ML-100K P1 (k={args.k})\n")
    print(_table(val_points, test_points))
    result: dict[str, object] = {
        "model": args.model,
        "candidates": args.candidates,
        "k": args.k,
        "goals": {"min_ild": MIN_ILD, "min_long_tail": MIN_LONG_TAIL},
        "validation": [asdict(p) for p in val_points],
        "test": [asdict(p) for p in test_points],
        "chosen_tradeoff": chosen,
        "seconds": time.perf_counter() - t0,
    }
    if chosen is None:
        front = pareto_frontier(val_points)
        result["validation_frontier"] = [asdict(p) for p in front]
        print(f"\nno knob meets ILD > {MIN_ILD} and long tail >= {MIN_LONG_TAIL} on validation;")
        print("validation frontier (tradeoff, NDCG, long tail, ILD):")
        for p in front:
            print(f"  {p.tradeoff:.3f}  {p.ndcg:.4f}  {p.long_tail:.3f}  {p.ild:.3f}")
    else:
        at = next(p for p in test_points if p.tradeoff == chosen)
        base = test_points[0]
        result["test_at_chosen"] = asdict(at)
        print(
            f"\nchosen tradeoff {chosen:.3f} (validation): test NDCG@10 {at.ndcg:.4f} "
            f"({at.ndcg / base.ndcg - 1:+.1%} vs no re-ranking {base.ndcg:.4f}), "
            f"ILD {at.ild:.3f}, long-tail share {at.long_tail:.3f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out} in {result['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
