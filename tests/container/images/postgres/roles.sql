-- The roles and schemas the official supabase/postgres image gives a new database, as far as the
-- stack's services and the gateway rely on them; every login role gets POSTGRES_PASSWORD (the
-- stack's volumes/db/roles.sql does that there). Run once by postgres-entrypoint, as postgres.
CREATE ROLE supabase_admin SUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS LOGIN PASSWORD :'pgpass';
CREATE ROLE authenticator NOINHERIT LOGIN PASSWORD :'pgpass';
CREATE ROLE anon NOLOGIN NOINHERIT;
CREATE ROLE authenticated NOLOGIN NOINHERIT;
CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
GRANT anon, authenticated, service_role TO authenticator;
CREATE ROLE supabase_auth_admin NOINHERIT CREATEROLE LOGIN PASSWORD :'pgpass';
CREATE ROLE supabase_storage_admin NOINHERIT CREATEROLE LOGIN PASSWORD :'pgpass';
CREATE SCHEMA auth AUTHORIZATION supabase_auth_admin;
CREATE SCHEMA storage AUTHORIZATION supabase_storage_admin;
CREATE SCHEMA extensions;
GRANT USAGE ON SCHEMA public, extensions TO anon, authenticated, service_role;
GRANT USAGE ON SCHEMA auth, storage TO anon, authenticated, service_role;
