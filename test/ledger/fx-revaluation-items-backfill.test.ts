import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { expectOpenAmountsKept, issueInvoice, rUrl } from '../receivables/receivables-support.js';
import { createVendor, payablesUrl } from '../payables/payables-support.js';
import { fxLedger, oldFxEntries, setupPayables } from './fx-support.js';

const MIGRATION = new URL('../../prisma/migrations/20270208180100_fx_revaluation_items_backfill/migration.sql', import.meta.url);
const ACTOR = 'migration:20270208180100';

/**
 * Books revalued before 20270208010100: the revaluation moved the AR and AP control accounts as one balance and wrote no
 * item rows (finance.fx_revaluation_items), so the aging no longer equalled the account and the next per-item
 * revaluation counted the old adjustment again. The backfill (20270208180100) replays the old entries per item.
 * The old entries are posted here as the old JournalService.revalue posted them: through finance.post_journal_entry,
 * audited as ledger.fx_revaluation_posted, its reversal (autoReverse) as a reversal of it.
 */
describe('backfill of the item rows of FX revaluations posted as one balance', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
  });
  afterAll(() => t.close());

  async function books(name: string, rates: [string, string][]) {
    const { orgId, acc, balance, arAging, revalue: revaluation } = await fxLedger(t, owner, name, { rates: Object.fromEntries(rates), payables: false });
    const { oldRevaluation, oldReversal } = oldFxEntries(t, owner, orgId, acc);
    const items = async () => (await t.db.admin.query(
      `SELECT entry_id::text, subledger, document_id::text, revaluation_date::text AS date, rate::numeric(10, 4)::text AS rate, base_delta::numeric(20, 2)::text AS delta, created_by
       FROM finance.fx_revaluation_items WHERE org_id = $1 ORDER BY seq`, [orgId])).rows;
    const backfilled = async () => (await t.db.admin.query(
      `SELECT entity_id, principal_type, after ->> 'items' AS items, after ->> 'baseDelta' AS base_delta FROM core.audit_logs
       WHERE org_id = $1 AND action = 'ledger.fx_revaluation_items_backfilled' AND actor_id = $2 ORDER BY id`, [orgId, ACTOR])).rows;
    const revalue = async (date: string) => (await revaluation(date).expect(201)).body;
    // the backfill ran before 20270210290100, whose check holds later rows to naming their unrealized FX account
    const migrate = async () => {
      await t.db.admin.query(`ALTER TABLE finance.fx_revaluation_items DROP CONSTRAINT IF EXISTS fx_revaluation_items_fx_account_required; ${readFileSync(MIGRATION, 'utf8')}`);
    };
    return { orgId, acc, balance, arAging, oldRevaluation, oldReversal, items, backfilled, revalue, migrate };
  }

  it('receivables: the open invoices carry the old revaluation (its rounding on the largest), the aging equals AR, a later revaluation and the payment count the gain once', async () => {
    const { orgId, acc, balance, oldRevaluation, items, backfilled, revalue, migrate, arAging: agingTotal } = await books('AR revalued the old way',
      [['2026-01-15', '1.10'], ['2026-01-31', '1.1537'], ['2026-02-28', '1.20'], ['2026-03-10', '1.25']]);
    const customer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Euro GmbH', defaultCurrency: 'EUR' }).expect(201)).body.id;
    const invoice = (unitPrice: string) => issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-01-15',
      lines: [{ description: 'Licence', quantity: '1', unitPrice, revenueAccountId: acc['4100'] }] });
    const [a, b, c] = [await invoice('333.33'), await invoice('333.33'), await invoice('333.34')];
    expect([a.rate, b.rate, c.rate]).toEqual(['1.1000000000', '1.1000000000', '1.1000000000']);
    expect(await balance('1200', '2026-01-31')).toBe('1099.99');

    // the old revaluation: EUR 1,000.00 at 1.1537 = 1,153.70, from 1,099.99: 53.71 (per item 17.90 + 17.90 + 17.90 = 53.70)
    const old = await oldRevaluation('2026-01-31', '1200', '1.1537', '53.71');
    expect(await items()).toEqual([]);
    expect([await balance('1200', '2026-01-31'), await agingTotal('2026-01-31')]).toEqual(['1153.70', '1099.99']);

    await migrate();
    const rows = [
      { entry_id: old.id, subledger: 'receivables', document_id: a.id, date: '2026-01-31', rate: '1.1537', delta: '17.90', created_by: ACTOR },
      { entry_id: old.id, subledger: 'receivables', document_id: b.id, date: '2026-01-31', rate: '1.1537', delta: '17.90', created_by: ACTOR },
      // the largest item (EUR 333.34) takes the cent the account-level rounding left over
      { entry_id: old.id, subledger: 'receivables', document_id: c.id, date: '2026-01-31', rate: '1.1537', delta: '17.91', created_by: ACTOR }];
    expect((await items()).sort((x, y) => x.delta.localeCompare(y.delta) || x.document_id.localeCompare(y.document_id)))
      .toEqual([...rows.slice(0, 2).sort((x, y) => x.document_id.localeCompare(y.document_id)), rows[2]]);
    expect(await backfilled()).toEqual([{ entity_id: old.id, principal_type: 'system', items: '3', base_delta: '53.7100' }]);
    for (const asOf of ['2026-01-30', '2026-01-31', '2026-02-15']) {
      expect({ asOf, aging: await agingTotal(asOf) }).toEqual({ asOf, aging: await balance('1200', asOf) });
    }
    // the open amounts the triggers keep took the rows in: as their source view works them out
    const openAmounts = (from: string) => t.db.admin.query(
      `SELECT document_id::text, open_base::numeric(20, 2)::text AS open_base, settled_through::text FROM ${from} WHERE org_id = $1 ORDER BY document_id`, [orgId]).then((r) => r.rows);
    expect(await openAmounts('finance.receivable_open_amounts')).toEqual(await openAmounts('finance.receivable_open_amounts_source'));
    expect((await openAmounts('finance.receivable_open_amounts')).find((r) => r.document_id === c.id)).toEqual({ document_id: c.id, open_base: '384.58', settled_through: '2026-01-31' });
    await expectOpenAmountsKept(t, orgId);
    // applied again: nothing more
    await migrate();
    expect(await items()).toHaveLength(3);
    expect(await backfilled()).toHaveLength(1);

    // revalued per item at 1.20 from what the items carry (384.56, 384.56, 384.58): 400.00 + 400.00 + 400.01 - 1,153.70
    const reval = await revalue('2026-02-28');
    expect(reval.adjustments).toEqual([expect.objectContaining({ accountId: acc['1200'], currency: 'EUR', baseBefore: '1153.70', baseAfter: '1200.01', difference: '46.31' })]);
    expect([await balance('1200', '2026-02-28'), await agingTotal('2026-02-28')]).toEqual(['1200.01', '1200.01']);

    // paid at 1.25 (1,250.00): AR takes off what the invoices carry, the realized gain is the move since
    await t.http.post(rUrl(orgId, 'payments')).set(owner.auth).send({ customerId: customer, date: '2026-03-10', amount: '1000.00', currency: 'EUR',
      depositAccountId: acc['1100'], method: 'bank_transfer',
      allocations: [{ invoiceId: a.id, amount: '333.33' }, { invoiceId: b.id, amount: '333.33' }, { invoiceId: c.id, amount: '333.34' }] }).expect(201);
    expect([await balance('1200', '2026-03-10'), await agingTotal('2026-03-10')]).toEqual(['0.00', '0.00']);
    // the whole gain once: 1,250.00 received for 1,099.99 invoiced, 100.02 of it unrealized (53.71 + 46.31)
    const [realized, unrealized] = [await balance('4300', '2026-03-10'), await balance('4310', '2026-03-10')];
    expect(unrealized).toBe('-100.02');
    expect((Number(realized) + Number(unrealized)).toFixed(2)).toBe('-150.01');
    await expectOpenAmountsKept(t, orgId);
  });

  it('receivables: an invoice voided after an old revaluation gets its row replayed, and its stored open amount stays 0 as the source view says', async () => {
    const { orgId, acc, balance, oldRevaluation, items, migrate, arAging: agingTotal } = await books('AR voided after an old revaluation', [['2026-01-15', '1.10'], ['2026-01-31', '1.15']]);
    const customer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Euro GmbH', defaultCurrency: 'EUR' }).expect(201)).body.id;
    const inv = await issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-01-15',
      lines: [{ description: 'Licence', quantity: '1', unitPrice: '1000.00', revenueAccountId: acc['4100'] }] });
    const old = await oldRevaluation('2026-01-31', '1200', '1.15', '50.00');
    // voided the old way: no item rows yet, so the void takes off only the invoice's own base
    await t.http.post(rUrl(orgId, `invoices/${inv.id}/void`)).set(owner.auth).send({ date: '2026-02-05' }).expect(200);

    // the replay writes the row of an invoice open on Jan 31 and voided since: it must not reopen the invoice
    await migrate();
    expect((await items()).map((r) => [r.entry_id, r.document_id, r.date, r.delta])).toEqual([[old.id, inv.id, '2026-01-31', '50.00']]);
    const { rows: [open] } = await t.db.admin.query(`SELECT open_base::numeric(20, 2)::text AS open_base, settled_through::text, voided_on::text
      FROM finance.receivable_open_amounts WHERE org_id = $1 AND document_id = $2`, [orgId, inv.id]);
    expect(open).toEqual({ open_base: '0.00', settled_through: '2026-02-05', voided_on: '2026-02-05' });
    expect([await balance('1200', '2026-01-31'), await agingTotal('2026-01-31')]).toEqual(['1150.00', '1150.00']);
    expect(await agingTotal('2026-02-05')).toBe('0.00');
    await expectOpenAmountsKept(t, orgId);
  });

  it('payables: an autoReverse revaluation and a later one replayed in date order, the aging equals AP on each day, a later revaluation and the payment count the loss once', async () => {
    const { orgId, acc, balance, oldRevaluation, oldReversal, items, backfilled, revalue, migrate } = await books('AP revalued the old way',
      [['2026-01-15', '1.10'], ['2026-01-31', '1.15'], ['2026-02-28', '1.20'], ['2026-03-31', '1.25'], ['2026-04-10', '1.30']]);
    await setupPayables(t, orgId, owner, acc);
    const vendor = await createVendor(t, orgId, owner, { name: 'Euro Supplies', defaultCurrency: 'EUR' });
    const aging = async (asOf: string) => (await t.http.get(payablesUrl(orgId, `aging?asOf=${asOf}`)).set(owner.auth).expect(200)).body;
    const expectAgingIsAp = async (asOf: string, want: string) => {
      const x = await aging(asOf);
      expect({ asOf, ap: x.controlAccountBalance, aging: x.total }).toEqual({ asOf, ap: want, aging: want });
    };
    const draft = await t.http.post(payablesUrl(orgId, 'bills')).set(owner.auth).send({ vendorId: vendor, billDate: '2026-01-15', currency: 'EUR',
      lines: [{ accountId: acc['5200'], unitPrice: '1000.00' }] }).expect(201);
    const bill = (await t.http.post(payablesUrl(orgId, `bills/${draft.body.id}/submit`)).set(owner.auth).send({}).expect(200)).body;
    expect(bill).toMatchObject({ status: 'posted', rate: '1.1000000000' });

    // Jan 31 at 1.15 with autoReverse (reversed Feb 1), Feb 28 at 1.20 without: AP 1,100.00 -> 1,150.00 -> 1,100.00 -> 1,200.00
    const jan = await oldRevaluation('2026-01-31', '2100', '1.15', '-50.00');
    const reversal = await oldReversal(jan, '2026-02-01', '2026-01-31');
    const feb = await oldRevaluation('2026-02-28', '2100', '1.20', '-100.00');
    expect(await items()).toEqual([]);
    const x = await aging('2026-02-28');
    expect([x.controlAccountBalance, x.total]).toEqual(['1200.00', '1100.00']);

    await migrate();
    expect(await items()).toEqual([
      { entry_id: jan.id, subledger: 'payables', document_id: bill.id, date: '2026-01-31', rate: '1.1500', delta: '50.00', created_by: ACTOR },
      { entry_id: reversal.id, subledger: 'payables', document_id: bill.id, date: '2026-02-01', rate: '1.1000', delta: '-50.00', created_by: ACTOR },
      { entry_id: feb.id, subledger: 'payables', document_id: bill.id, date: '2026-02-28', rate: '1.2000', delta: '100.00', created_by: ACTOR }]);
    expect((await backfilled()).map((r) => r.entity_id)).toEqual([jan.id, reversal.id, feb.id]);
    await expectAgingIsAp('2026-01-31', '1150.00');
    await expectAgingIsAp('2026-02-01', '1100.00');
    await expectAgingIsAp('2026-02-28', '1200.00');
    await migrate();
    expect(await items()).toHaveLength(3);

    // revalued per item at 1.25: 50.00 more (from the 1,200.00 the bill carries, not 150.00 from its 1,100.00)
    const reval = await revalue('2026-03-31');
    expect(reval.adjustments).toEqual([expect.objectContaining({ accountId: acc['2100'], currency: 'EUR', baseBefore: '-1200.00', baseAfter: '-1250.00', difference: '-50.00' })]);
    await expectAgingIsAp('2026-03-31', '1250.00');
    const pay = await t.http.post(payablesUrl(orgId, 'payments')).set(owner.auth).send({ vendorId: vendor, paymentDate: '2026-04-10', amount: '1000.00', currency: 'EUR',
      bankAccountId: acc['1100'], allocations: [{ billId: bill.id, amount: '1000.00' }] }).expect(201);
    expect(pay.body.allocations).toEqual([expect.objectContaining({ billBaseAmount: '1250.00', paymentBaseAmount: '1300.00', fxDifference: '50.00' })]);
    await expectAgingIsAp('2026-04-10', '0.00');
    expect(await balance('2100', '2026-04-10')).toBe('0.00');
    // the whole loss once: (1.30 - 1.10) x 1,000 = 200.00, 150.00 of it unrealized (100.00 + 50.00)
    expect([await balance('5500', '2026-04-10'), await balance('5510', '2026-04-10')]).toEqual(['50.00', '150.00']);
  });
});
