-- user_email_norm_idx (migration 20270211000950) served core.email_of_another_account's key before NFC came first;
-- 20270211001650 replaced the function, which no longer uses it (it probes user_email_key_idx, 20270211001600).
-- Its own migration, so its own transaction (review rv6): DROP INDEX takes ACCESS EXCLUSIVE on core."User". In
-- 20270211001650's transaction it was asked for while that held the identities its UPDATE had locked, and a sign-in
-- holding its User row (FOR UPDATE) and waiting on one of those identities waited for it, a deadlock (40P01, one of the
-- two rolled back). Here the transaction holds no row lock: the DROP waits for the transactions using core."User" at the
-- time (those after it queue behind it), none of which waits on it, then commits at once. Not CONCURRENTLY: refused inside the
-- migration's transaction. Idempotent (IF EXISTS). The migration role owns the table (no superuser); RLS and grants are
-- unchanged (an index only).
DROP INDEX IF EXISTS core.user_email_norm_idx;
