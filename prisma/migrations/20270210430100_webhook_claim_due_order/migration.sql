-- The delivery worker's claim (webhook.repository.ts, claimDue) looks for candidates among the oldest due messages
-- first, in due order, and per endpoint (webhook_messages_endpoint_due_idx) only when a few organizations' backlog fills
-- those: a per-endpoint lookup over every enabled endpoint cost a claim seconds with tens of thousands of them. The
-- due-order index is back (webhook_messages_due_idx, dropped by 20270210340100), with the id the claim orders by after
-- the due time. Needs no superuser; nothing else changes.
DROP INDEX IF EXISTS core.webhook_messages_due_idx;
CREATE INDEX webhook_messages_due_idx ON core.webhook_messages (next_attempt_at, id) WHERE status = 'pending';
