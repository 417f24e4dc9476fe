-- The delivery worker's claim (webhook.repository.ts, claimDue) took the globally oldest due messages: one
-- organization's backlog on receivers that do not answer filled every slot, and the others' messages waited behind it.
-- It now takes each enabled endpoint's own oldest due messages (a few per endpoint) and caps an organization's sends in
-- flight, so it reads the pending messages per endpoint in due order: this index. The global due-time index served only
-- the old claim. Needs no superuser; nothing else changes.
CREATE INDEX IF NOT EXISTS webhook_messages_endpoint_due_idx ON core.webhook_messages (org_id, endpoint_id, next_attempt_at, id)
  WHERE status = 'pending';
DROP INDEX IF EXISTS core.webhook_messages_due_idx;
