import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import type { RoleUsers } from '../support/factories.js';
import { professionalBooks } from './ledger-support.js';

/**
 * Review of 20270211003200 (a reversal is the mirror of its entry, held in finance.check_entry):
 *  1. the mirror compared account, currency and amounts only: a "reversal" posted in SQL without the lines' tax codes
 *     (or workspace, counterparty) was taken as the entry's one reversal, the VAT report still counting the sale, and the
 *     real reversal then answered 409 ledger.already_reversed. The tax code and role, workspace and counterparty are
 *     compared too (22023 ledger.invalid_entry);
 *  2. an entry of 499 lines once its taxed lines split gets a rounding line on top (500 lines): its mirror was refused
 *     by the 499-line cap (422 ledger.invalid_entry, undeclared on the reverse route). A reversal takes as many lines as
 *     its entry has.
 */
describe('ledger: a reversal mirrors every line of its entry, its tax code, workspace and counterparty too, whatever the entry\'s size', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  async function books(name: string) {
    const { orgId, users, a, url } = await professionalBooks(t, name);
    const vat = (await t.http.post(url('tax-codes')).set(users.owner.auth)
      .send({ code: 'VAT20', name: 'VAT 20 %', rate: '20', salesAccountId: a['2200'], purchaseAccountId: a['1300'] }).expect(201)).body.id as string;
    return { orgId, users, a, url, vat };
  }
  /** posting function called in a transaction the API would open (begin_request verified the claims), past JournalService */
  const direct = (users: RoleUsers, orgId: string, entry: object) => t.db.asApi({ sub: users.owner.id, role: 'authenticated', org_id: orgId }, 'authenticated',
    'SELECT * FROM finance.post_journal_entry($1::jsonb)', [JSON.stringify(entry)]);
  /** the SQL error of a posting (code and hint), or 'posted' */
  const outcome = async (p: Promise<unknown>) => p.then(() => 'posted', (err: any) => `${err.code} ${err.hint}`);
  /** an entry's lines as JournalService.reverse sends them (sides swapped, all kept), then changed by `edit` */
  const mirror = (lines: any[], edit: (l: any, i: number) => object = (l) => l) => lines.map((l: any, i: number) => edit({
    accountId: l.accountId, currency: l.currency, rate: l.rate,
    ...(l.credit !== '0.00' ? { debit: l.credit } : {}), ...(l.debit !== '0.00' ? { credit: l.debit } : {}), baseDebit: l.baseCredit, baseCredit: l.baseDebit,
    ...(l.workspaceId ? { workspaceId: l.workspaceId } : {}), ...(l.counterpartyType ? { counterpartyType: l.counterpartyType } : {}),
    ...(l.counterpartyId ? { counterpartyId: l.counterpartyId } : {}), ...(l.taxCodeId ? { taxCodeId: l.taxCodeId, taxRole: l.taxRole } : {}),
  }, i));
  const without = (l: any, ...keys: string[]) => Object.fromEntries(Object.entries(l).filter(([k]) => !keys.includes(k)));

  it('refuses in SQL a "reversal" that drops or changes a line\'s tax code or role, workspace or counterparty (22023 ledger.invalid_entry): the VAT report still counts the sale until the API\'s reversal, which then posts', async () => {
    const { orgId, users, a, url, vat } = await books('Mirror Tax Ltd');
    const owner = users.owner;
    const ws = (await t.http.post(`/v1/orgs/${orgId}/workspaces`).set(owner.auth).send({ name: 'Shop' }).expect(201)).body.id;
    const sale = (await t.http.post(url('journal-entries')).set(owner.auth).send({ date: '2026-05-02', lines: [
      { accountId: a['1200'], debit: '1200.00', counterpartyType: 'customer', counterpartyId: 'C-1' },
      { accountId: a['4100'], credit: '1000.00', taxCodeId: vat, workspaceId: ws }] }).expect(201)).body;
    expect(sale.lines.map((l: any) => [l.accountCode, l.taxRole, l.workspaceId, l.counterpartyId])).toEqual([
      ['1200', null, null, 'C-1'], ['4100', 'output_base', ws, null], ['2200', 'output_tax', ws, null]]);
    const vatReport = async () => {
      const r = (await t.http.get(url('reports/vat?from=2026-05-01&to=2026-05-31')).set(users.viewer.auth).expect(200)).body;
      return [r.totalTaxableSales, r.totalOutputTax];
    };
    expect(await vatReport()).toEqual(['1000.00', '200.00']);

    const reversal = (lines: object[]) => direct(users, orgId, { date: '2026-05-03', reversesEntryId: sale.id, lines });
    const variants: Record<string, object[]> = {
      'no tax codes': mirror(sale.lines, (l) => without(l, 'taxCodeId', 'taxRole')),
      'another tax role': mirror(sale.lines, (l: any) => (l.taxRole === 'output_tax' ? { ...l, taxRole: 'input_tax' } : l)),
      'no counterparty': mirror(sale.lines, (l) => without(l, 'counterpartyType', 'counterpartyId')),
      'another counterparty': mirror(sale.lines, (l: any) => (l.counterpartyId ? { ...l, counterpartyId: 'C-2' } : l)),
      'no workspace': mirror(sale.lines, (l) => without(l, 'workspaceId')),
      // each line's workspace compared with its own line's, not the entry's set of workspaces
      'a workspace moved to the receivable': mirror(sale.lines, (l: any, i) => (i === 0 ? { ...l, workspaceId: ws } : without(l, 'workspaceId'))),
    };
    const refused: Record<string, string> = {};
    for (const [name, lines] of Object.entries(variants)) refused[name] = await outcome(reversal(lines));
    expect(refused).toEqual(Object.fromEntries(Object.keys(variants).map((name) => [name, '22023 ledger.invalid_entry'])));
    const { rows: stored } = await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1 AND reverses_entry_id = $2`, [orgId, sale.id]);
    expect(stored).toEqual([{ n: 0 }]);
    expect(await vatReport()).toEqual(['1000.00', '200.00']);

    // the API's reversal (every line kept) posts: the sale counts with the opposite sign, the lines mirror the entry's
    const reversed = await t.http.post(url(`journal-entries/${sale.id}/reverse`)).set(owner.auth).send({ date: '2026-05-03' }).expect(201);
    expect(reversed.body.lines.map((l: any) => [l.accountCode, l.debit, l.credit, l.taxCodeId, l.taxRole, l.workspaceId, l.counterpartyType, l.counterpartyId])).toEqual([
      ['1200', '0.00', '1200.00', null, null, null, 'customer', 'C-1'], ['4100', '1000.00', '0.00', vat, 'output_base', ws, null, null],
      ['2200', '200.00', '0.00', vat, 'output_tax', ws, null, null]]);
    expect(await vatReport()).toEqual(['0.00', '0.00']);
  });

  it('reverses through the API an entry stored with 500 lines (400 sent, taxed lines split to 499, a rounding line on top): the reversal has its 500 lines; SQL still caps any other entry at 499 and a reversal at its entry\'s size', async () => {
    const { orgId, users, a, url, vat } = await books('Mirror Big Ltd');
    const owner = users.owner;
    const lines: object[] = [];
    for (let i = 0; i < 300; i++) lines.push({ accountId: a['1200'], debit: '0.38', currency: 'USD', rate: '0.3333' });
    lines.push({ accountId: a['1200'], debit: '4.80', currency: 'USD', rate: '0.3333' });
    for (let i = 0; i < 99; i++) lines.push({ accountId: a['4100'], credit: '1.00', currency: 'USD', rate: '0.3333', taxCodeId: vat });
    const entry = (await t.http.post(url('journal-entries')).set(owner.auth).send({ date: '2026-03-01', lines }).expect(201)).body;
    expect(entry.lines).toHaveLength(500);
    expect(entry.lines.filter((l: any) => l.isRounding).map((l: any) => [l.lineNo, l.accountCode])).toEqual([[500, '5600']]);

    const reversed = await t.http.post(url(`journal-entries/${entry.id}/reverse`)).set(owner.auth).send({});
    expect([reversed.status, reversed.body.error]).toEqual([201, undefined]);
    expect(reversed.body.reversesEntryId).toBe(entry.id);
    expect(reversed.body.lines).toHaveLength(500);
    // line for line the mirror, in the database: every group of account, currency, base amounts, tax code and role nets to zero
    const { rows } = await t.db.admin.query(`SELECT e.id = $2 AS original, count(*)::int AS n, sum(l.base_debit)::text AS bdr, sum(l.base_credit)::text AS bcr,
        count(*) FILTER (WHERE l.is_rounding)::int AS rounding
      FROM finance.journal_entries e JOIN finance.journal_lines l ON l.org_id = e.org_id AND l.entry_id = e.id
      WHERE e.org_id = $1 AND (e.id = $2 OR e.reverses_entry_id = $2) GROUP BY 1 ORDER BY 1 DESC`, [orgId, entry.id]);
    expect(rows).toEqual([{ original: true, n: 500, bdr: '40.6000', bcr: '40.6000', rounding: 1 }, { original: false, n: 500, bdr: '40.6000', bcr: '40.6000', rounding: 0 }]);
    const { rows: unmatched } = await t.db.admin.query(`SELECT l.account_id, l.currency, l.tax_code_id, l.tax_role FROM finance.journal_entries e
        JOIN finance.journal_lines l ON l.org_id = e.org_id AND l.entry_id = e.id WHERE e.org_id = $1 AND (e.id = $2 OR e.reverses_entry_id = $2)
      GROUP BY 1, 2, 3, 4 HAVING sum(l.debit - l.credit) <> 0 OR sum(l.base_debit - l.base_credit) <> 0`, [orgId, entry.id]);
    expect(unmatched).toEqual([]);

    // in SQL, a "reversal" with lines more than its entry is refused by the cap (another entry alike, not reversed), an
    // ordinary entry of 500 lines too
    const twin = (await t.http.post(url('journal-entries')).set(owner.auth).send({ date: '2026-03-01', lines }).expect(201)).body;
    const extra = [...mirror(twin.lines), { accountId: a['1100'], debit: '1.00' }, { accountId: a['1100'], credit: '1.00' }];
    await expect(direct(users, orgId, { date: '2026-03-01', reversesEntryId: twin.id, lines: extra }))
      .rejects.toMatchObject({ code: '22023', hint: 'ledger.invalid_entry', message: 'an entry has at most 500 lines (a reversal as many as its entry)' });
    const plain = Array.from({ length: 500 }, (_, i) => ({ accountId: a['1100'], ...(i % 2 ? { credit: '1.00' } : { debit: '1.00' }) }));
    await expect(direct(users, orgId, { date: '2026-03-01', lines: plain }))
      .rejects.toMatchObject({ code: '22023', hint: 'ledger.invalid_entry', message: 'an entry has at most 499 lines (a reversal as many as its entry)' });
  });
});
