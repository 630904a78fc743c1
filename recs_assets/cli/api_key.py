"""``recs api-key``: make an API key for the recommendation service."""

from __future__ import annotations

import json

import click


@click.command("api-key")
@click.option("--name", required=True, help="Who the key is for (shown in logs and 403s).")
@click.option(
    "--scopes",
    default="read",
    show_default=True,
    help="Comma-separated scopes: read (recommend, score), write (feedback), admin (model_info).",
)
def api_key_command(name: str, scopes: str) -> None:
    """Print a new random key (give it to the client) and its entry for RECS_API_KEYS (only the
    key's SHA-256 digest is stored)."""
    from recs_assets.core.serving.access import KEYS_ENV, new_key

    try:
        key, entry = new_key(name, [s.strip() for s in scopes.split(",") if s.strip()])
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--scopes") from err
    click.echo(f"key (shown once): {key}")
    click.echo(f"entry for {KEYS_ENV} (a JSON list) or the RECS_API_KEYS_FILE:")
    click.echo(json.dumps(entry))
