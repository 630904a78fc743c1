"""``recs rollback``: move the MLflow ``champion`` alias back to the previous (or a given) version."""

from __future__ import annotations

import os
from collections.abc import Iterable

import click

from recs_assets.models.mlflow_tracker import CHAMPION, CHAMPION_MODEL, MlflowTracker

MODEL_NAME_ENV = "RECS_MODEL_NAME"


def previous_version(versions: Iterable[int | str], current: int | str) -> str:
    """The highest registered version below ``current`` (versions are MLflow's integers).

    Raises ``ValueError`` when ``current`` is not registered or nothing older exists.
    """
    numbers = sorted({int(v) for v in versions})
    cur = int(current)
    if cur not in numbers:
        raise ValueError(f"current version {cur} is not among the registered versions {numbers}")
    older = [v for v in numbers if v < cur]
    if not older:
        raise ValueError(f"version {cur} is the oldest registered version; nothing to roll back to")
    return str(older[-1])


def rollback(
    tracker: MlflowTracker, model: str, to: str | None = None, alias: str = CHAMPION
) -> tuple[str, str]:
    """Point ``alias`` of ``model`` at ``to`` (default: the version before the current one).

    Returns ``(old_version, new_version)``. Unknown model, alias or version -> ``ValueError``.
    """
    client = tracker.client()
    versions = [mv.version for mv in client.search_model_versions(f"name='{model}'")]
    if not versions:
        raise ValueError(f"no registered model {model!r} (or it has no versions)")
    current = tracker.version_by_alias(model, alias)
    if current is None:
        raise ValueError(f"model {model!r} has no {alias!r} alias to roll back")
    if to is None:
        target = previous_version(versions, current.version)
    else:
        if str(int(to)) not in {str(int(v)) for v in versions}:
            raise ValueError(
                f"model {model!r} has no version {to}; registered: {sorted(map(int, versions))}"
            )
        target = str(int(to))
    tracker.set_alias(model, alias, target)
    return str(current.version), target


@click.command("rollback")
@click.option(
    "--model",
    default=lambda: os.environ.get(MODEL_NAME_ENV, CHAMPION_MODEL),
    help=f"Registered model name (default ${MODEL_NAME_ENV} or {CHAMPION_MODEL}).",
)
@click.option(
    "--to", "to", default=None, help="Version to serve (default: the one before the champion)."
)
@click.option("--alias", default=CHAMPION, show_default=True, help="The alias the service follows.")
@click.option(
    "--tracking-uri",
    default="",
    help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or the local store).",
)
def rollback_command(model: str, to: str | None, alias: str, tracking_uri: str) -> None:
    """Move the champion alias to the previous (or given) model version."""
    if not model:
        raise click.UsageError(f"name the model with --model or ${MODEL_NAME_ENV}")
    try:
        old, new = rollback(MlflowTracker(tracking_uri=tracking_uri), model, to, alias)
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"{model}: {alias} moved from version {old} to version {new}")
