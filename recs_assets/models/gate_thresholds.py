"""Quality-gate thresholds as Dagster run config, shared by the model assets and the evaluation
report's checks. The numbers themselves are defined once, in ``core.evaluation.gates.GateConfig``."""

from __future__ import annotations

from dagster import Config

from recs_assets.core.evaluation.gates import GateConfig

_DEFAULTS = GateConfig()


class GateThresholds(Config):
    """Thresholds of the quality gates; each defaults to ``GateConfig``'s (docs/evaluation.md)."""

    min_ndcg_lift: float = _DEFAULTS.min_ndcg_lift
    min_auc: float = _DEFAULTS.min_auc
    min_user_coverage: float = _DEFAULTS.min_user_coverage
    min_ild: float = _DEFAULTS.min_ild
    max_request_p95_ms: float = _DEFAULTS.max_request_p95_ms

    def gate_config(self) -> GateConfig:
        return GateConfig(
            self.min_ndcg_lift,
            self.min_auc,
            self.min_user_coverage,
            self.min_ild,
            self.max_request_p95_ms,
        )
