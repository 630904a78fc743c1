"""Privacy at the edge: keyed pseudonyms for user ids and ZIP codes reduced to a region.

Both run in the sources, before anything is stored. See ``docs/privacy.md``.

- ``pseudonymize_id``: ``"u_" + HMAC-SHA256(key, raw_id)`` truncated to 16 hex characters (64 bits).
  The key comes from the environment variable ``RECS_PSEUDONYM_KEY``; without it the documented,
  public development key ``DEV_PSEUDONYM_KEY`` is used (fine for MovieLens and synthetic data, never
  for real users), except with ``RECS_DEPLOYMENT=production``, where a real key is required.
- ``zip_to_region``: the first digit of a US ZIP code names one of ten USPS national areas; anything
  else (Canadian postcodes, blanks) becomes ``"unknown"``. The ZIP itself is dropped.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

import numpy as np
import pandas as pd

from recs_assets.core.contracts import DEPLOYMENT_ENV

PSEUDONYM_KEY_ENV = "RECS_PSEUDONYM_KEY"
DEV_PSEUDONYM_KEY = "recs-dev-pseudonym-key-public-not-secret"
PSEUDONYM_PREFIX = "u_"
PSEUDONYM_HEX_CHARS = 16

# First digit of a US ZIP code -> USPS national area (the states each digit covers).
ZIP_REGIONS: dict[str, str] = {
    "0": "New England",  # CT, MA, ME, NH, NJ, RI, VT, PR
    "1": "New York-Pennsylvania",  # DE, NY, PA
    "2": "Mid-Atlantic",  # DC, MD, NC, SC, VA, WV
    "3": "Southeast",  # AL, FL, GA, MS, TN
    "4": "Great Lakes",  # IN, KY, MI, OH
    "5": "Upper Midwest",  # IA, MN, MT, ND, SD, WI
    "6": "Central",  # IL, KS, MO, NE
    "7": "South Central",  # AR, LA, OK, TX
    "8": "Mountain",  # AZ, CO, ID, NM, NV, UT, WY
    "9": "Pacific",  # AK, CA, HI, OR, WA
}
UNKNOWN_REGION = "unknown"
REGIONS: tuple[str, ...] = (*ZIP_REGIONS.values(), UNKNOWN_REGION)


MIN_PRODUCTION_KEY_CHARS = 32


def pseudonym_key(env: Mapping[str, str] | None = None) -> bytes:
    """The HMAC key: ``$RECS_PSEUDONYM_KEY`` when set and non-empty, else the public dev key.

    With ``RECS_DEPLOYMENT=production`` the key is required: a missing key, the public dev key or
    one shorter than 32 characters raises ``ValueError`` (a guessable key lets anyone reverse the
    pseudonyms of numeric ids by trying them all).
    """
    env = os.environ if env is None else env
    key = env.get(PSEUDONYM_KEY_ENV, "")
    weak = not key or key == DEV_PSEUDONYM_KEY or len(key) < MIN_PRODUCTION_KEY_CHARS
    if weak and env.get(DEPLOYMENT_ENV, "") == "production":
        raise ValueError(
            f"{DEPLOYMENT_ENV}=production needs {PSEUDONYM_KEY_ENV}: a secret of at least "
            f"{MIN_PRODUCTION_KEY_CHARS} characters, not the public development key "
            "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    return (key or DEV_PSEUDONYM_KEY).encode("utf-8")


def pseudonymize_id(raw_id: str, key: bytes) -> str:
    """The pseudonym of one id: ``u_`` + the first 16 hex characters of HMAC-SHA256(key, id)."""
    if not key:
        raise ValueError("pseudonym key must not be empty")
    digest = hmac.new(key, str(raw_id).encode("utf-8"), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:PSEUDONYM_HEX_CHARS]


def pseudonymize_series(ids: pd.Series, key: bytes | None = None) -> pd.Series:
    """Pseudonymize every non-null id of ``ids`` (hashing each distinct value once); nulls stay null.

    Values are hashed as their string form with surrounding whitespace removed, so ``7`` and
    ``"7"`` map to the same pseudonym.
    """
    key = pseudonym_key() if key is None else key
    as_str = ids.astype("string").str.strip()
    uniques = as_str.dropna().unique()
    mapping = {raw: pseudonymize_id(raw, key) for raw in uniques}
    return as_str.map(mapping).astype("string")


def zip_to_region(zips: pd.Series) -> pd.Series:
    """Reduce ZIP codes to a named US region by their first digit; anything else -> ``"unknown"``.

    A ZIP counts as US when it is five digits, optionally followed by ``-`` and four digits.
    """
    as_str = zips.astype("string").str.strip()
    is_us = as_str.str.fullmatch(r"\d{5}(-\d{4})?").fillna(False).astype(bool)
    first = as_str.str[:1]
    region = first.map(ZIP_REGIONS)
    out = np.where(is_us.to_numpy(), region.to_numpy(dtype=object), UNKNOWN_REGION)
    return pd.Series(out, index=zips.index, dtype="string")
