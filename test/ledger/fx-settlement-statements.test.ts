import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { issueInvoice, rUrl } from '../receivables/receivables-support.js';
import { ledgerUrl } from './ledger-support.js';
import { fxLedger } from './fx-support.js';

/**
 * What a settlement asks of the FX revaluation rows (finance.fx_revaluation_items): nothing for base-currency documents,
 * and one read for all of a payment's foreign-currency documents after the posting (JournalService.settlePendingReversals),
 * not one per invoice; inside an autoReverse window one compensation entry for the reversal's date and one realization
 * entry for all the documents, so the statements the window adds do not grow with the documents (a payment of 20 revalued
 * EUR invoices: 249 statements with an entry pair and a row insert per invoice, 116 with one each for all of them). The
 * statements are counted as the app sends them (pg.Client#query, in this process).
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

  async function payInvoices(currency: 'USD' | 'EUR', revalued: boolean, count = 20) {
    const { orgId, acc } = await fxLedger(t, owner, `${count} ${currency} invoices${revalued ? ' revalued' : ''}`, { rates: { '2026-01-15': '1.10', '2026-01-31': '1.15' }, payables: false });
    const customer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Twenty', defaultCurrency: currency }).expect(201)).body.id as string;
    const invoices: { id: string }[] = [];
    for (let i = 0; i < count; i++) {
      invoices.push(await issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-01-15', currency,
        lines: [{ description: 'Licence', quantity: '1', unitPrice: '100.00', revenueAccountId: acc['4100'] }] }));
    }
    if (revalued) await t.http.post(ledgerUrl(orgId, 'fx-revaluations')).set(owner.auth).send({ date: '2026-01-31', autoReverse: true }).expect(201);
    const res = await counting(() => t.http.post(rUrl(orgId, 'payments')).set(owner.auth).send({
      customerId: customer, currency, date: revalued ? '2026-01-31' : '2026-01-20', amount: `${count * 100}.00`, ...(currency === 'EUR' ? { rate: '1.10' } : {}),
      depositAccountId: acc['1100'], method: 'bank_transfer', allocations: invoices.map((inv) => ({ invoiceId: inv.id, amount: '100.00' })) }));
    expect(res.status).toBe(201);
    const statements = sent.filter((s) => !/^(BEGIN|COMMIT|ROLLBACK)/.test(s));
    return { orgId, paymentId: res.body.id as string, invoices, statements, revaluationReads: statements.filter((s) => s.includes('fx_revaluation_items')) };
  }

  it('a base-currency payment allocated to 20 invoices reads no revaluation row', async () => {
    const { revaluationReads } = await payInvoices('USD', false);
    expect(revaluationReads).toEqual([]);
  });

  it('a EUR payment allocated to 20 invoices reads the pending reversals once for all of them', async () => {
    const { revaluationReads } = await payInvoices('EUR', false);
    expect(revaluationReads.filter((s) => s.includes('x.revaluation_date > ')).length).toBe(1);
  });

  it('a EUR payment allocated to 20 invoices revalued with autoReverse, in the window: one read of the pending reversals, one of the open items; one compensation and one realization for all of them', async () => {
    const { orgId, paymentId, invoices, statements } = await payInvoices('EUR', true);
    expect(statements.filter((s) => s.includes('fx_revaluation_items') && s.includes('x.revaluation_date > ')).length).toBe(1);
    // one posting of each, one insert of the 20 invoices' rows
    expect(statements.filter((s) => s.includes('finance.post_journal_entry(')).length).toBe(3);
    expect(statements.filter((s) => s.includes('INSERT INTO finance.fx_revaluation_items')).length).toBe(1);
    // the 20 invoices, EUR 100.00 each at 1.10 revalued at 1.15 (5.00 each) and paid at 1.10: their 100.00 revaluation
    // realized on Jan 31 (a loss of 5.00 each against what they carry, the 5.00 gain each moved from unrealized)
    const { rows } = await t.db.admin.query(`SELECT e.id, e.source_ref AS ref, e.entry_date::text AS date, e.total_base::numeric(20, 2)::text AS total,
        (SELECT count(*) FROM finance.journal_lines l WHERE l.org_id = e.org_id AND l.entry_id = e.id)::int AS lines
      FROM finance.journal_entries e WHERE e.org_id = $1 AND e.source_ref LIKE 'fx-revaluation:%' ORDER BY e.seq`, [orgId]);
    expect(rows.map(({ id: _id, ...r }) => r)).toEqual([
      { ref: 'fx-revaluation:settled-share', date: '2026-02-01', total: '100.00', lines: 40 }, { ref: 'fx-revaluation:realized-share', date: '2026-01-31', total: '100.00', lines: 40 }]);
    // each invoice's row (5.00 put back on Feb 1 of the 5.00 the reversal takes off) is linked to the compensation that moved it
    const { rows: items } = await t.db.admin.query(`SELECT x.document_id::text AS "documentId", x.base_delta::numeric(20, 2)::text AS delta FROM finance.fx_revaluation_items x
      WHERE x.org_id = $1 AND x.entry_id = $2 ORDER BY x.seq`, [orgId, rows[0].id]);
    expect(items.map((i) => i.documentId).sort()).toEqual(invoices.map((i) => i.id).sort());
    expect(new Set(items.map((i) => i.delta))).toEqual(new Set(['5.00']));
    const { rows: [audit] } = await t.db.admin.query(`SELECT after FROM core.audit_logs WHERE org_id = $1 AND action = 'receivables.payment_received' AND entity_id = $2`, [orgId, paymentId]);
    expect([audit.after.compensationEntryIds, audit.after.realizationEntryIds]).toEqual([[rows[0].id], [rows[1].id]]);
  });

  it('a credit note of a revalued invoice reads the ledger settings no more often than one of an invoice never revalued (the share of the revaluation takes the base currency\'s minor units its caller read)', async () => {
    const settingsReads = async (revalued: boolean) => {
      const { orgId, acc } = await fxLedger(t, owner, `Credit note${revalued ? ' revalued' : ''}`, { rates: { '2026-01-15': '1.10', '2026-01-31': '1.15' }, payables: false });
      const customer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Euro GmbH', defaultCurrency: 'EUR' }).expect(201)).body.id as string;
      const inv = await issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-01-15', currency: 'EUR',
        lines: [{ description: 'Licence', quantity: '1', unitPrice: '1000.00', revenueAccountId: acc['4100'] }] });
      if (revalued) await t.http.post(ledgerUrl(orgId, 'fx-revaluations')).set(owner.auth).send({ date: '2026-01-31' }).expect(201);
      const res = await counting(() => t.http.post(rUrl(orgId, `invoices/${inv.id}/credit-notes`)).set(owner.auth).send({ date: '2026-02-05', lines: [{ lineNo: 1, quantity: '0.5' }] }));
      expect(res.status).toBe(201);
      // the revalued one took its share of the revaluation (25.00) off the unrealized gain account
      const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.fx_revaluation_items WHERE org_id = $1 AND entry_id = $2`, [orgId, res.body.entryId]);
      expect(rows).toEqual([{ n: revalued ? 1 : 0 }]);
      return sent.filter((q) => /from "finance"\."settings"/i.test(q)).length;
    };
    const [plain, revalued] = [await settingsReads(false), await settingsReads(true)];
    expect(plain).toBeGreaterThan(0);
    expect(revalued).toBe(plain);
  });

  it('the statements the window adds to a EUR payment do not grow with the invoices it is allocated to (2 or 20 revalued invoices)', async () => {
    const added = async (count: number) => (await payInvoices('EUR', true, count)).statements.length - (await payInvoices('EUR', false, count)).statements.length;
    const [two, twenty] = [await added(2), await added(20)];
    expect(twenty).toBe(two);
  });
});
