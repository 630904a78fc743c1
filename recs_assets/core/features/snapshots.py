"""When the point-in-time feature snapshots are taken."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def calendar_snapshot_times(
    oldest: datetime, newest: datetime, interval_days: int, max_snapshots: int
) -> tuple[datetime, ...]:
    """``newest``, then the UTC midnights at whole multiples of ``interval_days`` since
    1970-01-01 that lie strictly before it and not before ``oldest``; at most ``max_snapshots``.

    Unlike ``snapshot_times``, the earlier snapshots stay where they are when newer events
    arrive, so a build can keep their rows (``core.features.incremental``). Returned oldest first.
    """
    if newest < oldest:
        raise ValueError(f"newest {newest} is before oldest {oldest}")
    if interval_days < 1 or max_snapshots < 1:
        raise ValueError(
            f"interval_days and max_snapshots must be >= 1, got {interval_days}, {max_snapshots}"
        )
    step = timedelta(days=interval_days)
    grid = EPOCH + ((newest - EPOCH) // step) * step
    if grid >= newest:
        grid -= step
    out = [newest]
    while len(out) < max_snapshots and grid >= oldest:
        out.append(grid)
        grid -= step
    return tuple(reversed(out))


def newest_and_oldest(interactions: pd.DataFrame) -> tuple[datetime, datetime]:
    """(oldest, newest) event timestamps as timezone-aware datetimes; raises on an empty frame."""
    if interactions.empty:
        raise ValueError("raw_interactions is empty: no features can be computed")
    ts = pd.to_datetime(interactions["timestamp"], utc=True)
    return ts.min().to_pydatetime(), ts.max().to_pydatetime()
