"""``recs generate``: write a synthetic data set to a folder in the files schema."""

from __future__ import annotations

import time
from pathlib import Path

import click

from recs_assets.core.phase1.files import FORMATS, write_tables
from recs_assets.core.phase1.synthetic import PRESETS, generate_preset


@click.command("generate")
@click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    default="small",
    show_default=True,
    help="Size and shape of the data set (docs/phase1_schema.md).",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the generator.")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for interactions/users/items files (created if missing).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(FORMATS)),
    default="parquet",
    show_default=True,
    help="File format of the tables.",
)
def generate_command(preset: str, seed: int, out: Path, fmt: str) -> None:
    """Generate a synthetic Phase 1 data set (read it back with RECS_SOURCE=files:OUT)."""
    started = time.perf_counter()
    data = generate_preset(preset, seed=seed)
    generated = time.perf_counter() - started
    paths = write_tables(data.tables, out, fmt=fmt)
    t = data.tables
    click.echo(
        f"generated preset {preset} (seed {seed}) in {generated:.1f} s: "
        f"{len(t.interactions):,} interactions, {len(t.users):,} users, {len(t.items):,} items"
    )
    for path in paths:
        click.echo(f"wrote {path}")
