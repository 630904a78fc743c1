"""``recs partition-range``: the days of ``raw_interactions`` the configured source holds."""

from __future__ import annotations

import click


@click.command("partition-range")
def partition_range_command() -> None:
    """Print FIRST...LAST, the UTC days of the events of $RECS_SOURCE and the landed batches
    (within the daily partitions), as `dagster asset materialize --partition-range` takes it."""
    import os

    from recs_assets.automation.landing_source import LandedPhase1Source
    from recs_assets.core.phase1.daily import day_range, event_days
    from recs_assets.raw.partitions import clip_to_bounds
    from recs_assets.raw.source_resource import SOURCE_ENV

    source = LandedPhase1Source.from_spec(os.environ.get(SOURCE_ENV, "") or "synthetic")
    days = day_range(event_days(source.event_rows().column("timestamp")))  # the one column
    clipped = clip_to_bounds(*days) if days else None
    if clipped is None:
        raise click.ClickException(
            "the source has no event within the daily partitions (see RECS_PARTITIONS_START)"
        )
    click.echo(f"{clipped[0]}...{clipped[1]}")
