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
    r = await post({ date: '2026-02-30', lines: cashRent('1') }).expect(400);
    expect(r.body.error).toMatchObject({ code: 'validation_failed', message: expect.stringMatching(/^date must be a calendar date YYYY-MM-DD: 2026-02-30/) });
    r = await post({ date: '2026-02-01', lines: [{ accountId: acc['5200'], debit: '1' }] }).expect(400);
    expect(r.body.error.message).toMatch(/at least 2 lines/);
    const usdOnly = await t.http.post(ledgerUrl(orgId, 'accounts')).set(users.accountant.auth)
      .send({ code: '1110', name: 'USD bank', type: 'asset', parentId: acc['1000'], currency: 'USD' }).expect(201);
    r = await post({ date: '2026-02-01', lines: [{ accountId: usdOnly.body.id, debit: '10' }, { accountId: acc['1100'], credit: '10' }] }).expect(422);
    rejected(r, 'ledger.currency_not_allowed', /line 1: account 1110 only takes USD, not EUR/);
    // the database names the rule's code in the HINT, whoever calls the posting function
    const claims = { sub: users.owner.id, role: 'authenticated', org_id: orgId };
    await expect(t.db.asApi(claims, 'authenticated', `SELECT * FROM finance.post_journal_entry($1::jsonb)`, [JSON.stringify({ date: '2026-02-01', lines: cashRent('10').map((l, i) => (i ? { ...l, credit: '9' } : l)) })]))
      .rejects.toMatchObject({ hint: 'ledger.unbalanced' });
    const { rows } = await t.db.admin.query('SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1', [orgId]);
    expect(rows[0].n).toBe(0);
  });

  it('refuses a taxed amount with more decimals than its currency as an untaxed one (422 ledger.invalid_amount), never rounds it', async () => {
    const vat = (await t.http.post(ledgerUrl(orgId, 'tax-codes')).set(users.accountant.auth)
      .send({ code: 'VATD', name: 'VAT 20 %', rate: '20', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201)).body.id;
    const count = async () => (await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1`, [orgId])).rows[0].n;
    const before = await count();
    const untaxed = await post({ date: '2026-02-06', lines: [{ accountId: acc['5200'], debit: '100.004' }, { accountId: acc['1100'], credit: '100.004' }] }).expect(422);
    expect(untaxed.body.error.code).toBe('ledger.invalid_amount');
    const taxed = await post({ date: '2026-02-06', lines: [{ accountId: acc['5200'], debit: '100.004', taxCodeId: vat }, { accountId: acc['1100'], credit: '120.00' }] }).expect(422);
    expect(taxed.body.error).toMatchObject({ code: 'ledger.invalid_amount', message: 'lines[0]: EUR amounts have at most 2 decimals' });
    const jpy = await post({ date: '2026-02-06', lines: [{ accountId: acc['1100'], debit: '120.5', currency: 'JPY', rate: '0.006' }, { accountId: acc['4100'], credit: '100.5', currency: 'JPY', rate: '0.006', taxCodeId: vat }] }).expect(422);
    expect(jpy.body.error).toMatchObject({ code: 'ledger.invalid_amount', message: 'lines[1]: JPY amounts have at most 0 decimals' });
    expect(await count()).toBe(before);
    const exact = await post({ date: '2026-02-06', lines: [{ accountId: acc['5200'], debit: '100.01', taxCodeId: vat }, { accountId: acc['1100'], credit: '120.01' }] }).expect(201);
    expect(exact.body.lines.map((l: any) => [l.accountCode, l.debit, l.credit])).toEqual([['5200', '100.01', '0.00'], ['1300', '20.00', '0.00'], ['1100', '0.00', '120.01']]);
  });

  it('counts a taxed line as the two it posts: past 499 lines once split is a 422 naming lines, before anything is written', async () => {
    const vat = (await t.http.post(ledgerUrl(orgId, 'tax-codes')).set(users.accountant.auth)
      .send({ code: 'VATL', name: 'VAT 20 %', rate: '20', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201)).body.id;
    const taxedSales = (n: number) => [{ accountId: acc['1100'], debit: (n * 1.2).toFixed(2) }, ...Array.from({ length: n }, () => ({ accountId: acc['4100'], credit: '1.00', taxCodeId: vat }))];
    const before = (await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1`, [orgId])).rows[0].n;
    const res = await post({ date: '2026-02-07', lines: taxedSales(250) }).expect(422);
    expect(res.body.error).toMatchObject({ code: 'ledger.invalid_entry', message: 'lines: an entry has at most 499 lines once each taxed line is split into its net and tax lines; this one has 501' });
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1`, [orgId])).rows[0].n).toBe(before);
    const fits = await post({ date: '2026-02-07', lines: taxedSales(249) }).expect(201);
    expect(fits.body.lines).toHaveLength(499);
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

  it('refuses client idempotency keys of the entries the API posts itself: a manual entry cannot take an entry\'s reversal key', async () => {
    const original = await post({ date: '2026-02-05', memo: 'to reverse', lines: cashRent('12') }).expect(201);
    const count = async () => (await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1`, [orgId])).rows[0].n;
    const before = await count();
    const taken = await post({ date: '2026-02-05', idempotencyKey: `reversal:${original.body.id}`, lines: cashRent('12') }).expect(400);
    expect(taken.body.error).toMatchObject({ code: 'ledger.idempotency_key_reserved', message: expect.stringMatching(/^idempotency keys starting with "reversal:"/) });
    await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.accountant.auth).set('Idempotency-Key', `year-end:${crypto.randomUUID()}`)
      .send({ date: '2026-02-05', lines: cashRent('12') }).expect(400);
    for (const key of ['invoice:x', 'bill:x', 'expense_claim:x', 'revenue-recognition:2026-02-05:0']) {
      expect((await post({ date: '2026-02-05', idempotencyKey: key, lines: cashRent('12') }).expect(400)).body.error.code).toBe('ledger.idempotency_key_reserved');
    }
    const batch = (mode: string) => t.http.post(ledgerUrl(orgId, `journal-entries/batch?mode=${mode}`)).set(users.accountant.auth)
      .send({ entries: [{ date: '2026-02-05', lines: cashRent('13') }, { date: '2026-02-05', idempotencyKey: `reversal:${original.body.id}`, lines: cashRent('12') }] });
    expect((await batch('all_or_nothing').expect(400)).body.error).toMatchObject({ code: 'ledger.idempotency_key_reserved', details: { index: 1 } });
    expect(await count()).toBe(before);
    const independent = await batch('independent').expect(201);
    expect(independent.body.results.map((r: any) => [r.status, r.error?.code])).toEqual([['posted', undefined], ['rejected', 'ledger.idempotency_key_reserved']]);
    expect(await count()).toBe(before + 1);
    // the reversal itself still posts with its key; a key that only contains a prefix is the client's
    const reversal = await t.http.post(ledgerUrl(orgId, `journal-entries/${original.body.id}/reverse`)).set(users.accountant.auth).send({}).expect(201);
    expect(reversal.body).toMatchObject({ reversesEntryId: original.body.id, idempotencyKey: `reversal:${original.body.id}` });
    await post({ date: '2026-02-05', idempotencyKey: `my-reversal:${original.body.id}`, lines: cashRent('12') }).expect(201);
  });

  it('lets owner, admin, accountant post; member and viewer are refused by the guard and by the database', async () => {
    for (const role of ['owner', 'admin', 'accountant'] as const) await post({ date: '2026-02-04', lines: cashRent('1') }, users[role]).expect(201);
    for (const role of ['member', 'viewer'] as const) {
      const r = await post({ date: '2026-02-04', lines: cashRent('1') }, users[role]).expect(403);
      expect(r.body.error.code).toBe('forbidden.role');
      const claims = { sub: users[role].id, role: 'authenticated', org_id: orgId };
      await expect(t.db.asApi(claims, 'authenticated', `SELECT * FROM finance.post_journal_entry($1::jsonb)`, [JSON.stringify({ date: '2026-02-04', lines: cashRent('1') })]))
        .rejects.toThrow(/posting journal entries needs the role owner, admin or accountant/);
      await expect(t.db.asApi(claims, 'authenticated', `SELECT finance.post_journal_entries($1::jsonb)`, [JSON.stringify([{ date: '2026-02-04', lines: cashRent('1') }])]))
        .rejects.toThrow(/posting journal entries needs the role owner, admin or accountant/);
      // the posting's helpers (the writer skips every check) are not callable by an API role
      await expect(t.db.asApi(claims, 'authenticated', `SELECT finance.write_entries($1::uuid, NULL, 2, '{}', NULL, 'ledger.entry_posted', NULL, NULL)`, [orgId]))
        .rejects.toThrow(/permission denied/);
      await expect(t.db.asApi(claims, 'authenticated', `SELECT finance.check_entry($1::uuid, $2::jsonb, NULL, 2, '{}', '{}')`, [orgId, JSON.stringify({ date: '2026-02-04', lines: cashRent('1') })]))
        .rejects.toThrow(/permission denied/);
      await expect(t.db.asApi(claims, 'authenticated', `INSERT INTO finance.accounts (org_id, code, name, type) VALUES ($1, 'X1', 'x', 'asset')`, [orgId]))
        .rejects.toThrow(/row-level security/);
    }
    const service = { role: 'service_role', service: 'receivables', org_id: orgId };
    const [row] = await t.db.asApi(service, 'authenticated', `SELECT replayed FROM finance.post_journal_entry($1::jsonb)`, [JSON.stringify({ date: '2026-02-04', source: 'invoice', lines: cashRent('2') })]);
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
    await expect(t.db.asApi(claims, 'authenticated', `SELECT finance.post_journal_entries($1::jsonb, $2::jsonb, true)`, [JSON.stringify(malformed), audit]))
      .rejects.toThrow(/^entries\[1\]: invalid input syntax for type uuid: "not-a-uuid"/);
    expect(await count()).toBe(before);
    // upper case, braces, no hyphens: PostgreSQL reads each as the same UUID, and the account's own rules apply to it
    const spellings = [acc['5200'].toUpperCase(), `{${acc['5200']}}`, acc['5200'].replace(/-/g, '')];
    const [{ results }] = await t.db.asApi(claims, 'authenticated', `SELECT finance.post_journal_entries($1::jsonb, $2::jsonb, true) AS results`, [JSON.stringify([
      ...spellings.map((id) => ({ date: '2026-02-09', lines: [{ accountId: id, debit: '4' }, { accountId: acc['1100'], credit: '4' }] })),
      { date: '2026-02-09', lines: [{ accountId: acc['5000'].toUpperCase(), debit: '4' }, { accountId: acc['1100'], credit: '4' }] },
    ]), audit]);
    expect(results.map((r: any) => [r.status, r.error?.code])).toEqual([['posted', undefined], ['posted', undefined], ['posted', undefined], ['rejected', 'ledger.account_not_postable']]);
    const { rows } = await t.db.admin.query(`SELECT l.account_id FROM finance.journal_lines l WHERE l.org_id = $1 AND l.entry_id = ANY ($2::uuid[]) AND l.debit > 0`,
      [orgId, results.slice(0, 3).map((r: any) => r.id)]);
    expect(rows.map((r) => r.account_id)).toEqual([acc['5200'], acc['5200'], acc['5200']]);
    expect(await count()).toBe(before + 3);
  });

  it('batch (SQL): the accounts\' rules read from the batch\'s account map reject group, archived and other-currency lines by index; the posted entries\' audit rows are whole', async () => {
    // finance.posting_accounts' map holds each account's fields as strings since migration 20270211001500 (isGroup and
    // archived "true"/"false"); finance.check_entry must still read every one of them as before, in both modes
    const claims = { sub: users.accountant.id, role: 'authenticated', org_id: orgId };
    const audit = JSON.stringify({ action: 'ledger.entry_posted', requestId: 'map-batch' });
    const count = async () => (await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1`, [orgId])).rows[0].n;
    const usd = (await t.http.post(ledgerUrl(orgId, 'accounts')).set(users.accountant.auth)
      .send({ code: '1130', name: 'USD cash', type: 'asset', parentId: acc['1000'], currency: 'USD' }).expect(201)).body.id;
    const old = (await t.http.post(ledgerUrl(orgId, 'accounts')).set(users.accountant.auth)
      .send({ code: '5296', name: 'Old fees', type: 'expense', parentId: acc['5000'] }).expect(201)).body.id;
    await t.http.post(ledgerUrl(orgId, `accounts/${old}/archive`)).set(users.accountant.auth).expect(200);
    const entries = [
      { date: '2026-02-10', lines: [{ accountId: acc['5000'], debit: '6' }, { accountId: acc['1100'], credit: '6' }] },
      { date: '2026-02-10', lines: [{ accountId: usd, debit: '6' }, { accountId: acc['1100'], credit: '6' }] },
      { date: '2026-02-10', memo: 'usd "cash"', lines: [{ accountId: usd, debit: '10', currency: 'USD', rate: '0.9' }, { accountId: acc['1100'], credit: '9' }] },
      { date: '2026-02-10', lines: [{ accountId: old, debit: '6' }, { accountId: acc['1100'], credit: '6' }] },
      { date: '2026-02-10', lines: cashRent('6') },
    ];
    const before = await count();
    await expect(t.db.asApi(claims, 'authenticated', `SELECT finance.post_journal_entries($1::jsonb, $2::jsonb)`, [JSON.stringify(entries), audit]))
      .rejects.toMatchObject({ message: 'entries[0]: line 1: account 5000 is a group account; post to one of its children', hint: 'ledger.account_not_postable', detail: '{"index": 0}' });
    expect(await count()).toBe(before);
    const [{ results }] = await t.db.asApi(claims, 'authenticated', `SELECT finance.post_journal_entries($1::jsonb, $2::jsonb, true) AS results`, [JSON.stringify(entries), audit]);
    expect(results.map((r: any) => [r.index, r.status, r.error])).toEqual([
      [0, 'rejected', { code: 'ledger.account_not_postable', message: 'line 1: account 5000 is a group account; post to one of its children' }],
      [1, 'rejected', { code: 'ledger.currency_not_allowed', message: 'line 1: account 1130 only takes USD, not EUR' }],
      [2, 'posted', undefined],
      [3, 'rejected', { code: 'ledger.account_not_postable', message: 'line 1: account 5296 is archived' }],
      [4, 'posted', undefined],
    ]);
    expect(await count()).toBe(before + 2);
    const { rows: lines } = await t.db.admin.query(`SELECT account_id, currency, debit::text, base_debit::text FROM finance.journal_lines
      WHERE org_id = $1 AND entry_id = $2 AND debit > 0`, [orgId, results[2].id]);
    expect(lines).toEqual([{ account_id: usd, currency: 'USD', debit: '10.0000', base_debit: '9.0000' }]);
    const { rows } = await t.db.admin.query(`SELECT entity_id, after FROM core.audit_logs WHERE org_id = $1 AND entity_id = ANY ($2::text[]) ORDER BY id`,
      [orgId, [results[2].id, results[4].id]]);
    expect(rows).toEqual([
      { entity_id: results[2].id, after: { id: results[2].id, date: '2026-02-10', memo: 'usd "cash"', source: 'manual', sourceRef: null, reversesEntryId: null,
        idempotencyKey: null, baseCurrency: 'EUR', totalBase: '9.00', lineCount: 2 } },
      { entity_id: results[4].id, after: { id: results[4].id, date: '2026-02-10', memo: '', source: 'manual', sourceRef: null, reversesEntryId: null,
        idempotencyKey: null, baseCurrency: 'EUR', totalBase: '6.00', lineCount: 2 } },
    ]);
  });

  it('a date that is no calendar day is a 400 naming the field; in an independent batch (SQL) only its entry is rejected, as are amounts the journal cannot hold', async () => {
    const count = async () => (await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1`, [orgId])).rows[0].n;
    const before = await count();
    const single = await post({ date: '2026-02-30', lines: cashRent('5') }).expect(400);
    expect(single.body.error).toMatchObject({ code: 'validation_failed', message: 'date must be a calendar date YYYY-MM-DD: 2026-02-30 is no day of the calendar',
      details: [{ field: 'date', problems: [expect.any(String)] }] });
    const batch = await t.http.post(ledgerUrl(orgId, 'journal-entries/batch')).set(users.accountant.auth)
      .send({ entries: [{ date: '2026-02-09', lines: cashRent('5') }, { date: '2027-02-29', lines: cashRent('5') }] }).expect(400);
    expect(batch.body.error.details).toEqual([{ field: 'entries.1.date', problems: [expect.stringMatching(/^date must be a calendar date/)] }]);
    await post({ date: '0000-01-01', lines: cashRent('5') }).expect(400);
    expect((await t.http.post(ledgerUrl(orgId, 'fx-rates')).set(users.accountant.auth).send({ currency: 'USD', date: '2026-04-31', rate: '0.9' }).expect(400)).body.error.message)
      .toMatch(/^date must be a calendar date/);
    expect((await t.http.get(ledgerUrl(orgId, 'reports/profit-and-loss?from=2026-02-29&to=2026-03-31')).set(users.viewer.auth).expect(400)).body.error.message)
      .toMatch(/^from must be a calendar date/);
    await t.http.post(ledgerUrl(orgId, `journal-entries/${crypto.randomUUID()}/reverse`)).set(users.accountant.auth).send({ date: '2026-06-31' }).expect(400);
    expect(await count()).toBe(before);
    // a service calling the batch function itself: the date's cast, and amounts or rates beyond the lines' columns,
    // are the entry's own rejections, not the whole call's failure
    const claims = { sub: users.accountant.id, role: 'authenticated', org_id: orgId };
    const usd = (amount: string, rate: string) => [{ accountId: acc['1100'], debit: amount, currency: 'USD', rate }, { accountId: acc['4100'], credit: amount, currency: 'USD', rate }];
    const [{ results }] = await t.db.asApi(claims, 'authenticated', `SELECT finance.post_journal_entries($1::jsonb, $2::jsonb, true) AS results`, [JSON.stringify([
      { date: '2026-02-10', lines: cashRent('6') },
      { date: '2026-02-30', lines: cashRent('6') },
      { date: '2026-02-10', lines: usd('99999999999999', '999999999999') },
      { date: '2026-02-10', lines: usd('1', '100000000000000') },
      { date: 'the tenth', lines: cashRent('6') },
      { date: '2026-02-10', lines: cashRent('7') },
    ]), JSON.stringify({ action: 'ledger.entry_posted', requestId: 'dates-batch' })]);
    expect(results.map((r: any) => [r.index, r.status, r.error?.code])).toEqual([
      [0, 'posted', undefined], [1, 'rejected', 'ledger.invalid_entry'], [2, 'rejected', 'ledger.invalid_amount'], [3, 'rejected', 'ledger.invalid_rate'],
      [4, 'rejected', 'ledger.invalid_entry'], [5, 'posted', undefined]]);
    expect(results[1].error.message).toBe('date 2026-02-30 is not a calendar date');
    expect(await count()).toBe(before + 2);
    const { rows } = await t.db.admin.query(`SELECT total_base::text FROM finance.journal_entries WHERE org_id = $1 AND id = ANY ($2::uuid[]) ORDER BY total_base`,
      [orgId, [results[0].id, results[5].id]]);
    expect(rows.map((r) => r.total_base)).toEqual(['6.0000', '7.0000']);
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

  it('refuses to archive a revenue or expense account with a balance in a fiscal year not closed, even when its total is zero', async () => {
    // an organization of its own: its first year is closed here
    const other = await orgWithRoles(t, 'Archive Years Ltd');
    const a = await startBooks(t, other.orgId, other.users.owner);
    const url = (path: string) => ledgerUrl(other.orgId, path);
    await t.http.post(url('fiscal-years')).set(other.users.owner.auth).send({ startDate: '2027-01-01' }).expect(201);
    const revenue = (await t.http.post(url('accounts')).set(other.users.owner.auth).send({ code: '4150', name: 'Other sales', type: 'revenue' }).expect(201)).body.id;
    const entry = (date: string, dr: string, cr: string) => t.http.post(url('journal-entries')).set(other.users.owner.auth)
      .send({ date, lines: [{ accountId: dr, debit: '100' }, { accountId: cr, credit: '100' }] }).expect(201);
    await entry('2026-03-01', a['1100'], revenue);
    await entry('2027-01-15', revenue, a['1100']); // the account's total is zero; 2026 holds +100 of sales, 2027 -100
    const refused = await t.http.post(url(`accounts/${revenue}/archive`)).set(other.users.owner.auth).expect(422);
    expect(refused.body.error).toMatchObject({ code: 'ledger.account_has_balance', message: expect.stringMatching(/^account 4150 has a balance in fiscal year FY2026, which is not closed/) });
    const archived = await t.db.admin.query(`SELECT archived_at FROM finance.accounts WHERE org_id = $1 AND id = $2`, [other.orgId, revenue]);
    expect(archived.rows[0].archived_at).toBeNull();
    // so the year still closes (its closing entry posts to the account)
    const years = (await t.http.get(url('fiscal-years')).set(other.users.owner.auth).expect(200)).body;
    const closed = await t.http.post(url(`fiscal-years/${years[0].id}/close`)).set(other.users.owner.auth).expect(200);
    expect(closed.body.closingEntry.lines.find((l: any) => l.accountId === revenue)).toMatchObject({ debit: '100.00' });
  });

  it('closes and reopens periods (owner, admin only, audited); nothing posts into a closed period', async () => {
    const periods = await t.http.get(ledgerUrl(orgId, 'periods')).set(users.viewer.auth).expect(200);
    const feb = periods.body.find((p: any) => p.startDate === '2026-02-01');
    await t.http.post(ledgerUrl(orgId, `periods/${feb.id}/close`)).set(users.accountant.auth).expect(403);
    const claims = { sub: users.accountant.id, role: 'authenticated', org_id: orgId };
    const upd = await t.db.asApi(claims, 'authenticated', `UPDATE finance.fiscal_periods SET status = 'closed' WHERE org_id = $1 AND id = $2 RETURNING id`, [orgId, feb.id]);
    expect(upd).toHaveLength(0); // the policy, not only the guard
    await t.http.post(ledgerUrl(orgId, `periods/${feb.id}/close`)).set(users.admin.auth).expect(200);
    await t.http.post(ledgerUrl(orgId, `periods/${feb.id}/close`)).set(users.admin.auth).expect(409);
    const r = await post({ date: '2026-02-10', lines: cashRent('1') }).expect(422);
    expect(r.body.error).toMatchObject({ code: 'ledger.period_closed', message: expect.stringMatching(/fiscal period 2026-02-01 to 2026-02-28 is closed/) });
    await t.http.post(ledgerUrl(orgId, `periods/${feb.id}/reopen`)).set(users.owner.auth).expect(200);
    await post({ date: '2026-02-10', lines: cashRent('1') }).expect(201);
    const audit = await t.db.admin.query(`SELECT action FROM core.audit_logs WHERE org_id = $1 AND entity_id = $2 ORDER BY id`, [orgId, feb.id]);
    expect(audit.rows.map((a) => a.action)).toEqual(['ledger.period_closed', 'ledger.period_reopened']);
    // each change is a domain event too (webhooks, notifications)
    const events = await t.db.admin.query(`SELECT payload FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event'
      AND payload->>'type' IN ('period.closed', 'period.reopened') AND payload->'payload'->>'periodId' = $2 ORDER BY id`, [orgId, feb.id]);
    const payload = { periodId: feb.id, fiscalYearId: feb.fiscalYearId, startDate: '2026-02-01', endDate: '2026-02-28' };
    expect(events.rows.map((r) => r.payload)).toEqual([
      { type: 'period.closed', version: 1, occurredAt: expect.any(String), payload },
      { type: 'period.reopened', version: 1, occurredAt: expect.any(String), payload }]);
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

  it('audits what an FX rate change replaced: the rate before and after, and an import\'s replaced rates', async () => {
    const audit = async (action: string) => (await t.db.admin.query(`SELECT entity_id, before, after FROM core.audit_logs
      WHERE org_id = $1 AND action = $2 ORDER BY id DESC LIMIT 1`, [orgId, action])).rows[0];
    await t.http.post(ledgerUrl(orgId, 'fx-rates')).set(users.accountant.auth).send({ currency: 'CHF', date: '2026-03-01', rate: '1.05' }).expect(201);
    expect(await audit('ledger.fx_rate_set')).toMatchObject({ entity_id: 'CHF:2026-03-01', before: null, after: { rate: '1.05' } });
    await t.http.post(ledgerUrl(orgId, 'fx-rates')).set(users.accountant.auth).send({ currency: 'CHF', date: '2026-03-01', rate: '1.07' }).expect(201);
    expect(await audit('ledger.fx_rate_set')).toMatchObject({
      entity_id: 'CHF:2026-03-01', before: { currency: 'CHF', date: '2026-03-01', rate: '1.0500000000', source: 'manual' }, after: { rate: '1.07' } });
    await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(users.accountant.auth).send({ rates: [
      { currency: 'CHF', date: '2026-03-01', rate: '1.08' }, { currency: 'CHF', date: '2026-03-02', rate: '1.09' }] }).expect(201);
    expect((await audit('ledger.fx_rates_imported')).after).toEqual({
      count: 2, replacedCount: 1, replaced: [{ currency: 'CHF', date: '2026-03-01', from: '1.0700000000', to: '1.08' }] });
  });

  it('exports a general ledger as CSV whole, not one page, with user text that would run as a formula neutralized', async () => {
    const account = acc['5400'];
    // sixty entries in one request (the batch posts each as its own entry), not sixty requests in a row
    const entries = Array.from({ length: 60 }, (_, i) => ({ date: '2026-05-04', memo: i === 0 ? '=HYPERLINK("http://evil.example","x")' : `rent ${i}`,
      lines: [{ accountId: account, debit: '1.25' }, { accountId: acc['1100'], credit: '1.25' }] }));
    const batch = await t.http.post(ledgerUrl(orgId, 'journal-entries/batch')).set(users.accountant.auth).send({ entries }).expect(201);
    expect(batch.body).toMatchObject({ posted: 60, rejected: 0 });
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
      await expect(t.db.asApi({ sub: users.owner.id, role: 'authenticated', org_id: orgId }, 'authenticated', sql, [id]))
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
