"""Shared pieces of the feature assets: the job config and the metadata every feature table carries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow.dataset as ds
from dagster import Config, MetadataValue, TableColumn, TableRecord, TableSchema
from pydantic import Field

from recs_assets.core.features.feature_spec import FeatureSpec
from recs_assets.core.features.tables import FeatureTable


class FeatureJobConfig(Config):
    """How the snapshot feature tables are computed.

    Attributes:
        snapshot_interval_days: days between two ``as_of`` snapshots, counted back from the
            newest event.
        max_snapshots: how many snapshots to write (1 = only the newest); older examples in
            training datasets join the newest snapshot before them.
        max_categories: width of the ``cat_share_<category>`` vector (most common categories).
        session_gap_minutes: inactivity gap that starts a derived session.
    """

    snapshot_interval_days: int = Field(default=30, ge=1)
    max_snapshots: int = Field(default=8, ge=1)
    max_categories: int = Field(default=32, ge=1)
    session_gap_minutes: int = Field(default=30, ge=1)


def catalog_table(specs: Sequence[FeatureSpec]) -> tuple[TableSchema, list[TableRecord]]:
    """The catalog as a Dagster table (schema + records) for asset metadata."""
    schema = TableSchema(
        columns=[
            TableColumn("name", "string"),
            TableColumn("type", "string"),
            TableColumn("entity", "string"),
            TableColumn("owner", "string"),
            TableColumn("definition", "string"),
        ]
    )
    records = [
        TableRecord(
            {
                "name": s.name,
                "type": s.dtype,
                "entity": s.entity,
                "owner": s.owner,
                "definition": s.definition,
            }
        )
        for s in specs
    ]
    return schema, records


def feature_metadata(
    table: FeatureTable, catalog: Sequence[FeatureSpec], preview: pd.DataFrame
) -> dict[str, Any]:
    """Row count and column schema (the UI's Columns tab), path, snapshots, the feature catalog
    as a table, and a markdown preview."""
    schema, records = catalog_table(catalog)
    written = ds.dataset(table.path, format="parquet").schema
    return {
        "dagster/row_count": table.row_count,
        "dagster/column_schema": TableSchema(
            columns=[TableColumn(f.name, str(f.type)) for f in written]
        ),
        "row_count": MetadataValue.int(table.row_count),
        "path": MetadataValue.path(table.path),
        "n_columns": MetadataValue.int(len(table.columns)),
        "snapshots": MetadataValue.json([t.isoformat() for t in table.snapshots]),
        "feature_catalog": MetadataValue.table(records=records, schema=schema),
        "preview": MetadataValue.md(preview.head(5).to_markdown(index=False)),
    }
