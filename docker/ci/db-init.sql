-- Run once by the database image on a new data directory (docker-compose.yml mounts it under
-- /docker-entrypoint-initdb.d/init-scripts/). What the self-hosted stack's own volumes/db/*.sql do
-- that the services of docker-compose.yml need: POSTGRES_PASSWORD as the password of the login
-- roles the services use, and the schema Realtime keeps its tenants in.
\set pgpass `echo "$POSTGRES_PASSWORD"`

SELECT format('ALTER ROLE %I WITH PASSWORD %L', rolname, :'pgpass')
FROM pg_roles
WHERE rolname IN ('authenticator', 'pgbouncer', 'supabase_auth_admin', 'supabase_functions_admin',
                  'supabase_storage_admin', 'supabase_admin', 'postgres')
\gexec

CREATE SCHEMA IF NOT EXISTS _realtime;
ALTER SCHEMA _realtime OWNER TO supabase_admin;
