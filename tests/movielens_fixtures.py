"""ML-100K with 50 bad rating rows injected: the fixture both validation paths are held to."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np


def inject_bad_ratings(src: Path, dst: Path) -> dict[int, tuple[str, str]]:
    """Copy ML-100K and insert 50 bad u.data rows; returns their final row -> (check, column)."""
    for name in ("u.data", "u.item", "u.user", "u.genre"):
        shutil.copy(src / name, dst / name)
    good = (src / "u.data").read_text().splitlines()
    # every injected line differs (k in the timestamp) so none is a duplicate of another
    kinds = (
        [("196\t242\tabc\t{ts}", "type", "rating")] * 6
        + [("196\t242\t3\tyesterday", "type", "timestamp")] * 4
        + [("196\t242\t7\t{ts}", "range", "rating")] * 5
        + [("196\t242\t0\t{ts}", "range", "rating")] * 3
        + [("9999\t242\t3\t{ts}", "referential_integrity", "user_id")] * 6
        + [("196\t99999\t3\t{ts}", "referential_integrity", "item_id")] * 4
        + [("196\t242\t3\t41024448{k:02d}", "future_timestamp", "timestamp")] * 5
        + [("196\t\t3\t{ts}", "not_null", "item_id")] * 5
        + [("\t242\t3\t{ts}", "not_null", "user_id")] * 2
        + [(None, "duplicate_event", "event")] * 10  # a copy of the line just before
    )
    bad_kinds = [
        (None if line is None else line.format(ts=881250000 + k, k=k), check, column)
        for k, (line, check, column) in enumerate(kinds)
    ]
    assert len(bad_kinds) == 50 and len({k for _, k, _ in bad_kinds}) >= 6
    rng = np.random.default_rng(5)
    slots = np.sort(rng.choice(np.arange(1, len(good) + 1), size=50, replace=False))
    order = rng.permutation(50)
    lines: list[str] = []
    expected: dict[int, tuple[str, str]] = {}
    previous = 0
    for slot, k in zip(slots, order, strict=True):
        lines.extend(good[previous:slot])
        previous = slot
        line, check, column = bad_kinds[k]
        expected[len(lines)] = (check, column)
        lines.append(good[slot - 1] if line is None else line)
    lines.extend(good[previous:])
    (dst / "u.data").write_text("\n".join(lines) + "\n")
    return expected
