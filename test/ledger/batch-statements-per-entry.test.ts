import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/**
 * A batch posting runs the same SQL statements however many entries it holds: what the entries share (accounts,
 * periods, keys) is read once, and each entry's checks are plain PL/pgSQL expressions. Every statement a function runs
 * goes through SPI (plan cache, snapshot, executor start and end): the archived-account check ran its year-end
 * exception's subquery for every line, re-planned every time (issue 14; migration 20270211000900 nests it under the
 * archived flag). auto_explain with nested statements lists each statement the posting runs, as a NOTICE here.
 * The archived-account rule itself is unchanged: a client's entry on an archived account is refused (its year-end
 * exception: test/ledger/reopen-archived-account.test.ts).
 */
describe('ledger: statements of a batch posting', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  let acc: Record<string, string>;
  let archivedId: string;
  let n = 0;
  const entry = () => ({ date: '2026-02-03', memo: `e${++n}`, lines: [{ accountId: acc['5200'], debit: '10.00' }, { accountId: acc['1100'], credit: '10.00' }] });

  /** The nested statements auto_explain reports while finance.post_journal_entries posts `entries` as the API would. */
  async function statementsOf(entries: object[]): Promise<string[]> {
    const c = new pg.Client({ connectionString: t.db.url });
    await c.connect();
    try {
      // superuser settings first, then the API login (as bench/posting-profile.ts measures it)
      await c.query(`LOAD 'auto_explain'`);
      await c.query(`SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; SET auto_explain.log_level = 'notice'`);
      await c.query('SET SESSION AUTHORIZATION omnizen_api');
      await c.query('BEGIN');
      await c.query(`SELECT org_id FROM public.begin_request($1, 'authenticated')`, [JSON.stringify({ sub: owner.id, role: 'authenticated', org_id: orgId })]);
      const seen: string[] = [];
      c.on('notice', (m) => seen.push(m.message ?? ''));
      const { rows: [{ results }] } = await c.query(`SELECT finance.post_journal_entries($1::jsonb, $2::jsonb, false) AS results`,
        [JSON.stringify(entries), JSON.stringify({ action: 'ledger.entry_posted', requestId: 'statements', ip: '127.0.0.1' })]);
      await c.query('COMMIT');
      expect(results.map((r: any) => r.status)).toEqual(entries.map(() => 'posted'));
      // the statements run inside the call (the call itself is the last one reported)
      return seen.map((m) => /Query Text: ([^\n]*)/.exec(m)?.[1] ?? m).filter((q) => !q.includes('finance.post_journal_entries($1'));
    } finally {
      await c.end();
    }
  }

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Statements Ltd');
    await onPlan(t, orgId, 'professional');
    acc = await startBooks(t, orgId, owner);
    archivedId = (await t.http.post(ledgerUrl(orgId, 'accounts')).set(owner.auth).send({ code: '5290', name: 'Old rent', type: 'expense', parentId: acc['5000'] }).expect(201)).body.id;
    await t.http.post(ledgerUrl(orgId, `accounts/${archivedId}/archive`)).set(owner.auth).expect(200);
  });
  afterAll(() => t.close());

  it('runs as many statements for 5 entries as for 1 (no statement per line), and posts them all', async () => {
    const one = await statementsOf([entry()]);
    const five = await statementsOf(Array.from({ length: 5 }, entry));
    // the statements are seen (the entries' single write among them); a statement run per entry or per line makes the
    // five entries' list longer (the archived check's, before 20270211000900: 15 statements for one entry, 23 for five)
    expect(one).toContain('WITH ins AS (');
    expect(five.filter((q) => !one.includes(q))).toEqual([]);
    expect(five).toHaveLength(one.length);
    const { rows } = await t.db.admin.query(
      `SELECT count(*)::int AS entries, (SELECT count(*)::int FROM finance.journal_lines WHERE org_id = $1) AS lines,
              (SELECT count(*)::int FROM core.audit_logs WHERE org_id = $1 AND action = 'ledger.entry_posted') AS audited
       FROM finance.journal_entries WHERE org_id = $1`, [orgId]);
    expect(rows[0]).toEqual({ entries: 6, lines: 12, audited: 6 });
  });

  it('still refuses an entry on an archived account (422 ledger.account_not_postable), in a batch and alone', async () => {
    const lines = [{ accountId: archivedId, debit: '5.00' }, { accountId: acc['1100'], credit: '5.00' }];
    const batch = await t.http.post(ledgerUrl(orgId, 'journal-entries/batch?mode=independent')).set(owner.auth)
      .send({ entries: [entry(), { date: '2026-02-04', lines }] }).expect(201);
    expect(batch.body).toMatchObject({ posted: 1, rejected: 1 });
    expect(batch.body.results[1]).toEqual({ index: 1, status: 'rejected', error: { code: 'ledger.account_not_postable', message: 'line 1: account 5290 is archived' } });
    const single = await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(owner.auth).send({ date: '2026-02-04', lines }).expect(422);
    expect(single.body.error).toMatchObject({ code: 'ledger.account_not_postable', message: 'line 1: account 5290 is archived' });
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_lines WHERE org_id = $1 AND account_id = $2`, [orgId, archivedId]);
    expect(rows[0].n).toBe(0);
  });
});
