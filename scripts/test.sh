#!/usr/bin/env bash
# Every test, on both deployments. Storage, database and ingest tests run twice: on the embedded
# default (SQLite + local files) and on scale-out (PostgreSQL + SeaweedFS, started here on
# loopback and stopped at the end); rules, browser and property tests run once.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
start=$(date +%s)

echo "== embedded profile: SQLite + local files"
"$BIN/pytest" -n 2 --dist loadgroup -q

echo "== scale-out profile: PostgreSQL + SeaweedFS"
state=$(mktemp)
trap '"$BIN/python" tests/services.py down "$state" || true; rm -f "$state"' EXIT
eval "$("$BIN/python" tests/services.py up "$state")"
LOCKER_TEST_PROFILE=scale-out "$BIN/pytest" -n 2 --dist loadgroup -q -m "not browser" \
  tests/ingest tests/catalogue tests/dock tests/web/test_pages.py tests/web/test_evidence_page.py tests/web/test_authz_matrix.py \
  tests/web/test_security.py tests/accounts tests/fleet \
  tests/storage tests/outages tests/audit tests/jobs tests/backup tests/web/test_health.py tests/test_db.py tests/test_migrations.py \
  tests/lifecycle

echo "== all tests passed in $(( $(date +%s) - start )) s"
