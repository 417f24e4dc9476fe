import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import type { Response } from 'supertest';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles } from '../support/factories.js';
import { until } from '../support/throwaway-servers.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { createVendor, payablesUrl } from './payables-support.js';

/**
 * Payables' first posting without settings makes the default account 2100 AP, once it checked that 2100 carries
 * nothing; a manual entry on 2100 is allowed until then. Run at once, exactly one of the two gets through, whichever
 * starts first: the first posting takes the posting lock exclusively, so it reads the balance once the entry committed,
 * and an entry starting after it reads 2100 as AP. Both getting through left AP carrying what no bill explains (the
 * aging short of the account for ever, and no manual entry could clear it). Deterministic: a session holds 2100's
 * balance rows, so whichever request passed its checks waits there with its locks held; the other is started only then.
 */
describe('payables\' first posting and a manual entry on its default AP account at once', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  /** Backends of this test's database waiting for a lock (that `holder` holds, when given). */
  const waiting = async (holder?: number): Promise<number> => (await t.db.admin.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND cardinality(pg_blocking_pids(pid)) > 0
       AND ($1::int IS NULL OR $1::int = ANY(pg_blocking_pids(pid)))`, [holder ?? null])).rows[0].n;

  async function race(name: string, first: 'manual' | 'bill') {
    const { orgId, users } = await orgWithRoles(t, name);
    await onPlan(t, orgId, 'professional');
    const acc = await startBooks(t, orgId, users.owner, 'EUR');
    const vendorId = await createVendor(t, orgId, users.accountant);
    const bill = (await t.http.post(payablesUrl(orgId, 'bills')).set(users.accountant.auth)
      .send({ vendorId, billDate: '2026-03-02', lines: [{ accountId: acc['5200'], unitPrice: '50.00' }] }).expect(201)).body.id as string;
    // every balance row 2100 can take (its slots), held by a session: a posting to 2100 waits there, its checks passed
    await t.db.admin.query(`INSERT INTO finance.account_balances (org_id, account_id, currency, slot)
      SELECT $1, $2, 'EUR', s FROM generate_series(0, 63) s ON CONFLICT DO NOTHING`, [orgId, acc['2100']]);
    const holder: pg.PoolClient = await t.db.admin.connect();
    let submit: Promise<Response> | undefined;
    let manual: Promise<Response> | undefined;
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM finance.account_balances WHERE org_id = $1 AND account_id = $2 FOR UPDATE', [orgId, acc['2100']]);
      const pid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      const fire = {
        bill: () => t.http.post(payablesUrl(orgId, `bills/${bill}/submit`)).set(users.accountant.auth).then((r) => r),
        manual: () => t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.owner.auth)
          .send({ date: '2026-03-01', lines: [{ accountId: acc['5200'], debit: '100.00' }, { accountId: acc['2100'], credit: '100.00' }] }).then((r) => r),
      };
      const started = fire[first]();
      if (first === 'bill') submit = started; else manual = started;
      await until(`the ${first === 'bill' ? 'bill\'s posting' : 'manual entry'} waits for 2100's balance rows`, async () => (await waiting(pid)) >= 1);
      if (first === 'bill') manual = fire.manual(); else submit = fire.bill();
      // the second waits too: for the first's posting lock (fixed), or, past its checks, for 2100's rows (as before)
      await until('both wait', async () => (await waiting()) >= 2);
      await holder.query('COMMIT');
    } finally {
      holder.release();
    }
    const [s, m] = [await submit!, await manual!];
    const state = (await t.db.admin.query(`
      SELECT (SELECT count(*) FROM finance.bills WHERE org_id = $1 AND journal_entry_id IS NOT NULL)::int AS "postedBills",
             (SELECT count(*) FROM finance.journal_entries WHERE org_id = $1 AND source = 'manual')::int AS "manualEntries",
             (SELECT round(coalesce(sum(l.base_debit - l.base_credit), 0), 2)::text FROM finance.journal_lines l
                WHERE l.org_id = $1 AND l.account_id = $2) AS "balance2100"`, [orgId, acc['2100']])).rows[0];
    const aging = (await t.http.get(payablesUrl(orgId, 'aging?asOf=2026-03-31')).set(users.accountant.auth).expect(200)).body;
    return { s, m, state, aging };
  }

  it('the manual entry first: it posts, the bill\'s first posting then reads its balance and is refused (422, nothing posted)', async () => {
    const { s, m, state, aging } = await race('Entry First Ltd', 'manual');
    expect(m.status).toBe(201);
    expect([s.status, s.body.error?.code]).toEqual([422, 'payables.account_carries_balance']);
    expect(s.body.error.message).toMatch(/^apAccountId \(not set, the default\): account 2100 carries -100\.00 EUR /);
    expect(state).toEqual({ postedBills: 0, manualEntries: 1, balance2100: '-100.00' });
    expect(aging).toMatchObject({ total: '0.00' });
  });

  it('the bill first: it posts and makes 2100 AP, the manual entry then reads 2100 as AP and is refused (422); the aging equals the account', async () => {
    const { s, m, state, aging } = await race('Bill First Ltd', 'bill');
    expect([s.status, s.body.status]).toEqual([200, 'posted']);
    expect([m.status, m.body.error?.code]).toEqual([422, 'ledger.control_account']);
    expect(state).toEqual({ postedBills: 1, manualEntries: 0, balance2100: '-50.00' });
    expect(aging).toMatchObject({ total: '50.00', controlAccountBalance: '50.00' });
  });
});
