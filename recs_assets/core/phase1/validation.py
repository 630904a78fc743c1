"""Row-level validation of the Phase 1 tables with Pandera: valid rows pass, bad rows are quarantined.

Pure: ``validate_tables(tables, now)`` returns the valid frames in canonical dtypes, one quarantine
row per rejected input row (nothing is lost) and per-table statistics. Stages, in order; a row that
fails a stage is quarantined with every reason found in that stage and skips later stages:

0. ``type``: each column is coerced to its canonical dtype on its own; a present value that cannot
   be read (``"abc"`` as a rating or timestamp) fails.
1. Pandera, per row (``row_schema``): ``not_null`` (required columns), ``allowed_values``
   (event_type among the source's event types, gender), ``range`` (rating on the source's declared
   scale, default 1-5 in whole steps; age 0-120, price >= 0, quality 0-1),
   ``future_timestamp`` (after ``now``), ``rate_needs_rating`` (a ``rate`` event has a rating).
2. Pandera, among rows that passed (``unique_schema``): ``unique`` (event_id, user_id, item_id)
   and ``duplicate_event`` (same user, item, event_type and timestamp); the first occurrence is
   kept, later ones are quarantined.
3. Pandera, interactions only (``reference_schema``): ``referential_integrity``: the user and the
   item must be among the valid users and items.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from recs_assets.core.phase1.schema import (
    EVENT_TYPES,
    GENDERS,
    TABLE_COLUMNS,
    TS_DTYPE,
    Phase1Tables,
    conform,
)
from recs_assets.core.phase1.source_contract import HOW_TO_DECLARE, SourceContract

QUARANTINE_COLUMNS: tuple[str, ...] = ("table", "row_index", "check", "column", "reason", "raw_row")
# the order in which a row's reasons are listed; the first names the row's ``check``
CHECK_ORDER: tuple[str, ...] = (
    "type",
    "not_null",
    "allowed_values",
    "range",
    "future_timestamp",
    "rate_needs_rating",
    "unique",
    "duplicate_event",
    "referential_integrity",
)
DUPLICATE_EVENT_KEY: list[str] = ["user_id", "item_id", "event_type", "timestamp"]
RANGES: dict[str, dict[str, tuple[float | None, float | None]]] = {
    "interactions": {},  # the rating scale is the source's (``SourceContract``)
    "users": {"age": (0, 120)},
    "items": {"price": (0, None), "quality": (0, 1)},
}


@dataclass(frozen=True)
class TableStats:
    """Validation counts of one table; ``null_share`` is per column of the valid rows."""

    rows_in: int
    valid: int
    rejected: int
    rejected_share: float
    null_share: dict[str, float]


@dataclass(frozen=True)
class ValidationResult:
    """Valid rows of each table (canonical dtypes, fresh 0..n-1 index), the quarantine and stats.

    ``quarantine`` has ``QUARANTINE_COLUMNS``: ``row_index`` is the row's position in its input
    frame, ``check`` its first failed check (``CHECK_ORDER``), ``column`` that check's column,
    ``reason`` all reasons found (``"; "``-joined) and ``raw_row`` the input row as JSON.
    """

    interactions: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    quarantine: pd.DataFrame
    stats: dict[str, TableStats]

    @property
    def tables(self) -> Phase1Tables:
        return Phase1Tables(interactions=self.interactions, users=self.users, items=self.items)


# ---------------------------------------------------------------------------------------------
# coercion


def coerce_column(values: pd.Series, dtype: str) -> tuple[pd.Series, pd.Series]:
    """Coerce one column to a canonical dtype; returns (coerced, failed) where ``failed`` marks
    present values that could not be read (they become null in ``coerced``).

    Strings are stripped and empty strings count as missing. Timestamps accept native datetimes
    (naive ones are taken as UTC) and ISO 8601 strings; numbers must be finite, ``Int64`` whole.
    """
    if dtype == "string":
        return _to_string(values), pd.Series(False, index=values.index)
    present = values.notna()
    if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
        blank = _strip(values.astype("string")).eq("").fillna(False).astype(bool)
        present = present & ~blank
        values = values.mask(blank)
    if dtype in ("float64", "Int64"):
        if pd.api.types.is_bool_dtype(values.dtype):
            numbers = pd.Series(np.nan, index=values.index)
        elif pd.api.types.is_numeric_dtype(values.dtype):
            numbers = values.astype("float64")
        else:
            numbers = pd.to_numeric(values.astype("string").str.strip(), errors="coerce")
            numbers = numbers.astype("float64")
        ok = np.isfinite(numbers.to_numpy(dtype="float64", na_value=np.nan))
        if dtype == "Int64":
            ok &= np.equal(np.mod(numbers.fillna(0.5).to_numpy(), 1.0), 0.0)
        numbers = numbers.where(ok)
        out = numbers.astype("Int64") if dtype == "Int64" else numbers
        return out, present & ~ok
    if dtype == TS_DTYPE:
        out = _to_utc(values)
        return out, present & out.isna()
    raise ValueError(f"no coercion for dtype {dtype!r}")


def _to_string(values: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(values.dtype):
        whole = values.dropna().mod(1).eq(0).all()
        if whole:  # ids read as floats because of nulls: 7.0 -> "7"
            values = values.astype("Int64")
    return _strip(values.astype("string")).replace("", pd.NA)


def _strip(values: pd.Series) -> pd.Series:
    """``str.strip`` of a string Series, computed once per distinct value."""
    codes, uniques = pd.factorize(values)
    if len(uniques) == 0:
        return values
    stripped = pd.Series(uniques, dtype="string").str.strip().array
    out = stripped.take(codes, allow_fill=True)
    return pd.Series(out, index=values.index, dtype="string")


def _to_utc(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype(TS_DTYPE)
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.tz_localize("UTC").astype(TS_DTYPE)
    if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        return pd.Series(pd.NaT, index=values.index, dtype=TS_DTYPE)  # numbers are not timestamps
    if isinstance(values.dtype, pd.StringDtype):
        return pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601").astype(TS_DTYPE)
    obj = values.astype(object)
    is_num = obj.map(lambda v: isinstance(v, int | float | np.number), na_action="ignore")
    obj = obj.mask(is_num.fillna(False).astype(bool))
    parsed = pd.to_datetime(obj, utc=True, errors="coerce", format="ISO8601")
    return parsed.astype(TS_DTYPE)


def coerce_table(frame: pd.DataFrame, table: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Conform ``frame`` to ``table``'s columns and coerce each; returns (coerced, type failures).

    The failures frame has columns ``row``, ``column``, ``value`` (the raw value, as text).
    """
    conformed = conform(frame, table)
    coerced = {}
    failures = []
    for column, (dtype, _) in TABLE_COLUMNS[table].items():
        coerced[column], failed = coerce_column(conformed[column], dtype)
        rows = np.flatnonzero(failed.to_numpy(dtype=bool))
        if rows.size:
            raw = conformed[column].iloc[rows]
            failures.append(
                pd.DataFrame({"row": rows, "column": column, "value": raw.astype(str).to_numpy()})
            )
    out = pd.DataFrame(coerced, index=conformed.index)
    found = (
        pd.concat(failures, ignore_index=True)
        if failures
        else pd.DataFrame({"row": [], "column": [], "value": []})
    )
    return out, found


# ---------------------------------------------------------------------------------------------
# Pandera schemas


def row_schema(
    table: str, now: pd.Timestamp, contract: SourceContract | None = None
) -> pa.DataFrameSchema:
    """Per-row checks of ``table``: dtypes, required, allowed values, ranges (ratings on the
    source's scale), not in the future."""
    now = _utc(now)
    contract = contract or SourceContract()
    allowed = {"event_type": contract.accepted_events, "gender": GENDERS}
    columns = {}
    for column, (dtype, required) in TABLE_COLUMNS[table].items():
        checks: list[pa.Check] = []
        if column in allowed:
            checks.append(pa.Check.isin(list(allowed[column])))
        if column in RANGES[table]:
            lo, hi = RANGES[table][column]
            if hi is None:
                checks.append(pa.Check.greater_than_or_equal_to(lo))
            else:
                checks.append(pa.Check.in_range(lo, hi))
        if table == "interactions" and column == "rating":
            checks.append(_rating_check(contract))
        if dtype == TS_DTYPE:
            checks.append(pa.Check(lambda s: s <= now, name="not_in_future"))
        columns[column] = pa.Column(dtype, checks=checks, nullable=not required)
    frame_checks = []
    if table == "interactions":
        frame_checks.append(
            pa.Check(
                lambda d: d["event_type"].ne("rate").fillna(True) | d["rating"].notna(),
                name="rate_needs_rating",
            )
        )
    return pa.DataFrameSchema(columns, checks=frame_checks, strict=True, name=f"{table}_rows")


def _rating_check(contract: SourceContract) -> pa.Check:
    """Present ratings must lie on the declared scale; with no scale, no rating may be present."""
    scale = contract.rating_scale
    if scale is None:
        return pa.Check(lambda s: pd.Series(False, index=s.index), name="no_ratings")
    return pa.Check(scale.contains, name="rating_scale")


def unique_schema(table: str) -> pa.DataFrameSchema:
    """Uniqueness of ``table``'s id (and, for interactions, of the event); first occurrence kept."""
    key = {"interactions": "event_id", "users": "user_id", "items": "item_id"}[table]
    columns = {key: pa.Column(unique=True, report_duplicates="exclude_first")}
    if table != "interactions":
        return pa.DataFrameSchema(columns, name=f"{table}_unique")
    return pa.DataFrameSchema(
        columns,
        unique=DUPLICATE_EVENT_KEY,
        report_duplicates="exclude_first",
        name="interactions_unique",
    )


def reference_schema(user_ids: pd.Series, item_ids: pd.Series) -> pa.DataFrameSchema:
    """Interactions must point at valid users and items."""
    users = pd.Index(user_ids.dropna().unique())
    items = pd.Index(item_ids.dropna().unique())
    return pa.DataFrameSchema(
        {
            "user_id": pa.Column(checks=pa.Check(lambda s: s.isin(users), name="user_exists")),
            "item_id": pa.Column(checks=pa.Check(lambda s: s.isin(items), name="item_exists")),
        },
        name="interactions_references",
    )


# ---------------------------------------------------------------------------------------------
# validation


def validate_tables(
    tables: Phase1Tables, now: pd.Timestamp, contract: SourceContract | None = None
) -> ValidationResult:
    """Validate all three tables (interactions last: they must reference valid users and items)
    against the Phase 1 schema and the source's ``contract`` (default: ratings 1-5, every event
    type)."""
    now = _utc(now)
    contract = contract or SourceContract()
    findings: list[pd.DataFrame] = []
    valid: dict[str, pd.DataFrame] = {}
    inputs: dict[str, pd.DataFrame] = {}
    for table in ("users", "items", "interactions"):
        frame = tables.table(table).reset_index(drop=True)
        inputs[table] = conform(frame, table)
        coerced, type_failures = coerce_table(frame, table)
        found = [_type_findings(type_failures, table)]
        alive = coerced.drop(index=type_failures["row"].astype(int).unique())
        stage_schemas = [row_schema(table, now, contract), unique_schema(table)]
        if table == "interactions":
            stage_schemas.append(
                reference_schema(valid["users"]["user_id"], valid["items"]["item_id"])
            )
        for schema in stage_schemas:
            stage = _run_schema(schema, alive, table, contract)
            found.append(stage)
            alive = alive.drop(index=stage["row_index"].unique())
        findings.append(pd.concat(found, ignore_index=True))
        valid[table] = alive
    quarantine = _quarantine(pd.concat(findings, ignore_index=True), inputs)
    stats = {t: _stats(inputs[t], valid[t]) for t in TABLE_COLUMNS}
    return ValidationResult(
        interactions=valid["interactions"].reset_index(drop=True),
        users=valid["users"].reset_index(drop=True),
        items=valid["items"].reset_index(drop=True),
        quarantine=quarantine,
        stats=stats,
    )


_FINDING_COLUMNS = ["table", "row_index", "check", "column", "reason"]


def _type_findings(failures: pd.DataFrame, table: str) -> pd.DataFrame:
    dtypes = {c: d for c, (d, _) in TABLE_COLUMNS[table].items()}
    return pd.DataFrame(
        {
            "table": table,
            "row_index": failures["row"].astype("int64"),
            "check": "type",
            "column": failures["column"].astype(str),
            "reason": [
                f"{c}: {v!r} cannot be read as {dtypes[c]}"
                for c, v in zip(failures["column"], failures["value"], strict=True)
            ],
        },
        columns=_FINDING_COLUMNS,
    )


def _run_schema(
    schema: pa.DataFrameSchema, frame: pd.DataFrame, table: str, contract: SourceContract
) -> pd.DataFrame:
    """Findings (``_FINDING_COLUMNS``) of one lazy Pandera validation of ``frame``."""
    empty = pd.DataFrame(columns=_FINDING_COLUMNS).astype({"row_index": "int64"})
    if frame.empty:
        return empty
    try:
        with warnings.catch_warnings():  # pandera's own concat of failure cases warns on pandas 2.3
            warnings.filterwarnings("ignore", category=FutureWarning, module="pandera")
            schema.validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return empty
    unrowed = cases[cases["index"].isna()]
    if not unrowed.empty:  # schema-level failures (a wrong dtype) mean a bug in coerce_table
        raise ValueError(f"{table}: schema-level validation failures:\n{unrowed.to_string()}")
    rows = []
    for case in cases.itertuples(index=False):
        check, column, reason = _describe(
            str(case.check), str(case.column), case.failure_case, contract
        )
        rows.append((table, int(case.index), check, column, reason))
    found = pd.DataFrame(rows, columns=_FINDING_COLUMNS)
    # a frame-wide check reports each involved column; keep one finding per row and check
    return found.drop_duplicates(subset=["row_index", "check", "column"])


def _describe(
    check: str, column: str, value: object, contract: SourceContract
) -> tuple[str, str, str]:
    """Pandera's check name and failure case -> (our check, column, human reason)."""
    if check == "not_nullable":
        return "not_null", column, f"{column}: required value is missing"
    if check.startswith("isin(") and column in ("event_type", "gender"):
        if column == "gender":
            return "allowed_values", column, f"{column}: {value!r} not one of {', '.join(GENDERS)}"
        reason = f"{column}: {value!r} not one of {', '.join(contract.accepted_events)}"
        if value in EVENT_TYPES:  # a Phase 1 event type this source did not declare
            reason += f" (the event types this source declares; {HOW_TO_DECLARE})"
        return "allowed_values", column, reason
    if check.startswith(("in_range(", "greater_than_or_equal_to(")):
        return "range", column, f"{column}: {value!r} outside {check}"
    if check == "rating_scale":
        return (
            "range",
            column,
            f"{column}: {value!r} is not on the declared rating scale {contract.scale_text} "
            f"({HOW_TO_DECLARE})",
        )
    if check == "no_ratings":
        return (
            "range",
            column,
            f"{column}: {value!r} given, but the declared rating scale is "
            f"{contract.scale_text} ({HOW_TO_DECLARE})",
        )
    if check == "not_in_future":
        return "future_timestamp", column, f"{column}: {value} is in the future"
    if check == "rate_needs_rating":
        return "rate_needs_rating", "rating", "rating: a rate event needs a rating"
    if check == "field_uniqueness":
        return "unique", column, f"{column}: duplicate {value!r} (first occurrence kept)"
    if check == "multiple_fields_uniqueness":
        key = ", ".join(DUPLICATE_EVENT_KEY)
        return "duplicate_event", "event", f"duplicate event: same {key} as an earlier row"
    if check in ("user_exists", "item_exists"):
        kind = check.split("_")[0]
        return "referential_integrity", column, f"{column}: {value!r} is not a valid {kind}"
    raise ValueError(f"unexpected Pandera check {check!r} on column {column!r}")


def _quarantine(findings: pd.DataFrame, inputs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per rejected input row: first check by ``CHECK_ORDER``, all reasons joined."""
    if findings.empty:
        return empty_quarantine()
    rank = {c: k for k, c in enumerate(CHECK_ORDER)}
    f = findings.assign(_rank=findings["check"].map(rank))
    f = f.drop_duplicates(subset=["table", "row_index", "reason"])
    f = f.sort_values(["table", "row_index", "_rank", "column"], kind="stable")
    grouped = f.groupby(["table", "row_index"], sort=True)
    out = grouped.agg(
        check=("check", "first"), column=("column", "first"), reason=("reason", "; ".join)
    ).reset_index()
    out["raw_row"] = [
        row_json(inputs[t], int(r)) for t, r in zip(out["table"], out["row_index"], strict=True)
    ]
    out = out[list(QUARANTINE_COLUMNS)]
    return out.astype({c: "string" for c in QUARANTINE_COLUMNS if c != "row_index"}).astype(
        {"row_index": "int64"}
    )


def empty_quarantine() -> pd.DataFrame:
    """A quarantine with no rows, in ``QUARANTINE_COLUMNS`` and their dtypes."""
    return pd.DataFrame({c: pd.Series(dtype="string") for c in QUARANTINE_COLUMNS}).astype(
        {"row_index": "int64"}
    )


def row_json(frame: pd.DataFrame, row: int) -> str:
    values = frame.iloc[row].to_dict()
    return json.dumps({k: None if _is_null(v) else str(v) for k, v in values.items()})


def _is_null(value: object) -> bool:
    return bool(pd.isna(value)) if np.ndim(value) == 0 else False


def _stats(inputs: pd.DataFrame, valid: pd.DataFrame) -> TableStats:
    rows_in, n_valid = len(inputs), len(valid)
    rejected = rows_in - n_valid
    null_share = {c: float(valid[c].isna().mean()) if n_valid else 0.0 for c in valid.columns}
    return TableStats(
        rows_in=rows_in,
        valid=n_valid,
        rejected=rejected,
        rejected_share=rejected / rows_in if rows_in else 0.0,
        null_share=null_share,
    )


def _utc(ts: pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def rejected_share(valid_rows: int, quarantine: pd.DataFrame, table: str) -> float:
    """Share of ``table``'s input rows that were quarantined: rejected / (valid + rejected)."""
    rejected = int((quarantine["table"] == table).sum())
    total = valid_rows + rejected
    return rejected / total if total else 0.0
