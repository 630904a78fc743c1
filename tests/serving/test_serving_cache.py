"""Response caches: LRU semantics, real Redis, and Redis going away and coming back."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from recs_assets.core.serving.cache import LRUCache, RedisCache, cache_key, make_cache

REDIS_URL = "redis://127.0.0.1:6379/15"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Clock:
    """Manual monotonic clock for TTL and backoff tests."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def prefix() -> Iterator[str]:
    """A unique key prefix in Redis db 15; its keys are deleted afterwards."""
    p = f"recs-test-{uuid.uuid4().hex[:8]}"
    yield p
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{p}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_cache_key_sorts_parts_and_hashes_context() -> None:
    a = cache_key("recs", "v1", "rec", u="7", k=10, ctx={"hour": 3, "device": "tv"})
    b = cache_key("recs", "v1", "rec", k=10, ctx={"device": "tv", "hour": 3}, u="7")
    assert a == b  # order of keyword parts and of context keys does not matter
    assert a.startswith("recs:v1:rec:ctx=") and a.endswith(",k=10,u=7")
    assert cache_key("recs", "v2", "rec", u="7", k=10) != cache_key(
        "recs", "v1", "rec", u="7", k=10
    )


def test_lru_evicts_least_recently_used_and_expires() -> None:
    clock = Clock()
    c = LRUCache(max_entries=2, ttl_s=10, clock=clock)
    c.set("a", "1")
    c.set("b", "2")
    assert c.get("a") == "1"  # a is now more recent than b
    c.set("c", "3")  # capacity 2: evicts b, the least recently used
    assert c.get("b") is None
    assert c.get("c") == "3"
    clock.now += 10.5  # past the 10 s TTL
    assert c.get("a") is None
    assert (c.stats.hits, c.stats.misses, c.stats.writes) == (2, 2, 3)
    assert c.stats.hit_ratio == 0.5


def test_lru_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="capacity"):
        LRUCache(0, 10)
    with pytest.raises(ValueError, match="ttl"):
        LRUCache(10, 0)


def test_redis_cache_roundtrip_with_ttl(prefix: str) -> None:
    c = RedisCache(REDIS_URL, ttl_s=30)
    key = f"{prefix}:v1:rec:u=1"
    assert c.get(key) is None
    c.set(key, "[[1, 2.5]]")
    assert c.get(key) == "[[1, 2.5]]"
    ttl = redis.Redis.from_url(REDIS_URL).ttl(key)
    assert 0 < ttl <= 30
    assert (c.stats.hits, c.stats.misses, c.stats.errors, c.stats.writes) == (1, 1, 0, 1)
    assert isinstance(make_cache(REDIS_URL, 30, 10), RedisCache)
    assert isinstance(make_cache(None, 30, 10), LRUCache)


def test_many_keys_in_one_round_trip(prefix: str) -> None:
    c = RedisCache(REDIS_URL, ttl_s=30)
    keys = [f"{prefix}:v1:rec:u={i}" for i in range(3)]
    c.set_many([(keys[0], "a"), (keys[2], "c")])
    assert c.get_many(keys) == ["a", None, "c"]
    assert 0 < redis.Redis.from_url(REDIS_URL).ttl(keys[2]) <= 30
    assert (c.stats.hits, c.stats.misses, c.stats.writes) == (2, 1, 2)
    assert c.get_many([]) == []
    lru = LRUCache(10, 30)
    lru.set_many([("x", "1")])
    assert lru.get_many(["x", "y"]) == ["1", None]
    dead = RedisCache(f"redis://127.0.0.1:{free_port()}/0", ttl_s=30, timeout_s=0.05)
    assert dead.get_many(keys) == [None, None, None]  # a dead Redis: misses, not errors raised
    dead.set_many([(keys[0], "a")])
    assert dead.stats.errors == 1 and dead.stats.misses == 3


def test_redis_down_is_a_counted_miss_then_reconnects_after_backoff(tmp_path) -> None:
    port = free_port()  # nothing listens here yet
    clock = Clock()
    c = RedisCache(f"redis://127.0.0.1:{port}/0", ttl_s=30, timeout_s=0.2, backoff_s=5, clock=clock)
    start = time.perf_counter()
    assert c.get("k") is None  # connection refused: a miss, not an exception
    c.set("k", "v")  # within the backoff: skipped, Redis not called
    assert c.get("k") is None
    assert time.perf_counter() - start < 1.0  # no 5 s waits, no retries
    assert (c.stats.errors, c.stats.skipped, c.stats.misses) == (1, 2, 2)

    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        probe = redis.Redis(port=port, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        assert c.get("k") is None and c.stats.skipped == 3  # still backing off: not tried yet
        clock.now += 5.0  # backoff over: the next call reaches the new server
        c.set("k", "v")
        assert c.get("k") == "v"
        assert c.stats.errors == 1 and c.stats.hits == 1
    finally:
        server.terminate()
        server.wait(10)
    assert c.get("k") is None  # server gone again: a miss and a second error
    assert c.stats.errors == 2
