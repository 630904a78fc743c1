"""The recommendation logic behind ``bento/service.py``: cache, model, fallbacks, metrics.

Usable without BentoML running: build a ``RecommendationEngine`` from a ``ServingModel`` and a
cache and call its methods. A user the model never saw gets the published trending list
(``TrendingFollower``; padded with popularity) or, when none is published, popularity (source
``fallback`` either way), unless the model is feature-based (LightFM with user side features,
exported with its encoder) and ``OnlineFeatureReader`` finds the user's features: then the model scores
them (source ``features``). Other lists get their trending and exploration slots
(``recs_assets.core.serving.blending``) when the answer is made, so cached lists stay the model's own
and a new trending list shows at once. Every item says where it came from (``reason``). Bad input
raises ``InputError`` (HTTP 400) or ``UnknownItemError`` (HTTP 404), both ``ValueError``s that
BentoML maps to those status codes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
from bentoml.exceptions import InvalidArgument, NotFound

from recs_assets.core.models.base import RecommenderError, top_k
from recs_assets.core.models.lightfm_model import LightFMRecommender
from recs_assets.core.serving.ann import DotProductModel
from recs_assets.core.serving.artifacts import ServingModel
from recs_assets.core.serving.batch_scoring import batch_top_k
from recs_assets.core.serving.blending import Blended, Insert, blend, exploration_draw, slot_counts
from recs_assets.core.serving.cache import Cache, cache_key
from recs_assets.core.serving.online_feature_reader import OnlineFeatureReader
from recs_assets.core.serving.schemas import (
    BatchRecommendations,
    ModelInfo,
    Recommendations,
    RecommendedItem,
    ScoredItem,
    Scores,
    SimilarItems,
)
from recs_assets.core.serving.settings import ServingSettings
from recs_assets.core.serving.telemetry import ServingMetrics
from recs_assets.core.serving.trending_follower import EMPTY as NO_TRENDING
from recs_assets.core.serving.trending_follower import TrendingFollower, TrendingList

logger = logging.getLogger(__name__)

MAX_K = 100
NO_ITEMS = np.zeros(0, dtype=np.int64)
# What a model may raise when it cannot score; the answer falls back to popularity.
SCORE_ERRORS: tuple[type[BaseException], ...] = (
    RecommenderError,
    ValueError,
    IndexError,
    FloatingPointError,
    MemoryError,
)


T = TypeVar("T")


def finite_scores(name: str, scores: np.ndarray) -> np.ndarray:
    """``scores`` as float64; raises ``RecommenderError`` when any is NaN or infinite."""
    values = np.asarray(scores, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise RecommenderError(f"{name} produced non-finite scores")
    return values


class InputError(InvalidArgument, ValueError):
    """A request the API rejects (HTTP 400)."""


class UnknownItemError(NotFound, ValueError):
    """A request naming items the model does not know (HTTP 404)."""


class RecommendationEngine:
    """Answers recommend / batch / similar-items / score requests for one loaded model.

    Args:
        model: the loaded serving artifacts (model may be None: popularity only).
        cache: response cache (Redis or in-process LRU).
        settings: serving limits and variant.
        metrics: Prometheus metrics to update.
        features: online user features for users the model never saw (None: popularity for
            them); used only when the model can score feature rows.
        trending: the published trending list (None: cold-start users get popularity and
            trending slots stay empty).
        clock: wall-clock seconds; its hour (with the user) fixes the exploration items.
    """

    def __init__(
        self,
        model: ServingModel,
        cache: Cache,
        settings: ServingSettings,
        metrics: ServingMetrics,
        features: OnlineFeatureReader | None = None,
        trending: TrendingFollower | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.model = model
        self.cache = cache
        self.settings = settings
        self.metrics = metrics
        self.features = features
        self.trending = trending
        self._clock = clock
        self.namespace = model.labels.get("bento_tag", model.version).replace(":", "-")
        binary = sp.csc_matrix(model.train.matrix, dtype=np.float32, copy=True)
        binary.data[:] = 1.0
        self._binary_csc = binary
        feedback = np.diff(binary.indptr)  # training interactions per item
        self._item_norms = np.sqrt(feedback.astype(np.float64))
        # exploration candidates: items with little feedback, fixed for the model's lifetime
        self._explore = (
            np.flatnonzero(feedback <= settings.exploration_max_feedback).astype(np.int64)
            if settings.exploration_slots > 0
            else NO_ITEMS
        )
        # the trending list as item indices of this model, derived once per published list
        self._trend: tuple[TrendingList, np.ndarray, np.ndarray] = (
            NO_TRENDING,
            NO_ITEMS,
            np.zeros(0),
        )
        metrics.model_info.labels(
            model_version=model.version,
            model_name=model.model_name,
            variant=settings.variant,
            loaded=str(model.recommender is not None).lower(),
        ).set(1)
        if model.recommender is None:
            metrics.fallbacks.labels(reason="model_unavailable")  # show the series at 0
            logger.error(
                "serving %s version %s WITHOUT a model (popularity fallback only): %s",
                model.model_name,
                model.version,
                model.load_error,
            )
        self._feature_model = self._feature_scorer()

    def _feature_scorer(self) -> LightFMRecommender | None:
        """The model when it can score new users from online features, else None."""
        rec, encoder = self.model.recommender, self.model.user_encoder
        if self.features is None or encoder is None or not isinstance(rec, LightFMRecommender):
            return None
        if encoder.n_features == 0:
            return None
        if rec.n_user_features != encoder.n_features:
            logger.error(
                "model %s version %s: user-feature encoder has %d features, the model %d; "
                "unknown users get popularity",
                self.model.model_name,
                self.model.version,
                encoder.n_features,
                rec.n_user_features,
            )
            return None
        return rec

    # ---- helpers ------------------------------------------------------------------------------
    @contextmanager
    def _timed(self, endpoint: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        except InputError:
            self.metrics.errors.labels(endpoint=endpoint, kind="bad_input").inc()
            raise
        except UnknownItemError:
            self.metrics.errors.labels(endpoint=endpoint, kind="unknown_item").inc()
            raise
        finally:
            self.metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - start)

    def _check_k(self, k: int) -> None:
        if not 1 <= k <= MAX_K:
            raise InputError(f"k must be between 1 and {MAX_K}, got {k}")

    def _items(
        self, idx: Sequence[int], scores: Sequence[float], reasons: Sequence[str] | str = "model"
    ) -> list[RecommendedItem]:
        t = self.model.titles
        ids = self.model.train.item_ids
        why = [reasons] * len(idx) if isinstance(reasons, str) else reasons
        return [
            RecommendedItem(item_id=str(ids[i]), score=float(s), title=str(t[i]), reason=r)  # type: ignore[arg-type]
            for i, s, r in zip(idx, scores, why, strict=True)
        ]

    def _rec_key(self, user_id: str, k: int, exclude_seen: bool, context: dict[str, Any]) -> str:
        parts: dict[str, object] = {"u": user_id, "k": k, "x": int(exclude_seen)}
        if context:
            parts["ctx"] = context
        return cache_key(self.settings.cache_prefix, self.namespace, "rec", **parts)

    def _cache_get(self, key: str) -> list[list[float]] | None:
        return self._cache_get_many([key])[0]

    def _cache_get_many(self, keys: list[str]) -> list[list[list[float]] | None]:
        """The cached lists of ``keys`` (None: a miss), in one round trip; hits, misses and
        backend errors counted in the metrics."""
        if not keys:
            return []
        errors_before = self.cache.stats.errors
        raws = self.cache.get_many(keys)
        if self.cache.stats.errors > errors_before:
            self.metrics.cache.labels(result="error").inc()
        hits = sum(r is not None for r in raws)
        if hits:
            self.metrics.cache.labels(result="hit").inc(hits)
        if len(raws) - hits:
            self.metrics.cache.labels(result="miss").inc(len(raws) - hits)
        return [None if r is None else json.loads(r) for r in raws]

    def _cache_set_many(self, lists: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
        """Cache each (key, items, scores) in one round trip; a backend error is counted."""
        if not lists:
            return
        errors_before = self.cache.stats.errors
        self.cache.set_many(
            [
                (key, json.dumps([[int(i), float(s)] for i, s in zip(idx, sc, strict=True)]))
                for key, idx, sc in lists
            ]
        )
        if self.cache.stats.errors > errors_before:
            self.metrics.cache.labels(result="error").inc()

    def _cache_set(self, key: str, idx: np.ndarray, scores: np.ndarray) -> None:
        self._cache_set_many([(key, idx, scores)])

    def _fallback(self, reason: str) -> None:
        self.metrics.fallbacks.labels(reason=reason).inc()

    def _guarded(
        self, what: str, endpoint: str, call: Callable[[], T], fallback: str = ""
    ) -> T | None:
        """``call()``, or None when the model fails with one of ``SCORE_ERRORS``: the failure is
        logged in one line, counted as a model error of ``endpoint`` and, when ``fallback`` names
        a reason, as a fallback. Other exceptions propagate."""
        try:
            return call()
        except SCORE_ERRORS as exc:
            logger.error(
                "model %s version %s failed to %s: %s: %s",
                self.model.model_name,
                self.model.version,
                what,
                type(exc).__name__,
                exc,
            )
            self.metrics.errors.labels(endpoint=endpoint, kind="model_error").inc()
            if fallback:
                self._fallback(fallback)
            return None

    def popular_top_k(
        self, user: int | None, k: int, exclude_seen: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Most popular items, without the user's training items when asked (user None: none)."""
        order = self.model.popular_order
        if user is not None and exclude_seen:
            m = self.model.train.matrix
            seen = m.indices[m.indptr[user] : m.indptr[user + 1]]
            order = order[: k + len(seen)]
            order = order[~np.isin(order, seen)]
        idx = order[:k]
        return idx, self.model.popularity[idx]

    def trending_top(self) -> tuple[np.ndarray, np.ndarray]:
        """The published trending items this model knows (indices, trending scores), best first."""
        if self.trending is None:
            return NO_ITEMS, np.zeros(0)
        current = self.trending.current()
        cached = self._trend
        if cached[0] is current:
            return cached[1], cached[2]
        train = self.model.train
        known = [j for j, item in enumerate(current.item_ids) if train.has_item(item)]
        idx = np.array([train.item_index(current.item_ids[j]) for j in known], dtype=np.int64)
        scores = current.scores[np.asarray(known, dtype=np.int64)]
        self._trend = (current, idx, scores)  # one reference assignment: safe across threads
        return idx, scores

    def cold_start_top_k(self, k: int) -> Blended:
        """A list for a user the model never saw: trending (padded with popularity when fewer
        than ``k`` trending items are known), or popularity when nothing is published."""
        t_idx, t_sc = self.trending_top()
        if len(t_idx) == 0:
            self.metrics.cold_start.labels(list="popularity").inc()
            idx, sc = self.popular_top_k(None, k, False)
            return Blended(idx, sc, ["popularity"] * len(idx))
        self.metrics.cold_start.labels(list="trending").inc()
        idx, sc = t_idx[:k], t_sc[:k]
        pop = self.model.popular_order[: 2 * k]
        pop = pop[~np.isin(pop, idx)][: k - len(idx)]
        return Blended(
            np.concatenate([idx, pop]),
            np.concatenate([sc, self.model.popularity[pop]]),
            ["trending"] * len(idx) + ["popularity"] * len(pop),
        )

    def _blended_items(
        self,
        user_id: str,
        row: int | None,
        idx: np.ndarray,
        scores: np.ndarray,
        k: int,
        exclude_seen: bool,
        base_reason: str = "model",
    ) -> list[RecommendedItem]:
        """``idx`` with its trending and exploration slots (``settings``) filled; ``row``: the
        user's training row (None: a user the model never saw, nothing seen)."""
        n_trend, n_explore = slot_counts(
            k, self.settings.trending_slots, self.settings.exploration_slots
        )
        if n_trend == 0 and n_explore == 0:
            return self._items(idx, scores, base_reason)
        seen = NO_ITEMS
        if exclude_seen and row is not None:
            m = self.model.train.matrix
            seen = m.indices[m.indptr[row] : m.indptr[row + 1]]
        inserts: list[Insert] = []
        if n_trend:
            t_idx, t_sc = self.trending_top()
            inserts.append(Insert(t_idx, t_sc, n_trend, "trending"))
        if n_explore and len(self._explore):
            # enough draws that n_explore survive every exclusion (list, seen, trending picks)
            n = n_explore + len(idx) + len(seen) + n_trend
            hour = int(self._clock() // 3600)
            draw = exploration_draw(self._explore, n, user_id, hour)
            inserts.append(Insert(draw, self.model.popularity[draw], n_explore, "exploration"))
        b = blend(idx, scores, k, inserts, seen, base_reason)
        for reason in ("trending", "exploration"):
            count = b.count(reason)
            if count:
                self.metrics.blended.labels(reason=reason).inc(count)
        return self._items(b.idx, b.scores, b.reasons)

    def _model_top_k(
        self, users: np.ndarray, k: int, exclude_seen: bool
    ) -> tuple[np.ndarray, np.ndarray] | None:
        rec = self.model.recommender
        if rec is None:
            return None
        exclude = self.model.train.matrix if exclude_seen else None
        ann = self.model.ann
        if ann is not None and isinstance(rec, DotProductModel):  # retrieve, do not score all
            seen = None if exclude is None else exclude[users]
            return self._guarded(
                f"retrieve {len(users)} users from the ANN index (serving popularity)",
                "model",
                lambda: ann.top_k(rec.user_vectors(users), k, exclude=seen),
            )
        return self._guarded(
            f"score {len(users)} users (serving popularity)",
            "model",
            lambda: batch_top_k(rec, users, k, exclude=exclude),
        )

    def _new_user_scores(self, user_id: str, items: np.ndarray | None = None) -> np.ndarray | None:
        """Model scores (of ``items``, or all) for a user the model never saw, from the user's
        online features; None when the model cannot, or no usable features were found."""
        rec, encoder = self._feature_model, self.model.user_encoder
        if rec is None or self.features is None or encoder is None:
            return None
        row = self.features.vector(user_id, encoder, self.namespace)
        if row is None:
            return None
        return self._guarded(
            f"score user features ({rec.name})",
            "model",
            lambda: finite_scores(rec.name, rec.score_user_features(row, items))[0],
        )

    def _answer(self, user_id: str, items: list[RecommendedItem], source: str) -> Recommendations:
        return Recommendations(
            user_id=user_id,
            items=items,
            model_version=self.model.version,
            variant=self.settings.variant,
            source=source,  # type: ignore[arg-type]
        )

    # ---- endpoints ---------------------------------------------------------------------------
    def recommend(
        self,
        user_id: str,
        k: int = 10,
        exclude_seen: bool = True,
        context: dict[str, Any] | None = None,
    ) -> Recommendations:
        """Top-``k`` for one user: cache, then the model, then popularity for unknown users."""
        with self._timed("recommend"):
            self._check_k(k)
            return self._recommend_many(
                [str(user_id)], k, exclude_seen, context or {}, "recommend"
            )[0]

    def recommend_batch(
        self, user_ids: Sequence[str], k: int = 10, exclude_seen: bool = True
    ) -> BatchRecommendations:
        """Top-``k`` for each of ``user_ids`` (at most ``settings.max_batch_users``), in order."""
        with self._timed("recommend_batch"):
            self._check_k(k)
            if not 1 <= len(user_ids) <= self.settings.max_batch_users:
                raise InputError(
                    f"user_ids must hold between 1 and {self.settings.max_batch_users} ids, "
                    f"got {len(user_ids)}"
                )
            if len(user_ids) * k > self.settings.max_batch_items:
                raise InputError(
                    f"a batch answers at most {self.settings.max_batch_items} items (users x k, "
                    f"RECS_MAX_BATCH_ITEMS): {len(user_ids)} users x k={k} is "
                    f"{len(user_ids) * k}; send fewer users per request or a smaller k"
                )
            results = self._recommend_many(
                [str(u) for u in user_ids], k, exclude_seen, {}, "recommend_batch"
            )
            return BatchRecommendations(results=results, model_version=self.model.version)

    def _recommend_many(
        self,
        user_ids: list[str],
        k: int,
        exclude_seen: bool,
        context: dict[str, Any],
        endpoint: str,
    ) -> list[Recommendations]:
        train = self.model.train
        out: list[Recommendations | None] = [None] * len(user_ids)
        todo: list[tuple[int, int, str]] = []  # (position, user row, cache key)
        known = [pos for pos, uid in enumerate(user_ids) if train.has_user(uid)]
        keys = {pos: self._rec_key(user_ids[pos], k, exclude_seen, context) for pos in known}
        cached = dict(zip(known, self._cache_get_many([keys[p] for p in known]), strict=True))
        for pos, uid in enumerate(user_ids):
            if pos not in keys:
                scores = self._new_user_scores(uid)
                if scores is not None:  # nothing seen in training: nothing to exclude
                    idx, sc = top_k(scores[None, :], k)
                    items = self._blended_items(uid, None, idx[0], sc[0], k, exclude_seen)
                    out[pos] = self._answer(uid, items, "features")
                    continue
                cold = self.cold_start_top_k(k)
                self._fallback("unknown_user")
                out[pos] = self._answer(
                    uid, self._items(cold.idx, cold.scores, cold.reasons), "fallback"
                )
                continue
            key = keys[pos]
            hit = cached[pos]
            if hit is not None:
                idx = np.array([int(i) for i, _ in hit], dtype=np.int64)
                sc = np.array([s for _, s in hit], dtype=np.float64)
                row = train.user_index(uid)
                items = self._blended_items(uid, row, idx, sc, k, exclude_seen)
                out[pos] = self._answer(uid, items, "cache")
            else:
                todo.append((pos, train.user_index(uid), key))
        fresh: list[tuple[str, np.ndarray, np.ndarray]] = []
        if todo:
            rows = np.array([u for _, u, _ in todo], dtype=np.int64)
            computed = self._model_top_k(rows, k, exclude_seen)
            for j, (pos, row, key) in enumerate(todo):
                if computed is None:
                    reason = (
                        "model_unavailable" if self.model.recommender is None else "model_error"
                    )
                    self._fallback(reason)
                    idx, sc = self.popular_top_k(row, k, exclude_seen)
                    items = self._blended_items(
                        user_ids[pos], row, idx, sc, k, exclude_seen, "popularity"
                    )
                    out[pos] = self._answer(user_ids[pos], items, "fallback")
                    continue
                idx, sc = computed[0][j], computed[1][j]
                keep = idx >= 0
                idx, sc = idx[keep], sc[keep]
                fresh.append((key, idx, sc))  # the model's own list: slots are filled per answer
                items = self._blended_items(user_ids[pos], row, idx, sc, k, exclude_seen)
                out[pos] = self._answer(user_ids[pos], items, "model")
        self._cache_set_many(fresh)
        answers = [a for a in out if a is not None]
        for a in answers:
            self.metrics.requests.labels(endpoint=endpoint, source=a.source).inc()
        return answers

    def similar_items(self, item_id: str, k: int = 10) -> SimilarItems:
        """Items most similar to ``item_id``: the model's, else training co-occurrence cosine."""
        with self._timed("similar_items"):
            self._check_k(k)
            train = self.model.train
            if not train.has_item(item_id):
                raise UnknownItemError(f"unknown item_id {item_id!r}")
            item = train.item_index(item_id)
            key = cache_key(self.settings.cache_prefix, self.namespace, "sim", i=item_id, k=k)
            hit = self._cache_get(key)
            if hit is not None:
                items = self._items([int(i) for i, _ in hit], [s for _, s in hit])
                return self._similar(item_id, items, "cache")
            computed = self._model_similar(item, k)
            if computed is None:
                idx, sc = self.cooccurrence_similar(item, k)
                return self._similar(item_id, self._items(idx, sc), "fallback")
            idx, sc = computed
            self._cache_set(key, idx, sc)
            return self._similar(item_id, self._items(idx, sc), "model")

    def _similar(self, item_id: str, items: list[RecommendedItem], source: str) -> SimilarItems:
        self.metrics.requests.labels(endpoint="similar_items", source=source).inc()
        return SimilarItems(
            item_id=item_id,
            items=items,
            model_version=self.model.version,
            source=source,  # type: ignore[arg-type]
        )

    def _model_similar(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        rec = self.model.recommender
        if rec is None:
            self._fallback("model_unavailable")
            return None
        try:
            found = self._guarded(
                "find similar items",
                "similar_items",
                lambda: rec.similar_items(np.array([item]), k),
                fallback="model_error",
            )
        except NotImplementedError:
            self._fallback("no_item_vectors")
            return None
        if found is None:
            return None
        idx, sc = found
        keep = np.isfinite(sc[0])
        return idx[0][keep], sc[0][keep]

    def cooccurrence_similar(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine of binary training columns; ties (and items never co-consumed) by popularity."""
        X = self._binary_csc
        col = X[:, item]
        co = np.asarray((X.T @ col).todense(), dtype=np.float64).ravel()
        denom = self._item_norms * self._item_norms[item]
        cos = np.divide(co, denom, out=np.zeros_like(co), where=denom > 0)
        cos[item] = -np.inf
        order = np.lexsort((-self.model.popularity, -cos))
        order = order[order != item][:k]
        return order, cos[order]

    def score(self, user_id: str, item_ids: Sequence[str]) -> Scores:
        """Model scores of ``item_ids`` for ``user_id`` (popularity for unknown users)."""
        with self._timed("score"):
            train = self.model.train
            if not 1 <= len(item_ids) <= self.settings.max_score_items:
                raise InputError(
                    f"item_ids must hold between 1 and {self.settings.max_score_items} ids, "
                    f"got {len(item_ids)}"
                )
            unknown = [i for i in item_ids if not train.has_item(i)]
            if unknown:
                raise UnknownItemError(f"unknown item_ids: {unknown[:10]} ({len(unknown)} in all)")
            cols = np.array([train.item_index(i) for i in item_ids], dtype=np.int64)
            values: np.ndarray | None = None
            source = "model"
            rec = self.model.recommender
            if train.has_user(user_id) and rec is not None:
                users = np.array([train.user_index(user_id)])
                values = self._guarded(
                    "score items",
                    "score",
                    lambda: finite_scores(rec.name, rec.score(users, cols))[0],
                    fallback="model_error",
                )
            elif not train.has_user(user_id):
                values = self._new_user_scores(user_id, cols)
                if values is not None:
                    source = "features"
                else:
                    self._fallback("unknown_user")
            else:
                self._fallback("model_unavailable")
            if values is None:
                values = self.model.popularity[cols]
                source = "fallback"
            self.metrics.requests.labels(endpoint="score", source=source).inc()
            return Scores(
                user_id=user_id,
                scores=[
                    ScoredItem(item_id=str(i), score=float(v))
                    for i, v in zip(item_ids, values, strict=True)
                ],
                model_version=self.model.version,
                variant=self.settings.variant,
                source=source,  # type: ignore[arg-type]
            )

    def warm(
        self, users: np.ndarray, k: int = 10, exclude_seen: bool = True, block: int = 2048
    ) -> int:
        """Precompute and cache the lists of ``users`` (row indices); returns how many were cached."""
        self._check_k(k)
        rec = self.model.recommender
        if rec is None:
            return 0
        users = np.asarray(users, dtype=np.int64)
        exclude = self.model.train.matrix if exclude_seen else None
        idx, sc = batch_top_k(rec, users, k, exclude=exclude, block=block)
        for row, items, scores in zip(users, idx, sc, strict=True):
            keep = items >= 0
            uid = str(self.model.train.user_ids[row])
            self._cache_set(self._rec_key(uid, k, exclude_seen, {}), items[keep], scores[keep])
        return len(users)

    def info(self) -> ModelInfo:
        """What this worker serves, with its cache counters."""
        s = self.cache.stats
        return ModelInfo(
            model_version=self.model.version,
            model_name=self.model.model_name,
            model_loaded=self.model.recommender is not None,
            load_error=self.model.load_error,
            labels=self.model.labels,
            variant=self.settings.variant,
            n_users=self.model.train.n_users,
            n_items=self.model.train.n_items,
            cache=self.cache.kind,
            cache_hits=s.hits,
            cache_misses=s.misses,
            cache_errors=s.errors,
        )
