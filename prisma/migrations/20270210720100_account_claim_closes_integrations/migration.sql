-- A claimed account (someone proved the e-mail of an account nobody had proved it of: a verified sign-in, a password
-- reset; auth/account-claim.service.ts) runs on the privileged path auth.credentials as service_role. The claim now
-- closes what whoever registered the address first may have pointed outwards from the account: its integrations (CalDAV
-- credentials and server of theirs) are set to disabled, its provider page is no longer public. Only the person's own
-- requests could change those rows so far; these policies admit that one path (omnizen.privileged_path, set by
-- PrivilegedDatabase.run), as 20261230000100_privacy_erasure admits the erasure's. The grants service_role holds on
-- these tables are unchanged. No function; needs no superuser; nothing to do on existing rows.
CREATE POLICY integrations_account_claim ON public.integrations FOR UPDATE TO service_role
  USING (current_setting('omnizen.privileged_path', true) = 'auth.credentials')
  WITH CHECK (current_setting('omnizen.privileged_path', true) = 'auth.credentials');
CREATE POLICY providers_account_claim ON public.providers FOR UPDATE TO service_role
  USING (current_setting('omnizen.privileged_path', true) = 'auth.credentials')
  WITH CHECK (current_setting('omnizen.privileged_path', true) = 'auth.credentials');
-- the claim reads what it updates (UPDATE ... RETURNING)
CREATE POLICY integrations_account_claim_read ON public.integrations FOR SELECT TO service_role
  USING (current_setting('omnizen.privileged_path', true) = 'auth.credentials');
CREATE POLICY providers_account_claim_read ON public.providers FOR SELECT TO service_role
  USING (current_setting('omnizen.privileged_path', true) = 'auth.credentials');
