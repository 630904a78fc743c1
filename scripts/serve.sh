#!/usr/bin/env bash
# Serves what `make run` built: the Bento API on 127.0.0.1:3001 (in the background, when a model
# was exported) and the Dagster UI on 127.0.0.1:3000 (in the foreground). Ctrl-C stops both.
set -euo pipefail
BIN=.venv/bin
mkdir -p .data
# New users of a feature-based model are answered from the Feast online store materialized here.
if [ -z "${RECS_FEAST_REPO:-}" ] && [ -d .data/feast_repo ]; then
  export RECS_FEAST_REPO="$PWD/.data/feast_repo"
fi
api_pid=""
if $BIN/bentoml models get "${RECS_BENTO_MODEL:-recs_recommender:latest}" >/dev/null 2>&1; then
  $BIN/bentoml serve bento.service:RecsService --host 127.0.0.1 --port "${RECS_API_PORT:-3001}" \
    > .data/bento.log 2>&1 &
  api_pid=$!
  trap '[ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 120); do
    curl -fs "http://127.0.0.1:${RECS_API_PORT:-3001}/readyz" >/dev/null 2>&1 && break
    sleep 1
  done
  user=$($BIN/python -c "from recs_assets.core.serving.export import load_serving_model as l; print(l('${RECS_BENTO_MODEL:-recs_recommender:latest}').train.user_ids[0])" 2>/dev/null || echo unknown)
  echo "Bento API on http://127.0.0.1:${RECS_API_PORT:-3001} (Swagger UI at /). A request for user $user:"
  curl -fs -X POST "http://127.0.0.1:${RECS_API_PORT:-3001}/recommend" \
    -H 'content-type: application/json' -d "{\"user_id\": \"$user\", \"k\": 5}" || echo "(the API did not answer: see .data/bento.log)"
  echo
else
  echo "No exported model yet (bento_model not materialized): serving only the Dagster UI."
fi
echo "Dagster UI on http://127.0.0.1:3000"
$BIN/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000
