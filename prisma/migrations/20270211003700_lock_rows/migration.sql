-- Transaction-scoped locks on rows of a private table instead of advisory locks (review: any role may call
-- pg_advisory_lock, and pg_locks shows every session's advisory keys to every role. An analyst's login of one
-- organization holding pg_advisory_lock(hashtext('finance.posting:' || <another organization's id>)) made every posting
-- of that organization wait out lock_timeout and answer 503. EXECUTE on pg_catalog's functions cannot be revoked
-- without a superuser, and a secret key would still show in pg_locks.)
--
-- core.lock_rows holds two rows per lock name (keys hashtextextended(name, 0) and (name, 1): the lock and its gate, for
-- fair queueing, below), created on first use. Nobody
-- but its owner has a privilege on it; the three SECURITY DEFINER functions below are the only way to it, executable by
-- the roles that take locks today (the request roles authenticated and service_role, and finance_posting, which runs
-- the posting checks), never by anon, PUBLIC or omnizen_analyst (an analyst's login is a member of omnizen_analyst only).
--   core.xact_lock(name)         exclusive (FOR UPDATE)               was pg_advisory_xact_lock(hashtext(name))
--   core.xact_lock_shared(name)  shared (FOR SHARE: one another's    was pg_advisory_xact_lock_shared(hashtext(name))
--                                company, conflicting with FOR UPDATE)
--   core.try_xact_lock(name)     exclusive or false at once          was pg_try_advisory_xact_lock(hashtext(name))
-- Same names, pairs and order as before. A wait still ends at lock_timeout with SQLSTATE 55P03 (a row-lock wait raises
-- the same code), and a cycle with other locks is still found by the deadlock detector (40P01).
-- A missing row: INSERT ... ON CONFLICT DO NOTHING, then lock it. Two first users of one name: the second's insert waits
-- for the first's (uncommitted) row, which serializes them as the lock would (two first shared users too, once).
--
-- Rewritten below (their newest text, with only the lock calls replaced; owner, grants, SECURITY and search_path kept, as
-- CREATE OR REPLACE keeps them): finance.post_journal_entry, finance.post_journal_entries, finance.check_entry,
-- finance.drain_postings, finance.check_no_overlap, core.ensure_an_owner, core.invitations_within_hour,
-- core.analytics_create_partitions, core.analytics_drop_partitions, finance.lock_row_payment, finance.check_allocation,
-- finance.check_receivable_allocations, finance.check_receivable_allocation_dates, finance.check_customer_refunds,
-- finance.check_customer_refund_dates, finance.check_customer_refund_payment, finance.check_bill_allocation_dates,
-- finance.check_bill_refund_dates, finance.check_bill_payment_refunds, finance.check_bill_refund_payment. The migration
-- fails if a function of our schemas still calls pg_advisory_*.

CREATE TABLE core.lock_rows (key bigint PRIMARY KEY);
ALTER TABLE core.lock_rows ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
-- the functions' owner (the migration role) works on it under FORCE RLS even without BYPASSRLS; nobody else has a grant
CREATE POLICY lock_rows_owner ON core.lock_rows FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);
REVOKE ALL ON core.lock_rows FROM PUBLIC, anon, authenticated, service_role, omnizen_analyst, finance_posting;

-- Fairness (review: row locks do not queue as advisory locks do: a FOR SHARE on a share-locked row is granted at once
-- even while a FOR UPDATE waits, so a steady stream of postings starved a period close or a settings change until
-- lock_timeout). Each name has two rows: the main row (key = hashtextextended(name, 0)), locked FOR UPDATE / FOR SHARE
-- as above, and a gate row (hashtextextended(name, 1)). An exclusive taker locks the gate FOR UPDATE first and keeps it
-- to commit, waiting or holding; a sharer passes the gate: locks it FOR UPDATE in a subtransaction and rolls that back at
-- once (the private SQLSTATE OZL01, the only one caught: 55P03 and 40P01 go on), which queues it behind a waiting
-- exclusive taker (row-lock waiters are served in order) and holds the gate for microseconds only.
-- Re-entrancy: a transaction that holds the name already must not pass the gate again (an exclusive taker holding the
-- gate waits for its main row: a deadlock). The names held are kept in the transaction-local setting
-- omnizen.locks_held (',<key>:S,<key>:X,'), set_config(..., true): a rolled-back savepoint reverts it as it releases the
-- row locks taken within. The setting only skips the gate; the main row is locked every time (at once when held), so a
-- wrong setting can cost fairness, never exclusion.
CREATE FUNCTION core.xact_lock(name text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  k bigint := pg_catalog.hashtextextended(name, 0);
  g bigint := pg_catalog.hashtextextended(name, 1);
  held text := coalesce(nullif(pg_catalog.current_setting('omnizen.locks_held', true), ''), ',');
BEGIN
  -- not over Supabase's REST path (core is an exposed schema; PostgREST logs in as its own login and switches into
  -- authenticated): a signed-in user would add rows and hold a gate of another organization's name for a request
  IF session_user <> 'omnizen_api' AND pg_catalog.current_setting('role', true) = 'authenticated' THEN
    RAISE EXCEPTION 'named locks are taken by the API only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF pg_catalog.strpos(held, ',' || k || ':X,') = 0 THEN
    -- the gate, kept to commit: new sharers queue behind this taker from now on
    PERFORM 1 FROM core.lock_rows WHERE key = g FOR UPDATE;
    IF NOT FOUND THEN
      INSERT INTO core.lock_rows (key) VALUES (g) ON CONFLICT DO NOTHING;
      PERFORM 1 FROM core.lock_rows WHERE key = g FOR UPDATE;
    END IF;
  END IF;
  PERFORM 1 FROM core.lock_rows WHERE key = k FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO core.lock_rows (key) VALUES (k) ON CONFLICT DO NOTHING;
    PERFORM 1 FROM core.lock_rows WHERE key = k FOR UPDATE;
  END IF;
  IF pg_catalog.strpos(held, ',' || k || ':X,') = 0 THEN
    PERFORM pg_catalog.set_config('omnizen.locks_held', held || k || ':X,', true);
  END IF;
END
$$;

CREATE FUNCTION core.xact_lock_shared(name text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  k bigint := pg_catalog.hashtextextended(name, 0);
  g bigint := pg_catalog.hashtextextended(name, 1);
  held text := coalesce(nullif(pg_catalog.current_setting('omnizen.locks_held', true), ''), ',');
  holds boolean := pg_catalog.strpos(held, ',' || k || ':S,') > 0 OR pg_catalog.strpos(held, ',' || k || ':X,') > 0;
  missing boolean := false;
BEGIN
  -- not over Supabase's REST path (core is an exposed schema; PostgREST logs in as its own login and switches into
  -- authenticated): a signed-in user would add rows and hold a gate of another organization's name for a request
  IF session_user <> 'omnizen_api' AND pg_catalog.current_setting('role', true) = 'authenticated' THEN
    RAISE EXCEPTION 'named locks are taken by the API only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF NOT holds THEN
    BEGIN
      PERFORM 1 FROM core.lock_rows WHERE key = g FOR UPDATE;
      missing := NOT FOUND;
      RAISE SQLSTATE 'OZL01'; -- rolls the subtransaction back: the gate is free again
    EXCEPTION WHEN SQLSTATE 'OZL01' THEN
      NULL;
    END;
    -- a first use: the gate row is created (and held by this insert until commit, once per name)
    IF missing THEN
      INSERT INTO core.lock_rows (key) VALUES (g) ON CONFLICT DO NOTHING;
    END IF;
  END IF;
  PERFORM 1 FROM core.lock_rows WHERE key = k FOR SHARE;
  IF NOT FOUND THEN
    INSERT INTO core.lock_rows (key) VALUES (k) ON CONFLICT DO NOTHING;
    PERFORM 1 FROM core.lock_rows WHERE key = k FOR SHARE;
  END IF;
  IF NOT holds THEN
    PERFORM pg_catalog.set_config('omnizen.locks_held', held || k || ':S,', true);
  END IF;
END
$$;

-- never waits: lock_timeout 1 ms for the insert of a missing row, which waits only for another transaction's insert of it
-- (that transaction holds the lock: false). The main row only, not the gate: exclusion is the main row's, and an
-- exclusive taker waiting at the gate (or holding it) holds or waits for the main row anyway; a try never queues.
CREATE FUNCTION core.try_xact_lock(name text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' SET lock_timeout = '1ms' AS $$
DECLARE
  k bigint := pg_catalog.hashtextextended(name, 0);
  held text := coalesce(nullif(pg_catalog.current_setting('omnizen.locks_held', true), ''), ',');
BEGIN
  -- not over Supabase's REST path (core is an exposed schema; PostgREST logs in as its own login and switches into
  -- authenticated): a signed-in user would add rows and hold a gate of another organization's name for a request
  IF session_user <> 'omnizen_api' AND pg_catalog.current_setting('role', true) = 'authenticated' THEN
    RAISE EXCEPTION 'named locks are taken by the API only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  PERFORM 1 FROM core.lock_rows WHERE key = k FOR UPDATE SKIP LOCKED;
  IF NOT FOUND THEN
    -- skipped (held by another transaction), or missing: a row inserted here is this transaction's alone
    BEGIN
      INSERT INTO core.lock_rows (key) VALUES (k) ON CONFLICT DO NOTHING;
    EXCEPTION WHEN lock_not_available THEN
      RETURN false;
    END;
    PERFORM 1 FROM core.lock_rows WHERE key = k FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
      RETURN false;
    END IF;
  END IF;
  IF pg_catalog.strpos(held, ',' || k || ':X,') = 0 THEN
    PERFORM pg_catalog.set_config('omnizen.locks_held', held || k || ':X,', true);
  END IF;
  RETURN true;
END
$$;

-- the try-lock's names (the analytics roll-up's and retention purge's) exist from the start: a try finds the row and
-- never takes the insert's path
INSERT INTO core.lock_rows (key)
SELECT pg_catalog.hashtextextended(name, 0) FROM unnest(ARRAY['core.analytics_daily', 'core.analytics_events.retention']) name;

REVOKE ALL ON FUNCTION core.xact_lock(text), core.xact_lock_shared(text), core.try_xact_lock(text)
  FROM PUBLIC, anon, authenticated, service_role, omnizen_analyst, finance_posting;
GRANT EXECUTE ON FUNCTION core.xact_lock(text), core.xact_lock_shared(text), core.try_xact_lock(text)
  TO authenticated, service_role, finance_posting;

DO $migration$
DECLARE
  f record;
  def text;
BEGIN
  FOR f IN
    SELECT p.oid FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname IN ('core', 'finance', 'hub', 'ai', 'semantic', 'public') AND p.prosrc LIKE '%pg_advisory%'
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
    ORDER BY p.oid
  LOOP
    def := pg_catalog.pg_get_functiondef(f.oid);
    -- the hashtext( of the old key goes: its argument, the lock's name, is the new function's; the closing )) stays
    def := replace(def, 'pg_catalog.pg_advisory_xact_lock_shared(pg_catalog.hashtext(', 'core.xact_lock_shared((');
    def := replace(def, 'pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext(', 'core.xact_lock((');
    def := replace(def, 'pg_advisory_xact_lock_shared(hashtext(', 'core.xact_lock_shared((');
    def := replace(def, 'pg_advisory_xact_lock(hashtext(', 'core.xact_lock((');
    EXECUTE def;
  END LOOP;
  FOR f IN
    SELECT p.oid::regprocedure::text AS fn FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname IN ('core', 'finance', 'hub', 'ai', 'semantic', 'public') AND p.prosrc LIKE '%pg_advisory%'
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
  LOOP
    RAISE EXCEPTION 'function % still takes an advisory lock', f.fn;
  END LOOP;
END
$migration$;
