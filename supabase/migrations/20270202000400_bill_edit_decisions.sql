-- Generated from prisma/migrations/20270202000400_bill_edit_decisions/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Bills and expense claims: who last changed a document's content is recorded, as a decision 'edit'.
--
-- Four-eyes approval refused only the creator (and a claim's claimant): another bookkeeper could rewrite the lines of
-- someone's draft or rejected bill and then approve what they wrote themselves. An edit replaces the whole content, so
-- its author is the author of what is approved; the API refuses approval from the creator, the claimant, the last
-- editor and the submitter. The row goes into the append-only decision trail (listed with the decisions), so the
-- check needs no read of the audit log (which only owners and admins may read).

ALTER TABLE finance.bill_decisions DROP CONSTRAINT bill_decisions_decision_check;
ALTER TABLE finance.bill_decisions ADD CONSTRAINT bill_decisions_decision_check
  CHECK (decision IN ('submit', 'approve', 'reject', 'comment', 'edit'));

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270202000400_bill_edit_decisions', '7f211f45b6a340df9695191af43c0305d6b51415cfe93c4bf969d711e48e77a4', 0)
  ON CONFLICT (name) DO NOTHING;
