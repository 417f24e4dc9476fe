import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import type { Response } from 'supertest';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type RoleUsers, type TestUser } from '../support/factories.js';
import { until } from '../support/throwaway-servers.js';
import { startBooks } from '../ledger/ledger-support.js';
import { createVendor, payablesUrl } from './payables-support.js';

/**
 * Payables takes the posting lock exclusively (waiting for every posting in flight, holding new ones off) for its
 * first posting without settings only: not for a request that posts nothing (an expense claim's submit, a bill's that
 * the rule sends for approval, an approval that is not the last), and not for a member whose read policies hide the
 * other employees' claims (20270206000100): whether that first posting is still to come is read whatever the caller
 * may see (finance.payables_first_posting_pending). Deterministic: a session holds the lock shared, as a posting in
 * flight does; a request either answers or is seen waiting for that session.
 */
describe('payables: the first posting\'s exclusive lock, for that posting only', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  /**
   * Starts `fire` while a session holds the posting lock shared; answers whether the request waited for that session
   * (then the lock is let go so that it can finish) and its answer.
   */
  async function besidePosting(orgId: string, fire: () => Promise<Response>): Promise<{ waited: boolean; res: Response }> {
    const holder: pg.PoolClient = await t.db.admin.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT core.xact_lock_shared(('finance.posting:' || $1::uuid::text))`, [orgId]);
      const pid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      let res: Response | undefined;
      const started = fire().then((r) => (res = r));
      let waited = false;
      await until('the request answers or waits for the posting in flight', async () => {
        if (res) return true;
        waited = (await t.db.admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND $1::int = ANY(pg_blocking_pids(pid))`, [pid])).rows[0].n > 0;
        return waited;
      });
      await holder.query('COMMIT');
      await started;
      return { waited, res: res! };
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
    }
  }

  async function books(name: string) {
    const { orgId, users } = await orgWithRoles(t, name);
    await onPlan(t, orgId, 'professional');
    const acc = await startBooks(t, orgId, users.owner, 'EUR');
    const url = (p: string) => payablesUrl(orgId, p);
    const claim = async (who: TestUser) => (await t.http.post(url('expense-claims')).set(who.auth)
      .send({ claimDate: '2026-02-06', currency: 'EUR', lines: [{ accountId: acc['5200'], amount: '10.00', currency: 'EUR', date: '2026-02-05' }] }).expect(201)).body.id as string;
    return { orgId, users, acc, url, claim };
  }
  const pendingAs = async (orgId: string, who: TestUser) => (await t.db.asApi({ sub: who.id, org_id: orgId }, 'authenticated',
    `SELECT finance.payables_first_posting_pending() AS pending,
            EXISTS (SELECT 1 FROM finance.bills WHERE org_id = $1 AND journal_entry_id IS NOT NULL) AS "seesPosting"`, [orgId]))[0];

  it('a member\'s claim submit, once payables posted only other employees\' claims, does not wait for the postings in flight', async () => {
    const { orgId, users, url, claim } = await books('Claims Only Ltd');
    const admins = await claim(users.admin);
    await t.http.post(url(`expense-claims/${admins}/submit`)).set(users.admin.auth).expect(200);
    expect((await t.http.post(url(`expense-claims/${admins}/approve`)).set(users.accountant.auth).send({}).expect(200)).body.status).toBe('posted');
    // the member reads no posting of payables (the admin's claim is hidden from them); the database says it happened
    expect(await pendingAs(orgId, users.member)).toEqual({ pending: false, seesPosting: false });
    expect(await pendingAs(orgId, users.accountant)).toEqual({ pending: false, seesPosting: true });
    const submitted: Record<string, { waited: boolean; status: number; body: string }> = {};
    for (const who of ['accountant', 'member'] as const) {
      const id = await claim(users[who]);
      const { waited, res } = await besidePosting(orgId, () => t.http.post(url(`expense-claims/${id}/submit`)).set(users[who].auth).then((r) => r));
      submitted[who] = { waited, status: res.status, body: res.body.status ?? res.body.error?.code };
    }
    // before: the member's submit read "first posting pending" and waited for the lock exclusively
    expect(submitted).toEqual({ accountant: { waited: false, status: 200, body: 'submitted' }, member: { waited: false, status: 200, body: 'submitted' } });
  });

  it('before payables\' first posting, a submit or approval that posts nothing does not wait; the one that posts does, and posts', async () => {
    const { orgId, users, acc, url, claim } = await books('Nothing Posted Ltd');
    expect(await pendingAs(orgId, users.member)).toEqual({ pending: true, seesPosting: false });
    const vendorId = await createVendor(t, orgId, users.accountant);
    const bill = async (amount: string) => (await t.http.post(url('bills')).set(users.accountant.auth)
      .send({ vendorId, billDate: '2026-03-02', lines: [{ accountId: acc['5200'], unitPrice: amount }] }).expect(201)).body.id as string;
    const approval = await bill('5000.00'); // one approval above 1,000
    const twoApprovals = await bill('15000.00'); // two above 10,000
    await t.http.post(url(`bills/${twoApprovals}/submit`)).set(users.accountant.auth).expect(200);
    const membersClaim = await claim(users.member);
    const u = users as RoleUsers;
    const requests: [string, () => Promise<Response>][] = [
      ['bill submit for approval', () => t.http.post(url(`bills/${approval}/submit`)).set(u.accountant.auth).then((r) => r)],
      ['member\'s claim submit', () => t.http.post(url(`expense-claims/${membersClaim}/submit`)).set(u.member.auth).then((r) => r)],
      ['first of two approvals', () => t.http.post(url(`bills/${twoApprovals}/approve`)).set(u.admin.auth).send({}).then((r) => r)],
      ['last approval', () => t.http.post(url(`bills/${approval}/approve`)).set(u.owner.auth).send({}).then((r) => r)],
    ];
    const out: Record<string, [boolean, number, string]> = {};
    for (const [name, fire] of requests) {
      const { waited, res } = await besidePosting(orgId, fire);
      out[name] = [waited, res.status, res.body.status ?? res.body.error?.code];
    }
    // before: each submit drained the postings (the rule read after the lock); the last approval, payables' first posting, still does
    expect(out).toEqual({
      'bill submit for approval': [false, 200, 'submitted'], 'member\'s claim submit': [false, 200, 'submitted'],
      'first of two approvals': [false, 200, 'submitted'], 'last approval': [true, 200, 'posted'],
    });
    const { rows } = await t.db.admin.query(`SELECT id, status, journal_entry_id IS NOT NULL AS posted FROM finance.bills WHERE org_id = $1`, [orgId]);
    expect(Object.fromEntries(rows.map((r) => [r.id, [r.status, r.posted]]))).toEqual({
      [approval]: ['posted', true], [twoApprovals]: ['submitted', false], [membersClaim]: ['submitted', false],
    });
    expect(await pendingAs(orgId, users.member)).toEqual({ pending: false, seesPosting: true });
  });

  it('answers nothing for a caller who may not act in the organization', async () => {
    const { orgId } = await books('Other Ltd');
    const { users: strangers } = await orgWithRoles(t, 'Strangers Ltd');
    const [row] = await t.db.as({ sub: strangers.owner.id, org_id: orgId, role: 'authenticated' }, 'authenticated', 'SELECT finance.payables_first_posting_pending() AS pending');
    expect(row).toEqual({ pending: null });
  });
});
