"""Statistics of an A/B test on proportions: per-variant rates, the two-proportion z-test, uplift.

Pure functions on counts; event counting and the Wilson interval are shared with online quality
(``recs_assets.core.monitoring.quality``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from recs_assets.core.monitoring.quality import WILSON_Z, event_counts, rate_columns

AB_EVENTS: tuple[str, ...] = ("impression", "click", "conversion")


@dataclass(frozen=True)
class ProportionTest:
    """Treatment ``b`` against control ``a`` on one proportion.

    Attributes:
        rate_a, rate_b: the two observed proportions.
        diff: ``rate_b - rate_a``.
        diff_low, diff_high: 95% Wald interval of the difference (unpooled variance).
        uplift: ``rate_b / rate_a - 1`` (NaN when ``rate_a`` is 0).
        uplift_low, uplift_high: 95% interval of the uplift from the log risk ratio (Katz).
        z: pooled two-proportion z statistic (positive when b is higher).
        p_value: two-sided p-value of ``z``.
    """

    rate_a: float
    rate_b: float
    diff: float
    diff_low: float
    diff_high: float
    uplift: float
    uplift_low: float
    uplift_high: float
    z: float
    p_value: float


def two_proportion_test(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, z_crit: float = WILSON_Z
) -> ProportionTest:
    """Compare ``successes_b / trials_b`` with ``successes_a / trials_a``.

    z = (p_b - p_a) / sqrt(p (1 - p) (1/n_a + 1/n_b)) with the pooled p; the uplift interval is
    ``exp(log(p_b/p_a) +- z_crit * sqrt(1/x_a - 1/n_a + 1/x_b - 1/n_b)) - 1`` (NaN bounds when a
    count is 0).
    """
    for name, s, n in (("a", successes_a, trials_a), ("b", successes_b, trials_b)):
        if n <= 0 or not 0 <= s <= n:
            raise ValueError(
                f"variant {name}: need 0 <= successes <= trials and trials > 0, got {s} of {n}"
            )
    pa, pb = successes_a / trials_a, successes_b / trials_b
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b))
    diff = pb - pa
    if se_pooled > 0:
        z = diff / se_pooled
        p_value = float(2 * norm.sf(abs(z)))
    else:  # both all-success or all-failure: no evidence of a difference
        z, p_value = 0.0, 1.0
    se_diff = math.sqrt(pa * (1 - pa) / trials_a + pb * (1 - pb) / trials_b)
    nan = float("nan")
    uplift = pb / pa - 1 if pa > 0 else nan
    if successes_a > 0 and successes_b > 0:
        se_log = math.sqrt(1 / successes_a - 1 / trials_a + 1 / successes_b - 1 / trials_b)
        log_rr = math.log(pb / pa)
        up_low = math.exp(log_rr - z_crit * se_log) - 1
        up_high = math.exp(log_rr + z_crit * se_log) - 1
    else:
        up_low = up_high = nan
    return ProportionTest(
        rate_a=pa,
        rate_b=pb,
        diff=diff,
        diff_low=diff - z_crit * se_diff,
        diff_high=diff + z_crit * se_diff,
        uplift=uplift,
        uplift_low=up_low,
        uplift_high=up_high,
        z=float(z),
        p_value=p_value,
    )


def variant_rates(events: pd.DataFrame) -> pd.DataFrame:
    """Per variant: impressions, clicks, conversions, CTR and conversion rate (per impression),
    each rate with its 95% Wilson interval; sorted by variant.

    ``events`` needs ``variant`` and ``event`` (``impression``, ``click`` or ``conversion``).
    A variant with feedback but no impressions is an error.
    """
    counts = event_counts(events, "variant", AB_EVENTS, "A/B", "variant(s)", "feedback")
    n = counts["impression"].to_numpy(np.int64)
    out = pd.DataFrame({"variant": counts.index.astype(str), "impressions": n})
    for kind, rate in (("click", "ctr"), ("conversion", "conversion_rate")):
        s = counts[kind].to_numpy(np.int64)
        out[f"{kind}s"] = s
        for column, values in rate_columns(s, n, rate).items():
            out[column] = values
    return out


def compare_variants(rates: pd.DataFrame, control: str) -> pd.DataFrame:
    """Every other variant against ``control`` on CTR and conversion rate (one row per pair)."""
    if control not in set(rates["variant"]):
        raise ValueError(f"control variant {control!r} not in {rates['variant'].tolist()}")
    base = rates.set_index("variant").loc[control]
    rows = []
    for _, r in rates[rates["variant"] != control].iterrows():
        for kind, metric in (("clicks", "ctr"), ("conversions", "conversion_rate")):
            t = two_proportion_test(
                int(base[kind]), int(base["impressions"]), int(r[kind]), int(r["impressions"])
            )
            rows.append(
                {
                    "control": control,
                    "variant": r["variant"],
                    "metric": metric,
                    **{f: getattr(t, f) for f in ProportionTest.__dataclass_fields__},
                }
            )
    return pd.DataFrame(rows)
