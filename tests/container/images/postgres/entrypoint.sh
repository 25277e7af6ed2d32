#!/bin/bash
# Starts Debian's PostgreSQL the way the stack's `db` service is started (see Dockerfile).
set -euo pipefail

if [ "${1:-postgres}" != postgres ]; then
  exec "$@"
fi
[ $# -gt 0 ] && shift
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set}"
port=${PGPORT:-${POSTGRES_PORT:-5432}}
db=${POSTGRES_DB:-postgres}
as_postgres=(setpriv --reuid=postgres --regid=postgres --init-groups)

mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "postgres-entrypoint: new database in $PGDATA"
  pwfile=$(mktemp)
  printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
  chown postgres "$pwfile"
  "${as_postgres[@]}" initdb -D "$PGDATA" -U postgres --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  "${as_postgres[@]}" pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p $port" start >/dev/null
  psql=(psql -X -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -p "$port")
  "${as_postgres[@]}" "${psql[@]}" -U postgres -d postgres -v pgpass="$POSTGRES_PASSWORD" \
    -f /usr/local/share/gateway-local/roles.sql
  if [ "$db" != postgres ]; then
    "${as_postgres[@]}" "${psql[@]}" -U postgres -d postgres -c "CREATE DATABASE \"$db\""
  fi
  # As the official image: init-scripts/ first, then migrations/, each in name order.
  find /docker-entrypoint-initdb.d -name '*.sql' 2>/dev/null | sort | while read -r script; do
    echo "postgres-entrypoint: running $script"
    "${as_postgres[@]}" "${psql[@]}" -U supabase_admin -d "$db" -f "$script"
  done
  "${as_postgres[@]}" pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi

exec "${as_postgres[@]}" postgres -D "$PGDATA" -p "$port" -c listen_addresses='*' "$@"
