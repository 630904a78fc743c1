"""``recs simulate-ab``: an A/B test with simulated users through the live HTTP API."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from recs_assets.core.serving.ab_simulation import SimulationSettings, simulate_ab


@click.command("simulate-ab")
@click.option("--control", default="popularity", show_default=True, help="Control model family.")
@click.option("--treatment", default="ease", show_default=True, help="Treatment model family.")
@click.option("--users", "n_users", default=1000, show_default=True, help="Simulated users.")
@click.option("--k", default=10, show_default=True, help="Items per list.")
@click.option("--preset", default="small", show_default=True, help="Synthetic data set.")
@click.option("--seed", default=7, show_default=True, help="Seed of data, users and clicks.")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write JSON here."
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the model store, logs and config here (default: a temporary folder).",
)
def simulate_ab_command(
    control: str,
    treatment: str,
    n_users: int,
    k: int,
    preset: str,
    seed: int,
    out: Path | None,
    workdir: Path | None,
) -> None:
    """A/B test TREATMENT against CONTROL with simulated users through the live HTTP API."""
    settings = SimulationSettings(
        control=control, treatment=treatment, n_users=n_users, k=k, preset=preset, seed=seed
    )
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        result = simulate_ab(settings, workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="recs-simulate-ab-") as tmp:
            result = simulate_ab(settings, Path(tmp))
    text = json.dumps(result, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    click.echo(text)
    low, high = result["ctr_uplift_ci95"]
    click.echo(
        f"CTR uplift of {treatment} over {control}: {result['ctr_uplift']:+.1%} "
        f"(95% CI {low:+.1%} to {high:+.1%}, p = {result['ctr_p_value']:.2g})",
        err=True,
    )
