"""Time the synthetic generator (default: the 1m preset) and its validation; prints the numbers.

Usage: ``python bench/phase1.py [--preset 1m] [--validate]``.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from recs_assets.core.phase1.synthetic import PRESETS, generate_preset
from recs_assets.core.phase1.validation import validate_tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", choices=list(PRESETS), default="1m")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--validate", action="store_true", help="also time validate_tables")
    args = parser.parse_args()

    started = time.perf_counter()
    data = generate_preset(args.preset, seed=args.seed)
    seconds = time.perf_counter() - started
    n = len(data.tables.interactions)
    print(
        f"generate preset={args.preset}: {n:,} interactions in {seconds:.2f} s ({n / seconds:,.0f}/s)"
    )
    if args.validate:
        started = time.perf_counter()
        result = validate_tables(data.tables, now=pd.Timestamp.now(tz="UTC"))
        seconds = time.perf_counter() - started
        print(
            f"validate: {len(result.interactions):,} valid, {len(result.quarantine)} quarantined in {seconds:.2f} s"
        )


if __name__ == "__main__":
    main()
