"""Time ``batch_top_k``: ML-100K top-10 for every user (EASE, popularity) and a synthetic factor model.

Run from the repository root: ``.venv/bin/python bench/batch_top_k.py [--big]``. ``--big`` adds
100,000 users x 20,000 items with 64-dimensional random factors (about 1 GB of memory per
2048-user block in float32 scores; takes tens of seconds).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recs_assets.core.models.base import InteractionMatrix, Recommender
from recs_assets.core.models.ease import EASERecommender
from recs_assets.core.models.popularity import PopularityRecommender
from recs_assets.core.serving.batch_scoring import batch_top_k

ML100K = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"


class RandomFactors(Recommender):
    """Dot products of fixed random user and item factors (the cost profile of MF / LightFM)."""

    name = "random_factors"

    def __init__(self, n_users: int, n_items: int, dim: int, seed: int = 0) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self.U = rng.standard_normal((n_users, dim), dtype=np.float32)
        self.V = rng.standard_normal((n_items, dim), dtype=np.float32)
        self.n_users_, self.n_items_, self._fitted = n_users, n_items, True

    def fit(self, train, side=None):  # noqa: ANN001 - fixed factors, nothing to learn
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        V = self.V if items is None else self.V[items]
        return self.U[users] @ V.T


def timed(label: str, model: Recommender, users: np.ndarray, exclude=None, k: int = 10) -> float:
    start = time.perf_counter()
    items, _ = batch_top_k(model, users, k, exclude=exclude)
    seconds = time.perf_counter() - start
    print(f"{label}: {len(users)} users x {model.n_items_} items top-{k}: {seconds:.3f} s")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--big", action="store_true", help="also run 100k users x 20k items x 64")
    args = parser.parse_args()
    raw = pd.read_csv(
        ML100K / "u.data", sep="\t", names=["user_id", "item_id", "r", "t"], dtype=str
    )
    train = InteractionMatrix.from_frame(raw)
    users = np.arange(train.n_users)
    for model in (PopularityRecommender().fit(train), EASERecommender(lam=500).fit(train)):
        timed(f"ml-100k {model.name} exclude_seen", model, users, exclude=train.matrix)
    if args.big:
        model = RandomFactors(100_000, 20_000, 64)
        timed("synthetic factors d=64", model, np.arange(100_000))


if __name__ == "__main__":
    main()
