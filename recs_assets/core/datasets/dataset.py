"""The training-dataset value and the pure functions that build and audit it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recs_assets.core.evaluation.protocols import Split


@dataclass(frozen=True)
class TrainingDataset:
    """A protocol split plus where its featurized train/test rows were written.

    Attributes:
        name: asset name (``stratified_dataset``...).
        split: the evaluation split (matrices with id maps, train/test frames).
        input_positives: positive (user, item) rows the split was made from.
        train_path, test_path: Parquet files of the featurized rows.
        train_rows, test_rows: row counts.
    """

    name: str
    split: Split
    input_positives: int
    train_path: str
    test_path: str
    train_rows: int
    test_rows: int


def ids_outside_maps(split: Split) -> int:
    """Train/test rows whose user or item id is not in the split's id maps."""
    users, items = set(map(str, split.user_ids)), set(map(str, split.item_ids))
    bad = 0
    for frame in (split.train_frame, split.test_frame):
        bad += int(
            (
                ~frame["user_id"].astype(str).isin(users)
                | ~frame["item_id"].astype(str).isin(items)
            ).sum()
        )
    return bad


def overlapping_pairs(split: Split) -> int:
    """(user, item) pairs present in both train and test."""
    train = split.train.matrix.copy()
    test = split.test.matrix.copy()
    train.data[:] = 1
    test.data[:] = 1
    return int(train.multiply(test).nnz)


def conservation_gap(split: Split, input_positives: int) -> int:
    """train + test rows minus the input's positive rows (0 when nothing was lost or added)."""
    return len(split.train_frame) + len(split.test_frame) - input_positives


def users_below_minimum(split: Split, minimum: int) -> np.ndarray:
    """Ids of warm users (with any train row, or any row at all for non-temporal splits) having
    fewer than ``minimum`` train interactions; P2 cold-start users are exempt by design."""
    counts = np.diff(split.train.matrix.indptr)
    active = counts + np.diff(split.test.matrix.indptr) > 0
    exempt = np.zeros(len(counts), dtype=bool)
    exempt[split.cold_users] = True
    return split.user_ids[active & ~exempt & (counts < minimum)]
