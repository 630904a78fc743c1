"""Settings every DuckDB connection of recs shares (no engine imported here)."""

from __future__ import annotations

import os


def default_memory_limit() -> str:
    """``$RECS_DUCKDB_MEMORY``, else 25% of the machine's memory (DuckDB spills beyond it)."""
    configured = os.environ.get("RECS_DUCKDB_MEMORY", "").strip()
    if configured:
        return configured
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{max(1, int(total * 0.25 / 2**30))}GB"
