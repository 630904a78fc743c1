"""LightFM side features from the feature store: one snapshot of the ``user_features`` and
``item_features`` tables (pandas frames) -> sparse matrices aligned with a split's id maps.

Encoding, per entity (one row per id of the split, in id-map order):

- numeric columns -> quantile bins (``n_bins`` quantiles of the split's rows; tied edges merge),
  one-hot: ``age[25,31)``;
- text columns -> one-hot per value: ``gender=F``; the multi-valued ``categories`` column
  (``|``-joined) -> one feature per category: ``categories=Drama``;
- features present on fewer than ``min_support`` rows (they would act as a second identity) or on
  every row (a constant) are dropped; missing values activate nothing;
- each row is L1-normalized (its features sum to 1; ids absent from the snapshot get an empty
  row). ``LightFMRecommender`` prepends the identity (``identity_plus``): [I | these rows], so
  every user and item keeps its own embedding and shares those of its features.

The bins and vocabularies are a ``FeatureEncoder`` (``feature_encoder.py``, JSON-serializable,
no Dagster or Spark): ``EntityFeatures.encoder`` encodes any other row exactly as the training
rows were (serving encodes a new user's online feature row with it).

Leak rule (honest evaluation). Interaction-derived features (counts, ratings, recency, shares...)
of a snapshot stamped ``as_of`` summarize every event with ``timestamp <= as_of``, held-out ones
included. They are used only when the snapshot saw no held-out interaction:
``as_of < held_out_since``, the earliest timestamp of the interactions the model must not see
(strict: an event at ``as_of`` itself is inside the snapshot), or when nothing is held out
(``held_out_since=None``: a production fit on all data). Otherwise only static attributes are
used: ``STATIC_COLUMNS`` (demographics, account age, item categories, price, quality, item age).
Under P1 (a random split) held-out events start with the data, so no snapshot qualifies and the
hybrid sees static attributes only; under P2 (temporal) a snapshot before the cut does. Caveat:
``age_days`` falls back to the item's first event when it has no ``created_at`` (one ML-100K
item); that fallback is treated as static. Any column not listed in ``STATIC_COLUMNS`` (new
catalog columns included) counts as interaction-derived.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import scipy.sparse as sp

from recs_assets.core.evaluation.protocols import Split
from recs_assets.core.features.tables import FeatureTable
from recs_assets.core.models.attributes import Attributes, attributes
from recs_assets.core.models.base import SideInfo
from recs_assets.core.models.feature_encoder import FeatureEncoder, fit_encoder

TIME_COLUMN = "feature_timestamp"
KEYS: dict[str, str] = {"user": "user_id", "item": "item_id"}
# Columns that do not depend on interactions (see the leak rule above).
STATIC_COLUMNS: dict[str, frozenset[str]] = {
    "user": frozenset(
        {"age", "gender", "occupation", "region", "signup_device", "account_age_days"}
    ),
    "item": frozenset({"categories", "category_count", "price", "quality", "age_days"}),
}


@dataclass(frozen=True)
class EntityFeatures:
    """One entity's side features.

    Attributes:
        matrix: (n_ids, len(names)) CSR float32, rows L1-normalized (empty rows for unknown ids).
        names: feature names (``column=value`` or ``column[low,high)``), one per matrix column.
        as_of: the snapshot's ``feature_timestamp``.
        with_interactions: whether interaction-derived columns were used (the leak rule).
        columns: the snapshot columns that produced at least one feature.
        unknown_ids: ids of the split without a row in the snapshot.
        encoder: what produced ``matrix`` from the snapshot rows; it encodes any other row the
            same way (serving encodes a new user's online features with it).
    """

    matrix: sp.csr_matrix
    names: tuple[str, ...]
    as_of: datetime
    with_interactions: bool
    columns: tuple[str, ...]
    unknown_ids: int
    encoder: FeatureEncoder


@dataclass(frozen=True)
class FeatureSide:
    """User and item side features for LightFM (either may be None when its frame was)."""

    users: EntityFeatures | None
    items: EntityFeatures | None

    def side_info(self, base: SideInfo | None = None) -> SideInfo:
        """``base`` (categories, titles, segments) with these user and item feature matrices."""
        return replace(
            base or SideInfo(),
            user_features=None if self.users is None else self.users.matrix,
            item_features=None if self.items is None else self.items.matrix,
        )

    def summary(self) -> dict[str, object]:
        """A JSON-able description for metadata and MLflow (snapshot, leak rule, sizes)."""
        out: dict[str, object] = {}
        for what, f in (("user", self.users), ("item", self.items)):
            if f is not None:
                out[what] = {
                    "snapshot": f.as_of.isoformat(),
                    "interaction_features": f.with_interactions,
                    "n_features": len(f.names),
                    "columns": list(f.columns),
                    "unknown_ids": f.unknown_ids,
                }
        return out


def _utc(t: datetime | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def interaction_features_allowed(as_of: datetime, held_out_since: datetime | None) -> bool:
    """The leak rule: a snapshot stamped ``as_of`` saw no held-out interaction."""
    return held_out_since is None or _utc(as_of) < _utc(held_out_since)


def held_out_since(*splits: Split) -> datetime | None:
    """Earliest test-part timestamp over ``splits`` (None when all test parts are empty).

    For a validation split pass it and its parent: both test parts are held out from its fit.
    """
    times = [s.test_frame["timestamp"] for s in splits if len(s.test_frame)]
    if not times:
        return None
    return min(_utc(t.min()) for t in times).to_pydatetime()


def choose_snapshot(
    snapshots: Iterable[datetime], held_out_since: datetime | None
) -> tuple[datetime, bool]:
    """(snapshot, with_interactions): the newest snapshot that passes the leak rule, else the
    newest one, for its static columns only."""
    times = sorted(snapshots, key=_utc)
    if not times:
        raise ValueError("the feature table has no snapshot")
    clean = [t for t in times if interaction_features_allowed(t, held_out_since)]
    return (clean[-1], True) if clean else (times[-1], False)


def entity_features(
    frame: pd.DataFrame,
    entity: str,
    ids: Sequence[str] | np.ndarray,
    held_out_since: datetime | None,
    *,
    n_bins: int = 5,
    min_support: int = 2,
    columns: Collection[str] | None = None,
) -> EntityFeatures:
    """Encode one snapshot of ``user_features`` (``entity="user"``) or ``item_features``
    (``"item"``) for the split ids ``ids`` (the id map, in order). ``columns`` restricts the
    snapshot columns used (None: every column the leak rule allows). See the module docstring
    for the encoding and the leak rule."""
    if entity not in KEYS:
        raise ValueError(f"entity must be one of {sorted(KEYS)}, got {entity!r}")
    if n_bins < 2 or min_support < 1:
        raise ValueError(f"n_bins must be >= 2 and min_support >= 1, got {n_bins}, {min_support}")
    key = KEYS[entity]
    missing = [c for c in (key, TIME_COLUMN) if c not in frame.columns]
    if missing:
        raise ValueError(f"{entity} features lack column(s) {missing}; has {list(frame.columns)}")
    stamps = frame[TIME_COLUMN].dropna().unique()
    if len(stamps) != 1:
        raise ValueError(
            f"{entity} features must be one snapshot (one {TIME_COLUMN}); got {len(stamps)}"
        )
    as_of = _utc(stamps[0]).to_pydatetime()
    keyed = frame.assign(**{key: frame[key].astype(str)})
    dup = keyed[key].duplicated()
    if dup.any():
        raise ValueError(
            f"{entity} features: {int(dup.sum())} duplicate {key}(s) in one snapshot, "
            f"e.g. {keyed.loc[dup, key].iloc[0]!r}"
        )
    id_list = [str(i) for i in ids]
    aligned = keyed.set_index(key).reindex(id_list)
    unknown = int((~pd.Index(id_list).isin(keyed[key])).sum())
    with_interactions = interaction_features_allowed(as_of, held_out_since)
    static = STATIC_COLUMNS[entity]
    usable = [
        c
        for c in aligned.columns
        if c != TIME_COLUMN
        and (with_interactions or c in static)
        and (columns is None or c in columns)
    ]

    encoder = fit_encoder(aligned, entity, usable, n_bins=n_bins, min_support=min_support)
    return EntityFeatures(
        encoder.encode(aligned),
        encoder.names,
        as_of,
        with_interactions,
        encoder.column_names,
        unknown,
        encoder,
    )


def feature_side(
    user_frame: pd.DataFrame | None,
    item_frame: pd.DataFrame | None,
    user_ids: Sequence[str] | np.ndarray,
    item_ids: Sequence[str] | np.ndarray,
    held_out_since: datetime | None,
    *,
    n_bins: int = 5,
    min_support: int = 2,
    user_columns: Collection[str] | None = None,
    item_columns: Collection[str] | None = None,
) -> FeatureSide:
    """User and item LightFM features from one snapshot of each feature table (None: skip),
    aligned with the id maps ``user_ids`` / ``item_ids``; ``held_out_since`` drives the leak
    rule (module docstring); ``user_columns`` / ``item_columns`` restrict the columns used."""
    kw = {"n_bins": n_bins, "min_support": min_support}
    users = (
        None
        if user_frame is None
        else entity_features(
            user_frame, "user", user_ids, held_out_since, columns=user_columns, **kw
        )
    )
    items = (
        None
        if item_frame is None
        else entity_features(
            item_frame, "item", item_ids, held_out_since, columns=item_columns, **kw
        )
    )
    return FeatureSide(users, items)


# ---- reading the feature tables (the I/O the model asset needs) -------------------------------
def read_snapshot(table: FeatureTable, as_of: datetime) -> pd.DataFrame:
    """The rows of ``table`` (its Parquet folder) stamped ``as_of``."""
    frame = ds.dataset(table.path, format="parquet").to_table().to_pandas()
    stamps = pd.to_datetime(frame[TIME_COLUMN], utc=True)
    out = frame[stamps == _utc(as_of)].reset_index(drop=True)
    if out.empty:
        raise ValueError(f"{table.name}: no rows stamped {as_of.isoformat()} in {table.path}")
    return out


def snapshots_of(table: FeatureTable) -> tuple[datetime, ...]:
    """The snapshot times of ``table`` (its handle's, else the distinct stamps in its Parquet)."""
    if table.snapshots:
        return table.snapshots
    col = ds.dataset(table.path, format="parquet").to_table(columns=[TIME_COLUMN])
    stamps = pd.to_datetime(col.to_pandas()[TIME_COLUMN], utc=True).dropna().unique()
    return tuple(sorted(pd.Timestamp(t).to_pydatetime() for t in stamps))


def feature_store_side(
    split: Split,
    user_table: FeatureTable | None,
    item_table: FeatureTable | None,
    *,
    held_out: datetime | None = None,
    n_bins: int = 5,
    min_support: int = 2,
    user_columns: Collection[str] | None = None,
    item_columns: Collection[str] | None = None,
) -> FeatureSide:
    """``feature_side`` of the feature tables for ``split``: each table's snapshot is chosen by
    ``choose_snapshot`` against ``held_out`` (default: ``held_out_since(split)``)."""
    cut = held_out_since(split) if held_out is None else held_out
    frames: list[pd.DataFrame | None] = []
    for table in (user_table, item_table):
        if table is None:
            frames.append(None)
            continue
        as_of, _ = choose_snapshot(snapshots_of(table), cut)
        frames.append(read_snapshot(table, as_of))
    return feature_side(
        frames[0],
        frames[1],
        split.user_ids,
        split.item_ids,
        cut,
        n_bins=n_bins,
        min_support=min_support,
        user_columns=user_columns,
        item_columns=item_columns,
    )


@dataclass(frozen=True)
class AttributeSide:
    """Dense user and item attributes from the feature store, for the ranker's trees (either
    None when its table was), and how they were read (``summary``)."""

    users: Attributes | None
    items: Attributes | None
    snapshots: dict[str, tuple[datetime, bool]]  # entity -> (as_of, with_interactions)

    def side_info(self, base: SideInfo | None = None) -> SideInfo:
        """``base`` with these attributes (an entity without a feature table keeps base's)."""
        side = base or SideInfo()
        return replace(
            side,
            user_attributes=side.user_attributes if self.users is None else self.users,
            item_attributes=side.item_attributes if self.items is None else self.items,
        )

    def summary(self) -> dict[str, object]:
        """A JSON-able description for metadata and MLflow (snapshot, leak rule, columns)."""
        out: dict[str, object] = {}
        for what, attrs in (("user", self.users), ("item", self.items)):
            if attrs is not None and what in self.snapshots:
                as_of, with_interactions = self.snapshots[what]
                out[what] = {
                    "snapshot": as_of.isoformat(),
                    "interaction_features": with_interactions,
                    "columns": list(attrs.names),
                }
        return out


def feature_store_attributes(
    split: Split,
    user_table: FeatureTable | None,
    item_table: FeatureTable | None,
    *,
    held_out: datetime | None = None,
) -> AttributeSide:
    """The ranker's attributes of ``split``'s users and items, point in time: each table's
    newest snapshot that saw no held-out interaction (``choose_snapshot`` against ``held_out``,
    default ``held_out_since(split)``), all its columns; else its newest snapshot, static
    columns only (the leak rule, module docstring). The interaction-derived columns are marked
    dynamic with the snapshot's day: the ranker also leaves them out when they would count its
    own training labels (``Attributes.usable_before``)."""
    cut = held_out_since(split) if held_out is None else held_out
    out: dict[str, Attributes | None] = {"user": None, "item": None}
    stamps: dict[str, tuple[datetime, bool]] = {}
    for what, table, ids in (
        ("user", user_table, split.user_ids),
        ("item", item_table, split.item_ids),
    ):
        if table is None:
            continue
        as_of, with_interactions = choose_snapshot(snapshots_of(table), cut)
        frame = read_snapshot(table, as_of)
        columns = None if with_interactions else STATIC_COLUMNS[what]
        day = (_utc(as_of) - pd.Timestamp(0, tz="UTC")).total_seconds() / 86400.0
        out[what] = attributes(
            frame, KEYS[what], ids, columns, static=STATIC_COLUMNS[what], as_of_day=day
        )
        stamps[what] = (as_of, with_interactions)
    return AttributeSide(out["user"], out["item"], stamps)
