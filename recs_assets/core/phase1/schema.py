"""The Phase 1 table schema: the contract between upstream data and everything in recs.

Documented for people in ``docs/phase1_schema.md``. Every source (synthetic, files, movielens)
returns frames with exactly these columns and dtypes; optional columns are present but may be null.

Conventions
- Ids are strings.
- Timestamps are timezone-aware UTC, microsecond precision (``datetime64[us, UTC]``), which is what
  Spark and Feast read without loss.
- ``categories`` is multi-valued and stored as a ``|``-joined string (``"Action|Comedy"``), which
  survives CSV, Parquet and Spark alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

EVENT_TYPES: tuple[str, ...] = ("view", "click", "add_to_cart", "purchase", "rate")
GENDERS: tuple[str, ...] = ("M", "F", "X")
CATEGORY_SEP = "|"
TS_DTYPE = "datetime64[us, UTC]"

# column -> (pandas dtype, required?)
INTERACTION_COLUMNS: dict[str, tuple[str, bool]] = {
    "event_id": ("string", True),
    "user_id": ("string", True),
    "item_id": ("string", True),
    "event_type": ("string", True),
    "timestamp": (TS_DTYPE, True),
    "rating": ("float64", False),
    "session_id": ("string", False),
    "device": ("string", False),
    "platform": ("string", False),
}

USER_COLUMNS: dict[str, tuple[str, bool]] = {
    "user_id": ("string", True),
    "age": ("Int64", False),
    "gender": ("string", False),
    "occupation": ("string", False),
    "region": ("string", False),
    "device": ("string", False),
    "signup_time": (TS_DTYPE, False),
}

ITEM_COLUMNS: dict[str, tuple[str, bool]] = {
    "item_id": ("string", True),
    "title": ("string", True),
    "categories": ("string", False),
    "price": ("float64", False),
    "quality": ("float64", False),
    "created_at": (TS_DTYPE, False),
}

TABLE_COLUMNS: dict[str, dict[str, tuple[str, bool]]] = {
    "interactions": INTERACTION_COLUMNS,
    "users": USER_COLUMNS,
    "items": ITEM_COLUMNS,
}


@dataclass(frozen=True)
class Phase1Tables:
    """The three Phase 1 tables as pandas frames in the canonical schema.

    Attributes:
        interactions: one row per event (``INTERACTION_COLUMNS``).
        users: one row per user (``USER_COLUMNS``).
        items: one row per item (``ITEM_COLUMNS``).
    """

    interactions: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame

    def table(self, name: str) -> pd.DataFrame:
        return {"interactions": self.interactions, "users": self.users, "items": self.items}[name]


def empty_frame(table: str) -> pd.DataFrame:
    """An empty frame with the canonical columns and dtypes of ``table``."""
    cols = TABLE_COLUMNS[table]
    return pd.DataFrame({c: pd.Series(dtype=d) for c, (d, _) in cols.items()})


def conform(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """Return a copy of ``df`` with exactly the canonical columns of ``table``, in order.

    Missing optional columns are added as nulls; a missing required column raises ``ValueError``.
    Dtypes are NOT coerced here: coercion failures are validation findings (see ``validation``).
    """
    cols = TABLE_COLUMNS[table]
    missing = [c for c, (_, req) in cols.items() if req and c not in df.columns]
    if missing:
        raise ValueError(f"{table}: required column(s) missing: {', '.join(missing)}")
    out = df.copy()
    for c, (dtype, _) in cols.items():
        if c not in out.columns:
            out[c] = pd.Series(index=out.index, dtype=dtype)  # all-null of that dtype
    return out[list(cols)]
