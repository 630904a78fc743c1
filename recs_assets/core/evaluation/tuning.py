"""Hyper-parameter tuning of a model family: a seeded Optuna TPE study on a validation split.

Pure: no Dagster, no MLflow. ``tune`` fits the family on ``split.train`` once per trial and
scores it by NDCG@k on ``split.test``, ranking all items minus the user's train items (the P1
ranking). Pass the *validation* split (``validation_split`` of the P1 split: P1 applied again to
the P1 train part); the P1 test part must never reach this module.

Search spaces are Optuna distributions keyed by the family's constructor keywords. Fixed
keywords (``TUNING_FIXED``) go to every trial and into the best parameters; budget keywords
(``TUNING_BUDGET``, e.g. an epoch cap for NCF) go to every trial only, so the model asset trains
with the family's own values for them. Structured keywords (NCF's MLP ``layers``) are searched as
strings and decoded before they reach the factory (``CODECS``). The same ``seed`` gives the same
trials.
"""

from __future__ import annotations

import inspect
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from recs_assets.core.evaluation.protocols import Split
from recs_assets.core.metrics import ndcg_at_k
from recs_assets.core.models.base import Recommender, RecommenderError, SideInfo
from recs_assets.core.models.registry import model_factory

SearchSpace = Mapping[str, BaseDistribution]

SEARCH_SPACES: dict[str, dict[str, BaseDistribution]] = {
    "ease": {"lam": FloatDistribution(50.0, 5000.0, log=True)},
    "rp3beta": {
        "alpha": FloatDistribution(0.2, 1.5),
        "beta": FloatDistribution(0.0, 1.0),
        "top_k": IntDistribution(20, 800, log=True),
    },
    "lightfm": {
        "no_components": IntDistribution(32, 128, step=32),
        "learning_rate": FloatDistribution(0.005, 0.1, log=True),
        "max_sampled": IntDistribution(10, 100, step=10),
        "item_alpha": FloatDistribution(1e-8, 1e-4, log=True),
        "user_alpha": FloatDistribution(1e-8, 1e-4, log=True),
        "epochs": IntDistribution(10, 40, step=10),
    },
    "als": {
        "factors": IntDistribution(16, 128, log=True),
        "regularization": FloatDistribution(0.5, 100.0, log=True),
        "alpha": FloatDistribution(0.5, 20.0, log=True),
        "iterations": IntDistribution(5, 25),
    },
    "ncf": {
        "factors": IntDistribution(16, 64, log=True),
        "layers": CategoricalDistribution(["64-32-16", "128-64-32", "256-128-64"]),
        "learning_rate": FloatDistribution(5e-4, 1e-2, log=True),
        "weight_decay": FloatDistribution(1e-8, 1e-4, log=True),
        "n_negatives": IntDistribution(4, 16, log=True),
    },
}

# Keywords every trial of a family gets, and that the best parameters carry (one thread for
# reproducible numbers).
TUNING_FIXED: dict[str, dict[str, Any]] = {
    "ease": {},
    "rp3beta": {},
    "lightfm": {"num_threads": 1},
    "als": {},  # each user's (item's) least-squares solve is independent: any thread count
    "ncf": {"num_threads": 1},
}

# Keywords that only bound a trial's cost: every trial gets them, the best parameters do not (the
# model asset trains with the family's own values). NCF: at most 10 epochs per network (early
# stopping on a 10% hold-out of train still picks the best one) and no refit on all of train:
# about a third of a full fit (66 s a trial on ML-100K validation, one thread). Keywords also
# given as ``fixed`` override these.
TUNING_BUDGET: dict[str, dict[str, Any]] = {
    "ncf": {"epochs": 10, "patience": 2, "refit": False},
}


@dataclass(frozen=True)
class Codec:
    """How a structured keyword is searched as a plain Optuna categorical value.

    Attributes:
        encode: factory value -> the choice (e.g. ``(128, 64, 32)`` -> ``"128-64-32"``).
        decode: the choice -> the factory value.
    """

    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]


def encode_layers(layers: Sequence[int]) -> str:
    """MLP sizes as a categorical choice: ``(128, 64, 32)`` -> ``"128-64-32"``."""
    return "-".join(str(int(x)) for x in layers)


def decode_layers(choice: str) -> tuple[int, ...]:
    """``"128-64-32"`` -> ``(128, 64, 32)``."""
    return tuple(int(x) for x in str(choice).split("-"))


CODECS: dict[str, dict[str, Codec]] = {
    "ncf": {"layers": Codec(encode_layers, decode_layers)},
}


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial.

    Attributes:
        number: 0-based trial number.
        params: the sampled hyper-parameters (without the fixed ones).
        value: validation NDCG@k, or None when the fit failed.
        seconds: wall time of fit + scoring.
        state: "COMPLETE" or "FAIL".
        error: the failure message ("" when complete).
    """

    number: int
    params: dict[str, Any]
    value: float | None
    seconds: float
    state: str
    error: str = ""


@dataclass(frozen=True)
class TuningResult:
    """What a study found.

    Attributes:
        family: registry name.
        best_params: the best trial's sampled parameters (decoded, see ``CODECS``) merged over
            ``fixed`` (what to pass to the family's factory); empty when the study was skipped
            (use the family defaults).
        best_value: the best validation NDCG@k, None when skipped.
        trials: one row per trial: ``number``, ``value``, ``seconds``, ``state``, ``error`` and
            one column per searched parameter (as searched: encoded choices stay strings).
        metric: name of the objective (``ndcg@10``).
        seed: the sampler's seed.
        fixed: keywords passed to every trial (and part of ``best_params``).
        search_space: parameter -> distribution description (for logs and the UI).
        budget: keywords passed to every trial only, to bound its cost (not in ``best_params``).
    """

    family: str
    best_params: dict[str, Any]
    best_value: float | None
    trials: pd.DataFrame
    metric: str
    seed: int
    fixed: dict[str, Any]
    search_space: dict[str, str]
    budget: dict[str, Any] = field(default_factory=dict)

    @property
    def skipped(self) -> bool:
        return self.best_value is None

    @property
    def best_trial(self) -> int | None:
        done = self.trials[self.trials["state"] == "COMPLETE"]
        if done.empty:
            return None
        return int(done.sort_values(["value", "number"], ascending=[False, True]).iloc[0]["number"])


def describe(dist: BaseDistribution) -> str:
    """A short human description of an Optuna distribution (``float [50, 5000] log``)."""
    if isinstance(dist, FloatDistribution | IntDistribution):
        kind = "float" if isinstance(dist, FloatDistribution) else "int"
        extra = " log" if dist.log else (f" step {dist.step}" if dist.step not in (None, 1) else "")
        return f"{kind} [{dist.low:g}, {dist.high:g}]{extra}"
    if isinstance(dist, CategoricalDistribution):
        return f"one of {list(dist.choices)}"
    return repr(dist)


def validation_ndcg(model: Recommender, split: Split, k: int = 10) -> float:
    """NDCG@k of a model fitted on ``split.train`` over the users with ``split.test`` items.

    All items are ranked except the user's train items (P1); binary gain.
    """
    users = split.test_users()
    if len(users) == 0:
        raise ValueError("the validation split has no user with a held-out item")
    top, _ = model.recommend(users, k=k, exclude=split.train.matrix)
    return ndcg_at_k(top, split.test.matrix[users])


def _accepted(family: str, factory: Callable[..., Recommender], names: list[str]) -> None:
    sig = inspect.signature(factory)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return
    unknown = [n for n in names if n not in sig.parameters]
    if unknown:
        raise ValueError(
            f"{family}: search space or fixed parameters {unknown} are not keywords of its "
            f"factory; accepted: {sorted(sig.parameters)}"
        )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _inside(dist: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` is a point of ``dist`` (within bounds and on its step grid)."""
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    if isinstance(dist, FloatDistribution | IntDistribution):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not dist.low <= value <= dist.high:
            return False
        return dist.step is None or math.isclose((value - dist.low) / dist.step % 1.0, 0.0)
    return False


def default_params(
    factory: Callable[..., Recommender],
    search_space: SearchSpace,
    codecs: Mapping[str, Codec] | None = None,
) -> dict[str, Any]:
    """The factory's default values of the searched parameters (encoded with ``codecs``), when
    all lie in the space (then the study's first trial measures the defaults); empty otherwise."""
    sig = inspect.signature(factory)
    codecs = codecs or {}
    out: dict[str, Any] = {}
    for name, dist in search_space.items():
        p = sig.parameters.get(name)
        if p is None or p.default is inspect.Parameter.empty:
            return {}
        value = codecs[name].encode(p.default) if name in codecs else p.default
        if not _inside(dist, value):
            return {}
        out[name] = value
    return out


def decoded(params: Mapping[str, Any], codecs: Mapping[str, Codec]) -> dict[str, Any]:
    """Searched values as the factory takes them (``CODECS`` decoding; others unchanged)."""
    return {k: codecs[k].decode(v) if k in codecs else v for k, v in params.items()}


def tune(
    family: str,
    split: Split,
    side: SideInfo | None,
    n_trials: int,
    seed: int = 42,
    search_space: SearchSpace | None = None,
    *,
    fixed: Mapping[str, Any] | None = None,
    budget: Mapping[str, Any] | None = None,
    k: int = 10,
    on_trial: Callable[[TrialRecord], None] | None = None,
    n_startup_trials: int = 5,
    start_from_defaults: bool = True,
) -> TuningResult:
    """Run ``n_trials`` trials of a TPE study (seeded with ``seed``) over ``search_space``.

    Each trial fits ``family`` (registry name) with the sampled parameters over ``fixed`` on
    ``split.train`` and scores ``validation_ndcg`` on ``split.test``; the study maximizes it.
    ``search_space`` defaults to ``SEARCH_SPACES[family]``, ``fixed`` to ``TUNING_FIXED[family]``
    and ``budget`` to ``TUNING_BUDGET[family]`` (trial-only keywords, left out of the best
    parameters; ``fixed`` wins where both name a keyword). A trial whose fit raises ``RecommenderError`` (e.g. a diverged fit)
    is recorded as FAIL and the study goes on; when every trial fails, ``ValueError`` is raised
    with their errors. ``on_trial`` is called after every trial (for progress and tracking).

    The first ``n_startup_trials`` are sampled at random, the rest by TPE. With
    ``start_from_defaults`` (and the family's defaults inside the space) trial 0 measures the
    defaults (under the same budget), so the best found is never worse than them on validation.
    """
    factory = model_factory(family)
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if search_space is None:
        if family not in SEARCH_SPACES:
            raise ValueError(
                f"no default search space for {family!r}; known: {sorted(SEARCH_SPACES)} "
                "(pass search_space)"
            )
        search_space = SEARCH_SPACES[family]
    if not search_space:
        raise ValueError(f"{family}: the search space is empty")
    fixed_params = dict(TUNING_FIXED.get(family, {}) if fixed is None else fixed)
    budget_params = {
        k: v
        for k, v in (TUNING_BUDGET.get(family, {}) if budget is None else budget).items()
        if k not in fixed_params
    }
    overlap = sorted(set(fixed_params) & set(search_space))
    if overlap:
        raise ValueError(f"{family}: parameters {overlap} are both fixed and searched")
    overlap = sorted(set(budget_params) & set(search_space))
    if overlap:
        raise ValueError(f"{family}: parameters {overlap} are both budget and searched")
    _accepted(family, factory, [*search_space, *fixed_params, *budget_params])
    codecs = CODECS.get(family, {})

    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    defaults = default_params(factory, search_space, codecs) if start_from_defaults else {}
    if defaults:
        study.enqueue_trial(defaults)
    records: list[TrialRecord] = []
    for _ in range(n_trials):
        trial = study.ask(dict(search_space))
        params = {name: _plain(v) for name, v in trial.params.items()}
        t0 = time.perf_counter()
        try:
            kwargs = {**budget_params, **fixed_params, **decoded(params, codecs)}
            model = factory(**kwargs).fit(split.train, side)
            value = validation_ndcg(model, split, k)
        except RecommenderError as exc:  # recorded as a failed trial, never as a score
            study.tell(trial, state=TrialState.FAIL)
            record = TrialRecord(
                trial.number, params, None, time.perf_counter() - t0, "FAIL", str(exc)
            )
        else:
            if not math.isfinite(value):
                raise ValueError(f"{family}: trial {trial.number} {params} scored {value}")
            study.tell(trial, value)
            record = TrialRecord(trial.number, params, value, time.perf_counter() - t0, "COMPLETE")
        records.append(record)
        if on_trial is not None:
            on_trial(record)

    table = pd.DataFrame(
        [
            {
                "number": r.number,
                "value": np.nan if r.value is None else r.value,
                "seconds": r.seconds,
                "state": r.state,
                "error": r.error,
                **r.params,
            }
            for r in records
        ]
    )
    done = [r for r in records if r.value is not None]
    if not done:
        errors = "; ".join(f"trial {r.number} {r.params}: {r.error}" for r in records[:3])
        raise ValueError(f"{family}: all {n_trials} trials failed: {errors}")
    best = max(done, key=lambda r: (r.value, -r.number))
    return TuningResult(
        family=family,
        best_params={**fixed_params, **decoded(best.params, codecs)},
        best_value=float(best.value),  # type: ignore[arg-type]
        trials=table,
        metric=f"ndcg@{k}",
        seed=seed,
        fixed=fixed_params,
        search_space={name: describe(d) for name, d in search_space.items()},
        budget=budget_params,
    )


def skipped_result(family: str, seed: int = 42, k: int = 10) -> TuningResult:
    """The result of a study with a budget of 0 trials: no parameters, use the defaults."""
    return TuningResult(
        family=family,
        best_params={},
        best_value=None,
        trials=pd.DataFrame(columns=["number", "value", "seconds", "state", "error"]),
        metric=f"ndcg@{k}",
        seed=seed,
        fixed={},
        search_space={n: describe(d) for n, d in SEARCH_SPACES.get(family, {}).items()},
    )


def params_markdown(params: Mapping[str, Any]) -> str:
    """A two-column markdown table of parameters (``(family defaults)`` when empty)."""
    rows = "\n".join(f"| {k} | {json.dumps(_plain(v))} |" for k, v in sorted(params.items()))
    return "| parameter | value |\n| --- | --- |\n" + (rows or "| (family defaults) | - |")


def tuned_hyperparameters(
    tuning: TuningResult | None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Keyword arguments for a model asset's family: the study's best parameters (none when the
    study was skipped or is absent, i.e. the family defaults), with explicit ``overrides`` (the
    asset's ``ModelTrainingConfig.hyperparameters``) winning."""
    base = {} if tuning is None or tuning.skipped else dict(tuning.best_params)
    return {**base, **dict(overrides or {})}


def tuned_members(
    members: Sequence[Mapping[str, Any]], tunings: Mapping[str, TuningResult | None]
) -> list[dict[str, Any]]:
    """A composite model's members (``{"name", "params"}``) with each member family's best
    tuned parameters under the member's own (e.g. ``hybrid_items`` of the blend's LightFM)."""
    return [
        {
            "name": m["name"],
            "params": {
                **tuned_hyperparameters(tunings.get(m["name"])),
                **dict(m.get("params", {})),
            },
        }
        for m in members
    ]
