import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { issueInvoice, rUrl, setupReceivables } from '../receivables/receivables-support.js';
import { ledgerUrl } from './ledger-support.js';

/**
 * What a settlement asks of the FX revaluation rows (finance.fx_revaluation_items): nothing for base-currency documents,
 * and one read for all of a payment's foreign-currency documents after the posting (JournalService.settlePendingReversals),
 * not one per invoice. The statements are counted as the app sends them (pg.Client#query, in this process).
 */
describe('FX revaluation: the statements a settlement sends for the revaluation rows', () => {
  let t: TestApp;
  let owner: TestUser;
  const sent: string[] = [];
  const query = pg.Client.prototype.query;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
  });
  afterEach(() => { pg.Client.prototype.query = query; });
  afterAll(() => t.close());

  /** Runs `request` with every statement's text recorded in `sent`. */
  async function counting<T>(request: () => Promise<T>): Promise<T> {
    sent.length = 0;
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      const q = args[0] as string | { text?: string };
      sent.push(typeof q === 'string' ? q : q?.text ?? '');
      return (query as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof query;
    try {
      return await request();
    } finally {
      pg.Client.prototype.query = query;
    }
  }

  async function payTwentyInvoices(currency: 'USD' | 'EUR', revalued: boolean) {
    const orgId = await createOrg(t, owner, `Twenty ${currency} invoices${revalued ? ' revalued' : ''}`);
    await onPlan(t, orgId, 'professional');
    const { acc } = await setupReceivables(t, orgId, owner, 'USD');
    await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(owner.auth).send({ rates: [{ currency: 'EUR', date: '2026-01-15', rate: '1.10' }, { currency: 'EUR', date: '2026-01-31', rate: '1.15' }] }).expect(201);
    const customer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Twenty', defaultCurrency: currency }).expect(201)).body.id as string;
    const invoices: { id: string }[] = [];
    for (let i = 0; i < 20; i++) {
      invoices.push(await issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-01-15', currency,
        lines: [{ description: 'Licence', quantity: '1', unitPrice: '100.00', revenueAccountId: acc['4100'] }] }));
    }
    if (revalued) await t.http.post(ledgerUrl(orgId, 'fx-revaluations')).set(owner.auth).send({ date: '2026-01-31', autoReverse: true }).expect(201);
    const res = await counting(() => t.http.post(rUrl(orgId, 'payments')).set(owner.auth).send({
      customerId: customer, currency, date: revalued ? '2026-01-31' : '2026-01-20', amount: '2000.00', ...(currency === 'EUR' ? { rate: '1.10' } : {}),
      depositAccountId: acc['1100'], method: 'bank_transfer', allocations: invoices.map((inv) => ({ invoiceId: inv.id, amount: '100.00' })) }));
    expect(res.status).toBe(201);
    const statements = sent.filter((s) => !/^(BEGIN|COMMIT|ROLLBACK)/.test(s));
    return { orgId, statements, revaluationReads: statements.filter((s) => s.includes('fx_revaluation_items')) };
  }

  it('a base-currency payment allocated to 20 invoices reads no revaluation row', async () => {
    const { revaluationReads } = await payTwentyInvoices('USD', false);
    expect(revaluationReads).toEqual([]);
  });

  it('a EUR payment allocated to 20 invoices reads the pending reversals once for all of them', async () => {
    const { revaluationReads } = await payTwentyInvoices('EUR', false);
    expect(revaluationReads.filter((s) => s.includes('x.revaluation_date > ')).length).toBe(1);
  });

  it('a EUR payment allocated to 20 invoices revalued with autoReverse, in the window: one read of the pending reversals, one of the open items; 20 compensations and realizations', async () => {
    const { orgId, statements } = await payTwentyInvoices('EUR', true);
    expect(statements.filter((s) => s.includes('fx_revaluation_items') && s.includes('x.revaluation_date > ')).length).toBe(1);
    // the 20 invoices, EUR 100.00 each at 1.10 revalued at 1.15 (5.00 each) and paid at 1.10: their 100.00 revaluation
    // realized on Jan 31 (a loss of 5.00 each against what they carry, the 5.00 gain each moved from unrealized)
    const { rows } = await t.db.admin.query(`SELECT source_ref AS ref, count(*)::int AS n, sum(total_base)::numeric(20, 2)::text AS total FROM finance.journal_entries
      WHERE org_id = $1 AND source_ref LIKE 'fx-revaluation:%' GROUP BY 1 ORDER BY 1`, [orgId]);
    expect(rows).toEqual([{ ref: 'fx-revaluation:realized-share', n: 20, total: '100.00' }, { ref: 'fx-revaluation:settled-share', n: 20, total: '100.00' }]);
  });
});
