import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { comparativeDate, comparativeRange } from '../../src/modules/ledger/reports.service.js';
import { balanceDrift, ledgerUrl, startBooks } from './ledger-support.js';

/** What an accountant reaches for after the month's postings: batch posting, filters, VAT, cash flow, comparatives, FX. */
describe('ledger as accountants use it', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let vat: string;
  const url = (path: string) => ledgerUrl(orgId, path);
  const line = (accountId: string, side: 'debit' | 'credit', amount: string, extra: object = {}) => ({ accountId, [side]: amount, ...extra });
  const entry = (date: string, dr: string, cr: string, amount: string, extra: object = {}) => ({ date, lines: [line(dr, 'debit', amount), line(cr, 'credit', amount)], ...extra });
  const count = async (sql: string) => (await t.db.admin.query(`SELECT count(*)::int AS n FROM ${sql}`, [orgId])).rows[0].n as number;
  /** Balances equal the sums of the lines; every line's entry, account and period exist in the organization. */
  const expectBooksConsistent = async () => {
    expect(await balanceDrift(t, orgId)).toEqual([]);
    const { rows: orphans } = await t.db.admin.query(`
      SELECT 'orphan line' AS what FROM finance.journal_lines x WHERE x.org_id = $1 AND (
        NOT EXISTS (SELECT 1 FROM finance.journal_entries e WHERE e.org_id = x.org_id AND e.id = x.entry_id AND e.period_id = x.period_id AND e.entry_date = x.entry_date)
        OR NOT EXISTS (SELECT 1 FROM finance.accounts a WHERE a.org_id = x.org_id AND a.id = x.account_id AND NOT a.is_group)
        OR NOT EXISTS (SELECT 1 FROM finance.fiscal_periods p WHERE p.org_id = x.org_id AND p.id = x.period_id AND x.entry_date BETWEEN p.start_date AND p.end_date))`, [orgId]);
    expect(orphans).toEqual([]);
  };

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Accountants Ltd'));
    await onPlan(t, orgId, 'professional'); // foreign-currency entries, FX rates and revaluation are full accounting
    acc = await startBooks(t, orgId, users.owner);
    vat = (await t.http.post(url('tax-codes')).set(users.owner.auth)
      .send({ code: 'VAT20', name: 'VAT 20 %', rate: '20', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201)).body.id;
  });
  afterAll(() => t.close());

  describe('batch posting', () => {
    const batch = (entries: object[], mode?: string, who = users.accountant) =>
      t.http.post(url(`journal-entries/batch${mode ? `?mode=${mode}` : ''}`)).set(who.auth).send({ entries });

    it('posts every entry in one request, each audited, with per-entry idempotency keys', async () => {
      const entries = [
        entry('2026-03-02', acc['1100'], acc['3100'], '1000.00', { idempotencyKey: 'import-1', memo: 'capital' }),
        entry('2026-03-03', acc['5200'], acc['1100'], '200', { idempotencyKey: 'import-2' }),
        { date: '2026-03-04', lines: [line(acc['1200'], 'debit', '120.00'), line(acc['4100'], 'credit', '100.00', { taxCodeId: vat })] },
      ];
      const res = await batch(entries).expect(201);
      expect(res.body).toMatchObject({ mode: 'all_or_nothing', posted: 3, replayed: 0, rejected: 0 });
      expect(res.body.results.map((r: any) => [r.index, r.status])).toEqual([[0, 'posted'], [1, 'posted'], [2, 'posted']]);
      const posted = await t.http.get(url(`journal-entries/${res.body.results[2].id}`)).set(users.viewer.auth).expect(200);
      expect(posted.body.lines.map((l: any) => [l.accountCode, l.debit, l.credit, l.taxRole])).toEqual([
        ['1200', '120.00', '0.00', null], ['4100', '0.00', '100.00', 'output_base'], ['2200', '0.00', '20.00', 'output_tax']]);
      const audit = await t.db.admin.query(`SELECT entity_id FROM core.audit_logs WHERE org_id = $1 AND action = 'ledger.entry_posted'`, [orgId]);
      expect(audit.rows.map((r) => r.entity_id).sort()).toEqual(res.body.results.map((r: any) => r.id).sort());
      // the same batch again: the keyed entries are replays, the unkeyed one posts again
      const again = await batch(entries).expect(201);
      expect(again.body.results.map((r: any) => r.status)).toEqual(['replayed', 'replayed', 'posted']);
      expect(again.body.results[0].id).toBe(res.body.results[0].id);
      // one journal_entry.posted event per posted entry (written by the posting's own statement), the payload a single
      // posting emits; a replay emits none
      const events = await t.db.admin.query(`SELECT payload FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event'
        AND payload->>'type' = 'journal_entry.posted' AND payload->'payload'->>'entryId' = ANY($2::text[]) ORDER BY id`,
        [orgId, [...res.body.results, ...again.body.results].map((r: any) => r.id)]);
      expect(events.rows.map((r) => r.payload)).toEqual([
        { type: 'journal_entry.posted', version: 1, occurredAt: expect.any(String), payload: { entryId: res.body.results[0].id, date: '2026-03-02', source: 'manual', memo: 'capital' } },
        { type: 'journal_entry.posted', version: 1, occurredAt: expect.any(String), payload: { entryId: res.body.results[1].id, date: '2026-03-03', source: 'manual' } },
        { type: 'journal_entry.posted', version: 1, occurredAt: expect.any(String), payload: { entryId: res.body.results[2].id, date: '2026-03-04', source: 'manual' } },
        { type: 'journal_entry.posted', version: 1, occurredAt: expect.any(String), payload: { entryId: again.body.results[2].id, date: '2026-03-04', source: 'manual' } },
      ]);
    });

    it('all or nothing: one rejected entry posts nothing and names its index and code', async () => {
      const before = await count('finance.journal_entries WHERE org_id = $1');
      const auditBefore = await count('core.audit_logs WHERE org_id = $1');
      const res = await batch([
        entry('2026-03-05', acc['5200'], acc['1100'], '10'),
        { date: '2026-03-05', lines: [line(acc['5200'], 'debit', '10'), line(acc['1100'], 'credit', '9')] },
        entry('2026-03-05', acc['5200'], acc['1100'], '11'),
      ]).expect(422);
      expect(res.body.error).toMatchObject({ code: 'ledger.unbalanced', message: expect.stringMatching(/^entries\[1\]: entry does not balance/), details: { index: 1 } });
      const side = await batch([entry('2026-03-05', acc['5200'], acc['1100'], '10'), { date: '2026-03-05', lines: [{ accountId: acc['5200'] }, line(acc['1100'], 'credit', '9')] }]).expect(400);
      expect(side.body.error).toMatchObject({ code: 'ledger.line_side', message: expect.stringMatching(/^entries\[1\]: lines\[0\]/), details: { index: 1 } });
      expect(await count('finance.journal_entries WHERE org_id = $1')).toBe(before);
      expect(await count('core.audit_logs WHERE org_id = $1')).toBe(auditBefore);
    });

    it('independent: the valid entries post, the rejected ones are listed by index with their codes', async () => {
      const before = await count('finance.journal_entries WHERE org_id = $1');
      const res = await batch([
        entry('2026-03-06', acc['5200'], acc['1100'], '5', { idempotencyKey: 'ind-0' }),
        { date: '2026-03-06', lines: [line(acc['5200'], 'debit', '10'), line(acc['1100'], 'credit', '9')] },
        entry('2026-03-06', acc['5000'], acc['1100'], '5'),
        entry('2030-01-01', acc['5200'], acc['1100'], '5'),
        entry('2026-03-06', acc['5200'], acc['1100'], '6', { idempotencyKey: 'ind-0' }),
        { date: '2026-03-06', lines: [line(acc['5200'], 'debit', '1', { taxCodeId: '00000000-0000-4000-8000-000000000000' }), line(acc['1100'], 'credit', '1')] },
        entry('2026-03-06', acc['5300'], acc['1100'], '7'),
      ], 'independent').expect(201);
      expect(res.body).toMatchObject({ mode: 'independent', posted: 2, replayed: 0, rejected: 5 });
      expect(res.body.results.map((r: any) => [r.index, r.status, r.error?.code])).toEqual([
        [0, 'posted', undefined], [1, 'rejected', 'ledger.unbalanced'], [2, 'rejected', 'ledger.account_not_postable'],
        [3, 'rejected', 'ledger.no_fiscal_year'], [4, 'rejected', 'ledger.idempotency_conflict'], [5, 'rejected', 'ledger.unknown_tax_code'],
        [6, 'posted', undefined]]);
      expect(await count('finance.journal_entries WHERE org_id = $1')).toBe(before + 2);
    });

    it('keeps balances equal to the lines under concurrent batches that touch the same accounts in opposite orders', async () => {
      const accounts = ['1100', '1200', '1400', '1500', '2100', '2300', '5100', '5200', '5300', '5400'].map((c) => acc[c]);
      const entries = (order: string[]) => order.slice(0, -1).map((a, i) => entry('2026-03-08', a, order[i + 1], `${i + 1}.00`));
      const reversed = [...accounts].reverse();
      const results = await Promise.all([1, 2, 3, 4].map((n) => batch(entries(n % 2 ? accounts : reversed))));
      expect(results.map((r) => r.status)).toEqual([201, 201, 201, 201]);
      await expectBooksConsistent();
    });

    it('applies the plan like single posting: foreign-currency entries need full accounting (starter: 402, nothing posted)', async () => {
      const starter = await orgWithRoles(t, 'Starter Ltd');
      await onPlan(t, starter.orgId, 'starter');
      const a = await startBooks(t, starter.orgId, starter.users.owner);
      const send = (mode: string) => t.http.post(ledgerUrl(starter.orgId, `journal-entries/batch?mode=${mode}`)).set(starter.users.owner.auth).send({ entries: [
        entry('2026-03-09', a['5200'], a['1100'], '5'),
        { date: '2026-03-09', lines: [line(a['1200'], 'debit', '5', { currency: 'USD', rate: '0.9' }), line(a['4100'], 'credit', '5', { currency: 'USD', rate: '0.9' })] }] });
      const res = await send('all_or_nothing').expect(402);
      expect(res.body.error).toMatchObject({ code: 'billing.feature_not_in_plan', message: expect.stringMatching(/^entries\[1\]: /), details: { index: 1 } });
      const independent = await send('independent').expect(201);
      expect(independent.body.results.map((r: any) => [r.status, r.error?.code])).toEqual([['posted', undefined], ['rejected', 'billing.feature_not_in_plan']]);
      const { rows } = await t.db.admin.query('SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1', [starter.orgId]);
      expect(rows[0].n).toBe(1);
    });

    it('refuses members and viewers, more than 1,000 entries, and an unknown mode', async () => {
      await batch([entry('2026-03-07', acc['5200'], acc['1100'], '1')], undefined, users.viewer).expect(403);
      await batch([entry('2026-03-07', acc['5200'], acc['1100'], '1')], undefined, users.member).expect(403);
      await batch(Array.from({ length: 1001 }, () => entry('2026-03-07', acc['5200'], acc['1100'], '1'))).expect(400);
      await batch([entry('2026-03-07', acc['5200'], acc['1100'], '1')], 'some').expect(400);
      await batch([]).expect(400);
    });
  });

  it('filters journal entries by account, source, counterparty, amount and memo, with cursor pagination', async () => {
    await t.http.post(url('journal-entries/batch')).set(users.accountant.auth).send({ entries: [
      { date: '2026-04-01', memo: 'Invoice 100% paid_', source: 'invoice', lines: [line(acc['1200'], 'debit', '500', { counterpartyType: 'customer', counterpartyId: 'C-9' }), line(acc['4100'], 'credit', '500')] },
      { date: '2026-04-02', memo: 'Invoice two', source: 'invoice', lines: [line(acc['1200'], 'debit', '1500', { counterpartyType: 'customer', counterpartyId: 'C-9' }), line(acc['4100'], 'credit', '1500')] },
      { date: '2026-04-03', memo: 'Bill', source: 'bill', lines: [line(acc['5100'], 'debit', '300'), line(acc['2100'], 'credit', '300', { counterpartyType: 'vendor', counterpartyId: 'V-1' })] },
    ] }).expect(201);
    const ids = async (query: string) => {
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const res = await t.http.get(url(`journal-entries?from=2026-04-01&to=2026-04-30&limit=1&${query}${cursor ? `&cursor=${cursor}` : ''}`)).set(users.viewer.auth).expect(200);
        seen.push(...res.body.items.map((e: any) => e.memo));
        cursor = res.body.nextCursor;
      } while (cursor);
      return seen;
    };
    expect(await ids(`accountId=${acc['1200']}`)).toEqual(['Invoice two', 'Invoice 100% paid_']);
    expect(await ids('source=bill')).toEqual(['Bill']);
    expect(await ids('counterpartyType=customer&counterpartyId=C-9')).toEqual(['Invoice two', 'Invoice 100% paid_']);
    expect(await ids('counterpartyId=V-1')).toEqual(['Bill']);
    // each filter on its own: the counterparty is on the receivable's line, not on the sales line (review r3); type and id on one line
    expect(await ids(`accountId=${acc['4100']}&counterpartyId=C-9`)).toEqual(['Invoice two', 'Invoice 100% paid_']);
    expect(await ids(`accountId=${acc['4100']}&counterpartyType=customer&minAmount=400&maxAmount=1000`)).toEqual(['Invoice 100% paid_']);
    expect(await ids('counterpartyType=vendor&counterpartyId=C-9')).toEqual([]);
    const { rows: sales } = await t.db.admin.query(`SELECT l.counterparty_id FROM finance.journal_lines l JOIN finance.journal_entries e ON e.org_id = l.org_id AND e.id = l.entry_id
      WHERE l.org_id = $1 AND l.account_id = $2 AND e.memo LIKE 'Invoice%'`, [orgId, acc['4100']]);
    expect(sales).toEqual([{ counterparty_id: null }, { counterparty_id: null }]);
    expect(await ids('minAmount=400&maxAmount=1000')).toEqual(['Invoice 100% paid_']);
    expect(await ids('memo=INVOICE')).toEqual(['Invoice two', 'Invoice 100% paid_']);
    expect(await ids('memo=100%25%20paid_')).toEqual(['Invoice 100% paid_']);
    expect(await ids('memo=e%25')).toEqual([]); // % is matched literally, not as a wildcard
    const bad = await t.http.get(url('journal-entries?minAmount=10&maxAmount=5')).set(users.viewer.auth).expect(400);
    expect(bad.body.error.code).toBe('ledger.range');
    await t.http.get(url('journal-entries?accountId=nope')).set(users.viewer.auth).expect(400);
    await t.http.get(url('journal-entries?unknown=1')).set(users.viewer.auth).expect(400);
  });

  it('VAT report per tax code: sales and output tax, purchases and input tax, reversals with their sign; JSON and CSV', async () => {
    const post = (body: object) => t.http.post(url('journal-entries')).set(users.accountant.auth).send(body);
    await post({ date: '2026-05-02', lines: [line(acc['1200'], 'debit', '1200'), line(acc['4100'], 'credit', '1000', { taxCodeId: vat })] }).expect(201);
    const wrong = await post({ date: '2026-05-03', lines: [line(acc['1200'], 'debit', '240'), line(acc['4100'], 'credit', '200', { taxCodeId: vat })] }).expect(201);
    await t.http.post(url(`journal-entries/${wrong.body.id}/reverse`)).set(users.accountant.auth).send({ date: '2026-05-04' }).expect(201);
    await post({ date: '2026-05-05', lines: [line(acc['5100'], 'debit', '500', { taxCodeId: vat }), line(acc['2100'], 'credit', '600')] }).expect(201);
    const zero = await t.http.post(url('tax-codes')).set(users.owner.auth).send({ code: 'EXPORT0', name: 'Export 0 %', rate: '0', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201);
    await post({ date: '2026-05-06', lines: [line(acc['1200'], 'debit', '800'), line(acc['4100'], 'credit', '800', { taxCodeId: zero.body.id })] }).expect(201);
    const res = await t.http.get(url('reports/vat?from=2026-05-01&to=2026-05-31')).set(users.viewer.auth).expect(200);
    expect(res.body.rows.map((r: any) => [r.code, r.taxableSales, r.outputTax, r.taxablePurchases, r.inputTax, r.net])).toEqual([
      ['EXPORT0', '800.00', '0.00', '0.00', '0.00', '0.00'], ['VAT20', '1000.00', '200.00', '500.00', '100.00', '100.00']]);
    expect(res.body).toMatchObject({ totalTaxableSales: '1800.00', totalOutputTax: '200.00', totalTaxablePurchases: '500.00', totalInputTax: '100.00', netPayable: '100.00' });
    const csv = await t.http.get(url('reports/vat?from=2026-05-01&to=2026-05-31&format=csv')).set(users.viewer.auth).expect(200);
    expect(csv.text.split('\r\n')).toEqual(expect.arrayContaining(['code,name,rate,taxable_sales,output_tax,taxable_purchases,input_tax,net',
      'VAT20,VAT 20 %,20.0000,1000.00,200.00,500.00,100.00,100.00', ',Total,,1800.00,200.00,500.00,100.00,100.00']));
    // a sales credit note and a purchase return by hand (taxFlow): each reduces its own boxes and tax account
    const june = (q = '') => t.http.get(url(`reports/vat?from=2026-06-01&to=2026-06-30${q}`)).set(users.viewer.auth).expect(200);
    const balance = async (code: string) => (await t.http.get(url(`accounts/${acc[code]}/balance?asOf=2026-06-30`)).set(users.viewer.auth).expect(200)).body.baseBalance;
    const [vat2200, vat1300] = [await balance('2200'), await balance('1300')];
    await post({ date: '2026-06-02', lines: [line(acc['4100'], 'debit', '100', { taxCodeId: vat, taxFlow: 'output' }), line(acc['1200'], 'credit', '120')] }).expect(201);
    await post({ date: '2026-06-03', lines: [line(acc['2100'], 'debit', '60'), line(acc['5100'], 'credit', '50', { taxCodeId: vat, taxFlow: 'input' })] }).expect(201);
    expect((await june()).body.rows.find((r: any) => r.code === 'VAT20')).toMatchObject({
      taxableSales: '-100.00', outputTax: '-20.00', taxablePurchases: '-50.00', inputTax: '-10.00', net: '-10.00' });
    // the output tax account (2200, a liability) debited 20, the input tax account (1300, an asset) credited 10
    // (balances are debit − credit)
    expect(Number(await balance('2200')) - Number(vat2200)).toBe(20);
    expect(Number(await balance('1300')) - Number(vat1300)).toBe(-10);
    const untaxed = await post({ date: '2026-06-04', lines: [line(acc['4100'], 'debit', '1', { taxFlow: 'output' }), line(acc['1200'], 'credit', '1')] }).expect(400);
    expect(untaxed.body.error.message).toContain('lines[0].taxFlow');
    const march = await t.http.get(url('reports/vat?from=2026-03-01&to=2026-03-31')).set(users.viewer.auth).expect(200);
    expect(march.body.rows.find((r: any) => r.code === 'VAT20')).toMatchObject({ taxableSales: '200.00', outputTax: '40.00' }); // the batch's taxed line, posted twice
    await t.http.get(url('reports/vat?from=2026-05-31&to=2026-05-01')).set(users.viewer.auth).expect(400);
  });

  it('cash-flow statement (indirect): net income, working capital, investing, financing add up to the change in cash', async () => {
    const other = await orgWithRoles(t, 'Cash Flow Ltd');
    const a = await startBooks(t, other.orgId, other.users.owner);
    const post = (body: object) => t.http.post(ledgerUrl(other.orgId, 'journal-entries')).set(other.users.owner.auth).send(body);
    await post(entry('2026-01-02', a['1100'], a['3100'], '10000')).expect(201); // capital in
    await post(entry('2026-01-03', a['1100'], a['2300'], '2000')).expect(201); // loan
    await post(entry('2026-01-04', a['1500'], a['1100'], '3000')).expect(201); // equipment bought
    await post(entry('2026-01-05', a['1200'], a['4100'], '1000')).expect(201); // sale on credit
    await post(entry('2026-01-06', a['5200'], a['1100'], '200')).expect(201); // rent paid
    await post(entry('2026-01-07', a['1100'], a['2100'], '50')).expect(201); // supplier credit in cash (an odd one: liability up)
    const res = await t.http.get(ledgerUrl(other.orgId, 'reports/cash-flow?from=2026-01-01&to=2026-01-31')).set(other.users.viewer.auth).expect(200);
    expect(res.body).toMatchObject({
      netIncome: '800.00', openingCash: '0.00', closingCash: '8850.00', netChange: '8850.00', balanced: true,
      operating: { total: '-150.00', rows: [expect.objectContaining({ code: '1200', amount: '-1000.00' }), expect.objectContaining({ code: '2100', amount: '50.00' })] },
      investing: { total: '-3000.00', rows: [expect.objectContaining({ code: '1500', amount: '-3000.00' })] },
      financing: { total: '12000.00', rows: [expect.objectContaining({ code: '2300', amount: '2000.00' }), expect.objectContaining({ code: '3100', amount: '10000.00' })] },
    });
    const feb = await t.http.get(ledgerUrl(other.orgId, 'reports/cash-flow?from=2026-02-01&to=2026-02-28')).set(other.users.viewer.auth).expect(200);
    expect(feb.body).toMatchObject({ openingCash: '8850.00', closingCash: '8850.00', netChange: '0.00', balanced: true });
    // the classification is data on the chart: a second bank account joins cash
    const bank2 = await t.http.post(ledgerUrl(other.orgId, 'accounts')).set(other.users.owner.auth).send({ code: '1110', name: 'Savings', type: 'asset', parentId: a['1000'], cashFlowClass: 'cash' }).expect(201);
    expect(bank2.body.cashFlowClass).toBe('cash');
    await post(entry('2026-02-02', bank2.body.id, a['1100'], '1000')).expect(201);
    const moved = await t.http.get(ledgerUrl(other.orgId, 'reports/cash-flow?from=2026-02-01&to=2026-02-28')).set(other.users.viewer.auth).expect(200);
    expect(moved.body).toMatchObject({ netChange: '0.00', closingCash: '8850.00', operating: { rows: [] }, balanced: true });
  });

  it('comparative columns on P&L and balance sheet (previous period, previous year), also in CSV', async () => {
    expect(comparativeRange('2026-04-01', '2026-06-30', 'previous_period')).toEqual({ from: '2026-01-01', to: '2026-03-31' });
    expect(comparativeRange('2026-03-01', '2026-03-31', 'previous_period')).toEqual({ from: '2026-02-01', to: '2026-02-28' });
    expect(comparativeRange('2026-03-10', '2026-03-19', 'previous_period')).toEqual({ from: '2026-02-28', to: '2026-03-09' });
    expect(comparativeRange('2028-02-01', '2028-02-29', 'previous_year')).toEqual({ from: '2027-02-01', to: '2027-02-28' });
    expect(comparativeDate('2026-03-15', 'previous_period')).toBe('2026-02-28');
    expect(comparativeDate('2026-02-28', 'previous_year')).toBe('2025-02-28');
    const pl = await t.http.get(url('reports/profit-and-loss?from=2026-04-01&to=2026-04-30&compare=previous_period')).set(users.viewer.auth).expect(200);
    // April: sales 2,000; March: sales 200 (the batch's taxed entry, posted twice)
    expect(pl.body.comparative).toMatchObject({ from: '2026-03-01', to: '2026-03-31' });
    expect(pl.body.totalRevenue).toBe('2000.00');
    expect(pl.body.revenue.find((r: any) => r.code === '4100')).toMatchObject({ amount: '2000.00', comparativeAmount: '200.00' });
    const march = await t.http.get(url('reports/profit-and-loss?from=2026-03-01&to=2026-03-31')).set(users.viewer.auth).expect(200);
    expect(pl.body.comparative).toMatchObject({ totalRevenue: march.body.totalRevenue, totalExpenses: march.body.totalExpenses, netIncome: march.body.netIncome });
    const py = await t.http.get(url('reports/profit-and-loss?from=2026-04-01&to=2026-04-30&compare=previous_year')).set(users.viewer.auth).expect(200);
    expect(py.body.comparative).toEqual({ from: '2025-04-01', to: '2025-04-30', totalRevenue: '0.00', totalExpenses: '0.00', netIncome: '0.00' });
    const bs = await t.http.get(url('reports/balance-sheet?asOf=2026-04-30&compare=previous_period')).set(users.viewer.auth).expect(200);
    const bsMarch = await t.http.get(url('reports/balance-sheet?asOf=2026-03-31')).set(users.viewer.auth).expect(200);
    expect(bs.body.comparative).toEqual({ asOf: '2026-03-31', totalAssets: bsMarch.body.totalAssets, totalLiabilities: bsMarch.body.totalLiabilities, totalEquity: bsMarch.body.totalEquity, currentEarnings: bsMarch.body.currentEarnings });
    expect(bs.body.assets.find((r: any) => r.code === '1200').comparativeAmount).toBe(bsMarch.body.assets.find((r: any) => r.code === '1200').amount);
    const csv = await t.http.get(url('reports/profit-and-loss?from=2026-04-01&to=2026-04-30&compare=previous_period&format=csv')).set(users.viewer.auth).expect(200);
    expect(csv.text.split('\r\n')[0]).toBe('section,code,name,depth,amount,amount_2026-03-01_2026-03-31');
    expect(csv.text).toContain('revenue,4100,Sales,1,2000.00,200.00');
    await t.http.get(url('reports/profit-and-loss?from=2026-04-01&to=2026-04-30&compare=last_decade')).set(users.viewer.auth).expect(400);
  });

  it('previous_year comparatives keep 29 February: the year before 2025-02-28 ends on 2024-02-29 (P&L and balance sheet)', async () => {
    expect(comparativeDate('2025-02-28', 'previous_year')).toBe('2024-02-29');
    expect(comparativeDate('2029-02-28', 'previous_year')).toBe('2028-02-29');
    expect(comparativeDate('2024-02-29', 'previous_year')).toBe('2023-02-28');
    expect(comparativeRange('2024-03-01', '2025-02-28', 'previous_year')).toEqual({ from: '2023-03-01', to: '2024-02-29' });
    const leap = await orgWithRoles(t, 'Leap Year Ltd');
    const a = await startBooks(t, leap.orgId, leap.users.owner, 'EUR', '2024-01-01');
    await t.http.post(ledgerUrl(leap.orgId, 'fiscal-years')).set(leap.users.owner.auth).send({ startDate: '2025-01-01' }).expect(201);
    const post = (date: string, amount: string) => t.http.post(ledgerUrl(leap.orgId, 'journal-entries')).set(leap.users.owner.auth).send(entry(date, a['1100'], a['4100'], amount)).expect(201);
    await post('2024-02-29', '29.00');
    await post('2025-02-28', '28.00');
    const pl = await t.http.get(ledgerUrl(leap.orgId, 'reports/profit-and-loss?from=2024-03-01&to=2025-02-28&compare=previous_year')).set(leap.users.viewer.auth).expect(200);
    expect(pl.body.totalRevenue).toBe('28.00');
    expect(pl.body.comparative).toEqual({ from: '2023-03-01', to: '2024-02-29', totalRevenue: '29.00', totalExpenses: '0.00', netIncome: '29.00' });
    expect(pl.body.revenue.find((r: any) => r.code === '4100')).toMatchObject({ amount: '28.00', comparativeAmount: '29.00' });
    const bs = await t.http.get(ledgerUrl(leap.orgId, 'reports/balance-sheet?asOf=2025-02-28&compare=previous_year')).set(leap.users.viewer.auth).expect(200);
    expect(bs.body.comparative).toEqual({ asOf: '2024-02-29', totalAssets: '29.00', totalLiabilities: '0.00', totalEquity: '0.00', currentEarnings: '29.00' });
    expect(bs.body.assets.find((r: any) => r.code === '1100')).toMatchObject({ amount: '57.00', comparativeAmount: '29.00' });
  });

  it('revalues into the unrealized FX accounts and, with autoReverse, reverses on the first day of the next period', async () => {
    const settings = await t.http.get(url('settings')).set(users.viewer.auth).expect(200);
    expect(settings.body).toMatchObject({ fxGainAccountId: acc['4300'], fxLossAccountId: acc['5500'], fxUnrealizedGainAccountId: acc['4310'], fxUnrealizedLossAccountId: acc['5510'] });
    await t.http.post(url('fx-rates/import')).set(users.accountant.auth).send({ rates: [{ currency: 'USD', date: '2026-06-01', rate: '0.90' }, { currency: 'USD', date: '2026-06-30', rate: '0.85' }] }).expect(201);
    await t.http.post(url('journal-entries')).set(users.accountant.auth).send({ date: '2026-06-10', lines: [
      line(acc['1200'], 'debit', '1000.00', { currency: 'USD' }), line(acc['4100'], 'credit', '1000.00', { currency: 'USD' })] }).expect(201);
    const res = await t.http.post(url('fx-revaluations')).set(users.accountant.auth).send({ date: '2026-06-30', autoReverse: true }).expect(201);
    expect(res.body.adjustments).toEqual([expect.objectContaining({ currency: 'USD', balance: '1000.00', rate: '0.8500000000', baseBefore: '900.00', baseAfter: '850.00', difference: '-50.00' })]);
    expect(res.body.entry.lines.map((l: any) => [l.accountCode, l.baseDebit, l.baseCredit])).toEqual([['1200', '0.00', '50.00'], ['5510', '50.00', '0.00']]);
    expect(res.body.reversal).toMatchObject({ date: '2026-07-01', reversesEntryId: res.body.entry.id });
    expect(res.body.reversal.lines.map((l: any) => [l.accountCode, l.baseDebit, l.baseCredit])).toEqual([['1200', '50.00', '0.00'], ['5510', '0.00', '50.00']]);
    const july = await t.http.get(url(`accounts/${acc['1200']}/balance?asOf=2026-07-01`)).set(users.viewer.auth).expect(200);
    expect(july.body.currencies.find((c: any) => c.currency === 'USD')).toEqual({ currency: 'USD', balance: '1000.00', baseBalance: '900.00' });
    const june = await t.http.get(url(`accounts/${acc['1200']}/balance?asOf=2026-06-30`)).set(users.viewer.auth).expect(200);
    expect(june.body.currencies.find((c: any) => c.currency === 'USD').baseBalance).toBe('850.00');
  });

  it('gives every amount exactly its currency\'s minor units (JPY 0, BHD 3), in entries and the general ledger', async () => {
    await t.http.post(url('fx-rates/import')).set(users.accountant.auth).send({ rates: [{ currency: 'JPY', date: '2026-07-01', rate: '0.0061' }, { currency: 'BHD', date: '2026-07-01', rate: '2.4' }] }).expect(201);
    const jpy = await t.http.post(url('journal-entries')).set(users.accountant.auth).send({ date: '2026-07-02', lines: [
      line(acc['1100'], 'debit', '10000', { currency: 'JPY' }), line(acc['4200'], 'credit', '10000', { currency: 'JPY' })] }).expect(201);
    expect(jpy.body.lines[0]).toMatchObject({ debit: '10000', credit: '0', rate: '0.0061000000', baseDebit: '61.00', baseCredit: '0.00' });
    expect(jpy.body.totalBase).toBe('61.00');
    const bhd = await t.http.post(url('journal-entries')).set(users.accountant.auth).send({ date: '2026-07-02', lines: [
      line(acc['1100'], 'debit', '1.005', { currency: 'BHD' }), line(acc['4200'], 'credit', '1.005', { currency: 'BHD' })] }).expect(201);
    expect(bhd.body.lines[1]).toMatchObject({ debit: '0.000', credit: '1.005', baseCredit: '2.41' });
    const gl = await t.http.get(url(`accounts/${acc['4200']}/ledger?from=2026-07-01&to=2026-07-31`)).set(users.viewer.auth).expect(200);
    expect(gl.body.items.map((i: any) => [i.currency, i.credit, i.baseCredit])).toEqual([['JPY', '10000', '61.00'], ['BHD', '1.005', '2.41']]);
    const list = await t.http.get(url('journal-entries?from=2026-07-02&to=2026-07-02')).set(users.viewer.auth).expect(200);
    expect(list.body.items.map((e: any) => e.lines[0].debit)).toEqual(['1.005', '10000']);
  });

  it('revaluation with autoReverse refuses up front, posting nothing, when no open period follows (ledger.no_next_period)', async () => {
    await t.http.post(url('fx-rates/import')).set(users.accountant.auth).send({ rates: [{ currency: 'USD', date: '2026-11-30', rate: '0.95' }, { currency: 'USD', date: '2026-12-31', rate: '0.80' }] }).expect(201);
    const entries = () => count('finance.journal_entries WHERE org_id = $1');
    const before = await entries();
    const revaluations = () => count(`core.audit_logs WHERE org_id = $1 AND action = 'ledger.fx_revaluation_posted'`);
    const revaluationsBefore = await revaluations();
    // the USD 1,000 on 1200 of the revaluation above, carried at 900.00, has something to revalue at either rate;
    // no fiscal year 2027: the reversal would have no period
    const noYear = await t.http.post(url('fx-revaluations')).set(users.accountant.auth).send({ date: '2026-12-31', autoReverse: true }).expect(422);
    expect(noYear.body.error).toMatchObject({ code: 'ledger.no_next_period', message: expect.stringMatching(/no fiscal period starts on 2027-01-01/) });
    // December closed: the reversal would be dated in a closed period
    const december = (await t.http.get(url('periods')).set(users.viewer.auth).expect(200)).body.find((p: any) => p.startDate === '2026-12-01');
    await t.http.post(url(`periods/${december.id}/close`)).set(users.owner.auth).expect(200);
    const closed = await t.http.post(url('fx-revaluations')).set(users.accountant.auth).send({ date: '2026-11-30', autoReverse: true }).expect(422);
    expect(closed.body.error).toMatchObject({ code: 'ledger.no_next_period', message: expect.stringMatching(/2026-12-01 to 2026-12-31 .* is closed/) });
    await t.http.post(url(`periods/${december.id}/reopen`)).set(users.owner.auth).expect(200);
    expect(await entries()).toBe(before);
    expect(await revaluations()).toBe(revaluationsBefore);
  });

  it('leaves the books consistent after everything above', async () => {
    await expectBooksConsistent();
  });

  it('documents each ledger operation\'s error codes in the OpenAPI document', async () => {
    const doc = (await t.http.get('/docs-json').expect(200)).body;
    const op = doc.paths['/v1/orgs/{orgId}/ledger/journal-entries/batch'].post;
    expect(op['x-error-codes']).toEqual(expect.arrayContaining([
      { code: 'ledger.unbalanced', status: 422, description: expect.any(String) }, { code: 'ledger.period_closed', status: 422, description: expect.any(String) },
      { code: 'ledger.idempotency_conflict', status: 409, description: expect.any(String) }]));
    expect(op.responses['422'].description).toMatch(/`ledger.currency_not_allowed`/);
    const single = doc.paths['/v1/orgs/{orgId}/ledger/journal-entries'].post;
    expect(single['x-error-codes'].map((c: any) => c.code)).toEqual(expect.arrayContaining(['ledger.unbalanced', 'ledger.no_fiscal_year', 'ledger.account_not_postable']));
    for (const path of ['/v1/orgs/{orgId}/ledger/reports/vat', '/v1/orgs/{orgId}/ledger/reports/cash-flow']) expect(doc.paths[path].get['x-error-codes']).toBeDefined();
  });
});
