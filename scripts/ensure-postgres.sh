#!/usr/bin/env bash
# Make sure PostgreSQL answers on 127.0.0.1:5432 and has the role the test suite logs in as.
# Installs and starts a server only when none answers.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
role=sealgate_test

command -v pg_isready >/dev/null || "$here/system-packages.sh" postgresql-client
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  "$here/system-packages.sh" postgresql
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  for version in $(ls /etc/postgresql); do
    $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
  pg_isready -h 127.0.0.1 -p 5432
fi

as_postgres() {
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else (cd / && sudo -u postgres "$@"); fi
}
if ! as_postgres psql -tAqc "SELECT 1 FROM pg_roles WHERE rolname = '$role'" | grep -q 1; then
  as_postgres psql -qc "CREATE ROLE $role LOGIN CREATEDB PASSWORD '$role'"
  echo "created PostgreSQL role $role for the tests"
fi
