-- A person's erasure deletes the e-mails sent to one of their proven addresses, in any organization (personal-data.catalog,
-- core.email_deliveries: lower(to_address) = ANY(their addresses); another account's change of e-mail to their address is
-- mailed from that account's personal organization). Its other lookups there are bounded: their user id
-- (email_deliveries_user_idx) and the value scan of the organizations they are or were in (the primary key, which leads
-- on org_id). Without an index on the address the statement's BitmapOr fell back to reading every e-mail of every
-- organization (a sequential scan of millions of rows, past the statement timeout at volume). Not unique: the same
-- address gets many mails.
-- Not CONCURRENTLY: refused inside the migration's transaction. The table belongs to the migration role: no superuser.
CREATE INDEX email_deliveries_to_address_idx ON core.email_deliveries (lower(to_address));
-- A digest e-mail gathers its recipient's notices of every organization into one row, stored under the first one's
-- (EmailDeliveryService.flushDigests): the erasure looks for the digests naming a person's address in any organization
-- (personal-data.catalog: the value scan `only` template 'digest'), by this partial index: the digests only (one per user,
-- category and hour at most, purged with the other e-mails by retention), not every e-mail's data.
CREATE INDEX email_deliveries_digest_mail_idx ON core.email_deliveries (created_at) WHERE template = 'digest';
