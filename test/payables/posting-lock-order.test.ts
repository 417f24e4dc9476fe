import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import type { Response } from 'supertest';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { until } from '../support/throwaway-servers.js';
import { startBooks } from '../ledger/ledger-support.js';
import { createVendor, payablesUrl } from './payables-support.js';

/**
 * One lock order in payables: the organization's posting lock first, then the documents (a bill's row, a payment's
 * lock). A payment takes the posting lock before the bills it allocates to; payables' first posting takes it
 * exclusively. A submit or approval that locked its bill first and then waited for the lock exclusively deadlocked
 * with a payment allocating to that bill (the payment held the lock and waited for the bill): 409 conflict.retry.
 * Deterministic: a session holds the posting lock exclusively (as a period close or a settings change does), the
 * requests queue behind it, and what they hold while they wait is probed before it is released.
 */
describe('payables: the posting lock before the documents', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  /** Backends of this test's database that `holder` blocks. */
  const blockedBy = async (holder: number): Promise<number> => (await t.db.admin.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND $1::int = ANY(pg_blocking_pids(pid))`, [holder])).rows[0].n;

  /** Which of `bills` (row locks) and `payments` (their advisory locks) another transaction holds now. */
  async function heldDocuments(orgId: string, o: { bills?: string[]; payments?: string[] }): Promise<string[]> {
    const held: string[] = [];
    const c = await t.db.admin.connect();
    try {
      for (const id of o.bills ?? []) {
        await c.query('BEGIN');
        try {
          await c.query('SELECT 1 FROM finance.bills WHERE org_id = $1 AND id = $2 FOR UPDATE NOWAIT', [orgId, id]);
        } catch (err) {
          if ((err as { code?: string }).code !== '55P03') throw err;
          held.push(`bill ${id}`);
        }
        await c.query('ROLLBACK');
      }
      for (const id of o.payments ?? []) {
        await c.query('BEGIN');
        const { rows: [r] } = await c.query(`SELECT core.try_xact_lock(('finance.bill_payment:' || $1::uuid::text)) AS free`, [id]);
        if (!r.free) held.push(`payment ${id}`);
        await c.query('ROLLBACK');
      }
    } finally {
      c.release();
    }
    return held;
  }

  /**
   * The posting lock held exclusively by a session; the requests `fire` starts, one after the other, each once the one
   * before waits for it; `probe` reads while all wait; then the lock is let go and the answers are read.
   */
  async function behindDrain<T>(orgId: string, fire: (() => Promise<Response>)[], probe: () => Promise<T>): Promise<{ answers: Response[]; probed: T }> {
    const holder: pg.PoolClient = await t.db.admin.connect();
    const pending: Promise<Response>[] = [];
    let probed: T;
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT core.xact_lock(('finance.posting:' || $1::uuid::text))`, [orgId]);
      const pid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      for (const [i, f] of fire.entries()) {
        pending.push(f());
        await until(`request ${i + 1} waits for the posting lock`, async () => (await blockedBy(pid)) >= i + 1);
      }
      probed = await probe();
      await holder.query('COMMIT');
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
    }
    return { answers: await Promise.all(pending), probed };
  }

  async function books(name: string) {
    const { orgId, users } = await orgWithRoles(t, name);
    await onPlan(t, orgId, 'professional');
    const acc = await startBooks(t, orgId, users.owner, 'EUR');
    const vendorId = await createVendor(t, orgId, users.accountant);
    const url = (p: string) => payablesUrl(orgId, p);
    const bill = async (amount: string, date = '2026-03-02') => (await t.http.post(url('bills')).set(users.accountant.auth)
      .send({ vendorId, billDate: date, lines: [{ accountId: acc['5200'], unitPrice: amount }] }).expect(201)).body.id as string;
    return { orgId, users, acc, vendorId, url, bill };
  }

  it('takes no document\'s lock while it waits for the posting lock: submit, approval, void, payment, allocation, refund, reversal', async () => {
    const { orgId, users, acc, vendorId, url, bill } = await books('Lock Order Ltd');
    const submitAs = async (id: string) => (await t.http.post(url(`bills/${id}/submit`)).set(users.accountant.auth).expect(200)).body;
    const first = await bill('50.00');
    expect((await submitAs(first)).status).toBe('posted'); // payables has posted: every lock below is shared
    const payment = (await t.http.post(url('payments')).set(users.accountant.auth).send({
      vendorId, paymentDate: '2026-03-05', amount: '80.00', bankAccountId: acc['1100'], allocations: [{ billId: first, amount: '50.00' }],
    }).expect(201)).body;
    const toSubmit = await bill('20.00');
    const toApprove = await bill('5000.00'); // above 1,000: an owner's or admin's approval
    expect((await submitAs(toApprove)).status).toBe('submitted');
    const toVoid = await bill('30.00');
    await submitAs(toVoid);
    const toAllocate = await bill('40.00');
    await submitAs(toAllocate);
    const toPay = await bill('60.00');
    await submitAs(toPay);
    const flows: { name: string; locks: { bills?: string[]; payments?: string[] }; fire: () => Promise<Response> }[] = [
      { name: 'bill submit', locks: { bills: [toSubmit] }, fire: () => t.http.post(url(`bills/${toSubmit}/submit`)).set(users.accountant.auth).then((r) => r) },
      { name: 'approval', locks: { bills: [toApprove] }, fire: () => t.http.post(url(`bills/${toApprove}/approve`)).set(users.admin.auth).send({}).then((r) => r) },
      { name: 'void', locks: { bills: [toVoid] }, fire: () => t.http.post(url(`bills/${toVoid}/void`)).set(users.accountant.auth).send({ date: '2026-03-10' }).then((r) => r) },
      { name: 'payment', locks: { bills: [toPay] }, fire: () => t.http.post(url('payments')).set(users.accountant.auth)
        .send({ vendorId, paymentDate: '2026-03-06', amount: '60.00', bankAccountId: acc['1100'], allocations: [{ billId: toPay, amount: '60.00' }] }).then((r) => r) },
      { name: 'allocation', locks: { payments: [payment.id], bills: [toAllocate] }, fire: () => t.http.post(url(`payments/${payment.id}/allocations`)).set(users.accountant.auth)
        .send({ billId: toAllocate, amount: '10.00', date: '2026-03-06' }).then((r) => r) },
      { name: 'refund', locks: { payments: [payment.id] }, fire: () => t.http.post(url(`payments/${payment.id}/refunds`)).set(users.accountant.auth)
        .send({ amount: '5.00', date: '2026-03-07' }).then((r) => r) },
      { name: 'reversal', locks: { payments: [payment.id], bills: [first] }, fire: () => t.http.post(url(`allocations/${payment.allocations[0].id}/reverse`)).set(users.accountant.auth)
        .send({ date: '2026-03-08' }).then((r) => r) },
    ];
    const held: Record<string, string[]> = {};
    const answered: Record<string, [number, string | undefined]> = {};
    for (const f of flows) {
      const { answers: [res], probed } = await behindDrain(orgId, [f.fire], () => heldDocuments(orgId, f.locks));
      held[f.name] = probed;
      answered[f.name] = [res.status, res.body.error?.code];
    }
    // before: each but the payment locked its document first, then waited for the posting lock with it locked
    expect(held).toEqual(Object.fromEntries(flows.map((f) => [f.name, []])));
    expect(answered).toEqual({
      'bill submit': [200, undefined], approval: [200, undefined], void: [200, undefined], payment: [201, undefined],
      allocation: [201, undefined], refund: [201, undefined], reversal: [201, undefined],
    });
    const { rows } = await t.db.admin.query(`SELECT id, status FROM finance.bills WHERE org_id = $1`, [orgId]);
    expect(Object.fromEntries(rows.map((r) => [r.id, r.status]))).toMatchObject({ [toSubmit]: 'posted', [toApprove]: 'posted', [toVoid]: 'voided', [toPay]: 'posted', [toAllocate]: 'posted' });
    const after = (await t.http.get(url(`payments/${payment.id}`)).set(users.accountant.auth).expect(200)).body;
    // 80.00: 50.00 allocated then reversed, 10.00 allocated, 5.00 refunded
    expect({ unallocated: after.unallocated, allocations: after.allocations.length, refunds: after.refunds.length }).toEqual({ unallocated: '65.00', allocations: 3, refunds: 1 });
    const aging = (await t.http.get(url('aging?asOf=2026-03-31')).set(users.accountant.auth).expect(200)).body;
    expect(aging.total).toBe(aging.controlAccountBalance);
  });

  /** A draft bill's (or a member's submitted claim's) first posting and a payment allocating to it, both queued behind a drain. */
  async function firstPostingAndPayment(name: string, kind: 'bill' | 'expense_claim') {
    const { orgId, users, acc, vendorId, url, bill } = await books(name);
    let doc: string;
    let post: () => Promise<Response>;
    let party: object;
    if (kind === 'bill') {
      doc = await bill('50.00');
      post = () => t.http.post(url(`bills/${doc}/submit`)).set(users.accountant.auth).then((r) => r);
      party = { vendorId };
    } else {
      doc = (await t.http.post(url('expense-claims')).set(users.member.auth)
        .send({ claimDate: '2026-03-02', currency: 'EUR', lines: [{ accountId: acc['5200'], amount: '50.00', currency: 'EUR', date: '2026-03-01' }] }).expect(201)).body.id;
      expect((await t.http.post(url(`expense-claims/${doc}/submit`)).set(users.member.auth).expect(200)).body.status).toBe('submitted');
      post = () => t.http.post(url(`expense-claims/${doc}/approve`)).set(users.accountant.auth).send({}).then((r) => r);
      party = { claimantId: users.member.id };
    }
    const pay = () => t.http.post(url('payments')).set(users.accountant.auth)
      .send({ ...party, paymentDate: '2026-03-05', amount: '50.00', bankAccountId: acc['1100'], allocations: [{ billId: doc, amount: '50.00' }] }).then((r) => r);
    const { answers: [p, s] } = await behindDrain(orgId, [pay, post], async () => undefined);
    const state = (await t.db.admin.query(`
      SELECT (SELECT status FROM finance.bills WHERE org_id = $1 AND id = $2) AS status,
             (SELECT journal_entry_id IS NOT NULL FROM finance.bills WHERE org_id = $1 AND id = $2) AS "journalEntry",
             (SELECT count(*) FROM finance.bill_payments WHERE org_id = $1)::int AS payments,
             (SELECT round(coalesce(sum(l.base_credit - l.base_debit), 0), 2)::text FROM finance.journal_lines l WHERE l.org_id = $1 AND l.account_id = $3) AS ap`,
    [orgId, doc, acc['2100']])).rows[0];
    return { doc, p, s, state, users, url };
  }

  it('a payment allocating to the bill whose submit is payables\' first posting: no deadlock; the payment, asked first, finds a draft; the submit posts', async () => {
    const { doc, p, s, state } = await firstPostingAndPayment('First Bill Ltd', 'bill');
    // before: the submit held the bill and waited for the lock exclusively, the payment held the lock and waited for the bill (409 conflict.retry)
    expect([p.status, p.body.error?.code, p.body.error?.message]).toEqual([409, 'payables.not_open', `allocations[0]: bill ${doc} is draft, not posted`]);
    expect([s.status, s.body.status, s.body.journalEntryId === null]).toEqual([200, 'posted', false]);
    expect(state).toEqual({ status: 'posted', journalEntry: true, payments: 0, ap: '50.00' });
  });

  it('a reimbursement allocating to the claim whose approval is payables\' first posting: no deadlock; the reimbursement finds it unapproved; the approval posts', async () => {
    const { doc, p, s, state, users, url } = await firstPostingAndPayment('First Claim Ltd', 'expense_claim');
    expect([p.status, p.body.error?.code, p.body.error?.message]).toEqual([409, 'payables.not_open', `allocations[0]: expense_claim ${doc} is submitted, not posted`]);
    expect([s.status, s.body.status, s.body.journalEntryId === null]).toEqual([200, 'posted', false]);
    expect(state).toEqual({ status: 'posted', journalEntry: true, payments: 0, ap: '50.00' });
    const aging = (await t.http.get(url('aging?asOf=2026-03-31')).set((users as RoleUsers).accountant.auth).expect(200)).body;
    expect(aging).toMatchObject({ total: '50.00', controlAccountBalance: '50.00' });
  });
});
