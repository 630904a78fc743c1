"""The source's interactions as rows to read a column or a few rows of, without the rest.

The raw steps need all of one column (the timestamps, to find each event's day) and the whole
rows of the run's days only. ``EventRows`` gives both, with the same positions as the frame
``Phase1Source.load().interactions`` (so quarantine ``row_index`` values do not depend on how
the source was read):

- ``FrameRows``: a frame in memory (``files``, ``movielens``, small data).
- ``ParquetRows``: a Parquet file (the cached synthetic source), optionally only the file rows
  ``keep`` (without forgotten users): a column is read alone, and ``take`` reads only the row
  groups that hold the rows asked for (the synthetic source is written in time order, so a
  day's rows lie in one or two row groups of about a million events).
- ``ConcatRows``: parts one after another (the base source, then the landed batches).

Pure: no Dagster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recs_assets.core.phase1.files import arrow_to_frame


class EventRows(Protocol):
    """Interactions by position (0..n-1), readable a column or a few rows at a time."""

    def __len__(self) -> int: ...

    def column(self, name: str) -> pd.Series:
        """Every row's value of ``name`` (index 0..n-1)."""
        ...

    def take(self, positions: np.ndarray) -> pd.DataFrame:
        """The rows at ``positions`` (ascending), index 0..k-1, every column of the source."""
        ...


@dataclass(frozen=True)
class FrameRows:
    """Rows of a frame in memory."""

    frame: pd.DataFrame

    def __len__(self) -> int:
        return len(self.frame)

    def column(self, name: str) -> pd.Series:
        return self.frame[name].reset_index(drop=True)

    def take(self, positions: np.ndarray) -> pd.DataFrame:
        return self.frame.iloc[np.asarray(positions, dtype=np.int64)].reset_index(drop=True)


@dataclass(frozen=True)
class ParquetRows:
    """Rows of a Parquet file (``keep``: the file rows that count, ascending; None: all)."""

    path: Path
    keep: np.ndarray | None = None
    _meta: pq.FileMetaData = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_meta", pq.ParquetFile(self.path).metadata)

    def __len__(self) -> int:
        return self._meta.num_rows if self.keep is None else len(self.keep)

    def column(self, name: str) -> pd.Series:
        values = arrow_to_frame(pq.read_table(self.path, columns=[name]))[name]
        if self.keep is not None:
            values = values.iloc[self.keep]
        return values.reset_index(drop=True)

    def take(self, positions: np.ndarray) -> pd.DataFrame:
        rows = np.asarray(positions, dtype=np.int64)
        if self.keep is not None:
            rows = self.keep[rows]
        sizes = [self._meta.row_group(g).num_rows for g in range(self._meta.num_row_groups)]
        starts = np.concatenate([[0], np.cumsum(sizes)])
        group_of = np.searchsorted(starts, rows, side="right") - 1
        reader = pq.ParquetFile(self.path)
        parts: list[pa.Table] = []
        for g in np.unique(group_of):
            local = rows[group_of == g] - starts[g]
            parts.append(reader.read_row_group(int(g)).take(pa.array(local)))
        if not parts:  # no row asked for: the columns and types alone
            return arrow_to_frame(reader.schema_arrow.empty_table())
        return arrow_to_frame(pa.concat_tables(parts))


@dataclass(frozen=True)
class ConcatRows:
    """``parts`` one after another."""

    parts: Sequence[EventRows]

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def _starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum([len(p) for p in self.parts])]).astype(np.int64)

    def column(self, name: str) -> pd.Series:
        filled = [p for p in self.parts if len(p)] or list(self.parts[:1])
        return pd.concat([p.column(name) for p in filled], ignore_index=True)

    def take(self, positions: np.ndarray) -> pd.DataFrame:
        rows = np.asarray(positions, dtype=np.int64)
        starts = self._starts()
        frames = []
        for k, part in enumerate(self.parts):
            local = rows[(rows >= starts[k]) & (rows < starts[k + 1])] - starts[k]
            if len(local) or not frames:
                frames.append(part.take(local))
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
