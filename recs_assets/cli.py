"""The ``recs`` command line. Sub-commands live beside their domain and are registered here."""

from __future__ import annotations

import importlib
import os

import click

# name -> "module:attribute" of a click command; imported lazily so `recs --help` stays fast.
_COMMANDS: dict[str, str] = {
    "eval": "recs_assets.evaluation.cli:eval_command",
    "generate": "recs_assets.phase1.cli:generate_command",
    "dagster-home": "recs_assets.cli:dagster_home_command",
    "generate-batch": "recs_assets.automation.cli:generate_batch_command",
    "rollback": "recs_assets.automation.rollback:rollback_command",
    "simulate-ab": "recs_assets.serving.simulate:simulate_ab_command",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=_LazyGroup)
def main() -> None:
    """recs: an asset-oriented recommender platform (Dagster, Spark, Feast, MLflow, BentoML)."""


@click.command("dagster-home")
def dagster_home_command() -> None:
    """Write $DAGSTER_HOME/dagster.yaml (SQLite, or PostgreSQL when RECS_DAGSTER_PG_URL is set)."""
    from recs_assets.instance import PG_ENV, prepare_dagster_home

    home = prepare_dagster_home()
    storage = "postgres" if os.environ.get(PG_ENV) else "sqlite"
    click.echo(f"DAGSTER_HOME={home} ({storage} storage)")


if __name__ == "__main__":
    main()
