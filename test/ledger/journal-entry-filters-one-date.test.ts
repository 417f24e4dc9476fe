import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerRepository, type EntryFilter } from '../../src/modules/ledger/ledger.repository.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/**
 * The journal-entry list filtered by account or counterparty when one date holds thousands of that account's entries
 * (a batch import; review r7). The list's order and cursor are (entry_date DESC, the entry's seq DESC); the lines'
 * indexes it walked ended in the date and the LINE's seq (or the date alone), so every page inside that date read and
 * sorted the whole date. The lines carry their entry's seq (journal_lines.entry_seq, migration 20270211000100) and the
 * indexes end in (entry_date, entry_seq): a page reads its rows. Same answers: every page across the date boundaries
 * is the database's order and the unfiltered list's, no entry twice, none missing.
 */
describe('journal-entry list: thousands of an account\'s entries on one date', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  const ids: Record<string, string> = {};
  const BIG = '2026-03-10';
  const line = (accountId: string, side: 'debit' | 'credit', amount: string, extra: object = {}) => ({ accountId, [side]: amount, ...extra });
  const url = (path: string) => ledgerUrl(orgId, path);
  const bulk = { counterpartyType: 'other', counterpartyId: 'BULK' };

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'One Date Import Ltd'));
    acc = await startBooks(t, orgId, users.owner);
    const post = async (name: string, body: object) => {
      ids[name] = (await t.http.post(url('journal-entries')).set(users.accountant.auth).send(body).expect(201)).body.id;
    };
    // 3,000 entries of the import account (5100, counterparty BULK): nearly all on one date, a few the day before and
    // after; other accounts' entries after it (the organization's newest entries are not the account's)
    for (let b = 0; b < 3; b++) {
      const entries = Array.from({ length: 1000 }, (_, i) => {
        const n = b * 1000 + i;
        const date = n % 250 === 0 ? '2026-03-09' : n % 250 === 1 ? '2026-03-11' : BIG;
        return { date, memo: `Import ${n}`, lines: [line(acc['5100'], 'debit', '10', bulk), line(acc['1100'], 'credit', '10')] };
      });
      await t.http.post(url('journal-entries/batch')).set(users.accountant.auth).send({ entries }).expect(201);
      // between the batches, single postings: two lines of the account (and of the counterparty) in one entry on the date
      await post(`double${b}`, { date: BIG, memo: `Double ${b}`, lines: [line(acc['5100'], 'debit', '3', bulk), line(acc['5100'], 'debit', '4', bulk), line(acc['1100'], 'credit', '7')] });
    }
    await t.http.post(url('journal-entries/batch')).set(users.accountant.auth).send({ entries: Array.from({ length: 500 }, (_, i) => (
      { date: `2026-04-${String(1 + (i % 28)).padStart(2, '0')}`, memo: `Other ${i}`, lines: [line(acc['5200'], 'debit', '5'), line(acc['2100'], 'credit', '5')] })) }).expect(201);
    // a reversal of one of the account's entries on the date (the reversal posts through the same function)
    ids.reversal = (await t.http.post(url(`journal-entries/${ids.double1}/reverse`)).set(users.accountant.auth).send({}).expect(201)).body.id;
    await t.db.admin.query('ANALYZE finance.journal_entries, finance.journal_lines');
  });
  afterAll(() => t.close());

  /** the pages of the list at `limit` from `cursor` (every page, or `pages` of them), as entry ids */
  const listed = async (query: string, limit: number, cursor?: string, pages = Infinity) => {
    const seen: string[] = [];
    do {
      const res = await t.http.get(url(`journal-entries?limit=${limit}&${query}${cursor ? `&cursor=${cursor}` : ''}`)).set(users.viewer.auth).expect(200);
      seen.push(...res.body.items.map((e: any) => e.id));
      cursor = res.body.nextCursor;
    } while (cursor && --pages > 0);
    return seen;
  };
  /** the entries with a line matching `cond`, newest first, as the database orders them */
  const storedRows = async (cond: string, params: unknown[]) => (await t.db.admin.query(`SELECT e.id, e.entry_date::text AS d, e.seq::text AS s
    FROM finance.journal_entries e WHERE e.org_id = $1
    AND EXISTS (SELECT 1 FROM finance.journal_lines l WHERE l.org_id = e.org_id AND l.entry_id = e.id AND ${cond})
    ORDER BY e.entry_date DESC, e.seq DESC`, [orgId, ...params])).rows as { id: string; d: string; s: string }[];
  const stored = async (cond: string, params: unknown[]) => (await storedRows(cond, params)).map((r) => r.id);

  it('pages through the date and across its boundaries completely, in the unfiltered list\'s order', async () => {
    const account = await stored('l.account_id = $2', [acc['5100']]);
    expect(account).toHaveLength(3004);
    expect(await stored('l.counterparty_id = $2', ['BULK'])).toEqual(account);
    const all = await listed('', 200);
    const inAccount = new Set(account);
    const expected = all.filter((id) => inAccount.has(id));
    expect(expected).toEqual(account);
    const byAccount = await listed(`accountId=${acc['5100']}`, 200);
    expect(byAccount).toEqual(expected);
    expect(new Set(byAccount).size).toBe(byAccount.length);
    expect(await listed('counterpartyId=BULK', 200)).toEqual(expected);
    // pages of 7 across each date boundary (the 12 entries of the day after, and the last 12 of the date into the
    // day before), from the start, and from the cursor of the entry 23 before the boundary
    const rows = await storedRows('l.account_id = $2', [acc['5100']]);
    const cursorAt = (i: number) => Buffer.from(JSON.stringify({ d: rows[i].d, s: rows[i].s })).toString('base64url');
    for (const query of [`accountId=${acc['5100']}`, 'counterpartyId=BULK']) {
      expect(await listed(query, 7, undefined, 6)).toEqual(expected.slice(0, 42));
      expect(await listed(query, 7, cursorAt(2969), 6)).toEqual(expected.slice(2970, 3004));
    }
    expect(await listed(`counterpartyId=BULK&counterpartyType=other&from=${BIG}&to=${BIG}`, 200)).toEqual(expected.slice(12, -12));
    // the newest of the date: the reversal, then the single posting after the last batch
    expect(expected.slice(12, 14)).toEqual([ids.reversal, ids.double2]);
  });

  /** the repository's statement for a filter and cursor, EXPLAIN ANALYZEd as the viewer: rows read from the ledger's tables */
  const readsFor = async (filter: EntryFilter, after: { d: string; s: string }, limit: number) => {
    let captured: { sql: string; values: unknown[] } | undefined;
    const capture = {
      run: async (q: { compile(): { sql: string; parameters: readonly unknown[] } }) => {
        const c = q.compile();
        captured = { sql: c.sql, values: [...c.parameters] };
        return [];
      },
    };
    await ledgerRepository.listEntryIds(capture as any, orgId, { ...filter, after, limit });
    const claims = { sub: users.viewer.id, role: 'authenticated', org_id: orgId };
    const [{ 'QUERY PLAN': [plan] }] = await t.db.asApi(claims, 'authenticated', `EXPLAIN (ANALYZE, FORMAT JSON) ${captured!.sql}`, captured!.values);
    const nodes = (p: any): any[] => [p, ...((p.Plans ?? []) as any[]).flatMap(nodes)];
    const read = (n: any) => (n['Actual Rows'] + (n['Rows Removed by Filter'] ?? 0) + (n['Rows Removed by Index Recheck'] ?? 0)) * n['Actual Loops'];
    const scans = nodes(plan.Plan).filter((n) => n['Relation Name'] === 'journal_lines' || n['Relation Name'] === 'journal_entries');
    // a sort reads every row below it before the first comes out
    return { rows: scans.reduce((sum, n) => sum + read(n), 0), sorts: nodes(plan.Plan).filter((n) => /Sort/.test(n['Node Type'])).length };
  };

  it('reads a page\'s rows inside the date, not the date\'s 2,980 entries', async () => {
    // a cursor in the middle of the date: the entry 1,500th on it
    const { rows: [mid] } = await t.db.admin.query(`SELECT e.seq::text AS seq FROM finance.journal_entries e WHERE e.org_id = $1 AND e.entry_date = $2
      ORDER BY e.seq DESC OFFSET 1500 LIMIT 1`, [orgId, BIG]);
    const after = { d: BIG, s: mid.seq as string };
    for (const filter of [{ accountId: acc['5100'] }, { counterpartyId: 'BULK' }, { counterpartyId: 'BULK', counterpartyType: 'other' as const }]) {
      const { rows, sorts } = await readsFor(filter, after, 50);
      // 51 driving lines, for each its entry and the probe for an earlier matching line of the entry: about 3 × 51
      expect({ filter, sorts, rows: rows <= 4 * 51 ? 'at most 4 × 51' : rows }).toEqual({ filter, sorts: 0, rows: 'at most 4 × 51' });
    }
  });

  it('writes every line with its entry\'s date and seq: the one function that inserts lines, single and batch', async () => {
    const { rows: writers } = await t.db.admin.query(`SELECT p.oid::regprocedure::text AS fn, p.prosrc FROM pg_proc p
      WHERE p.prosrc ~* 'insert\\s+into\\s+finance\\.journal_lines\\M'`);
    expect(writers.map((w) => w.fn.replace(/\(.*$/, ''))).toEqual(['finance.write_entries']);
    const inserts = writers[0].prosrc.match(/insert\s+into\s+finance\.journal_lines\s*\([^)]*\)/gi) as string[];
    expect(inserts).toHaveLength(2);
    for (const cols of inserts) expect(cols).toMatch(/\bentry_date, entry_seq\b/);
    // every line of this database (batches, single postings, the reversal) agrees with its entry
    const { rows: [check] } = await t.db.admin.query(`SELECT count(*)::int AS lines,
        count(*) FILTER (WHERE l.entry_seq IS DISTINCT FROM e.seq OR l.entry_date IS DISTINCT FROM e.entry_date)::int AS disagree
      FROM finance.journal_lines l JOIN finance.journal_entries e ON e.org_id = l.org_id AND e.id = l.entry_id WHERE l.org_id = $1`, [orgId]);
    expect(check).toEqual({ lines: 3 * 2000 + 3 * 3 + 500 * 2 + 3, disagree: 0 });
    const { rows: [col] } = await t.db.admin.query(`SELECT is_nullable FROM information_schema.columns
      WHERE table_schema = 'finance' AND table_name = 'journal_lines' AND column_name = 'entry_seq'`);
    expect(col.is_nullable).toBe('NO');
  });
});
