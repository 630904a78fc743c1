"""When the point-in-time feature snapshots are taken."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd


def snapshot_times(
    oldest: datetime, newest: datetime, interval_days: int, max_snapshots: int
) -> tuple[datetime, ...]:
    """``newest``, ``newest - interval``, ... while not before ``oldest``; at most ``max_snapshots``.

    Returned oldest first. ``newest`` is always included, even when it equals ``oldest``.
    """
    if newest < oldest:
        raise ValueError(f"newest {newest} is before oldest {oldest}")
    if interval_days < 1 or max_snapshots < 1:
        raise ValueError(
            f"interval_days and max_snapshots must be >= 1, got {interval_days}, {max_snapshots}"
        )
    out = [newest]
    while len(out) < max_snapshots:
        nxt = out[-1] - timedelta(days=interval_days)
        if nxt < oldest:
            break
        out.append(nxt)
    return tuple(reversed(out))


def newest_and_oldest(interactions: pd.DataFrame) -> tuple[datetime, datetime]:
    """(oldest, newest) event timestamps as timezone-aware datetimes; raises on an empty frame."""
    if interactions.empty:
        raise ValueError("raw_interactions is empty: no features can be computed")
    ts = pd.to_datetime(interactions["timestamp"], utc=True)
    return ts.min().to_pydatetime(), ts.max().to_pydatetime()
