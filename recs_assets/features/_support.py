"""Shared pieces of the feature assets: config, snapshot times, metadata."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from dagster import Config, MetadataValue
from pydantic import Field

from recs_assets.features.catalog import FeatureSpec, catalog_table
from recs_assets.features.storage import FeatureTable


class FeatureJobConfig(Config):
    """How the snapshot feature tables are computed.

    Attributes:
        snapshot_interval_days: days between two ``as_of`` snapshots, counted back from the
            newest event.
        max_snapshots: how many snapshots to write (1 = only the newest); older examples in
            training datasets join the newest snapshot before them.
        max_categories: width of the ``cat_share_<category>`` vector (most common categories).
        session_gap_minutes: inactivity gap that starts a derived session.
    """

    snapshot_interval_days: int = Field(default=30, ge=1)
    max_snapshots: int = Field(default=8, ge=1)
    max_categories: int = Field(default=32, ge=1)
    session_gap_minutes: int = Field(default=30, ge=1)


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


def feature_metadata(
    table: FeatureTable, catalog: Sequence[FeatureSpec], preview: pd.DataFrame
) -> dict[str, Any]:
    """Row count, path, snapshots, the feature catalog as a table, and a markdown preview."""
    schema, records = catalog_table(catalog)
    return {
        "row_count": MetadataValue.int(table.row_count),
        "path": MetadataValue.path(table.path),
        "n_columns": MetadataValue.int(len(table.columns)),
        "snapshots": MetadataValue.json([t.isoformat() for t in table.snapshots]),
        "feature_catalog": MetadataValue.table(records=records, schema=schema),
        "preview": MetadataValue.md(preview.head(5).to_markdown(index=False)),
    }
