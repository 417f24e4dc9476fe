-- E-mail addresses in one Unicode form, NFC (review r1, L3). The API now normalizes every address it takes
-- (platform/http/email.ts: trimmed, lower-cased, NFC), and the lookups compare lower(email) with that form; an address
-- stored decomposed (e + U+0301 for é) would be a second account, a second pending invitation, a failed sign-in.
-- This brings the stored addresses to NFC:
--   * an account whose address in NFC is another account's is NOT merged: each such pair is reported (RAISE NOTICE)
--     and both rows are left as they are, for a person to resolve (the API compares in NFC, so the decomposed one can no
--     longer be signed in to with a password typed either way until then);
--   * likewise a pending invitation whose address in NFC is another pending one's in the same organization;
--   * every other address (accounts, identities, invitations, verification links, e-mail change requests) becomes NFC.
-- Each account and invitation changed is audited (user.email_normalized, invitation.email_normalized: the address
-- itself stays out of the audit log). auth.users is left alone: its mirror rows serve foreign keys only (by id), and
-- GoTrue's own rows are GoTrue's (the exchange compares their claim in NFC: external-token.ts). Needs no superuser.
DO $migration$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT u.id, o.id AS other FROM core."User" u
    JOIN core."User" o ON o.id <> u.id AND lower(normalize(o.email, NFC)) = lower(normalize(u.email, NFC))
    WHERE u.email IS NOT NFC NORMALIZED ORDER BY u.id, o.id
  LOOP
    RAISE NOTICE 'e-mail NFC: user % has an address whose NFC form is user %''s; neither is changed (resolve by hand)', r.id, r.other;
  END LOOP;

  FOR r IN
    SELECT i.org_id, i.id, o.id AS other FROM core.invitations i
    JOIN core.invitations o ON o.org_id = i.org_id AND o.id <> i.id AND o.accepted_at IS NULL AND o.revoked_at IS NULL
      AND lower(normalize(o.email, NFC)) = lower(normalize(i.email, NFC))
    WHERE i.email IS NOT NFC NORMALIZED AND i.accepted_at IS NULL AND i.revoked_at IS NULL ORDER BY i.org_id, i.id, o.id
  LOOP
    RAISE NOTICE 'e-mail NFC: pending invitation % of organization % has an address whose NFC form is pending invitation %''s; neither is changed (revoke one)', r.id, r.org_id, r.other;
  END LOOP;
END
$migration$;

WITH changed AS (
  UPDATE core."User" u SET email = normalize(u.email, NFC), "updatedAt" = now() AT TIME ZONE 'utc'
  WHERE u.email IS NOT NFC NORMALIZED
    AND NOT EXISTS (SELECT 1 FROM core."User" o WHERE o.id <> u.id AND lower(normalize(o.email, NFC)) = lower(normalize(u.email, NFC)))
  RETURNING u.id)
INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
SELECT o.org_id, 'migration:20270211000700', 'system', 'user.email_normalized', 'user', c.id,
  jsonb_build_object('emailForm', 'not NFC'), jsonb_build_object('emailForm', 'NFC')
FROM changed c CROSS JOIN LATERAL (SELECT core.personal_org_id(c.id) AS org_id) o
WHERE o.org_id IS NOT NULL
ORDER BY c.id;

WITH changed AS (
  UPDATE core.invitations i SET email = normalize(i.email, NFC)
  WHERE i.email IS NOT NFC NORMALIZED
    AND NOT (i.accepted_at IS NULL AND i.revoked_at IS NULL AND EXISTS (
      SELECT 1 FROM core.invitations o WHERE o.org_id = i.org_id AND o.id <> i.id AND o.accepted_at IS NULL AND o.revoked_at IS NULL
        AND lower(normalize(o.email, NFC)) = lower(normalize(i.email, NFC))))
  RETURNING i.org_id, i.id)
INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
SELECT c.org_id, 'migration:20270211000700', 'system', 'invitation.email_normalized', 'invitation', c.id::text,
  jsonb_build_object('emailForm', 'not NFC'), jsonb_build_object('emailForm', 'NFC')
FROM changed c ORDER BY c.org_id, c.id;

-- the rows that follow an account's address (no uniqueness among them): the same address as the account's now
UPDATE core.user_identities SET email = normalize(email, NFC) WHERE email IS NOT NFC NORMALIZED;
UPDATE core.email_verification_tokens SET email = normalize(email, NFC) WHERE email IS NOT NFC NORMALIZED;
UPDATE core.email_change_requests SET old_email = normalize(old_email, NFC) WHERE old_email IS NOT NFC NORMALIZED;
UPDATE core.email_change_requests SET new_email = normalize(new_email, NFC) WHERE new_email IS NOT NFC NORMALIZED;
