"""The ``recs`` command line (an entry point, the top floor). Each sub-command is a module of this
package, imported only when it runs, so ``recs --help`` and ``recs --version`` stay fast."""

from __future__ import annotations

import importlib
import os

import click

# name -> ("module:attribute" of the click command, one-line help shown by `recs --help`). The
# module is imported only when its command runs: listing the commands imports none of them.
_COMMANDS: dict[str, tuple[str, str]] = {
    "api-key": (
        "recs_assets.cli.api_key:api_key_command",
        "Make an API key for the recommendation service.",
    ),
    "dagster-home": (
        "recs_assets.cli:dagster_home_command",
        "Write $DAGSTER_HOME/dagster.yaml (SQLite, or PostgreSQL).",
    ),
    "eval": (
        "recs_assets.cli.evaluate:eval_command",
        "Evaluate models on a Phase 1 source under a protocol.",
    ),
    "forget-user": (
        "recs_assets.cli.forget_user:forget_user_command",
        "Remove a user from every store; later retrains leave them out.",
    ),
    "generate": (
        "recs_assets.cli.generate:generate_command",
        "Generate a synthetic Phase 1 data set as files.",
    ),
    "generate-batch": (
        "recs_assets.cli.generate_batch:generate_batch_command",
        "Land a batch of synthetic events after the newest one.",
    ),
    "partition-range": (
        "recs_assets.cli.partition_range:partition_range_command",
        "Print the days of raw_interactions the source holds (FIRST...LAST).",
    ),
    "rollback": (
        "recs_assets.cli.rollback:rollback_command",
        "Move the champion alias back to the previous (or a given) version.",
    ),
    "simulate-ab": (
        "recs_assets.cli.simulate_ab:simulate_ab_command",
        "A/B test two model families with simulated users over HTTP.",
    ),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        module, attr = _COMMANDS[cmd_name][0].split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the table above, without importing any command's module."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, _COMMANDS[name][1]) for name in self.list_commands(ctx)])


@click.group(cls=_LazyGroup)
@click.version_option(package_name="recs", prog_name="recs")
def main() -> None:
    """recs: an asset-oriented recommender platform (Dagster, Spark, Feast, MLflow, BentoML)."""


@click.command("dagster-home")
def dagster_home_command() -> None:
    """Write $DAGSTER_HOME/dagster.yaml (SQLite, or PostgreSQL when RECS_DAGSTER_PG_URL is set)."""
    from recs_assets.cli.dagster_home import PG_ENV, prepare_dagster_home

    home = prepare_dagster_home()
    storage = "postgres" if os.environ.get(PG_ENV) else "sqlite"
    click.echo(f"DAGSTER_HOME={home} ({storage} storage)")


if __name__ == "__main__":
    main()
