"""Clock columns of the online feature rows: what a reader adds to a row written earlier.

Kept apart from ``online_delta`` (DuckDB, pyarrow) so the serving workers can import it cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

CLOCK_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "user_features": ("days_since_last_event", "days_since_first_event", "account_age_days"),
    "item_features": ("age_days", "days_since_last_event"),
}
"""Per feature view, the columns that are "days from an anchor to as_of" (see the catalogs in
``transforms``): for a key with no new event they grow by exactly the days between snapshots."""
AS_OF_KEY = "__recs_as_of__"
"""The key of the row every write refreshes: its ``feature_timestamp`` is the time the store is
current as of. Its features are zero values (0, "", false: Feast answers no timestamp for an
empty value). A real id of this spelling would be shadowed by it."""
AS_OF_FEATURE = "events_all"  # a column of both views, whose stamp the asset reads


def age_clock_columns(
    view: str, row: Mapping[str, object], row_time: datetime, as_of: datetime
) -> dict[str, object]:
    """``row`` (read from the online store, written at ``row_time``) as of ``as_of``: its clock
    columns grown by the days in between; other values as they are."""
    days = (as_of - row_time).total_seconds() / 86400.0
    out = dict(row)
    for column in CLOCK_COLUMNS.get(view, ()):
        value = out.get(column)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[column] = float(value) + days
    return out
