"""Published reference numbers several tests check against, each written once here.

Sources: ../shared/PROTOCOL.md (popularity under P1 on MovieLens 100K) and Dacrema et al.,
"Are we really making much progress?" (RecSys 2019; TopPopular under a leave-one-out protocol).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pytest

# metric -> (reference value, absolute tolerance)
P1_POPULARITY_ML100K: dict[str, tuple[float, float]] = {
    "precision@10": (0.2231, 0.01),
    "ndcg@10": (0.2454, 0.01),
    "recall@10": (0.1086, 0.005),
    "catalog_coverage": (0.029, 0.003),
}
P3_POPULARITY_ML100K: dict[str, tuple[float, float]] = {"hit_rate@10": (0.4145, 0.03)}


def assert_reference(
    measured: Mapping[str, float],
    reference: Mapping[str, tuple[float, float]],
    metrics: Iterable[str] | None = None,
) -> None:
    """Each of ``metrics`` (default: every reference metric) within its tolerance."""
    for name in reference if metrics is None else metrics:
        value, tolerance = reference[name]
        assert measured[name] == pytest.approx(value, abs=tolerance), name
