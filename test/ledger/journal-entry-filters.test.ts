import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerRepository, type EntryFilter } from '../../src/modules/ledger/ledger.repository.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/**
 * The journal-entry list filtered by account or counterparty (ledgerRepository.listEntryIds) reads that account's or
 * counterparty's lines (journal_lines_account_idx, journal_lines_counterparty_idx; 20270211000100), not every entry
 * of the organization newest first with a probe of its lines: a page of a rarely used account's entries read all 3,000
 * entries of this organization (0.7–3.8 s for an organization of 400,000). Same answers: each filter's pages equal the
 * entries the database holds for it, an entry with two matching lines listed once, same-day entries in posting order.
 */
describe('journal-entry list: account and counterparty filters read their lines', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  const ids: Record<string, string> = {};
  const line = (accountId: string, side: 'debit' | 'credit', amount: string, extra: object = {}) => ({ accountId, [side]: amount, ...extra });
  const url = (path: string) => ledgerUrl(orgId, path);

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Filter Volume Ltd'));
    acc = await startBooks(t, orgId, users.owner);
    // 3,000 entries between two busy accounts, January to June, without a counterparty
    for (let b = 0; b < 3; b++) {
      const entries = Array.from({ length: 1000 }, (_, i) => {
        const n = b * 1000 + i;
        const date = `2026-0${1 + (n % 6)}-${String(1 + (n % 28)).padStart(2, '0')}`;
        return { date, memo: `Filler ${n}`, lines: [line(acc['5100'], 'debit', '10'), line(acc['1100'], 'credit', '10')] };
      });
      await t.http.post(url('journal-entries/batch')).set(users.accountant.auth).send({ entries }).expect(201);
    }
    const post = async (name: string, body: object) => {
      ids[name] = (await t.http.post(url('journal-entries')).set(users.accountant.auth).send(body).expect(201)).body.id;
    };
    // two lines on the equipment account in one entry
    await post('equipment', { date: '2026-02-10', memo: 'Equipment', lines: [line(acc['1500'], 'debit', '300'), line(acc['1500'], 'debit', '200'), line(acc['1100'], 'credit', '500')] });
    await post('loan', { date: '2026-03-15', memo: 'Equipment on loan', lines: [line(acc['1500'], 'debit', '900'), line(acc['2300'], 'credit', '900', { counterpartyType: 'vendor', counterpartyId: 'V-5' })] });
    // the same customer on two lines of one entry; two entries of one day (listed newest posting first)
    await post('invoice', { date: '2026-05-20', memo: 'Invoice', lines: [
      line(acc['1200'], 'debit', '100', { counterpartyType: 'customer', counterpartyId: 'C-77' }),
      line(acc['1200'], 'debit', '20', { counterpartyType: 'customer', counterpartyId: 'C-77' }), line(acc['4100'], 'credit', '120')] });
    await post('invoice2', { date: '2026-05-20', memo: 'Second invoice', lines: [line(acc['1200'], 'debit', '50', { counterpartyType: 'customer', counterpartyId: 'C-77' }), line(acc['4100'], 'credit', '50')] });
    // the same id for another kind of counterparty
    await post('expense', { date: '2026-06-02', memo: 'Expense claim', lines: [line(acc['5200'], 'debit', '40'), line(acc['2100'], 'credit', '40', { counterpartyType: 'employee', counterpartyId: 'C-77' })] });
    // what autovacuum does after the batches: statistics the planner reads
    await t.db.admin.query('ANALYZE finance.journal_entries, finance.journal_lines');
  });
  afterAll(() => t.close());

  /** every page of the list (limit 1 or 2: the cursor crosses each entry), as entry ids */
  const listed = async (query: string, limit = 1) => {
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const res = await t.http.get(url(`journal-entries?limit=${limit}&${query}${cursor ? `&cursor=${cursor}` : ''}`)).set(users.viewer.auth).expect(200);
      seen.push(...res.body.items.map((e: any) => e.id));
      cursor = res.body.nextCursor;
    } while (cursor);
    return seen;
  };
  /** the entries the database holds for a filter (each line filter on its own), newest first */
  const stored = async (where: string, params: unknown[]) => (await t.db.admin.query(`SELECT e.id FROM finance.journal_entries e WHERE e.org_id = $1 AND ${where}
    ORDER BY e.entry_date DESC, e.seq DESC`, [orgId, ...params])).rows.map((r) => r.id as string);
  const line$ = (cond: string) => `EXISTS (SELECT 1 FROM finance.journal_lines l WHERE l.org_id = e.org_id AND l.entry_id = e.id AND ${cond})`;

  it('lists exactly the entries each filter matches, each once, in date and posting order', async () => {
    expect(await listed(`accountId=${acc['1500']}`)).toEqual([ids.loan, ids.equipment]);
    expect(await stored(line$('l.account_id = $2'), [acc['1500']])).toEqual([ids.loan, ids.equipment]);
    expect(await listed('counterpartyId=C-77')).toEqual([ids.expense, ids.invoice2, ids.invoice]);
    expect(await stored(line$('l.counterparty_id = $2'), ['C-77'])).toEqual([ids.expense, ids.invoice2, ids.invoice]);
    expect(await listed('counterpartyId=C-77&counterpartyType=customer', 2)).toEqual([ids.invoice2, ids.invoice]);
    expect(await listed('counterpartyId=C-77&counterpartyType=vendor')).toEqual([]);
    expect(await listed('counterpartyType=employee')).toEqual([ids.expense]);
    // each filter on its own line; with the range, amount, source and memo filters
    expect(await listed(`accountId=${acc['4100']}&counterpartyId=C-77`)).toEqual([ids.invoice2, ids.invoice]);
    expect(await listed(`accountId=${acc['1500']}&counterpartyType=vendor&counterpartyId=V-5`)).toEqual([ids.loan]);
    expect(await listed(`counterpartyId=V-5&accountId=${acc['1100']}`)).toEqual([]);
    expect(await listed(`accountId=${acc['1500']}&from=2026-02-10&to=2026-03-14`)).toEqual([ids.equipment]);
    expect(await listed('counterpartyId=C-77&from=2026-05-20&to=2026-05-20')).toEqual([ids.invoice2, ids.invoice]);
    expect(await listed('counterpartyId=C-77&minAmount=100&memo=INVOICE')).toEqual([ids.invoice]);
    expect(await listed(`accountId=${acc['1500']}&minAmount=600&source=manual`)).toEqual([ids.loan]);
    // a busy account: every page of 2 over its 3,001 entries is the database's order (spot-checked on the first 40)
    const busy = await stored(line$('l.account_id = $2'), [acc['1100']]);
    expect(busy).toHaveLength(3001);
    const first = (await t.http.get(url(`journal-entries?limit=40&accountId=${acc['1100']}`)).set(users.viewer.auth).expect(200)).body;
    expect(first.items.map((e: any) => e.id)).toEqual(busy.slice(0, 40));
    const next = (await t.http.get(url(`journal-entries?limit=40&accountId=${acc['1100']}&cursor=${first.nextCursor}`)).set(users.viewer.auth).expect(200)).body;
    expect(next.items.map((e: any) => e.id)).toEqual(busy.slice(40, 80));
  });

  /** the repository's statement for a filter, as it is sent (captured), and what running it as the viewer reads */
  const readsFor = async (filter: EntryFilter) => {
    let captured: { sql: string; values: unknown[] } | undefined;
    const capture = {
      run: async (q: { compile(): { sql: string; parameters: readonly unknown[] } }) => {
        const c = q.compile();
        captured = { sql: c.sql, values: [...c.parameters] };
        return [];
      },
      $queryRaw: async (strings: TemplateStringsArray, ...values: unknown[]) => {
        captured = { sql: strings.reduce((sql, part, i) => `${sql}$${i}${part}`), values };
        return [];
      },
    };
    await ledgerRepository.listEntryIds(capture as any, orgId, { ...filter, limit: 50 });
    const claims = { sub: users.viewer.id, role: 'authenticated', org_id: orgId };
    const [{ 'QUERY PLAN': [plan] }] = await t.db.asApi(claims, 'authenticated', `EXPLAIN (ANALYZE, FORMAT JSON) ${captured!.sql}`, captured!.values);
    const nodes = (p: any): any[] => [p, ...((p.Plans ?? []) as any[]).flatMap(nodes)];
    // rows each scan of the entries produced or removed, over all its loops
    return nodes(plan.Plan).filter((n) => n['Relation Name'] === 'journal_entries')
      .reduce((sum, n) => sum + (n['Actual Rows'] + (n['Rows Removed by Filter'] ?? 0)) * n['Actual Loops'], 0);
  };

  it('reads the matching entries only, not the organization\'s other 3,000', async () => {
    expect(await readsFor({ accountId: acc['1500'] })).toBeLessThanOrEqual(3);
    expect(await readsFor({ counterpartyId: 'C-77' })).toBeLessThanOrEqual(4);
    expect(await readsFor({ counterpartyId: 'V-5', counterpartyType: 'vendor', from: '2026-01-01', to: '2026-06-30' })).toBeLessThanOrEqual(1);
    expect(await readsFor({ accountId: acc['2300'], counterpartyId: 'V-5' })).toBeLessThanOrEqual(1);
  });
});
