-- Two API key scopes (src/platform/auth/api-key-scopes.ts, the list this check repeats): knowledge:read (search and read
-- the knowledge base) and semantic:read (semantic SQL queries over the organization's views). Their routes were open
-- to keys at the guard but declared no scope, so every key was refused them. Both end in :read, so a key holding only
-- read scopes still runs its transactions read-only (public.begin_key_request).
ALTER TABLE core.api_keys
  DROP CONSTRAINT api_keys_scopes_check,
  ADD CONSTRAINT api_keys_scopes_check CHECK (cardinality(scopes) BETWEEN 1 AND 20 AND scopes <@ ARRAY[
    'org:read', 'ledger:read', 'ledger:write', 'receivables:read', 'receivables:write', 'payables:read', 'payables:write',
    'agents:run', 'knowledge:read', 'semantic:read', 'analytics:read', 'analytics:write']::text[]);
