"""Asset ``online_feature_store``: the Feast repo applied and its newest features materialized online.

It reads the feature tables only after their blocking contract checks passed, so a table that
broke its contract never reaches the online store. A freshness check fails when the newest
online value lags the newest raw event by more than an hour.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.dataset as ds
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    MetadataValue,
    Output,
    asset,
    asset_check,
)
from feast import FeatureStore
from feast.online_response import TIMESTAMP_POSTFIX

from recs_assets.core.features.engines import newest_event_time
from recs_assets.core.features.feast_repo.feature_views import TIMESTAMP_FIELD, feature_objects
from recs_assets.core.features.tables import FeatureTable
from recs_assets.features.feast_resource import FeastResource
from recs_assets.platform.table_io_manager import RawTable, table_in

MAX_LAG = timedelta(hours=1)
FRESHNESS_SAMPLE = 1000


@dataclass(frozen=True)
class OnlineFeatureStore:
    """What was materialized online.

    Attributes:
        project: Feast project.
        repo_path: folder with the generated ``feature_store.yaml``.
        online_store: ``sqlite`` or ``redis``.
        newest_event: newest raw interaction timestamp.
        newest_online_value: newest feature timestamp read back from the online store.
        sample_user_ids: users whose online rows were read back for freshness.
    """

    project: str
    repo_path: str
    online_store: str
    newest_event: datetime
    newest_online_value: datetime | None
    sample_user_ids: tuple[str, ...]

    @property
    def lag(self) -> timedelta | None:
        if self.newest_online_value is None:
            return None
        return self.newest_event - self.newest_online_value


def latest_keys(path: str, key: str, limit: int) -> list[str]:
    """Up to ``limit`` keys of the newest snapshot of a feature Parquet folder (sorted)."""
    table = ds.dataset(path, format="parquet").to_table(columns=[key, TIMESTAMP_FIELD]).to_pandas()
    if table.empty:
        raise ValueError(f"{path}: feature table is empty")
    newest = table[TIMESTAMP_FIELD].max()
    return sorted(table.loc[table[TIMESTAMP_FIELD] == newest, key].astype(str))[:limit]


def newest_online_timestamp(store: FeatureStore, user_ids: list[str]) -> datetime | None:
    """Newest event timestamp of ``user_features`` among the online rows of ``user_ids``."""
    response = store.get_online_features(
        features=["user_features:events_all"],
        entity_rows=[{"user_id": u} for u in user_ids],
    ).to_dict(include_event_timestamps=True)
    # event timestamps come back as epoch seconds; 0 marks a missing row
    stamps = [int(t) for t in response.get("events_all" + TIMESTAMP_POSTFIX, []) if t]
    if not stamps:
        return None
    return datetime.fromtimestamp(max(stamps), tz=UTC)


@asset(ins={"raw_interactions": table_in()})
def online_feature_store(
    context: AssetExecutionContext,
    feast: FeastResource,
    raw_interactions: RawTable,
    user_features: FeatureTable,
    item_features: FeatureTable,
) -> Output[OnlineFeatureStore]:
    """The Feast online store (SQLite or Redis) holding each user's and item's newest features."""
    store = feast.store()
    store.apply(feature_objects(Path(user_features.path), Path(item_features.path)))
    if not user_features.snapshots or not item_features.snapshots:
        raise ValueError(
            "user_features/item_features carry no snapshot times: nothing to materialize"
        )
    # the online store keeps each key's newest row: only the newest snapshots are read and
    # written (every key of an earlier snapshot is in the newest one, which covers all history)
    newest = (max(user_features.snapshots), max(item_features.snapshots))
    start, end = min(newest) - timedelta(seconds=1), max(newest) + timedelta(seconds=1)
    store.materialize(start_date=start, end_date=end)
    newest_event = newest_event_time(raw_interactions)
    sample = latest_keys(user_features.path, "user_id", FRESHNESS_SAMPLE)
    state = OnlineFeatureStore(
        project=feast.project,
        repo_path=str(feast.repo_path()),
        online_store=feast.online_store_kind(),
        newest_event=newest_event,
        newest_online_value=newest_online_timestamp(store, sample),
        sample_user_ids=tuple(sample),
    )
    lag = state.lag
    context.log.info(f"online store {state.online_store}: freshness lag {lag}")
    return Output(
        state,
        metadata={
            "online_store": MetadataValue.text(state.online_store),
            "project": MetadataValue.text(state.project),
            "materialized_from": MetadataValue.text(start.isoformat()),
            "materialized_to": MetadataValue.text(end.isoformat()),
            "newest_raw_event": MetadataValue.text(newest_event.isoformat()),
            "newest_online_value": MetadataValue.text(
                state.newest_online_value.isoformat() if state.newest_online_value else "none"
            ),
            "freshness_lag_s": MetadataValue.float(
                lag.total_seconds() if lag is not None else -1.0
            ),
            "user_rows": MetadataValue.int(user_features.row_count),
            "item_rows": MetadataValue.int(item_features.row_count),
        },
    )


@asset_check(
    asset=online_feature_store,
    description="Newest online feature value is at most 1 hour older than the newest raw event.",
)
def online_feature_freshness(feast: FeastResource, state: OnlineFeatureStore) -> AssetCheckResult:
    newest_online = newest_online_timestamp(feast.store(), list(state.sample_user_ids))
    if newest_online is None:
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.ERROR,
            description=f"no online user_features rows for {len(state.sample_user_ids)} sampled users",
        )
    lag = state.newest_event - newest_online
    return AssetCheckResult(
        passed=lag <= MAX_LAG,
        severity=AssetCheckSeverity.ERROR,
        description=f"freshness lag {lag} (limit {MAX_LAG})",
        metadata={
            "lag_s": MetadataValue.float(lag.total_seconds()),
            "newest_raw_event": MetadataValue.text(state.newest_event.isoformat()),
            "newest_online_value": MetadataValue.text(newest_online.isoformat()),
        },
    )
