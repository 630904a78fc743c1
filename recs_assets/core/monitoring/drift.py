"""Distribution drift statistics: population stability index (PSI) and the two-sample KS statistic.

Both compare an ``expected`` sample (the reference, e.g. the training window) with an ``actual``
sample (the latest window). Pure numpy; no Dagster.

PSI = sum over bins of ``(a_i - e_i) * ln(a_i / e_i)``, where ``e_i`` and ``a_i`` are the shares of
the expected and actual samples in bin ``i``. Bins come from the expected sample's quantiles, so each
holds about the same share of it; shares are floored at ``eps`` so an empty bin does not give an
infinite value. Usual reading: below 0.1 stable, 0.1-0.25 a moderate shift, above 0.25 a major one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

DEFAULT_BINS = 10
DEFAULT_EPS = 1e-4


def _clean(values: np.ndarray | pd.Series | Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        raise ValueError(f"{name}: no non-null values to compare")
    return arr


def quantile_edges(expected: np.ndarray | pd.Series | Sequence[float], bins: int) -> np.ndarray:
    """Inner bin edges: the distinct ``1/bins ... (bins-1)/bins`` quantiles of ``expected``.

    Bin ``j`` is ``(edges[j-1], edges[j]]`` with ``-inf`` and ``+inf`` outside, so there are
    ``len(edges) + 1`` bins (fewer than ``bins`` when the sample has ties, e.g. discrete values).
    """
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    arr = _clean(expected, "expected")
    inner = np.quantile(arr, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return np.unique(inner)


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` in each bin ``(edges[j-1], edges[j]]`` (outer bins open-ended)."""
    idx = np.searchsorted(edges, values, side="left")
    return np.bincount(idx, minlength=len(edges) + 1) / len(values)


def psi(
    expected: np.ndarray | pd.Series | Sequence[float],
    actual: np.ndarray | pd.Series | Sequence[float],
    bins: int | Sequence[float] = DEFAULT_BINS,
    eps: float = DEFAULT_EPS,
) -> float:
    """Population stability index of ``actual`` against ``expected`` (nulls ignored).

    ``bins``: a number of quantile bins of ``expected`` (see ``quantile_edges``), or explicit inner
    edges (increasing). Shares are floored at ``eps``.
    """
    e = _clean(expected, "expected")
    a = _clean(actual, "actual")
    if isinstance(bins, int):
        edges = quantile_edges(e, bins)
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or np.any(np.diff(edges) <= 0):
            raise ValueError(f"bin edges must be one strictly increasing sequence, got {bins}")
    pe = np.maximum(bin_shares(e, edges), eps)
    pa = np.maximum(bin_shares(a, edges), eps)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def ks_statistic(
    expected: np.ndarray | pd.Series | Sequence[float],
    actual: np.ndarray | pd.Series | Sequence[float],
) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: ``max_x |F_expected(x) - F_actual(x)|``."""
    e = np.sort(_clean(expected, "expected"))
    a = np.sort(_clean(actual, "actual"))
    points = np.concatenate([e, a])
    fe = np.searchsorted(e, points, side="right") / e.size
    fa = np.searchsorted(a, points, side="right") / a.size
    return float(np.max(np.abs(fe - fa)))


@dataclass(frozen=True)
class DriftThresholds:
    """Limits on per-feature drift: above ``warn_*`` warns, above ``fail_*`` fails.

    A feature with fewer than ``min_samples`` values in either window is reported with status
    ``too_few`` and neither warns nor fails (its statistics are noise).
    """

    warn_psi: float = 0.1
    fail_psi: float = 0.25
    warn_ks: float = 0.15
    fail_ks: float = 0.3
    min_samples: int = 200


STATUSES: tuple[str, ...] = ("ok", "warn", "fail", "too_few")


def drift_table(
    reference: Mapping[str, np.ndarray | pd.Series],
    current: Mapping[str, np.ndarray | pd.Series],
    bins: int = DEFAULT_BINS,
) -> pd.DataFrame:
    """PSI and KS per feature with the sample sizes (columns feature, psi, ks, n_reference, n_current).

    ``reference`` and ``current`` map feature name -> values (nulls ignored); features must match.
    A feature with no values in either sample cannot be compared: its PSI and KS are NaN and its
    count 0, so ``classify`` reports it ``too_few`` (a window without events is not drift).
    """
    if set(reference) != set(current):
        raise ValueError(
            f"features differ: reference {sorted(reference)} vs current {sorted(current)}"
        )
    rows = []
    for name in reference:
        ref, cur = _values(reference[name]), _values(current[name])
        if np.isnan(ref).all() or np.isnan(cur).all():
            rows.append(
                {
                    "feature": name,
                    "psi": float("nan"),
                    "ks": float("nan"),
                    "n_reference": int((~np.isnan(ref)).sum()),
                    "n_current": int((~np.isnan(cur)).sum()),
                }
            )
            continue
        rows.append(
            {
                "feature": name,
                "psi": psi(ref, cur, bins),
                "ks": ks_statistic(ref, cur),
                "n_reference": int((~np.isnan(ref)).sum()),
                "n_current": int((~np.isnan(cur)).sum()),
            }
        )
    return pd.DataFrame(rows, columns=["feature", "psi", "ks", "n_reference", "n_current"])


def classify(table: pd.DataFrame, thresholds: DriftThresholds) -> pd.DataFrame:
    """A copy of a ``drift_table`` with a ``status`` column (``STATUSES``) under ``thresholds``."""
    psi_v, ks_v = table["psi"].to_numpy(), table["ks"].to_numpy()
    status = np.where(
        (psi_v > thresholds.fail_psi) | (ks_v > thresholds.fail_ks),
        "fail",
        np.where((psi_v > thresholds.warn_psi) | (ks_v > thresholds.warn_ks), "warn", "ok"),
    ).astype(object)
    few = (table["n_reference"] < thresholds.min_samples) | (
        table["n_current"] < thresholds.min_samples
    )
    status[few.to_numpy()] = "too_few"
    return table.assign(status=status)


def _values(values: np.ndarray | pd.Series) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).ravel()


def overall_status(table: pd.DataFrame) -> str:
    """``fail`` if any feature fails, else ``warn`` if any warns, else ``ok`` (of a classified table)."""
    statuses = set(table["status"])
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "ok"
