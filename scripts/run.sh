#!/usr/bin/env bash
# Run the whole service in the foreground: a private clamd (unless
# CLAMD_ADDRESS points at another one), a Celery worker and Gunicorn on
# 127.0.0.1:$PORT. Ctrl-C stops all of them.

set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=scripts/load_env.sh
. scripts/load_env.sh

VENV="${VENV:-$repo_root/.venv}"
if [ ! -x "$VENV/bin/gunicorn" ]; then
    echo "run.sh: $VENV has no gunicorn; run 'make setup' first." >&2
    exit 1
fi

pids=()
stop_all() {
    trap - INT TERM EXIT
    echo
    echo "run.sh: stopping..."
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop_all INT TERM EXIT

private_socket="$DATA_ROOT/clamav/clamd.sock"
if [ -z "${CLAMD_ADDRESS:-}" ] || [ "${CLAMD_ADDRESS}" = "unix://$private_socket" ]; then
    scripts/clamd.sh run &
    pids+=($!)
fi

if ! "$VENV/bin/python" - <<'PY'
import os, sys
import redis
url = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
try:
    redis.Redis.from_url(url, socket_connect_timeout=2).ping()
except redis.RedisError as exc:
    sys.exit(f"run.sh: Redis at {url} is unreachable ({exc}); start redis-server or set REDIS_URL.")
PY
then
    exit 1
fi

# --beat runs the periodic tasks (the reaper of lost jobs, retention) inside
# this one worker; production runs Celery Beat as a service of its own.
mkdir -p "$DATA_ROOT"
"$VENV/bin/celery" -A docling_service worker --loglevel INFO \
    --without-mingle --without-gossip \
    --beat --schedule "$DATA_ROOT/celerybeat-schedule" &
pids+=($!)

"$VENV/bin/gunicorn" docling_service.wsgi:application \
    --bind "127.0.0.1:$PORT" \
    --workers "${GUNICORN_WORKERS:-2}" \
    --timeout 300 \
    --access-logfile - &
pids+=($!)

echo "run.sh: serving on http://127.0.0.1:$PORT (Ctrl-C stops everything)"
# Stop everything as soon as any one of the processes exits.
wait -n "${pids[@]}"
echo "run.sh: a process exited; stopping the others." >&2
