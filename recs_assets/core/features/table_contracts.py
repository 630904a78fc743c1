"""Data contracts for the feature tables: ``pandera.pyspark`` models, and a report of violations.

pandera on Spark does not raise: it records problems in ``df.pandera.errors``. ``check_contract``
lets pandera check the schema (columns present, their types, on no rows), and checks the
model's column rules (nullability, ranges, allowed values) itself, in one Spark pass: pandera's
own validation runs one Spark job per rule. On ML-100K's feature tables (warm session, idle
machine) a check took 3.9 / 2.4 / 1.6 s (user / item / context) with pandera at full depth,
2.0 / 1.5 / 1.1 s with pandera's schema level on the rows plus the single pass, and 1.3 / 0.9 /
0.8 s with it on no rows (this). ``tests/features`` shows both ways flag the
same columns. The pass also counts the failing rows and samples a few.
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any

import pyspark.sql.types as T
from pandera.config import ValidationDepth, config_context
from pandera.pyspark import DataFrameModel, Field
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from recs_assets.core.phase1.schema import EVENT_TYPES

_SHARE = {"min_value": 0.0, "max_value": 1.0}


class UserFeaturesModel(DataFrameModel):
    """Contract of ``user_features`` (fixed columns; category shares are a family checked by type)."""

    user_id: T.StringType() = Field(nullable=False)
    feature_timestamp: T.TimestampType() = Field(nullable=False)
    events_7d: T.LongType() = Field(ge=0)
    events_30d: T.LongType() = Field(ge=0)
    events_all: T.LongType() = Field(ge=0)
    distinct_items: T.LongType() = Field(ge=0)
    days_since_last_event: T.DoubleType() = Field(ge=0.0, nullable=True)
    days_since_first_event: T.DoubleType() = Field(ge=0.0, nullable=True)
    rating_count: T.LongType() = Field(ge=0)
    rating_mean: T.DoubleType() = Field(nullable=True)
    rating_var: T.DoubleType() = Field(ge=0.0, nullable=True)
    session_count: T.LongType() = Field(ge=0)
    events_per_session: T.DoubleType() = Field(ge=1.0, nullable=True)
    session_length_s: T.DoubleType() = Field(ge=0.0, nullable=True)
    weekend_share: T.DoubleType() = Field(in_range=_SHARE)
    hour_entropy: T.DoubleType() = Field(in_range={"min_value": 0.0, "max_value": 4.585})
    dow_entropy: T.DoubleType() = Field(in_range={"min_value": 0.0, "max_value": 2.808})
    active_days: T.LongType() = Field(ge=0)
    age: T.LongType() = Field(in_range={"min_value": 0, "max_value": 130}, nullable=True)

    class Config:
        name = "user_features"
        strict = False


class ItemFeaturesModel(DataFrameModel):
    """Contract of ``item_features``."""

    item_id: T.StringType() = Field(nullable=False)
    feature_timestamp: T.TimestampType() = Field(nullable=False)
    events_7d: T.LongType() = Field(ge=0)
    events_30d: T.LongType() = Field(ge=0)
    events_all: T.LongType() = Field(ge=0)
    distinct_users_all: T.LongType() = Field(ge=0)
    distinct_users_30d: T.LongType() = Field(ge=0)
    decayed_events: T.DoubleType() = Field(ge=0.0)
    trending_score: T.DoubleType() = Field(ge=0.0)
    rating_count: T.LongType() = Field(ge=0)
    rating_mean: T.DoubleType() = Field(nullable=True)
    bayes_rating: T.DoubleType() = Field(nullable=True)
    category_count: T.IntegerType() = Field(ge=0)
    age_days: T.DoubleType() = Field(nullable=True)
    weekend_share: T.DoubleType() = Field(in_range=_SHARE)
    dow_concentration: T.DoubleType() = Field(
        in_range={"min_value": 1.0, "max_value": 7.0}, nullable=True
    )

    class Config:
        name = "item_features"
        strict = False


class ContextFeaturesModel(DataFrameModel):
    """Contract of ``context_features``."""

    event_id: T.StringType() = Field(nullable=False)
    user_id: T.StringType() = Field(nullable=False)
    item_id: T.StringType() = Field(nullable=False)
    timestamp: T.TimestampType() = Field(nullable=False)
    hour_of_day: T.IntegerType() = Field(in_range={"min_value": 0, "max_value": 23})
    day_of_week: T.IntegerType() = Field(in_range={"min_value": 1, "max_value": 7})
    is_weekend: T.BooleanType() = Field()
    device: T.StringType() = Field(nullable=False)
    platform: T.StringType() = Field(nullable=False)
    session_key: T.StringType() = Field(nullable=False)
    position_in_session: T.IntegerType() = Field(ge=1)
    seconds_since_session_start: T.DoubleType() = Field(ge=0.0)
    seconds_since_prev_event: T.DoubleType() = Field(ge=0.0, nullable=True)

    class Config:
        name = "context_features"
        strict = False


CONTRACTS: dict[str, type[DataFrameModel]] = {
    "user_features": UserFeaturesModel,
    "item_features": ItemFeaturesModel,
    "context_features": ContextFeaturesModel,
}

# event-type counts are a family of columns: every one of them must be a non-negative count.
COUNT_FAMILIES: dict[str, tuple[str, ...]] = {
    "user_features": tuple(f"{t}_count_{w}" for t in EVENT_TYPES for w in ("7d", "30d", "all")),
    "item_features": tuple(f"{t}_count_all" for t in EVENT_TYPES),
    "context_features": (),
}


@dataclass(frozen=True)
class ContractReport:
    """What a contract check found.

    Attributes:
        table: feature table name.
        errors: pandera's findings, flattened: one dict per (kind, column, check, error).
        failing_rows: rows breaking at least one column rule (null key, value out of range).
        sample: up to ``sample_size`` failing rows as dicts.
    """

    table: str
    errors: list[dict[str, str]]
    failing_rows: int
    sample: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.errors and self.failing_rows == 0

    def message(self) -> str:
        if self.passed:
            return f"{self.table}: contract satisfied"
        findings = "; ".join(f"{e['column']}: {e['check']}" for e in self.errors)
        return (
            f"{self.table}: {self.failing_rows} failing row(s); {findings}; "
            f"sample: {self.sample[:3]}"
        )


# a bound check of pandera -> (the comparison a value breaking it satisfies, its statistic)
_BOUNDS: dict[str, tuple[str, str]] = {
    "greater_than_or_equal_to": ("<", "min_value"),
    "greater_than": ("<=", "min_value"),
    "less_than_or_equal_to": (">", "max_value"),
    "less_than": (">=", "max_value"),
}
_COMPARE = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def breaches(column: str, checks: list[Any]) -> list[tuple[str, Any]]:
    """The comparisons (operator, value) a value breaking the column's pandera checks
    satisfies, operator among ``<``, ``<=``, ``>``, ``>=`` and ``not in``: the rules both the
    Spark pass and the DuckDB pass check. A rule neither pass can check raises (it would pass
    unseen)."""
    out: list[tuple[str, Any]] = []
    for check in checks:
        stats = check.statistics or {}
        if check.name in _BOUNDS:
            op, key = _BOUNDS[check.name]
            out.append((op, stats[key]))
        elif check.name == "in_range":
            out.append(("<" if stats.get("include_min", True) else "<=", stats["min_value"]))
            out.append((">" if stats.get("include_max", True) else ">=", stats["max_value"]))
        elif check.name == "isin":
            out.append(("not in", list(stats["allowed_values"])))
        else:
            raise ValueError(f"column {column!r}: no single-pass check for rule {check.name!r}")
    return out


def _violation(column: str, nullable: bool, checks: list[Any]) -> Column | None:
    """A Spark predicate true on rows that break the column's rules (None if no row rule)."""
    col = F.col(f"`{column}`")
    parts: list[Column] = [] if nullable else [col.isNull()]
    for op, value in breaches(column, checks):
        parts.append(~col.isin(value) if op == "not in" else _COMPARE[op](col, F.lit(value)))
    # comparisons with null are null: coalesce so a null value only fails the nullability rule
    parts = [F.coalesce(p, F.lit(False)) for p in parts]
    return reduce(lambda a, b: a | b, parts) if parts else None


def column_rules(table: str, df: DataFrame) -> dict[str, tuple[Column, str]]:
    """Column -> (predicate true on the rows of ``df`` that break its rules, the rules' names),
    for the columns of ``table``'s contract that ``df`` has."""
    schema = CONTRACTS[table].to_schema()
    out: dict[str, tuple[Column, str]] = {}
    for name, col in schema.columns.items():
        if name in df.columns:
            pred = _violation(name, bool(col.nullable), list(col.checks))
            if pred is not None:
                rules = [] if col.nullable else ["not_nullable"]
                rules += [check.name for check in col.checks]
                out[name] = (pred, ", ".join(rules))
    for c in COUNT_FAMILIES[table]:
        if c in df.columns:
            out[c] = (
                F.coalesce(F.col(c).isNull() | (F.col(c) < 0), F.lit(True)),
                "not_nullable, greater_than_or_equal_to",
            )
    return out


def _flatten(errors: dict[str, Any]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for kind, by_reason in errors.items():
        for reason, items in by_reason.items():
            for item in items:
                out.append(
                    {
                        "kind": f"{kind}/{reason}",
                        "column": str(item.get("column")),
                        "check": str(item.get("check")),
                        "error": str(item.get("error")),
                    }
                )
    return out


def _missing_errors(columns: list[str]) -> list[dict[str, str]]:
    """One schema finding per missing column (what pandera reports)."""
    return [
        {
            "kind": "SCHEMA/COLUMN_NOT_IN_DATAFRAME",
            "column": c,
            "check": "column_in_dataframe",
            "error": f"column '{c}' missing",
        }
        for c in columns
    ]


def _rule_errors(failing: list[int], rules: list[tuple[str, str]]) -> list[dict[str, str]]:
    """One data finding per column with failing rows: (column, rule names) of each rule."""
    return [
        {
            "kind": "DATA/DATAFRAME_CHECK",
            "column": column,
            "check": names,
            "error": f"{n} row(s) break the column's rules ({names})",
        }
        for n, (column, names) in zip(failing, rules, strict=True)
        if n
    ]


def check_contract(table: str, df: DataFrame, sample_size: int = 5) -> ContractReport:
    """Validate ``df`` against ``table``'s contract and count / sample the failing rows."""
    if table not in CONTRACTS:
        raise ValueError(f"no contract for {table!r}; known: {sorted(CONTRACTS)}")
    # pandera checks the columns and their types on the schema alone (no rows: on pyspark even
    # its schema level runs a job per nullable column); nullability is in the pass below
    with config_context(validation_depth=ValidationDepth.SCHEMA_ONLY):
        validated = CONTRACTS[table].validate(df.limit(0))
    errors = _flatten(dict(validated.pandera.errors or {}))
    missing_family = [c for c in COUNT_FAMILIES[table] if c not in df.columns]
    errors += _missing_errors(missing_family)
    rules = column_rules(table, df)
    if not rules:
        return ContractReport(table, errors, 0, [])
    predicate = reduce(lambda a, b: a | b, [pred for pred, _ in rules.values()])
    # one pass: the rows failing each column's rules, and the rows failing any
    counts = df.select(
        F.count(F.when(predicate, 1)).alias("__any"),
        *[F.count(F.when(pred, 1)).alias(f"__{i}") for i, (pred, _) in enumerate(rules.values())],
    ).first()
    assert counts is not None
    failing = [int(counts[f"__{i}"]) for i in range(len(rules))]
    errors += _rule_errors(failing, [(c, names) for c, (_, names) in rules.items()])
    n_bad = int(counts["__any"])
    bad = df.where(predicate)
    sample = [row.asDict() for row in bad.limit(sample_size).collect()] if n_bad else []
    return ContractReport(table, errors, n_bad, sample)


# the Arrow type a Parquet column of each Spark type reads as (either engine writes these)
_ARROW_TYPES: dict[str, tuple[str, ...]] = {
    "StringType()": ("string", "large_string"),
    "LongType()": ("int64",),
    "IntegerType()": ("int32",),
    "DoubleType()": ("double",),
    "BooleanType()": ("bool",),
    "TimestampType()": ("timestamp[us, tz=UTC]", "timestamp[us, tz=Etc/UTC]"),
}


def _sql_value(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(float(value)) if isinstance(value, float) else str(value)


def _sql_violation(column: str, nullable: bool, checks: list[Any]) -> str | None:
    """``_violation`` as a DuckDB SQL predicate (the same rules, the same null handling)."""
    col = '"' + column.replace('"', '""') + '"'
    parts: list[str] = [] if nullable else [f"{col} IS NULL"]
    for op, value in breaches(column, checks):
        if op == "not in":
            parts.append(f"{col} NOT IN ({', '.join(_sql_value(v) for v in value)})")
        else:
            parts.append(f"{col} {op} {_sql_value(value)}")
    parts = [f"coalesce({p}, FALSE)" for p in parts]
    return " OR ".join(f"({p})" for p in parts) if parts else None


def _file_identity(file: str) -> str:
    """A Parquet file as written once: device, inode, size and modification time. Our writers
    never rewrite a file in place (a new build writes new files and hard-links the kept ones,
    which keep all four), so the same identity is the same rows."""
    st = os.stat(file)
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def _read_counts(cache: Path | None, digest: str) -> dict[str, list[int]]:
    """The per-file rule counts cached for the rules of ``digest`` (none for other rules, or a
    cache that cannot be read)."""
    if cache is None or not cache.is_file():
        return {}
    try:
        held = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(held, dict) or held.get("rules") != digest:
        return {}
    files = held.get("files")
    return files if isinstance(files, dict) else {}


def _write_counts(cache: Path, digest: str, counts: dict[str, list[int]]) -> None:
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"rules": digest, "files": counts}))
    tmp.replace(cache)


def check_contract_files(
    table: str, files: list[str], sample_size: int = 5, cache: Path | None = None
) -> ContractReport:
    """``check_contract`` on a table's Parquet files with DuckDB, no Spark: the columns and their
    types from the Parquet schema, then the column rules of the same pandera model in one pass.
    Reports what ``check_contract`` reports on the same rows
    (``tests/features/test_features_transforms.py``).

    With ``cache`` (a JSON file), each file's counts of failing rows are kept there under the
    file's identity (``_file_identity``) and the rules checked: a later check reads only the
    files it has not seen, such as the new snapshot or days of an incremental build (the kept
    ones are hard links of files already checked). A failing row anywhere is sampled from all
    files."""
    import duckdb
    import pyarrow.dataset as ds

    from recs_assets.core.features.duck import files_relation

    if table not in CONTRACTS:
        raise ValueError(f"no contract for {table!r}; known: {sorted(CONTRACTS)}")
    arrow = {f.name: str(f.type) for f in ds.dataset(files, format="parquet").schema}
    schema = CONTRACTS[table].to_schema()
    errors = _missing_errors(
        [c for c in (*schema.columns, *COUNT_FAMILIES[table]) if c not in arrow]
    )
    errors += [
        {
            "kind": "SCHEMA/WRONG_DATATYPE",
            "column": name,
            "check": f"dtype('{column.dtype}')",
            "error": f"expected column '{name}' to have type {column.dtype}, got {arrow[name]}",
        }
        for name, column in schema.columns.items()
        if name in arrow and arrow[name] not in _ARROW_TYPES[str(column.dtype)]
    ]
    rules: dict[str, tuple[str, str]] = {}
    for name, column in schema.columns.items():
        # a column of the wrong type already fails the check; its rules would not bind
        if name in arrow and arrow[name] in _ARROW_TYPES[str(column.dtype)]:
            pred = _sql_violation(name, bool(column.nullable), list(column.checks))
            if pred is not None:
                names = [] if column.nullable else ["not_nullable"]
                names += [check.name for check in column.checks]
                rules[name] = (pred, ", ".join(names))
    for c in COUNT_FAMILIES[table]:
        if c in arrow and arrow[c] not in _ARROW_TYPES["LongType()"]:
            errors.append(
                {
                    "kind": "SCHEMA/WRONG_DATATYPE",
                    "column": c,
                    "check": "dtype('LongType()')",
                    "error": f"expected column '{c}' to have type LongType(), got {arrow[c]}",
                }
            )
        elif c in arrow:
            rules[c] = (
                f'coalesce("{c}" IS NULL OR "{c}" < 0, TRUE)',
                "not_nullable, greater_than_or_equal_to",
            )
    if not rules:
        return ContractReport(table, errors, 0, [])
    predicate = " OR ".join(f"({pred})" for pred, _ in rules.values())
    digest = hashlib.sha256(json.dumps([table, sorted(rules.items())]).encode()).hexdigest()
    known = _read_counts(cache, digest)
    identity = {f: _file_identity(f) for f in files}
    counts = {f: known[identity[f]] for f in files if identity[f] in known}
    todo = [f for f in files if f not in counts]
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        if todo:
            counted = {
                str(row[0]): [int(n) for n in row[1:]]
                for row in con.execute(
                    f"SELECT filename, count(*) FILTER ({predicate}), "
                    + ", ".join(f"count(*) FILTER ({pred})" for pred, _ in rules.values())
                    + f" FROM {files_relation(todo, filename=True)} GROUP BY filename"
                ).fetchall()
            }
            nothing = [0] * (len(rules) + 1)  # a file without rows has no group
            counts |= {f: counted.get(f, nothing) for f in todo}
            if cache is not None:
                _write_counts(cache, digest, {identity[f]: counts[f] for f in files})
        totals = [sum(c[i] for c in counts.values()) for i in range(len(rules) + 1)]
        failing = totals[1:]
        errors += _rule_errors(failing, [(c, names) for c, (_, names) in rules.items()])
        n_bad = totals[0]
        sample = (
            con.execute(
                f"SELECT * FROM {files_relation(files)} WHERE {predicate} LIMIT {int(sample_size)}"
            )
            .df()
            .to_dict("records")
            if n_bad
            else []
        )
    return ContractReport(table, errors, n_bad, sample)


__all__ = [
    "CONTRACTS",
    "ContextFeaturesModel",
    "ContractReport",
    "ItemFeaturesModel",
    "UserFeaturesModel",
    "check_contract",
    "check_contract_files",
    "column_rules",
]
