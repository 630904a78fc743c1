"""The Phase 1 source with landed batches appended: a drop-in for the ``phase1`` resource."""

from __future__ import annotations

from pathlib import Path

from recs_assets.core.phase1.forgetting import drop_forgotten, forget_requests
from recs_assets.core.phase1.landing import IngestStats, default_landing_dir, with_landed
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
