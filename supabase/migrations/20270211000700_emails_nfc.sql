-- Generated from prisma/migrations/20270211000700_emails_nfc/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- E-mail addresses in one Unicode form, NFC (review r1, L3). The API now normalizes every address it takes
-- (platform/http/email.ts: trimmed, lower-cased, NFC), and the lookups compare lower(email) with that form; an address
-- stored decomposed (e + U+0301 for é) would be a second account, a second pending invitation, a failed sign-in.
-- This brings the stored addresses to NFC:
--   * an account whose address in NFC is another account's is NOT merged: each such pair is reported (RAISE NOTICE)
--     and both rows are left as they are, for a person to resolve (the API compares in NFC, so the decomposed one can no
--     longer be signed in to with a password typed either way until then);
--   * likewise a pending invitation whose address in NFC is another pending one's in the same organization;
--   * every other address (accounts, identities, invitations, verification links, e-mail change requests, mails sent)
--     becomes NFC, except those whose decomposed form stays a reported account's (review rn): its own rows (identities,
--     links, change requests, the invitations it accepted), and any other row whose address in NFC is one that account's
--     rows keep decomposed (its own, a former one, one its identity asserts: review ro) (an invitation is reported;
--     another account's identity or link is left and its identities reported): normalized, they would read as the kept
--     account's address (or nobody's) and its key would stay with the decomposed one. An invitation of another
--     organization to a reported pending pair's address is normalized (freezing it too made it unacceptable, and its
--     accepted account's erasure missed it: review rf1); the decomposed key stays with the pair (reported below);
--   * the new address of a pending e-mail change becomes NFC always (its confirmation refuses an address taken in NFC);
--   * the personal-data keys of e-mail subjects follow an address that became NFC, and so do the mails sent to it (below).
-- Each account and invitation changed is audited (user.email_normalized, invitation.email_normalized: the address
-- itself stays out of the audit log). auth.users is left alone: its mirror rows serve foreign keys only (by id), and
-- GoTrue's own rows are GoTrue's (the exchange compares their claim in NFC: external-token.ts). Needs no superuser.
DO $migration$
DECLARE
  r record;
  -- the addresses of the mails sent to a form other than NFC (lower-cased, as erasure and export look them up: the index
  -- email_deliveries_to_address_idx): the one scan of the largest table holding addresses (review rn: 200k rows)
  delivery_forms text[] := ARRAY(SELECT DISTINCT lower(to_address) FROM core.email_deliveries WHERE to_address IS NOT NFC NORMALIZED);
  -- the addresses stored in another form than NFC before this migration (trimmed, lower-cased: as their keys' subjects
  -- hash them), for their keys (below); the mails' too: an invitation purged since leaves its key and mails (review rn)
  old_forms text[] := ARRAY(
    SELECT DISTINCT f.form FROM (
      SELECT lower(trim(email)) AS form FROM core."User" WHERE email IS NOT NFC NORMALIZED
      UNION ALL SELECT lower(trim(email)) FROM core.invitations WHERE email IS NOT NFC NORMALIZED
      UNION ALL SELECT lower(trim(email)) FROM core.user_identities WHERE email IS NOT NFC NORMALIZED
      UNION ALL SELECT lower(trim(email)) FROM core.email_verification_tokens WHERE email IS NOT NFC NORMALIZED
      UNION ALL SELECT lower(trim(old_email)) FROM core.email_change_requests WHERE old_email IS NOT NFC NORMALIZED
      UNION ALL SELECT lower(trim(new_email)) FROM core.email_change_requests WHERE new_email IS NOT NFC NORMALIZED
      UNION ALL SELECT trim(d.form) FROM unnest(delivery_forms) d(form)) f
    WHERE f.form IS NOT NFC NORMALIZED);
  still_stored text[];
  -- the accounts of the reported pairs, left decomposed
  left_users text[] := '{}';
  -- every address the decomposed accounts' rows keep in a form other than NFC (their own, a former one a confirmed change
  -- proves, one an identity of theirs asserts), in NFC (review ro): a row of another kind or account with that address
  -- normalized would be read as theirs no longer (its key and mails stay with the decomposed form)
  left_forms text[];
  -- and the addresses of the pending invitations reported as colliding (left decomposed, with their key), in NFC
BEGIN
  FOR r IN
    SELECT u.id, o.id AS other FROM core."User" u
    JOIN core."User" o ON o.id <> u.id AND lower(normalize(o.email, NFC)) = lower(normalize(u.email, NFC))
    WHERE u.email IS NOT NFC NORMALIZED ORDER BY u.id, o.id
  LOOP
    RAISE NOTICE 'e-mail NFC: user % has an address whose NFC form is user %''s; neither is changed (resolve by hand)', r.id, r.other;
    left_users := left_users || r.id;
  END LOOP;
  -- a pending change's new address is no proof and becomes NFC below; everything else of theirs is left
  left_forms := ARRAY(
    SELECT DISTINCT lower(normalize(f.form, NFC)) FROM (
      SELECT email AS form FROM core."User" WHERE id = ANY(left_users)
      UNION ALL SELECT email FROM core.user_identities WHERE user_id = ANY(left_users)
      UNION ALL SELECT email FROM core.email_verification_tokens WHERE user_id = ANY(left_users)
      UNION ALL SELECT old_email FROM core.email_change_requests WHERE user_id = ANY(left_users)
      UNION ALL SELECT new_email FROM core.email_change_requests WHERE user_id = ANY(left_users) AND confirmed_at IS NOT NULL) f
    WHERE f.form IS NOT NFC NORMALIZED);

  FOR r IN
    SELECT i.org_id, i.id, o.id AS other FROM core.invitations i
    JOIN core.invitations o ON o.org_id = i.org_id AND o.id <> i.id AND o.accepted_at IS NULL AND o.revoked_at IS NULL
      AND lower(normalize(o.email, NFC)) = lower(normalize(i.email, NFC))
    WHERE i.email IS NOT NFC NORMALIZED AND i.accepted_at IS NULL AND i.revoked_at IS NULL ORDER BY i.org_id, i.id, o.id
  LOOP
    RAISE NOTICE 'e-mail NFC: pending invitation % of organization % has an address whose NFC form is pending invitation %''s; neither is changed (revoke one)', r.id, r.org_id, r.other;
  END LOOP;

  WITH changed AS (
    UPDATE core."User" u SET email = normalize(u.email, NFC), "updatedAt" = now() AT TIME ZONE 'utc'
    WHERE u.email IS NOT NFC NORMALIZED AND u.id <> ALL(left_users)
    RETURNING u.id)
  INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
  SELECT o.org_id, 'migration:20270211000700', 'system', 'user.email_normalized', 'user', c.id,
    jsonb_build_object('emailForm', 'not NFC'), jsonb_build_object('emailForm', 'NFC')
  FROM changed c CROSS JOIN LATERAL (SELECT core.personal_org_id(c.id) AS org_id) o
  WHERE o.org_id IS NOT NULL
  ORDER BY c.id;

  -- An invitation to an address a reported pair's decomposed account keeps (in NFC: its own, the kept account's, a former
  -- one of it: review ro) or accepted by that account stays as it is (review rn): normalized, it would be the kept
  -- account's or nobody's (erasure and export locate invitations by the proven addresses) while its key and mails stayed
  -- with the decomposed form; which account it is for is for a person to say. A reported pending pair (same organization)
  -- stays as it is too (reported above).
  FOR r IN
    SELECT i.org_id, i.id FROM core.invitations i
    WHERE i.email IS NOT NFC NORMALIZED AND (lower(normalize(i.email, NFC)) = ANY(left_forms) OR coalesce(i.accepted_by = ANY(left_users), false))
    ORDER BY i.org_id, i.id
  LOOP
    RAISE NOTICE 'e-mail NFC: invitation % of organization % is for the address of a reported pair of users (or was accepted by its decomposed one); it is not changed (resolve with the pair)', r.id, r.org_id;
  END LOOP;

  WITH changed AS (
    UPDATE core.invitations i SET email = normalize(i.email, NFC)
    WHERE i.email IS NOT NFC NORMALIZED
      AND lower(normalize(i.email, NFC)) <> ALL(left_forms) AND NOT coalesce(i.accepted_by = ANY(left_users), false)
      AND NOT (i.accepted_at IS NULL AND i.revoked_at IS NULL AND EXISTS (
        SELECT 1 FROM core.invitations o WHERE o.org_id = i.org_id AND o.id <> i.id AND o.accepted_at IS NULL AND o.revoked_at IS NULL
          AND lower(normalize(o.email, NFC)) = lower(normalize(i.email, NFC))))
    RETURNING i.org_id, i.id)
  INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
  SELECT c.org_id, 'migration:20270211000700', 'system', 'invitation.email_normalized', 'invitation', c.id::text,
    jsonb_build_object('emailForm', 'not NFC'), jsonb_build_object('emailForm', 'NFC')
  FROM changed c ORDER BY c.org_id, c.id;

  -- The rows that follow an account's address (identities, verification links, e-mail change requests): NFC where the
  -- account's address now is, i.e. its own address was normalized or already NFC. An account of a reported pair left with
  -- its decomposed address keeps them as they are (review r8): normalized, they would read as the other account's address,
  -- its proofs (core.user_email_verified, the proven addresses erasure and export locate and shred by) would be lost to
  -- it and become the other account's. So does another account's row whose address in NFC is a pair's, unless that is
  -- the account's own address (the kept one's): it would prove the kept account's address (review rn); its identities
  -- are reported.
  FOR r IN
    SELECT ui.user_id, ui.provider FROM core.user_identities ui
    WHERE ui.email IS NOT NFC NORMALIZED AND lower(normalize(ui.email, NFC)) = ANY(left_forms) AND ui.user_id <> ALL(left_users)
      AND lower(normalize(ui.email, NFC)) <> (SELECT lower(u.email) FROM core."User" u WHERE u.id = ui.user_id)
    ORDER BY ui.user_id, ui.provider, ui.subject
  LOOP
    RAISE NOTICE 'e-mail NFC: the % identity of user % is for the address of a reported pair of users; it is not changed (resolve with the pair)', r.provider, r.user_id;
  END LOOP;
  UPDATE core.user_identities ui SET email = normalize(ui.email, NFC)
  FROM core."User" u
  WHERE u.id = ui.user_id AND u.email IS NFC NORMALIZED AND ui.email IS NOT NFC NORMALIZED
    AND (lower(normalize(ui.email, NFC)) <> ALL(left_forms) OR lower(normalize(ui.email, NFC)) = lower(u.email));
  UPDATE core.email_verification_tokens t SET email = normalize(t.email, NFC)
  FROM core."User" u
  WHERE u.id = t.user_id AND u.email IS NFC NORMALIZED AND t.email IS NOT NFC NORMALIZED
    AND (lower(normalize(t.email, NFC)) <> ALL(left_forms) OR lower(normalize(t.email, NFC)) = lower(u.email));
  -- the new address of a pending change is no proof of anything yet, whoever asked: NFC, as the app would have stored it
  -- (review rn: a decomposed one, confirmed, made a new pair); the confirmation refuses it if it is taken in NFC
  UPDATE core.email_change_requests SET new_email = normalize(new_email, NFC)
  WHERE confirmed_at IS NULL AND new_email IS NOT NFC NORMALIZED;
  UPDATE core.email_change_requests c SET
    old_email = CASE WHEN lower(normalize(c.old_email, NFC)) <> ALL(left_forms) OR lower(normalize(c.old_email, NFC)) = lower(u.email)
      THEN normalize(c.old_email, NFC) ELSE c.old_email END,
    new_email = CASE WHEN lower(normalize(c.new_email, NFC)) <> ALL(left_forms) OR lower(normalize(c.new_email, NFC)) = lower(u.email)
      THEN normalize(c.new_email, NFC) ELSE c.new_email END
  FROM core."User" u
  WHERE u.id = c.user_id AND u.email IS NFC NORMALIZED AND (c.old_email IS NOT NFC NORMALIZED OR c.new_email IS NOT NFC NORMALIZED);

  -- The personal-data keys of e-mail subjects (privacy/audit-sealing.ts emailSubject: 'email:' || sha256 hex of the
  -- address trimmed and lower-cased, UTF-8) follow their address (review r8): the audit entries sealed for an address
  -- before it became NFC are erased and exported with the NFC form's key, the one erasure and export now compute (they
  -- hash the proven addresses, now NFC). A decomposed address still stored after the above (a reported pair's account, its
  -- rows, a pending invitation left for a person) keeps its key: it is still that address's. A key whose NFC subject is
  -- already taken (the address was also sealed for in NFC: subject is unique, two keys cannot merge) is reported and left.
  -- The mails sent to such an address (core.email_deliveries.to_address, how erasure and export find them) follow too,
  -- also when no other row has the address any more (an invitation purged since: review rn).
  -- No audit entry: the keys are nobody's data and carry no organization; the rows they are about are audited above.
  SELECT coalesce(array_agg(DISTINCT f.form), '{}') INTO still_stored FROM (
    SELECT lower(trim(email)) AS form FROM core."User" WHERE email IS NOT NFC NORMALIZED
    UNION ALL SELECT lower(trim(email)) FROM core.invitations WHERE email IS NOT NFC NORMALIZED
    UNION ALL SELECT lower(trim(email)) FROM core.user_identities WHERE email IS NOT NFC NORMALIZED
    UNION ALL SELECT lower(trim(email)) FROM core.email_verification_tokens WHERE email IS NOT NFC NORMALIZED
    UNION ALL SELECT lower(trim(old_email)) FROM core.email_change_requests WHERE old_email IS NOT NFC NORMALIZED
    UNION ALL SELECT lower(trim(new_email)) FROM core.email_change_requests WHERE new_email IS NOT NFC NORMALIZED) f;
  FOR r IN
    SELECT k.id, o.form, 'email:' || encode(sha256(convert_to(lower(normalize(o.form, NFC)), 'UTF8')), 'hex') AS nfc_subject
    FROM unnest(old_forms) o(form)
    JOIN core.personal_data_keys k ON k.subject = 'email:' || encode(sha256(convert_to(o.form, 'UTF8')), 'hex')
    WHERE o.form <> ALL(still_stored)
    ORDER BY k.id
  LOOP
    IF EXISTS (SELECT 1 FROM core.personal_data_keys k WHERE k.subject = r.nfc_subject) THEN
      RAISE NOTICE 'e-mail NFC: personal data key % is for an address whose NFC form has a key of its own; it is left under its subject (the audit entries sealed with it are not erased or exported with the address)', r.id;
    ELSE
      UPDATE core.personal_data_keys SET subject = r.nfc_subject WHERE id = r.id;
    END IF;
  END LOOP;
  -- by the index on lower(to_address), not a second scan
  UPDATE core.email_deliveries SET to_address = normalize(to_address, NFC)
  WHERE lower(to_address) = ANY(ARRAY(SELECT unnest(delivery_forms) EXCEPT SELECT unnest(still_stored))) AND to_address IS NOT NFC NORMALIZED;
END
$migration$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211000700_emails_nfc', '0f438bf9cff1fb58d7bbe0b30d6da3e5a6f243c776423e72e3b2faf97aea48e2', 0)
  ON CONFLICT (name) DO NOTHING;
