import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { orgWithRoles, type TestUser, type RoleUsers, onPlan } from '../support/factories.js';
import { computeTax } from '../../src/modules/ledger/money.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

describe('ledger: posting rules the database enforces', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  const post = (body: object, who: TestUser = users.accountant) => t.http.post(ledgerUrl(orgId, 'journal-entries')).set(who.auth).send(body);
  const cashRent = (amount: string) => [{ accountId: acc['5200'], debit: amount }, { accountId: acc['1100'], credit: amount }];

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Rules Ltd'));
    await onPlan(t, orgId, 'professional'); // multi-currency entries and FX rates are full accounting
    acc = await startBooks(t, orgId, users.owner);
  });
  afterAll(() => t.close());

  it('computes tax once, rounded to the currency minor unit, net + tax = gross', () => {
    expect(computeTax('100.00', '20', false, 2)).toEqual({ net: '100.00', tax: '20.00', gross: '120.00' });
    expect(computeTax('120.00', '20', true, 2)).toEqual({ net: '100.00', tax: '20.00', gross: '120.00' });
    expect(computeTax('10.01', '7.5', false, 2)).toEqual({ net: '10.01', tax: '0.75', gross: '10.76' });
    expect(computeTax('1000', '7.5', true, 0)).toEqual({ net: '930', tax: '70', gross: '1000' });
    expect(computeTax('0.333', '19', false, 3)).toEqual({ net: '0.333', tax: '0.063', gross: '0.396' });
  });

  it('calculates through a tax code with the currency of the request', async () => {
    const tax = await t.http.post(ledgerUrl(orgId, 'tax-codes')).set(users.accountant.auth)
      .send({ code: 'RED7', name: 'Reduced', rate: '7.5', inclusive: true, salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201);
    const jpy = await t.http.post(ledgerUrl(orgId, `tax-codes/${tax.body.id}/calculate`)).set(users.viewer.auth).send({ amount: '1000', currency: 'JPY' }).expect(200);
    expect(jpy.body).toEqual({ currency: 'JPY', net: '930', tax: '70', gross: '1000' });
    const eur = await t.http.post(ledgerUrl(orgId, `tax-codes/${tax.body.id}/calculate`)).set(users.viewer.auth).send({ amount: '107.50' }).expect(200);
    expect(eur.body).toEqual({ currency: 'EUR', net: '100.00', tax: '7.50', gross: '107.50' });
  });

  it('rejects unbalanced entries, group accounts, other organizations\' accounts, wrong currencies, and names the problem', async () => {
    const rejected = (r: { body: any }, code: string, message: RegExp) => expect(r.body.error).toMatchObject({ code, message: expect.stringMatching(message) });
    let r = await post({ date: '2026-02-01', lines: [{ accountId: acc['5200'], debit: '10' }, { accountId: acc['1100'], credit: '9' }] }).expect(422);
    rejected(r, 'ledger.unbalanced', /does not balance in EUR: debits 10 and credits 9/);
    r = await post({ date: '2026-02-01', lines: [{ accountId: acc['5000'], debit: '10' }, { accountId: acc['1100'], credit: '10' }] }).expect(422);
    rejected(r, 'ledger.account_not_postable', /line 1: account 5000 is a group account/);
    r = await post({ date: '2026-02-01', lines: [{ accountId: '00000000-0000-4000-8000-000000000000', debit: '10' }, { accountId: acc['1100'], credit: '10' }] }).expect(422);
    rejected(r, 'ledger.unknown_account', /line 1: account 00000000-0000-4000-8000-000000000000 does not exist in this organization/);
    r = await post({ date: '2030-02-01', lines: cashRent('1') }).expect(422);
    rejected(r, 'ledger.no_fiscal_year', /no fiscal period covers 2030-02-01/);
    r = await post({ date: '2026-02-01', lines: [{ accountId: acc['5200'], debit: '10', currency: 'CHF' }, { accountId: acc['1100'], credit: '10', currency: 'CHF' }] }).expect(422);
    rejected(r, 'ledger.rate_missing', /line 1: no CHF rate on or before 2026-02-01/);
    r = await post({ date: '2026-02-01', lines: [{ accountId: acc['5200'], debit: '10.001' }, { accountId: acc['1100'], credit: '10.001' }] }).expect(422);
    rejected(r, 'ledger.invalid_amount', /EUR amounts have at most 2 decimals/);
    r = await post({ date: '2026-02-01', lines: [{ accountId: acc['5200'], debit: '10', credit: '10' }, { accountId: acc['1100'], credit: '10' }] }).expect(400);
    expect(r.body.error.message).toMatch(/lines\[0\] needs exactly one of debit or credit/);
    r = await post({ date: '2026-02-01', lines: [{ accountId: acc['5200'], debit: '-10' }, { accountId: acc['1100'], credit: '10' }] }).expect(400);
    expect(r.body.error.message).toMatch(/debit must be a non-negative decimal string/);
    r = await post({ date: '2026-02-30', lines: cashRent('1') }).expect(422);
    expect(r.body.error).toMatchObject({ code: expect.stringMatching(/^(invalid|ledger\.)/), message: expect.stringMatching(/date|2026-02-30/) });
    r = await post({ date: '2026-02-01', lines: [{ accountId: acc['5200'], debit: '1' }] }).expect(400);
    expect(r.body.error.message).toMatch(/at least 2 lines/);
    const usdOnly = await t.http.post(ledgerUrl(orgId, 'accounts')).set(users.accountant.auth)
      .send({ code: '1110', name: 'USD bank', type: 'asset', parentId: acc['1000'], currency: 'USD' }).expect(201);
    r = await post({ date: '2026-02-01', lines: [{ accountId: usdOnly.body.id, debit: '10' }, { accountId: acc['1100'], credit: '10' }] }).expect(422);
    rejected(r, 'ledger.currency_not_allowed', /line 1: account 1110 only takes USD, not EUR/);
    // the database names the rule's code in the HINT, whoever calls the posting function
    const claims = { sub: users.owner.id, role: 'authenticated', org_id: orgId };
    await expect(t.db.as(claims, 'authenticated', `SELECT * FROM finance.post_journal_entry($1::jsonb)`, [JSON.stringify({ date: '2026-02-01', lines: cashRent('10').map((l, i) => (i ? { ...l, credit: '9' } : l)) })]))
      .rejects.toMatchObject({ hint: 'ledger.unbalanced' });
    const { rows } = await t.db.admin.query('SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1', [orgId]);
    expect(rows[0].n).toBe(0);
  });

  it('sends a rounding difference of a multi-currency entry to the rounding account', async () => {
    // two lines of USD 0.50 at 0.333 are 0.17 each in EUR; USD 1.00 is 0.33: 0.01 of rounding
    const r = await post({ date: '2026-02-02', lines: [
      { accountId: acc['1200'], debit: '0.50', currency: 'USD', rate: '0.333' }, { accountId: acc['1200'], debit: '0.50', currency: 'USD', rate: '0.333' },
      { accountId: acc['4100'], credit: '1.00', currency: 'USD', rate: '0.333' }] }).expect(201);
    expect(r.body.lines.map((l: any) => [l.accountCode, l.baseDebit, l.baseCredit, l.isRounding])).toEqual([
      ['1200', '0.17', '0.00', false], ['1200', '0.17', '0.00', false], ['4100', '0.00', '0.33', false], ['5600', '0.00', '0.01', true]]);
    expect(r.body.totalBase).toBe('0.34');
    const big = await post({ date: '2026-02-02', lines: [
      { accountId: acc['1200'], debit: '10.00', currency: 'USD', rate: '0.9' }, { accountId: acc['4100'], credit: '8.00' }] }).expect(422);
    expect(big.body.error).toMatchObject({ code: 'ledger.unbalanced', message: expect.stringMatching(/does not balance in the base currency EUR/) });
  });

  it('idempotency: same key and payload returns the first entry (200); another payload is a 409', async () => {
    const body = { date: '2026-02-03', memo: 'rent', idempotencyKey: 'rent-feb', lines: cashRent('700') };
    const first = await post(body).expect(201);
    const again = await post(body).expect(200);
    expect(again.body.id).toBe(first.body.id);
    const header = await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.accountant.auth).set('Idempotency-Key', 'rent-feb')
      .send({ date: '2026-02-03', memo: 'rent', lines: cashRent('700') }).expect(200);
    expect(header.body.id).toBe(first.body.id);
    const other = await post({ ...body, lines: cashRent('701') }).expect(409);
    expect(other.body.error).toMatchObject({ code: 'ledger.idempotency_conflict', message: expect.stringMatching(/rent-feb/) });
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1 AND idempotency_key = 'rent-feb'`, [orgId]);
    expect(rows[0].n).toBe(1);
  });

  it('lets owner, admin, accountant post; member and viewer are refused by the guard and by the database', async () => {
    for (const role of ['owner', 'admin', 'accountant'] as const) await post({ date: '2026-02-04', lines: cashRent('1') }, users[role]).expect(201);
    for (const role of ['member', 'viewer'] as const) {
      const r = await post({ date: '2026-02-04', lines: cashRent('1') }, users[role]).expect(403);
      expect(r.body.error.code).toBe('forbidden.role');
      const claims = { sub: users[role].id, role: 'authenticated', org_id: orgId };
      await expect(t.db.as(claims, 'authenticated', `SELECT * FROM finance.post_journal_entry($1::jsonb)`, [JSON.stringify({ date: '2026-02-04', lines: cashRent('1') })]))
        .rejects.toThrow(/posting journal entries needs the role owner, admin or accountant/);
      await expect(t.db.as(claims, 'authenticated', `SELECT finance.post_journal_entries($1::jsonb)`, [JSON.stringify([{ date: '2026-02-04', lines: cashRent('1') }])]))
        .rejects.toThrow(/posting journal entries needs the role owner, admin or accountant/);
      // the posting's helpers (the writer skips every check) are not callable by an API role
      await expect(t.db.as(claims, 'authenticated', `SELECT finance.write_entries($1::uuid, NULL, 2, '{}', NULL, 'ledger.entry_posted', NULL, NULL)`, [orgId]))
        .rejects.toThrow(/permission denied/);
      await expect(t.db.as(claims, 'authenticated', `SELECT finance.check_entry($1::uuid, $2::jsonb, NULL, 2, '{}', '{}')`, [orgId, JSON.stringify({ date: '2026-02-04', lines: cashRent('1') })]))
        .rejects.toThrow(/permission denied/);
      await expect(t.db.as(claims, 'authenticated', `INSERT INTO finance.accounts (org_id, code, name, type) VALUES ($1, 'X1', 'x', 'asset')`, [orgId]))
        .rejects.toThrow(/row-level security/);
    }
    const service = { role: 'service_role', service: 'receivables', org_id: orgId };
    const [row] = await t.db.as(service, 'authenticated', `SELECT replayed FROM finance.post_journal_entry($1::jsonb)`, [JSON.stringify({ date: '2026-02-04', source: 'invoice', lines: cashRent('2') })]);
    expect(row.replayed).toBe(false);
  });

  it('batch (SQL): a line naming an account id that is not a UUID fails its own entry by index; any UUID spelling names the account', async () => {
    const claims = { sub: users.accountant.id, role: 'authenticated', org_id: orgId };
    const audit = JSON.stringify({ action: 'ledger.entry_posted', requestId: 'ids-batch' });
    const count = async () => (await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1`, [orgId])).rows[0].n;
    const before = await count();
    // the batch's accounts are read at once, the ids cast together (migration 20270119000100); one malformed id
    // must still be that entry's error, found by finance.check_entry, not the whole call's without an index
    const malformed = [{ date: '2026-02-09', lines: cashRent('3') }, { date: '2026-02-09', lines: [{ accountId: 'not-a-uuid', debit: '3' }, { accountId: acc['1100'], credit: '3' }] }];
    await expect(t.db.as(claims, 'authenticated', `SELECT finance.post_journal_entries($1::jsonb, $2::jsonb, true)`, [JSON.stringify(malformed), audit]))
      .rejects.toThrow(/^entries\[1\]: invalid input syntax for type uuid: "not-a-uuid"/);
    expect(await count()).toBe(before);
    // upper case, braces, no hyphens: PostgreSQL reads each as the same UUID, and the account's own rules apply to it
    const spellings = [acc['5200'].toUpperCase(), `{${acc['5200']}}`, acc['5200'].replace(/-/g, '')];
    const [{ results }] = await t.db.as(claims, 'authenticated', `SELECT finance.post_journal_entries($1::jsonb, $2::jsonb, true) AS results`, [JSON.stringify([
      ...spellings.map((id) => ({ date: '2026-02-09', lines: [{ accountId: id, debit: '4' }, { accountId: acc['1100'], credit: '4' }] })),
      { date: '2026-02-09', lines: [{ accountId: acc['5000'].toUpperCase(), debit: '4' }, { accountId: acc['1100'], credit: '4' }] },
    ]), audit]);
    expect(results.map((r: any) => [r.status, r.error?.code])).toEqual([['posted', undefined], ['posted', undefined], ['posted', undefined], ['rejected', 'ledger.account_not_postable']]);
    const { rows } = await t.db.admin.query(`SELECT l.account_id FROM finance.journal_lines l WHERE l.org_id = $1 AND l.entry_id = ANY ($2::uuid[]) AND l.debit > 0`,
      [orgId, results.slice(0, 3).map((r: any) => r.id)]);
    expect(rows.map((r) => r.account_id)).toEqual([acc['5200'], acc['5200'], acc['5200']]);
    expect(await count()).toBe(before + 3);
  });

  it('keeps the chart a tree: parent in the same organization, a group of the same type, no cycles; archive instead of delete', async () => {
    let r = await t.http.post(ledgerUrl(orgId, 'accounts')).set(users.accountant.auth).send({ code: '1190', name: 'x', type: 'asset', parentId: acc['1100'] }).expect(422);
    expect(r.body.error.message).toMatch(/parent account 1100 is not a group account/);
    r = await t.http.post(ledgerUrl(orgId, 'accounts')).set(users.accountant.auth).send({ code: '1191', name: 'x', type: 'expense', parentId: acc['1000'] }).expect(422);
    expect(r.body.error.message).toMatch(/type expense but its parent 1000 is of type asset/);
    const g1 = await t.http.post(ledgerUrl(orgId, 'accounts')).set(users.accountant.auth).send({ code: '1800', name: 'g1', type: 'asset', parentId: acc['1000'], isGroup: true }).expect(201);
    const g2 = await t.http.post(ledgerUrl(orgId, 'accounts')).set(users.accountant.auth).send({ code: '1810', name: 'g2', type: 'asset', parentId: g1.body.id, isGroup: true }).expect(201);
    r = await t.http.patch(ledgerUrl(orgId, `accounts/${g1.body.id}`)).set(users.accountant.auth).send({ parentId: g2.body.id }).expect(422);
    expect(r.body.error.message).toMatch(/cannot be its own ancestor/);
    await t.http.post(ledgerUrl(orgId, 'accounts')).set(users.accountant.auth).send({ code: '1100', name: 'dup', type: 'asset' }).expect(409);
    r = await t.http.post(ledgerUrl(orgId, `accounts/${acc['1100']}/archive`)).set(users.accountant.auth).expect(422);
    expect(r.body.error.code).toBe('ledger.account_has_balance');
    const leaf = await t.http.post(ledgerUrl(orgId, 'accounts')).set(users.accountant.auth).send({ code: '1820', name: 'leaf', type: 'asset', parentId: g2.body.id }).expect(201);
    const archived = await t.http.post(ledgerUrl(orgId, `accounts/${leaf.body.id}/archive`)).set(users.accountant.auth).expect(200);
    expect(archived.body.archivedAt).not.toBeNull();
    r = await post({ date: '2026-02-05', lines: [{ accountId: leaf.body.id, debit: '1' }, { accountId: acc['1100'], credit: '1' }] }).expect(422);
    expect(r.body.error.message).toMatch(/account 1820 is archived/);
    await expect(t.db.admin.query('DELETE FROM finance.accounts WHERE org_id = $1 AND id = $2', [orgId, leaf.body.id])).rejects.toThrow(/append-only|not allowed/);
  });

  it('closes and reopens periods (owner, admin only, audited); nothing posts into a closed period', async () => {
    const periods = await t.http.get(ledgerUrl(orgId, 'periods')).set(users.viewer.auth).expect(200);
    const feb = periods.body.find((p: any) => p.startDate === '2026-02-01');
    await t.http.post(ledgerUrl(orgId, `periods/${feb.id}/close`)).set(users.accountant.auth).expect(403);
    const claims = { sub: users.accountant.id, role: 'authenticated', org_id: orgId };
    const upd = await t.db.as(claims, 'authenticated', `UPDATE finance.fiscal_periods SET status = 'closed' WHERE org_id = $1 AND id = $2 RETURNING id`, [orgId, feb.id]);
    expect(upd).toHaveLength(0); // the policy, not only the guard
    await t.http.post(ledgerUrl(orgId, `periods/${feb.id}/close`)).set(users.admin.auth).expect(200);
    await t.http.post(ledgerUrl(orgId, `periods/${feb.id}/close`)).set(users.admin.auth).expect(409);
    const r = await post({ date: '2026-02-10', lines: cashRent('1') }).expect(422);
    expect(r.body.error).toMatchObject({ code: 'ledger.period_closed', message: expect.stringMatching(/fiscal period 2026-02-01 to 2026-02-28 is closed/) });
    await t.http.post(ledgerUrl(orgId, `periods/${feb.id}/reopen`)).set(users.owner.auth).expect(200);
    await post({ date: '2026-02-10', lines: cashRent('1') }).expect(201);
    const audit = await t.db.admin.query(`SELECT action FROM core.audit_logs WHERE org_id = $1 AND entity_id = $2 ORDER BY id`, [orgId, feb.id]);
    expect(audit.rows.map((a) => a.action)).toEqual(['ledger.period_closed', 'ledger.period_reopened']);
  });

  it('imports FX rates in bulk and uses the rate effective on the entry date', async () => {
    await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(users.accountant.auth).send({ rates: [
      { currency: 'GBP', date: '2026-02-01', rate: '1.15' }, { currency: 'GBP', date: '2026-02-15', rate: '1.20' }] }).expect(201);
    const rates = async () => (await t.db.admin.query(`SELECT currency, rate_date::text AS date, rate::text AS rate FROM finance.fx_rates WHERE org_id = $1 ORDER BY 1, 2`, [orgId])).rows;
    const imported = await rates();
    expect(imported).toEqual([{ currency: 'GBP', date: '2026-02-01', rate: '1.1500000000' }, { currency: 'GBP', date: '2026-02-15', rate: '1.2000000000' }]);
    const base = await t.http.post(ledgerUrl(orgId, 'fx-rates')).set(users.accountant.auth).send({ currency: 'EUR', date: '2026-02-01', rate: '1' }).expect(400);
    expect(base.body.error).toMatchObject({ code: 'ledger.rate_base_currency', message: expect.stringContaining('EUR') });
    const viewer = await t.http.post(ledgerUrl(orgId, 'fx-rates')).set(users.viewer.auth).send({ currency: 'GBP', date: '2026-02-01', rate: '1' }).expect(403);
    expect(viewer.body.error.code).toBe('forbidden.role');
    expect(await rates()).toEqual(imported); // neither refused rate was written
    const r = await post({ date: '2026-02-14', lines: [{ accountId: acc['1100'], debit: '100', currency: 'GBP' }, { accountId: acc['4200'], credit: '100', currency: 'GBP' }] }).expect(201);
    expect(r.body.lines[0]).toMatchObject({ rate: '1.1500000000', baseDebit: '115.00' });
    const list = await t.http.get(ledgerUrl(orgId, 'fx-rates?currency=GBP')).set(users.viewer.auth).expect(200);
    expect(list.body.items.map((x: any) => [x.date, x.rate, x.source])).toEqual([['2026-02-15', '1.2000000000', 'import'], ['2026-02-01', '1.1500000000', 'import']]);
  });

  it('exports a general ledger as CSV whole, not one page, with user text that would run as a formula neutralized', async () => {
    const account = acc['5400'];
    for (let i = 0; i < 60; i++) {
      await post({ date: '2026-05-04', memo: i === 0 ? '=HYPERLINK("http://evil.example","x")' : `rent ${i}`, lines: [{ accountId: account, debit: '1.25' }, { accountId: acc['1100'], credit: '1.25' }] }).expect(201);
    }
    const json = await t.http.get(ledgerUrl(orgId, `accounts/${account}/ledger?from=2026-05-01&to=2026-05-31`)).set(users.viewer.auth).expect(200);
    expect(json.body.items).toHaveLength(50);
    expect(json.body.nextCursor).toBeDefined();
    const csv = await t.http.get(ledgerUrl(orgId, `accounts/${account}/ledger?from=2026-05-01&to=2026-05-31&format=csv`)).set(users.viewer.auth).expect(200);
    expect(csv.headers['content-type']).toMatch(/text\/csv/);
    expect(csv.headers['x-next-cursor']).toBeUndefined();
    const rows = csv.text.trimEnd().split('\r\n');
    expect(rows).toHaveLength(1 + 1 + 60); // header, opening balance, every line
    expect(rows[rows.length - 1].endsWith(',75.00')).toBe(true); // running balance after 60 x 1.25
    expect(csv.text).toContain(`"'=HYPERLINK(""http://evil.example"",""x"")"`);
    const paged = await t.http.get(ledgerUrl(orgId, `accounts/${account}/ledger?from=2026-05-01&to=2026-05-31&format=csv&limit=20`)).set(users.viewer.auth).expect(200);
    expect(paged.text.trimEnd().split('\r\n')).toHaveLength(1 + 1 + 20);
    expect(paged.headers['x-next-cursor']).toBeDefined();
  });

  it('answers a malformed id in the path as the resource not found', async () => {
    for (const [path, code] of [['accounts/x1', 'account.not_found'], ['journal-entries/x1', 'journal_entry.not_found']]) {
      const res = await t.http.get(ledgerUrl(orgId, path)).set(users.viewer.auth).expect(404);
      expect(res.body.error.code).toBe(code);
    }
    const tax = await t.http.post(ledgerUrl(orgId, 'tax-codes/x1/calculate')).set(users.viewer.auth).send({ amount: '10' }).expect(404);
    expect(tax.body.error.code).toBe('tax_code.not_found');
  });

  it('pages FX rates by currency and date, newest first, with a date range filter', async () => {
    const days = Array.from({ length: 7 }, (_, i) => `2026-04-0${i + 1}`);
    await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(users.accountant.auth).send({ rates: [
      ...days.map((date, i) => ({ currency: 'CHF', date, rate: `1.0${i}` })), ...days.slice(0, 2).map((date) => ({ currency: 'JPY', date, rate: '0.006' }))] }).expect(201);
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const res = await t.http.get(ledgerUrl(orgId, `fx-rates?limit=4&from=2026-04-01&to=2026-04-30${cursor ? `&cursor=${cursor}` : ''}`)).set(users.viewer.auth).expect(200);
      expect(res.body.items.length).toBeLessThanOrEqual(4);
      seen.push(...res.body.items.map((x: any) => `${x.currency} ${x.date}`));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([...[...days].reverse().map((d) => `CHF ${d}`), 'JPY 2026-04-02', 'JPY 2026-04-01']);
    const gbpFeb = await t.http.get(ledgerUrl(orgId, 'fx-rates?currency=GBP&from=2026-02-10&to=2026-02-28')).set(users.viewer.auth).expect(200);
    expect(gbpFeb.body).toEqual({ items: [{ currency: 'GBP', date: '2026-02-15', rate: '1.2000000000', source: 'import' }] });
    const bad = await t.http.get(ledgerUrl(orgId, `fx-rates?cursor=${Buffer.from('{"c":"x"}').toString('base64url')}`)).set(users.viewer.auth).expect(400);
    expect(bad.body.error.code).toBe('pagination.cursor');
    await t.http.get(ledgerUrl(orgId, 'fx-rates?from=2026-13-01')).set(users.viewer.auth).expect(400);
  });

  it('a tax code is renamed and re-pointed, never re-rated; once archived, postings refuse it and what was posted keeps it; audited', async () => {
    const created = await t.http.post(ledgerUrl(orgId, 'tax-codes')).set(users.accountant.auth)
      .send({ code: 'STD19', name: 'Standard', rate: '19', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201);
    const id = created.body.id;
    const sale = (amount: string) => post({ date: '2026-02-03', lines: [{ accountId: acc['1100'], debit: amount }, { accountId: acc['4100'], credit: '100', taxCodeId: id }] });
    const posted = await sale('119').expect(201);

    const renamed = await t.http.patch(ledgerUrl(orgId, `tax-codes/${id}`)).set(users.accountant.auth)
      .send({ name: 'Standard rate (old)', salesAccountId: acc['2300'] }).expect(200);
    expect(renamed.body).toMatchObject({ id, code: 'STD19', name: 'Standard rate (old)', rate: '19.0000', salesAccountId: acc['2300'], purchaseAccountId: acc['1300'], archivedAt: null });
    // the rate is not a field that changes: a new rate is a new code
    const rerate = await t.http.patch(ledgerUrl(orgId, `tax-codes/${id}`)).set(users.accountant.auth).send({ rate: '16' }).expect(400);
    expect(rerate.body.error).toMatchObject({ code: 'validation_failed', details: [expect.objectContaining({ field: 'rate' })] });
    // nor in SQL, by any role of the organization
    for (const sql of ['UPDATE finance.tax_codes SET rate = 16 WHERE id = $1', 'UPDATE finance.tax_codes SET inclusive = true WHERE id = $1', `UPDATE finance.tax_codes SET code = 'STD16' WHERE id = $1`]) {
      await expect(t.db.as({ sub: users.owner.id, role: 'authenticated', org_id: orgId }, 'authenticated', sql, [id]))
        .rejects.toThrow('tax code STD19: its code, rate and inclusive flag never change (create a new tax code)');
    }
    const group = await t.http.patch(ledgerUrl(orgId, `tax-codes/${id}`)).set(users.accountant.auth).send({ purchaseAccountId: acc['5000'] }).expect(422);
    expect(group.body.error.code).toBe('ledger.account_not_postable');
    await t.http.patch(ledgerUrl(orgId, `tax-codes/${id}`)).set(users.viewer.auth).send({ name: 'x' }).expect(403);
    // the tax of the next sale goes to the new account
    const next = await sale('119').expect(201);
    const taxLine = (entry: any) => entry.lines.find((l: any) => l.taxRole === 'output_tax');
    expect([taxLine(posted.body).accountId, taxLine(next.body).accountId]).toEqual([acc['2200'], acc['2300']]);

    const archived = await t.http.post(ledgerUrl(orgId, `tax-codes/${id}/archive`)).set(users.accountant.auth).expect(200);
    expect(archived.body.archivedAt).not.toBeNull();
    const again = await t.http.post(ledgerUrl(orgId, `tax-codes/${id}/archive`)).set(users.accountant.auth).expect(200);
    expect(again.body.archivedAt).toBe(archived.body.archivedAt);
    const refused = await sale('119').expect(422);
    expect(refused.body.error).toMatchObject({ code: 'ledger.tax_code_archived', message: 'tax code STD19 is archived' });
    const kept = await t.http.get(ledgerUrl(orgId, `journal-entries/${posted.body.id}`)).set(users.viewer.auth).expect(200);
    expect(taxLine(kept.body)).toMatchObject({ taxCodeId: id, accountId: acc['2200'], credit: '19.00' });
    const listed = (await t.http.get(ledgerUrl(orgId, 'tax-codes')).set(users.viewer.auth).expect(200)).body.find((c: any) => c.id === id);
    expect(listed).toMatchObject({ name: 'Standard rate (old)', rate: '19.0000', archivedAt: archived.body.archivedAt });
    await t.http.patch(ledgerUrl(orgId, 'tax-codes/00000000-0000-4000-8000-000000000000')).set(users.accountant.auth).send({ name: 'x' }).expect(404);

    const audit = await t.db.admin.query(
      `SELECT action, before->>'name' AS before, after->>'name' AS after, after->>'archivedAt' IS NOT NULL AS archived FROM core.audit_logs
       WHERE org_id = $1 AND entity_id = $2 ORDER BY id`, [orgId, id]);
    expect(audit.rows).toEqual([
      { action: 'ledger.tax_code_created', before: null, after: 'Standard', archived: false },
      { action: 'ledger.tax_code_updated', before: 'Standard', after: 'Standard rate (old)', archived: false },
      { action: 'ledger.tax_code_archived', before: 'Standard rate (old)', after: 'Standard rate (old)', archived: true },
    ]);
  });
});
