-- When the attempt of a delivery in 'sending' began: its lease. A job relayed again (its outbox claim ran out while the
-- first run was still talking to a slow SMTP server) resumes a 'sending' row only once this is older than the lease
-- (EmailDeliveryService), so a live attempt is not sent a second time; an attempt cut off by a crash still is, later.
-- Rows 'sending' before this column existed have none and count as expired (resumed, as before).
-- A column of an existing table: its table-level grants (service_role only) and policies apply as they are.
ALTER TABLE core.email_deliveries ADD COLUMN sending_since timestamptz;
