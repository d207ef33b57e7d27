#!/bin/sh
# PostgreSQL (Debian's package) for deploy/compose.yaml: on first start, initialise the
# cluster with SCRAM authentication and a `devattest` role and database whose password is the
# postgres_password secret; then run the server as the postgres user.
set -eu
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
export PGDATA=/var/lib/postgresql/data
chown postgres:postgres /var/lib/postgresql
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  cp "$POSTGRES_PASSWORD_FILE" "$pwfile"
  chown postgres "$pwfile"
  chmod 0600 "$pwfile"
  as_postgres "$bindir/initdb" --username=devattest --pwfile="$pwfile" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
    >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  as_postgres "$bindir/postgres" --single -D "$PGDATA" postgres >/dev/null <<'SQL'
CREATE DATABASE devattest OWNER devattest;
SQL
fi
mkdir -p /run/postgresql && chown postgres:postgres /run/postgresql
exec setpriv --reuid=postgres --regid=postgres --init-groups -- \
  "$bindir/postgres" -D "$PGDATA" -c listen_addresses='*' -c max_connections=200
