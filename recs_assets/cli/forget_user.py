"""``recs forget-user``: remove a user from every store and keep them out of later retrains."""

from __future__ import annotations

import json

import click


@click.command("forget-user")
@click.argument("user_id")
@click.option(
    "--pseudonym",
    is_flag=True,
    help="USER_ID is already the pseudonym the tables hold (u_...), not the raw id.",
)
@click.option("--requested-by", default="cli", show_default=True, help="Who asked (audit log).")
def forget_user_command(user_id: str, pseudonym: bool, requested_by: str) -> None:
    """Delete USER_ID's rows, online features, cached lists and impressions, and log the request
    so every later load drops the user. Reads the same RECS_* variables as the pipeline (data dir,
    Redis, cache prefix) and RECS_PSEUDONYM_KEY to turn a raw id into its pseudonym. A trained
    model keeps the user until the next retrain (docs/security.md)."""
    from recs_assets.core.forget import forget_user, targets_from_env
    from recs_assets.core.phase1.privacy import pseudonym_key, pseudonymize_id

    raw = None if pseudonym else user_id.strip()
    uid = user_id.strip() if pseudonym else pseudonymize_id(user_id.strip(), pseudonym_key())
    try:
        report = forget_user(targets_from_env(), uid, raw_id=raw, requested_by=requested_by)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="USER_ID") from err
    click.echo(json.dumps({"user_id": uid, **report.summary()}, indent=2, sort_keys=True))
