"""The daily retrain schedule: runs when the data or the code changed since its last successful run.

Fingerprints:
- data: the Phase 1 source spec, the size and mtime of every file of a files/movielens source, and
  every landed batch (name and mtime);
- code: the content of every Python file of ``recs_assets``, the ``bento/`` folder and
  ``pyproject.toml``.
The last fingerprints are read from the tags of the schedule's last successful run.
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
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from recs_assets.core.automation_decisions import decide_daily_retrain, fingerprint
from recs_assets.core.paths import REPO_ROOT
from recs_assets.core.phase1.landing import default_landing_dir, landed_files
from recs_assets.raw.partitions import materialized_range, range_tags
from recs_assets.raw.source_resource import SOURCE_ENV

DATA_TAG = "recs/data_fingerprint"
CODE_TAG = "recs/code_fingerprint"
SCHEDULE_TAG = "dagster/schedule_name"


def data_fingerprint(source_spec: str, landing: Path) -> str:
    """Fingerprint of the source spec, the source's files (size, mtime) and the landed batches."""
    parts = {"source": source_spec}
    _, _, folder = source_spec.partition(":")
    if folder and Path(folder).is_dir():
        for p in sorted(Path(folder).iterdir()):
            if p.is_file():
                st = p.stat()
                parts[f"source/{p.name}"] = f"{st.st_size}:{st.st_mtime}"
    for name, mtime in landed_files(landing).items():
        parts[f"landing/{name}"] = str(mtime)
    return fingerprint(parts)


def code_fingerprint(root: Path = REPO_ROOT) -> str:
    """SHA-256 over the paths and contents of the code that shapes a model."""
    files = sorted(
        [*root.glob("recs_assets/**/*.py"), *root.glob("bento/**/*"), root / "pyproject.toml"]
    )
    digest = hashlib.sha256()
    for f in files:
        if f.is_file() and "__pycache__" not in f.parts:
            digest.update(str(f.relative_to(root)).encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()


def build_daily_retrain_schedule(
    job: UnresolvedAssetJobDefinition,
    cron: str = "0 3 * * *",
    name: str = "daily_retrain",
    landing_dir: str = "",
    code_root: str = "",
):
    """A schedule that runs ``job`` at ``cron`` (UTC) unless data and code are unchanged, over
    the days of ``raw_interactions`` materialized so far (landed days come in by the landing
    sensor)."""

    @schedule(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description="Daily offline retraining; skips when data and code are unchanged.",
    )
    def _daily(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        landing = Path(landing_dir) if landing_dir else default_landing_dir()
        data_fp = data_fingerprint(os.environ.get(SOURCE_ENV, "") or "synthetic", landing)
        code_fp = code_fingerprint(Path(code_root) if code_root else REPO_ROOT)
        last = context.instance.get_runs(
            filters=RunsFilter(tags={SCHEDULE_TAG: name}, statuses=[DagsterRunStatus.SUCCESS]),
            limit=1,
        )
        tags = last[0].tags if last else {}
        decision = decide_daily_retrain(data_fp, code_fp, tags.get(DATA_TAG), tags.get(CODE_TAG))
        if not decision.run:
            return SkipReason(decision.reason)
        days = materialized_range(context.instance)
        if days is None:
            return SkipReason("raw_interactions has no day yet: backfill its days first")
        return RunRequest(
            tags={
                DATA_TAG: data_fp,
                CODE_TAG: code_fp,
                "recs/trigger": "daily",
                "recs/reason": decision.reason,
                **range_tags(*days),
            }
        )

    return _daily
