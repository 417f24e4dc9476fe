-- A claimed account (someone proved the e-mail of an account nobody had proved it of: a verified sign-in, a password
-- reset; auth/account-claim.service.ts) keeps its personal organization and the organizations nobody else is in, but
-- whoever registered the address first may have pointed their webhook endpoints at a server of theirs: every event of
-- the claimant's work there would go on reaching it. The claim now disables the enabled endpoints of the organizations
-- the account keeps, with the reason account_claimed, each audited (webhooks.endpoint_disabled, principal 'system');
-- the claimant sees them and may enable them again. Their pending messages stay unsent, left to the retention job as
-- any disabled endpoint's.
--
-- The reason joins the check (as organization_deleted did in 20270210130100; the table is small). No function, no
-- grant; needs no superuser (applied as the owner of the table); nothing to do on existing rows.
ALTER TABLE core.webhook_endpoints DROP CONSTRAINT webhook_endpoints_disabled_reason_check,
  ADD CONSTRAINT webhook_endpoints_disabled_reason_check CHECK (disabled_reason IN ('gone', 'failing', 'organization_deleted', 'account_claimed'));
