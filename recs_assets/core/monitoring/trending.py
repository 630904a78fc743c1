"""Time-decayed popularity ("trending").

``score(item) = sum over the item's events at or before now of w(event_type) * 0.5 ** (age_h / half_life_h)``:
an event counts 1 when it is fresh and half as much every ``half_life_hours`` later.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd


def trending_scores(
    events: pd.DataFrame,
    now: pd.Timestamp,
    half_life_hours: float,
    event_weights: Mapping[str, float] | None = None,
) -> pd.Series:
    """Decayed event count per item (index ``item_id``), highest first, ties by item id.

    Events after ``now`` are ignored. ``event_weights`` (event_type -> weight; types not named
    weigh 0) default to 1 for every event.
    """
    if half_life_hours <= 0:
        raise ValueError(f"half_life_hours must be > 0, got {half_life_hours}")
    now = pd.Timestamp(now)
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware (UTC), got {now}")
    past = events[events["timestamp"] <= now]
    age_h = (now - past["timestamp"]).dt.total_seconds().to_numpy() / 3600.0
    weight = np.power(0.5, age_h / half_life_hours)
    if event_weights is not None:
        weight = weight * past["event_type"].map(dict(event_weights)).fillna(0.0).to_numpy(float)
    scores = pd.Series(weight, index=past["item_id"].astype(str).to_numpy()).groupby(level=0).sum()
    scores = scores[scores > 0]
    scores.index.name = "item_id"
    order = np.lexsort((scores.index.to_numpy(), -scores.to_numpy()))
    return scores.iloc[order].rename("score")


def top_trending(scores: pd.Series, n: int) -> pd.DataFrame:
    """The first ``n`` of ``trending_scores`` as a frame (rank from 1, item_id, score)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    top = scores.head(n)
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(top) + 1),
            "item_id": top.index.astype(str),
            "score": top.to_numpy(),
        }
    )
