"""Dense per-entity attributes for tree models: one column per attribute of a user or item table.

The learned ranker reads these beside the generators' scores (``ranker.py``). Unlike LightFM's
side features (``datasets/feature_side.py``: quantile bins, one-hot, L1-normalized), a tree
wants one column per attribute, its raw value:

- numeric and boolean columns -> float (missing -> NaN);
- datetime columns -> days since the epoch (float);
- text columns -> the value's rank by frequency among the ids asked for (0 = the most common
  value; NaN when missing), so a tree can isolate common values with one or two splits;
- the multi-valued ``categories`` column -> ``category_count`` (the ranker's category
  affinity already reads the categories themselves);
- identifiers, titles and the snapshot stamp are never attributes (``NEVER``).

No Dagster, no Spark: pandas and numpy only. The encoding is a pure function of the frame, so
the attributes of every id are computed once, at fit time, and stored with the model.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

NEVER: frozenset[str] = frozenset(
    {"user_id", "item_id", "title", "feature_timestamp", "event_id", "session_id"}
)
CATEGORY_COLUMN = "categories"
CATEGORY_SEP = "|"


@dataclass(frozen=True)
class Attributes:
    """Attributes of one entity aligned with an id map.

    Attributes:
        values: (n_ids, len(names)) float64, NaN where unknown (ids absent from the table too).
        names: one per column of ``values``.
        dynamic: per column, whether it summarizes interactions (counts, ratings, recency) rather
            than describing the entity; empty: none does.
        as_of_day: when the dynamic columns were computed (days since the epoch): they summarize
            every interaction up to then. None when there is no dynamic column.
    """

    values: np.ndarray
    names: tuple[str, ...]
    dynamic: tuple[bool, ...] = ()
    as_of_day: float | None = None

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(self.names):
            raise ValueError(
                f"attributes: values of shape {self.values.shape} do not match "
                f"{len(self.names)} name(s)"
            )
        if self.dynamic and len(self.dynamic) != len(self.names):
            raise ValueError(
                f"attributes: {len(self.dynamic)} dynamic flag(s) for {len(self.names)} name(s)"
            )
        if any(self.dynamic) and self.as_of_day is None:
            raise ValueError("attributes: dynamic columns need the day they were computed")

    def is_dynamic(self, j: int) -> bool:
        return bool(self.dynamic[j]) if self.dynamic else False

    def usable_before(self, day: float | None) -> Attributes:
        """These attributes for a model whose labels start at ``day`` (days since the epoch):
        the dynamic columns only when computed before it (else they would count the labels);
        ``day`` None: labels of unknown time, static columns only."""
        keep = [
            j
            for j in range(len(self.names))
            if not self.is_dynamic(j)
            or (day is not None and self.as_of_day is not None and self.as_of_day < day)
        ]
        if len(keep) == len(self.names):
            return self
        dynamic = tuple(self.is_dynamic(j) for j in keep)
        return Attributes(
            self.values[:, keep],
            tuple(self.names[j] for j in keep),
            dynamic if any(dynamic) else (),
            self.as_of_day if any(dynamic) else None,
        )


def _column(series: pd.Series) -> np.ndarray | None:
    """One attribute column from ``series`` (None when it cannot be one)."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_datetime64_any_dtype(series):
        ts = pd.to_datetime(series, utc=True)
        days = (ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds() / 86400.0
        return days.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series):
        text = series.astype("string")
        ranks = {v: float(r) for r, v in enumerate(text.value_counts().index)}
        if not ranks:
            return None
        return text.map(ranks).to_numpy(dtype=np.float64, na_value=np.nan)
    return None


def attributes(
    frame: pd.DataFrame,
    key: str,
    ids: Sequence[str] | np.ndarray,
    columns: Collection[str] | None = None,
    *,
    static: Collection[str] | None = None,
    as_of_day: float | None = None,
) -> Attributes:
    """The attributes of ``frame`` (one row per ``key``; later duplicates ignored) for ``ids``
    in order; ``columns`` restricts the columns read (None: all but ``NEVER``). Columns that are
    missing for every id, or constant, carry nothing and are dropped. With ``static`` (the
    columns that describe the entity), every other column is dynamic, computed at
    ``as_of_day``; None: every column is static (a table of attributes only)."""
    if key not in frame.columns:
        raise ValueError(f"attributes: the table lacks its key {key!r}; has {list(frame.columns)}")
    keyed = frame.assign(**{key: frame[key].astype(str)}).drop_duplicates(key)
    aligned = keyed.set_index(key).reindex(pd.Index([str(i) for i in ids]))
    names: list[str] = []
    cols: list[np.ndarray] = []
    dynamic: list[bool] = []
    reads_count = "category_count" in aligned.columns and (
        columns is None or "category_count" in columns
    )
    for name in aligned.columns:
        if name in NEVER or (columns is not None and name not in columns):
            continue
        source = name
        if name == CATEGORY_COLUMN:
            if reads_count:  # the table has the count already
                continue
            text = aligned[name]
            values: np.ndarray | None = np.array(
                [
                    float(len([c for c in v.split(CATEGORY_SEP) if c]))
                    if isinstance(v, str)
                    else np.nan
                    for v in text
                ]
            )
            name = "category_count"
        else:
            values = _column(aligned[name])
        if values is None:
            continue
        known = values[~np.isnan(values)]
        if len(known) == 0 or np.all(known == known[0]):
            continue
        names.append(str(name))
        cols.append(values)
        dynamic.append(static is not None and source not in static)
    matrix = np.stack(cols, axis=1) if cols else np.empty((len(aligned), 0))
    if not any(dynamic):
        return Attributes(matrix, tuple(names))
    if as_of_day is None:
        raise ValueError("attributes: dynamic columns need as_of_day")
    return Attributes(matrix, tuple(names), tuple(dynamic), float(as_of_day))
