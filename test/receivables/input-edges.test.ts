import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { rUrl, setupReceivables } from './receivables-support.js';

const NIL = '00000000-0000-4000-8000-000000000000';
const MAX = '99999999999999.9999';

/**
 * Input edges of the invoice operations: an unknown invoice is a 404 before anything about the books; an invoice whose
 * amounts (a line, its tax, the total) go beyond what an amount field accepts back is a 400 naming the line or the
 * total, never a numeric overflow of the database, and nothing is written. The test app's response contract (checked
 * at close) turns any code undeclared on an operation into a 500.
 */
describe('receivables: input edges (unknown invoice, amounts beyond the Amount pattern)', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp({ RATE_LIMITS_ENABLED: 'false' });
    owner = await registerUser(t, 'input-edges-owner');
  });
  afterAll(() => t.close());

  it('issuing an unknown invoice in an organization without books is a 404 invoice.not_found, not books_not_started', async () => {
    const orgId = await createOrg(t, owner, 'No Books Ltd');
    await onEnterprisePlan(t, orgId);
    const res = await t.http.post(rUrl(orgId, `invoices/${NIL}/issue`)).set(owner.auth).send({});
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('invoice.not_found');
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1`, [orgId]);
    expect(rows[0].n).toBe(0);
  });

  it('no operation on an unknown document of an organization without books answers books_not_started or an undeclared code', async () => {
    const orgId = await createOrg(t, owner, 'No Books Either Ltd');
    await onEnterprisePlan(t, orgId);
    const paths = [
      'receivables/invoices/:id/issue', 'receivables/invoices/:id/void', 'receivables/invoices/:id/credit-notes',
      'receivables/payments/:id/allocations', 'receivables/payments/:id/refunds', 'receivables/allocations/:id/reverse',
      'payables/bills/:id/submit', 'payables/bills/:id/approve', 'payables/bills/:id/reject', 'payables/bills/:id/void',
      'payables/expense-claims/:id/submit', 'payables/expense-claims/:id/approve', 'payables/expense-claims/:id/void',
      'payables/payments/:id/allocations', 'payables/payments/:id/refunds', 'payables/allocations/:id/reverse',
    ];
    // bodies that pass validation, so that the look-up is what answers
    const bodies: Record<string, object> = {
      'receivables/invoices/:id/credit-notes': { date: '2026-01-10' },
      'receivables/payments/:id/allocations': { allocations: [{ invoiceId: NIL, amount: '1.00' }] },
      'receivables/payments/:id/refunds': { amount: '1.00' },
      'payables/bills/:id/reject': { reason: 'no' },
      'payables/payments/:id/allocations': { billId: NIL, amount: '1.00' },
      'payables/payments/:id/refunds': { amount: '1.00' },
    };
    const answers: Record<string, string> = {};
    for (const path of paths) {
      const res = await t.http.post(`/v1/orgs/${orgId}/${path.replace(':id', NIL)}`).set(owner.auth).send(bodies[path] ?? {});
      answers[path] = `${res.status} ${res.body.error?.code}`;
    }
    // a 404 of the unknown document: never the books, never a 500 (an undeclared code)
    for (const [path, answer] of Object.entries(answers)) expect([path, answer]).toEqual([path, expect.stringMatching(/^404 \S+\.not_found$/)]);
    expect(answers['receivables/invoices/:id/issue']).toBe('404 invoice.not_found');
  });

  describe('amounts beyond what an amount field accepts', () => {
    let orgId: string;
    let a: Awaited<ReturnType<typeof setupReceivables>>;
    const line = (quantity: string, unitPrice: string, extra: object = {}) => ({ description: 'x', quantity, unitPrice, revenueAccountId: a.acc['4100'], ...extra });
    const create = (lines: object[]) => t.http.post(rUrl(orgId, 'invoices')).set(owner.auth).send({ customerId: a.customer, invoiceDate: '2026-01-10', lines });
    const counts = async () => (await t.db.admin.query(
      `SELECT (SELECT count(*) FROM finance.invoices WHERE org_id = $1)::int AS invoices,
              (SELECT count(*) FROM core.audit_logs WHERE org_id = $1 AND action = 'receivables.invoice_created')::int AS audits`, [orgId])).rows[0];

    beforeAll(async () => {
      orgId = await createOrg(t, owner, 'Big Amounts Ltd');
      await onEnterprisePlan(t, orgId);
      a = await setupReceivables(t, orgId, owner, 'USD');
    });

    it('a line whose quantity × unitPrice overflows is a 400 naming the line; nothing is written', async () => {
      const before = await counts();
      const res = await create([line('1', '1'), line(MAX, MAX)]);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('receivables.invalid_amount');
      expect(res.body.error.message).toMatch(/^lines\[1\]: /);
      expect(await counts()).toEqual(before);
    });

    it('a line at the largest price plus VAT 20 % is a 400 naming the line (its gross could not be sent back)', async () => {
      const before = await counts();
      const res = await create([line('1', '99999999999999.99', { taxCodeId: a.vat })]);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('receivables.invalid_amount');
      expect(res.body.error.message).toMatch(/^lines\[0\]: .*with tax/);
      expect(await counts()).toEqual(before);
    });

    it('lines that each fit but add up beyond the largest amount are a 400 naming the total', async () => {
      const before = await counts();
      const res = await create(Array.from({ length: 200 }, () => line('1', '99999999999999.99')));
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('receivables.invalid_amount');
      expect(res.body.error.message).toMatch(/^total: /);
      expect(await counts()).toEqual(before);
    });

    it('an invoice at the largest amount is created, and its total is accepted back as `total`', async () => {
      const res = await create([line('1', '99999999999999.99')]);
      expect(res.status).toBe(201);
      expect(res.body.total).toBe('99999999999999.99');
      const again = await t.http.post(rUrl(orgId, 'invoices')).set(owner.auth)
        .send({ customerId: a.customer, invoiceDate: '2026-01-10', lines: [line('1', '99999999999999.99')], total: res.body.total });
      expect(again.status).toBe(201);
      const { rows } = await t.db.admin.query(`SELECT total::text FROM finance.invoices WHERE org_id = $1 AND id = ANY($2::uuid[]) ORDER BY total`, [orgId, [res.body.id, again.body.id]]);
      expect(rows).toEqual([{ total: '99999999999999.9900' }, { total: '99999999999999.9900' }]);
    });

    it('the same bound on a draft\'s update: a 400 naming the line, the draft unchanged', async () => {
      const draft = (await create([line('2', '10')]).then((r) => { expect(r.status).toBe(201); return r; })).body;
      const res = await t.http.put(rUrl(orgId, `invoices/${draft.id}`)).set(owner.auth)
        .send({ customerId: a.customer, invoiceDate: '2026-01-10', lines: [line(MAX, MAX)] });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('receivables.invalid_amount');
      expect(res.body.error.message).toMatch(/^lines\[0\]: /);
      const { rows } = await t.db.admin.query(`SELECT total::text FROM finance.invoices WHERE id = $1`, [draft.id]);
      expect(rows).toEqual([{ total: '20.0000' }]);
    });
  });
});
