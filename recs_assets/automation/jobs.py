"""Asset jobs, selected by group (``recs_assets.groups``), never by lists of keys.

- ``ingest_job``: raw tables (with landed batches), features, monitoring: features stay within their
  freshness goal and drift is measured on the new data, without retraining.
- ``retrain_job``: datasets, models, evaluation (gates) and serving. What a failing drift check runs.
- ``refresh_job``: raw to serving in one run, with the monitoring assets (drift is measured on
  every landed batch, so a failing drift check is seen). What the landing sensor runs for every
  landed batch (the new data reaches the served model: the service follows the champion alias) and
  what the daily schedule runs when data or code changed.

Every job leaves out the assets fed by live traffic (tag
``recs/input=live_traffic``: served lists, feedback), which fail until the service has answered
requests; materialize them from the UI.
"""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from recs_assets import groups

LIVE_TRAFFIC_TAG = ("recs/input", "live_traffic")
LIVE_TRAFFIC = AssetSelection.tag(*LIVE_TRAFFIC_TAG)
INGEST = AssetSelection.groups(groups.RAW, groups.FEATURES, groups.MONITORING) - LIVE_TRAFFIC
RETRAIN = (
    AssetSelection.groups(groups.DATASETS, groups.MODELS, groups.EVALUATION, groups.SERVING)
    - LIVE_TRAFFIC
)
REFRESH = (
    AssetSelection.groups(
        groups.RAW,
        groups.FEATURES,
        groups.DATASETS,
        groups.MODELS,
        groups.EVALUATION,
        groups.SERVING,
        groups.MONITORING,
    )
    - LIVE_TRAFFIC
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
    "refresh_job",
    selection=REFRESH,
    description="Everything from the raw tables to the Bento, with drift monitoring.",
)

JOBS = [ingest_job, retrain_job, refresh_job]
