"""Blocking contract checks on the feature tables, failing rows in metadata: the pandera models
checked by Spark on a cluster, by DuckDB on the table's files in local mode (no JVM to start)."""

from pathlib import Path

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)

from recs_assets.core.features.duck import parquet_files
from recs_assets.core.features.table_contracts import check_contract, check_contract_files
from recs_assets.core.features.tables import FeatureTable
from recs_assets.platform.spark_resource import SparkResource


def contract_check(table: str) -> AssetChecksDefinition:
    """A blocking check that validates ``table``'s Parquet against its pandera contract."""

    @asset_check(
        asset=table,
        name=f"{table}_contract",
        blocking=True,
        description=f"{table} satisfies its pandera.pyspark contract (keys, types, ranges).",
    )
    def _check(
        context: AssetCheckExecutionContext, spark: SparkResource, feature_table: FeatureTable
    ) -> AssetCheckResult:
        if spark.resolved_master().startswith("local"):
            engine = "duckdb"
            # the counts of files checked before are kept beside the table: an incremental
            # build's kept (hard-linked) snapshots and days are not read again
            path = Path(feature_table.path)
            cache = path.with_name(f".{path.name}.contract_counts.json")
            report = check_contract_files(table, parquet_files(path), cache=cache)
        else:
            engine = "spark"
            report = check_contract(table, spark.get_session().read.parquet(feature_table.path))
        sample = pd.DataFrame(report.sample)
        metadata = {
            "failing_rows": MetadataValue.int(report.failing_rows),
            "row_count": MetadataValue.int(feature_table.row_count),
            "pandera_errors": MetadataValue.json(report.errors),
            "failing_sample": MetadataValue.md(
                sample.to_markdown(index=False) if not sample.empty else "(none)"
            ),
            "message": MetadataValue.text(report.message()),
            "engine": MetadataValue.text(engine),
        }
        if not report.passed:
            context.log.error(report.message())
        return AssetCheckResult(
            passed=report.passed,
            severity=AssetCheckSeverity.ERROR,
            description=report.message(),
            metadata=metadata,
        )

    return _check


user_features_contract = contract_check("user_features")
item_features_contract = contract_check("item_features")
context_features_contract = contract_check("context_features")

FEATURE_CHECKS: list[AssetChecksDefinition] = [
    user_features_contract,
    item_features_contract,
    context_features_contract,
]

__all__ = ["FEATURE_CHECKS", "contract_check"]
