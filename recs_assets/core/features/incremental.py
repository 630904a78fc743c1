"""Which feature snapshots a new build can keep from the previous one.

A snapshot stamped ``t`` reads the events with ``timestamp <= t`` (and the users and items known
then). When a build finds the previous build's snapshot ``t`` in its own list, made with the same
settings, from the same users and items tables and the same event days up to ``t``'s day, that
snapshot's rows are still exact: they are copied instead of recomputed. A landed day therefore
costs the snapshots at or after that day (the newest, usually), not every snapshot of history.

Inputs are fingerprinted by content (size and BLAKE2 of each file): a day rewritten with the same
events keeps its fingerprint, a day with one more event does not. The manifest of a build lives
beside its table (``_recs_manifest.json``), written after the table.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

MANIFEST = "_recs_manifest.json"
PARTITION_PREFIX = "partition="


@dataclass(frozen=True)
class BuildInputs:
    """What one build of a snapshot feature table read.

    Attributes:
        days: event day (``YYYY-MM-DD``) -> fingerprint of that day's files; empty when the
            events did not come from day partitions (then nothing is reused).
        tables: other inputs (``users``, ``items``) -> fingerprint.
        settings: fingerprint of everything else that shapes the rows (configuration, category
            columns, code version).
        snapshots: the snapshot times written (ISO strings), filled in for a finished build.
    """

    days: Mapping[str, str]
    tables: Mapping[str, str]
    settings: str
    snapshots: tuple[str, ...] = field(default=())

    def to_json(self) -> str:
        return json.dumps(
            {
                "days": dict(sorted(self.days.items())),
                "tables": dict(sorted(self.tables.items())),
                "settings": self.settings,
                "snapshots": list(self.snapshots),
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> BuildInputs:
        raw = json.loads(text)
        return cls(
            days=dict(raw["days"]),
            tables=dict(raw["tables"]),
            settings=str(raw["settings"]),
            snapshots=tuple(raw.get("snapshots", ())),
        )


def file_fingerprint(paths: Iterable[Path]) -> str:
    """BLAKE2 over the sorted file names' sizes and contents."""
    digest = hashlib.blake2b(digest_size=16)
    for p in sorted(paths):
        digest.update(f"{p.name}:{p.stat().st_size}:".encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def local_path(uri: str) -> Path:
    """A Spark input file (``file:/...``, percent-encoded) or a plain path (taken as it is:
    ``#``, ``?`` and ``%`` are file name characters there) as a local path."""
    if uri.startswith("file:"):
        return Path(unquote(urlparse(uri).path))
    return Path(uri)


def day_fingerprints(files: Iterable[str], cache: Path | None = None) -> dict[str, str]:
    """Fingerprint per day partition of a table's files (``.../partition=<day>/<file>``); empty
    when any file is not under a day partition (the table is not partitioned by day).

    With ``cache`` (a JSON file of the caller's), a day whose files still have the names, sizes,
    inodes and change and modification times recorded there keeps its recorded fingerprint
    instead of being read again (the rule of ``make`` and git's index): a landed day reads its
    own files, not all of history. As in git, an entry is trusted only when its files had not
    been touched for ``RACY_NS`` before the cache was written (a rewrite within the same clock
    tick could keep every recorded time). The cache is an optimisation: an unreadable one is
    ignored and one that cannot be written is not kept."""
    by_day: dict[str, list[Path]] = {}
    for uri in files:
        path = local_path(uri)
        parent = path.parent.name
        if not parent.startswith(PARTITION_PREFIX):
            return {}
        by_day.setdefault(parent[len(PARTITION_PREFIX) :], []).append(path)
    known, written = _read_cache(cache)
    fresh: dict[str, dict[str, object]] = {}
    out = {}
    for day, paths in by_day.items():
        stats = [(p.name, p.stat()) for p in paths]
        listing = sorted(
            [name, st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns] for name, st in stats
        )
        newest = max((max(st.st_mtime_ns, st.st_ctime_ns) for _, st in stats), default=0)
        folder = str(paths[0].parent)
        hit = known.get(folder)
        if (
            isinstance(hit, dict)
            and hit.get("files") == listing
            and isinstance(hit.get("digest"), str)
            and newest < written - RACY_NS
        ):
            out[day] = hit["digest"]
        else:
            out[day] = file_fingerprint(paths)
        fresh[folder] = {"files": listing, "digest": out[day]}
    if cache is not None:
        _write_cache(cache, fresh)
    return out


RACY_NS = 2_000_000_000
"""Files touched this close (2 s) before a cache was written are read again next time."""


def _read_cache(cache: Path | None) -> tuple[dict[str, object], int]:
    """The cached days and when the cache was written (ns since the epoch; 0: no cache)."""
    if cache is None:
        return {}, 0
    try:
        raw = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}, 0
    if not isinstance(raw, dict) or not isinstance(raw.get("days"), dict):
        return {}, 0
    written = raw.get("written_ns")
    return raw["days"], written if isinstance(written, int) else 0


def _write_cache(cache: Path, days: dict[str, dict[str, object]]) -> None:
    tmp = cache.with_name(f".{cache.name}.{uuid.uuid4().hex}.tmp")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"written_ns": time.time_ns(), "days": days}))
        tmp.replace(cache)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def settings_fingerprint(**parts: object) -> str:
    """A stable fingerprint of JSON-able settings."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _comparable(previous: BuildInputs | None, current: BuildInputs) -> bool:
    """Whether rows of the previous build can be kept at all: both read day partitions, with the
    same settings and the same other tables."""
    return (
        previous is not None
        and bool(previous.days)
        and bool(current.days)
        and previous.settings == current.settings
        and dict(previous.tables) == dict(current.tables)
    )


def reusable_snapshots(
    previous: BuildInputs | None, current: BuildInputs, wanted: Sequence[datetime]
) -> list[datetime]:
    """The snapshots of ``wanted`` whose previous rows are still exact (see the module docstring).

    None are when there is no previous build, when either build's events were not day
    partitions, or when the settings or the other tables changed.
    """
    if not _comparable(previous, current):
        return []
    assert previous is not None
    written = set(previous.snapshots)
    out = []
    for t in wanted:
        if t.isoformat() not in written:
            continue
        day = t.date().isoformat()
        before = {d: f for d, f in previous.days.items() if d <= day}
        now = {d: f for d, f in current.days.items() if d <= day}
        if before == now:
            out.append(t)
    return out


def changed_days(previous: BuildInputs | None, current: BuildInputs) -> set[str] | None:
    """The event days whose files differ from the previous build's (new days included), or None
    when the previous rows cannot be kept at all: no previous build, events not from day
    partitions, other settings or tables, or a day that disappeared."""
    if not _comparable(previous, current):
        return None
    assert previous is not None
    if set(previous.days) - set(current.days):
        return None
    return {d for d, f in current.days.items() if previous.days.get(d) != f}


@dataclass(frozen=True)
class Carry:
    """Where the newest snapshot of a build can start from: the previous build's newest snapshot
    (``previous``) and the event days that changed since (``changed_days``)."""

    previous: datetime
    changed_days: frozenset[str]


def carry_plan(previous: BuildInputs | None, current: BuildInputs, as_of: datetime) -> Carry | None:
    """A ``Carry`` for a snapshot at ``as_of``, or None: no comparable previous build (see
    ``changed_days``), none of its snapshots written, or its newest after ``as_of``."""
    days = changed_days(previous, current)
    if days is None or previous is None or not previous.snapshots:
        return None
    newest = max(datetime.fromisoformat(t) for t in previous.snapshots)
    if newest > as_of:
        return None
    return Carry(newest, frozenset(days))


def read_manifest(table_path: Path) -> BuildInputs | None:
    """The manifest of the build at ``table_path``, or None (no table, no or unreadable manifest)."""
    path = table_path / MANIFEST
    try:
        return BuildInputs.from_json(path.read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_manifest(table_path: Path, inputs: BuildInputs) -> None:
    tmp = table_path / f".{MANIFEST}.tmp"
    tmp.write_text(inputs.to_json())
    tmp.replace(table_path / MANIFEST)
