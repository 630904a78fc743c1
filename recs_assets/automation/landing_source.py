"""The Phase 1 source with landed batches appended: a drop-in for the ``phase1`` resource."""

from __future__ import annotations

from pathlib import Path

from recs_assets.core.phase1.event_rows import ConcatRows, EventRows, FrameRows
from recs_assets.core.phase1.forgetting import drop_forgotten, forget_requests, forgotten_mask
from recs_assets.core.phase1.landing import (
    IngestStats,
    default_landing_dir,
    new_events,
    read_batches,
    with_landed,
)
from recs_assets.core.phase1.schema import Phase1Tables
from recs_assets.raw.source_resource import Phase1Source


class LandedPhase1Source(Phase1Source):
    """``Phase1Source`` whose interactions include every batch in the landing folder.

    Attributes:
        landing_dir: folder of landed batches; empty means ``default_landing_dir()``
            (``$RECS_LANDING_DIR`` or ``<data dir>/landing``). A missing folder adds nothing.
    """

    landing_dir: str = ""

    def landing_path(self) -> Path:
        return Path(self.landing_dir) if self.landing_dir else default_landing_dir()

    def load_with_stats(self) -> tuple[Phase1Tables, IngestStats]:
        """The base tables plus landed interactions, and what the landing folder added."""
        # synthetic ids are already pseudonymous; files and movielens ids are hashed like the base
        tables, stats = with_landed(
            super().load(), self.landing_path(), pseudonymize=self.kind != "synthetic"
        )
        # landed batches too: a forgotten user's later events never reach the tables
        return drop_forgotten(tables, forget_requests().digests())[0], stats

    def load(self) -> Phase1Tables:
        """The three tables with landed interactions appended (deduplicated on event_id)."""
        return self.load_with_stats()[0]

    def event_rows(self) -> EventRows:
        """``load()``'s interactions as rows (same positions): the synthetic base's rows, then
        the landed events that are new, without forgotten users' rows; the base is not read
        whole (its event ids are, to deduplicate the batches). Synthetic ids are pseudonymous
        already; a ``files`` or MovieLens source is read whole (``load()``)."""
        if self.kind != "synthetic":  # read whole anyway (small data): the landed frame
            return FrameRows(self.load().interactions)
        base = super().event_rows()
        batches = read_batches(self.landing_path())
        if not batches:
            return base
        new, _ = new_events(base.column("event_id") if len(base) else None, batches)
        new = new[~forgotten_mask(new["user_id"], forget_requests().digests()).to_numpy()]
        return ConcatRows([base, FrameRows(new.reset_index(drop=True))]) if len(new) else base
