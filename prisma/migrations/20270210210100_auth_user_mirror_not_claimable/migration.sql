-- On a Supabase database, core.sync_auth_user gives every OmniZen user a row in auth.users (id = the user's id, its
-- e-mail, no password, no auth.identities row) for the foreign keys of seed 004's tables. Supabase Auth (GoTrue) must
-- never hand that row to whoever signs up or signs in with the same address: its session would carry sub = the
-- OmniZen user's id, which auth.uid() policies take for that user over PostgREST.
--
-- What GoTrue's lookups see (supabase/auth, internal/models/user.go and linking.go, internal/api/signup.go, external.go):
--   * e-mail sign-up, OTP / magic link, password grant, recovery find the user with FindUserByEmailAndAudience:
--     instance_id = '00000000-0000-0000-0000-000000000000' AND lower(email) = ? AND aud = ? AND is_sso_user = false.
--     The mirror row has instance_id and aud NULL, so none of them finds it (a sign-up then tried to insert its own
--     row and failed on users_email_partial_key, UNIQUE (email) WHERE is_sso_user = false).
--   * an OAuth sign-in decides linking with DetermineAccountLinking: users WHERE email ilike any(?) AND is_sso_user
--     IS false, nothing else. It found the mirror row and linked the new identity to it; the row being unconfirmed,
--     GoTrue confirmed it and issued a session when the provider said the e-mail was verified or the project
--     auto-confirms (mailer_autoconfirm: any provider's unverified address would do).
-- Every one of these lookups, and the unique index, leaves out rows with is_sso_user = true (SSO sign-ins link only
-- through auth.identities of their own provider, which the mirror row has none of). So the mirror row is written with
-- is_sso_user = true: GoTrue never finds it by e-mail, and a Supabase user of the same address is a separate row with
-- its own id (POST /v1/auth/exchange then decides whether it may join the OmniZen account). A row that already was
-- GoTrue's (an exchanged Supabase user keeps its auth.users id) only has its e-mail kept in step, as before.
--
-- Only where auth.users is Supabase Auth's table (it has is_sso_user); plain PostgreSQL's compatibility table has no
-- GoTrue in front of it. Existing mirror rows (instance_id and aud NULL: GoTrue writes both on every row it creates)
-- are flagged too, each audited. Needs no superuser: Supabase grants postgres its tables in schema auth.
DO $migration$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'auth.users'::regclass AND attname = 'is_sso_user' AND NOT attisdropped) THEN
    RETURN;
  END IF;

  EXECUTE $sql$
    CREATE OR REPLACE FUNCTION core.sync_auth_user(p_id uuid, p_email text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $fn$
    BEGIN
      -- is_sso_user: out of every GoTrue lookup by e-mail (see migration 20270210210100); set on insert only
      INSERT INTO auth.users (id, email, is_sso_user) VALUES (p_id, p_email, true)
      ON CONFLICT (id) DO UPDATE SET email = excluded.email WHERE auth.users.email IS DISTINCT FROM excluded.email;
    EXCEPTION WHEN unique_violation THEN
      NULL; -- the address is another auth.users row's (Supabase Auth's own user): nothing is written
    END
    $fn$
  $sql$;

  WITH flagged AS (
    UPDATE auth.users u SET is_sso_user = true
    WHERE u.instance_id IS NULL AND u.aud IS NULL AND NOT u.is_sso_user
      AND EXISTS (SELECT 1 FROM core."User" c WHERE c.id = u.id::text)
    RETURNING u.id::text AS user_id)
  INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
  SELECT o.org_id, 'migration:20270210210100', 'system', 'auth.supabase_row_locked', 'user', f.user_id,
    jsonb_build_object('isSsoUser', false), jsonb_build_object('isSsoUser', true)
  FROM flagged f CROSS JOIN LATERAL (SELECT core.personal_org_id(f.user_id) AS org_id) o
  WHERE o.org_id IS NOT NULL
  ORDER BY f.user_id;
END
$migration$;
