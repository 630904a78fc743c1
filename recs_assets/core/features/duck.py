"""The feature transforms in DuckDB: the same tables as the Spark transforms, for data one machine
holds.

Local Spark pays a fixed cost per query whatever the data size: on ML-100K (100,000 events, 2
cores, warm JVM) one ``user_features`` snapshot took 5.5 s, 1.2-1.9 s of it building the plan in
Python, and a fresh JVM takes 6 s to start. DuckDB computes the same rows in a fraction of a
second from the same Parquet files. ``tests/features/test_duck_parity.py`` checks that both
engines write the same rows and types; the feature assets pick the engine
(``feature_job.feature_engine``).

Every function returns SQL over three views a ``FeatureConnection`` registers, with the
canonical columns and types: ``interactions``, ``users`` and ``items``. Time is UTC throughout
(the connection's time zone), as in the Spark session.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from recs_assets.core.duckdb_settings import default_memory_limit
from recs_assets.core.features.transforms._columns import (
    DEFAULT_SESSION_GAP_MINUTES,
    category_columns,
    check_as_of,
)
from recs_assets.core.features.transforms.context import UNKNOWN
from recs_assets.core.features.transforms.item import (
    _COUNTS as ITEM_COUNT_COLUMNS,
)
from recs_assets.core.features.transforms.item import (
    DEFAULT_HALF_LIFE_DAYS,
    DEFAULT_PRIOR_WEIGHT,
    ITEM_COLUMNS,
)
from recs_assets.core.features.transforms.user import (
    CATEGORY_PREFIX,
    COUNT_COLUMNS,
    DAY_PARTS,
    WEEKDAYS,
    WINDOWS_DAYS,
    share_columns,
    user_columns,
)
from recs_assets.core.phase1.schema import CATEGORY_SEP, EVENT_TYPES, TABLE_COLUMNS
from recs_assets.core.table_store import PARTITION_COLUMN

_SQL_TYPES = {
    "string": "VARCHAR",
    "float64": "DOUBLE",
    "Int64": "BIGINT",
    "datetime64[us, UTC]": "TIMESTAMPTZ",
}


def q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(text: str) -> str:
    """A quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _ts(as_of: datetime) -> str:
    return f"TIMESTAMPTZ {lit(check_as_of(as_of).isoformat())}"


def _age(column: str, as_of: datetime) -> str:
    """Days from ``column`` to ``as_of`` (fractional), as the Spark ``age_days``."""
    return f"((epoch_us({_ts(as_of)}) - epoch_us({column})) / 86400e6)"


def on_days(days: Iterable[str]) -> str:
    """A predicate: ``timestamp`` falls on one of ``days`` (``YYYY-MM-DD``, UTC). Written as
    time ranges (consecutive days merged), which cost a comparison a row and which Parquet
    row-group statistics can skip: a ``strftime`` per row took 3.4 s over 10 million events,
    the ranges 0.02 s."""
    spans: list[list[date]] = []
    for d in sorted({date.fromisoformat(d) for d in days}):
        if spans and d == spans[-1][1]:
            spans[-1][1] = d + timedelta(days=1)
        else:
            spans.append([d, d + timedelta(days=1)])
    ranges = [
        f"(timestamp >= TIMESTAMPTZ {lit(f'{lo.isoformat()}T00:00:00+00:00')} AND "
        f"timestamp < TIMESTAMPTZ {lit(f'{hi.isoformat()}T00:00:00+00:00')})"
        for lo, hi in spans
    ]
    return "(" + " OR ".join(ranges) + ")" if ranges else "FALSE"


def _weekday(column: str) -> str:
    """0 = Monday ... 6 = Sunday (Spark's ``weekday``)."""
    return f"(isodow({column}) - 1)"


def parquet_files(path: str | Path) -> list[str]:
    """The Parquet data files of a table folder (Spark's or ours) or the file itself."""
    p = Path(path)
    if p.is_file():
        return [str(p)]
    return sorted(
        str(f)
        for f in p.rglob("*.parquet")
        if not any(part.startswith(("_", ".")) for part in f.relative_to(p).parts)
    )


class FeatureConnection:
    """A DuckDB connection (UTC) with the canonical ``interactions``, ``users`` and ``items``
    views over Parquet files."""

    def __init__(
        self,
        interactions: Sequence[str] | pd.DataFrame,
        users: Sequence[str] | pd.DataFrame,
        items: Sequence[str] | pd.DataFrame,
        *,
        memory_limit: str | None = None,
    ) -> None:
        # within memory_limit (25% of the machine by default), spilling to a folder of its own
        self._spill = tempfile.mkdtemp(prefix="recs-duckdb-features-")
        self.con = duckdb.connect(
            config={
                "memory_limit": memory_limit or default_memory_limit(),
                "temp_directory": self._spill,
            }
        )
        try:
            self._views(interactions, users, items)
        except BaseException:
            self.close()
            raise

    def _views(
        self,
        interactions: Sequence[str] | pd.DataFrame,
        users: Sequence[str] | pd.DataFrame,
        items: Sequence[str] | pd.DataFrame,
    ) -> None:
        self.con.execute("SET TimeZone = 'UTC'")
        for view, source in (("interactions", interactions), ("users", users), ("items", items)):
            if isinstance(source, pd.DataFrame):  # small data and tests: the frame itself
                self.con.register(f"_{view}_frame", source)
                relation = f"_{view}_frame"
            elif not source:
                raise ValueError(f"{view}: no Parquet files to read")
            else:
                relation = files_relation(source, union_by_name=True)
            self.con.execute(f"CREATE VIEW {view} AS {canonical_select(self.con, view, relation)}")

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self._spill, ignore_errors=True)

    def __enter__(self) -> FeatureConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def frame(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()

    def time_range(self) -> tuple[datetime, datetime]:
        """(oldest, newest) event timestamp (UTC); raises ``ValueError`` without events."""
        oldest, newest = self.con.execute(
            "SELECT min(timestamp), max(timestamp) FROM interactions"
        ).fetchone() or (None, None)
        if oldest is None:
            raise ValueError("raw_interactions is empty: no features can be computed")
        return oldest, newest

    def top_categories(self, limit: int) -> list[str]:
        return [r[0] for r in self.con.execute(top_categories_sql(limit)).fetchall()]


def canonical_select(con: duckdb.DuckDBPyConnection, table: str, relation: str) -> str:
    """The canonical columns of ``table`` from ``relation``, cast to their types; raises
    ``ValueError`` naming the columns it lacks."""
    cols = TABLE_COLUMNS[table]
    have = set(con.sql(f"SELECT * FROM {relation} LIMIT 0").columns)
    missing = [c for c in cols if c not in have]
    if missing:
        raise ValueError(f"{table}: column(s) missing in the table: {', '.join(missing)}")
    select = ", ".join(
        f"CAST({q(name)} AS {_SQL_TYPES[dtype]}) AS {q(name)}" for name, (dtype, _) in cols.items()
    )
    return f"SELECT {select} FROM {relation}"


def files_relation(
    files: Sequence[str], union_by_name: bool = False, filename: bool = False
) -> str:
    """A relation over Parquet ``files`` (``union_by_name``: columns matched by name across
    files, a column some lack is null there; ``filename``: a ``filename`` column says which
    file a row is from)."""
    listed = ", ".join(lit(f) for f in files)
    by_name = ", union_by_name = true" if union_by_name else ""
    named = ", filename = true" if filename else ""
    return f"read_parquet([{listed}], hive_partitioning = false{by_name}{named})"


def top_categories_sql(limit: int) -> str:
    """(category, n_items) of the ``limit`` categories with most items (ties alphabetical)."""
    return f"""
        SELECT category, count(*) AS n_items FROM (
            SELECT DISTINCT item_id, unnest(string_split(categories, {lit(CATEGORY_SEP)}))
                AS category
            FROM items WHERE categories IS NOT NULL
        ) WHERE length(category) > 0
        GROUP BY category ORDER BY n_items DESC, category ASC LIMIT {int(limit)}
    """


def _item_category_weights() -> str:
    """(item_id, category, weight): weight 1/k for an item in k categories."""
    return f"""
        SELECT item_id, category, 1.0 / count(*) OVER (PARTITION BY item_id) AS weight FROM (
            SELECT DISTINCT item_id, category FROM (
                SELECT item_id, unnest(string_split(categories, {lit(CATEGORY_SEP)})) AS category
                FROM items WHERE categories IS NOT NULL AND length(categories) > 0
            ) WHERE length(category) > 0
        )
    """


def _with_session_key(events: str, gap_minutes: int) -> str:
    """``events`` (a relation) plus ``session_key``: ``session_id``, else ``<user_id>#<n>`` with
    a new derived session after a gap over ``gap_minutes`` (as ``with_session_key``)."""
    if gap_minutes <= 0:
        raise ValueError(f"gap_minutes must be positive, got {gap_minutes}")
    order = "PARTITION BY user_id ORDER BY timestamp, event_id"
    return f"""
        SELECT * EXCLUDE (_new, _no),
            coalesce(session_id, user_id || '#' || CAST(_no AS VARCHAR)) AS session_key
        FROM (
            SELECT *, sum(_new) OVER ({order} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                AS _no
            FROM (
                SELECT *, CASE WHEN lag(timestamp) OVER ({order}) IS NULL
                    OR (epoch_us(timestamp) - epoch_us(lag(timestamp) OVER ({order}))) / 1e6
                        > {gap_minutes * 60.0}
                    THEN 1 ELSE 0 END AS _new
                FROM ({events})
            )
        )
    """


def _entropy(counts: Sequence[str], total: str) -> str:
    terms = " + ".join(
        f"(CASE WHEN {c} > 0 THEN ({c} / {total}) * log2({c} / {total}) ELSE 0.0 END)"
        for c in counts
    )
    return f"coalesce(abs({terms}), 0.0)"


def _event_counts(windows: Sequence[int | None]) -> list[tuple[str, str]]:
    """(column, aggregate) of the event counts of ``user_features`` over events with an ``_age``
    column: all events and per event type, within each window of days (None: all time)."""
    counts = []
    for days in windows:
        window = "TRUE" if days is None else f"_age < {days}"
        suffix = "all" if days is None else f"{days}d"
        counts.append((f"events_{suffix}", f"CAST(count(*) FILTER ({window}) AS BIGINT)"))
        counts += [
            (
                f"{t}_count_{suffix}",
                f"CAST(count(*) FILTER ({window} AND event_type = {lit(t)}) AS BIGINT)",
            )
            for t in EVENT_TYPES
        ]
    return counts


def user_features_sql(
    *,
    as_of: datetime,
    categories: Sequence[str],
    session_gap_minutes: int = DEFAULT_SESSION_GAP_MINUTES,
    users: str | None = None,
) -> str:
    """The rows of the Spark ``user_features`` at ``as_of``, in its column order; with ``users``
    (a relation with a ``user_id`` column), only those users' rows."""
    ts = _ts(as_of)
    only = f" AND user_id IN (SELECT user_id FROM ({users}))" if users else ""
    ev = (
        f"SELECT *, {_age('timestamp', as_of)} AS _age FROM interactions "
        f"WHERE timestamp <= {ts}{only}"
    )
    counts = [f"{expr} AS {name}" for name, expr in _event_counts((*WINDOWS_DAYS, None))]
    cat_cols = category_columns(CATEGORY_PREFIX, categories)
    pivot = ", ".join(
        f"max(share) FILTER (category = {lit(c)}) AS {q(name)}"
        for c, name in zip(categories, cat_cols, strict=True)
    )
    hours = [f"_h{h}" for h in range(24)]
    days_ = [f"_d{d}" for d in range(7)]
    timing_cells = ", ".join(
        [f"CAST(count(*) FILTER (hour(timestamp) = {h}) AS DOUBLE) AS _h{h}" for h in range(24)]
        + [
            f"CAST(count(*) FILTER ({_weekday('timestamp')} = {d}) AS DOUBLE) AS _d{d}"
            for d in range(7)
        ]
    )
    hour_shares = ", ".join(
        f"({' + '.join(hours[lo:hi])}) / _n AS hour_share_{name}" for name, lo, hi in DAY_PARTS
    )
    dow_shares = ", ".join(f"_d{i} / _n AS dow_share_{d}" for i, d in enumerate(WEEKDAYS))
    shares = share_columns(categories)
    fill = {
        **{c: "0" for c in COUNT_COLUMNS},
        **{c: "0.0" for c in shares},
    }
    select = ", ".join(
        f"coalesce({q(c)}, {fill[c]}) AS {q(c)}" if c in fill else q(c)
        for c in user_columns(categories)
    )
    cat_part = f"""
        shares AS (
            SELECT user_id, category, mass / sum(mass) OVER (PARTITION BY user_id) AS share,
                row_number() OVER (PARTITION BY user_id ORDER BY round(mass, 9) DESC, category ASC)
                    AS _rank
            FROM (
                SELECT ev.user_id, w.category, sum(w.weight) AS mass
                FROM ev JOIN ({_item_category_weights()}) w USING (item_id)
                GROUP BY ev.user_id, w.category
            )
        ),
        cats AS (
            SELECT user_id, {pivot + ", " if pivot else ""}
                max(category) FILTER (_rank = 1) AS top_category
            FROM shares GROUP BY user_id
        ),"""
    return f"""
        WITH ev AS ({ev}),
        base AS (
            SELECT user_id FROM users
            WHERE (signup_time IS NULL OR signup_time <= {ts}){only}
            UNION SELECT user_id FROM ev
        ),
        counts AS (
            SELECT user_id, {", ".join(counts)},
                count(DISTINCT item_id) AS distinct_items,
                min(_age) AS days_since_last_event, max(_age) AS days_since_first_event,
                count(rating) AS rating_count, avg(rating) AS rating_mean,
                var_pop(rating) AS rating_var,
                count(DISTINCT CAST(timestamp AS DATE)) AS active_days
            FROM ev GROUP BY user_id
        ),{cat_part}
        sessions AS (
            SELECT user_id, count(*) AS session_count, avg(_k) AS events_per_session,
                avg(_len) AS session_length_s
            FROM (
                SELECT user_id, session_key, count(*) AS _k,
                    (epoch_us(max(timestamp)) - epoch_us(min(timestamp))) / 1e6 AS _len
                FROM ({_with_session_key("SELECT * FROM ev", session_gap_minutes)})
                GROUP BY user_id, session_key
            ) GROUP BY user_id
        ),
        timing AS (
            SELECT user_id, {hour_shares}, {dow_shares}, (_d5 + _d6) / _n AS weekend_share,
                {_entropy(hours, "_n")} AS hour_entropy, {_entropy(days_, "_n")} AS dow_entropy
            FROM (
                SELECT *, {" + ".join(days_)} AS _n FROM (
                    SELECT user_id, {timing_cells} FROM ev GROUP BY user_id
                )
            )
        ),
        demographics AS (
            SELECT user_id, age, gender, occupation, region, device AS signup_device,
                {_age("signup_time", as_of)} AS account_age_days
            FROM users QUALIFY row_number() OVER (PARTITION BY user_id) = 1
        )
        SELECT {select} FROM (
            SELECT base.user_id, {ts} AS feature_timestamp, counts.* EXCLUDE (user_id),
                cats.* EXCLUDE (user_id), sessions.* EXCLUDE (user_id),
                timing.* EXCLUDE (user_id), demographics.* EXCLUDE (user_id)
            FROM base
            LEFT JOIN counts USING (user_id)
            LEFT JOIN cats USING (user_id)
            LEFT JOIN sessions USING (user_id)
            LEFT JOIN timing USING (user_id)
            LEFT JOIN demographics USING (user_id)
        )
    """


def carried_user_features_sql(
    *,
    as_of: datetime,
    previous: datetime,
    previous_files: Sequence[str],
    changed_days: Sequence[str],
    categories: Sequence[str],
    session_gap_minutes: int = DEFAULT_SESSION_GAP_MINUTES,
) -> str:
    """The rows of ``user_features_sql`` at ``as_of``, from the table's rows at ``previous``
    (``previous_files``, a snapshot of a build with the same settings, users and items, and the
    same events but in ``changed_days``): a user's row at ``as_of`` is recomputed when it may
    differ in more than its clock and window counts, and else carried from ``previous`` with
    the clock columns (``days_since_last_event``, ``days_since_first_event``,
    ``account_age_days``) and the 7- and 30-day counts computed at ``as_of`` by the same
    expressions (the counts from the last 31 days' events alone). Recomputed are the
    users with an event
    - on a changed day, or after ``previous`` (events, rating, category, session, timing columns);
    - or whose count of events up to ``previous`` is not the row's ``events_all`` (an event
      removed, or a user with events and no row);
    the users who signed up between the two times (new rows), and the users known at
    ``previous`` without a row there (a previous table missing rows is recomputed, not carried
    short). Equal to a full computation
    (``tests/features/test_user_carry.py``)."""
    ts, prev_ts = _ts(as_of), _ts(previous)
    prev = (
        f"SELECT * FROM {files_relation(previous_files, union_by_name=True)} "
        f"WHERE feature_timestamp = {prev_ts}"
    )
    on_changed_day = on_days(changed_days)
    dirty = f"""
        SELECT user_id FROM interactions
        WHERE timestamp <= {ts} AND ({on_changed_day} OR timestamp > {prev_ts})
        UNION
        SELECT coalesce(n.user_id, p.user_id) AS user_id
        FROM (
            SELECT user_id, count(*) AS _k FROM interactions WHERE timestamp <= {prev_ts}
            GROUP BY user_id
        ) n FULL JOIN prev p ON n.user_id = p.user_id
        WHERE coalesce(n._k, 0) <> coalesce(p.events_all, 0)
        UNION
        SELECT user_id FROM users WHERE signup_time > {prev_ts} AND signup_time <= {ts}
        UNION
        SELECT u.user_id FROM users u ANTI JOIN prev p ON u.user_id = p.user_id
        WHERE u.signup_time IS NULL OR u.signup_time <= {prev_ts}
    """
    fresh = user_features_sql(
        as_of=as_of,
        categories=categories,
        session_gap_minutes=session_gap_minutes,
        users="SELECT user_id FROM dirty",
    )
    age = _age("timestamp", as_of)
    windows = _event_counts(WINDOWS_DAYS)
    # a day more than the longest window: the same _age filters then pick the same events
    recent = f"{ts} - INTERVAL {max(WINDOWS_DAYS) + 1} DAY"
    return f"""
        WITH prev AS MATERIALIZED ({prev}),
        dirty AS MATERIALIZED ({dirty}),
        wins AS (
            SELECT user_id, {", ".join(f"{expr} AS {name}" for name, expr in windows)}
            FROM (
                SELECT user_id, event_type, {age} AS _age FROM interactions
                WHERE timestamp <= {ts} AND timestamp >= {recent}
            )
            GROUP BY user_id
        ),
        clocks AS (
            SELECT user_id, min({age}) AS days_since_last_event,
                max({age}) AS days_since_first_event
            FROM interactions WHERE timestamp <= {ts}
                AND user_id NOT IN (SELECT user_id FROM dirty WHERE user_id IS NOT NULL)
            GROUP BY user_id
        ),
        signups AS (
            SELECT user_id, {_age("signup_time", as_of)} AS account_age_days
            FROM users QUALIFY row_number() OVER (PARTITION BY user_id) = 1
        )
        SELECT * FROM ({fresh})
        UNION ALL BY NAME
        SELECT p.* REPLACE (
            {ts} AS feature_timestamp,
            c.days_since_last_event AS days_since_last_event,
            c.days_since_first_event AS days_since_first_event,
            s.account_age_days AS account_age_days,
            {", ".join(f"coalesce(w.{name}, 0) AS {name}" for name, _ in windows)}
        )
        FROM prev p
        ANTI JOIN dirty d ON p.user_id = d.user_id
        LEFT JOIN clocks c ON p.user_id = c.user_id
        LEFT JOIN signups s ON p.user_id = s.user_id
        LEFT JOIN wins w ON p.user_id = w.user_id
    """


def item_features_sql(
    *,
    as_of: datetime,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    prior_weight: float = DEFAULT_PRIOR_WEIGHT,
) -> str:
    """The rows of the Spark ``item_features`` at ``as_of``, in its column order."""
    _check_item_settings(half_life_days, prior_weight)
    dow = _weekday("timestamp")
    ctes = f"""
        ev AS (
            SELECT *, {_age("timestamp", as_of)} AS _age FROM interactions
            WHERE timestamp <= {_ts(as_of)}
        ),
        agg AS (
            SELECT item_id,
                CAST(count(*) FILTER (_age < 7) AS BIGINT) AS events_7d,
                CAST(count(*) FILTER (_age < 30) AS BIGINT) AS events_30d,
                count(*) AS events_all, {_item_type_counts()},
                count(DISTINCT user_id) AS distinct_users_all,
                count(DISTINCT user_id) FILTER (_age < 30) AS distinct_users_30d,
                sum(pow(2.0, -_age / {float(half_life_days)!r})) AS decayed_events,
                max(_age) AS _first_age, min(_age) AS days_since_last_event,
                count(rating) AS rating_count, sum(rating) AS _rating_sum,
                avg(rating) AS rating_mean,
                count(*) FILTER ({dow} >= 5) / count(*) AS weekend_share,
                {_item_dow_counts()}
            FROM ev GROUP BY item_id
        )
    """
    return _item_features_select(
        as_of, ctes, "ev", "(SELECT avg(rating) FROM ev)", half_life_days, prior_weight
    )


def _item_type_counts() -> str:
    """Per item, its events of each type (``<type>_count_all``), as aggregate SQL."""
    return ", ".join(
        f"CAST(count(*) FILTER (event_type = {lit(t)}) AS BIGINT) AS {t}_count_all"
        for t in EVENT_TYPES
    )


def _item_dow_counts() -> str:
    """Per item, its events on each day of the week (``_dow0``-``_dow6``), as aggregate SQL."""
    dow = _weekday("timestamp")
    return ", ".join(f"count(*) FILTER ({dow} = {d}) AS _dow{d}" for d in range(7))


def _check_item_settings(half_life_days: float, prior_weight: float) -> None:
    if half_life_days <= 0 or prior_weight < 0:
        raise ValueError(
            f"half_life_days must be > 0 and prior_weight >= 0, got {half_life_days}, {prior_weight}"
        )


def _item_features_select(
    as_of: datetime,
    ctes: str,
    with_events: str,
    global_mean: str,
    half_life_days: float,
    prior_weight: float,
) -> str:
    """The item rows at ``as_of`` from ``ctes`` defining ``agg`` (one row per item with an
    event: the counts and sums, ``_first_age``, ``_rating_sum`` and ``_dow0``-``_dow6``);
    ``with_events``: a relation of the items with an event; ``global_mean``: the mean rating
    of every event, as SQL."""
    ts = _ts(as_of)
    counts = {c: f"coalesce({c}, 0)" for c in ITEM_COUNT_COLUMNS}
    exprs = {
        **counts,
        "decayed_events": "coalesce(decayed_events, 0.0)",
        "weekend_share": "coalesce(weekend_share, 0.0)",
        "trending_score": (
            f"CASE WHEN coalesce(events_all, 0) > 0 THEN "
            f"(decayed_events * {math.log(2)!r} / {float(half_life_days)!r}) / "
            f"(events_all / greatest(_first_age, 1.0)) ELSE 0.0 END"
        ),
        "bayes_rating": (
            f"({float(prior_weight)!r} * _global_mean + coalesce(_rating_sum, 0.0)) / "
            f"({float(prior_weight)!r} + coalesce(rating_count, 0))"
        ),
        "category_count": (
            "CAST(CASE WHEN categories IS NULL OR length(categories) = 0 THEN 0 "
            f"ELSE len(string_split(categories, {lit(CATEGORY_SEP)})) END AS INTEGER)"
        ),
        "age_days": f"coalesce({_age('created_at', as_of)}, _first_age)",
    }
    select = ", ".join(f"{exprs[c]} AS {q(c)}" if c in exprs else q(c) for c in ITEM_COLUMNS)
    return f"""
        WITH {ctes},
        base AS (
            SELECT item_id FROM items WHERE created_at IS NULL OR created_at <= {ts}
            UNION SELECT item_id FROM {with_events}
        ),
        catalog AS (
            SELECT item_id, categories, price, quality, created_at FROM items
            QUALIFY row_number() OVER (PARTITION BY item_id) = 1
        )
        SELECT {select} FROM (
            SELECT base.item_id, {ts} AS feature_timestamp, agg.* EXCLUDE (item_id),
                7.0 * greatest({", ".join(f"_dow{d}" for d in range(7))}) / agg.events_all
                    AS dow_concentration,
                catalog.* EXCLUDE (item_id),
                {global_mean} AS _global_mean
            FROM base LEFT JOIN agg USING (item_id) LEFT JOIN catalog USING (item_id)
        )
    """


# ---- the newest item snapshot from a carried state ------------------------------------------
# Per item, the all-time aggregates of its events up to a time that the item features are made
# of and that events after that time add to (counts and sums; the first and last event; the
# decayed count at that time). A build keeps the state of its newest snapshot beside the table
# (``core/features/item_state.py``); the next build adds the events after it instead of
# aggregating all history.
ITEM_STATE_DOWS = tuple(f"_dow{d}" for d in range(7))
ITEM_STATE_SUMS = (
    "events_all",
    *(f"{t}_count_all" for t in EVENT_TYPES),
    "rating_count",
    *ITEM_STATE_DOWS,
)


def _item_state_aggregates(events: str, as_of: datetime, half_life_days: float) -> str:
    """Per item of the relation ``events``: the state columns but ``distinct_users_all``."""
    return f"""
        SELECT item_id, count(*) AS events_all, {_item_type_counts()},
            count(rating) AS rating_count, sum(rating) AS _rating_sum, {_item_dow_counts()},
            min(timestamp) AS _first_ts, max(timestamp) AS _last_ts,
            sum(pow(2.0, -{_age("timestamp", as_of)} / {float(half_life_days)!r})) AS _decayed
        FROM {events} GROUP BY item_id
    """


def item_state_sql(*, as_of: datetime, half_life_days: float = DEFAULT_HALF_LIFE_DAYS) -> str:
    """The item state at ``as_of`` from all events up to it (one row per item with an event)."""
    ev = f"(SELECT * FROM interactions WHERE timestamp <= {_ts(as_of)})"
    return f"""
        SELECT a.*, d.distinct_users_all FROM ({_item_state_aggregates(ev, as_of, half_life_days)}) a
        JOIN (SELECT item_id, count(DISTINCT user_id) AS distinct_users_all FROM {ev}
              GROUP BY item_id) d ON a.item_id IS NOT DISTINCT FROM d.item_id
    """


def carried_item_state_sql(
    *,
    as_of: datetime,
    previous: datetime,
    previous_state: str,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
) -> str:
    """The item state at ``as_of`` from the state at ``previous`` (the relation
    ``previous_state``) and the events after ``previous``: equal to ``item_state_sql`` at
    ``as_of`` when the events up to ``previous`` are those the previous state was built from
    (the caller checks; ``tests/features/test_item_carry.py``). A user's first event on an item
    after ``previous`` counts as a new distinct user unless the user had one before."""
    ts, prev_ts = _ts(as_of), _ts(previous)
    new = f"(SELECT * FROM interactions WHERE timestamp > {prev_ts} AND timestamp <= {ts})"
    decay = f"pow(2.0, -{_age(prev_ts, as_of)} / {float(half_life_days)!r})"
    sums = ", ".join(f"coalesce(s.{c}, 0) + coalesce(n.{c}, 0) AS {c}" for c in ITEM_STATE_SUMS)
    return f"""
        WITH s AS MATERIALIZED (SELECT * FROM {previous_state}),
        n AS MATERIALIZED ({_item_state_aggregates(new, as_of, half_life_days)}),
        pairs AS (
            SELECT DISTINCT item_id, user_id FROM {new} WHERE user_id IS NOT NULL
        ),
        first_pairs AS (
            SELECT p.item_id, count(*) AS _new_users FROM pairs p
            ANTI JOIN (
                SELECT item_id, user_id FROM interactions WHERE timestamp <= {prev_ts}
            ) o ON p.item_id = o.item_id AND p.user_id = o.user_id
            GROUP BY p.item_id
        )
        SELECT coalesce(s.item_id, n.item_id) AS item_id, {sums},
            CASE WHEN s._rating_sum IS NULL AND n._rating_sum IS NULL THEN NULL
                ELSE coalesce(s._rating_sum, 0.0) + coalesce(n._rating_sum, 0.0) END
                AS _rating_sum,
            least(s._first_ts, n._first_ts) AS _first_ts,
            greatest(s._last_ts, n._last_ts) AS _last_ts,
            coalesce(s._decayed * {decay}, 0.0) + coalesce(n._decayed, 0.0) AS _decayed,
            coalesce(s.distinct_users_all, 0) + coalesce(f._new_users, 0) AS distinct_users_all
        FROM s FULL JOIN n ON s.item_id IS NOT DISTINCT FROM n.item_id
        LEFT JOIN first_pairs f ON coalesce(s.item_id, n.item_id) = f.item_id
    """


def day_checksum_sql(as_of: datetime) -> str:
    """(count, sum of row hashes as text) of the events on ``as_of``'s UTC day up to it
    (``item_state.ItemStateMeta``)."""
    ts = _ts(as_of)
    return f"""
        SELECT count(*), CAST(coalesce(sum(hash(event_id, user_id, item_id, event_type,
            timestamp, rating, session_id, device, platform)), 0) AS VARCHAR)
        FROM interactions
        WHERE timestamp >= date_trunc('day', {ts}) AND timestamp <= {ts}
    """


def item_features_from_state_sql(
    *,
    as_of: datetime,
    state: str,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    prior_weight: float = DEFAULT_PRIOR_WEIGHT,
) -> str:
    """The rows of ``item_features_sql`` at ``as_of`` from the item state at ``as_of`` (the
    relation ``state``) and the last 31 days' events (the 7- and 30-day columns)."""
    _check_item_settings(half_life_days, prior_weight)
    ts = _ts(as_of)
    recent = f"{ts} - INTERVAL 31 DAY"  # the _age filters below then pick the same events
    ctes = f"""
        st AS MATERIALIZED (SELECT * FROM {state}),
        agg AS (
            SELECT st.* EXCLUDE (_first_ts, _last_ts, _decayed),
                coalesce(w.events_7d, 0) AS events_7d, coalesce(w.events_30d, 0) AS events_30d,
                coalesce(w.distinct_users_30d, 0) AS distinct_users_30d,
                st._decayed AS decayed_events,
                {_age("st._first_ts", as_of)} AS _first_age,
                {_age("st._last_ts", as_of)} AS days_since_last_event,
                CASE WHEN st.rating_count > 0 THEN st._rating_sum / st.rating_count END
                    AS rating_mean,
                (st._dow5 + st._dow6) / st.events_all AS weekend_share
            FROM st LEFT JOIN (
                SELECT item_id,
                    CAST(count(*) FILTER (_age < 7) AS BIGINT) AS events_7d,
                    CAST(count(*) FILTER (_age < 30) AS BIGINT) AS events_30d,
                    count(DISTINCT user_id) FILTER (_age < 30) AS distinct_users_30d
                FROM (
                    SELECT item_id, user_id, {_age("timestamp", as_of)} AS _age
                    FROM interactions WHERE timestamp <= {ts} AND timestamp >= {recent}
                )
                GROUP BY item_id
            ) w ON st.item_id IS NOT DISTINCT FROM w.item_id
        )
    """
    mean = (
        "(SELECT CASE WHEN sum(rating_count) > 0 THEN sum(_rating_sum) / sum(rating_count) END "
        "FROM st)"
    )
    return _item_features_select(as_of, ctes, "st", mean, half_life_days, prior_weight)


def context_features_sql(
    *, session_gap_minutes: int = DEFAULT_SESSION_GAP_MINUTES, users: str | None = None
) -> str:
    """The rows of the Spark ``context_features`` (one per event); with ``users`` (a relation
    with a ``user_id`` column), only those users' events. As there, every column reads only the
    user's events at or before the row (incremental builds rely on it)."""
    events = "SELECT * FROM interactions" + (
        f" WHERE user_id IN (SELECT user_id FROM ({users}))" if users else ""
    )
    in_session = "PARTITION BY user_id, session_key ORDER BY timestamp, event_id"
    by_user = "PARTITION BY user_id ORDER BY timestamp, event_id"
    secs = "(epoch_us(timestamp) / 1e6)"
    return f"""
        SELECT event_id, user_id, item_id, timestamp,
            CAST(hour(timestamp) AS INTEGER) AS hour_of_day,
            CAST(isodow(timestamp) AS INTEGER) AS day_of_week,
            isodow(timestamp) >= 6 AS is_weekend,
            coalesce(device, {lit(UNKNOWN)}) AS device,
            coalesce(platform, {lit(UNKNOWN)}) AS platform,
            session_key,
            CAST(row_number() OVER ({in_session}) AS INTEGER) AS position_in_session,
            {secs} - min({secs}) OVER (PARTITION BY user_id, session_key)
                AS seconds_since_session_start,
            {secs} - lag({secs}) OVER ({by_user}) AS seconds_since_prev_event
        FROM ({_with_session_key(events, session_gap_minutes)})
    """


@dataclass(frozen=True)
class Written:
    """What ``write_parquet`` wrote: rows and column names."""

    path: str
    row_count: int
    columns: tuple[str, ...]


def write_parquet(con: duckdb.DuckDBPyConnection, sql: str, path: Path) -> Written:
    """Write the rows of ``sql`` as one Parquet file in the folder ``path`` (replaced)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return replace(write_parquet_file(con, sql, path / "part-00000.parquet"), path=str(path))


def write_parquet_file(con: duckdb.DuckDBPyConnection, sql: str, target: Path) -> Written:
    """Write the rows of ``sql`` as the Parquet file ``target``."""
    con.execute(f"COPY ({sql}) TO {lit(str(target))} (FORMAT parquet, COMPRESSION zstd)")
    meta = pq.ParquetFile(target).metadata
    return Written(str(target), meta.num_rows, tuple(meta.schema.to_arrow_schema().names))


def write_day_partitions(con: duckdb.DuckDBPyConnection, sql: str, path: Path) -> list[str]:
    """Write the per-event rows of ``sql`` into the new folder ``path``, one folder per UTC day
    of their ``timestamp`` (``partition=<day>/``, as the raw tables); returns the columns."""
    columns = [d[0] for d in con.execute(f"SELECT * FROM ({sql}) LIMIT 0").description]
    day = "strftime(timestamp, '%Y-%m-%d')"
    con.execute(
        f"COPY (SELECT *, {day} AS {q(PARTITION_COLUMN)} FROM ({sql})) TO {lit(str(path))} "
        f"(FORMAT parquet, COMPRESSION zstd, PARTITION_BY ({q(PARTITION_COLUMN)}))"
    )
    return columns
