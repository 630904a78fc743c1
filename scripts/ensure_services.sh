#!/usr/bin/env bash
# Makes sure the services the tests talk to answer on loopback: Redis on 127.0.0.1:6379 (started
# here, in memory only, if none answers) and PostgreSQL on 127.0.0.1:5432 (started through the
# Debian cluster tools when a local cluster is installed but down).
set -euo pipefail

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
if ! redis_up; then
  echo "redis: none answers on 127.0.0.1:6379, starting one"
  mkdir -p /tmp/recs-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/recs-redis --logfile /tmp/recs-redis/redis.log
  for _ in $(seq 1 50); do redis_up && break; sleep 0.1; done
fi
redis_up && echo "redis: up on 127.0.0.1:6379"

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
if command -v pg_isready >/dev/null 2>&1 && ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "postgres: down, starting the local cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 1 50); do pg_up && break; sleep 0.2; done
  fi
fi
if command -v pg_isready >/dev/null 2>&1 && pg_up; then
  echo "postgres: up on 127.0.0.1:5432"
else
  echo "postgres: not available on 127.0.0.1:5432 (the PostgreSQL storage test will fail)"
fi
