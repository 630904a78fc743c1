"""Users who asked to be forgotten: the request log, and their rows kept out of every later load.

A request is recorded in ``<data dir>/privacy/forget_requests.parquet`` (``RECS_PRIVACY_DIR``
moves the folder) with the SHA-256 digest of the user's pseudonym, never the pseudonym itself: the
log proves the request and keeps the user out of later loads without holding the id. Every source
load drops the rows of users whose digest is in the log (``drop_forgotten``), so the next retrain
trains without them. ``recs_assets.core.forget`` removes the user from the stores that already
hold them. See ``docs/security.md``.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from recs_assets.core.paths import data_subdir
from recs_assets.core.phase1.schema import Phase1Tables

PRIVACY_DIR_ENV = "RECS_PRIVACY_DIR"
REQUESTS_FILE = "forget_requests.parquet"
REQUEST_COLUMNS = ("request_id", "user_digest", "requested_at", "requested_by", "removed")


def privacy_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$RECS_PRIVACY_DIR``, else ``<data dir>/privacy``."""
    return data_subdir("privacy", PRIVACY_DIR_ENV, env)


def user_digest(user_id: str) -> str:
    """SHA-256 (hex) of a user id as the tables hold it (the pseudonym)."""
    return hashlib.sha256(str(user_id).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ForgetRequests:
    """The log of forget requests in ``folder``."""

    folder: Path

    @property
    def path(self) -> Path:
        return self.folder / REQUESTS_FILE

    def read(self) -> pd.DataFrame:
        """Every request so far (empty frame with the columns when there is none)."""
        if not self.path.is_file():
            return pd.DataFrame({c: pd.Series(dtype="string") for c in REQUEST_COLUMNS})
        return pd.read_parquet(self.path)

    def digests(self) -> frozenset[str]:
        """Digests of every user who asked to be forgotten."""
        return frozenset(self.read()["user_digest"].astype(str))

    def record(self, user_id: str, requested_by: str, removed: str) -> str:
        """Append a request for ``user_id`` (stored as its digest); returns the request id.

        ``removed`` is a JSON summary of what was deleted where. Written beside, then renamed.
        """
        request_id = uuid.uuid4().hex
        row = pd.DataFrame(
            {
                "request_id": [request_id],
                "user_digest": [user_digest(user_id)],
                "requested_at": [datetime.now(UTC).isoformat()],
                "requested_by": [requested_by],
                "removed": [removed],
            }
        ).astype("string")
        table = pd.concat([self.read().astype("string"), row], ignore_index=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{REQUESTS_FILE}.{request_id}")
        table.to_parquet(tmp, index=False)
        os.replace(tmp, self.path)
        return request_id


def forget_requests(env: Mapping[str, str] | None = None) -> ForgetRequests:
    """The request log of this deployment's data dir."""
    return ForgetRequests(privacy_dir(env))


def forgotten_mask(user_ids: pd.Series, digests: frozenset[str]) -> pd.Series:
    """True for rows whose user id's digest is in ``digests`` (hashing each distinct id once)."""
    if not digests or user_ids.empty:
        return pd.Series(False, index=user_ids.index)
    distinct = pd.unique(user_ids.dropna().astype(str))
    gone = {u for u in distinct if user_digest(u) in digests}
    return user_ids.astype("string").isin(gone).fillna(False).astype(bool)


def drop_forgotten(tables: Phase1Tables, digests: frozenset[str]) -> tuple[Phase1Tables, int]:
    """``tables`` without the interactions and user rows of forgotten users; rows dropped."""
    if not digests:
        return tables, 0
    events = forgotten_mask(tables.interactions["user_id"], digests)
    users = forgotten_mask(tables.users["user_id"], digests)
    dropped = int(events.sum() + users.sum())
    if dropped == 0:
        return tables, 0
    return (
        replace(
            tables,
            interactions=tables.interactions[~events.to_numpy()].reset_index(drop=True),
            users=tables.users[~users.to_numpy()].reset_index(drop=True),
        ),
        dropped,
    )
