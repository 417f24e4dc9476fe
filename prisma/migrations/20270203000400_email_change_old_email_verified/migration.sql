-- Whether the old address of an e-mail change was proven (an identity of the user had verified it) when the change
-- was confirmed. Confirming moves the password identity's proof to the new address, so afterwards nothing else says
-- the old address was ever the person's: erasure and export count it as proven only when this is true. Changes
-- confirmed before this column existed stay false (unknown counts as unproven).
-- A column of an existing table: its table-level grants (service_role only) and policies apply as they are.
ALTER TABLE core.email_change_requests
  ADD COLUMN old_email_verified boolean NOT NULL DEFAULT false,
  ADD CONSTRAINT email_change_requests_old_email_verified_confirmed CHECK (NOT old_email_verified OR confirmed_at IS NOT NULL);
