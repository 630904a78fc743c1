"""Point-in-time join: each example gets the newest feature row from strictly before its own time.

Pure pandas. A feature row stamped ``t`` summarises events with timestamp <= ``t``; an example at
time ``T`` may only see rows with ``t < T`` (strictly: the row stamped at ``T`` could already
contain the example's own event), so no example sees data from its own moment or later.
"""

from __future__ import annotations

import pandas as pd

ROW_ID = "__row"


def point_in_time_join(
    examples: pd.DataFrame,
    features: pd.DataFrame,
    *,
    key: str,
    prefix: str,
    example_time: str = "timestamp",
    feature_time: str = "feature_timestamp",
) -> pd.DataFrame:
    """Left-join ``features`` onto ``examples`` as of each example's time.

    Args:
        examples: rows with ``key`` and ``example_time`` (any other columns are kept).
        features: snapshot rows with ``key`` and ``feature_time``.
        key: entity column shared by both (``user_id``, ``item_id``).
        prefix: prepended to every joined feature column (``"user__"``), avoiding name clashes.
        example_time, feature_time: the timestamp columns (timezone-aware, same unit or not).

    Returns:
        ``examples`` in its own order and index with the feature columns added (null where no
        feature row precedes the example), plus ``<prefix>feature_timestamp``.
    """
    for frame, cols, what in (
        (examples, [key, example_time], "examples"),
        (features, [key, feature_time], "features"),
    ):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"{what} lack column(s) {missing}")
    if features[feature_time].isna().any():
        raise ValueError(
            f"features hold {int(features[feature_time].isna().sum())} null {feature_time}"
        )
    left = examples.copy()
    left[ROW_ID] = range(len(left))
    left["__t"] = pd.to_datetime(left[example_time], utc=True).astype("datetime64[ns, UTC]")
    left["__k"] = left[key].astype(str)
    right = features.rename(columns={c: f"{prefix}{c}" for c in features.columns if c != key})
    right["__t"] = pd.to_datetime(features[feature_time], utc=True).astype("datetime64[ns, UTC]")
    right["__k"] = features[key].astype(str)
    right = right.drop(columns=[key]).sort_values("__t", kind="stable")
    joined = pd.merge_asof(
        left.sort_values("__t", kind="stable"),
        right,
        on="__t",
        by="__k",
        direction="backward",
        allow_exact_matches=False,
    )
    joined = joined.sort_values(ROW_ID).drop(columns=[ROW_ID, "__t", "__k"])
    joined.index = examples.index
    return joined
