"""Quality gates: a pure decision over one model's evaluation, used by the blocking asset checks.

A gate is a (name, passed, value, threshold) row; a model passes when every gate passes. NaN
values fail (an undefined metric cannot prove quality).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from recs_assets.core.evaluation.runner import ModelEvaluation


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of the quality gates.

    Attributes:
        min_ndcg_lift: NDCG@k must exceed popularity's by at least this relative margin
            (0.10 = 10% above); not applied to the popularity baseline itself.
        min_auc: lowest acceptable AUC.
        min_user_coverage: lowest share of users who get a full list of k.
        min_ild: lowest acceptable intra-list diversity (0.0 = no floor).
        max_request_p95_ms: slowest acceptable 95th percentile of a one-user request in process
            (``core.evaluation.latency``), in ms; 0 = no limit. A model above it cannot hold the
            service's 30 ms miss target once HTTP and queueing are added.
    """

    min_ndcg_lift: float = 0.10
    min_auc: float = 0.7
    min_user_coverage: float = 0.9
    min_ild: float = 0.0
    max_request_p95_ms: float = 20.0


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    value: float
    threshold: float


def _at_least(gate: str, value: float | None, threshold: float) -> GateResult:
    v = float("nan") if value is None else float(value)
    return GateResult(gate, math.isfinite(v) and v >= threshold, v, threshold)


def _at_most(gate: str, value: float | None, threshold: float) -> GateResult:
    v = float("nan") if value is None else float(value)
    return GateResult(gate, math.isfinite(v) and v <= threshold, v, threshold)


def evaluate_gates(
    evaluation: ModelEvaluation, config: GateConfig, *, baseline: str = "popularity"
) -> list[GateResult]:
    """Every gate for ``evaluation``.

    The NDCG lift gate is skipped for the baseline itself; user coverage and ILD gates apply when
    the protocol measures them (not under the sampled P3; ILD needs item categories).
    """
    k = evaluation.k
    results: list[GateResult] = []
    if evaluation.model != baseline:
        results.append(
            _at_least(
                f"ndcg@{k} lift over {baseline}",
                evaluation.lift.get(f"ndcg@{k}"),
                config.min_ndcg_lift,
            )
        )
    results.append(_at_least("auc", evaluation.metrics.get("auc"), config.min_auc))
    if "user_coverage" in evaluation.metrics:
        results.append(
            _at_least(
                "user_coverage", evaluation.metrics["user_coverage"], config.min_user_coverage
            )
        )
    if "ild" in evaluation.metrics:  # only measured when item categories are known
        results.append(_at_least("ild", evaluation.metrics["ild"], config.min_ild))
    if "p95" in evaluation.request_ms and config.max_request_p95_ms > 0:
        results.append(
            _at_most("request p95 ms", evaluation.request_ms["p95"], config.max_request_p95_ms)
        )
    return results


def passed(results: list[GateResult]) -> bool:
    return all(r.passed for r in results)
