import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { expectOpenAmountsKept, issueInvoice, rUrl, setupReceivables } from './receivables-support.js';

/**
 * The Idempotency-Key header (README "When a dependency fails": clients retry writes with it) on the receivables writes
 * that moved money twice on a retry: a credit note, an allocation of a payment's credit and its reversal. The same key
 * with the same request answers the first result (same status and body) and writes nothing (no row, entry, event or
 * audit row); another request with it is a 409 receivables.idempotency_conflict; concurrent retries write one row.
 */
describe('receivables: credit notes, allocations and reversals once per Idempotency-Key', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let customer: string;

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Retry Ltd'));
    await onPlan(t, orgId, 'professional');
    ({ acc, customer } = await setupReceivables(t, orgId, users.owner, 'EUR'));
  });
  afterAll(async () => {
    await expectOpenAmountsKept(t, orgId);
    await t.close();
  });

  const written = async () => (await t.db.admin.query(`SELECT
      (SELECT count(*)::int FROM finance.invoices WHERE org_id = $1 AND kind = 'credit_note') AS "creditNotes",
      (SELECT count(*)::int FROM finance.receivable_allocations WHERE org_id = $1) AS allocations,
      (SELECT count(*)::int FROM finance.journal_entries WHERE org_id = $1) AS entries,
      (SELECT count(*)::int FROM core.audit_logs WHERE org_id = $1) AS audits,
      (SELECT count(*)::int FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event') AS events`, [orgId])).rows[0] as Record<string, number>;
  const invoice = async (unitPrice = '20.00') => issueInvoice(t, orgId, users.accountant,
    { customerId: customer, invoiceDate: '2026-03-02', lines: [{ description: 'Consulting', quantity: '5', unitPrice, revenueAccountId: acc['4100'] }] });
  const open = async (id: string) => (await t.http.get(rUrl(orgId, `invoices/${id}`)).set(users.viewer.auth).expect(200)).body.openAmount as string;
  const credit = async () => (await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth)
    .send({ customerId: customer, date: '2026-03-03', amount: '100.00', depositAccountId: acc['1100'], method: 'bank_transfer' }).expect(201)).body;

  it('creates a credit note once per key: a retry answers it, another request with the key is a 409, concurrent retries credit once', async () => {
    const inv = await invoice();
    const post = (key: string, body: object, id = inv.id) => t.http.post(rUrl(orgId, `invoices/${id}/credit-notes`)).set(users.accountant.auth).set('Idempotency-Key', key).send(body);
    const body = { date: '2026-03-05', lines: [{ lineNo: 1, quantity: '1' }] };
    const before = await written();

    const first = await post('cn-1', body).expect(201);
    expect(first.body).toMatchObject({ kind: 'credit_note', status: 'issued', total: '20.00', creditedInvoiceId: inv.id });
    const once = { creditNotes: before.creditNotes + 1, allocations: before.allocations + 1, entries: before.entries + 1 };
    const afterFirst = await written();
    expect(afterFirst).toMatchObject(once);
    const again = await post('cn-1', body).expect(201);
    expect(again.body).toEqual(first.body);
    expect(await written()).toEqual(afterFirst);
    expect(await open(inv.id)).toBe('80.00');
    const { rows: [stored] } = await t.db.admin.query(`SELECT idempotency_key, request_hash FROM finance.invoices WHERE org_id = $1 AND id = $2`, [orgId, first.body.id]);
    expect(stored).toEqual({ idempotency_key: 'cn-1', request_hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    const { rows: audits } = await t.db.admin.query(`SELECT 1 FROM core.audit_logs WHERE org_id = $1 AND action = 'receivables.credit_note_issued' AND entity_id = $2`, [orgId, first.body.id]);
    expect(audits).toHaveLength(1);

    // another body, or the same body for another invoice: a 409, nothing written
    const other = await invoice();
    for (const res of [await post('cn-1', { ...body, lines: [{ lineNo: 1, quantity: '2' }] }), await post('cn-1', body, other.id)]) {
      expect(res.status).toBe(409);
      expect(res.body.error).toEqual({ code: 'receivables.idempotency_conflict', message: 'the Idempotency-Key "cn-1" was already used for a different credit note' });
    }
    expect(await written()).toMatchObject({ creditNotes: once.creditNotes, entries: afterFirst.entries + 1 }); // the other invoice's issue only
    expect(await open(inv.id)).toBe('80.00');

    // concurrent retries: one credit note, every answer it
    const mark = await written();
    const racing = await Promise.all(Array.from({ length: 3 }, () => post('cn-race', body, other.id)));
    expect(racing.map((r) => r.status)).toEqual([201, 201, 201]);
    expect(racing.map((r) => r.body)).toEqual(Array(3).fill(racing[0].body));
    // audit rows: the entry's (the ledger audits each posting) and the credit note's
    expect(await written()).toMatchObject({ creditNotes: mark.creditNotes + 1, entries: mark.entries + 1, audits: mark.audits + 2 });
    expect(await open(other.id)).toBe('80.00');
  });

  it('allocates once per key: a retry answers the payment as after the first, another request with the key is a 409, concurrent retries allocate once', async () => {
    const inv = await invoice();
    const pay = await credit();
    const allocate = (key: string, body: object, paymentId = pay.id) => t.http.post(rUrl(orgId, `payments/${paymentId}/allocations`)).set(users.accountant.auth).set('Idempotency-Key', key).send(body);
    const body = { date: '2026-03-06', allocations: [{ invoiceId: inv.id, amount: '30.00' }] };
    const before = await written();

    const first = await allocate('alloc-1', body).expect(201);
    expect(first.body).toMatchObject({ id: pay.id, unallocated: '70.00', allocations: [expect.objectContaining({ invoiceId: inv.id, amount: '30.00' })] });
    const afterFirst = await written();
    expect(afterFirst.allocations).toBe(before.allocations + 1);
    const again = await allocate('alloc-1', body).expect(201);
    expect(again.body).toEqual(first.body);
    expect(await written()).toEqual(afterFirst);
    expect(await open(inv.id)).toBe('70.00');
    const { rows: stored } = await t.db.admin.query(`SELECT idempotency_key, request_hash FROM finance.receivable_allocations WHERE org_id = $1 AND payment_id = $2`, [orgId, pay.id]);
    expect(stored).toEqual([{ idempotency_key: 'alloc-1', request_hash: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
    const { rows: audits } = await t.db.admin.query(`SELECT 1 FROM core.audit_logs WHERE org_id = $1 AND action = 'receivables.payment_allocated' AND entity_id = $2`, [orgId, pay.id]);
    expect(audits).toHaveLength(1);

    const res = await allocate('alloc-1', { ...body, allocations: [{ invoiceId: inv.id, amount: '31.00' }] }).expect(409);
    expect(res.body.error).toEqual({ code: 'receivables.idempotency_conflict', message: 'the Idempotency-Key "alloc-1" was already used for a different allocation' });
    expect(await written()).toEqual(afterFirst);

    // concurrent retries: one allocation, every answer the payment as after it
    const racing = await Promise.all(Array.from({ length: 3 }, () => allocate('alloc-race', { date: '2026-03-07', allocations: [{ invoiceId: inv.id, amount: '10.00' }] })));
    expect(racing.map((r) => r.status)).toEqual([201, 201, 201]);
    expect(racing.map((r) => r.body)).toEqual(Array(3).fill(racing[0].body));
    expect(racing[0].body.unallocated).toBe('60.00');
    expect(await written()).toMatchObject({ allocations: afterFirst.allocations + 1, audits: afterFirst.audits + 1 });
    expect(await open(inv.id)).toBe('60.00');
  });

  it('reverses an allocation once per key: a retry answers the payment as after the reversal (not already_reversed), another request is a 409', async () => {
    const [inv, inv2] = [await invoice(), await invoice()];
    const pay = await credit();
    const allocated = (await t.http.post(rUrl(orgId, `payments/${pay.id}/allocations`)).set(users.accountant.auth)
      .send({ date: '2026-03-06', allocations: [{ invoiceId: inv.id, amount: '40.00' }, { invoiceId: inv2.id, amount: '5.00' }] }).expect(201)).body;
    const [a, b] = allocated.allocations.map((x: any) => x.id as string);
    const reverse = (key: string, body: object, allocationId = a) => t.http.post(rUrl(orgId, `allocations/${allocationId}/reverse`)).set(users.accountant.auth).set('Idempotency-Key', key).send(body);
    const before = await written();

    const first = await reverse('rev-1', { date: '2026-03-08' }).expect(201);
    expect(first.body).toMatchObject({ id: pay.id, unallocated: '95.00' });
    const afterFirst = await written();
    expect(afterFirst.allocations).toBe(before.allocations + 1);
    const again = await reverse('rev-1', { date: '2026-03-08' }).expect(201);
    expect(again.body).toEqual(first.body);
    expect(await written()).toEqual(afterFirst);
    expect(await open(inv.id)).toBe('100.00');
    const { rows: audits } = await t.db.admin.query(`SELECT 1 FROM core.audit_logs WHERE org_id = $1 AND action = 'receivables.allocation_reversed' AND entity_id = $2`, [orgId, a]);
    expect(audits).toHaveLength(1);

    // another date, or an allocation's key: a 409, nothing written
    for (const [key, body, id] of [['rev-1', { date: '2026-03-09' }, a], ['alloc-1', { date: '2026-03-08' }, b]] as const) {
      const res = await reverse(key, body, id).expect(409);
      expect(res.body.error).toEqual({ code: 'receivables.idempotency_conflict', message: `the Idempotency-Key "${key}" was already used for a different allocation` });
    }
    expect(await written()).toEqual(afterFirst);

    // concurrent retries: one reversal, every answer the same
    const racing = await Promise.all(Array.from({ length: 3 }, () => reverse('rev-race', { date: '2026-03-08' }, b)));
    expect(racing.map((r) => r.status)).toEqual([201, 201, 201]);
    expect(racing.map((r) => r.body)).toEqual(Array(3).fill(racing[0].body));
    expect(racing[0].body.unallocated).toBe('100.00');
    expect(await written()).toMatchObject({ allocations: afterFirst.allocations + 1, audits: afterFirst.audits + 1 });
    expect(await open(inv2.id)).toBe('100.00');
  });
});
