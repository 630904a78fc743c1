"""Dense per-entity attributes for tree models: one column per attribute of a user or item table.

The learned ranker reads these beside the generators' scores (``ranker.py``). Unlike LightFM's
side features (``datasets/feature_side.py``: quantile bins, one-hot, L1-normalized), a tree
wants one column per attribute, its raw value:

- numeric and boolean columns -> float (missing -> NaN);
- datetime columns -> days since the epoch (float);
- text columns -> the value's rank by frequency in the table (0 = the most common value; NaN
  when missing), so a tree can isolate common values with one or two splits;
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
    """

    values: np.ndarray
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(self.names):
            raise ValueError(
                f"attributes: values of shape {self.values.shape} do not match "
                f"{len(self.names)} name(s)"
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
) -> Attributes:
    """The attributes of ``frame`` (one row per ``key``; later duplicates ignored) for ``ids``
    in order; ``columns`` restricts the columns read (None: all but ``NEVER``). Columns that are
    missing for every id, or constant, carry nothing and are dropped."""
    if key not in frame.columns:
        raise ValueError(f"attributes: the table lacks its key {key!r}; has {list(frame.columns)}")
    keyed = frame.assign(**{key: frame[key].astype(str)}).drop_duplicates(key)
    aligned = keyed.set_index(key).reindex(pd.Index([str(i) for i in ids]))
    names: list[str] = []
    cols: list[np.ndarray] = []
    for name in aligned.columns:
        if name in NEVER or (columns is not None and name not in columns):
            continue
        if name == CATEGORY_COLUMN:
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
            if name in aligned.columns:
                continue
        else:
            values = _column(aligned[name])
        if values is None:
            continue
        known = values[~np.isnan(values)]
        if len(known) == 0 or np.all(known == known[0]):
            continue
        names.append(str(name))
        cols.append(values)
    matrix = np.stack(cols, axis=1) if cols else np.empty((len(aligned), 0))
    return Attributes(matrix, tuple(names))
