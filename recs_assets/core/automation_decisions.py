"""Pure decision functions behind the sensors and schedules (no Dagster, no I/O).

Cursors are JSON strings so Dagster can store them as they are.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LandingDecision:
    """What the landing sensor should do.

    Attributes:
        new_files: batch files that are new or changed since the cursor (name order).
        run_key: a key naming exactly those files (``None``: nothing to do).
        cursor: the new cursor: every landed file with its mtime.
    """

    new_files: tuple[str, ...]
    run_key: str | None
    cursor: str


def _load(cursor: str | None, what: str) -> dict:
    if not cursor:
        return {}
    try:
        value = json.loads(cursor)
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} cursor is not JSON: {cursor!r}") from err
    if not isinstance(value, dict):
        raise ValueError(f"{what} cursor must be a JSON object, got {cursor!r}")
    return value


def decide_retrain(landed_files: Mapping[str, float], cursor: str | None) -> LandingDecision:
    """Request a run when a batch file is new or was rewritten (its mtime changed) since ``cursor``.

    The run key hashes the new files' names and mtimes, so one set of files gives one run even if
    the sensor evaluates twice; a removed file is simply forgotten.
    """
    seen = _load(cursor, "landing")
    new = tuple(sorted(n for n, m in landed_files.items() if seen.get(n) != m))
    new_cursor = json.dumps(dict(sorted(landed_files.items())), sort_keys=True)
    if not new:
        return LandingDecision((), None, new_cursor)
    digest = hashlib.sha256(json.dumps([[n, landed_files[n]] for n in new]).encode()).hexdigest()
    return LandingDecision(new, f"landing-{digest[:16]}", new_cursor)


@dataclass(frozen=True)
class CheckOutcome:
    """One asset check evaluation as stored by Dagster.

    Attributes:
        check: ``asset_key/check_name``.
        record_id: the storage id of the evaluation (grows with time).
        passed: whether the check passed.
        severity: ``ERROR`` or ``WARN`` (meaningful when it failed).
        run_id: the run that evaluated it.
    """

    check: str
    record_id: int
    passed: bool
    severity: str
    run_id: str = ""


@dataclass(frozen=True)
class CheckDecision:
    """Failed evaluations newer than the cursor, and the new cursor (check -> last record id)."""

    failures: tuple[CheckOutcome, ...]
    cursor: str

    @property
    def run_key(self) -> str | None:
        if not self.failures:
            return None
        names = [f.check.replace("/", ".").replace(":", ".") for f in self.failures]
        return "checks-" + "-".join(
            f"{n}@{f.record_id}" for n, f in zip(names, self.failures, strict=True)
        )


def new_check_failures(
    outcomes: Sequence[CheckOutcome], cursor: str | None, severities: Sequence[str] = ("ERROR",)
) -> CheckDecision:
    """The outcomes after the cursor that failed with one of ``severities`` (ordered by check).

    Every outcome seen moves the cursor, pass or fail, so an evaluation is acted on once.
    """
    seen = _load(cursor, "check")
    failures = []
    latest = {k: int(v) for k, v in seen.items()}
    for o in sorted(outcomes, key=lambda o: (o.check, o.record_id)):
        if o.record_id <= latest.get(o.check, -1):
            continue
        latest[o.check] = o.record_id
        if not o.passed and o.severity in severities:
            failures.append(o)
    return CheckDecision(tuple(failures), json.dumps(dict(sorted(latest.items()))))


def decide_drift_retrain(
    outcomes: Sequence[CheckOutcome], cursor: str | None, retrain_on_warn: bool = False
) -> CheckDecision:
    """Retrain when a drift check evaluation newer than the cursor failed (ERROR; WARN too if asked)."""
    return new_check_failures(
        outcomes, cursor, ("ERROR", "WARN") if retrain_on_warn else ("ERROR",)
    )


def fingerprint(parts: Mapping[str, str]) -> str:
    """A stable SHA-256 of named parts (order-independent)."""
    return hashlib.sha256(json.dumps(dict(sorted(parts.items()))).encode()).hexdigest()


@dataclass(frozen=True)
class DailyDecision:
    """Whether the daily retrain runs, why, the source fingerprint it compared and the assets
    Dagster reported stale."""

    run: bool
    reason: str
    data: str
    stale: tuple[str, ...] = ()


STALE_SHOWN = 5  # stale assets named in a reason (the rest counted)


def decide_daily_retrain(
    data_fp: str,
    last_data_fp: str | None,
    stale: Mapping[str, str],
    env_fp: str = "",
    last_env_fp: str | None = None,
) -> DailyDecision:
    """Run when there was no earlier scheduled run, when the source's files changed (Dagster
    cannot see them: ``data_fp`` against ``last_data_fp``), when the serving environment changed
    (``bento/``, ``pyproject.toml``: ``env_fp`` against ``last_env_fp``; a last run without it
    counts as unchanged), or when Dagster reports assets of the job stale or missing
    (``stale``: asset -> why, e.g. its code version changed)."""
    names = tuple(sorted(stale))
    if last_data_fp is None:
        return DailyDecision(True, "no earlier scheduled retrain", data_fp, names)
    reasons = []
    if data_fp != last_data_fp:
        reasons.append("source data changed")
    if last_env_fp is not None and env_fp != last_env_fp:
        reasons.append("serving environment (bento/, pyproject.toml) changed")
    if names:
        shown = "; ".join(f"{n} ({stale[n]})" for n in names[:STALE_SHOWN])
        more = f" and {len(names) - STALE_SHOWN} more" if len(names) > STALE_SHOWN else ""
        reasons.append(f"stale in Dagster: {shown}{more}")
    if reasons:
        return DailyDecision(True, ", ".join(reasons), data_fp, names)
    return DailyDecision(
        False,
        "source data and serving environment unchanged and every asset of the job fresh in "
        "Dagster since the last scheduled retrain",
        data_fp,
    )


def freshness_transitions(states: Mapping[str, str], cursor: str | None) -> tuple[list[str], str]:
    """Assets whose freshness state became ``FAIL`` since the cursor (asset -> last state seen)."""
    seen = _load(cursor, "freshness")
    newly = sorted(k for k, s in states.items() if s == "FAIL" and seen.get(k) != "FAIL")
    return newly, json.dumps({**seen, **dict(states)}, sort_keys=True)


@dataclass(frozen=True)
class FreshnessRetrain:
    """Whether stale assets ask for a retrain: the stale assets that do, the number of retrains
    requested so far (this one included) and the new cursor."""

    stale: tuple[str, ...]
    requests: int
    cursor: str

    @property
    def run_key(self) -> str | None:
        """One run per failure: None when no retrained asset turned stale."""
        return f"freshness-{self.requests}" if self.stale else None


def decide_freshness_retrain(
    states: Mapping[str, str], retrained: Collection[str], cursor: str | None
) -> FreshnessRetrain:
    """Retrain when an asset that retraining refreshes (``retrained``) turned FAIL since the
    cursor; other stale assets (raw tables, monitoring) only alert. ``states``: asset -> state."""
    previous = _load(cursor, "freshness retrain")
    seen = previous.get("states")
    newly, states_cursor = freshness_transitions(states, json.dumps(seen) if seen else None)
    stale = tuple(a for a in newly if a in retrained)
    requests = int(previous.get("requests", 0)) + (1 if stale else 0)
    new_cursor = json.dumps({"states": json.loads(states_cursor), "requests": requests})
    return FreshnessRetrain(stale, requests, new_cursor)
