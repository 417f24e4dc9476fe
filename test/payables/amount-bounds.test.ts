import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { createVendor, payablesUrl } from './payables-support.js';

const MAX = '99999999999999.9999';
const TOP = '99999999999999.99';

/**
 * A bill's or an expense claim's computed amounts (a line's gross, the total) stay within what an amount field accepts
 * back: beyond it a 400 payables.invalid_amount naming the line or the total, never a numeric overflow of the database,
 * and nothing written. The test app's response contract (checked at close) turns an undeclared code into a 500.
 */
describe('payables: amounts beyond what an amount field accepts', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  let acc: Record<string, string>;
  let vendorId: string;
  let vat: string;
  const url = (p: string) => payablesUrl(orgId, p);
  const counts = async () => (await t.db.admin.query(
    `SELECT (SELECT count(*) FROM finance.bills WHERE org_id = $1)::int AS bills,
            (SELECT count(*) FROM core.audit_logs WHERE org_id = $1)::int AS audits`, [orgId])).rows[0];
  const bill = (lines: object[]) => t.http.post(url('bills')).set(owner.auth).send({ vendorId, billDate: '2026-02-03', lines });

  beforeAll(async () => {
    t = await createTestApp({ RATE_LIMITS_ENABLED: 'false' });
    owner = await registerUser(t, 'amount-bounds-owner');
    orgId = await createOrg(t, owner, 'Big Bills Ltd');
    await onEnterprisePlan(t, orgId);
    acc = await startBooks(t, orgId, owner, 'EUR');
    vendorId = await createVendor(t, orgId, owner);
    vat = (await t.http.post(ledgerUrl(orgId, 'tax-codes')).set(owner.auth)
      .send({ code: 'VAT20', name: 'VAT 20 %', rate: '20', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201)).body.id;
  });
  afterAll(() => t.close());

  it('a bill line whose quantity × unitPrice overflows is a 400 naming the line; nothing is written', async () => {
    const before = await counts();
    const res = await bill([{ accountId: acc['5200'], unitPrice: '10' }, { accountId: acc['5200'], quantity: MAX, unitPrice: MAX }]);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('payables.invalid_amount');
    expect(res.body.error.message).toMatch(/^lines\[1\]: /);
    expect(await counts()).toEqual(before);
  });

  it('a draft\'s edit (PATCH) to lines that overflow is the same 400 naming the line or the total; the draft is kept', async () => {
    const draft = (await bill([{ accountId: acc['5200'], unitPrice: '10' }]).expect(201)).body.id;
    const before = await counts();
    const kept = (await t.db.admin.query(`SELECT total::text, updated_at FROM finance.bills WHERE org_id = $1 AND id = $2`, [orgId, draft])).rows;
    const edit = (lines: object[]) => t.http.patch(url(`bills/${draft}`)).set(owner.auth).send({ billDate: '2026-02-03', lines });
    const line = await edit([{ accountId: acc['5200'], quantity: MAX, unitPrice: MAX }]).expect(400);
    expect(line.body.error.code).toBe('payables.invalid_amount');
    expect(line.body.error.message).toMatch(/^lines\[0\]: /);
    const total = await edit([{ accountId: acc['5200'], unitPrice: TOP }, { accountId: acc['5200'], unitPrice: TOP }]).expect(400);
    expect(total.body.error.code).toBe('payables.invalid_amount');
    expect(total.body.error.message).toMatch(/^total: /);
    expect(await counts()).toEqual(before);
    expect((await t.db.admin.query(`SELECT total::text, updated_at FROM finance.bills WHERE org_id = $1 AND id = $2`, [orgId, draft])).rows).toEqual(kept);
  });

  it('a bill line at the largest price plus VAT 20 % is a 400 naming the line', async () => {
    const before = await counts();
    const res = await bill([{ accountId: acc['5200'], unitPrice: TOP, taxCodeId: vat }]);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('payables.invalid_amount');
    expect(res.body.error.message).toMatch(/^lines\[0\]: .*with tax/);
    expect(await counts()).toEqual(before);
  });

  it('bill lines that each fit but add up beyond the largest amount are a 400 naming the total', async () => {
    const before = await counts();
    const res = await bill([{ accountId: acc['5200'], unitPrice: TOP }, { accountId: acc['5200'], unitPrice: TOP }]);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('payables.invalid_amount');
    expect(res.body.error.message).toMatch(/^total: /);
    expect(await counts()).toEqual(before);
  });

  it('an expense claim whose lines add up beyond the largest amount is a 400 naming the total', async () => {
    const before = await counts();
    const line = { accountId: acc['5200'], amount: TOP, currency: 'EUR', date: '2026-02-03' };
    const res = await t.http.post(url('expense-claims')).set(owner.auth).send({ claimDate: '2026-02-03', currency: 'EUR', lines: [line, line] });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('payables.invalid_amount');
    expect(res.body.error.message).toMatch(/^total: /);
    expect(await counts()).toEqual(before);
  });

  it('a foreign-currency bill whose total at its rate is beyond the largest amount is a 400 naming the rate; nothing is written', async () => {
    const before = await counts();
    const res = await t.http.post(url('bills')).set(owner.auth)
      .send({ vendorId, billDate: '2026-02-03', currency: 'USD', rate: '100', lines: [{ accountId: acc['5200'], unitPrice: '10000000000000' }] });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('payables.invalid_amount');
    expect(res.body.error.message).toBe('rate: lines[0] at rate 100 comes to 1000000000000000.00 EUR, above the largest amount 99999999999999.9999');
    expect(await counts()).toEqual(before);
    // at a rate that keeps it within bounds the same bill is a draft
    const ok = await t.http.post(url('bills')).set(owner.auth)
      .send({ vendorId, billDate: '2026-02-03', currency: 'USD', rate: '9', lines: [{ accountId: acc['5200'], unitPrice: '10000000000000' }] });
    expect(ok.status).toBe(201);
    const { rows } = await t.db.admin.query(`SELECT total::text, rate::text FROM finance.bills WHERE org_id = $1 AND id = $2`, [orgId, ok.body.id]);
    expect(rows).toEqual([{ total: '10000000000000.0000', rate: '9.0000000000' }]);
  });

  it('a bill at the largest amount is created, and its total is accepted back as `total`', async () => {
    const res = await t.http.post(url('bills')).set(owner.auth).send({ vendorId, billDate: '2026-02-03', lines: [{ accountId: acc['5200'], unitPrice: TOP }], total: TOP });
    expect(res.status).toBe(201);
    const { rows } = await t.db.admin.query(`SELECT total::text FROM finance.bills WHERE org_id = $1 AND id = $2`, [orgId, res.body.id]);
    expect(rows).toEqual([{ total: '99999999999999.9900' }]);
  });
});
