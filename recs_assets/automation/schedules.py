"""The daily retrain schedule: runs when Dagster reports assets of its job stale, or the source's
files changed, since its last successful run.

- Code and upstream data: Dagster's own staleness (``stale_assets``): every asset carries a code
  version computed from its source (``platform/code_versions.py``), so an asset whose code
  changed, or whose upstream data was rematerialized since, shows as stale in the UI and here.
  Batches that land are materialized by the landing sensor's runs, which leave the assets fresh.
- What Dagster's code versions do not cover, fingerprinted and compared with the tags of the
  last scheduled run: the source's files (a ``files:`` or ``movielens:`` folder: size and mtime)
  and the serving environment (``bento/`` and ``pyproject.toml``: the service and the pinned
  packages that the code versions of ``recs_assets`` modules do not hash).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from dagster import (
    DagsterRunStatus,
    DefaultScheduleStatus,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from dagster._time import get_current_datetime

from recs_assets.core.automation_decisions import decide_daily_retrain, fingerprint
from recs_assets.core.paths import REPO_ROOT
from recs_assets.raw.partitions import materialized_range, range_tags
from recs_assets.raw.source_resource import SOURCE_ENV

DATA_TAG = "recs/data_fingerprint"
ENV_TAG = "recs/serving_env_fingerprint"
SCHEDULE_TAG = "dagster/schedule_name"


def data_fingerprint(source_spec: str) -> str:
    """Fingerprint of the source spec and its folder's files (size, mtime)."""
    parts = {"source": source_spec}
    _, _, folder = source_spec.partition(":")
    if folder and Path(folder).is_dir():
        for p in sorted(Path(folder).iterdir()):
            if p.is_file():
                st = p.stat()
                parts[f"source/{p.name}"] = f"{st.st_size}:{st.st_mtime}"
    return fingerprint(parts)


def serving_env_fingerprint(root: Path = REPO_ROOT) -> str:
    """SHA-256 over the paths and contents of ``bento/`` and ``pyproject.toml``."""
    digest = hashlib.sha256()
    for f in sorted([*root.glob("bento/**/*"), root / "pyproject.toml"]):
        if f.is_file() and "__pycache__" not in f.parts:
            digest.update(str(f.relative_to(root)).encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()


def stale_assets(context: ScheduleEvaluationContext, job_name: str) -> dict[str, str]:
    """The unpartitioned assets of ``job_name`` that Dagster reports stale or missing, with
    why (the first root cause: e.g. ``ease_model has a new code version``). Partitioned assets
    (the daily raw tables) are left out: their days come from the source and the landing
    sensor."""
    repo = context.repository_def
    if repo is None:
        raise ValueError("the daily schedule needs its repository to ask Dagster for staleness")
    graph = repo.asset_graph
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=context.instance,
        asset_graph=graph,
    )
    resolver = CachingStaleStatusResolver(context.instance, graph, view)
    out: dict[str, str] = {}
    for key in sorted(repo.get_job(job_name).asset_layer.selected_asset_keys):
        if graph.get(key).is_partitioned:
            continue
        status = resolver.get_status(key)
        if status == StaleStatus.MISSING:
            out[key.to_user_string()] = "never materialized"
        elif status == StaleStatus.STALE:
            causes = resolver.get_stale_root_causes(key)
            out[key.to_user_string()] = (
                f"{causes[0].key.asset_key.to_user_string()} {causes[0].reason}"
                if causes
                else "stale"
            )
    return out


def build_daily_retrain_schedule(
    job: UnresolvedAssetJobDefinition,
    cron: str = "0 3 * * *",
    name: str = "daily_retrain",
    env_root: str = "",
):
    """A schedule that runs ``job`` at ``cron`` (UTC) when Dagster reports assets of the job
    stale or the source's files changed (the module docstring), over the days of
    ``raw_interactions`` materialized so far (landed days come in by the landing sensor)."""

    @schedule(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description="Daily offline retraining; skips when no asset of the job is stale in Dagster "
        "and the source's files are unchanged.",
    )
    def _daily(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        data_fp = data_fingerprint(os.environ.get(SOURCE_ENV, "") or "synthetic")
        env_fp = serving_env_fingerprint(Path(env_root) if env_root else REPO_ROOT)
        last = context.instance.get_runs(
            filters=RunsFilter(tags={SCHEDULE_TAG: name}, statuses=[DagsterRunStatus.SUCCESS]),
            limit=1,
        )
        tags = last[0].tags if last else {}
        decision = decide_daily_retrain(
            data_fp,
            tags.get(DATA_TAG),
            stale_assets(context, job.name),
            env_fp,
            tags.get(ENV_TAG),
        )
        if not decision.run:
            return SkipReason(decision.reason)
        days = materialized_range(context.instance)
        if days is None:
            return SkipReason("raw_interactions has no day yet: backfill its days first")
        return RunRequest(
            tags={
                DATA_TAG: data_fp,
                ENV_TAG: env_fp,
                "recs/trigger": "daily",
                "recs/reason": decision.reason[:1000],
                **range_tags(*days),
            }
        )

    return _daily
