"""Monitoring windows over the interactions and the features compared between them.

The *latest* window holds the newest ``latest_hours`` of events; the *reference* window (what the
model was trained on most recently) the ``reference_hours`` before it. Every feature is computed the
same way in both windows, from that window's events and the history before the window, so the
comparison is fair (no in-sample advantage for the reference).

Features (all intensive, so windows of different length or volume compare):
- ``hour_of_day``: hour (UTC) of each event.
- ``rating``: the value of each ``rate`` event.
- ``session_length``: events per session within the window.
- ``item_popularity_pct``: popularity percentile (0-1) of each event's item among all catalog items,
  by event count in the history before the window.
- ``user_category_affinity``: for each event of a user with history, the user's historical share of
  the item's categories (mean over the item's categories of the user's category share, each history
  event spreading weight 1 evenly over its item's categories). Falls when tastes move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recs_assets.core.phase1.schema import CATEGORY_SEP

FEATURES: tuple[str, ...] = (
    "hour_of_day",
    "rating",
    "session_length",
    "item_popularity_pct",
    "user_category_affinity",
)


@dataclass(frozen=True)
class Windows:
    """The two monitoring windows, ``(reference_start, latest_start]`` and ``(latest_start, end]``."""

    reference_start: pd.Timestamp
    latest_start: pd.Timestamp
    end: pd.Timestamp
    reference: pd.DataFrame
    latest: pd.DataFrame


def split_windows(
    interactions: pd.DataFrame, latest_hours: float, reference_hours: float
) -> Windows:
    """Split at ``newest - latest_hours`` and ``newest - latest_hours - reference_hours``.

    The latest window is ``(newest - latest_hours, newest]``, the reference window the
    ``reference_hours`` before it; an event on a boundary belongs to the earlier side.
    """
    if latest_hours <= 0 or reference_hours <= 0:
        raise ValueError(
            f"window lengths must be > 0 hours, got latest {latest_hours}, reference {reference_hours}"
        )
    if interactions.empty:
        raise ValueError("no interactions to monitor")
    ts = interactions["timestamp"]
    end = ts.max()
    latest_start = end - pd.Timedelta(hours=latest_hours)
    reference_start = latest_start - pd.Timedelta(hours=reference_hours)
    latest = interactions[ts > latest_start]
    reference = interactions[(ts > reference_start) & (ts <= latest_start)]
    for name, frame in (("latest", latest), ("reference", reference)):
        if frame.empty:
            raise ValueError(
                f"the {name} window (after {reference_start if name == 'reference' else latest_start}) "
                "holds no events; widen latest_hours/reference_hours"
            )
    return Windows(reference_start, latest_start, end, reference, latest)


def item_category_weights(items: pd.DataFrame) -> pd.DataFrame:
    """Long frame (item_id, category, weight) with weight ``1 / n_categories`` of the item."""
    cats = items[["item_id", "categories"]].dropna()
    cats = cats.assign(category=cats["categories"].astype(str).str.split(CATEGORY_SEP, regex=False))
    long = cats.explode("category")
    long = long[long["category"].str.len() > 0]
    n = long.groupby("item_id")["category"].transform("size")
    return pd.DataFrame(
        {
            "item_id": long["item_id"].astype(str).to_numpy(),
            "category": long["category"].astype(str).to_numpy(),
            "weight": (1.0 / n).to_numpy(),
        }
    )


def window_features(
    window: pd.DataFrame, history: pd.DataFrame, items: pd.DataFrame
) -> dict[str, np.ndarray]:
    """The monitored features (``FEATURES``) of the events in ``window``, given the earlier ``history``.

    Returns feature name -> float values (one per event, or per session for ``session_length``).
    """
    w = window.reset_index(drop=True)
    out: dict[str, np.ndarray] = {
        "hour_of_day": w["timestamp"].dt.hour.to_numpy(dtype=np.float64),
        "rating": w.loc[w["event_type"] == "rate", "rating"].to_numpy(dtype=np.float64),
    }
    sessions = w["session_id"].dropna()
    out["session_length"] = sessions.value_counts().to_numpy(dtype=np.float64)

    counts = history["item_id"].astype(str).value_counts()
    catalog = pd.Series(0, index=pd.Index(items["item_id"].astype(str).unique()), dtype=np.float64)
    catalog.loc[catalog.index.intersection(counts.index)] = counts
    pct = catalog.rank(pct=True, method="average")
    out["item_popularity_pct"] = w["item_id"].astype(str).map(pct).to_numpy(dtype=np.float64)
    out["user_category_affinity"] = _category_affinity(w, history, items)
    return out


def _category_affinity(w: pd.DataFrame, history: pd.DataFrame, items: pd.DataFrame) -> np.ndarray:
    weights = item_category_weights(items)
    hist = history[["user_id", "item_id"]].astype(str).merge(weights, on="item_id")
    per_cat = hist.groupby(["user_id", "category"], as_index=False)["weight"].sum()
    per_cat["share"] = per_cat["weight"] / per_cat.groupby("user_id")["weight"].transform("sum")
    events = pd.DataFrame(
        {
            "row": np.arange(len(w)),
            "user_id": w["user_id"].astype(str),
            "item_id": w["item_id"].astype(str),
        }
    ).merge(weights, on="item_id")
    events = events.merge(
        per_cat[["user_id", "category", "share"]], on=["user_id", "category"], how="left"
    )
    events["share"] = events["share"].fillna(0.0)
    affinity = (events["weight"] * events["share"]).groupby(events["row"]).sum()
    known_users = set(per_cat["user_id"])
    result = np.full(len(w), np.nan)
    result[affinity.index.to_numpy()] = affinity.to_numpy()
    result[~w["user_id"].astype(str).isin(known_users).to_numpy()] = np.nan
    return result


def monitored_features(
    interactions: pd.DataFrame, items: pd.DataFrame, windows: Windows
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(reference features, latest features), each computed against the history before its window."""
    ts = interactions["timestamp"]
    reference = window_features(
        windows.reference, interactions[ts <= windows.reference_start], items
    )
    latest = window_features(windows.latest, interactions[ts <= windows.latest_start], items)
    return reference, latest
