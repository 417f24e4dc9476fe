import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

// The posting functions run as finance_posting, whose policies compare org_id with finance.posting_org(): the
// organization the function verified once (20261204000200). Whatever form those policies take, the posting role
// reads and writes the verified organization's rows only; these are the policies themselves, without the function.
describe('ledger: the posting role reads and writes the organization the posting verified, no other', () => {
  let t: TestApp;
  let orgA: string;
  let orgB: string;
  let usersB: RoleUsers;

  const READ = ['finance.accounts', 'finance.settings', 'finance.fx_rates', 'finance.tax_codes', 'finance.fiscal_periods',
    'finance.journal_entries', 'finance.journal_lines', 'finance.account_balances', 'finance.period_balances', 'core.workspaces'];
  const WRITTEN = ['finance.journal_entries', 'finance.journal_lines', 'finance.account_balances', 'finance.period_balances'];

  /** one statement as finance_posting (only a superuser can become it) with the posting organization recorded, rolled back */
  const asPostingRole = async (postingOrg: string, sql: string, params: unknown[] = [], claims: object = { role: 'authenticated' }) => {
    const c = await t.db.admin.connect();
    try {
      await c.query('BEGIN');
      await c.query(`SELECT set_config('request.jwt.claims', $1, true)`, [JSON.stringify(claims)]);
      await c.query(`SELECT set_config('finance.posting_org', $1, true)`, [postingOrg]);
      await c.query('SET LOCAL ROLE finance_posting');
      return await c.query(sql, params);
    } finally {
      await c.query('ROLLBACK');
      c.release();
    }
  };
  const rowOf = async (table: string, org: string) =>
    (await t.db.admin.query(`SELECT to_jsonb(r) AS row FROM ${table} r WHERE org_id = $1 LIMIT 1`, [org])).rows[0].row;

  beforeAll(async () => {
    t = await createTestApp();
    const a = await orgWithRoles(t, 'Posting Role A Ltd');
    const b = await orgWithRoles(t, 'Posting Role B Ltd');
    orgA = a.orgId;
    orgB = b.orgId;
    usersB = b.users;
    for (const org of [orgA, orgB]) await t.db.admin.query(`INSERT INTO core.workspaces (org_id, name) VALUES ($1, 'Branch')`, [org]);
    const accA = await startBooks(t, orgA, a.users.owner);
    const accB = await startBooks(t, orgB, usersB.owner);
    for (const [org, acc, users] of [[orgA, accA, a.users], [orgB, accB, usersB]] as const) {
      await t.http.post(ledgerUrl(org, 'journal-entries')).set(users.accountant.auth)
        .send({ date: '2026-03-02', memo: 'rent', lines: [{ accountId: acc['5200'], debit: '700' }, { accountId: acc['1100'], credit: '700' }] })
        .expect(201);
    }
  });
  afterAll(() => t.close());

  it('reads none of another organization\'s rows, and all of its own', async () => {
    for (const table of READ) {
      const count = `SELECT count(*)::int AS n FROM ${table} WHERE org_id = $1`;
      const { rows: [all] } = await t.db.admin.query(count, [orgB]);
      expect([table, (await asPostingRole(orgA, count, [orgB])).rows[0].n]).toEqual([table, 0]);
      expect([table, (await asPostingRole(orgB, count, [orgB])).rows[0].n]).toEqual([table, all.n]);
    }
    // the key-share lock the posting takes on a line's workspace (UPDATE policy) finds no other organization's workspace
    const lock = `SELECT id FROM core.workspaces WHERE org_id = $1 FOR KEY SHARE`;
    expect((await asPostingRole(orgA, lock, [orgB])).rowCount).toBe(0);
    expect((await asPostingRole(orgB, lock, [orgB])).rowCount).toBeGreaterThan(0);
  });

  it('inserts no row of another organization into any table it writes (WITH CHECK)', async () => {
    for (const table of WRITTEN) {
      // an exact copy of one of B's rows: refused by the organization policy while A is the posting organization
      // (PostgreSQL names no policy when the permissive ones refuse); with B it gets past that policy and stops at the
      // duplicate key, or for an entry at journal_entries_posting_caller (this session is not the API's verified one)
      const { rows: [{ cols }] } = await t.db.admin.query( // identity columns take their default
        `SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) AS cols FROM pg_attribute
         WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attidentity = ''`, [table]);
      const insert = `INSERT INTO ${table} (${cols}) SELECT ${cols} FROM jsonb_populate_record(NULL::${table}, $1)`;
      const row = await rowOf(table, orgB);
      await expect(asPostingRole(orgA, insert, [row])).rejects
        .toThrow(`new row violates row-level security policy for table "${table.split('.')[1]}"`);
      await expect(asPostingRole(orgB, insert, [row])).rejects
        .toThrow(/duplicate key value|row-level security policy "journal_entries_posting_caller"/);
    }
    const claims = { sub: usersB.accountant.id, role: 'authenticated', org_id: orgB };
    const audit = `INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type)
                   VALUES ($1, $2, 'user', 'ledger.entry_posted', 'journal_entry')`;
    await expect(asPostingRole(orgA, audit, [orgB, usersB.accountant.id], claims)).rejects
      .toThrow('new row violates row-level security policy for table "audit_logs"');
    await expect(asPostingRole(orgB, audit, [orgB, usersB.accountant.id], claims)).resolves.toMatchObject({ rowCount: 1 });
  });

  it('updates no balance of another organization, and moves none of its own into another (USING and WITH CHECK)', async () => {
    for (const table of ['finance.account_balances', 'finance.period_balances']) {
      const before = (await t.db.admin.query(`SELECT to_jsonb(r) AS row FROM ${table} r WHERE org_id = $1 ORDER BY 1`, [orgB])).rows;
      expect(before.length).toBeGreaterThan(0);
      const touch = `UPDATE ${table} SET line_count = line_count + 1 WHERE org_id = $1`;
      expect([table, (await asPostingRole(orgA, touch, [orgB])).rowCount]).toEqual([table, 0]);
      expect([table, (await asPostingRole(orgB, touch, [orgB])).rowCount]).toEqual([table, before.length]); // (rolled back)
      await expect(asPostingRole(orgA, `UPDATE ${table} SET org_id = $2 WHERE org_id = $1`, [orgA, orgB])).rejects
        .toThrow(`new row violates row-level security policy for table "${table.split('.')[1]}"`);
      const after = (await t.db.admin.query(`SELECT to_jsonb(r) AS row FROM ${table} r WHERE org_id = $1 ORDER BY 1`, [orgB])).rows;
      expect(after).toEqual(before);
    }
  });
});
