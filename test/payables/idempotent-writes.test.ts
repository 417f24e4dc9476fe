import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { startBooks } from '../ledger/ledger-support.js';
import { createVendor, payablesUrl } from './payables-support.js';

/**
 * The Idempotency-Key header (README "When a dependency fails": clients retry writes with it) on the payables writes
 * that moved money twice on a retry: an allocation of a payment's credit and a refund of it; and an allocation's
 * reversal, whose retry answered 409 payables.allocation_reversed. The same key with the same request answers the first
 * result (same status and body) and writes nothing (no row, entry, event or audit row); another request with it is a
 * 409 payables.idempotency_conflict; concurrent retries write one row.
 */
describe('payables: allocations and refunds once per Idempotency-Key', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let vendor: string;
  const url = (p: string) => payablesUrl(orgId, p);

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Retry Payables Ltd'));
    await onPlan(t, orgId, 'professional');
    acc = await startBooks(t, orgId, users.owner);
    vendor = await createVendor(t, orgId, users.accountant);
  });
  afterAll(() => t.close());

  const written = async () => (await t.db.admin.query(`SELECT
      (SELECT count(*)::int FROM finance.bill_allocations WHERE org_id = $1) AS allocations,
      (SELECT count(*)::int FROM finance.bill_payment_refunds WHERE org_id = $1) AS refunds,
      (SELECT count(*)::int FROM finance.journal_entries WHERE org_id = $1) AS entries,
      (SELECT count(*)::int FROM core.audit_logs WHERE org_id = $1) AS audits,
      (SELECT count(*)::int FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event') AS events`, [orgId])).rows[0] as Record<string, number>;
  /** A bill posted at submission (under the no-approval threshold). */
  async function postedBill(billNumber: string): Promise<any> {
    const b = (await t.http.post(url('bills')).set(users.accountant.auth)
      .send({ vendorId: vendor, billNumber, billDate: '2026-03-02', lines: [{ accountId: acc['5200'], unitPrice: '100.00' }] }).expect(201)).body;
    return (await t.http.post(url(`bills/${b.id}/submit`)).set(users.accountant.auth).expect(200)).body;
  }
  const credit = async () => (await t.http.post(url('payments')).set(users.accountant.auth)
    .send({ vendorId: vendor, paymentDate: '2026-03-03', amount: '100.00', bankAccountId: acc['1100'] }).expect(201)).body;
  const open = async (id: string) => (await t.http.get(url(`bills/${id}`)).set(users.viewer.auth).expect(200)).body.openAmount as string;

  it('allocates once per key: a retry answers the payment as after the first, another request with the key is a 409, concurrent retries allocate once', async () => {
    const bill = await postedBill('B-1');
    const pay = await credit();
    const allocate = (key: string, body: object) => t.http.post(url(`payments/${pay.id}/allocations`)).set(users.accountant.auth).set('Idempotency-Key', key).send(body);
    const body = { billId: bill.id, amount: '30.00', date: '2026-03-04' };
    const before = await written();

    const first = await allocate('alloc-1', body).expect(201);
    expect(first.body).toMatchObject({ id: pay.id, unallocated: '70.00', allocations: [expect.objectContaining({ billId: bill.id, amount: '30.00' })] });
    const afterFirst = await written();
    expect(afterFirst.allocations).toBe(before.allocations + 1);
    const again = await allocate('alloc-1', body).expect(201);
    expect(again.body).toEqual(first.body);
    expect(await written()).toEqual(afterFirst);
    expect(await open(bill.id)).toBe('70.00');
    const { rows: stored } = await t.db.admin.query(`SELECT idempotency_key, request_hash FROM finance.bill_allocations WHERE org_id = $1 AND payment_id = $2`, [orgId, pay.id]);
    expect(stored).toEqual([{ idempotency_key: 'alloc-1', request_hash: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
    const { rows: audits } = await t.db.admin.query(`SELECT 1 FROM core.audit_logs WHERE org_id = $1 AND action = 'payables.allocation_created'`, [orgId]);
    expect(audits).toHaveLength(1);

    const res = await allocate('alloc-1', { ...body, amount: '31.00' }).expect(409);
    expect(res.body.error).toEqual({ code: 'payables.idempotency_conflict', message: 'the Idempotency-Key "alloc-1" was already used for a different allocation' });
    expect(await written()).toEqual(afterFirst);

    const racing = await Promise.all(Array.from({ length: 3 }, () => allocate('alloc-race', { ...body, amount: '10.00' })));
    expect(racing.map((r) => r.status)).toEqual([201, 201, 201]);
    expect(racing.map((r) => r.body)).toEqual(Array(3).fill(racing[0].body));
    expect(racing[0].body.unallocated).toBe('60.00');
    expect(await written()).toMatchObject({ allocations: afterFirst.allocations + 1, audits: afterFirst.audits + 1 });
    expect(await open(bill.id)).toBe('60.00');
  });

  it('reverses an allocation once per key: a retry answers the payment as after the reversal (not allocation_reversed), another request is a 409', async () => {
    const [bill, bill2] = [await postedBill('B-R1'), await postedBill('B-R2')];
    const pay = await credit();
    const allocate = async (billId: string) => (await t.http.post(url(`payments/${pay.id}/allocations`)).set(users.accountant.auth)
      .send({ billId, amount: '40.00', date: '2026-03-04' }).expect(201)).body.allocations.find((x: any) => x.billId === billId).id as string;
    const [a, b] = [await allocate(bill.id), await allocate(bill2.id)];
    const reverse = (key: string, body: object, allocationId = a) => t.http.post(url(`allocations/${allocationId}/reverse`)).set(users.accountant.auth).set('Idempotency-Key', key).send(body);
    const before = await written();

    const first = await reverse('rev-1', { date: '2026-03-06' }).expect(201);
    expect(first.body).toMatchObject({ id: pay.id, unallocated: '60.00' });
    const afterFirst = await written();
    expect(afterFirst.allocations).toBe(before.allocations + 1);
    const again = await reverse('rev-1', { date: '2026-03-06' }).expect(201);
    expect(again.body).toEqual(first.body);
    expect(await written()).toEqual(afterFirst);
    expect(await open(bill.id)).toBe('100.00');

    // another date, or an allocation's key: a 409, nothing written
    for (const [key, body, id] of [['rev-1', { date: '2026-03-07' }, a], ['alloc-1', { date: '2026-03-06' }, b]] as const) {
      const res = await reverse(key, body, id).expect(409);
      expect(res.body.error).toEqual({ code: 'payables.idempotency_conflict', message: `the Idempotency-Key "${key}" was already used for a different allocation` });
    }
    expect(await written()).toEqual(afterFirst);

    const racing = await Promise.all(Array.from({ length: 3 }, () => reverse('rev-race', { date: '2026-03-06' }, b)));
    expect(racing.map((r) => r.status)).toEqual([201, 201, 201]);
    expect(racing.map((r) => r.body)).toEqual(Array(3).fill(racing[0].body));
    expect(racing[0].body.unallocated).toBe('100.00');
    expect(await written()).toMatchObject({ allocations: afterFirst.allocations + 1, audits: afterFirst.audits + 1 });
    expect(await open(bill2.id)).toBe('100.00');
  });

  it('records a refund once per key: a retry answers the payment as after the first, another request with the key is a 409, concurrent retries refund once', async () => {
    const pay = await credit();
    const other = await credit();
    const refund = (key: string, body: object, paymentId = pay.id) => t.http.post(url(`payments/${paymentId}/refunds`)).set(users.accountant.auth).set('Idempotency-Key', key).send(body);
    const body = { amount: '25.00', date: '2026-03-05' };
    const before = await written();

    const first = await refund('refund-1', body).expect(201);
    expect(first.body).toMatchObject({ id: pay.id, unallocated: '75.00', refunds: [expect.objectContaining({ amount: '25.00' })] });
    const afterFirst = await written();
    expect(afterFirst).toMatchObject({ refunds: before.refunds + 1, entries: before.entries + 1 });
    const again = await refund('refund-1', body).expect(201);
    expect(again.body).toEqual(first.body);
    expect(await written()).toEqual(afterFirst);
    const { rows: stored } = await t.db.admin.query(`SELECT idempotency_key, request_hash FROM finance.bill_payment_refunds WHERE org_id = $1 AND payment_id = $2`, [orgId, pay.id]);
    expect(stored).toEqual([{ idempotency_key: 'refund-1', request_hash: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
    const { rows: audits } = await t.db.admin.query(`SELECT 1 FROM core.audit_logs WHERE org_id = $1 AND action = 'payables.credit_refunded' AND entity_id = $2`, [orgId, pay.id]);
    expect(audits).toHaveLength(1);

    // another amount, or the same body for another payment: a 409, nothing written
    for (const res of [await refund('refund-1', { ...body, amount: '26.00' }), await refund('refund-1', body, other.id)]) {
      expect(res.status).toBe(409);
      expect(res.body.error).toEqual({ code: 'payables.idempotency_conflict', message: 'the Idempotency-Key "refund-1" was already used for a different refund' });
    }
    expect(await written()).toEqual(afterFirst);

    const racing = await Promise.all(Array.from({ length: 3 }, () => refund('refund-race', body, other.id)));
    expect(racing.map((r) => r.status)).toEqual([201, 201, 201]);
    expect(racing.map((r) => r.body)).toEqual(Array(3).fill(racing[0].body));
    expect(racing[0].body.unallocated).toBe('75.00');
    // audit rows: the entry's (the ledger audits each posting) and the refund's
    expect(await written()).toMatchObject({ refunds: afterFirst.refunds + 1, entries: afterFirst.entries + 1, audits: afterFirst.audits + 2 });
  });
});
