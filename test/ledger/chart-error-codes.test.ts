import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/**
 * The chart's and the fiscal calendar's rejections each answer their own code (documented on the operation, which the
 * test harness's contract check enforces), and write nothing: no row, no audit entry.
 */
describe('chart of accounts and fiscal calendar: specific error codes', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  const url = (path: string) => ledgerUrl(orgId, path);
  const count = async (sql: string) => (await t.db.admin.query(`SELECT count(*)::int AS n FROM ${sql}`, [orgId])).rows[0].n as number;
  /** What a rejected request must leave as it was: accounts, tax codes, fiscal years and periods, audit rows. */
  const snapshot = async () => ({
    accounts: (await t.db.admin.query(`SELECT id, code, parent_id, is_group, updated_at FROM finance.accounts WHERE org_id = $1 ORDER BY code`, [orgId])).rows,
    taxCodes: await count('finance.tax_codes WHERE org_id = $1'),
    years: await count('finance.fiscal_years WHERE org_id = $1'),
    periods: await count('finance.fiscal_periods WHERE org_id = $1'),
    audit: await count('core.audit_logs WHERE org_id = $1'),
  });
  const account = (body: object) => t.http.post(url('accounts')).set(users.accountant.auth).send({ type: 'asset', name: 'x', ...body });

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Chart Rules Ltd'));
    acc = await startBooks(t, orgId, users.owner);
    await t.http.post(url('journal-entries')).set(users.accountant.auth)
      .send({ date: '2026-01-02', lines: [{ accountId: acc['1100'], debit: '10.00' }, { accountId: acc['3100'], credit: '10.00' }] }).expect(201);
  });
  afterAll(() => t.close());

  it('an overlapping fiscal year: 422 ledger.fiscal_year_overlap naming the year it overlaps', async () => {
    const before = await snapshot();
    const res = await t.http.post(url('fiscal-years')).set(users.accountant.auth).send({ startDate: '2026-07-01' }).expect(422);
    expect(res.body.error).toEqual({ code: 'ledger.fiscal_year_overlap', message: 'fiscal year 2026-07-01 to 2027-06-30 overlaps fiscal year FY2026 (2026-01-01 to 2026-12-31)' });
    const same = await t.http.post(url('fiscal-years')).set(users.accountant.auth).send({ startDate: '2026-01-01', name: 'again' }).expect(422);
    expect(same.body.error.code).toBe('ledger.fiscal_year_overlap');
    const earlier = await t.http.post(url('fiscal-years')).set(users.accountant.auth).send({ startDate: '2025-02-01' }).expect(422);
    expect(earlier.body.error.message).toBe('fiscal year 2025-02-01 to 2026-01-31 overlaps fiscal year FY2026 (2026-01-01 to 2026-12-31)');
    expect(await snapshot()).toEqual(before);
  });

  it('a parent that is not a group, or of another type: 422 ledger.parent_not_group / ledger.parent_type_mismatch', async () => {
    const before = await snapshot();
    const notGroup = await account({ code: '1190', parentId: acc['1100'] }).expect(422);
    expect(notGroup.body.error).toEqual({ code: 'ledger.parent_not_group', message: 'parent account 1100 is not a group account' });
    const otherType = await account({ code: '1191', type: 'expense', parentId: acc['1000'] }).expect(422);
    expect(otherType.body.error).toEqual({ code: 'ledger.parent_type_mismatch', message: 'account 1191 is of type expense but its parent 1000 is of type asset' });
    const moved = await t.http.patch(url(`accounts/${acc['1200']}`)).set(users.accountant.auth).send({ parentId: acc['1100'] }).expect(422);
    expect(moved.body.error.code).toBe('ledger.parent_not_group');
    const movedAcross = await t.http.patch(url(`accounts/${acc['1200']}`)).set(users.accountant.auth).send({ parentId: acc['2000'] }).expect(422);
    expect(movedAcross.body.error.code).toBe('ledger.parent_type_mismatch');
    expect(await snapshot()).toEqual(before);
  });

  it('an unknown parent: 404 account.not_found (documented on the operation)', async () => {
    const before = await snapshot();
    const res = await account({ code: '1192', parentId: '00000000-0000-4000-8000-000000000000' }).expect(404);
    expect(res.body.error).toEqual({ code: 'account.not_found', message: 'account 00000000-0000-4000-8000-000000000000 was not found' });
    expect(await snapshot()).toEqual(before);
  });

  it('an account with postings made a group: 422 ledger.account_has_postings; a group with children made a leaf: 422 ledger.account_has_children', async () => {
    const before = await snapshot();
    const res = await t.http.patch(url(`accounts/${acc['1100']}`)).set(users.accountant.auth).send({ isGroup: true }).expect(422);
    expect(res.body.error).toEqual({ code: 'ledger.account_has_postings', message: 'account 1100 has postings: it cannot become a group account' });
    const leaf = await t.http.patch(url(`accounts/${acc['1000']}`)).set(users.accountant.auth).send({ isGroup: false }).expect(422);
    expect(leaf.body.error).toEqual({ code: 'ledger.account_has_children', message: 'account 1000 has child accounts: it must stay a group account' });
    expect(await snapshot()).toEqual(before);
  });

  it('a cycle: 422 ledger.parent_cycle; more than 32 levels: 422 ledger.hierarchy_too_deep', async () => {
    const groups: string[] = [acc['1000']];
    // 1000 and 32 groups under it, each under the one before: the 32nd has 32 ancestors
    for (let i = 1; i <= 32; i++) groups.push((await account({ code: `19${String(i).padStart(2, '0')}`, parentId: groups[i - 1], isGroup: true }).expect(201)).body.id);
    const before = await snapshot();
    const cycle = await t.http.patch(url(`accounts/${groups[1]}`)).set(users.accountant.auth).send({ parentId: groups[3] }).expect(422);
    expect(cycle.body.error).toEqual({ code: 'ledger.parent_cycle', message: 'account 1901 cannot be its own ancestor (cycle)' });
    const self = await t.http.patch(url(`accounts/${groups[2]}`)).set(users.accountant.auth).send({ parentId: groups[2] }).expect(422);
    expect(self.body.error.code).toBe('ledger.parent_cycle');
    const deep = await account({ code: '1999', parentId: groups[32] }).expect(422);
    expect(deep.body.error).toEqual({ code: 'ledger.hierarchy_too_deep', message: 'account hierarchy is deeper than 32 levels' });
    expect(await snapshot()).toEqual(before);
  });

  it('a code taken: 409 ledger.account_code_taken / ledger.tax_code_taken', async () => {
    await t.http.post(url('tax-codes')).set(users.accountant.auth)
      .send({ code: 'VAT20', name: 'VAT 20 %', rate: '20', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201);
    const before = await snapshot();
    const dupAccount = await account({ code: '1100', name: 'dup' }).expect(409);
    expect(dupAccount.body.error).toEqual({ code: 'ledger.account_code_taken', message: 'account code 1100 is already used in this chart of accounts' });
    const dupTax = await t.http.post(url('tax-codes')).set(users.accountant.auth)
      .send({ code: 'VAT20', name: 'again', rate: '10', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(409);
    expect(dupTax.body.error).toEqual({ code: 'ledger.tax_code_taken', message: 'tax code VAT20 is already used in this organization' });
    expect(await snapshot()).toEqual(before);
  });

  it('documents each code on its operations, and the close-year operation lists each code once', async () => {
    const doc = (await t.http.get('/docs-json').expect(200)).body;
    const codes = (path: string, method: string) => (doc.paths[`/v1/orgs/{orgId}/ledger/${path}`][method]['x-error-codes'] as { code: string }[]).map((c) => c.code);
    expect(codes('accounts', 'post')).toEqual(expect.arrayContaining(['account.not_found', 'ledger.parent_not_group', 'ledger.parent_type_mismatch', 'ledger.hierarchy_too_deep', 'ledger.account_code_taken']));
    expect(codes('accounts/{accountId}', 'patch')).toEqual(expect.arrayContaining(['account.not_found', 'ledger.parent_not_group', 'ledger.parent_type_mismatch',
      'ledger.parent_cycle', 'ledger.hierarchy_too_deep', 'ledger.account_has_postings', 'ledger.account_has_children']));
    expect(codes('tax-codes', 'post')).toContain('ledger.tax_code_taken');
    expect(codes('fiscal-years', 'post')).toEqual(expect.arrayContaining(['ledger.fiscal_year_overlap', 'ledger.fiscal_year_before_closed_year']));
    const close = codes('fiscal-years/{yearId}/close', 'post');
    expect(close).toEqual(expect.arrayContaining(['ledger.period_closed', 'ledger.earlier_year_open']));
    expect(close.filter((c, i) => close.indexOf(c) !== i)).toEqual([]);
  });

  it('a fiscal year ending after 9999-12-31: 400 naming the field (it ended in year 10000, which no date of the API names)', async () => {
    const before = await snapshot();
    const problem = (field: string) => [{ field, problems: [`${field} must be 9999-01-01 or earlier: the fiscal year's 12 months would end after 9999-12-31`] }];
    for (const startDate of ['9999-06-01', '9999-01-02']) {
      const res = await t.http.post(url('fiscal-years')).set(users.accountant.auth).send({ startDate }).expect(400);
      expect(res.body.error).toMatchObject({ code: 'validation_failed', details: problem('startDate') });
    }
    const books = await t.http.post(url('books')).set(users.owner.auth).send({ baseCurrency: 'EUR', fiscalYearStart: '9999-06-01' }).expect(400);
    expect(books.body.error.details).toEqual(problem('fiscalYearStart'));
    expect(await snapshot()).toEqual(before);
    const last = await t.http.post(url('fiscal-years')).set(users.accountant.auth).send({ startDate: '9999-01-01' }).expect(201);
    expect([last.body.endDate, last.body.periods.at(-1).endDate]).toEqual(['9999-12-31', '9999-12-31']);
  });

  it('a fiscal year before a closed one: 422 ledger.fiscal_year_before_closed_year (its entries changed the closed year\'s figures); with no later year closed it is created and posted into', async () => {
    const y2026 = (await t.http.get(url('fiscal-years')).set(users.owner.auth).expect(200)).body.find((y: any) => y.startDate === '2026-01-01');
    await t.http.post(url(`fiscal-years/${y2026.id}/close`)).set(users.owner.auth).expect(200);
    const before = await snapshot();
    const res = await t.http.post(url('fiscal-years')).set(users.accountant.auth).send({ startDate: '2025-01-01' }).expect(422);
    expect(res.body.error).toEqual({ code: 'ledger.fiscal_year_before_closed_year', message: 'fiscal year 2025-01-01 to 2025-12-31 would start before fiscal year FY2026 '
      + '(2026-01-01 to 2026-12-31), which is closed: its entries would change the closed year\'s figures; reopen that year (and any later closed one) first' });
    expect(await snapshot()).toEqual(before);
    // a later year is created as before; the earlier one once the closed year reopened, and it takes postings
    await t.http.post(url('fiscal-years')).set(users.accountant.auth).send({ startDate: '2027-01-01' }).expect(201);
    await t.http.post(url(`fiscal-years/${y2026.id}/reopen`)).set(users.owner.auth).expect(200);
    await t.http.post(url('fiscal-years')).set(users.accountant.auth).send({ startDate: '2025-01-01' }).expect(201);
    await t.http.post(url('journal-entries')).set(users.accountant.auth)
      .send({ date: '2025-06-30', lines: [{ accountId: acc['1100'], debit: '5.00' }, { accountId: acc['3100'], credit: '5.00' }] }).expect(201);
  });

  it('a fiscal year closing while an earlier one is open: 422 ledger.earlier_year_open (the earlier year\'s postings changed its closed figures), whoever updates it; in order they close', async () => {
    const years = (await t.http.get(url('fiscal-years')).set(users.owner.auth).expect(200)).body;
    const [y2025, y2026] = ['2025-01-01', '2026-01-01'].map((d) => years.find((y: any) => y.startDate === d));
    expect([y2025.status, y2026.status]).toEqual(['open', 'open']);
    const before = await snapshot();
    const res = await t.http.post(url(`fiscal-years/${y2026.id}/close`)).set(users.owner.auth).expect(422);
    expect(res.body.error).toEqual({ code: 'ledger.earlier_year_open', message: 'close the earlier fiscal year 2025-01-01 to 2025-12-31 first' });
    expect(await snapshot()).toEqual(before);
    // the database rule, for any writer
    await expect(t.db.admin.query(`UPDATE finance.fiscal_years SET status = 'closed' WHERE org_id = $1 AND id = $2`, [orgId, y2026.id]))
      .rejects.toMatchObject({ code: '23514', hint: 'ledger.earlier_year_open' });
    expect(await snapshot()).toEqual(before);
    await t.http.post(url(`fiscal-years/${y2025.id}/close`)).set(users.owner.auth).expect(200);
    await t.http.post(url(`fiscal-years/${y2026.id}/close`)).set(users.owner.auth).expect(200);
  });
});
