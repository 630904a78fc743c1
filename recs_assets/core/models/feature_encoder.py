"""The encoding of feature-table rows into LightFM side features, fitted once and replayable.

``feature_side.entity_features`` fits a ``FeatureEncoder`` on one snapshot's rows (the split's
ids) and encodes those rows with it; serving encodes a user's online feature row (Feast) with the
same encoder, saved as JSON beside the model, so a user the model never saw gets exactly the row
training would have given them. The encoding (see ``feature_side``'s module docstring):

- ``bins`` columns: a value ``x`` falls in bin ``searchsorted(edges, x, side="right")``; each bin
  maps to a feature, or to none when the bin was dropped (too rare, or on every row);
- ``values`` columns: each value (each ``|``-separated value for multi-valued columns) maps to a
  feature through the vocabulary; values outside it activate nothing;
- missing values activate nothing; each row is L1-normalized (an empty row stays empty).

Pure numpy/pandas/scipy: the service imports it without Dagster or Spark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recs_assets.core.phase1.schema import CATEGORY_SEP

ENCODER_FORMAT = 1
# Columns whose values are ``|``-joined lists (one feature per listed value).
MULTI_VALUED: frozenset[str] = frozenset({"categories"})

Rows = pd.DataFrame | Sequence[Mapping[str, object]]


def _missing(v: object) -> bool:
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))  # type: ignore[call-overload]


def tokens(values: Sequence[object] | pd.Series, multi_valued: bool) -> list[list[str]]:
    """Per row, the values that become ``column=value`` features (none for a missing value)."""
    out: list[list[str]] = []
    for v in values:
        if _missing(v):
            out.append([])
        elif multi_valued:
            out.append(sorted({t for t in str(v).split(CATEGORY_SEP) if t}))
        else:
            out.append([str(v)])
    return out


def numbers(values: Sequence[object] | pd.Series) -> np.ndarray:
    """float64 per row; NaN for missing or non-numeric values."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


@dataclass(frozen=True)
class ColumnEncoding:
    """How one feature-table column becomes features.

    Attributes:
        column: the column name.
        kind: ``bins`` (numeric, quantile bins) or ``values`` (one feature per value).
        edges: bin edges (``bins``); value ``x`` is in bin ``searchsorted(edges, x, "right")``.
        bin_features: per bin (``len(edges) + 1`` of them), its feature index, -1 when dropped.
        vocabulary: value -> feature index (``values``).
        multi_valued: values are ``|``-joined lists (``values``).
    """

    column: str
    kind: Literal["bins", "values"]
    edges: tuple[float, ...] = ()
    bin_features: tuple[int, ...] = ()
    vocabulary: Mapping[str, int] = field(default_factory=dict)
    multi_valued: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("bins", "values"):
            raise ValueError(f"column {self.column!r}: unknown encoding kind {self.kind!r}")
        if self.kind == "bins" and len(self.bin_features) != len(self.edges) + 1:
            raise ValueError(
                f"column {self.column!r}: {len(self.edges)} edges need "
                f"{len(self.edges) + 1} bin features, got {len(self.bin_features)}"
            )

    def feature_indices(self) -> list[int]:
        """The feature indices this column can activate."""
        if self.kind == "bins":
            return [f for f in self.bin_features if f >= 0]
        return list(self.vocabulary.values())

    def active(self, values: Sequence[object] | pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """(row positions, feature indices) of the features ``values`` (one per row) activate."""
        if self.kind == "bins":
            x = numbers(values)
            known = np.isfinite(x)
            bins = np.searchsorted(np.asarray(self.edges), np.where(known, x, 0.0), side="right")
            feats = np.where(known, np.asarray(self.bin_features, dtype=np.int64)[bins], -1)
            rows = np.flatnonzero(feats >= 0)
            return rows, feats[rows]
        r: list[int] = []
        c: list[int] = []
        for pos, toks in enumerate(tokens(values, self.multi_valued)):
            for t in toks:
                f = self.vocabulary.get(t)
                if f is not None:
                    r.append(pos)
                    c.append(f)
        return np.asarray(r, dtype=np.int64), np.asarray(c, dtype=np.int64)

    def to_json(self) -> dict[str, Any]:
        if self.kind == "bins":
            return {
                "column": self.column,
                "kind": "bins",
                "edges": list(self.edges),
                "bin_features": list(self.bin_features),
            }
        return {
            "column": self.column,
            "kind": "values",
            "vocabulary": dict(self.vocabulary),
            "multi_valued": self.multi_valued,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ColumnEncoding:
        return cls(
            column=str(data["column"]),
            kind=data["kind"],
            edges=tuple(float(e) for e in data.get("edges", ())),
            bin_features=tuple(int(f) for f in data.get("bin_features", ())),
            vocabulary={str(k): int(v) for k, v in dict(data.get("vocabulary", {})).items()},
            multi_valued=bool(data.get("multi_valued", False)),
        )


@dataclass(frozen=True)
class FeatureEncoder:
    """Feature-table rows -> L1-normalized side-feature rows, as fitted on a training snapshot.

    Attributes:
        entity: ``user`` or ``item``.
        names: feature names, one per output column (``column=value``, ``column[low,high)``).
        columns: the encoding of each column that produces features, in output order.
    """

    entity: str
    names: tuple[str, ...]
    columns: tuple[ColumnEncoding, ...]

    def __post_init__(self) -> None:
        used = sorted(f for c in self.columns for f in c.feature_indices())
        if used != list(range(len(self.names))):
            last = len(self.names) - 1
            raise ValueError(
                f"{self.entity} encoder: the columns' feature indices must be 0..{last} "
                "exactly once each"
            )

    @property
    def n_features(self) -> int:
        return len(self.names)

    @property
    def column_names(self) -> tuple[str, ...]:
        """The feature-table columns the encoder reads."""
        return tuple(c.column for c in self.columns)

    def encode(self, rows: Rows) -> sp.csr_matrix:
        """(len(rows), n_features) CSR float32 of ``rows`` (a frame or a list of dicts; absent
        columns count as missing), each row L1-normalized."""
        if isinstance(rows, pd.DataFrame):
            n = len(rows)

            def column(name: str) -> Sequence[object] | pd.Series:
                return rows[name] if name in rows.columns else [None] * n
        else:
            n = len(rows)

            def column(name: str) -> Sequence[object] | pd.Series:
                return [r.get(name) for r in rows]

        r_parts: list[np.ndarray] = []
        c_parts: list[np.ndarray] = []
        for enc in self.columns:
            r, c = enc.active(column(enc.column))
            r_parts.append(r)
            c_parts.append(c)
        r_all = np.concatenate(r_parts) if r_parts else np.empty(0, dtype=np.int64)
        c_all = np.concatenate(c_parts) if c_parts else np.empty(0, dtype=np.int64)
        m = sp.csr_matrix(
            (np.ones(len(r_all), dtype=np.float32), (r_all, c_all)), shape=(n, self.n_features)
        )
        return l1_normalized(m)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (``from_json`` reads it back exactly; edges are exact floats)."""
        return {
            "format": ENCODER_FORMAT,
            "entity": self.entity,
            "names": list(self.names),
            "columns": [c.to_json() for c in self.columns],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureEncoder:
        if data.get("format") != ENCODER_FORMAT:
            raise ValueError(
                f"feature encoder format {data.get('format')!r}; this code reads {ENCODER_FORMAT}"
            )
        return cls(
            entity=str(data["entity"]),
            names=tuple(str(n) for n in data["names"]),
            columns=tuple(ColumnEncoding.from_json(c) for c in data["columns"]),
        )


def l1_normalized(m: sp.csr_matrix) -> sp.csr_matrix:
    """``m`` with each row divided by its sum (empty rows stay empty), CSR float32."""
    sums = np.asarray(m.sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    return sp.csr_matrix(sp.diags((1.0 / sums).astype(np.float32)) @ m, dtype=np.float32)


def fit_column(
    column: str,
    values: pd.Series,
    n_bins: int,
    min_support: int,
    first_feature: int,
) -> tuple[ColumnEncoding, list[str]] | None:
    """The encoding of one column fitted on ``values`` (the training rows), with the names of
    its features numbered from ``first_feature``; None when it yields no feature.

    Numeric columns (not multi-valued, not bool): ``n_bins`` quantile bins of the known values
    (tied edges merge; an edge at the minimum is dropped); other columns: one feature per value.
    A bin or value is kept when ``min_support <= rows with it < len(values)``.
    """
    n = len(values)
    numeric = (
        pd.api.types.is_numeric_dtype(values)
        and not pd.api.types.is_bool_dtype(values)
        and column not in MULTI_VALUED
    )
    if numeric:
        x = numbers(values)
        known = np.isfinite(x)
        if len(np.unique(x[known])) < 2:
            return None
        qs = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
        edges = np.unique(np.quantile(x[known], qs))
        edges = edges[edges > x[known].min()]  # an edge at the minimum would leave bin 0 empty
        if len(edges) == 0:
            return None
        bins = np.searchsorted(edges, x[known], side="right")
        support = np.bincount(bins, minlength=len(edges) + 1)
        bounds = [-np.inf, *edges.tolist(), np.inf]
        bin_features: list[int] = []
        names: list[str] = []
        for b, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            if min_support <= support[b] < n:
                bin_features.append(first_feature + len(names))
                names.append(f"{column}[{lo:g},{hi:g})")
            else:
                bin_features.append(-1)
        if not names:
            return None
        enc = ColumnEncoding(column, "bins", tuple(edges.tolist()), tuple(bin_features))
        return enc, names
    multi = column in MULTI_VALUED
    counts: dict[str, int] = {}
    for toks in tokens(values, multi):
        for t in toks:
            counts[t] = counts.get(t, 0) + 1
    kept = [v for v in sorted(counts) if min_support <= counts[v] < n]
    if not kept:
        return None
    vocabulary = {v: first_feature + j for j, v in enumerate(kept)}
    return ColumnEncoding(column, "values", vocabulary=vocabulary, multi_valued=multi), [
        f"{column}={v}" for v in kept
    ]


def fit_encoder(
    frame: pd.DataFrame,
    entity: str,
    columns: Sequence[str],
    *,
    n_bins: int = 5,
    min_support: int = 2,
) -> FeatureEncoder:
    """A ``FeatureEncoder`` fitted on the rows of ``frame`` (one per training id, missing ids as
    all-missing rows) over ``columns``, in that order (``fit_column`` for each)."""
    encodings: list[ColumnEncoding] = []
    names: list[str] = []
    for column in columns:
        fitted = fit_column(column, frame[column], n_bins, min_support, len(names))
        if fitted is None:
            continue
        enc, col_names = fitted
        encodings.append(enc)
        names.extend(col_names)
    return FeatureEncoder(entity, tuple(names), tuple(encodings))
