"""Matrix factorisation for implicit feedback that trains on large data, with the ``implicit``
library: ALS with confidence weights (Hu, Koren, Volinsky 2008) and BPR (Rendle et al. 2009).

Memory is O((n_users + n_items) x factors) and a fit is linear in the number of interactions,
so it carries catalogs where EASE's dense item-by-item matrix does not fit. Scores are dot
products of user and item factors, so an approximate nearest-neighbour index can retrieve them
(``core.serving.ann``).
"""

from __future__ import annotations

import os
from typing import Any, Self

import numpy as np

from recs_assets.core.models._helpers import check_finite, positive
from recs_assets.core.models.base import InteractionMatrix, Recommender, RecommenderError, SideInfo

LOSSES = ("als", "bpr")


class ImplicitMFRecommender(Recommender):
    """User and item factors fitted by ``implicit`` (CPU).

    Defaults are a starting point, checked on the validation splits of two shapes (ML-100K and
    the ``wide`` synthetic preset); the ``als_tuning`` study tunes them on the loaded data.

    Args:
        factors: latent dimensions.
        regularization: L2 on the factors.
        alpha: ALS confidence: an interaction of weight w counts ``1 + alpha * w``.
        iterations: ALS sweeps (BPR: epochs).
        learning_rate: BPR only.
        loss: ``"als"`` or ``"bpr"``.
        binary: every interaction weighs 1 (else the matrix's weights).
        seed: random seed of the initial factors.
        num_threads: 0 = every core.
    """

    name = "als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 20.0,
        alpha: float = 2.0,
        iterations: int = 15,
        learning_rate: float = 0.01,
        loss: str = "als",
        binary: bool = True,
        seed: int = 0,
        num_threads: int = 0,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise RecommenderError(f"{self.name}: loss must be one of {LOSSES}, got {loss!r}")
        positive(
            self.name,
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            learning_rate=learning_rate,
        )
        if num_threads < 0:
            raise RecommenderError(f"{self.name}: num_threads must be >= 0, got {num_threads}")
        self.factors = int(factors)
        self.regularization = float(regularization)
        self.alpha = float(alpha)
        self.iterations = int(iterations)
        self.learning_rate = float(learning_rate)
        self.loss = loss
        self.binary = bool(binary)
        self.seed = int(seed)
        self.num_threads = int(num_threads)
        self.user_factors_ = np.empty((0, self.factors), dtype=np.float32)
        self.item_factors_ = np.empty((0, self.factors), dtype=np.float32)

    def fit(self, train: InteractionMatrix, side: SideInfo | None = None) -> Self:
        # imported here: serving a fitted model needs numpy only (the Bento declares no implicit)
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.cpu.bpr import BayesianPersonalizedRanking
        from threadpoolctl import threadpool_limits

        self._check_train(train)
        X = train.matrix.astype(np.float32).tocsr()
        if self.binary:
            X = X.copy()
            X.data[:] = 1.0
        threads = self.num_threads or (os.cpu_count() or 1)
        # implicit's own threads do the work; a BLAS pool beside them only oversubscribes
        with threadpool_limits(1, "blas"):
            model: Any = (
                AlternatingLeastSquares(
                    factors=self.factors,
                    regularization=self.regularization,
                    alpha=self.alpha,
                    iterations=self.iterations,
                    random_state=self.seed,
                    num_threads=threads,
                )
                if self.loss == "als"
                else BayesianPersonalizedRanking(
                    factors=self.factors,
                    learning_rate=self.learning_rate,
                    regularization=self.regularization,
                    iterations=self.iterations,
                    random_state=self.seed,
                    num_threads=threads,
                )
            )
            model.fit(X, show_progress=False)
        users, items = np.asarray(model.user_factors), np.asarray(model.item_factors)
        # BPR appends a bias column to the item factors and a constant 1 to the user factors
        check_finite(self.name, "user factors", users)
        check_finite(self.name, "item factors", items)
        self.user_factors_ = users.astype(np.float32)
        self.item_factors_ = items.astype(np.float32)
        self._fitted = True
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        users = self._check_users(users)
        V = self.item_factors_ if items is None else self.item_factors_[self._check_items(items)]
        return self.user_factors_[users] @ V.T

    def user_vectors(self, users: np.ndarray) -> np.ndarray:
        """Factors of ``users``: ``score(users) == user_vectors(users) @ item_vectors().T``."""
        self._check_fitted()
        return self.user_factors_[self._check_users(users)]

    def item_vectors(self) -> np.ndarray:
        self._check_fitted()
        return self.item_factors_

    def params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "learning_rate": self.learning_rate,
            "loss": self.loss,
            "binary": self.binary,
            "seed": self.seed,
            "num_threads": self.num_threads,
        }

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.user_factors_ = state["user_factors"]
        self.item_factors_ = state["item_factors"]


def implicit_bpr(**params: Any) -> ImplicitMFRecommender:
    """``implicit``'s BPR matrix factorisation (registry name ``implicit_bpr``)."""
    return ImplicitMFRecommender(
        **{"loss": "bpr", "iterations": 100, "regularization": 0.01, **params}
    )


class SparkALSRecommender(ImplicitMFRecommender):
    """ALS for implicit feedback fitted by Spark MLlib (``pyspark.ml.recommendation.ALS``), so a
    Spark cluster does the work; scoring, state and ANN retrieval are ``als``'s.

    The pairs travel from the driver to Spark as one DataFrame (user index, item index, weight);
    the factors come back to the driver. ``regularization`` is Spark's ``regParam``, which
    Spark scales by each user's and item's interaction count (ALS-WR), hence its smaller default.

    Args:
        spark_master: the master to start a session with when none is active ("" = the active
            session, else Spark's default ``local[*]``).
        (the others as ``ImplicitMFRecommender``; ``loss``, ``learning_rate`` and
        ``num_threads`` do not apply.)
    """

    name = "spark_als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.1,
        alpha: float = 2.0,
        iterations: int = 15,
        binary: bool = True,
        seed: int = 0,
        spark_master: str = "",
    ) -> None:
        super().__init__(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            binary=binary,
            seed=seed,
        )
        self.spark_master = spark_master

    def fit(self, train: InteractionMatrix, side: SideInfo | None = None) -> Self:
        import pandas as pd
        from pyspark.ml.recommendation import ALS
        from pyspark.sql import SparkSession

        self._check_train(train)
        coo = train.matrix.tocoo()
        weights = np.ones(coo.nnz) if self.binary else coo.data.astype(np.float64)
        builder = SparkSession.builder
        spark = (builder.master(self.spark_master) if self.spark_master else builder).getOrCreate()
        pairs = spark.createDataFrame(
            pd.DataFrame(
                {"user": coo.row.astype(np.int32), "item": coo.col.astype(np.int32), "w": weights}
            )
        )
        als = ALS(
            rank=self.factors,
            maxIter=self.iterations,
            regParam=self.regularization,
            alpha=self.alpha,
            implicitPrefs=True,
            userCol="user",
            itemCol="item",
            ratingCol="w",
            seed=self.seed,
            coldStartStrategy="drop",
        )
        fitted = als.fit(pairs)
        self.user_factors_ = _dense_factors(
            fitted.userFactors.toPandas(), train.n_users, self.factors
        )
        self.item_factors_ = _dense_factors(
            fitted.itemFactors.toPandas(), train.n_items, self.factors
        )
        check_finite(self.name, "user factors", self.user_factors_)
        check_finite(self.name, "item factors", self.item_factors_)
        self._fitted = True
        return self

    def params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "binary": self.binary,
            "seed": self.seed,
            "spark_master": self.spark_master,
        }


def _dense_factors(frame: Any, n: int, factors: int) -> np.ndarray:
    """Spark's (id, features) rows as an (n, factors) array; ids Spark never saw stay zero."""
    out = np.zeros((n, factors), dtype=np.float32)
    if len(frame):
        out[frame["id"].to_numpy()] = np.stack(frame["features"].to_numpy()).astype(np.float32)
    return out
