-- A database shaped as Supabase shapes it: the roles, attributes, schemas and privileges a Supabase project has
-- before any OmniZen migration runs. Run by test/support/supabase-shaped.ts as the bootstrap superuser
-- `supabase_admin` of a throwaway cluster: the roles once per cluster (this file, part 1), the rest in template1 so
-- every database created afterwards has the same shape.
--
-- Written from Supabase's documented facts (supabase/postgres: the initial schema, "demote postgres", "grant auth
-- roles to postgres", "lock down postgres access to auth", "alter api roles for inherit"; supabase/auth: the
-- current auth.uid()/role()/jwt() bodies), not copied from them. It models what matters to OmniZen's migrations:
--   * `postgres` is NOT a superuser: CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS, LOGIN; a member of anon,
--     authenticated and service_role (on PostgreSQL 16+ WITH ADMIN OPTION); USAGE but not CREATE on schema auth,
--     and no grant option there;
--   * anon, authenticated (NOLOGIN) and service_role (NOLOGIN, BYPASSRLS); authenticator, a NOINHERIT login that can
--     switch into the three (PostgREST's login);
--   * schema auth owned by supabase_auth_admin, with auth.users (with GoTrue's is_sso_user and its partial unique
--     index on the address), auth.uid(), auth.role(), auth.email(), auth.jwt();
--   * pgcrypto in schema extensions;
--   * the default privileges in public: every table, sequence and function that postgres (or supabase_admin)
--     creates there grants ALL to anon, authenticated and service_role by name.

-- ---------------------------------------------------------------- part 1: roles (cluster-wide)
-- @roles
CREATE ROLE postgres LOGIN NOSUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS;
CREATE ROLE anon NOLOGIN;
CREATE ROLE authenticated NOLOGIN;
CREATE ROLE service_role NOLOGIN BYPASSRLS;
CREATE ROLE authenticator LOGIN NOINHERIT;
GRANT anon, authenticated, service_role TO authenticator;
CREATE ROLE supabase_auth_admin LOGIN NOINHERIT;
DO $$
BEGIN
  IF current_setting('server_version_num')::int >= 160000 THEN
    EXECUTE 'GRANT anon, authenticated, service_role TO postgres WITH ADMIN OPTION';
  ELSE
    EXECUTE 'GRANT anon, authenticated, service_role TO postgres';
  END IF;
END
$$;
ALTER ROLE postgres SET search_path TO "$user", public, extensions;

-- ---------------------------------------------------------------- part 2: one database's shape (template1)
-- @database
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO postgres;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;

CREATE SCHEMA extensions;
CREATE EXTENSION pgcrypto WITH SCHEMA extensions;
GRANT USAGE ON SCHEMA extensions TO postgres, anon, authenticated, service_role;

CREATE SCHEMA auth AUTHORIZATION supabase_auth_admin;
SET ROLE supabase_auth_admin;
CREATE TABLE auth.users (
  instance_id uuid,
  id uuid PRIMARY KEY,
  aud varchar(255),
  role varchar(255),
  email varchar(255),
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  created_at timestamptz,
  updated_at timestamptz,
  is_sso_user boolean NOT NULL DEFAULT false
);
-- GoTrue's unique address (its migration 20221215195500): SSO users may share one
CREATE UNIQUE INDEX users_email_partial_key ON auth.users (email) WHERE is_sso_user = false;
-- Supabase's current definitions: the claims of the request (PostgREST sets request.jwt.claims), falling
-- back to the older per-claim settings
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid
$$;
CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'))::text
$$;
CREATE FUNCTION auth.email() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim.email', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email'))::text
$$;
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                  nullif(current_setting('request.jwt.claims', true), ''))::jsonb
$$;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role, postgres;
-- postgres may read and write auth's tables (and reference auth.users), but grants nothing on them
GRANT ALL ON auth.users TO postgres;
RESET ROLE;

ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public GRANT ALL ON TABLES TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public GRANT ALL ON SEQUENCES TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public GRANT ALL ON FUNCTIONS TO postgres, anon, authenticated, service_role;
