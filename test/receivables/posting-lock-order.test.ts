import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import type { Response } from 'supertest';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { until } from '../support/throwaway-servers.js';
import { rUrl, setupReceivables } from './receivables-support.js';

/**
 * One lock order in receivables, as in payables: the organization's posting lock (held shared) first, then the
 * documents (an invoice's row, a payment's lock) and the revenue recognition runs' lock. A payment takes the posting
 * lock before the invoices it allocates to; an issue, a void, a credit note, an allocation, a refund and a reversal
 * locked their documents first and then waited for the posting lock with them locked, so behind a drain (a period
 * close, a settings change, payables' first posting) they kept the documents from every other flow, and a payment
 * waiting for one of those invoices closed a cycle with the drain. Deterministic: a session holds the posting lock
 * exclusively (or the runs' lock), the requests queue behind it, and what they hold while they wait is probed.
 */
describe('receivables: the posting lock before the documents', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  const postingKey = `('finance.posting:' || $1::uuid::text)`;
  const runsKey = `('finance.revenue_recognition:' || $1::uuid::text)`;

  /** Backends of this test's database that `holder` blocks. */
  const blockedBy = async (holder: number): Promise<number[]> => (await t.db.admin.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND $1::int = ANY(pg_blocking_pids(pid))`, [holder])).rows.map((r) => r.pid);
  const blockers = async (pid: number): Promise<number[]> => (await t.db.admin.query<{ b: number[] }>('SELECT pg_blocking_pids($1::int) AS b', [pid])).rows[0].b;

  /** Which of `invoices` (row locks), `payments` (their advisory locks) and the recognition runs' lock another transaction holds now. */
  async function heldDocuments(orgId: string, o: { invoices?: string[]; payments?: string[]; runs?: boolean }): Promise<string[]> {
    const held: string[] = [];
    const c = await t.db.admin.connect();
    try {
      for (const id of o.invoices ?? []) {
        await c.query('BEGIN');
        try {
          await c.query('SELECT 1 FROM finance.invoices WHERE org_id = $1 AND id = $2 FOR UPDATE NOWAIT', [orgId, id]);
        } catch (err) {
          if ((err as { code?: string }).code !== '55P03') throw err;
          held.push(`invoice ${id}`);
        }
        await c.query('ROLLBACK');
      }
      const advisory: [string, string, string][] = [
        ...(o.payments ?? []).map((id): [string, string, string] => [`payment ${id}`, `('finance.payment:' || $1::uuid::text)`, id]),
        ...(o.runs ? [['recognition runs', runsKey, orgId] as [string, string, string]] : []),
      ];
      for (const [name, key, arg] of advisory) {
        await c.query('BEGIN');
        const { rows: [r] } = await c.query(`SELECT core.try_xact_lock(${key}) AS free`, [arg]);
        if (!r.free) held.push(name);
        await c.query('ROLLBACK');
      }
    } finally {
      c.release();
    }
    return held;
  }

  /** The posting lock held exclusively by a session; `fire` waits for it; `probe` reads meanwhile; then it is let go. */
  async function behindDrain<T>(orgId: string, fire: () => Promise<Response>, probe: () => Promise<T>): Promise<{ res: Response; probed: T }> {
    const holder: pg.PoolClient = await t.db.admin.connect();
    let pending: Promise<Response> | undefined;
    let probed: T;
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT core.xact_lock(${postingKey})`, [orgId]);
      const pid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      pending = fire();
      await until('the request waits for the posting lock', async () => (await blockedBy(pid)).length >= 1);
      probed = await probe();
      await holder.query('COMMIT');
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
    }
    return { res: await pending, probed };
  }

  async function books(name: string) {
    const { orgId, users } = await orgWithRoles(t, name);
    await onPlan(t, orgId, 'professional');
    const { acc, customer } = await setupReceivables(t, orgId, users.owner, 'EUR');
    const url = (p: string) => rUrl(orgId, p);
    const draft = async (amount: string, service?: [string, string]) => (await t.http.post(url('invoices')).set(users.accountant.auth).send({
      customerId: customer, invoiceDate: '2026-03-02',
      lines: [{ description: 'Work', quantity: '1', unitPrice: amount, revenueAccountId: acc['4100'], ...(service ? { serviceStart: service[0], serviceEnd: service[1] } : {}) }],
    }).expect(201)).body.id as string;
    const issued = async (amount: string, service?: [string, string]) => {
      const id = await draft(amount, service);
      await t.http.post(url(`invoices/${id}/issue`)).set(users.accountant.auth).send({}).expect(200);
      return id;
    };
    const pay = (body: object) => t.http.post(url('payments')).set(users.accountant.auth).send({ customerId: customer, depositAccountId: acc['1100'], method: 'bank_transfer', ...body });
    return { orgId, users: users as RoleUsers, acc, customer, url, draft, issued, pay };
  }

  it('takes no document\'s lock while it waits for the posting lock: issue, void, credit note, payment, allocation, refund, reversal, recognition run', async () => {
    const { orgId, users, url, draft, issued, pay } = await books('Lock Order Ltd');
    const first = await issued('100.00');
    const payment = (await pay({ date: '2026-03-05', amount: '150.00', allocations: [{ invoiceId: first, amount: '50.00' }] }).expect(201)).body;
    const toIssue = await draft('20.00');
    const toVoid = await issued('30.00');
    const toCredit = await issued('40.00');
    const toAllocate = await issued('60.00');
    const toPay = await issued('70.00');
    await issued('310.00', ['2026-03-01', '2026-03-31']); // deferred: the run recognizes it
    const as = users.accountant.auth;
    const flows: { name: string; locks: { invoices?: string[]; payments?: string[]; runs?: boolean }; fire: () => Promise<Response> }[] = [
      { name: 'issue', locks: { invoices: [toIssue] }, fire: () => t.http.post(url(`invoices/${toIssue}/issue`)).set(as).send({}).then((r) => r) },
      { name: 'void', locks: { invoices: [toVoid], runs: true }, fire: () => t.http.post(url(`invoices/${toVoid}/void`)).set(as).send({ date: '2026-03-10' }).then((r) => r) },
      { name: 'credit note', locks: { invoices: [toCredit], runs: true }, fire: () => t.http.post(url(`invoices/${toCredit}/credit-notes`)).set(as).send({ date: '2026-03-10' }).then((r) => r) },
      { name: 'payment', locks: { invoices: [toPay] }, fire: () => pay({ date: '2026-03-06', amount: '70.00', allocations: [{ invoiceId: toPay, amount: '70.00' }] }).then((r) => r) },
      { name: 'allocation', locks: { payments: [payment.id], invoices: [toAllocate] }, fire: () => t.http.post(url(`payments/${payment.id}/allocations`)).set(as)
        .send({ date: '2026-03-06', allocations: [{ invoiceId: toAllocate, amount: '10.00' }] }).then((r) => r) },
      { name: 'refund', locks: { payments: [payment.id] }, fire: () => t.http.post(url(`payments/${payment.id}/refunds`)).set(as).send({ date: '2026-03-07', amount: '5.00' }).then((r) => r) },
      { name: 'reversal', locks: { payments: [payment.id], invoices: [first] }, fire: () => t.http.post(url(`allocations/${payment.allocations[0].id}/reverse`)).set(as)
        .send({ date: '2026-03-08' }).then((r) => r) },
      { name: 'recognition run', locks: { runs: true }, fire: () => t.http.post(url('revenue-recognition/runs')).set(users.owner.auth).send({ date: '2026-03-31' }).then((r) => r) },
    ];
    const held: Record<string, string[]> = {};
    const answered: Record<string, [number, string | undefined]> = {};
    for (const f of flows) {
      const { res, probed } = await behindDrain(orgId, f.fire, () => heldDocuments(orgId, f.locks));
      held[f.name] = probed;
      answered[f.name] = [res.status, res.body.error?.code];
    }
    // before: each but the payment locked its documents (a void and a credit note the runs' lock too, a run that lock)
    // first, then waited for the posting lock with them locked
    expect(held).toEqual(Object.fromEntries(flows.map((f) => [f.name, []])));
    expect(answered).toEqual({
      issue: [200, undefined], void: [200, undefined], 'credit note': [201, undefined], payment: [201, undefined],
      allocation: [201, undefined], refund: [201, undefined], reversal: [201, undefined], 'recognition run': [200, undefined],
    });
    const { rows } = await t.db.admin.query(`SELECT id, status FROM finance.invoices WHERE org_id = $1 AND kind = 'invoice'`, [orgId]);
    expect(Object.fromEntries(rows.map((r) => [r.id, r.status]))).toMatchObject({
      [first]: 'issued', [toIssue]: 'issued', [toVoid]: 'void', [toCredit]: 'paid', [toAllocate]: 'partially_paid', [toPay]: 'paid',
    });
    const after = (await t.http.get(url(`payments/${payment.id}`)).set(as).expect(200)).body;
    // 150.00: 50.00 allocated then reversed, 10.00 allocated, 5.00 refunded
    expect({ unallocated: after.unallocated, allocations: after.allocations.length, refunds: after.refunds.length }).toEqual({ unallocated: '135.00', allocations: 3, refunds: 1 });
    const run = (await t.db.admin.query(`SELECT line_count FROM finance.revenue_recognition_runs WHERE org_id = $1 AND run_date = '2026-03-31'`, [orgId])).rows;
    expect(run).toEqual([{ line_count: 1 }]);
  });

  it('a void holding its invoice, a payment to that invoice holding the posting lock, a drain queued behind the payment: the void never queues behind the drain', async () => {
    const { orgId, url, issued, pay, users } = await books('Lock Cycle Ltd');
    const invoice = await issued('80.00');
    const q: pg.PoolClient = await t.db.admin.connect(); // holds the runs' lock, so the void stops after its invoice's lock
    const e: pg.PoolClient = await t.db.admin.connect(); // the drain (a period close, a settings change)
    let voided: Promise<Response> | undefined;
    let paid: Promise<Response> | undefined;
    let drained: Promise<unknown> | undefined;
    let voidRes: Response | undefined;
    const seen = { behindDrain: false, cycle: false };
    try {
      await q.query('BEGIN');
      await q.query(`SELECT core.xact_lock(${runsKey})`, [orgId]);
      const qPid = (await q.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      voided = t.http.post(url(`invoices/${invoice}/void`)).set(users.accountant.auth).send({ date: '2026-03-10' }).then((r) => (voidRes = r));
      await until('the void waits for the runs\' lock', async () => (await blockedBy(qPid)).length === 1);
      const [vPid] = await blockedBy(qPid);
      paid = pay({ date: '2026-03-06', amount: '80.00', allocations: [{ invoiceId: invoice, amount: '80.00' }] }).then((r) => r);
      await until('the payment waits for the invoice the void holds', async () => (await blockedBy(vPid)).length === 1);
      const [cPid] = await blockedBy(vPid);
      await e.query('BEGIN');
      const ePid = (await e.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      drained = e.query(`SELECT core.xact_lock(${postingKey})`, [orgId]);
      // the posting lock is a row lock: pg_blocking_pids names the one holder its waiter waits on now (the holders in
      // the order they locked it: the void first, then the payment), where an advisory lock's waiter named both
      await until('the drain waits for the payment', async () => (await blockers(ePid)).some((pid) => pid === cPid || pid === vPid));
      await q.query('COMMIT'); // the void goes on to the posting lock
      await until('the void answers, or waits behind the drain', async () => {
        if (voidRes) return true;
        const v = await blockers(vPid);
        if (!v.includes(ePid)) return false;
        seen.behindDrain = true;
        seen.cycle = (await blockers(ePid)).includes(cPid) && (await blockers(cPid)).includes(vPid);
        return true;
      });
      // before: the void waited behind the drain, which waited for the payment, which waited for the void's invoice
      // (resolved only by the deadlock detector after deadlock_timeout, the drain passed over)
      await drained;
      await e.query('COMMIT');
    } finally {
      await q.query('ROLLBACK').catch(() => undefined);
      await e.query('ROLLBACK').catch(() => undefined);
      q.release();
      e.release();
    }
    const [v, p] = await Promise.all([voided!, paid!]);
    expect(seen).toEqual({ behindDrain: false, cycle: false });
    expect([v.status, v.body.status]).toEqual([200, 'void']);
    expect([p.status, p.body.error?.code, p.body.error?.message]).toEqual([409, 'receivables.invalid_status',
      'allocations[0].invoiceId: the invoice is void; only issued invoices take payments']);
    const state = (await t.db.admin.query(`
      SELECT (SELECT status FROM finance.invoices WHERE org_id = $1 AND id = $2) AS status,
             (SELECT count(*) FROM finance.customer_payments WHERE org_id = $1)::int AS payments`, [orgId, invoice])).rows[0];
    expect(state).toEqual({ status: 'void', payments: 0 });
  });
});
