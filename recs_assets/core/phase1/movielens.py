"""MovieLens 100K as published, mapped to the Phase 1 schema (privacy applied before anything else).

- ``u.data`` (tab-separated ``user item rating unix_seconds``): every row becomes a ``rate`` event
  with its rating kept and ``event_id = f"ml-{row}"`` (0-based row of ``u.data``).
- ``u.item`` (``|``-separated, latin-1): title, release date -> ``created_at``, the 19 genre flags
  -> ``categories`` joined with ``|`` in ``u.genre`` order.
- ``u.user`` (``id|age|gender|occupation|zip``): the ZIP is reduced to a region and dropped.

User ids are pseudonymized (``privacy.pseudonymize_series``) in both users and interactions.
Values are passed on as read: a malformed value (``"abc"`` as a rating) is not fixed or dropped
here but reaches validation, which quarantines the row with its reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recs_assets.core.phase1.privacy import pseudonymize_series, zip_to_region
from recs_assets.core.phase1.schema import CATEGORY_SEP, TS_DTYPE, Phase1Tables, conform

ML_FILES: tuple[str, ...] = ("u.data", "u.item", "u.user", "u.genre")
ML_ENCODING = "latin-1"


def load_movielens(path: Path | str, key: bytes | None = None) -> Phase1Tables:
    """Read the MovieLens 100K folder ``path`` into canonical (not yet validated) Phase 1 tables.

    ``key`` is the pseudonym key (default: ``privacy.pseudonym_key()``).
    """
    folder = Path(path)
    missing = [name for name in ML_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"MovieLens 100K folder {folder} lacks: {', '.join(missing)}")
    interactions = _interactions(folder / "u.data", key)
    users = _users(folder / "u.user", key)
    items = _items(folder / "u.item", _genres(folder / "u.genre"))
    return Phase1Tables(interactions=interactions, users=users, items=items)


def _read(path: Path, sep: str, names: list[str]) -> pd.DataFrame:
    return pd.read_csv(
        path,
        sep=sep,
        header=None,
        names=names,
        dtype=str,
        encoding=ML_ENCODING,
        keep_default_na=False,
        na_values=[""],
        quoting=3,  # csv.QUOTE_NONE: titles contain quotes
    )


def _interactions(path: Path, key: bytes | None) -> pd.DataFrame:
    raw = _read(path, "\t", ["user", "item", "rating", "unix"])
    n = len(raw)
    frame = pd.DataFrame(
        {
            "event_id": pd.array([f"ml-{row}" for row in range(n)], dtype="string"),
            "user_id": pseudonymize_series(raw["user"], key),
            "item_id": raw["item"].astype("string").str.strip(),
            "event_type": pd.array(["rate"] * n, dtype="string"),
            "timestamp": unix_seconds_to_utc(raw["unix"]),
            "rating": raw["rating"],
        }
    )
    return conform(frame, "interactions")


def unix_seconds_to_utc(raw: pd.Series) -> pd.Series:
    """Unix seconds (as strings or numbers) -> ``datetime64[us, UTC]``.

    Values that are not numbers of seconds within the representable range are kept as they were
    (the column becomes object), so validation reports them as type errors with the raw value.
    """
    seconds = pd.to_numeric(raw, errors="coerce")
    us = seconds * 1_000_000
    ok = seconds.notna() & np.isfinite(us) & (us.abs() < 2**62)
    ts = pd.Series(pd.NaT, index=raw.index, dtype=TS_DTYPE)
    ts[ok] = pd.to_datetime(us[ok].round().astype("int64"), unit="us", utc=True).astype(TS_DTYPE)
    bad = raw.notna() & ~ok
    if not bad.any():
        return ts
    mixed = ts.astype(object)
    mixed[bad] = raw[bad]
    return mixed


def _users(path: Path, key: bytes | None) -> pd.DataFrame:
    raw = _read(path, "|", ["user", "age", "gender", "occupation", "zip"])
    frame = pd.DataFrame(
        {
            "user_id": pseudonymize_series(raw["user"], key),
            "age": raw["age"],
            "gender": raw["gender"].astype("string").str.strip(),
            "occupation": raw["occupation"].astype("string").str.strip(),
            "region": zip_to_region(raw["zip"]),
        }
    )
    return conform(frame, "users")


def _genres(path: Path) -> list[str]:
    raw = pd.read_csv(path, sep="|", header=None, names=["name", "index"], encoding=ML_ENCODING)
    raw = raw.dropna(subset=["name"])
    return list(raw.sort_values("index")["name"].astype(str))


def _items(path: Path, genres: list[str]) -> pd.DataFrame:
    names = [
        "item",
        "title",
        "release",
        "video_release",
        "url",
        *(f"g{k}" for k in range(len(genres))),
    ]
    raw = _read(path, "|", names)
    cats = pd.Series("", index=raw.index, dtype=object)
    for k, genre in enumerate(genres):
        flag = raw[f"g{k}"].fillna("0").str.strip().eq("1").to_numpy()
        cats = pd.Series(np.where(flag, cats + CATEGORY_SEP + genre, cats), index=raw.index)
    cats = cats.str[1:].replace("", pd.NA)
    released = pd.to_datetime(raw["release"], format="%d-%b-%Y", errors="coerce", utc=True)
    frame = pd.DataFrame(
        {
            "item_id": raw["item"].astype("string").str.strip(),
            "title": raw["title"].astype("string"),
            "categories": cats.astype("string"),
            "created_at": released.astype(TS_DTYPE),
        }
    )
    return conform(frame, "items")
