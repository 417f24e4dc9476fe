import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { expectOpenAmountsKept, issueInvoice, rUrl, setupReceivables } from '../receivables/receivables-support.js';
import { createVendor, payablesUrl } from '../payables/payables-support.js';
import { balanceDrift, ledgerUrl } from './ledger-support.js';

const BACKFILL = new URL('../../prisma/migrations/20270208180100_fx_revaluation_items_backfill/migration.sql', import.meta.url);
const CORRECTION = new URL('../../prisma/migrations/20270209020100_fx_revaluation_voided_items_correction/migration.sql', import.meta.url);
const ACTOR = 'migration:20270209020100';

/**
 * A document voided after an FX revaluation posted the old way (one balance per account, before 20270208010100) kept
 * that revaluation's adjustment on its control account: the old void reversed only the document's own base. The
 * backfill (20270208180100) gave it item rows, and the aging counts nothing of a voided document: AR (or AP) <> aging
 * from the void on. 20270209020100 takes the leftover off against the unrealized FX account the old revaluation used,
 * dated the void (or the first open day after a closed period), with the opposite item row; audited.
 * Old entries are posted as the backfill test posts them (finance.post_journal_entry, as the old JournalService.revalue).
 */
describe('correction of documents voided after an FX revaluation posted as one balance', () => {
  let t: TestApp;
  let owner: TestUser;

  /**
   * The migration runs as a role like Supabase's postgres, which is no superuser: it owns the tables (a member of their
   * owner), bypasses RLS and is a member of finance_posting (through the owner, as the ledger migration made it)
   */
  const migrationRole = `omnizen_t_migrator_${process.pid}`;
  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
    await t.db.admin.query(`CREATE ROLE ${migrationRole} NOLOGIN NOSUPERUSER BYPASSRLS`);
    await t.db.admin.query(`GRANT ${(await t.db.admin.query('SELECT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE oid = \'finance.journal_entries\'::regclass')).rows[0].owner} TO ${migrationRole}`);
  });
  afterAll(async () => {
    await t.db.admin.query(`DROP ROLE IF EXISTS ${migrationRole}`);
    await t.close();
  });
  async function correct() {
    const c = await t.db.admin.connect();
    try {
      await c.query('BEGIN');
      await c.query(`SET LOCAL ROLE ${migrationRole}`);
      expect((await c.query('SELECT rolsuper FROM pg_roles WHERE rolname = current_user')).rows).toEqual([{ rolsuper: false }]);
      await c.query(readFileSync(CORRECTION, 'utf8'));
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK');
      throw err;
    } finally {
      c.release();
    }
  }

  async function books(name: string, rates: [string, string][]) {
    const orgId = await createOrg(t, owner, name);
    await onPlan(t, orgId, 'professional');
    const { acc } = await setupReceivables(t, orgId, owner, 'USD');
    await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(owner.auth)
      .send({ rates: rates.map(([date, rate]) => ({ currency: 'EUR', date, rate })) }).expect(201);
    const balance = async (code: string, asOf: string) =>
      (await t.http.get(ledgerUrl(orgId, `accounts/${acc[code]}/balance?asOf=${asOf}`)).set(owner.auth).expect(200)).body.baseBalance as string;
    const claims = { sub: owner.id, org_id: orgId };
    /** the old revaluation entry of one account: its line at the rate, base only, against the unrealized FX account */
    const oldRevaluation = async (date: string, accountCode: string, rate: string, difference: string) => {
      const amount = difference.replace('-', '');
      const description = `FX revaluation of EUR at ${rate}`;
      const gain = !difference.startsWith('-');
      const payload = { date, memo: `FX revaluation as of ${date}`, source: 'system', lines: [
        { accountId: acc[accountCode], currency: 'EUR', rate, ...(gain ? { baseDebit: amount } : { baseCredit: amount }), description },
        gain ? { accountId: acc['4310'], credit: amount, description } : { accountId: acc['5510'], debit: amount, description }] };
      const [row] = await t.db.asApi(claims, 'authenticated', 'SELECT entry FROM finance.post_journal_entry($1::jsonb, $2::jsonb)',
        [JSON.stringify(payload), JSON.stringify({ action: 'ledger.fx_revaluation_posted' })]);
      return row.entry as { id: string };
    };
    const rows = async (createdBy: string) => (await t.db.admin.query(
      `SELECT entry_id::text, subledger, document_id::text, revaluation_date::text AS date, rate::numeric(10, 4)::text AS rate, base_delta::numeric(20, 2)::text AS delta
       FROM finance.fx_revaluation_items WHERE org_id = $1 AND created_by = $2 ORDER BY seq`, [orgId, createdBy])).rows;
    /** the correcting entries: header, lines (code, currency, base debit, base credit, counterparty) */
    const corrections = async () => {
      const { rows: entries } = await t.db.admin.query(
        `SELECT id::text, entry_date::text AS date, source, created_by, memo FROM finance.journal_entries WHERE org_id = $1 AND created_by = $2 ORDER BY seq`, [orgId, ACTOR]);
      for (const e of entries) {
        e.lines = (await t.db.admin.query(`SELECT a.code, l.currency, l.debit::numeric(20, 2)::text AS debit, l.credit::numeric(20, 2)::text AS credit,
            l.base_debit::numeric(20, 2)::text AS base_debit, l.base_credit::numeric(20, 2)::text AS base_credit, l.counterparty_type, l.counterparty_id
          FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id WHERE l.org_id = $1 AND l.entry_id = $2 ORDER BY l.line_no`, [orgId, e.id])).rows;
      }
      return entries;
    };
    const audits = async () => (await t.db.admin.query(
      `SELECT action, principal_type, entity_type, entity_id, after FROM core.audit_logs WHERE org_id = $1 AND actor_id = $2 ORDER BY id`, [orgId, ACTOR])).rows;
    const migrate = async () => {
      await t.db.admin.query(readFileSync(BACKFILL, 'utf8'));
      await correct();
    };
    return { orgId, acc, balance, oldRevaluation, rows, corrections, audits, migrate };
  }

  it('receivables: the voided invoice\'s leftover is taken off AR on its void date against the gain account; AR equals the aging again, the open invoice keeps its revaluation', async () => {
    const { orgId, acc, balance, oldRevaluation, rows, corrections, audits, migrate } = await books('AR voided after an old revaluation',
      [['2026-01-15', '1.10'], ['2026-01-31', '1.15']]);
    const customer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Euro GmbH', defaultCurrency: 'EUR' }).expect(201)).body.id;
    const agingTotal = async (asOf: string) => (await t.http.get(rUrl(orgId, `aging?asOf=${asOf}`)).set(owner.auth).expect(200)).body.total as string;
    const invoice = (unitPrice: string) => issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-01-15',
      lines: [{ description: 'Licence', quantity: '1', unitPrice, revenueAccountId: acc['4100'] }] });
    const [voided, open] = [await invoice('1000.00'), await invoice('500.00')];
    // EUR 1,500.00 from 1,650.00 to 1.15: 75.00 (50.00 of it the invoice voided below)
    const old = await oldRevaluation('2026-01-31', '1200', '1.15', '75.00');
    // voided the old way (no item rows yet): the void takes off only the invoice's own base (1,100.00)
    await t.http.post(rUrl(orgId, `invoices/${voided.id}/void`)).set(owner.auth).send({ date: '2026-02-05' }).expect(200);
    await t.db.admin.query(readFileSync(BACKFILL, 'utf8'));
    expect([await balance('1200', '2026-02-05'), await agingTotal('2026-02-05')]).toEqual(['625.00', '575.00']);

    await migrate();
    const [entry] = await corrections();
    expect(await corrections()).toEqual([{ id: entry.id, date: '2026-02-05', source: 'system', created_by: ACTOR, memo: expect.stringContaining('voided'), lines: [
      { code: '1200', currency: 'EUR', debit: '0.00', credit: '0.00', base_debit: '0.00', base_credit: '50.00', counterparty_type: 'customer', counterparty_id: customer },
      // the gain the old revaluation credited for the invoice, taken back
      { code: '4310', currency: 'USD', debit: '50.00', credit: '0.00', base_debit: '50.00', base_credit: '0.00', counterparty_type: null, counterparty_id: null }] }]);
    expect(await rows(ACTOR)).toEqual([{ entry_id: entry.id, subledger: 'receivables', document_id: voided.id, date: '2026-02-05', rate: '1.1000', delta: '-50.00' }]);
    // the backfill's rows: each invoice open on Jan 31 at 1.15
    const byDocument = (x: { document_id: string }, y: { document_id: string }) => x.document_id.localeCompare(y.document_id);
    expect((await rows('migration:20270208180100')).sort(byDocument)).toEqual([
      { entry_id: old.id, subledger: 'receivables', document_id: voided.id, date: '2026-01-31', rate: '1.1500', delta: '50.00' },
      { entry_id: old.id, subledger: 'receivables', document_id: open.id, date: '2026-01-31', rate: '1.1500', delta: '25.00' }].sort(byDocument));
    const audit = await audits();
    expect(audit).toEqual([
      expect.objectContaining({ action: 'ledger.fx_revaluation_posted', entity_type: 'journal_entry', entity_id: entry.id }),
      { action: 'ledger.fx_revaluation_voided_items_corrected', principal_type: 'system', entity_type: 'journal_entry', entity_id: entry.id, after: { date: '2026-02-05', documents: [
        { subledger: 'receivables', documentId: voided.id, voidedOn: '2026-02-05', accountId: acc['1200'], currency: 'EUR', fxAccountId: acc['4310'], baseDelta: '-50.0000' }] } }]);

    // the aging equals AR on every day around it: before the void with the voided invoice's revaluation, after without
    for (const [asOf, want] of [['2026-01-31', '1725.00'], ['2026-02-04', '1725.00'], ['2026-02-05', '575.00'], ['2026-03-01', '575.00']]) {
      expect({ asOf, ar: await balance('1200', asOf), aging: await agingTotal(asOf) }).toEqual({ asOf, ar: want, aging: want });
    }
    // the unrealized gain is the open invoice's only
    expect(await balance('4310', '2026-02-05')).toBe('-25.00');
    await expectOpenAmountsKept(t, orgId);
    expect(await balanceDrift(t, orgId)).toEqual([]);

    // applied again: nothing more
    await correct();
    expect(await corrections()).toHaveLength(1);
    expect(await audits()).toHaveLength(2);
    // the correcting entry belongs to the revaluation items: not reversed alone
    expect((await t.http.post(ledgerUrl(orgId, `journal-entries/${entry.id}/reverse`)).set(owner.auth).send({}).expect(422)).body.error.code).toBe('ledger.entry_of_document');
  });

  it('receivables: voided in a period closed since, the leftover is taken off on the first day of the next open period', async () => {
    const { orgId, acc, balance, oldRevaluation, rows, corrections, migrate } = await books('AR voided in a closed period', [['2026-01-15', '1.10'], ['2026-01-31', '1.15']]);
    const customer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Euro GmbH', defaultCurrency: 'EUR' }).expect(201)).body.id;
    const agingTotal = async (asOf: string) => (await t.http.get(rUrl(orgId, `aging?asOf=${asOf}`)).set(owner.auth).expect(200)).body.total as string;
    const inv = await issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-01-15',
      lines: [{ description: 'Licence', quantity: '1', unitPrice: '1000.00', revenueAccountId: acc['4100'] }] });
    await oldRevaluation('2026-01-31', '1200', '1.15', '50.00');
    await t.http.post(rUrl(orgId, `invoices/${inv.id}/void`)).set(owner.auth).send({ date: '2026-02-05' }).expect(200);
    const [year] = (await t.http.get(ledgerUrl(orgId, 'fiscal-years')).set(owner.auth).expect(200)).body;
    const february = year.periods.find((p: any) => p.startDate === '2026-02-01');
    await t.http.post(ledgerUrl(orgId, `periods/${february.id}/close`)).set(owner.auth).expect(200);

    await migrate();
    const [entry] = await corrections();
    expect(entry).toMatchObject({ date: '2026-03-01', lines: [
      expect.objectContaining({ code: '1200', base_credit: '50.00' }), expect.objectContaining({ code: '4310', base_debit: '50.00' })] });
    expect(await rows(ACTOR)).toEqual([{ entry_id: entry.id, subledger: 'receivables', document_id: inv.id, date: '2026-03-01', rate: '1.1000', delta: '-50.00' }]);
    // the closed February is left as it was (AR 50.00 over the aging, what its reports said); from March 1 they agree
    expect([await balance('1200', '2026-02-28'), await agingTotal('2026-02-28')]).toEqual(['50.00', '0.00']);
    expect([await balance('1200', '2026-03-01'), await agingTotal('2026-03-01')]).toEqual(['0.00', '0.00']);
    expect(await balance('4310', '2026-03-01')).toBe('0.00');
    await expectOpenAmountsKept(t, orgId);
  });

  it('receivables: a later old revaluation that already took the leftover back (replayed by the backfill) leaves nothing to correct', async () => {
    const { orgId, acc, balance, oldRevaluation, corrections, audits, migrate } = await books('AR taken back by a later old revaluation',
      [['2026-01-15', '1.10'], ['2026-01-31', '1.15'], ['2026-02-28', '1.15']]);
    const customer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Euro GmbH', defaultCurrency: 'EUR' }).expect(201)).body.id;
    const agingTotal = async (asOf: string) => (await t.http.get(rUrl(orgId, `aging?asOf=${asOf}`)).set(owner.auth).expect(200)).body.total as string;
    const inv = await issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-01-15',
      lines: [{ description: 'Licence', quantity: '1', unitPrice: '1000.00', revenueAccountId: acc['4100'] }] });
    await oldRevaluation('2026-01-31', '1200', '1.15', '50.00');
    await t.http.post(rUrl(orgId, `invoices/${inv.id}/void`)).set(owner.auth).send({ date: '2026-02-05' }).expect(200);
    // the old revaluation valued AR as a whole: EUR 0.00 carried at 50.00, a loss of 50.00
    await oldRevaluation('2026-02-28', '1200', '1.15', '-50.00');
    await migrate();
    expect(await corrections()).toEqual([]);
    expect(await audits()).toEqual([]);
    expect([await balance('1200', '2026-02-28'), await agingTotal('2026-02-28')]).toEqual(['0.00', '0.00']);
  });

  it('payables: a bill voided after an old revaluation has its loss taken off AP against the loss account; the aging equals AP', async () => {
    const { orgId, acc, balance, oldRevaluation, rows, corrections, audits, migrate } = await books('AP voided after an old revaluation',
      [['2026-01-15', '1.10'], ['2026-01-31', '1.15']]);
    await t.http.put(payablesUrl(orgId, 'settings')).set(owner.auth).send({ apAccountId: acc['2100'], approvalRules: [{ above: '0', approvals: 0, roles: ['owner'] }] }).expect(200);
    const vendor = await createVendor(t, orgId, owner, { name: 'Euro Supplies', defaultCurrency: 'EUR' });
    const aging = async (asOf: string) => {
      const x = (await t.http.get(payablesUrl(orgId, `aging?asOf=${asOf}`)).set(owner.auth).expect(200)).body;
      return { asOf, ap: x.controlAccountBalance, aging: x.total };
    };
    const draft = await t.http.post(payablesUrl(orgId, 'bills')).set(owner.auth).send({ vendorId: vendor, billDate: '2026-01-15', currency: 'EUR',
      lines: [{ accountId: acc['5200'], unitPrice: '1000.00' }] }).expect(201);
    const bill = (await t.http.post(payablesUrl(orgId, `bills/${draft.body.id}/submit`)).set(owner.auth).send({}).expect(200)).body;
    const old = await oldRevaluation('2026-01-31', '2100', '1.15', '-50.00');
    await t.http.post(payablesUrl(orgId, `bills/${bill.id}/void`)).set(owner.auth).send({ date: '2026-02-10', reason: 'duplicate' }).expect(200);
    await t.db.admin.query(readFileSync(BACKFILL, 'utf8'));
    expect(await rows('migration:20270208180100')).toEqual([{ entry_id: old.id, subledger: 'payables', document_id: bill.id, date: '2026-01-31', rate: '1.1500', delta: '50.00' }]);
    expect(await aging('2026-02-10')).toEqual({ asOf: '2026-02-10', ap: '50.00', aging: '0.00' });

    await migrate();
    const [entry] = await corrections();
    expect(await corrections()).toEqual([{ id: entry.id, date: '2026-02-10', source: 'system', created_by: ACTOR, memo: expect.any(String), lines: [
      { code: '2100', currency: 'EUR', debit: '0.00', credit: '0.00', base_debit: '50.00', base_credit: '0.00', counterparty_type: 'vendor', counterparty_id: vendor },
      // the loss the old revaluation debited for the bill, taken back
      { code: '5510', currency: 'USD', debit: '0.00', credit: '50.00', base_debit: '0.00', base_credit: '50.00', counterparty_type: null, counterparty_id: null }] }]);
    expect(await rows(ACTOR)).toEqual([{ entry_id: entry.id, subledger: 'payables', document_id: bill.id, date: '2026-02-10', rate: '1.1000', delta: '-50.00' }]);
    expect((await audits()).map((a) => [a.action, a.principal_type, a.entity_id])).toEqual([
      ['ledger.fx_revaluation_posted', 'service', entry.id], ['ledger.fx_revaluation_voided_items_corrected', 'system', entry.id]]);
    for (const asOf of ['2026-01-31', '2026-02-09', '2026-02-10']) {
      const want = asOf === '2026-01-31' || asOf === '2026-02-09' ? '1150.00' : '0.00';
      expect(await aging(asOf)).toEqual({ asOf, ap: want, aging: want });
    }
    expect(await balance('5510', '2026-02-10')).toBe('0.00');
    expect(await balanceDrift(t, orgId)).toEqual([]);
    await correct();
    expect(await corrections()).toHaveLength(1);
  });
});
