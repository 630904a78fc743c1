"""What one source promises beyond the Phase 1 columns: its rating scale and its event types.

Default: ratings 1 to 5 in whole steps and every event type of ``schema.EVENT_TYPES``. A source
declares another contract in a manifest (``recs_source.yaml`` in a ``files:`` folder) or in the
Dagster source's config; ``docs/phase1_schema.md`` shows both. A rating outside the declared scale
is quarantined with a reason that names the scale and how to declare another.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from recs_assets.core.phase1.schema import EVENT_TYPES

MANIFEST = "recs_source.yaml"
HOW_TO_DECLARE = (
    f"declare the source's contract in {MANIFEST} beside its files (rating_scale: '0.5-5 step 0.5', "
    "'1-10' or 'none'; event_types: [...]) or in the phase1 resource's config; "
    "see docs/phase1_schema.md"
)


@dataclass(frozen=True)
class RatingScale:
    """Ratings from ``low`` to ``high`` (inclusive) on a grid of ``step`` from ``low``.

    ``step`` None accepts any value in the range (continuous scores).
    """

    low: float = 1.0
    high: float = 5.0
    step: float | None = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"rating scale needs finite low < high, got {self.low}-{self.high}")
        if self.step is not None and not (math.isfinite(self.step) and self.step > 0):
            raise ValueError(f"rating scale step must be > 0, got {self.step}")

    def __str__(self) -> str:
        span = f"{_num(self.low)}-{_num(self.high)}"
        return span if self.step is None else f"{span} step {_num(self.step)}"

    def contains(self, ratings: pd.Series) -> pd.Series:
        """True where a (non-null) rating is on the scale; a tolerance of 1e-9 absorbs float text."""
        values = ratings.astype("float64")
        ok = (values >= self.low - 1e-9) & (values <= self.high + 1e-9)
        if self.step is not None:
            steps = (values - self.low) / self.step
            ok &= np.abs(steps - np.round(steps)) <= 1e-9
        return ok

    @classmethod
    def parse(cls, text: str) -> RatingScale | None:
        """``'1-5'`` (whole steps), ``'0.5-5 step 0.5'``, ``'0-1 step any'`` or ``'none'`` (None:
        the source has no ratings)."""
        spec = text.strip().lower()
        if spec == "none":
            return None
        span, _, step_text = spec.partition("step")
        low_text, sep, high_text = span.strip().partition("-")
        try:
            if not sep:
                raise ValueError
            low, high = float(low_text), float(high_text)
            step_text = step_text.strip()
            step = None if step_text == "any" else float(step_text) if step_text else 1.0
        except ValueError:
            raise ValueError(
                f"rating scale {text!r} not understood; write 'LOW-HIGH', 'LOW-HIGH step STEP', "
                "'LOW-HIGH step any' or 'none'"
            ) from None
        return cls(low, high, step)


def _num(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class SourceContract:
    """A source's promises: ``rating_scale`` (None: implicit feedback only, no ratings and no
    ``rate`` events) and the ``event_types`` it may send (a subset of ``schema.EVENT_TYPES``)."""

    rating_scale: RatingScale | None = field(default_factory=RatingScale)
    event_types: tuple[str, ...] = EVENT_TYPES

    def __post_init__(self) -> None:
        unknown = sorted(set(self.event_types) - set(EVENT_TYPES))
        if unknown or not self.event_types:
            raise ValueError(
                f"event_types must be a non-empty subset of {', '.join(EVENT_TYPES)}; "
                f"got {list(self.event_types)}"
            )

    @property
    def accepted_events(self) -> tuple[str, ...]:
        """The event types a row may have (no ``rate`` without a rating scale)."""
        if self.rating_scale is None:
            return tuple(e for e in self.event_types if e != "rate")
        return self.event_types

    @property
    def scale_text(self) -> str:
        return (
            "none (implicit feedback only)" if self.rating_scale is None else str(self.rating_scale)
        )

    def with_overrides(
        self, rating_scale: str = "", event_types: Sequence[str] = ()
    ) -> SourceContract:
        """This contract with the non-empty overrides applied (config wins over the manifest)."""
        scale = RatingScale.parse(rating_scale) if rating_scale else self.rating_scale
        return SourceContract(scale, tuple(event_types) or self.event_types)

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], where: str = "manifest") -> SourceContract:
        """From ``{"rating_scale": "0.5-5 step 0.5", "event_types": [...]}`` (both optional)."""
        unknown = sorted(set(doc) - {"rating_scale", "event_types"})
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; use rating_scale, event_types")
        default = cls()
        scale_text = doc.get("rating_scale")
        scale = default.rating_scale if scale_text is None else RatingScale.parse(str(scale_text))
        events = doc.get("event_types")
        if events is not None and (
            isinstance(events, str) or not all(isinstance(e, str) for e in events)
        ):
            raise ValueError(f"{where}: event_types must be a list of names, got {events!r}")
        return cls(scale, tuple(events) if events is not None else EVENT_TYPES)

    @classmethod
    def from_folder(cls, folder: Path | str) -> SourceContract:
        """The manifest of a ``files:`` folder, or the default contract when it has none."""
        path = Path(folder) / MANIFEST
        if not path.is_file():
            return cls()
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: expected a mapping with rating_scale / event_types")
        return cls.from_mapping(doc, str(path))
