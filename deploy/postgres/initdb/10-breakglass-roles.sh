#!/bin/sh
# Run by the postgres image on an empty data directory only (docker-entrypoint-initdb.d): creates
# the portal's owner and runtime roles. For an existing database, run deploy/postgres/roles.sql
# by hand (see the README's deployment section).
set -eu
psql --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v owner_role=breakglass_owner -v owner_password="$BREAKGLASS_DB_OWNER_PASSWORD" \
    -v runtime_role=breakglass_app -v runtime_password="$BREAKGLASS_DB_RUNTIME_PASSWORD" \
    -v database="$POSTGRES_DB" \
    -f /breakglass/roles.sql
