"""The exposure log: served lists and feedback events, buffered and written as Parquet files.

Written in the formats ``recs_assets.core.monitoring.quality`` reads (one folder each, any number of
files; a file appears whole: written under a dot-name, then renamed):

- served lists, ``$RECS_SERVED_DIR`` (default ``<data dir>/served``), file ``served-*.parquet``:
  ``user_id``, ``item_id``, ``rank`` (1 = top), ``score``, ``served_at`` (UTC), ``variant``,
  ``model_version``, ``source`` (model / cache / fallback). One row per item shown.
- feedback events, ``$RECS_FEEDBACK_DIR`` (default ``<data dir>/feedback``), files
  ``impressions-*.parquet`` and ``clicks-*.parquet``: ``timestamp`` (UTC), ``event``
  (``impression`` or ``click``), ``user_id``, ``item_id``, ``variant``, ``model_version``.
  Every served item is one ``impression`` (the monitoring contract: one impression per item shown,
  one click per item clicked), so CTR = clicks / items shown.
- conversions go to the sub-folder ``conversions/`` of the feedback folder (same columns, event
  ``conversion``): ``online_quality`` reads only the top folder, whose events must be impressions
  or clicks.

``<data dir>`` is ``$RECS_DATA_DIR``, else ``.data`` in the repository. ``RECS_EXPOSURE_LOG=off``
turns the log off. Rows are kept in memory and written when ``flush_rows`` rows are waiting, when
``flush_s`` seconds passed since the last write (checked on each record; the write runs in a
background thread, so no request waits for it), and at shutdown.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recs_assets.core.monitoring.quality import read_folder
from recs_assets.core.paths import data_subdir
from recs_assets.core.serving.schemas import Recommendations

FEEDBACK_KINDS: tuple[str, ...] = ("click", "conversion")
SERVED_COLUMNS: tuple[str, ...] = (
    "user_id",
    "item_id",
    "rank",
    "score",
    "served_at",
    "variant",
    "model_version",
    "source",
)
EVENT_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "event",
    "user_id",
    "item_id",
    "variant",
    "model_version",
)
CONVERSIONS_SUBDIR = "conversions"


@dataclass(frozen=True)
class ExposureDirs:
    """Where the log writes: served lists and feedback events (conversions in a sub-folder)."""

    served: Path
    feedback: Path

    @property
    def conversions(self) -> Path:
        return self.feedback / CONVERSIONS_SUBDIR


def exposure_dirs(env: Mapping[str, str] | None = None) -> ExposureDirs:
    """``$RECS_SERVED_DIR`` / ``$RECS_FEEDBACK_DIR``, each else ``<data dir>/served|feedback``."""
    env = os.environ if env is None else env
    return ExposureDirs(
        served=data_subdir("served", "RECS_SERVED_DIR", env),
        feedback=data_subdir("feedback", "RECS_FEEDBACK_DIR", env),
    )


ServedRow = tuple[str, str, int, float, datetime, str, str, str]


def served_tuples(answers: Sequence[Recommendations], served_at: datetime) -> list[ServedRow]:
    """One ``SERVED_COLUMNS`` tuple per item of each list (rank 1 = first); cheap, no pandas."""
    return [
        (a.user_id, it.item_id, rank, it.score, served_at, a.variant, a.model_version, a.source)
        for a in answers
        for rank, it in enumerate(a.items, start=1)
    ]


def served_frame(rows: Sequence[ServedRow]) -> pd.DataFrame:
    """Served-list tuples as the written frame: typed columns, ``served_at`` in UTC."""
    frame = pd.DataFrame(list(rows), columns=list(SERVED_COLUMNS))
    frame["rank"] = frame["rank"].astype("int64")
    frame["score"] = frame["score"].astype("float64")
    frame["served_at"] = pd.to_datetime(frame["served_at"], utc=True).astype("datetime64[us, UTC]")
    return frame


_SERVED_TYPES: tuple[pa.DataType, ...] = (
    pa.string(),
    pa.string(),
    pa.int64(),
    pa.float64(),
    pa.timestamp("us", tz="UTC"),
    pa.string(),
    pa.string(),
    pa.string(),
)


def served_tables(rows: Sequence[ServedRow]) -> tuple[pa.Table, pa.Table]:
    """The served-list table (``SERVED_COLUMNS``) and its impression events (``EVENT_COLUMNS``).

    Built with Arrow straight from the tuples: the same files ``served_frame`` would give, at a
    fraction of the cost, so the background write barely holds the GIL that requests need.
    """
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(SERVED_COLUMNS)
    arrays = {
        name: pa.array(values, type=kind)
        for name, values, kind in zip(SERVED_COLUMNS, columns, _SERVED_TYPES, strict=True)
    }
    served = pa.table(arrays)
    impressions = pa.table(
        {
            "timestamp": arrays["served_at"],
            "event": pa.array(["impression"] * len(rows), type=pa.string()),
            "user_id": arrays["user_id"],
            "item_id": arrays["item_id"],
            "variant": arrays["variant"],
            "model_version": arrays["model_version"],
        }
    )
    return served, impressions


def served_rows(answers: Sequence[Recommendations], served_at: datetime) -> pd.DataFrame:
    """One row per item of each list (rank 1 = first), columns ``SERVED_COLUMNS``."""
    return served_frame(served_tuples(answers, served_at))


def impression_events(served: pd.DataFrame) -> pd.DataFrame:
    """The ``impression`` event of every served row, columns ``EVENT_COLUMNS``."""
    return pd.DataFrame(
        {
            "timestamp": served["served_at"],
            "event": "impression",
            "user_id": served["user_id"],
            "item_id": served["item_id"],
            "variant": served["variant"],
            "model_version": served["model_version"],
        }
    )[list(EVENT_COLUMNS)]


def _event_frame(rows: list[tuple[datetime, str, str, str, str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).astype("datetime64[us, UTC]")
    return frame


class ExposureLog:
    """Buffers served lists and feedback events; ``flush`` writes them as Parquet files.

    Thread-safe (BentoML runs sync endpoints in a thread pool).

    Args:
        dirs: target folders (created on the first write).
        flush_rows: write once this many rows are buffered.
        flush_s: write once this many seconds passed since the last write (0: every record).
        clock: monotonic seconds (tests pass a fake).
        background: write from a separate thread, so no request waits for a write (tests: False).
    """

    def __init__(
        self,
        dirs: ExposureDirs,
        flush_rows: int = 5000,
        flush_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
    ) -> None:
        if flush_rows < 1 or flush_s < 0:
            raise ValueError(f"need flush_rows >= 1 and flush_s >= 0, got {flush_rows}, {flush_s}")
        self.dirs = dirs
        self.flush_rows = flush_rows
        self.flush_s = flush_s
        self._clock = clock
        self.background = background
        self._lock = threading.Lock()  # guards the buffers
        self._writing = threading.Lock()  # one write at a time
        self._served: list[ServedRow] = []
        self._events: list[tuple[datetime, str, str, str, str, str]] = []
        self._buffered = 0
        self._last_flush = clock()
        self._prefix = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._seq = itertools.count()
        self.rows_written = 0

    def record_lists(self, answers: Sequence[Recommendations], served_at: datetime) -> None:
        """Buffer the served rows (and so the impressions) of ``answers``."""
        rows = served_tuples(answers, served_at)
        if not rows:
            return
        with self._lock:
            self._served.extend(rows)
            self._buffered += len(rows)
        self._maybe_flush()

    def record_feedback(
        self,
        user_id: str,
        item_id: str,
        event: str,
        variant: str,
        model_version: str,
        at: datetime,
    ) -> None:
        """Buffer one click or conversion."""
        if event not in FEEDBACK_KINDS:
            raise ValueError(f"event must be one of {list(FEEDBACK_KINDS)}, got {event!r}")
        with self._lock:
            self._events.append((at, event, user_id, item_id, variant, model_version))
            self._buffered += 1
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        due = self._buffered >= self.flush_rows or self._clock() - self._last_flush >= self.flush_s
        if not due:
            return
        if not self.background:
            self.flush()
        elif self._writing.acquire(blocking=False):  # else a write is already under way
            threading.Thread(target=self._flush_then_release, name="exposure-flush").start()

    def _flush_then_release(self) -> None:
        try:
            self._flush_locked()
        finally:
            self._writing.release()

    def flush(self) -> list[Path]:
        """Write everything buffered (after any background write); returns the files written."""
        with self._writing:
            return self._flush_locked()

    def _flush_locked(self) -> list[Path]:
        with self._lock:  # swap the buffers; requests keep appending while the files are written
            served, events = self._served, self._events
            self._served, self._events, self._buffered = [], [], 0
            self._last_flush = self._clock()
        written: list[Path] = []
        if served:
            table, impressions = served_tables(served)
            written.append(self._write(table, self.dirs.served, "served"))
            written.append(self._write(impressions, self.dirs.feedback, "impressions"))
        if events:
            frame = _event_frame(events)
            clicks = frame[frame["event"] == "click"]
            conversions = frame[frame["event"] == "conversion"]
            if len(clicks):
                written.append(self._write(clicks, self.dirs.feedback, "clicks"))
            if len(conversions):
                written.append(self._write(conversions, self.dirs.conversions, "conversions"))
        return written

    def _write(self, frame: pd.DataFrame | pa.Table, folder: Path, kind: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{kind}-{self._prefix}-{next(self._seq):06d}.parquet"
        tmp = folder / f".{name}.tmp"
        if isinstance(frame, pa.Table):
            pq.write_table(frame, tmp)
        else:
            frame.reset_index(drop=True).to_parquet(tmp, index=False)
        final = folder / name
        tmp.replace(final)
        self.rows_written += len(frame)
        return final


def exposure_log_from_env(env: Mapping[str, str] | None = None) -> ExposureLog | None:
    """The log configured by ``RECS_EXPOSURE_LOG`` (on/off, default on), the folders above,
    ``RECS_EXPOSURE_FLUSH_ROWS`` (5000) and ``RECS_EXPOSURE_FLUSH_S`` (10)."""
    env = os.environ if env is None else env
    switch = env.get("RECS_EXPOSURE_LOG", "on").strip().lower()
    if switch in ("off", "0", "false", "no"):
        return None
    if switch not in ("on", "1", "true", "yes", ""):
        raise ValueError(f"RECS_EXPOSURE_LOG={switch!r}: use on or off")
    try:
        rows = int(env.get("RECS_EXPOSURE_FLUSH_ROWS", "5000"))
        seconds = float(env.get("RECS_EXPOSURE_FLUSH_S", "10"))
    except ValueError as exc:
        raise ValueError(f"bad RECS_EXPOSURE_FLUSH_ROWS / RECS_EXPOSURE_FLUSH_S: {exc}") from None
    return ExposureLog(exposure_dirs(env), flush_rows=rows, flush_s=seconds)


def read_ab_events(feedback_dir: Path) -> tuple[pd.DataFrame, int]:
    """Impressions and clicks of ``feedback_dir`` plus its ``conversions/`` sub-folder, keeping the
    rows that carry a variant; returns them and the number of rows dropped for lacking one."""
    frames = [read_folder(feedback_dir, "feedback event")]
    conversions = feedback_dir / CONVERSIONS_SUBDIR
    if conversions.is_dir() and any(conversions.glob("*.parquet")):
        frames.append(read_folder(conversions, "conversion event"))
    events = pd.concat(frames, ignore_index=True)
    if "variant" not in events.columns:
        raise ValueError(f"feedback events at {feedback_dir} have no 'variant' column")
    has_variant = events["variant"].notna() & (events["variant"].astype(str) != "")
    return events[has_variant].reset_index(drop=True), int((~has_variant).sum())
