-- bench:ledger's reference (sql_reference_2): the least a double-entry posting costs PostgreSQL on this machine, in
-- the same run as the floor, so that the floor's absolute figures can be read against what the machine does that day
-- (the same floor moved by 2x and more within one day: bench/README.md). The shape of the public pure-SQL ledgers issue 14
-- compares with (pgledger there): accounts holding their balance, one transfer row and one entry row per side with the
-- balance after it, the two accounts locked in id order, foreign keys, one PL/pgSQL call in autocommit, one round
-- trip. No tenancy, no row-level security, no audit row, no idempotency key, no periods: everything issue 14's floor
-- pays for and this does not is the price of those guarantees.
--
-- Created by the benchmark in its own throwaway database only (never a migration): the API login calls the function,
-- as the floor's statements run as that login; sql_reference_tenant_2 calls it inside the tenant transaction, after
-- begin_request has switched to the request's role (authenticated).
CREATE SCHEMA bench_reference;

CREATE TABLE bench_reference.accounts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  currency text NOT NULL,
  balance numeric NOT NULL DEFAULT 0,
  version bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bench_reference.transfers (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  from_account_id uuid NOT NULL REFERENCES bench_reference.accounts (id),
  to_account_id uuid NOT NULL REFERENCES bench_reference.accounts (id),
  amount numeric NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CHECK (amount > 0 AND from_account_id <> to_account_id)
);
CREATE INDEX ON bench_reference.transfers (from_account_id);
CREATE INDEX ON bench_reference.transfers (to_account_id);
CREATE INDEX ON bench_reference.transfers (created_at);

CREATE TABLE bench_reference.entries (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id uuid NOT NULL REFERENCES bench_reference.accounts (id),
  transfer_id uuid NOT NULL REFERENCES bench_reference.transfers (id),
  amount numeric NOT NULL,
  balance_after numeric NOT NULL,
  account_version bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON bench_reference.entries (account_id);
CREATE INDEX ON bench_reference.entries (transfer_id);

CREATE FUNCTION bench_reference.transfer(p_from uuid, p_to uuid, p_amount numeric) RETURNS bench_reference.transfers
LANGUAGE plpgsql AS $$
DECLARE
  src bench_reference.accounts;
  dst bench_reference.accounts;
  t bench_reference.transfers;
BEGIN
  IF p_amount <= 0 OR p_from = p_to THEN
    RAISE EXCEPTION 'a transfer moves a positive amount between two accounts' USING ERRCODE = '22023';
  END IF;
  -- both accounts locked in id order: concurrent transfers cannot deadlock
  PERFORM 1 FROM bench_reference.accounts a WHERE a.id IN (p_from, p_to) ORDER BY a.id FOR UPDATE;
  UPDATE bench_reference.accounts SET balance = balance - p_amount, version = version + 1, updated_at = now()
  WHERE id = p_from RETURNING * INTO src;
  UPDATE bench_reference.accounts SET balance = balance + p_amount, version = version + 1, updated_at = now()
  WHERE id = p_to RETURNING * INTO dst;
  IF src.id IS NULL OR dst.id IS NULL OR src.currency <> dst.currency THEN
    RAISE EXCEPTION 'both accounts must exist and hold the same currency' USING ERRCODE = 'P0001';
  END IF;
  INSERT INTO bench_reference.transfers (from_account_id, to_account_id, amount) VALUES (p_from, p_to, p_amount) RETURNING * INTO t;
  INSERT INTO bench_reference.entries (account_id, transfer_id, amount, balance_after, account_version)
  VALUES (p_from, t.id, -p_amount, src.balance, src.version), (p_to, t.id, p_amount, dst.balance, dst.version);
  RETURN t;
END
$$;

-- 1,000 accounts, as the floor's spread scenarios post over 1,000 accounts
INSERT INTO bench_reference.accounts (currency) SELECT 'EUR' FROM generate_series(1, 1000);

REVOKE ALL ON SCHEMA bench_reference FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA bench_reference FROM PUBLIC;
REVOKE ALL ON FUNCTION bench_reference.transfer(uuid, uuid, numeric) FROM PUBLIC;
GRANT USAGE ON SCHEMA bench_reference TO omnizen_api, authenticated;
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA bench_reference TO omnizen_api, authenticated;
GRANT EXECUTE ON FUNCTION bench_reference.transfer(uuid, uuid, numeric) TO omnizen_api, authenticated;
