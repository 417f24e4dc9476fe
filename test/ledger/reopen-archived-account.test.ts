import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { balanceDrift, ledgerUrl, startBooks } from './ledger-support.js';

/**
 * An expense account archived after its fiscal year closed (zero once the closing entry moved its balance out) used to
 * block reopening that year: the reopening's reversal of the closing entry posts to it, and a posting to an archived
 * account is refused (422 ledger.account_not_postable). The API cannot unarchive an account, so year-end entries
 * (the close and the reopening's reversal, which only the API posts) may post to archived accounts; nothing else may.
 *
 * FY2026: capital in 10,000 (Dr Cash, Cr Share capital); sale 1,000 (Dr Cash, Cr Sales); rent 400 (Dr Rent, Cr Cash).
 * Close: Dr Sales 1,000, Cr Rent 400, Cr Retained earnings 600. Rent (5200) is then zero and archived.
 * Reopen: the reversal posts Cr Sales 1,000, Dr Rent 400, Dr Retained earnings 600: Rent carries 400 again.
 * Close again: Rent is zero again, still archived.
 */
describe('ledger: reopening a year whose expense account was archived after the close', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  let acc: Record<string, string>;
  let yearId: string;
  const post = (body: object) => t.http.post(ledgerUrl(orgId, 'journal-entries')).set(owner.auth).send(body);
  const rentBalance = async () => (await t.db.admin.query(
    `SELECT round(coalesce(sum(base_debit) - sum(base_credit), 0), 2)::text AS net FROM finance.journal_lines WHERE org_id = $1 AND account_id = $2`, [orgId, acc['5200']])).rows[0].net;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Archive Ltd');
    await onPlan(t, orgId, 'professional');
    acc = await startBooks(t, orgId, owner);
    await post({ date: '2026-01-02', lines: [{ accountId: acc['1100'], debit: '10000.00' }, { accountId: acc['3100'], credit: '10000.00' }] }).expect(201);
    await post({ date: '2026-03-10', lines: [{ accountId: acc['1100'], debit: '1000.00' }, { accountId: acc['4100'], credit: '1000.00' }] }).expect(201);
    await post({ date: '2026-03-20', lines: [{ accountId: acc['5200'], debit: '400.00' }, { accountId: acc['1100'], credit: '400.00' }] }).expect(201);
    yearId = (await t.http.get(ledgerUrl(orgId, 'fiscal-years')).set(owner.auth).expect(200)).body[0].id;
  });
  afterAll(() => t.close());

  it('reopens the year: the reversal posts to the archived account, which stays archived and closes again to zero', async () => {
    const closed = await t.http.post(ledgerUrl(orgId, `fiscal-years/${yearId}/close`)).set(owner.auth).expect(200);
    expect(closed.body.closingEntry.lines.map((l: any) => [l.accountCode, l.debit, l.credit])).toEqual([
      ['4100', '1000.00', '0.00'], ['5200', '0.00', '400.00'], ['3200', '0.00', '600.00']]);
    expect(await rentBalance()).toBe('0.00');
    const archived = await t.http.post(ledgerUrl(orgId, `accounts/${acc['5200']}/archive`)).set(owner.auth).expect(200);
    expect(archived.body.archivedAt).not.toBeNull();

    const reopened = await t.http.post(ledgerUrl(orgId, `fiscal-years/${yearId}/reopen`)).set(owner.auth).expect(200);
    expect(reopened.body.fiscalYear).toMatchObject({ status: 'open', closingEntryId: null });
    expect(reopened.body.reversalEntry).toMatchObject({ reversesEntryId: closed.body.closingEntry.id, source: 'year_end', date: '2026-12-31', totalBase: '1000.00' });
    expect(reopened.body.reversalEntry.lines.map((l: any) => [l.accountCode, l.debit, l.credit])).toEqual([
      ['4100', '0.00', '1000.00'], ['5200', '400.00', '0.00'], ['3200', '600.00', '0.00']]);
    expect(await rentBalance()).toBe('400.00');
    const pl = await t.http.get(ledgerUrl(orgId, 'reports/profit-and-loss?from=2026-01-01&to=2026-12-31&includeClosing=true')).set(owner.auth).expect(200);
    expect(pl.body).toMatchObject({ totalRevenue: '1000.00', totalExpenses: '400.00', netIncome: '600.00' });
    const { rows: [account] } = await t.db.admin.query(`SELECT archived_at FROM finance.accounts WHERE org_id = $1 AND id = $2`, [orgId, acc['5200']]);
    expect(account.archived_at).not.toBeNull();
    const audit = await t.db.admin.query(`SELECT action, entity_id FROM core.audit_logs WHERE org_id = $1 AND action IN ('ledger.fiscal_year_reopened', 'ledger.entry_reversed') ORDER BY id`, [orgId]);
    expect(audit.rows).toEqual([{ action: 'ledger.entry_reversed', entity_id: reopened.body.reversalEntry.id }, { action: 'ledger.fiscal_year_reopened', entity_id: yearId }]);

    // nothing else posts to the archived account: a client's entry through the API, or a year-end entry posted by a
    // caller of the posting function that is not the API (its claims were not verified by begin_request)
    const manual = await post({ date: '2026-12-31', lines: [{ accountId: acc['5200'], debit: '1.00' }, { accountId: acc['1100'], credit: '1.00' }] }).expect(422);
    expect(manual.body.error).toMatchObject({ code: 'ledger.account_not_postable', message: 'line 1: account 5200 is archived' });
    const claims = { sub: owner.id, role: 'authenticated', org_id: orgId };
    await expect(t.db.as(claims, 'authenticated', `SELECT * FROM finance.post_journal_entry($1::jsonb)`, [JSON.stringify({
      date: '2026-12-31', source: 'year_end', lines: [{ accountId: acc['5200'], debit: '1.00' }, { accountId: acc['1100'], credit: '1.00' }] })]))
      .rejects.toMatchObject({ hint: 'ledger.account_not_postable', message: 'line 1: account 5200 is archived' });
    expect(await rentBalance()).toBe('400.00');

    // the year closes again: the new closing entry moves the rent out of the archived account
    const again = await t.http.post(ledgerUrl(orgId, `fiscal-years/${yearId}/close`)).set(owner.auth).expect(200);
    expect(again.body.fiscalYear.status).toBe('closed');
    expect(again.body.closingEntry.lines.map((l: any) => [l.accountCode, l.debit, l.credit])).toEqual([
      ['4100', '1000.00', '0.00'], ['5200', '0.00', '400.00'], ['3200', '0.00', '600.00']]);
    expect(await rentBalance()).toBe('0.00');
    expect(await balanceDrift(t, orgId)).toEqual([]);
  });

  it('does not close a year into an archived retained-earnings account: only revenue and expense accounts are let through', async () => {
    // reopened, retained earnings (3200) holds nothing in an open year and can be archived
    await t.http.post(ledgerUrl(orgId, `fiscal-years/${yearId}/reopen`)).set(owner.auth).expect(200);
    await t.http.post(ledgerUrl(orgId, `accounts/${acc['3200']}/archive`)).set(owner.auth).expect(200);
    const refused = await t.http.post(ledgerUrl(orgId, `fiscal-years/${yearId}/close`)).set(owner.auth).expect(422);
    expect(refused.body.error).toMatchObject({ code: 'ledger.account_not_postable', message: expect.stringMatching(/account 3200 is archived/) });
    const { rows: [year] } = await t.db.admin.query(`SELECT status, closing_entry_id FROM finance.fiscal_years WHERE org_id = $1 AND id = $2`, [orgId, yearId]);
    expect(year).toEqual({ status: 'open', closing_entry_id: null });
    expect(await rentBalance()).toBe('400.00');
  });
});
