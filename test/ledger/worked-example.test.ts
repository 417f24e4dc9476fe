import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser, onPlan } from '../support/factories.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/**
 * A month of typical transactions in EUR, and the statements computed by hand:
 *  Jan  2 capital in                    Dr Cash 10,000.00        Cr Share capital 10,000.00
 *  Jan  5 goods bought on credit        Dr Inventory 2,000.00 + input VAT 20 % 400.00   Cr Payables 2,400.00
 *  Jan 10 sale with VAT 20 %            Dr Receivables 3,600.00  Cr Sales 3,000.00 + output VAT 600.00
 *  Jan 10 cost of the goods sold        Dr COGS 1,200.00         Cr Inventory 1,200.00
 *  Jan 15 customer pays                 Dr Cash 3,600.00         Cr Receivables 3,600.00
 *  Jan 16 we pay the supplier           Dr Payables 2,400.00     Cr Cash 2,400.00
 *  Jan 20 rent                          Dr Rent 500.00           Cr Cash 500.00
 *  Jan 21 rent posted twice by mistake  (same as Jan 20), reversed on Jan 22
 *  Jan 25 sale of USD 1,000.00 at 0.90  Dr Receivables USD 1,000 (900.00)   Cr Sales USD 1,000 (900.00)
 *  Jan 31 revaluation at 0.95           Dr Receivables 50.00 (base only)    Cr unrealized FX gains 50.00
 * Trial balance at Jan 31 (debit | credit):
 *  Cash 10,700 | Receivables 950 | Input VAT 400 | Inventory 800 | COGS 1,200 | Rent 500            = 14,550
 *  Output VAT 600 | Share capital 10,000 | Sales 3,900 | FX gains 50                                  = 14,550
 * P&L January: revenue 3,950 (sales 3,900 + FX 50), expenses 1,700 (COGS 1,200 + rent 500), net 2,250.
 * Balance sheet Jan 31: assets 12,850 = liabilities 600 + equity 10,000 + current earnings 2,250.
 */
describe('ledger: a worked month', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  let acc: Record<string, string>;
  let vat: string;
  const post = (body: object) => t.http.post(ledgerUrl(orgId, 'journal-entries')).set(owner.auth).send(body);

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Month Ltd');
    await onPlan(t, orgId, 'professional'); // foreign-currency entries and FX rates are full accounting
    acc = await startBooks(t, orgId, owner);
    const tax = await t.http.post(ledgerUrl(orgId, 'tax-codes')).set(owner.auth)
      .send({ code: 'VAT20', name: 'VAT 20 %', rate: '20', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201);
    vat = tax.body.id;
    await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(owner.auth)
      .send({ rates: [{ currency: 'USD', date: '2026-01-25', rate: '0.90' }, { currency: 'USD', date: '2026-01-31', rate: '0.95' }] }).expect(201);
  });
  afterAll(() => t.close());

  it('posts the month and produces the statements computed by hand', async () => {
    await post({ date: '2026-01-02', memo: 'Capital in', lines: [{ accountId: acc['1100'], debit: '10000.00' }, { accountId: acc['3100'], credit: '10000.00' }] }).expect(201);
    const purchase = await post({ date: '2026-01-05', memo: 'Goods on credit', source: 'bill', lines: [
      { accountId: acc['1400'], debit: '2000.00', taxCodeId: vat }, { accountId: acc['2100'], credit: '2400.00', counterpartyType: 'vendor', counterpartyId: 'V-1' }] }).expect(201);
    expect(purchase.body.lines.map((l: any) => [l.accountCode, l.debit, l.credit])).toEqual([
      ['1400', '2000.00', '0.00'], ['1300', '400.00', '0.00'], ['2100', '0.00', '2400.00']]);
    await post({ date: '2026-01-10', memo: 'Sale', source: 'invoice', lines: [
      { accountId: acc['1200'], debit: '3600.00' }, { accountId: acc['4100'], credit: '3000.00', taxCodeId: vat }] }).expect(201);
    await post({ date: '2026-01-10', memo: 'COGS', lines: [{ accountId: acc['5100'], debit: '1200' }, { accountId: acc['1400'], credit: '1200' }] }).expect(201);
    await post({ date: '2026-01-15', memo: 'Customer pays', source: 'payment', lines: [{ accountId: acc['1100'], debit: '3600' }, { accountId: acc['1200'], credit: '3600' }] }).expect(201);
    await post({ date: '2026-01-16', memo: 'Pay supplier', source: 'payment', lines: [{ accountId: acc['2100'], debit: '2400' }, { accountId: acc['1100'], credit: '2400' }] }).expect(201);
    await post({ date: '2026-01-20', memo: 'Rent', lines: [{ accountId: acc['5200'], debit: '500' }, { accountId: acc['1100'], credit: '500' }] }).expect(201);
    const dup = await post({ date: '2026-01-21', memo: 'Rent (twice by mistake)', lines: [{ accountId: acc['5200'], debit: '500' }, { accountId: acc['1100'], credit: '500' }] }).expect(201);
    const rev = await t.http.post(ledgerUrl(orgId, `journal-entries/${dup.body.id}/reverse`)).set(owner.auth).send({ date: '2026-01-22' }).expect(201);
    expect(rev.body).toMatchObject({ reversesEntryId: dup.body.id, date: '2026-01-22' });
    await t.http.post(ledgerUrl(orgId, `journal-entries/${dup.body.id}/reverse`)).set(owner.auth).send({ date: '2026-01-23' }).expect(409);
    const usd = await post({ date: '2026-01-25', memo: 'Export sale', lines: [
      { accountId: acc['1200'], debit: '1000.00', currency: 'USD' }, { accountId: acc['4100'], credit: '1000.00', currency: 'USD' }] }).expect(201);
    expect(usd.body.lines.map((l: any) => [l.rate, l.baseDebit, l.baseCredit])).toEqual([['0.9000000000', '900.00', '0.00'], ['0.9000000000', '0.00', '900.00']]);
    const reval = await t.http.post(ledgerUrl(orgId, 'fx-revaluations')).set(owner.auth).send({ date: '2026-01-31' }).expect(201);
    expect(reval.body.adjustments).toEqual([expect.objectContaining({ accountId: acc['1200'], currency: 'USD', balance: '1000.00', rate: '0.9500000000', baseBefore: '900.00', baseAfter: '950.00', difference: '50.00' })]);
    const again = await t.http.post(ledgerUrl(orgId, 'fx-revaluations')).set(owner.auth).send({ date: '2026-01-31' }).expect(201);
    expect(again.body).toEqual({ adjustments: [], entry: null, reversal: null, entries: [], reversals: [] });

    const tb = await t.http.get(ledgerUrl(orgId, 'reports/trial-balance?asOf=2026-01-31')).set(owner.auth).expect(200);
    expect(tb.body.rows.map((r: any) => [r.code, r.debit, r.credit])).toEqual([
      ['1100', '10700.00', '0.00'], ['1200', '950.00', '0.00'], ['1300', '400.00', '0.00'], ['1400', '800.00', '0.00'],
      ['2200', '0.00', '600.00'], ['3100', '0.00', '10000.00'], ['4100', '0.00', '3900.00'], ['4310', '0.00', '50.00'],
      ['5100', '1200.00', '0.00'], ['5200', '500.00', '0.00']]);
    expect(tb.body).toMatchObject({ totalDebit: '14550.00', totalCredit: '14550.00', balanced: true, baseCurrency: 'EUR' });
    const current = await t.http.get(ledgerUrl(orgId, 'reports/trial-balance')).set(owner.auth).expect(200);
    expect(current.body.rows).toEqual(tb.body.rows);
    const mid = await t.http.get(ledgerUrl(orgId, 'reports/trial-balance?asOf=2026-01-12')).set(owner.auth).expect(200);
    expect(mid.body.rows.find((r: any) => r.code === '1100').debit).toBe('10000.00');
    expect(mid.body.totalDebit).toBe('16000.00'); // cash 10,000 + receivables 3,600 + input VAT 400 + inventory 800 + COGS 1,200
    const pl = await t.http.get(ledgerUrl(orgId, 'reports/profit-and-loss?from=2026-01-01&to=2026-01-31')).set(owner.auth).expect(200);
    expect(pl.body).toMatchObject({ totalRevenue: '3950.00', totalExpenses: '1700.00', netIncome: '2250.00' });
    expect(pl.body.revenue.filter((r: any) => r.amount !== '0.00').map((r: any) => [r.code, r.depth, r.amount])).toEqual([
      ['4000', 0, '3950.00'], ['4100', 1, '3900.00'], ['4310', 1, '50.00']]);
    expect(pl.body.expenses.filter((r: any) => r.amount !== '0.00').map((r: any) => [r.code, r.depth, r.amount])).toEqual([
      ['5000', 0, '1700.00'], ['5100', 1, '1200.00'], ['5200', 1, '500.00']]);
    const bs = await t.http.get(ledgerUrl(orgId, 'reports/balance-sheet?asOf=2026-01-31')).set(owner.auth).expect(200);
    expect(bs.body).toMatchObject({ totalAssets: '12850.00', totalLiabilities: '600.00', totalEquity: '10000.00', currentEarnings: '2250.00', balanced: true });
    expect(bs.body.assets.find((r: any) => r.code === '1000').amount).toBe('12850.00');

    const csv = await t.http.get(ledgerUrl(orgId, 'reports/trial-balance?asOf=2026-01-31')).set(owner.auth).set('Accept', 'text/csv').expect(200);
    expect(csv.headers['content-type']).toMatch(/text\/csv/);
    expect(csv.text.split('\r\n')).toEqual(expect.arrayContaining(['code,name,type,debit,credit', '1100,Cash at bank,asset,10700.00,0.00', ',Total,,14550.00,14550.00']));
    const plCsv = await t.http.get(ledgerUrl(orgId, 'reports/profit-and-loss?from=2026-01-01&to=2026-01-31&format=csv')).set(owner.auth).expect(200);
    expect(plCsv.text).toContain('result,,Net income,,2250.00');
    const bsCsv = await t.http.get(ledgerUrl(orgId, 'reports/balance-sheet?asOf=2026-01-31&format=csv')).set(owner.auth).expect(200);
    expect(bsCsv.text).toContain('assets,,Total assets,,12850.00');

    // balance as of a date, per currency
    const ar = await t.http.get(ledgerUrl(orgId, `accounts/${acc['1200']}/balance?asOf=2026-01-31`)).set(owner.auth).expect(200);
    expect(ar.body).toMatchObject({ baseBalance: '950.00', currencies: [{ currency: 'EUR', balance: '0.00', baseBalance: '0.00' }, { currency: 'USD', balance: '1000.00', baseBalance: '950.00' }] });
    const arEarly = await t.http.get(ledgerUrl(orgId, `accounts/${acc['1200']}/balance?asOf=2026-01-12`)).set(owner.auth).expect(200);
    expect(arEarly.body.baseBalance).toBe('3600.00');
  });

  it('pages the general ledger of cash with a running balance, also as CSV', async () => {
    const first = await t.http.get(ledgerUrl(orgId, `accounts/${acc['1100']}/ledger?from=2026-01-01&to=2026-01-31&limit=3`)).set(owner.auth).expect(200);
    expect(first.body.openingBalance).toBe('0.00');
    expect(first.body.items.map((i: any) => i.runningBalance)).toEqual(['10000.00', '13600.00', '11200.00']);
    const second = await t.http.get(ledgerUrl(orgId, `accounts/${acc['1100']}/ledger?from=2026-01-01&to=2026-01-31&limit=3&cursor=${first.body.nextCursor}`)).set(owner.auth).expect(200);
    expect(second.body.items.map((i: any) => i.runningBalance)).toEqual(['10700.00', '10200.00', '10700.00']);
    expect(second.body.nextCursor).toBeUndefined();
    const later = await t.http.get(ledgerUrl(orgId, `accounts/${acc['1100']}/ledger?from=2026-01-16`)).set(owner.auth).expect(200);
    expect(later.body.openingBalance).toBe('13600.00');
    const csv = await t.http.get(ledgerUrl(orgId, `accounts/${acc['1100']}/ledger?format=csv`)).set(owner.auth).expect(200);
    expect(csv.text.trim().split('\r\n')).toHaveLength(1 + 1 + 6);
    await t.http.get(ledgerUrl(orgId, `accounts/${acc['1100']}/ledger?cursor=notacursor`)).set(owner.auth).expect(400);
  });

  it('lists journal entries newest first with cursor pagination', async () => {
    const seen: any[] = [];
    let cursor: string | undefined;
    do {
      const res = await t.http.get(ledgerUrl(orgId, `journal-entries?limit=4${cursor ? `&cursor=${cursor}` : ''}`)).set(owner.auth).expect(200);
      seen.push(...res.body.items);
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(seen).toHaveLength(11); // ten postings and the revaluation
    expect(seen.map((e) => e.date)).toEqual([...seen.map((e) => e.date)].sort().reverse());
    expect(new Set(seen.map((e) => e.id)).size).toBe(11);
    const dup = seen.find((e) => e.memo === 'Rent (twice by mistake)');
    expect(dup.reversedByEntryId).toEqual(seen.find((e) => e.reversesEntryId === dup.id).id);
    const jan = await t.http.get(ledgerUrl(orgId, 'journal-entries?from=2026-01-20&to=2026-01-22')).set(owner.auth).expect(200);
    expect(jan.body.items.map((e: any) => e.date)).toEqual(['2026-01-22', '2026-01-21', '2026-01-20']);
  });

  it('closes the year: the result moves to retained earnings and the books stay balanced', async () => {
    const years = await t.http.get(ledgerUrl(orgId, 'fiscal-years')).set(owner.auth).expect(200);
    const res = await t.http.post(ledgerUrl(orgId, `fiscal-years/${years.body[0].id}/close`)).set(owner.auth).expect(200);
    expect(res.body.fiscalYear.status).toBe('closed');
    expect(res.body.fiscalYear.periods.every((p: any) => p.status === 'closed')).toBe(true);
    expect(years.body[0].name).toBe('FY2026');
    // the closing entry is marked, and its lines come in chart order with the result on retained earnings last
    expect(res.body.closingEntry.source).toBe('year_end');
    expect(res.body.closingEntry.lines.map((l: any) => [l.accountCode, l.currency, l.debit, l.credit])).toEqual([
      ['4100', 'EUR', '3000.00', '0.00'], ['4100', 'USD', '1000.00', '0.00'], ['4310', 'EUR', '50.00', '0.00'],
      ['5100', 'EUR', '0.00', '1200.00'], ['5200', 'EUR', '0.00', '500.00'], ['3200', 'EUR', '0.00', '2250.00']]);
    const closingList = await t.http.get(ledgerUrl(orgId, 'journal-entries?source=year_end')).set(owner.auth).expect(200);
    expect(closingList.body.items.map((e: any) => e.id)).toEqual([res.body.closingEntry.id]);
    const bs = await t.http.get(ledgerUrl(orgId, 'reports/balance-sheet?asOf=2026-12-31')).set(owner.auth).expect(200);
    expect(bs.body).toMatchObject({ totalAssets: '12850.00', totalEquity: '12250.00', currentEarnings: '0.00', balanced: true });
    expect(bs.body.equity.find((r: any) => r.code === '3200').amount).toBe('2250.00'); // the year's result, in retained earnings
    const closedYear = await t.http.get(ledgerUrl(orgId, 'reports/profit-and-loss?from=2026-01-01&to=2026-12-31')).set(owner.auth).expect(200);
    expect(closedYear.body).toMatchObject({ totalRevenue: '3950.00', totalExpenses: '1700.00', netIncome: '2250.00' });
    const pl = await t.http.get(ledgerUrl(orgId, 'reports/profit-and-loss?from=2026-01-01&to=2026-01-31')).set(owner.auth).expect(200);
    expect(pl.body.netIncome).toBe('2250.00'); // January itself is unchanged; the closing entry is dated Dec 31
    const closed = await post({ date: '2026-03-01', lines: [{ accountId: acc['5200'], debit: '1' }, { accountId: acc['1100'], credit: '1' }] }).expect(422);
    expect(closed.body.error).toMatchObject({ code: 'ledger.period_closed', message: expect.stringMatching(/fiscal period 2026-03-01 to 2026-03-31 is closed/) });
    const audit = await t.db.admin.query(`SELECT action FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'ledger.%' ORDER BY id`, [orgId]);
    expect(audit.rows.map((r) => r.action)).toEqual(expect.arrayContaining(['ledger.books_started', 'ledger.entry_posted', 'ledger.entry_reversed', 'ledger.fx_revaluation_posted', 'ledger.year_end_entry_posted', 'ledger.fiscal_year_closed']));
    // a posted entry's audit row names it and its totals; the lines stay in the (immutable) journal
    const closing = await t.db.admin.query(`SELECT entity_id, after FROM core.audit_logs WHERE org_id = $1 AND action = 'ledger.year_end_entry_posted'`, [orgId]);
    expect(closing.rows).toEqual([{ entity_id: res.body.closingEntry.id, after: expect.objectContaining({ id: res.body.closingEntry.id, totalBase: res.body.closingEntry.totalBase, lineCount: res.body.closingEntry.lines.length }) }]);
    expect(closing.rows[0].after).not.toHaveProperty('lines');
  });

  it('reopens the closed year (the closing entry reversed, the result back on P&L) and closes it again', async () => {
    const years = await t.http.get(ledgerUrl(orgId, 'fiscal-years')).set(owner.auth).expect(200);
    const year = years.body[0];
    const firstClosing = (await t.http.get(ledgerUrl(orgId, `journal-entries/${year.closingEntryId}`)).set(owner.auth).expect(200)).body;
    const fullYear = () => t.http.get(ledgerUrl(orgId, 'reports/profit-and-loss?from=2026-01-01&to=2026-12-31')).set(owner.auth).expect(200);
    // closed: the year still reports its result; with the closing entry counted, revenue and expense are zero
    expect((await fullYear()).body).toMatchObject({ totalRevenue: '3950.00', totalExpenses: '1700.00', netIncome: '2250.00', includeClosing: false });
    const closedBooks = await t.http.get(ledgerUrl(orgId, 'reports/profit-and-loss?from=2026-01-01&to=2026-12-31&includeClosing=true')).set(owner.auth).expect(200);
    expect(closedBooks.body).toMatchObject({ totalRevenue: '0.00', totalExpenses: '0.00', netIncome: '0.00', includeClosing: true });

    // the closing entry is undone by reopening the year, not reversed alone (the year would stay closed with its result undone)
    const alone = await t.http.post(ledgerUrl(orgId, `journal-entries/${year.closingEntryId}/reverse`)).set(owner.auth).send({ date: '2027-01-01' }).expect(422);
    expect(alone.body.error).toMatchObject({ code: 'ledger.entry_of_document', message: expect.stringContaining(`belongs to the closing entry of fiscal year ${year.name} (reopen the year instead)`) });

    const res = await t.http.post(ledgerUrl(orgId, `fiscal-years/${year.id}/reopen`)).set(owner.auth).expect(200);
    expect(res.body.fiscalYear).toMatchObject({ status: 'open', closingEntryId: null });
    expect(res.body.fiscalYear.periods.every((p: any) => p.status === 'open')).toBe(true);
    expect(res.body.reversalEntry).toMatchObject({ reversesEntryId: firstClosing.id, date: '2026-12-31', totalBase: firstClosing.totalBase });
    expect((await fullYear()).body.netIncome).toBe('2250.00');
    // the closing entry and its reversal are both closing entries: counted, they cancel out
    const reopenedBooks = await t.http.get(ledgerUrl(orgId, 'reports/profit-and-loss?from=2026-01-01&to=2026-12-31&includeClosing=true')).set(owner.auth).expect(200);
    expect(reopenedBooks.body.netIncome).toBe('2250.00');
    expect(res.body.reversalEntry.source).toBe('year_end');
    const bs = await t.http.get(ledgerUrl(orgId, 'reports/balance-sheet?asOf=2026-12-31')).set(owner.auth).expect(200);
    expect(bs.body).toMatchObject({ currentEarnings: '2250.00', balanced: true });
    const again = await t.http.post(ledgerUrl(orgId, `fiscal-years/${year.id}/reopen`)).set(owner.auth).expect(409);
    expect(again.body.error.code).toBe('ledger.year_open');

    // closing again posts a new closing entry (not a replay of the reversed one)
    const closed = await t.http.post(ledgerUrl(orgId, `fiscal-years/${year.id}/close`)).set(owner.auth).expect(200);
    expect(closed.body.closingEntry.id).not.toBe(firstClosing.id);
    expect(closed.body.closingEntry.totalBase).toBe(firstClosing.totalBase);
    expect((await fullYear()).body.netIncome).toBe('2250.00');
    const audit = await t.db.admin.query(`SELECT action FROM core.audit_logs WHERE org_id = $1 AND entity_id = $2 ORDER BY id`, [orgId, year.id]);
    expect(audit.rows.map((r) => r.action)).toEqual(['ledger.fiscal_year_closed', 'ledger.fiscal_year_reopened', 'ledger.fiscal_year_closed']);
    const events = await t.db.admin.query(`SELECT payload->>'type' AS type, payload->'payload' AS payload FROM core.outbox WHERE org_id = $1
      AND topic = 'domain_event' AND payload->>'type' LIKE 'fiscal_year.%' AND payload->'payload'->>'fiscalYearId' = $2 ORDER BY id`, [orgId, year.id]);
    expect(events.rows).toEqual([
      { type: 'fiscal_year.closed', payload: { fiscalYearId: year.id, startDate: '2026-01-01', endDate: '2026-12-31', closingEntryId: firstClosing.id } },
      { type: 'fiscal_year.reopened', payload: { fiscalYearId: year.id, startDate: '2026-01-01', endDate: '2026-12-31', reversalEntryId: res.body.reversalEntry.id } },
      { type: 'fiscal_year.closed', payload: { fiscalYearId: year.id, startDate: '2026-01-01', endDate: '2026-12-31', closingEntryId: closed.body.closingEntry.id } }]);
  });

  it('reopens only the latest closed year', async () => {
    const next = await t.http.post(ledgerUrl(orgId, 'fiscal-years')).set(owner.auth).send({ startDate: '2027-01-01' }).expect(201);
    await t.http.post(ledgerUrl(orgId, `fiscal-years/${next.body.id}/close`)).set(owner.auth).expect(200);
    const years = await t.http.get(ledgerUrl(orgId, 'fiscal-years')).set(owner.auth).expect(200);
    const first = years.body.find((y: any) => y.startDate === '2026-01-01');
    const res = await t.http.post(ledgerUrl(orgId, `fiscal-years/${first.id}/reopen`)).set(owner.auth).expect(422);
    expect(res.body.error.message).toMatch(/reopen the later fiscal year 2027-01-01 to 2027-12-31 first/);
  });
});
