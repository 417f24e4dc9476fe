import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, registerUser, type TestUser } from '../support/factories.js';
import { expectOpenAmountsKept, issueInvoice, rUrl } from '../receivables/receivables-support.js';
import { createVendor, payablesUrl } from '../payables/payables-support.js';
import { balanceDrift, ledgerUrl } from './ledger-support.js';
import { fxLedger, oldFxEntries, setupPayables } from './fx-support.js';

const BACKFILL = new URL('../../prisma/migrations/20270208180100_fx_revaluation_items_backfill/migration.sql', import.meta.url);
const CORRECTION = new URL('../../prisma/migrations/20270209020100_fx_revaluation_voided_items_correction/migration.sql', import.meta.url);
const ACTOR = 'migration:20270209020100';

/** the correcting entries in short: date, lines (account code, base debit, base credit, counterparty type) */
const brief = (entries: { date: string; lines: { code: string; base_debit: string; base_credit: string; counterparty_type: string | null }[] }[]) =>
  entries.map((e) => ({ date: e.date, lines: e.lines.map((l) => [l.code, l.base_debit, l.base_credit, l.counterparty_type]) }));

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
    // the backfill and the correction replayed here ran before 20270210290100, whose check holds later rows to naming
    // their unrealized FX account (theirs name none)
    await t.db.admin.query('ALTER TABLE finance.fx_revaluation_items DROP CONSTRAINT fx_revaluation_items_fx_account_required');
    await t.db.admin.query(`CREATE ROLE ${migrationRole} NOLOGIN NOSUPERUSER BYPASSRLS`);
    await t.db.admin.query(`GRANT ${(await t.db.admin.query('SELECT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE oid = \'finance.journal_entries\'::regclass')).rows[0].owner} TO ${migrationRole}`);
  });
  afterAll(async () => {
    await t.db.admin.query(`DROP ROLE IF EXISTS ${migrationRole}`);
    await t.close();
  });
  /** applies the correction as that role; answers the NOTICEs it raised */
  async function correct(): Promise<string[]> {
    const c = await t.db.admin.connect();
    const notices: string[] = [];
    const onNotice = (n: { message?: string }) => notices.push(n.message ?? '');
    c.on('notice', onNotice);
    try {
      await c.query('BEGIN');
      await c.query(`SET LOCAL ROLE ${migrationRole}`);
      expect((await c.query('SELECT rolsuper FROM pg_roles WHERE rolname = current_user')).rows).toEqual([{ rolsuper: false }]);
      await c.query(readFileSync(CORRECTION, 'utf8'));
      await c.query('COMMIT');
      return notices;
    } catch (err) {
      await c.query('ROLLBACK');
      throw err;
    } finally {
      c.off('notice', onNotice);
      c.release();
    }
  }

  async function books(name: string, rates: [string, string][]) {
    const { orgId, acc, balance, arAging: agingTotal } = await fxLedger(t, owner, name, { rates: Object.fromEntries(rates), payables: false });
    const { oldRevaluation, oldReversal } = oldFxEntries(t, owner, orgId, acc);
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
      return correct();
    };
    const customer = async () => (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Euro GmbH', defaultCurrency: 'EUR' }).expect(201)).body.id as string;
    /** AR and the aging as of each day */
    const arAndAging = async (days: string[]) => {
      const out = [];
      for (const asOf of days) out.push({ asOf, ar: await balance('1200', asOf), aging: await agingTotal(asOf) });
      return out;
    };
    /** an EUR invoice of `unitPrice` dated Jan 15 (at 1.10) */
    const invoice = (customerId: string, unitPrice = '1000.00') => issueInvoice(t, orgId, owner, { customerId, invoiceDate: '2026-01-15',
      lines: [{ description: 'Licence', quantity: '1', unitPrice, revenueAccountId: acc['4100'] }] });
    const voidInvoice = (id: string, date: string) => t.http.post(rUrl(orgId, `invoices/${id}/void`)).set(owner.auth).send({ date }).expect(200);
    const addAccount = async (code: string, name: string, type: string, parent: string) => {
      acc[code] = (await t.http.post(ledgerUrl(orgId, 'accounts')).set(owner.auth).send({ code, name, type, parentId: acc[parent] }).expect(201)).body.id;
      return acc[code];
    };
    return { orgId, acc, balance, oldRevaluation, oldReversal, rows, corrections, audits, migrate, customer, agingTotal, arAndAging, invoice, voidInvoice, addAccount };
  }

  it('receivables: the voided invoice\'s leftover is taken off AR on its void date against the gain account; AR equals the aging again, the open invoice keeps its revaluation', async () => {
    const { orgId, acc, balance, oldRevaluation, rows, corrections, audits, migrate, agingTotal } = await books('AR voided after an old revaluation',
      [['2026-01-15', '1.10'], ['2026-01-31', '1.15']]);
    const customer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Euro GmbH', defaultCurrency: 'EUR' }).expect(201)).body.id;
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
      // principal 'service' both, as finance.write_entries records a posting without a user
      { action: 'ledger.fx_revaluation_voided_items_corrected', principal_type: 'service', entity_type: 'journal_entry', entity_id: entry.id, after: { date: '2026-02-05', documents: [
        { subledger: 'receivables', documentId: voided.id, voidedOn: '2026-02-05', dueOn: '2026-02-05', accountId: acc['1200'], currency: 'EUR', fxAccountId: acc['4310'], baseDelta: '-50.0000' }] } }]);
    expect(audit[0].principal_type).toBe('service');

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
    const { orgId, acc, balance, oldRevaluation, rows, corrections, migrate, agingTotal } = await books('AR voided in a closed period', [['2026-01-15', '1.10'], ['2026-01-31', '1.15']]);
    const customer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Euro GmbH', defaultCurrency: 'EUR' }).expect(201)).body.id;
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

  it('receivables: a later old revaluation that took the leftover back (replayed by the backfill): taken off on the void, and the later one\'s row undone on its own day', async () => {
    const { orgId, balance, oldRevaluation, rows, corrections, audits, migrate, customer, arAndAging, invoice, voidInvoice } = await books('AR taken back by a later old revaluation',
      [['2026-01-15', '1.10'], ['2026-01-31', '1.15'], ['2026-02-28', '1.15']]);
    const inv = await invoice(await customer());
    await oldRevaluation('2026-01-31', '1200', '1.15', '50.00');
    await voidInvoice(inv.id, '2026-02-05');
    // the old revaluation valued AR as a whole: EUR 0.00 carried at 50.00, a loss of 50.00; its rows and the first add up
    // to 0, but from the void to Feb 28 AR was 50.00 over the aging
    const later = await oldRevaluation('2026-02-28', '1200', '1.15', '-50.00');
    await migrate();
    const entries = await corrections();
    expect(brief(entries)).toEqual([
      { date: '2026-02-05', lines: [['1200', '0.00', '50.00', 'customer'], ['4310', '50.00', '0.00', null]] },
      // the later revaluation's loss undone against the loss account it debited
      { date: '2026-02-28', lines: [['1200', '50.00', '0.00', 'customer'], ['5510', '0.00', '50.00', null]] }]);
    expect(await rows(ACTOR)).toEqual([
      { entry_id: entries[0].id, subledger: 'receivables', document_id: inv.id, date: '2026-02-05', rate: '1.1000', delta: '-50.00' },
      { entry_id: entries[1].id, subledger: 'receivables', document_id: inv.id, date: '2026-02-28', rate: '1.1000', delta: '50.00' }]);
    expect((await rows('migration:20270208180100')).map((r) => [r.entry_id, r.date, r.delta])).toEqual([[expect.any(String), '2026-01-31', '50.00'], [later.id, '2026-02-28', '-50.00']]);
    expect((await audits()).map((a) => a.action)).toEqual(['ledger.fx_revaluation_posted', 'ledger.fx_revaluation_voided_items_corrected',
      'ledger.fx_revaluation_posted', 'ledger.fx_revaluation_voided_items_corrected']);
    for (const x of await arAndAging(['2026-01-31', '2026-02-05', '2026-02-27', '2026-02-28', '2026-03-31'])) {
      expect(x).toEqual({ ...x, ar: x.asOf === '2026-01-31' ? '1150.00' : '0.00', aging: x.asOf === '2026-01-31' ? '1150.00' : '0.00' });
    }
    expect([await balance('4310', '2026-03-31'), await balance('5510', '2026-03-31')]).toEqual(['0.00', '0.00']);
    await expectOpenAmountsKept(t, orgId);
    expect(await balanceDrift(t, orgId)).toEqual([]);
    await correct();
    expect(await corrections()).toHaveLength(2);
  });

  it('payables: a bill voided after an old revaluation has its loss taken off AP against the loss account; the aging equals AP', async () => {
    const { orgId, acc, balance, oldRevaluation, rows, corrections, audits, migrate } = await books('AP voided after an old revaluation',
      [['2026-01-15', '1.10'], ['2026-01-31', '1.15']]);
    await setupPayables(t, orgId, owner, acc);
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
      ['ledger.fx_revaluation_posted', 'service', entry.id], ['ledger.fx_revaluation_voided_items_corrected', 'service', entry.id]]);
    for (const asOf of ['2026-01-31', '2026-02-09', '2026-02-10']) {
      const want = asOf === '2026-01-31' || asOf === '2026-02-09' ? '1150.00' : '0.00';
      expect(await aging(asOf)).toEqual({ asOf, ap: want, aging: want });
    }
    expect(await balance('5510', '2026-02-10')).toBe('0.00');
    expect(await balanceDrift(t, orgId)).toEqual([]);
    await correct();
    expect(await corrections()).toHaveLength(1);
  });

  it('receivables: an old autoReverse revaluation after the void (AR valued as a whole) and its reversal: each row undone on its own day, AR equals the aging throughout', async () => {
    const { orgId, balance, oldRevaluation, oldReversal, rows, corrections, migrate, customer, arAndAging, invoice, voidInvoice } = await books('AR autoReverse after the void',
      [['2026-01-15', '1.10'], ['2026-01-31', '1.15'], ['2026-02-28', '1.15']]);
    const inv = await invoice(await customer());
    await oldRevaluation('2026-01-31', '1200', '1.15', '50.00');
    await voidInvoice(inv.id, '2026-02-05');
    // Feb 28 with autoReverse: EUR 0.00 carried at 50.00, a loss of 50.00, reversed on Mar 1; the rows add up to 50.00,
    // which taken off on the void alone left AR 50.00 under the aging from Feb 28 to Mar 1
    const feb = await oldRevaluation('2026-02-28', '1200', '1.15', '-50.00');
    await oldReversal(feb, '2026-03-01', '2026-02-28');
    await migrate();
    expect((await rows('migration:20270208180100')).map((r) => [r.date, r.delta])).toEqual([['2026-01-31', '50.00'], ['2026-02-28', '-50.00'], ['2026-03-01', '50.00']]);
    const entries = await corrections();
    expect(brief(entries)).toEqual([
      { date: '2026-02-05', lines: [['1200', '0.00', '50.00', 'customer'], ['4310', '50.00', '0.00', null]] },
      { date: '2026-02-28', lines: [['1200', '50.00', '0.00', 'customer'], ['5510', '0.00', '50.00', null]] },
      // the reversal credited the loss account back: debited again
      { date: '2026-03-01', lines: [['1200', '0.00', '50.00', 'customer'], ['5510', '50.00', '0.00', null]] }]);
    expect((await rows(ACTOR)).map((r) => [r.entry_id, r.date, r.rate, r.delta])).toEqual([
      [entries[0].id, '2026-02-05', '1.1000', '-50.00'], [entries[1].id, '2026-02-28', '1.1000', '50.00'], [entries[2].id, '2026-03-01', '1.1000', '-50.00']]);
    for (const x of await arAndAging(['2026-02-05', '2026-02-28', '2026-03-01', '2026-03-31'])) expect(x).toEqual({ ...x, ar: '0.00', aging: '0.00' });
    expect([await balance('4310', '2026-03-31'), await balance('5510', '2026-03-31')]).toEqual(['0.00', '0.00']);
    await expectOpenAmountsKept(t, orgId);
    expect(await balanceDrift(t, orgId)).toEqual([]);
    await correct();
    expect(await corrections()).toHaveLength(3);
  });

  it('receivables: a mid-period autoReverse revaluation with the void before its reversal (rows adding up to 0) is corrected against the FX account it used, not the settings\' one', async () => {
    const { orgId, balance, oldRevaluation, oldReversal, corrections, audits, migrate, customer, arAndAging, invoice, voidInvoice, addAccount } = await books('AR void between a revaluation and its reversal',
      [['2026-01-15', '1.10'], ['2026-01-20', '1.15']]);
    // the old revaluation credited its gain to an account the settings no longer name (they name 4310)
    await addAccount('4320', 'Unrealized FX gains (old)', 'revenue', '4000');
    const inv = await invoice(await customer());
    const jan20 = await oldRevaluation('2026-01-20', '1200', '1.15', '50.00', { gain: '4320', loss: '5510' });
    await voidInvoice(inv.id, '2026-01-25');
    await oldReversal(jan20, '2026-02-01', '2026-01-20');
    await migrate();
    expect(brief(await corrections())).toEqual([
      { date: '2026-01-25', lines: [['1200', '0.00', '50.00', 'customer'], ['4320', '50.00', '0.00', null]] },
      { date: '2026-02-01', lines: [['1200', '50.00', '0.00', 'customer'], ['4320', '0.00', '50.00', null]] }]);
    expect((await audits()).filter((a) => a.action === 'ledger.fx_revaluation_voided_items_corrected').map((a) => a.after.documents.map((d: any) => [d.fxAccountId, d.baseDelta])))
      .toEqual([[[expect.any(String), '-50.0000']], [[expect.any(String), '50.0000']]]);
    // the void's month-end: AR equals the aging (it was 50.00 over it)
    for (const x of await arAndAging(['2026-01-25', '2026-01-31', '2026-02-01'])) expect(x).toEqual({ ...x, ar: '0.00', aging: '0.00' });
    expect([await balance('4320', '2026-01-31'), await balance('4310', '2026-01-31'), await balance('4320', '2026-02-01')]).toEqual(['0.00', '0.00', '0.00']);
    await expectOpenAmountsKept(t, orgId);
    expect(await balanceDrift(t, orgId)).toEqual([]);
  });

  it('receivables: AR account changed in the settings since the old revaluation: the leftover comes off the account it was revalued on, named by a NOTICE', async () => {
    const { orgId, acc, balance, oldRevaluation, corrections, customer, invoice, voidInvoice, addAccount } = await books('AR account changed since',
      [['2026-01-15', '1.10'], ['2026-01-31', '1.15']]);
    const inv = await invoice(await customer());
    await oldRevaluation('2026-01-31', '1200', '1.15', '50.00');
    await voidInvoice(inv.id, '2026-02-05');
    await t.db.admin.query(readFileSync(BACKFILL, 'utf8'));
    // the settings name another AR account today (set as an older version allowed it)
    await addAccount('1210', 'Accounts receivable (new)', 'asset', '1000');
    await t.db.admin.query('UPDATE finance.receivables_settings SET ar_account_id = $2 WHERE org_id = $1', [orgId, acc['1210']]);
    const notices = await correct();
    expect(brief(await corrections())).toEqual([{ date: '2026-02-05', lines: [['1200', '0.00', '50.00', 'customer'], ['4310', '50.00', '0.00', null]] }]);
    expect(notices.filter((n) => n.includes(orgId))).toEqual([expect.stringContaining('not the one in the settings today')]);
    expect([await balance('1200', '2026-02-05'), await balance('1210', '2026-02-05')]).toEqual(['0.00', '0.00']);
    expect(await balanceDrift(t, orgId)).toEqual([]);
  });

  it('receivables: voided in an open period while a later period is closed: taken off on the first open day after the closed one, named by a NOTICE', async () => {
    const { orgId, oldRevaluation, corrections, rows, migrate, customer, arAndAging, invoice, voidInvoice } = await books('AR later period closed',
      [['2026-01-15', '1.10'], ['2026-01-31', '1.15']]);
    const inv = await invoice(await customer());
    await oldRevaluation('2026-01-31', '1200', '1.15', '50.00');
    await voidInvoice(inv.id, '2026-02-05');
    const [year] = (await t.http.get(ledgerUrl(orgId, 'fiscal-years')).set(owner.auth).expect(200)).body;
    const march = year.periods.find((p: any) => p.startDate === '2026-03-01');
    await t.http.post(ledgerUrl(orgId, `periods/${march.id}/close`)).set(owner.auth).expect(200);
    const notices = await migrate();
    const [entry] = await corrections();
    expect(brief([entry])).toEqual([{ date: '2026-04-01', lines: [['1200', '0.00', '50.00', 'customer'], ['4310', '50.00', '0.00', null]] }]);
    expect(await rows(ACTOR)).toEqual([{ entry_id: entry.id, subledger: 'receivables', document_id: inv.id, date: '2026-04-01', rate: '1.1000', delta: '-50.00' }]);
    expect(notices.filter((n) => n.includes(orgId))).toEqual([expect.stringContaining('taken off on 2026-04-01')]);
    // February and the closed March are left as they were reported; from April 1 AR equals the aging
    expect(await arAndAging(['2026-02-28', '2026-03-31', '2026-04-01'])).toEqual([
      { asOf: '2026-02-28', ar: '50.00', aging: '0.00' }, { asOf: '2026-03-31', ar: '50.00', aging: '0.00' }, { asOf: '2026-04-01', ar: '0.00', aging: '0.00' }]);
    await expectOpenAmountsKept(t, orgId);
  });

  it('payables: an expense claim voided after an old revaluation: taken off AP with the employee as counterparty', async () => {
    const { orgId, acc, balance, oldRevaluation, corrections, migrate } = await books('AP expense claim voided', [['2026-01-15', '1.10'], ['2026-01-31', '1.15']]);
    await setupPayables(t, orgId, owner, acc);
    // a member's claim, approved by the owner
    const member = await registerUser(t, 'claimant');
    await addMember(t, orgId, member, 'member');
    const draft = (await t.http.post(payablesUrl(orgId, 'expense-claims')).set(member.auth)
      .send({ claimDate: '2026-01-15', currency: 'EUR', lines: [{ accountId: acc['5200'], amount: '1000.00', currency: 'EUR', date: '2026-01-15' }] }).expect(201)).body;
    await t.http.post(payablesUrl(orgId, `expense-claims/${draft.id}/submit`)).set(member.auth).send({}).expect(200);
    const claim = (await t.http.post(payablesUrl(orgId, `expense-claims/${draft.id}/approve`)).set(owner.auth).send({}).expect(200)).body;
    expect(claim.status).toBe('posted');
    await oldRevaluation('2026-01-31', '2100', '1.15', '-50.00');
    await t.http.post(payablesUrl(orgId, `expense-claims/${claim.id}/void`)).set(owner.auth).send({ date: '2026-02-10', reason: 'duplicate' }).expect(200);
    await migrate();
    const [entry] = await corrections();
    expect(entry.lines).toEqual([
      { code: '2100', currency: 'EUR', debit: '0.00', credit: '0.00', base_debit: '50.00', base_credit: '0.00', counterparty_type: 'employee', counterparty_id: member.id },
      { code: '5510', currency: 'USD', debit: '0.00', credit: '50.00', base_debit: '0.00', base_credit: '50.00', counterparty_type: null, counterparty_id: null }]);
    expect(entry.date).toBe('2026-02-10');
    const ap = (await t.http.get(payablesUrl(orgId, 'aging?asOf=2026-02-10')).set(owner.auth).expect(200)).body;
    expect([ap.controlAccountBalance, ap.total]).toEqual(['0.00', '0.00']);
    expect(await balance('5510', '2026-02-10')).toBe('0.00');
    expect(await balanceDrift(t, orgId)).toEqual([]);
  });

  it('nothing posted, a NOTICE and an audit row naming the documents: no open period after the void, or an entry the posting checks refuse', async () => {
    // no open period on or after the void
    const a = await books('AR no open period', [['2026-01-15', '1.10'], ['2026-01-31', '1.15']]);
    const invA = await a.invoice(await a.customer());
    await a.oldRevaluation('2026-01-31', '1200', '1.15', '50.00');
    await a.voidInvoice(invA.id, '2026-02-05');
    await t.db.admin.query(`UPDATE finance.fiscal_periods SET status = 'closed' WHERE org_id = $1 AND start_date >= '2026-02-01'`, [a.orgId]);
    const noticesA = await a.migrate();
    expect(await a.corrections()).toEqual([]);
    expect(await a.rows(ACTOR)).toEqual([]);
    expect(noticesA.filter((n) => n.includes(a.orgId))).toEqual([expect.stringContaining('no open fiscal period')]);
    expect(await a.audits()).toEqual([{ action: 'ledger.fx_revaluation_voided_items_uncorrected', principal_type: 'service', entity_type: 'organization', entity_id: a.orgId,
      after: { reason: 'no_open_period', documents: [{ subledger: 'receivables', documentId: invA.id, voidedOn: '2026-02-05', dueOn: '2026-02-05', accountId: a.acc['1200'], currency: 'EUR', baseDelta: '-50.0000' }] } }]);

    // rows adding up to 0 (a revaluation, the void, its reversal), no open period: each day due named
    const c = await books('AR no open period, rows adding up to 0', [['2026-01-15', '1.10'], ['2026-01-20', '1.15']]);
    const invC = await c.invoice(await c.customer());
    const jan20 = await c.oldRevaluation('2026-01-20', '1200', '1.15', '50.00');
    await c.voidInvoice(invC.id, '2026-01-25');
    await c.oldReversal(jan20, '2026-02-01', '2026-01-20');
    await t.db.admin.query(`UPDATE finance.fiscal_periods SET status = 'closed' WHERE org_id = $1`, [c.orgId]);
    const noticesC = await c.migrate();
    expect(await c.corrections()).toEqual([]);
    expect(noticesC.filter((n) => n.includes(c.orgId))).toEqual([expect.stringContaining('no open fiscal period')]);
    expect((await c.audits()).map((x) => [x.action, x.after.reason, x.after.documents.map((d: any) => [d.documentId, d.dueOn, d.baseDelta])])).toEqual([
      ['ledger.fx_revaluation_voided_items_uncorrected', 'no_open_period', [[invC.id, '2026-01-25', '-50.0000'], [invC.id, '2026-02-01', '50.0000']]]]);

    // the unrealized gain account archived since: check_entry refuses the entry (ledger.account_not_postable)
    const b = await books('AR correction refused', [['2026-01-15', '1.10'], ['2026-01-31', '1.15']]);
    const invB = await b.invoice(await b.customer());
    await b.oldRevaluation('2026-01-31', '1200', '1.15', '50.00');
    await b.voidInvoice(invB.id, '2026-02-05');
    await t.db.admin.query('UPDATE finance.accounts SET archived_at = now() WHERE org_id = $1 AND id = $2', [b.orgId, b.acc['4310']]);
    const noticesB = await b.migrate();
    expect(await b.corrections()).toEqual([]);
    expect(await b.rows(ACTOR)).toEqual([]);
    expect(noticesB.filter((n) => n.includes(b.orgId))).toEqual([expect.stringContaining('was refused')]);
    expect(await b.audits()).toEqual([{ action: 'ledger.fx_revaluation_voided_items_uncorrected', principal_type: 'service', entity_type: 'organization', entity_id: b.orgId,
      after: { reason: 'refused', code: 'ledger.account_not_postable', message: expect.stringContaining('archived'), date: '2026-02-05', documents: [
        { subledger: 'receivables', documentId: invB.id, voidedOn: '2026-02-05', dueOn: '2026-02-05', accountId: b.acc['1200'], currency: 'EUR', fxAccountId: b.acc['4310'], baseDelta: '-50.0000' }] } }]);
    expect([await b.balance('1200', '2026-02-05'), await b.agingTotal('2026-02-05')]).toEqual(['50.00', '0.00']);
  });

  it('takes the organization\'s revaluation lock and its posting lock (shared) first: held by a revaluation or a period close, the correction waits', async () => {
    const { orgId, corrections, oldRevaluation, customer, invoice, voidInvoice } = await books('AR locks', [['2026-01-15', '1.10'], ['2026-01-31', '1.15']]);
    const inv = await invoice(await customer());
    await oldRevaluation('2026-01-31', '1200', '1.15', '50.00');
    await voidInvoice(inv.id, '2026-02-05');
    await t.db.admin.query(readFileSync(BACKFILL, 'utf8'));
    // held all along by another transaction: the correction's wait ends at its lock_timeout (55P03), whatever the timing
    // the correction (migration 20270209020100, applied before 20270211003700) takes the advisory locks of its time
    for (const held of [`pg_advisory_xact_lock(hashtext('finance.revaluation:' || $1::text))`, `pg_advisory_xact_lock(hashtext('finance.posting:' || $1::text))`]) {
      const holder = await t.db.admin.connect();
      const c = await t.db.admin.connect();
      try {
        await holder.query('BEGIN');
        await holder.query(`SELECT ${held}`, [orgId]);
        await c.query('BEGIN');
        await c.query(`SET LOCAL ROLE ${migrationRole}`);
        await c.query(`SET LOCAL lock_timeout = '50ms'`);
        await expect(c.query(readFileSync(CORRECTION, 'utf8'))).rejects.toMatchObject({ code: '55P03' });
        await c.query('ROLLBACK');
        await holder.query('ROLLBACK');
      } finally {
        // closed, not pooled: whatever happened, neither keeps a transaction or a lock
        c.release(true);
        holder.release(true);
      }
      expect(await corrections()).toEqual([]);
    }
    // released: corrected
    await correct();
    expect(await corrections()).toHaveLength(1);
  });

  it('more documents on one day than an entry takes: corrected in even parts (241 documents: 121 and 120), each within the posting\'s line limit', async () => {
    const { orgId, oldRevaluation, corrections, rows, migrate, customer, arAndAging, invoice, voidInvoice } = await books('AR many voided', [['2026-01-15', '1.10'], ['2026-01-31', '1.15']]);
    const who = await customer();
    const invoices = [];
    for (let i = 0; i < 241; i++) invoices.push(await invoice(who, '100.00'));
    // EUR 24,100.00 from 26,510.00 to 1.15: 1,205.00, 5.00 each
    await oldRevaluation('2026-01-31', '1200', '1.15', '1205.00');
    for (const inv of invoices) await voidInvoice(inv.id, '2026-02-05');
    await migrate();
    const entries = await corrections();
    expect(entries.map((e) => [e.date, e.memo.replace(/^.*\(part/, '(part'), e.lines.length])).toEqual([['2026-02-05', '(part 1 of 2)', 122], ['2026-02-05', '(part 2 of 2)', 121]]);
    expect(entries.map((e) => e.lines[e.lines.length - 1])).toEqual([
      expect.objectContaining({ code: '4310', base_debit: '605.00' }), expect.objectContaining({ code: '4310', base_debit: '600.00' })]);
    expect(entries.flatMap((e) => e.lines.slice(0, -1).map((l: any) => [l.code, l.base_credit]))).toEqual(invoices.map(() => ['1200', '5.00']));
    const corrected = await rows(ACTOR);
    expect(corrected).toHaveLength(241);
    expect(new Set(corrected.map((r) => r.document_id))).toEqual(new Set(invoices.map((i) => i.id)));
    expect(corrected.every((r) => r.delta === '-5.00' && r.date === '2026-02-05')).toBe(true);
    expect(await arAndAging(['2026-02-05'])).toEqual([{ asOf: '2026-02-05', ar: '0.00', aging: '0.00' }]);
    expect(await balanceDrift(t, orgId)).toEqual([]);
  }, 300_000);
});
