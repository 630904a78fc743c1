"""Forget a user: delete their rows, keys and cached lists from every store the platform writes.

``forget_user`` removes one user (by the id the tables hold: the pseudonym; and the raw id where
the landing folder still holds raw ids) from

- every Parquet file under the data dir: raw tables (all partitions), quarantined rows (their raw
  row is JSON), features, datasets, batch predictions, artifact frames, served lists, feedback and
  exposure logs, trending; a file is rewritten only when it held the user;
- CSV batches in the landing folder;
- the Feast online store (SQLite file, or Redis), by the user's entity key;
- Redis: the response cache's lists for the user (every model version), the impressions hash;

then records the request in the request log (``recs_assets.core.phase1.forgetting``) so every
later load drops the user. What it cannot reach is said in ``docs/security.md``: a trained model
keeps the user's row in its id maps and factors until the next retrain, and MLflow keeps the
artifacts of earlier runs until they are deleted there.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recs_assets.core.phase1.forgetting import ForgetRequests

logger = logging.getLogger(__name__)

# columns that hold a user id; JSON columns that may hold one inside (quarantined raw rows)
USER_COLUMNS = frozenset({"user_id"})
JSON_COLUMNS = frozenset({"row", "raw_row", "record"})


@dataclass
class ForgetReport:
    """What was removed where (counts), and the request id in the log."""

    user_id: str
    parquet_rows: dict[str, int] = field(default_factory=dict)
    landing_rows: dict[str, int] = field(default_factory=dict)
    online_store_rows: int = 0
    redis_keys: int = 0
    request_id: str = ""

    def summary(self) -> dict[str, object]:
        out = asdict(self)
        out.pop("user_id")
        return out


def _matches(table: pa.Table, ids: Iterable[str]) -> pa.ChunkedArray | None:
    """Row mask of ``table`` for rows of ``ids``: a user column equal to one, or a JSON column
    that names one as ``"user_id": "<id>"``; None when no column can hold a user."""
    mask = None
    wanted = pa.array(sorted(set(ids)), type=pa.string())
    for name in table.column_names:
        col = table[name]
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            continue
        if name in USER_COLUMNS:
            hit = pc.is_in(col, value_set=wanted)
        elif name in JSON_COLUMNS:
            hit = None
            for uid in wanted.to_pylist():
                needle = json.dumps({"user_id": uid})[1:-1]  # "user_id": "<id>"
                found = pc.match_substring(col, needle)
                hit = found if hit is None else pc.or_(hit, found)
        else:
            continue
        if hit is None:
            continue
        hit = pc.fill_null(hit, False)
        mask = hit if mask is None else pc.or_(mask, hit)
    return mask


def _without(path: Path, table: pa.Table, ids: list[str], write) -> int:  # type: ignore[no-untyped-def]
    """Rewrite ``path`` (beside, then renamed) without the rows of ``ids``; rows removed (0: the
    file is left as it is)."""
    mask = _matches(table, ids)
    n = 0 if mask is None else int(pc.sum(mask).as_py() or 0)
    if n:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        write(table.filter(pc.invert(mask)), tmp)
        os.replace(tmp, path)
        # a file Spark wrote has a Hadoop checksum beside it, stale now: Spark would refuse to
        # read the rewritten file (ChecksumException) when a later build keeps rows from it
        path.with_name(f".{path.name}.crc").unlink(missing_ok=True)
    return n


def scrub_parquet(root: Path, ids: Iterable[str], skip: Iterable[Path] = ()) -> dict[str, int]:
    """Remove the rows of ``ids`` from every Parquet file under ``root``; rows removed per file
    (relative path), only files that held the user."""
    ids = list(ids)
    skipped = [Path(p).resolve() for p in skip]
    removed: dict[str, int] = {}
    if not root.is_dir():
        return removed
    for path in sorted(root.rglob("*.parquet")):
        if any(path.resolve().is_relative_to(s) for s in skipped) or path.name.startswith("."):
            continue
        schema = pq.read_schema(path)
        if not (set(schema.names) & (USER_COLUMNS | JSON_COLUMNS)):
            continue
        n = _without(path, pq.read_table(path), ids, pq.write_table)
        if n:
            removed[str(path.relative_to(root))] = n
    return removed


def scrub_csv(folder: Path, ids: Iterable[str]) -> dict[str, int]:
    """Remove the rows of ``ids`` from every CSV file in ``folder`` (landed batches)."""
    ids = list(ids)
    removed: dict[str, int] = {}
    if not folder.is_dir():
        return removed
    for path in sorted(folder.rglob("*.csv")):
        table = pacsv.read_csv(
            path, convert_options=pacsv.ConvertOptions(column_types={"user_id": pa.string()})
        )
        n = _without(path, table, ids, pacsv.write_csv)
        if n:
            removed[str(path.relative_to(folder))] = n
    return removed


def entity_key_bytes(user_id: str, version: int = 3) -> bytes:
    """The user's serialized Feast entity key (join key ``user_id``), as the stores key rows."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = EntityKey(join_keys=["user_id"], entity_values=[Value(string_val=user_id)])
    return serialize_entity_key(key, entity_key_serialization_version=version)


def scrub_sqlite_online_store(db: Path, user_id: str, version: int = 3) -> int:
    """Delete the user's rows from every table of Feast's SQLite online store; rows deleted."""
    if not db.is_file():
        return 0
    key = entity_key_bytes(user_id, version)
    deleted = 0
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cols = {r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')}
            if "entity_key" in cols:
                deleted += conn.execute(
                    f'DELETE FROM "{table}" WHERE entity_key = ?', (key,)
                ).rowcount
    return deleted


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def scrub_redis(
    redis_url: str, user_id: str, cache_prefix: str, feast_project: str = "", version: int = 3
) -> int:
    """Delete the user's cached lists (every model version and context), impressions and Feast
    online row from Redis; keys deleted."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        uid = _glob_escape(user_id)
        keys: set[bytes] = set()
        for pattern in (
            f"{_glob_escape(cache_prefix)}:*:rec:*u={uid},*",
            f"{_glob_escape(cache_prefix)}:*:rec:*u={uid}",
        ):
            keys.update(client.scan_iter(match=pattern, count=1000))
        keys.add(f"{cache_prefix}-served:{user_id}".encode())
        if feast_project:
            keys.add(entity_key_bytes(user_id, version) + feast_project.encode("utf-8"))
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()


@dataclass(frozen=True)
class ForgetTargets:
    """Where the platform keeps data: what ``forget_user`` scrubs.

    Attributes:
        data_dir: the data dir (every Parquet file under it).
        landing_dir: the landing folder (CSV batches), if outside the data dir or CSV.
        requests: the forget request log (not scrubbed: it holds digests only).
        online_store_db: Feast's SQLite online store file, if SQLite.
        redis_url: the Redis of the cache, impressions and (if so configured) Feast.
        cache_prefix: the response cache's key prefix.
        feast_project: Feast project name, when its online store is Redis.
    """

    data_dir: Path
    landing_dir: Path
    requests: ForgetRequests
    online_store_db: Path | None = None
    redis_url: str = ""
    cache_prefix: str = "recs"
    feast_project: str = ""


def forget_user(
    targets: ForgetTargets, user_id: str, raw_id: str | None = None, requested_by: str = "cli"
) -> ForgetReport:
    """Remove ``user_id`` (the pseudonym the tables hold) from every store of ``targets`` and
    record the request; ``raw_id``: the raw id landed batches may still hold."""
    if not user_id or any(ord(c) < 32 or ord(c) == 127 for c in user_id):
        raise ValueError(f"user id must be printable and non-empty, got {user_id!r}")
    ids = [user_id] + ([raw_id] if raw_id and raw_id != user_id else [])
    report = ForgetReport(user_id=user_id)
    report.parquet_rows = scrub_parquet(targets.data_dir, ids, skip=[targets.requests.folder])
    report.landing_rows = scrub_csv(targets.landing_dir, ids)
    if targets.online_store_db is not None:
        report.online_store_rows = scrub_sqlite_online_store(targets.online_store_db, user_id)
    if targets.redis_url:
        report.redis_keys = scrub_redis(
            targets.redis_url, user_id, targets.cache_prefix, targets.feast_project
        )
    report.request_id = targets.requests.record(
        user_id, requested_by, json.dumps(report.summary(), sort_keys=True)
    )
    logger.info("forgot a user (request %s): %s", report.request_id, report.summary())
    return report


def targets_from_env(env: Mapping[str, str] | None = None) -> ForgetTargets:
    """The stores of this deployment, from the same variables the platform reads."""
    from recs_assets.core.contracts import REDIS_URL_ENV
    from recs_assets.core.paths import data_dir
    from recs_assets.core.phase1.forgetting import forget_requests

    env = os.environ if env is None else env
    root = data_dir(env)
    redis_url = env.get(REDIS_URL_ENV, "")
    # Feast keys are made with Feast's own encoder: a Bento without Feast has no online store
    feast = importlib.util.find_spec("feast") is not None
    return ForgetTargets(
        data_dir=root,
        landing_dir=Path(env["RECS_LANDING_DIR"]) if env.get("RECS_LANDING_DIR") else root,
        requests=forget_requests(env),
        online_store_db=None if redis_url or not feast else root / "feast_repo" / "online_store.db",
        redis_url=redis_url,
        cache_prefix=env.get("RECS_CACHE_PREFIX", "recs") or "recs",
        feast_project="recs" if redis_url and feast else "",
    )
