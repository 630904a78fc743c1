"""Test data for the evaluation tests: MovieLens 100K ``u.data`` as a canonical interactions frame.

Built here from the published file (file order kept, ids as published, not pseudonymized) so the
evaluation tests do not depend on the Phase 1 loader; ``recs eval`` itself uses ``Phase1Source``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recs_assets.core.phase1.schema import TS_DTYPE, conform


def ml100k_interactions(folder: Path) -> pd.DataFrame:
    raw = pd.read_csv(folder / "u.data", sep="\t", names=["user", "item", "rating", "unix"])
    frame = pd.DataFrame(
        {
            "event_id": pd.array([f"ml-{i}" for i in range(len(raw))], dtype="string"),
            "user_id": raw["user"].astype(str).astype("string"),
            "item_id": raw["item"].astype(str).astype("string"),
            "event_type": pd.array(["rate"] * len(raw), dtype="string"),
            "timestamp": pd.to_datetime(raw["unix"], unit="s", utc=True).astype(TS_DTYPE),
            "rating": raw["rating"].astype("float64"),
        }
    )
    return conform(frame, "interactions")


def events(rows: list[tuple[str, str, int, str, float | None]]) -> pd.DataFrame:
    """A tiny canonical frame from (user, item, unix seconds, event type, rating) tuples."""
    frame = pd.DataFrame(
        {
            "event_id": pd.array([f"e{i}" for i in range(len(rows))], dtype="string"),
            "user_id": pd.array([r[0] for r in rows], dtype="string"),
            "item_id": pd.array([r[1] for r in rows], dtype="string"),
            "event_type": pd.array([r[3] for r in rows], dtype="string"),
            "timestamp": pd.to_datetime([r[2] for r in rows], unit="s", utc=True).astype(TS_DTYPE),
            "rating": pd.array([r[4] for r in rows], dtype="float64"),
        }
    )
    return conform(frame, "interactions")
