"""Online quality from feedback events, and the drift of served lists (scores and popularity).

Input contracts (files written by the service or the batch job; Parquet or CSV, any number):
- feedback events: ``model_version`` (string), ``event`` (``impression`` or ``click``), optional
  ``timestamp``, ``user_id``, ``item_id``. One impression per item shown, one click per item clicked.
- served lists: ``user_id``, ``item_id``, ``rank`` (1 = top), ``score``, ``served_at`` (UTC
  timestamp), optional ``model_version``. ``batch_recommendations`` output plus a ``served_at``
  column qualifies.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from recs_assets.core.phase1.files import read_table

FEEDBACK_EVENTS: tuple[str, ...] = ("impression", "click")
SERVED_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "rank", "score", "served_at")
WILSON_Z = 1.959963984540054  # two-sided 95%


def wilson_interval(
    successes: np.ndarray, trials: np.ndarray, z: float = WILSON_Z
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion (elementwise); ``trials`` must be > 0."""
    s, n = np.asarray(successes, float), np.asarray(trials, float)
    p = s / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    # Mathematically low <= p <= high within [0, 1]; clip the rounding error (0 clicks gave a
    # lower bound of 3.5e-18 > 0, and a negative error bar in the plot).
    low = np.minimum(np.clip(centre - half, 0.0, 1.0), p)
    high = np.maximum(np.clip(centre + half, 0.0, 1.0), p)
    return low, high


def event_counts(
    events: pd.DataFrame, key: str, kinds: Sequence[str], what: str, owners: str, feedback: str
) -> pd.DataFrame:
    """Events counted per ``key`` value (rows, sorted) and ``event`` kind (columns ``kinds``).

    A missing column, an ``event`` value outside ``kinds`` or a key value with ``feedback`` but no
    impression is an error that says which (``what`` names the events and ``owners`` the key
    values in the message, e.g. ``feedback`` and ``model version(s)``).
    """
    missing = [c for c in (key, "event") if c not in events.columns]
    if missing:
        raise ValueError(f"{what} events lack column(s) {missing}; need {key} and event")
    observed = events["event"].astype(str)
    bad = sorted(set(observed) - set(kinds))
    if bad:
        raise ValueError(f"unknown {what} event value(s) {bad}; use {list(kinds)}")
    counts = pd.crosstab(events[key].astype(str), observed).reindex(
        columns=list(kinds), fill_value=0
    )
    no_impr = counts.index[counts["impression"] == 0].tolist()
    if no_impr:
        raise ValueError(f"{owners} {no_impr} have {feedback} but no impressions")
    return counts.sort_index()


def rate_columns(successes: np.ndarray, trials: np.ndarray, rate: str) -> dict[str, np.ndarray]:
    """``rate`` (successes / trials) with its 95% Wilson bounds ``<rate>_low`` and ``<rate>_high``."""
    low, high = wilson_interval(successes, trials)
    return {
        rate: np.asarray(successes, float) / np.asarray(trials, float),
        f"{rate}_low": low,
        f"{rate}_high": high,
    }


def ctr_by_version(events: pd.DataFrame) -> pd.DataFrame:
    """Impressions, clicks, CTR and its 95% Wilson interval per model version (sorted by version).

    A version with clicks but no impressions, an unknown ``event`` value or a missing column is an
    error that says which.
    """
    counts = event_counts(
        events, "model_version", FEEDBACK_EVENTS, "feedback", "model version(s)", "clicks"
    )
    clicks = counts["click"].to_numpy(np.int64)
    impressions = counts["impression"].to_numpy(np.int64)
    return pd.DataFrame(
        {
            "model_version": counts.index.astype(str),
            "impressions": impressions,
            "clicks": clicks,
            **rate_columns(clicks, impressions, "ctr"),
        }
    )


def popularity_percentile(interactions: pd.DataFrame, items: pd.Series) -> pd.Series:
    """Percentile (0-1, average ranks) of each catalog item by interaction count; index item_id."""
    counts = interactions["item_id"].astype(str).value_counts()
    catalog = pd.Series(0.0, index=pd.Index(items.astype(str).unique(), name="item_id"))
    known = catalog.index.intersection(counts.index)
    catalog.loc[known] = counts.loc[known].to_numpy(float)
    return catalog.rank(pct=True, method="average")


def served_list_features(lists: pd.DataFrame, popularity_pct: pd.Series) -> dict[str, np.ndarray]:
    """Per served item: ``score``, ``popularity_pct`` (items outside the catalog -> NaN), ``top_score``
    (the rank-1 score of each list)."""
    missing = [c for c in ("user_id", "item_id", "rank", "score") if c not in lists.columns]
    if missing:
        raise ValueError(f"served lists lack column(s) {missing}")
    score = pd.to_numeric(lists["score"], errors="raise").to_numpy(float)
    rank = pd.to_numeric(lists["rank"], errors="raise").to_numpy()
    return {
        "score": score,
        "popularity_pct": lists["item_id"].astype(str).map(popularity_pct).to_numpy(float),
        "top_score": score[rank == 1],
    }


def list_summary(lists: pd.DataFrame, popularity_pct: pd.Series) -> dict[str, float]:
    """Mean popularity percentile of served items, catalog coverage and the number of lists."""
    served = lists["item_id"].astype(str)
    return {
        "lists": float(lists["user_id"].nunique()),
        "mean_popularity_pct": float(served.map(popularity_pct).mean()),
        "catalog_coverage": float(served.nunique() / max(len(popularity_pct), 1)),
    }


def read_folder(path: Path | str, what: str) -> pd.DataFrame:
    """Every ``*.parquet``/``*.csv`` file under ``path`` (or the one file) concatenated."""
    path = Path(path)
    files: list[Path] = []
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.suffix in (".parquet", ".csv") and not p.name.startswith(".")
        )
    if not files:
        raise FileNotFoundError(f"no {what} files at {path} (Parquet or CSV)")
    return pd.concat([read_table(p) for p in files], ignore_index=True)
