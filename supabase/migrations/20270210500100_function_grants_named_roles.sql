-- Generated from prisma/migrations/20270210500100_function_grants_named_roles/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- These functions were revoked FROM PUBLIC only. Default privileges grant a new function to anon, authenticated and
-- service_role by name (Supabase's in public; an operator's in core or ai, as Supabase's guide to exposing a schema sets
-- them), and a REVOKE FROM PUBLIC leaves such grants: core.invitations_within_hour (which counts invitations across
-- organizations) and core.accept_invitation would then be callable by anon over /rest/v1/rpc. Each is now revoked from
-- those roles by name, as every function since 20270210160100 is, and granted again to the roles that call it (the
-- allow-list, test/platform/privileges.ts; the catalog test names any function created since 20261201000100 without
-- such a REVOKE). Needs no superuser: the migrations' role owns them.

-- the API's, in a request's transaction (authenticated, after begin_request)
REVOKE ALL ON FUNCTION core.invitations_within_hour(text) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.invitations_within_hour(text) TO authenticated;
REVOKE ALL ON FUNCTION core.accept_invitation(uuid, text, text) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.accept_invitation(uuid, text, text) TO authenticated;

-- the knowledge base's, called by its policies and queries as the request's role or the privileged paths
REVOKE ALL ON FUNCTION ai.dot_product(real[], real[]) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION ai.dot_product(real[], real[]) TO authenticated, service_role;
REVOKE ALL ON FUNCTION ai.embedding_storage() FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION ai.embedding_storage() TO authenticated, service_role;
REVOKE ALL ON FUNCTION ai.readable_collections() FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION ai.readable_collections() TO authenticated, service_role;
REVOKE ALL ON FUNCTION ai.knowledge_text_matches(text, uuid[], uuid[], text[], timestamptz, timestamptz, int) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION ai.knowledge_text_matches(text, uuid[], uuid[], text[], timestamptz, timestamptz, int) TO authenticated, service_role;

-- trigger functions: their triggers run them; no role calls them
REVOKE ALL ON FUNCTION core.organization_delete_cascade(), finance.check_allocation(), finance.drain_postings(), finance.guard_bill(),
  finance.guard_bill_line(), finance.guard_tax_code() FROM PUBLIC, anon, authenticated, service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210500100_function_grants_named_roles', '70965779d63785dab5fcf0420c8e963072026404e280e8067658ed70a606ba39', 0)
  ON CONFLICT (name) DO NOTHING;
