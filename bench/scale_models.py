"""The families that scale, measured: fit time, peak memory and held-out NDCG@10 on a large
synthetic preset, and ANN retrieval (recall@10 against exact scoring, single-query latency) over
a catalog of a million items.

    .venv/bin/python bench/scale_models.py [--preset 10m] [--families als,ease]
        [--eval-users 20000] [--ann-items 1000000] [--json out.json]

Models: the preset's interactions split by P1 (stratified, seed 42), each family fitted on the
train part with its registry defaults, then NDCG@10 over ``--eval-users`` test users drawn at
random (seed 0; the whole test set takes hours of scoring at 200,000 users). EASE first checks
that its dense matrices fit (half this machine's memory) and is reported as refused otherwise.
Memory: this process's resident set sampled every 0.2 s; each step reports its peak.

ANN: ``--ann-items`` vectors of 64 factors around 256 centres with log-normal norms (the shape
of fitted item factors; isotropic noise would be the worst case for any graph index), 1,000
query vectors drawn the same way; faiss HNSW (M 32, efConstruction 100) at efSearch 64/128/256
against exact inner-product top 10; latency of one query at a time on one thread. The ALS item
factors of the model step are indexed too, with their users as queries.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recs_assets.core.evaluation.protocols import Split, stratified_split
from recs_assets.core.evaluation.runner import SideInfo, fit_model, measure
from recs_assets.core.models.base import RecommenderError
from recs_assets.core.phase1.synthetic import generate_preset
from recs_assets.core.serving.ann import AnnIndex, exact_top_k, recall_at_k


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@contextmanager
def peak_memory() -> Iterator[dict[str, float]]:
    """Samples this process's RSS every 0.2 s while the block runs: ``peak_gib``, ``start_gib``."""
    out = {"start_gib": rss() / 2**30, "peak_gib": 0.0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            out["peak_gib"] = max(out["peak_gib"], rss() / 2**30)
            done.wait(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        done.set()
        thread.join()
        out["peak_gib"] = round(max(out["peak_gib"], rss() / 2**30), 2)
        out["start_gib"] = round(out["start_gib"], 2)
        out["seconds"] = round(time.perf_counter() - t0, 1)


def subsample_test(split: Split, n_users: int, seed: int = 0) -> Split:
    """``split`` with the test rows of ``n_users`` random test users only."""
    users = split.test_users()
    if len(users) <= n_users:
        return split
    keep = np.zeros(split.test.n_users, dtype=bool)
    keep[np.random.default_rng(seed).choice(users, n_users, replace=False)] = True
    matrix = sp.csr_matrix(split.test.matrix.multiply(keep[:, None]))
    matrix.eliminate_zeros()
    return replace(split, test=split.test.with_matrix(matrix))


def step(name: str, results: list[dict[str, Any]], fn: Callable[[], dict[str, Any]]) -> Any:
    print(f"{name} ...", flush=True)
    with peak_memory() as mem:
        try:
            row = {"step": name, **fn()}
        except RecommenderError as exc:
            row = {"step": name, "refused": str(exc)}
    row.update(mem)
    results.append(row)
    print(json.dumps(row), flush=True)
    return row


def clustered(n: int, d: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    picks = rng.integers(0, len(centres), n)
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 100_000):  # in blocks: no float64 copy of the whole matrix
        p = picks[start : start + 100_000]
        block = centres[p] + 0.7 * rng.normal(size=(len(p), d))
        out[start : start + len(p)] = block * rng.lognormal(0.0, 0.3, (len(p), 1))
    return out


def ann_rows(items: np.ndarray, queries: np.ndarray, label: str) -> list[dict[str, Any]]:
    import faiss

    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    exact = exact_top_k(queries, items, 10)
    exact_ms = (time.perf_counter() - t0) / len(queries) * 1e3
    t0 = time.perf_counter()
    index = AnnIndex.build(items)
    build = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)
    lat_exact = []  # exact, one query at a time
    for q in queries[:50]:
        t = time.perf_counter()
        exact_top_k(q[None], items, 10)
        lat_exact.append(time.perf_counter() - t)
    for ef in (64, 128, 256):
        index.ef_search = ef
        found, lat = [], []
        for q in queries:
            t = time.perf_counter()
            idx, _ = index.top_k(q[None], 10)
            lat.append(time.perf_counter() - t)
            found.append(idx[0])
        rows.append(
            {
                "catalog": label,
                "items": len(items),
                "factors": items.shape[1],
                "ef_search": ef,
                "build_seconds": round(build, 1),
                "recall_at_10": round(recall_at_k(np.array(found), exact), 4),
                "ann_p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 3),
                "ann_p99_ms": round(float(np.percentile(lat, 99)) * 1e3, 3),
                "exact_p99_ms": round(float(np.percentile(lat_exact, 99)) * 1e3, 2),
                "exact_batched_ms_per_query": round(exact_ms, 3),
            }
        )
    faiss.omp_set_num_threads(0)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="10m")
    parser.add_argument("--families", default="als,ease")
    parser.add_argument("--eval-users", type=int, default=20_000)
    parser.add_argument("--ann-items", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    state: dict[str, Any] = {}

    if args.preset != "none":

        def data() -> dict[str, Any]:
            tables = generate_preset(args.preset).tables
            split = stratified_split(tables.interactions)
            state["split"] = split
            state["eval"] = subsample_test(split, args.eval_users)
            return {
                "users": split.train.n_users,
                "items": split.train.n_items,
                "train": split.train.nnz,
                "test": split.test.nnz,
                "evaluated_users": len(state["eval"].test_users()),
            }

        step(f"data {args.preset}", results, data)
        for family in [f for f in args.families.split(",") if f]:

            def fit_and_measure(family: str = family) -> dict[str, Any]:
                model, seconds = fit_model(family, state["split"], SideInfo())
                if family == "als":
                    state["als"] = model
                ev = measure(family, model, state["eval"], SideInfo(), k=10, fit_seconds=seconds)
                return {
                    "fit_seconds": round(seconds, 1),
                    "score_seconds": round(ev.score_seconds, 1),
                    "ndcg@10": round(ev.metrics["ndcg@10"], 4),
                    "recall@10": round(ev.metrics["recall@10"], 4),
                }

            step(f"{family} on {args.preset}", results, fit_and_measure)
        if "als" in state:
            model = state["als"]
            users = np.random.default_rng(1).choice(model.n_users_, 1000, replace=False)
            results += ann_rows(model.item_vectors(), model.user_vectors(users), "als factors")
            print(json.dumps(results[-3:]), flush=True)
        state.clear()

    if args.ann_items:
        rng = np.random.default_rng(0)
        centres = rng.normal(size=(256, 64))

        def ann() -> dict[str, Any]:
            items = clustered(args.ann_items, 64, rng, centres)
            queries = clustered(1000, 64, rng, centres)
            state["ann"] = ann_rows(items, queries, "synthetic clustered")
            return {"items": args.ann_items}

        step(f"ann {args.ann_items:,} items", results, ann)
        results += state.pop("ann")
        print(json.dumps(results[-3:]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
