#!/usr/bin/env bash
# Run the test suite against real services: PostgreSQL (DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/docling_service), Redis database 15, a
# private clamd (started here unless one replies to PING at CLAMD_ADDRESS), and a
# Celery worker and Gunicorn that the tests start themselves.
# Extra arguments go to pytest, e.g. `make test ARGS=-k upload` or
# `bash scripts/test.sh -x documents`.

set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=scripts/load_env.sh
. scripts/load_env.sh

VENV="${VENV:-$repo_root/.venv}"
export DJANGO_SETTINGS_MODULE=docling_service.settings.test
export DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/docling_service}"
export CLAMD_SKIP_FRESHCLAM="${CLAMD_SKIP_FRESHCLAM:-1}"
export CLAMD_ADDRESS="${CLAMD_ADDRESS:-unix://$DATA_ROOT/clamav/clamd.sock}"

started_clamd=0
if ! scripts/clamd.sh status >/dev/null 2>&1; then
    scripts/clamd.sh start
    started_clamd=1
fi
cleanup() {
    if [ "$started_clamd" = 1 ]; then scripts/clamd.sh stop || true; fi
}
trap cleanup EXIT

# A temporary folder of this run's own: pytest's shared default keeps only
# the last three runs, so concurrent runs would delete each other's files.
basetemp="$(mktemp -d "${TMPDIR:-/tmp}/docling-service-tests.XXXXXX")"

set +e
"$VENV/bin/pytest" --basetemp "$basetemp" "$@"
status=$?
set -e
if [ "$status" = 0 ]; then
    rm -rf "$basetemp"
else
    echo "test.sh: test files and service logs kept in $basetemp" >&2
fi
# pytest exits 5 when it collected no test: that is a failure here too.
exit "$status"
