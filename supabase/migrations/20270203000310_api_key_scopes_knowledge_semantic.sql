-- Generated from prisma/migrations/20270203000310_api_key_scopes_knowledge_semantic/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Two API key scopes (src/platform/auth/api-key-scopes.ts, the list this check repeats): knowledge:read (search and read
-- the knowledge base) and semantic:read (semantic SQL queries over the organization's views). Their routes were open
-- to keys at the guard but declared no scope, so every key was refused them. Both end in :read, so a key holding only
-- read scopes still runs its transactions read-only (public.begin_key_request).
ALTER TABLE core.api_keys
  DROP CONSTRAINT api_keys_scopes_check,
  ADD CONSTRAINT api_keys_scopes_check CHECK (cardinality(scopes) BETWEEN 1 AND 20 AND scopes <@ ARRAY[
    'org:read', 'ledger:read', 'ledger:write', 'receivables:read', 'receivables:write', 'payables:read', 'payables:write',
    'agents:run', 'knowledge:read', 'semantic:read', 'analytics:read', 'analytics:write']::text[]);

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270203000310_api_key_scopes_knowledge_semantic', '8f3f15f3bf791354c61718d1f597e4fe2bfbfbe88e7dbb5f8337de21f7f2994c', 0)
  ON CONFLICT (name) DO NOTHING;
