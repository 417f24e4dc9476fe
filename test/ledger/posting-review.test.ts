import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerRepository } from '../../src/modules/ledger/ledger.repository.js';
import { balanceDrift, ledgerUrl, startBooks } from './ledger-support.js';

/**
 * Posting as a reviewer found it through the API: replays of taxed entries, the codes a posting answers, batches with
 * invalid entries, the credit note's tax flow, and the tax calculation's amounts.
 */
describe('ledger: posting review', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  const url = (path: string) => ledgerUrl(orgId, path);
  const post = (body: object) => t.http.post(url('journal-entries')).set(users.accountant.auth).send(body);
  const batch = (entries: unknown, mode?: string) => t.http.post(url(`journal-entries/batch${mode ? `?mode=${mode}` : ''}`)).set(users.accountant.auth).send({ entries });
  const line = (accountId: string, side: 'debit' | 'credit', amount: string, extra: object = {}) => ({ accountId, [side]: amount, ...extra });
  const entry = (date: string, dr: string, cr: string, amount: string, extra: object = {}) => ({ date, lines: [line(dr, 'debit', amount), line(cr, 'credit', amount)], ...extra });
  const entries = async () => (await t.db.admin.query('SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1', [orgId])).rows[0].n as number;
  const audits = async () => (await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'ledger.entry_posted'`, [orgId])).rows[0].n as number;
  const taxCode = async (code: string) => (await t.http.post(url('tax-codes')).set(users.owner.auth)
    .send({ code, name: `${code} 20 %`, rate: '20', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201)).body.id as string;

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Posting Review Ltd'));
    await onPlan(t, orgId, 'professional');
    acc = await startBooks(t, orgId, users.owner);
  });
  afterAll(() => t.close());

  it('an unknown tax code is 422 ledger.unknown_tax_code naming the line and the id (single posting, both batch modes)', async () => {
    const unknown = crypto.randomUUID();
    const taxed = { date: '2026-03-02', lines: [line(acc['1200'], 'debit', '12.00'), line(acc['4100'], 'credit', '10.00', { taxCodeId: unknown })] };
    const before = await entries();
    const single = await post(taxed).expect(422);
    expect(single.body.error).toEqual({ code: 'ledger.unknown_tax_code', message: `lines[1].taxCodeId: tax code ${unknown} does not exist in this organization` });
    const all = await batch([entry('2026-03-02', acc['5200'], acc['1100'], '1'), taxed]).expect(422);
    expect(all.body.error).toEqual({ code: 'ledger.unknown_tax_code', message: `entries[1]: lines[1].taxCodeId: tax code ${unknown} does not exist in this organization`, details: { index: 1 } });
    expect(await entries()).toBe(before);
    const independent = await batch([entry('2026-03-02', acc['5200'], acc['1100'], '1'), taxed], 'independent').expect(201);
    expect(independent.body.results.map((r: any) => [r.index, r.status, r.error?.code])).toEqual([[0, 'posted', undefined], [1, 'rejected', 'ledger.unknown_tax_code']]);
    expect(await entries()).toBe(before + 1);
  });

  it('independent: an entry failing validation is rejected at its index with validation_failed naming entries[i] fields; the valid ones post', async () => {
    const invalid = [
      entry('2026-03-03', acc['5200'], acc['1100'], '1', { memo: 'valid 0' }),
      entry('2026-02-30', acc['5200'], acc['1100'], '1'),
      entry('2026-03-03', acc['5200'], acc['1100'], '1.00001'),
      { date: '2026-03-03', lines: [line('not-a-uuid', 'debit', '1'), line(acc['1100'], 'credit', '1')] },
      { date: '2026-03-03', lines: [line(acc['5200'], 'debit', '1')] },
      entry('2026-03-03', acc['5200'], acc['1100'], '2', { memo: 'valid 5' }),
    ];
    const before = await entries();
    const all = await batch(invalid).expect(400);
    expect(all.body.error.code).toBe('validation_failed');
    expect(all.body.error.details.map((d: any) => d.field)).toEqual(['entries.1.date', 'entries.2.lines.0.debit', 'entries.2.lines.1.credit', 'entries.3.lines.0.accountId', 'entries.4.lines']);
    expect(await entries()).toBe(before);
    const res = await batch(invalid, 'independent').expect(201);
    expect(res.body).toMatchObject({ mode: 'independent', posted: 2, replayed: 0, rejected: 4 });
    expect(res.body.results.map((r: any) => [r.index, r.status, r.error?.code, r.error?.details?.map((d: any) => d.field)])).toEqual([
      [0, 'posted', undefined, undefined],
      [1, 'rejected', 'validation_failed', ['entries[1].date']],
      [2, 'rejected', 'validation_failed', ['entries[2].lines[0].debit', 'entries[2].lines[1].credit']],
      [3, 'rejected', 'validation_failed', ['entries[3].lines[0].accountId']],
      [4, 'rejected', 'validation_failed', ['entries[4].lines']],
      [5, 'posted', undefined, undefined],
    ]);
    expect(res.body.results[1].error.message).toMatch(/^date must be a calendar date YYYY-MM-DD: 2026-02-30/);
    const { rows } = await t.db.admin.query('SELECT id, memo FROM finance.journal_entries WHERE org_id = $1 AND id = ANY ($2::uuid[]) ORDER BY memo',
      [orgId, [res.body.results[0].id, res.body.results[5].id]]);
    expect(rows.map((r) => r.memo)).toEqual(['valid 0', 'valid 5']);
    expect(await entries()).toBe(before + 2);
    // an entry with a key the pipe strips in place (`constructor`) stays refused when the entries are checked one by one
    const stripped = await batch([entry('2026-03-03', acc['5200'], acc['1100'], '3', { memo: 'valid' }),
      { ...entry('2026-03-03', acc['5200'], acc['1100'], '4', { memo: 'with constructor' }), constructor: 'x' }], 'independent').expect(201);
    expect(stripped.body.results.map((r: any) => [r.index, r.status, r.error?.code, r.error?.details?.map((d: any) => d.field)]))
      .toEqual([[0, 'posted', undefined, undefined], [1, 'rejected', 'validation_failed', ['entries[1].constructor']]]);
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1 AND memo = 'with constructor'`, [orgId])).rows[0].n).toBe(0);
    expect(await entries()).toBe(before + 3);
    // the request's own shape stays a 400 in either mode
    for (const body of [{}, { entries: 'x' }, { entries: [] }, { entries: null }, { entries: [entry('2026-03-03', acc['5200'], acc['1100'], '1')], extra: 1 }]) {
      const r = await t.http.post(url('journal-entries/batch?mode=independent')).set(users.accountant.auth).send(body).expect(400);
      expect(r.body.error.code).toBe('validation_failed');
    }
    const tooMany = await batch(Array.from({ length: 1001 }, () => entry('2026-03-03', acc['5200'], acc['1100'], '1')), 'independent').expect(400);
    expect(tooMany.body.error.details).toEqual([{ field: 'entries', problems: [expect.stringMatching(/1000/)] }]);
    expect(await entries()).toBe(before + 3);
  });

  it('an array in the place of an entry or of a line is refused at its index (it was a 500 in both modes, the valid entries beside it unposted)', async () => {
    const valid = entry('2026-03-03', acc['5200'], acc['1100'], '6', { memo: 'beside an array' });
    const nestedLines = { date: '2026-03-03', lines: [[line(acc['5200'], 'debit', '1')], line(acc['1100'], 'credit', '1')] };
    const before = await entries();
    const all = await batch([[valid], valid, nestedLines]).expect(400);
    expect(all.body.error).toMatchObject({ code: 'validation_failed', details: [
      { field: 'entries.0', problems: ['each element of entries must be a journal entry (an object)'] },
      { field: 'entries.2.lines.0', problems: ['each element of lines must be a journal line (an object)'] },
    ] });
    expect(await entries()).toBe(before);
    const res = await batch([[valid], valid, [], nestedLines], 'independent').expect(201);
    expect(res.body).toMatchObject({ mode: 'independent', posted: 1, rejected: 3 });
    expect(res.body.results.map((r: any) => [r.index, r.status, r.error?.code])).toEqual([
      [0, 'rejected', 'validation_failed'], [1, 'posted', undefined], [2, 'rejected', 'validation_failed'], [3, 'rejected', 'validation_failed']]);
    const notAnEntry = [{ field: 'entries[0]', problems: ['each element of entries must be a journal entry (an object)'] }];
    expect([res.body.results[0].error.details, res.body.results[2].error.details]).toEqual([notAnEntry, [{ ...notAnEntry[0], field: 'entries[2]' }]]);
    expect(res.body.results[3].error.details).toEqual([{ field: 'entries[3].lines[0]', problems: ['each element of lines must be a journal line (an object)'] }]);
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1 AND memo = 'beside an array'`, [orgId])).rows[0].n).toBe(1);
    expect(await entries()).toBe(before + 1);
    // a single posting with an array for a line: 400 naming the line, not 422 ledger.line_side
    const single = await post(nestedLines).expect(400);
    expect(single.body.error).toMatchObject({ code: 'validation_failed', details: [{ field: 'lines.0', problems: ['each element of lines must be a journal line (an object)'] }] });
  });

  it('all or nothing names the lowest rejected index, whether the service or the database rejects it', async () => {
    const before = await entries();
    const auditBefore = await audits();
    const unbalanced = { date: '2026-03-04', lines: [line(acc['5200'], 'debit', '10'), line(acc['1100'], 'credit', '9')] };
    const noSide = { date: '2026-03-04', lines: [{ accountId: acc['5200'] }, line(acc['1100'], 'credit', '9')] };
    const first = await batch([unbalanced, entry('2026-03-04', acc['5200'], acc['1100'], '1'), noSide]).expect(422);
    expect(first.body.error).toMatchObject({ code: 'ledger.unbalanced', message: expect.stringMatching(/^entries\[0\]: entry does not balance/), details: { index: 0 } });
    const later = await batch([entry('2026-03-04', acc['5200'], acc['1100'], '1'), noSide, unbalanced]).expect(400);
    expect(later.body.error).toMatchObject({ code: 'ledger.line_side', message: expect.stringMatching(/^entries\[1\]: lines\[0\]/), details: { index: 1 } });
    expect(await entries()).toBe(before);
    expect(await audits()).toBe(auditBefore);
    const independent = await batch([unbalanced, entry('2026-03-04', acc['5200'], acc['1100'], '1'), noSide], 'independent').expect(201);
    expect(independent.body.results.map((r: any) => [r.index, r.status, r.error?.code])).toEqual([
      [0, 'rejected', 'ledger.unbalanced'], [1, 'posted', undefined], [2, 'rejected', 'ledger.line_side']]);
    expect(await entries()).toBe(before + 1);
  });

  it('a taxed line without taxFlow takes its flow from the account: revenue is output, expense input, any other account (an asset too) by its side; an explicit taxFlow wins', async () => {
    const vat = await taxCode('VATCN');
    const taxed = (lines: object[]) => post({ date: '2026-05-10', lines }).expect(201);
    await taxed([line(acc['1200'], 'debit', '120.00'), line(acc['4100'], 'credit', '100.00', { taxCodeId: vat })]); // sale
    const creditNote = await taxed([line(acc['4100'], 'debit', '10.00', { taxCodeId: vat }), line(acc['1200'], 'credit', '12.00')]);
    await taxed([line(acc['5200'], 'debit', '50.00', { taxCodeId: vat }), line(acc['1100'], 'credit', '60.00')]); // purchase
    const purchaseReturn = await taxed([line(acc['1100'], 'debit', '6.00'), line(acc['5200'], 'credit', '5.00', { taxCodeId: vat })]);
    const stock = await taxed([line(acc['1400'], 'debit', '30.00', { taxCodeId: vat }), line(acc['2100'], 'credit', '36.00')]); // asset bought
    // goods returned to the supplier: a credit of an asset is output unless the client says input
    const returned = await taxed([line(acc['2100'], 'debit', '12.00'), line(acc['1400'], 'credit', '10.00', { taxCodeId: vat, taxFlow: 'input' })]);
    const equipmentSale = await taxed([line(acc['1100'], 'debit', '1200.00'), line(acc['1500'], 'credit', '1000.00', { taxCodeId: vat })]);
    const lines = (e: { body: any }) => e.body.lines.map((l: any) => [l.accountCode, l.debit, l.credit, l.taxRole]);
    expect(lines(creditNote)).toEqual([['4100', '10.00', '0.00', 'output_base'], ['2200', '2.00', '0.00', 'output_tax'], ['1200', '0.00', '12.00', null]]);
    expect(lines(purchaseReturn)).toEqual([['1100', '6.00', '0.00', null], ['5200', '0.00', '5.00', 'input_base'], ['1300', '0.00', '1.00', 'input_tax']]);
    expect(lines(stock)).toEqual([['1400', '30.00', '0.00', 'input_base'], ['1300', '6.00', '0.00', 'input_tax'], ['2100', '0.00', '36.00', null]]);
    expect(lines(returned)).toEqual([['2100', '12.00', '0.00', null], ['1400', '0.00', '10.00', 'input_base'], ['1300', '0.00', '2.00', 'input_tax']]);
    expect(lines(equipmentSale)).toEqual([['1100', '1200.00', '0.00', null], ['1500', '0.00', '1000.00', 'output_base'], ['2200', '0.00', '200.00', 'output_tax']]);
    const stored = async (id: string) => (await t.db.admin.query(`SELECT a.code, l.tax_role, l.base_debit::text, l.base_credit::text FROM finance.journal_lines l
      JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id WHERE l.org_id = $1 AND l.entry_id = $2 ORDER BY l.line_no`, [orgId, id])).rows;
    expect(await stored(creditNote.body.id)).toEqual([{ code: '4100', tax_role: 'output_base', base_debit: '10.0000', base_credit: '0.0000' },
      { code: '2200', tax_role: 'output_tax', base_debit: '2.0000', base_credit: '0.0000' }, { code: '1200', tax_role: null, base_debit: '0.0000', base_credit: '12.0000' }]);
    expect(await stored(equipmentSale.body.id)).toEqual([{ code: '1100', tax_role: null, base_debit: '1200.0000', base_credit: '0.0000' },
      { code: '1500', tax_role: 'output_base', base_debit: '0.0000', base_credit: '1000.0000' }, { code: '2200', tax_role: 'output_tax', base_debit: '0.0000', base_credit: '200.0000' }]);
    // the tax accounts' lines of the code: output 20 - 2 + 200 on 2200, input 10 - 1 + 6 - 2 on 1300
    const { rows: taxLines } = await t.db.admin.query(`SELECT a.code, sum(l.base_credit - l.base_debit)::text AS credit FROM finance.journal_lines l
      JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id WHERE l.org_id = $1 AND l.tax_code_id = $2 AND l.tax_role LIKE '%_tax' GROUP BY a.code ORDER BY a.code`, [orgId, vat]);
    expect(taxLines).toEqual([{ code: '1300', credit: '-13.0000' }, { code: '2200', credit: '218.0000' }]);
    const report = await t.http.get(url('reports/vat?from=2026-05-01&to=2026-05-31')).set(users.viewer.auth).expect(200);
    // sales 100 - 10 + 1000 (equipment), output 20 - 2 + 200; purchases 50 - 5 + 30 - 10, input 10 - 1 + 6 - 2
    expect(report.body.rows.find((r: any) => r.taxCodeId === vat)).toEqual({
      taxCodeId: vat, code: 'VATCN', name: 'VATCN 20 %', rate: '20.0000',
      taxableSales: '1090.00', outputTax: '218.00', taxablePurchases: '65.00', inputTax: '13.00', net: '205.00',
    });
  });

  it('reads only the types of the accounts of taxed lines without taxFlow (one query per request or batch), never the chart', async () => {
    const vat = await taxCode('VATRD');
    const chartReads = jest.spyOn(ledgerRepository, 'listAccounts');
    const typeReads = jest.spyOn(ledgerRepository, 'accountTypes');
    try {
      const sale = [line(acc['1200'], 'debit', '12.00'), line(acc['4100'], 'credit', '10.00', { taxCodeId: vat })];
      const purchase = [line(acc['5200'], 'debit', '10.00', { taxCodeId: vat }), line(acc['1100'], 'credit', '12.00')];
      await post({ date: '2026-06-02', lines: sale }).expect(201);
      await post({ date: '2026-06-02', lines: [line(acc['1200'], 'debit', '12.00'), line(acc['4100'], 'credit', '10.00', { taxCodeId: vat, taxFlow: 'output' })] }).expect(201);
      await post(entry('2026-06-02', acc['5200'], acc['1100'], '3.00')).expect(201);
      const both = await batch([{ date: '2026-06-02', lines: sale }, { date: '2026-06-02', lines: purchase }, entry('2026-06-02', acc['5200'], acc['1100'], '1.00')]).expect(201);
      expect(both.body).toMatchObject({ posted: 3, rejected: 0 });
      expect(chartReads).not.toHaveBeenCalled();
      expect(typeReads.mock.calls.map((c) => c[2])).toEqual([[acc['4100']], [acc['4100'], acc['5200']]]);
    } finally {
      chartReads.mockRestore();
      typeReads.mockRestore();
    }
    const { rows } = await t.db.admin.query(`SELECT l.tax_role, count(*)::int AS n FROM finance.journal_lines l JOIN finance.journal_entries e ON e.org_id = l.org_id AND e.id = l.entry_id
      WHERE l.org_id = $1 AND e.entry_date = '2026-06-02' AND l.tax_code_id = $2 GROUP BY 1 ORDER BY 1`, [orgId, vat]);
    expect(rows).toEqual([{ tax_role: 'input_base', n: 1 }, { tax_role: 'input_tax', n: 1 }, { tax_role: 'output_base', n: 3 }, { tax_role: 'output_tax', n: 3 }]);
  });

  it('tax-codes/:id/calculate refuses an amount with more decimals than its currency (422 ledger.invalid_amount), as posting does', async () => {
    const vat = await taxCode('VATCALC');
    const calc = (body: object) => t.http.post(url(`tax-codes/${vat}/calculate`)).set(users.viewer.auth).send(body);
    const kwd = await calc({ amount: '10.0005', currency: 'KWD' }).expect(422);
    expect(kwd.body.error).toEqual({ code: 'ledger.invalid_amount', message: 'amount: KWD amounts have at most 3 decimals' });
    const jpy = await calc({ amount: '10.5', currency: 'JPY' }).expect(422);
    expect(jpy.body.error).toEqual({ code: 'ledger.invalid_amount', message: 'amount: JPY amounts have at most 0 decimals' });
    expect((await calc({ amount: '10.001', currency: 'KWD' }).expect(200)).body).toEqual({ currency: 'KWD', net: '10.001', tax: '2.000', gross: '12.001' });
    expect((await calc({ amount: '10.50' }).expect(200)).body).toEqual({ currency: 'EUR', net: '10.50', tax: '2.10', gross: '12.60' });
    // a calculation writes nothing
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND entity_id = $2`, [orgId, vat]);
    expect(rows[0].n).toBe(1); // its creation only
  });

  it('retries an identical taxed entry as a replay after its tax code changes or is archived (single and batch); another request with the key is 409', async () => {
    const vat = await taxCode('VATRP');
    const otherSales = (await t.http.post(url('accounts')).set(users.accountant.auth)
      .send({ code: '2210', name: 'Output tax (new)', type: 'liability', parentId: acc['2000'] }).expect(201)).body.id;
    const body = { date: '2026-03-03', idempotencyKey: 'tx1', lines: [line(acc['1200'], 'debit', '120'), line(acc['4100'], 'credit', '100', { taxCodeId: vat })] };
    const first = await post(body).expect(201);
    expect((await post(body).expect(200)).body.id).toBe(first.body.id);
    const replays = async () => {
      expect((await post(body).expect(200)).body).toEqual(first.body);
      for (const mode of ['all_or_nothing', 'independent']) {
        expect((await batch([body], mode).expect(201)).body).toMatchObject({ posted: 0, replayed: 1, rejected: 0, results: [{ index: 0, status: 'replayed', id: first.body.id }] });
      }
      const other = await post({ ...body, memo: 'another entry' }).expect(409);
      expect(other.body.error.code).toBe('ledger.idempotency_conflict');
      expect((await batch([{ ...body, memo: 'another entry' }]).expect(409)).body.error).toMatchObject({ code: 'ledger.idempotency_conflict', details: { index: 0 } });
      const ind = await batch([{ ...body, memo: 'another entry' }], 'independent').expect(201);
      expect(ind.body.results).toEqual([{ index: 0, status: 'rejected', error: { code: 'ledger.idempotency_conflict', message: expect.stringMatching(/"tx1" was already used for a different entry/) } }]);
    };
    await t.http.patch(url(`tax-codes/${vat}`)).set(users.accountant.auth).send({ salesAccountId: otherSales }).expect(200);
    await replays();
    await t.http.post(url(`tax-codes/${vat}/archive`)).set(users.accountant.auth).expect(200);
    await replays();
    // a new key still meets the archived code
    const fresh = await post({ ...body, idempotencyKey: 'tx2' }).expect(422);
    expect(fresh.body.error).toMatchObject({ code: 'ledger.tax_code_archived', message: 'tax code VATRP is archived' });
    const { rows } = await t.db.admin.query(`SELECT e.id, (SELECT array_agg(a.code ORDER BY l.line_no) FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id
      WHERE l.org_id = e.org_id AND l.entry_id = e.id) AS codes FROM finance.journal_entries e WHERE e.org_id = $1 AND e.idempotency_key IN ('tx1', 'tx2')`, [orgId]);
    expect(rows).toEqual([{ id: first.body.id, codes: ['1200', '4100', '2200'] }]);
  });

  it('replays a key posted before requests were hashed (its hash taken over the payload) when the same request comes again', async () => {
    // what the API sent the posting function for this request before requestHash: the payload, hashed by the function
    const lines = [line(acc['5200'], 'debit', '21.00'), line(acc['1100'], 'credit', '21.00')];
    const claims = { sub: users.accountant.id, role: 'authenticated', org_id: orgId };
    const [legacy] = await t.db.asApi(claims, 'authenticated', 'SELECT entry_id FROM finance.post_journal_entry($1::jsonb)',
      [JSON.stringify({ date: '2026-03-05', source: 'manual', idempotencyKey: 'legacy-1', lines })]);
    const { rows: [stored] } = await t.db.admin.query(`SELECT request_hash FROM finance.journal_entries WHERE org_id = $1 AND id = $2`, [orgId, legacy.entry_id]);
    expect(stored.request_hash).toMatch(/^[0-9a-f]{32}$/);
    expect((await post({ date: '2026-03-05', idempotencyKey: 'legacy-1', lines }).expect(200)).body.id).toBe(legacy.entry_id);
    expect((await batch([{ date: '2026-03-05', idempotencyKey: 'legacy-1', lines }]).expect(201)).body.results).toEqual([{ index: 0, status: 'replayed', id: legacy.entry_id }]);
    expect((await post({ date: '2026-03-05', idempotencyKey: 'legacy-1', memo: 'other', lines }).expect(409)).body.error.code).toBe('ledger.idempotency_conflict');
    // a new entry stores the hash of its request
    const fresh = await post({ date: '2026-03-05', idempotencyKey: 'hashed-1', lines }).expect(201);
    const { rows: [hashed] } = await t.db.admin.query(`SELECT request_hash FROM finance.journal_entries WHERE org_id = $1 AND id = $2`, [orgId, fresh.body.id]);
    expect(hashed.request_hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('replays a key posted before requests were hashed after its tax code was archived, as the posting function would before', async () => {
    const vat = await taxCode('VATLG');
    const request = { date: '2026-03-06', idempotencyKey: 'legacy-tax', lines: [line(acc['1200'], 'debit', '120.00'), line(acc['4100'], 'credit', '100.00', { taxCodeId: vat })] };
    // the payload the API builds for this request, as it sent it to the posting function before requestHash
    const payload = {
      date: '2026-03-06', source: 'manual', idempotencyKey: 'legacy-tax', lines: [
        line(acc['1200'], 'debit', '120.00'),
        line(acc['4100'], 'credit', '100.00', { taxCodeId: vat, taxRole: 'output_base' }),
        line(acc['2200'], 'credit', '20.00', { description: 'VATLG 20.0000% on 100.00', taxCodeId: vat, taxRole: 'output_tax' }),
      ],
    };
    const claims = { sub: users.accountant.id, role: 'authenticated', org_id: orgId };
    const [legacy] = await t.db.asApi(claims, 'authenticated', 'SELECT entry_id FROM finance.post_journal_entry($1::jsonb)', [JSON.stringify(payload)]);
    const { rows: [stored] } = await t.db.admin.query(`SELECT request_hash FROM finance.journal_entries WHERE org_id = $1 AND id = $2`, [orgId, legacy.entry_id]);
    expect(stored.request_hash).toMatch(/^[0-9a-f]{32}$/);
    // the posting function's own match of the payload's hash (the code still active)
    expect((await post(request).expect(200)).body.id).toBe(legacy.entry_id);
    await t.http.post(url(`tax-codes/${vat}/archive`)).set(users.accountant.auth).expect(200);
    expect((await post(request).expect(200)).body.id).toBe(legacy.entry_id);
    for (const mode of ['all_or_nothing', 'independent']) {
      expect((await batch([request], mode).expect(201)).body).toMatchObject({ posted: 0, replayed: 1, rejected: 0, results: [{ index: 0, status: 'replayed', id: legacy.entry_id }] });
    }
    expect((await post({ ...request, memo: 'another entry' }).expect(409)).body.error.code).toBe('ledger.idempotency_conflict');
    const ind = await batch([{ ...request, memo: 'another entry' }], 'independent').expect(201);
    expect(ind.body.results).toEqual([{ index: 0, status: 'rejected', error: { code: 'ledger.idempotency_conflict', message: expect.stringMatching(/"legacy-tax" was already used/) } }]);
    const { rows } = await t.db.admin.query(`SELECT e.id, e.request_hash, (SELECT count(*)::int FROM finance.journal_lines l WHERE l.org_id = e.org_id AND l.entry_id = e.id) AS lines
      FROM finance.journal_entries e WHERE e.org_id = $1 AND e.idempotency_key = 'legacy-tax'`, [orgId]);
    expect(rows).toEqual([{ id: legacy.entry_id, request_hash: stored.request_hash, lines: 3 }]);
  });

  it('leaves the balances equal to the lines', async () => {
    expect(await balanceDrift(t, orgId)).toEqual([]);
  });
});
