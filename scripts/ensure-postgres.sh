#!/usr/bin/env bash
# Make sure the PostgreSQL server the tests use answers on 127.0.0.1:5432 with a
# database "test" (trust auth). Starts the Debian cluster when it is down.
set -euo pipefail
url="${L3NET_TEST_PG:-postgresql://postgres@127.0.0.1:5432/test}"
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then exit 0; fi
if command -v pg_ctlcluster >/dev/null; then
  version=$(ls /etc/postgresql | sort -n | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "PostgreSQL is not reachable on 127.0.0.1:5432 ($url); the PostgreSQL tests will fail" >&2
  exit 0
fi
# A freshly installed cluster has no "test" database; create it (as the postgres user).
if ! psql "$url" -c 'select 1' >/dev/null 2>&1; then
  su postgres -c "createdb test" 2>/dev/null || createdb -h 127.0.0.1 -U postgres test || true
fi
