import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Decimal } from 'decimal.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerRepository, type GeneralLedgerPosition } from '../../src/modules/ledger/ledger.repository.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/**
 * The general ledger of an account with a thousand lines on one date (a batch import). Its order is (entry_date, the
 * entry's seq, line_no): the lines of an entry together, the entries of a date in posting order, read from
 * journal_lines_account_idx (org_id, account_id, entry_date, entry_seq, line_no), the one index of an account's lines
 * the journal list's account filter also walks (20270211000100). It ordered by the LINE's own seq before: concurrent
 * postings draw line seqs out of their entries' order (and interleave one batch's lines with another's); here the
 * first batch's lines are given higher seqs than the later batches' (the identity restarted), which the old order
 * listed after them.
 */
describe('general ledger: a thousand of an account\'s lines on one date', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  const BIG = '2026-03-10';
  const url = (path: string) => ledgerUrl(orgId, path);

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'One Date Ledger Ltd'));
    acc = await startBooks(t, orgId, users.owner);
    const restartLineSeq = (at: number) => t.db.admin.query(`ALTER TABLE finance.journal_lines ALTER COLUMN seq RESTART WITH ${at}`);
    // 3 x 400 entries of 5100: nearly all on one date, a few the day before and after; every 50th with two lines of
    // 5100 (line 1 and line 3); the first batch's lines drew seqs above the later batches'
    await restartLineSeq(1_000_000);
    for (let b = 0; b < 3; b++) {
      const entries = Array.from({ length: 400 }, (_, i) => {
        const n = b * 400 + i;
        const date = n % 200 === 0 ? '2026-03-09' : n % 200 === 1 ? '2026-03-11' : BIG;
        const lines = n % 50 === 7
          ? [{ accountId: acc['5100'], debit: '3' }, { accountId: acc['1100'], credit: '7' }, { accountId: acc['5100'], debit: '4' }]
          : [{ accountId: acc['5100'], debit: String(1 + (n % 9)) }, { accountId: acc['1100'], credit: String(1 + (n % 9)) }];
        return { date, memo: `Import ${n}`, lines };
      });
      await t.http.post(url('journal-entries/batch')).set(users.accountant.auth).send({ entries }).expect(201);
      if (b === 0) await restartLineSeq(1);
    }
    // another account's lines on the date (not in 5100's ledger)
    await t.http.post(url('journal-entries/batch')).set(users.accountant.auth).send({ entries: Array.from({ length: 100 }, (_, i) => (
      { date: BIG, memo: `Other ${i}`, lines: [{ accountId: acc['5200'], debit: '5' }, { accountId: acc['2100'], credit: '5' }] })) }).expect(201);
    await t.db.admin.query('ANALYZE finance.journal_entries, finance.journal_lines');
  });
  afterAll(() => t.close());

  /** 5100's lines as the database holds them, in (date, the entry's seq, line_no) order, with the running balance */
  const stored = async (from?: string, to?: string) => {
    const { rows } = await t.db.admin.query(`SELECT l.entry_id, l.line_no, l.entry_date::text AS date, e.seq::text AS entry_seq,
        (l.base_debit - l.base_credit)::text AS net
      FROM finance.journal_lines l JOIN finance.journal_entries e ON e.org_id = l.org_id AND e.id = l.entry_id
      WHERE l.org_id = $1 AND l.account_id = $2 AND ($3::date IS NULL OR l.entry_date >= $3) AND ($4::date IS NULL OR l.entry_date <= $4)
      ORDER BY l.entry_date, e.seq, l.line_no`, [orgId, acc['5100'], from ?? null, to ?? null]);
    let running = new Decimal(0);
    return rows.map((r) => {
      running = running.plus(r.net);
      return { key: `${r.entry_id}:${r.line_no}`, date: r.date as string, entrySeq: r.entry_seq as string, lineNo: r.line_no as number, runningBalance: running.toFixed(2) };
    });
  };
  /** the pages of 5100's general ledger at `limit` from `cursor` (every page, or `pages` of them) */
  const paged = async (query: string, limit: number, cursor?: string, pages = Infinity) => {
    const seen: { key: string; runningBalance: string }[] = [];
    do {
      const res = await t.http.get(url(`accounts/${acc['5100']}/ledger?limit=${limit}${query}${cursor ? `&cursor=${cursor}` : ''}`)).set(users.viewer.auth).expect(200);
      seen.push(...res.body.items.map((i: any) => ({ key: `${i.entryId}:${i.lineNo}`, runningBalance: i.runningBalance })));
      cursor = res.body.nextCursor;
    } while (cursor && --pages > 0);
    return seen;
  };
  const cursorAt = (row: { date: string; entrySeq: string; lineNo: number; runningBalance: string }) =>
    Buffer.from(JSON.stringify({ d: row.date, e: row.entrySeq, n: String(row.lineNo), r: row.runningBalance })).toString('base64url');

  it('lists an entry\'s lines together and a date\'s entries in posting order, across pages and date boundaries', async () => {
    const all = await stored();
    expect(all).toHaveLength(1200 + 24);
    expect(all.filter((r) => r.date === BIG)).toHaveLength(1200 + 24 - 12);
    const expected = all.map(({ key, runningBalance }) => ({ key, runningBalance }));
    // the old order (the line's own seq) is another one here: the first batch's lines after the others'
    const { rows: bySeq } = await t.db.admin.query(`SELECT l.entry_id || ':' || l.line_no AS key FROM finance.journal_lines l
      WHERE l.org_id = $1 AND l.account_id = $2 ORDER BY l.entry_date, l.seq`, [orgId, acc['5100']]);
    expect(bySeq.map((r) => r.key)).not.toEqual(expected.map((r) => r.key));

    expect(await paged('', 200)).toEqual(expected);
    // pages of 7 from the start (across the day before into the date), and from the line 10 before the date's end
    expect(await paged('', 7, undefined, 6)).toEqual(expected.slice(0, 42));
    const lastOfDate = all.map((r) => r.date).lastIndexOf(BIG);
    expect(await paged('', 7, cursorAt(all[lastOfDate - 10]))).toEqual(expected.slice(lastOfDate - 9));
    // a range of the date alone: its opening balance is the day before's lines, its pages the date's lines
    const inDate = await stored(BIG, BIG);
    const first = await t.http.get(url(`accounts/${acc['5100']}/ledger?from=${BIG}&to=${BIG}&limit=3`)).set(users.viewer.auth).expect(200);
    const before = all.filter((r) => r.date < BIG).at(-1)!.runningBalance;
    expect(first.body.openingBalance).toBe(before);
    const withOpening = inDate.map((r) => ({ key: r.key, runningBalance: new Decimal(r.runningBalance).plus(before).toFixed(2) }));
    expect(await paged(`&from=${BIG}&to=${BIG}`, 97)).toEqual(withOpening);
    // the CSV export: the same lines in the same order
    const csv = await t.http.get(url(`accounts/${acc['5100']}/ledger?format=csv`)).set(users.viewer.auth).expect(200);
    const csvRows = csv.text.trimEnd().split('\r\n').slice(2).map((row) => row.split(','));
    expect(csvRows.map((c) => ({ key: `${c[1]}:${c[2]}`, runningBalance: c[10] }))).toEqual(expected);
  });

  /** the repository's statement for a page, EXPLAIN ANALYZEd as the viewer: rows read from the ledger's tables, sorts, indexes */
  const plan = async (from: string | null, to: string | null, after: GeneralLedgerPosition | undefined, limit: number) => {
    let captured: { sql: string; values: unknown[] } | undefined;
    const capture = {
      run: async (q: { compile(): { sql: string; parameters: readonly unknown[] } }) => {
        const c = q.compile();
        captured = { sql: c.sql, values: [...c.parameters] };
        return [];
      },
    };
    await ledgerRepository.generalLedger(capture as any, orgId, acc['5100'], from, to, after, limit);
    const claims = { sub: users.viewer.id, role: 'authenticated', org_id: orgId };
    const [{ 'QUERY PLAN': [p] }] = await t.db.asApi(claims, 'authenticated', `EXPLAIN (ANALYZE, FORMAT JSON) ${captured!.sql}`, captured!.values);
    const nodes = (n: any): any[] => [n, ...((n.Plans ?? []) as any[]).flatMap(nodes)];
    const read = (n: any) => (n['Actual Rows'] + (n['Rows Removed by Filter'] ?? 0) + (n['Rows Removed by Index Recheck'] ?? 0)) * n['Actual Loops'];
    const scans = nodes(p.Plan).filter((n) => n['Relation Name'] === 'journal_lines' || n['Relation Name'] === 'journal_entries');
    return {
      rows: scans.reduce((sum, n) => sum + read(n), 0),
      sorts: nodes(p.Plan).filter((n) => /Sort/.test(n['Node Type'])).length,
      lineIndexes: scans.filter((n) => n['Relation Name'] === 'journal_lines').map((n) => n['Index Name']),
    };
  };

  it('reads a page\'s lines inside the date from its one index, not the date\'s 1,200 lines, and sorts nothing', async () => {
    const all = await stored();
    const mid = all[600];
    expect(mid.date).toBe(BIG);
    const after = { d: mid.date, e: mid.entrySeq, n: String(mid.lineNo) };
    for (const [from, to] of [[null, null], [BIG, BIG], ['2026-01-01', '2026-12-31']] as const) {
      const { rows, sorts, lineIndexes } = await plan(from, to, after, 50);
      // 51 lines and, for each, its entry
      expect({ from, sorts, lineIndexes, rows: rows <= 2 * 51 ? 'at most 2 × 51' : rows })
        .toEqual({ from, sorts: 0, lineIndexes: ['journal_lines_account_idx'], rows: 'at most 2 × 51' });
    }
    // the first page too
    expect((await plan(BIG, null, undefined, 50)).rows).toBeLessThanOrEqual(2 * 51);
  });

  it('has one index of all an account\'s lines, in the general ledger\'s order', async () => {
    // (journal_lines_base_only_idx, partial, holds only the lines with no amount in their own currency)
    const { rows } = await t.db.admin.query(`SELECT indexname, indexdef FROM pg_indexes
      WHERE schemaname = 'finance' AND tablename = 'journal_lines' AND indexdef ~ '\\(org_id, account_id\\M' AND indexdef !~ ' WHERE '
      ORDER BY indexname`);
    expect(rows.map((r) => [r.indexname, r.indexdef.replace(/^.* USING btree /, '')])).toEqual([
      ['journal_lines_account_idx', '(org_id, account_id, entry_date, entry_seq, line_no)']]);
  });

  it('answers a cursor of the order before (date, line seq) 400 pagination.cursor, asking to start again', async () => {
    const [line] = (await t.db.admin.query(`SELECT entry_date::text AS d, seq::text AS s FROM finance.journal_lines
      WHERE org_id = $1 AND account_id = $2 AND entry_date = $3 ORDER BY seq LIMIT 1`, [orgId, acc['5100'], BIG])).rows;
    const old = Buffer.from(JSON.stringify({ d: line.d, s: line.s, r: '10.00' })).toString('base64url');
    const res = await t.http.get(url(`accounts/${acc['5100']}/ledger?cursor=${old}`)).set(users.viewer.auth).expect(400);
    expect(res.body.error.code).toBe('pagination.cursor');
    expect(res.body.error.message).toMatch(/start again without a cursor/);
    // a forged line number beyond a smallint: a cursor like any other, no error
    const forged = Buffer.from(JSON.stringify({ d: BIG, e: '1', n: '99999999999', r: '0' })).toString('base64url');
    const page = await t.http.get(url(`accounts/${acc['5100']}/ledger?limit=2&cursor=${forged}`)).set(users.viewer.auth).expect(200);
    expect(page.body.items).toHaveLength(2);
  });
});
