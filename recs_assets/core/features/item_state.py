"""The item state a DuckDB build keeps beside its newest item snapshot, and when the next build
may start from it.

The item features at a time are made of per-item counts and sums over all events up to it
(``duck.item_state_sql``: events by type, distinct users, ratings, days of the week, first and
last event, the decayed count) plus the last 30 days' events. A build writes the state of its
newest snapshot beside the table (``.<table>.item_state/``, outside the table's folder, so no
reader of the table, DuckDB, pyarrow, Spark or Feast's dask offline store, ever sees it) with
what it was built from (``ItemStateMeta``); the next build adds the events after that time to it
(``duck.carried_item_state_sql``) instead of aggregating all history again, when
``carry_refusal`` finds nothing against it:

- the state is in this format (``STATE_VERSION``), at the previous build's newest snapshot time,
  with the same half-life;
- every event day before the state's day has the fingerprint it had when the state was built
  (recorded in the state: the check does not depend on the builds in between, Spark's included);
- on the state's own day, the events up to its time are those the state saw: the same count and
  the same sum of row hashes (a landed batch usually continues the day after that time).

Otherwise the state is computed from all events, as in a full build. Either way the rows equal
``duck.item_features_sql`` (``tests/features/test_item_carry.py``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

STATE_VERSION = 1  # raise when the state's columns change: an older state is then not carried
STATE_FILE = "items.parquet"
META_FILE = "items.json"
TEMP_TABLE = "_item_state"  # the newest snapshot's state in the build's DuckDB connection


@dataclass(frozen=True)
class ItemStateMeta:
    """What a kept state was built from.

    Attributes:
        as_of: the snapshot time the state is at (ISO 8601, UTC).
        day_events: events on the UTC day of ``as_of`` up to it.
        day_checksum: the sum of those events' row hashes (``duck.day_checksum_sql``), as text.
        half_life_days: the decay half-life of the state's decayed count.
        days: the fingerprint of every event day when the state was built.
        version: the state's format (``STATE_VERSION``).
    """

    as_of: str
    day_events: int
    day_checksum: str
    half_life_days: float
    days: dict[str, str] = field(default_factory=dict)
    version: int = STATE_VERSION

    @property
    def time(self) -> datetime:
        return datetime.fromisoformat(self.as_of)


def carry_refusal(
    meta: ItemStateMeta | None,
    previous: datetime,
    days: Mapping[str, str],
    day_now: tuple[int, str] | None,
    half_life_days: float,
) -> str | None:
    """Why the newest item snapshot may not start from the kept state (``meta``), or None when
    it may: see the module docstring. ``previous``: the previous build's newest snapshot time;
    ``days``: this build's event-day fingerprints; ``day_now``: ``duck.day_checksum_sql`` at the
    state's time on this build's events."""
    if meta is None:
        return "no kept item state"
    if meta.version != STATE_VERSION:
        return f"the kept state has format {meta.version}, this code writes {STATE_VERSION}"
    if meta.time != previous:
        return f"the kept state is at {meta.as_of}, the previous snapshot at {previous}"
    if meta.half_life_days != half_life_days:
        return f"the kept state decays with a half-life of {meta.half_life_days} days"
    if not meta.days or not days:
        return "no event-day fingerprints to compare"
    first = meta.time.astimezone(UTC).strftime("%Y-%m-%d")  # the state's UTC day
    earlier = sorted(
        d for d in set(meta.days) | set(days) if d < first and meta.days.get(d) != days.get(d)
    )
    if earlier:
        return f"events changed on {earlier[0]}, before the kept state's day {first}"
    if day_now != (meta.day_events, meta.day_checksum):
        return f"the events of {first} up to {meta.as_of} changed"
    return None


def state_folder(table_path: Path) -> Path:
    """Where the state of the table at ``table_path`` is kept: beside it, outside its folder."""
    return table_path.with_name(f".{table_path.name}.item_state")


def state_file(table_path: Path) -> Path:
    return state_folder(table_path) / STATE_FILE


def read_meta(table_path: Path) -> ItemStateMeta | None:
    """The kept state's metadata for the table at ``table_path``, or None (none, unreadable,
    or without its state file)."""
    folder = state_folder(table_path)
    try:
        raw = json.loads((folder / META_FILE).read_text())
        meta = ItemStateMeta(
            as_of=str(raw["as_of"]),
            day_events=int(raw["day_events"]),
            day_checksum=str(raw["day_checksum"]),
            half_life_days=float(raw["half_life_days"]),
            days={str(k): str(v) for k, v in dict(raw.get("days", {})).items()},
            version=int(raw.get("version", 0)),
        )
        meta.time  # noqa: B018 - a malformed time is no state
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return meta if (folder / STATE_FILE).is_file() else None


def replace_state(table_path: Path, write: Callable[[Path], object], meta: ItemStateMeta) -> None:
    """Write a new state for the table at ``table_path``: ``write`` fills a fresh folder with
    ``STATE_FILE``, the metadata is added, and the folder replaces the kept one. A reader sees
    the old state, no state, or the new one (a state that does not match the table's manifest
    is refused, not trusted)."""
    folder = state_folder(table_path)
    staged = folder.with_name(f"{folder.name}.next")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    write(staged / STATE_FILE)
    (staged / META_FILE).write_text(json.dumps(asdict(meta), sort_keys=True))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staged, folder)
