"""The item state a DuckDB build keeps beside its newest item snapshot, and when the next build
may start from it.

The item features at a time are made of per-item counts and sums over all events up to it
(``duck.item_state_sql``: events by type, distinct users, ratings, days of the week, first and
last event, the decayed count) plus the last 30 days' events. A build writes the state of its
newest snapshot into the table folder (``_state/``: a folder the table's readers skip) with what
it was built from (``ItemStateMeta``); the next build adds the events after that time to it
(``duck.carried_item_state_sql``) instead of aggregating all history again, when
``carry_refusal`` finds nothing against it:

- the state is the previous build's newest snapshot's (its time is ``Carry.previous``), built
  with the same half-life;
- no changed event day is before the day of that time: earlier days are as they were;
- on that day, the events up to that time are those the state saw: the same count and the same
  sum of row hashes (a landed batch usually continues the day after the snapshot's time).

Otherwise the state is computed from all events, as in a full build. Either way the rows equal
``duck.item_features_sql`` (``tests/features/test_item_carry.py``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from recs_assets.core.features.incremental import Carry

STATE_DIR = "_state"  # a leading underscore: duck.parquet_files and Spark skip it
STATE_FILE = "items.parquet"
META_FILE = "items.json"
TEMP_TABLE = "_item_state"  # the newest snapshot's state in the build's DuckDB connection


@dataclass(frozen=True)
class ItemStateMeta:
    """What a kept state was built from.

    Attributes:
        as_of: the snapshot time the state is at (ISO 8601, UTC).
        day_events: events on the UTC day of ``as_of`` up to it.
        day_checksum: the sum of those events' row hashes (``day_checksum_sql``), as text.
        half_life_days: the decay half-life of the state's decayed count.
    """

    as_of: str
    day_events: int
    day_checksum: str
    half_life_days: float

    @property
    def time(self) -> datetime:
        return datetime.fromisoformat(self.as_of)


def day_start(t: datetime) -> datetime:
    """UTC midnight of ``t``'s day."""
    u = t.astimezone(UTC)
    return datetime(u.year, u.month, u.day, tzinfo=UTC)


def day_checksum_sql(as_of: datetime) -> str:
    """(count, sum of row hashes as text) of the events on ``as_of``'s UTC day up to it."""
    start = day_start(as_of).isoformat()
    return f"""
        SELECT count(*), CAST(coalesce(sum(hash(event_id, user_id, item_id, event_type,
            timestamp, rating, session_id, device, platform)), 0) AS VARCHAR)
        FROM interactions
        WHERE timestamp >= TIMESTAMPTZ '{start}' AND timestamp <= TIMESTAMPTZ '{as_of.isoformat()}'
    """


def carry_refusal(
    meta: ItemStateMeta | None,
    carry: Carry,
    day_now: tuple[int, str] | None,
    half_life_days: float,
) -> str | None:
    """Why the newest item snapshot may not start from the kept state (``meta``), or None when
    it may: see the module docstring. ``day_now``: ``day_checksum_sql`` at the state's time on
    today's events."""
    if meta is None:
        return "no kept item state"
    if meta.time != carry.previous:
        return f"the kept state is at {meta.as_of}, the previous snapshot at {carry.previous}"
    if meta.half_life_days != half_life_days:
        return f"the kept state decays with a half-life of {meta.half_life_days} days"
    first = day_start(meta.time).strftime("%Y-%m-%d")
    earlier = sorted(d for d in carry.changed_days if d < first)
    if earlier:
        return f"events changed on {earlier[0]}, before the kept state's day {first}"
    if day_now != (meta.day_events, meta.day_checksum):
        return f"the events of {first} up to {meta.as_of} changed"
    return None


def read_meta(table_path: Path) -> ItemStateMeta | None:
    """The kept state's metadata under the table at ``table_path``, or None (none, unreadable,
    or without its state file)."""
    folder = table_path / STATE_DIR
    try:
        raw = json.loads((folder / META_FILE).read_text())
        meta = ItemStateMeta(
            as_of=str(raw["as_of"]),
            day_events=int(raw["day_events"]),
            day_checksum=str(raw["day_checksum"]),
            half_life_days=float(raw["half_life_days"]),
        )
        meta.time  # noqa: B018 - a malformed time is no state
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return meta if (folder / STATE_FILE).is_file() else None


def state_file(table_path: Path) -> Path:
    return table_path / STATE_DIR / STATE_FILE


def write_meta(folder: Path, meta: ItemStateMeta) -> None:
    """Write ``meta`` beside the state file in ``folder`` (atomically)."""
    target = folder / META_FILE
    partial = target.with_name(f".{META_FILE}.partial")
    partial.write_text(json.dumps(asdict(meta), sort_keys=True))
    os.replace(partial, target)


def link_state(source_table: Path, staged: Path) -> bool:
    """Hard-link (or copy) the kept state of the table at ``source_table`` into the staged
    table folder ``staged``; False when there is none."""
    src = source_table / STATE_DIR
    if read_meta(source_table) is None:
        return False
    dst = staged / STATE_DIR
    dst.mkdir(parents=True, exist_ok=True)
    for name in (STATE_FILE, META_FILE):
        try:
            os.link(src / name, dst / name)
        except OSError:
            (dst / name).write_bytes((src / name).read_bytes())
    return True
