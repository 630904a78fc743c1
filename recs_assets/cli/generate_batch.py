"""``recs generate-batch``: write a synthetic batch of new events into the landing folder."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pandas as pd

from recs_assets.core.phase1.landing import default_landing_dir, read_batches
from recs_assets.core.phase1.synthetic import generate_batch, preset_ground_truth
from recs_assets.raw.source_resource import SOURCE_ENV, Phase1Source


def batch_file_name(after: pd.Timestamp, seed: int, fmt: str) -> str:
    """``batch-<after, UTC, to the second>-<seed>.<fmt>``: names sort by time."""
    return f"batch-{pd.Timestamp(after).tz_convert('UTC'):%Y%m%dT%H%M%S}-{seed}.{fmt}"


def newest_event(base: pd.DataFrame, batches: list[pd.DataFrame]) -> pd.Timestamp:
    """The newest timestamp over the base interactions and the landed batches."""
    stamps = [pd.to_datetime(base["timestamp"], utc=True).max()]
    stamps += [
        pd.to_datetime(b["timestamp"], utc=True, format="ISO8601").max() for b in batches if len(b)
    ]
    return max(stamps)


def write_batch(frame: pd.DataFrame, folder: Path, name: str) -> Path:
    """Write ``frame`` to ``folder/name`` atomically (hidden temp file, then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.tmp"
    if name.endswith(".parquet"):
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    final = folder / name
    tmp.rename(final)
    return final


@click.command("generate-batch")
@click.option(
    "-n", "--events", "n_events", type=int, default=2_000, show_default=True, help="Events to land."
)
@click.option("--days", type=float, default=1.0, show_default=True, help="Span of the batch.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the batch.")
@click.option(
    "--shift-tastes",
    "shift",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Move user tastes toward other categories (0 none, 1 fully) to simulate drift.",
)
@click.option(
    "--source",
    "spec",
    default=None,
    help=f"Synthetic source spec (default ${SOURCE_ENV} or 'synthetic').",
)
@click.option(
    "--landing",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Landing folder (default $RECS_LANDING_DIR or <data dir>/landing).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "csv"]),
    default="parquet",
    show_default=True,
    help="File format of the landed batch.",
)
def generate_batch_command(
    n_events: int,
    days: float,
    seed: int,
    shift: float,
    spec: str | None,
    landing: Path | None,
    fmt: str,
) -> None:
    """Land a batch of N synthetic events after the newest existing event (base + landed)."""
    source = Phase1Source.from_spec(spec or os.environ.get(SOURCE_ENV) or "synthetic")
    if source.kind != "synthetic":
        raise click.UsageError(
            f"generate-batch needs the synthetic source's hidden ground truth; the source is "
            f"{source.kind!r}. Land files in the files schema instead."
        )
    if n_events < 1:
        raise click.BadParameter(f"need at least 1 event, got {n_events}", param_hint="--events")
    folder = landing or default_landing_dir()
    # the truth alone, and the cached events' timestamps: generating the preset again took 100 s
    # at 10m (and 50m does not fit in memory)
    truth = preset_ground_truth(source.preset, seed=source.seed)
    stamps = pd.DataFrame({"timestamp": source.event_rows().column("timestamp")})
    after = newest_event(stamps, read_batches(folder))
    batch = generate_batch(truth, n_events, after, days=days, seed=seed, taste_shift=shift)
    path = write_batch(batch, folder, batch_file_name(after, seed, fmt))
    click.echo(
        f"landed {len(batch):,} events ({batch['timestamp'].min()} .. {batch['timestamp'].max()}, "
        f"taste shift {shift}) in {path}"
    )
