"""Asset jobs, selected by group (``recs_assets.groups``), never by lists of keys.

- ``ingest_job``: raw tables (with landed batches), features, monitoring. What a landed batch runs:
  features stay within their freshness goal and drift is measured on the new data.
- ``retrain_job``: datasets, models, evaluation (gates) and serving. What a failing drift check runs.
- ``refresh_job``: raw to serving in one run. What the daily schedule runs when data or code changed,
  and what the landing sensor runs when it is built with ``refresh_job`` (every batch retrains).
"""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from recs_assets import groups

INGEST = AssetSelection.groups(groups.RAW, groups.FEATURES, groups.MONITORING)
RETRAIN = AssetSelection.groups(groups.DATASETS, groups.MODELS, groups.EVALUATION, groups.SERVING)
REFRESH = AssetSelection.groups(
    groups.RAW, groups.FEATURES, groups.DATASETS, groups.MODELS, groups.EVALUATION, groups.SERVING
)

ingest_job = define_asset_job(
    "ingest_job",
    selection=INGEST,
    description="Raw tables with landed batches, features, monitoring.",
)
retrain_job = define_asset_job(
    "retrain_job",
    selection=RETRAIN,
    description="Datasets, models, evaluation gates and the Bento.",
)
refresh_job = define_asset_job(
    "refresh_job", selection=REFRESH, description="Everything from the raw tables to the Bento."
)

JOBS = [ingest_job, retrain_job, refresh_job]
