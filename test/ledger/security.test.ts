import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, orgWithRoles, registerUser, type TestUser, type RoleUsers } from '../support/factories.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

describe('ledger: posted entries are immutable; organizations are apart', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let entryId: string;
  let alice: TestUser;
  let aliceOrg: string;
  let aliceAcc: Record<string, string>;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Target Ltd'));
    acc = await startBooks(t, orgId, users.owner);
    const e = await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.owner.auth)
      .send({ date: '2026-03-03', memo: 'posted', lines: [{ accountId: acc['1100'], debit: '50' }, { accountId: acc['3100'], credit: '50' }] }).expect(201);
    entryId = e.body.id;
    const tax = await t.http.post(ledgerUrl(orgId, 'tax-codes')).set(users.owner.auth)
      .send({ code: 'VAT20', name: 'VAT', rate: '20', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201);
    const years = await t.http.get(ledgerUrl(orgId, 'fiscal-years')).set(users.owner.auth).expect(200);
    Object.assign(ids, { account: acc['1100'], entry: entryId, tax: tax.body.id, year: years.body[0].id, period: years.body[0].periods[0].id });
    alice = await registerUser(t, 'alice');
    aliceOrg = await createOrg(t, alice, 'Alice Ltd');
    aliceAcc = await startBooks(t, aliceOrg, alice);
    await t.http.post(ledgerUrl(aliceOrg, 'journal-entries')).set(alice.auth)
      .send({ date: '2026-03-03', lines: [{ accountId: aliceAcc['1100'], debit: '7' }, { accountId: aliceAcc['3100'], credit: '7' }] }).expect(201);
  });
  afterAll(() => t.close());

  const tamper = [
    `UPDATE finance.journal_entries SET memo = 'changed'`,
    `UPDATE finance.journal_lines SET debit = debit + 1`,
    `DELETE FROM finance.journal_lines`,
    `DELETE FROM finance.journal_entries`,
    `UPDATE finance.account_balances SET debit = 0`,
    `UPDATE finance.period_balances SET debit = 0`,
  ];

  it('refuses UPDATE and DELETE of posted entries, lines and balances to every role through the API login', async () => {
    for (const role of ['owner', 'admin', 'accountant', 'member', 'viewer'] as const) {
      const claims = { sub: users[role].id, role: 'authenticated', org_id: orgId };
      for (const sql of tamper) await expect(t.db.as(claims, 'authenticated', sql)).rejects.toThrow(/permission denied/);
      await expect(t.db.as(claims, 'authenticated', `INSERT INTO finance.journal_lines (org_id, entry_id, line_no, entry_date, period_id, account_id, currency, debit, rate)
        SELECT org_id, entry_id, 9, entry_date, period_id, account_id, currency, 1, 1 FROM finance.journal_lines LIMIT 1`)).rejects.toThrow(/permission denied/);
    }
    const service = { role: 'service_role', service: 'jobs', org_id: orgId };
    for (const sql of tamper) await expect(t.db.as(service, 'authenticated', sql)).rejects.toThrow(/permission denied/);
  });

  it('refuses them to service_role and to the owner connection itself (triggers), TRUNCATE included', async () => {
    const c = await t.db.admin.connect();
    try {
      for (const sql of tamper.slice(0, 4)) {
        await c.query('BEGIN');
        await c.query('SET LOCAL ROLE service_role');
        await expect(c.query(sql)).rejects.toThrow(/permission denied/);
        await c.query('ROLLBACK');
      }
      for (const sql of [...tamper.slice(0, 4), 'TRUNCATE finance.journal_lines', 'TRUNCATE finance.journal_entries CASCADE', 'DELETE FROM finance.account_balances']) {
        await expect(c.query(sql)).rejects.toThrow(/append-only|not allowed/);
      }
    } finally {
      c.release();
    }
    const { rows } = await t.db.admin.query('SELECT e.memo, sum(l.debit)::text AS dr FROM finance.journal_entries e JOIN finance.journal_lines l ON l.org_id = e.org_id AND l.entry_id = e.id WHERE e.id = $1 GROUP BY e.memo', [entryId]);
    expect(rows).toEqual([{ memo: 'posted', dr: '50.0000' }]);
  });

  const routes = (): [string, string, object?][] => [
    ['post', 'books', { baseCurrency: 'EUR', fiscalYearStart: '2027-01-01' }],
    ['get', 'settings'], ['patch', 'settings', { roundingAccountId: ids.account }], ['get', 'currencies'],
    ['get', 'accounts'], ['post', 'accounts', { code: '9999', name: 'x', type: 'asset' }], ['get', `accounts/${ids.account}`],
    ['patch', `accounts/${ids.account}`, { name: 'hacked' }], ['post', `accounts/${ids.account}/archive`],
    ['get', `accounts/${ids.account}/balance`], ['get', `accounts/${ids.account}/ledger`],
    ['get', 'fx-rates'], ['post', 'fx-rates', { currency: 'USD', date: '2026-03-01', rate: '0.9' }],
    ['post', 'fx-rates/import', { rates: [{ currency: 'USD', date: '2026-03-01', rate: '0.9' }] }],
    ['get', 'tax-codes'], ['post', 'tax-codes', { code: 'X', name: 'x', rate: '1', salesAccountId: ids.account, purchaseAccountId: ids.account }],
    ['post', `tax-codes/${ids.tax}/calculate`, { amount: '10' }],
    ['get', 'fiscal-years'], ['post', 'fiscal-years', { startDate: '2027-01-01' }], ['post', `fiscal-years/${ids.year}/close`], ['post', `fiscal-years/${ids.year}/reopen`],
    ['get', 'periods'], ['post', `periods/${ids.period}/close`], ['post', `periods/${ids.period}/reopen`],
    ['get', 'journal-entries'], ['post', 'journal-entries', { date: '2026-03-04', lines: [{ accountId: ids.account, debit: '1' }, { accountId: ids.account, credit: '1' }] }],
    ['get', `journal-entries/${ids.entry}`], ['post', `journal-entries/${ids.entry}/reverse`, {}],
    ['post', 'fx-revaluations', { date: '2026-03-31' }],
    ['get', 'reports/trial-balance'], ['get', 'reports/profit-and-loss?from=2026-01-01&to=2026-12-31'], ['get', 'reports/balance-sheet?asOf=2026-12-31'],
  ];
  const call = (method: string, url: string, body?: object) => {
    const req = (t.http as any)[method](url);
    return body ? req.send(body) : req;
  };

  it('answers 404 to a member of another organization on every ledger route, and changes nothing', async () => {
    for (const [method, path, body] of routes()) {
      const res = await call(method, ledgerUrl(orgId, path), body).set(alice.auth);
      expect([method, path, res.status]).toEqual([method, path, 404]);
    }
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1`, [orgId]);
    expect(rows[0].n).toBe(1);
    const name = await t.db.admin.query(`SELECT name FROM finance.accounts WHERE org_id = $1 AND id = $2`, [orgId, ids.account]);
    expect(name.rows[0].name).toBe('Cash at bank');
  });

  it('does not find another organization\'s rows through one\'s own organization, nor post to its accounts', async () => {
    await t.http.get(ledgerUrl(aliceOrg, `accounts/${ids.account}`)).set(alice.auth).expect(404);
    await t.http.get(ledgerUrl(aliceOrg, `accounts/${ids.account}/balance`)).set(alice.auth).expect(404);
    await t.http.get(ledgerUrl(aliceOrg, `journal-entries/${ids.entry}`)).set(alice.auth).expect(404);
    await t.http.post(ledgerUrl(aliceOrg, `journal-entries/${ids.entry}/reverse`)).set(alice.auth).send({}).expect(404);
    await t.http.post(ledgerUrl(aliceOrg, `periods/${ids.period}/close`)).set(alice.auth).expect(404);
    await t.http.post(ledgerUrl(aliceOrg, `tax-codes/${ids.tax}/calculate`)).set(alice.auth).send({ amount: '1' }).expect(404);
    const r = await t.http.post(ledgerUrl(aliceOrg, 'journal-entries')).set(alice.auth)
      .send({ date: '2026-03-04', lines: [{ accountId: ids.account, debit: '1' }, { accountId: aliceAcc['3100'], credit: '1' }] }).expect(422);
    expect(r.body.error.message).toMatch(/does not exist in this organization/);
    const mine = await t.db.as({ sub: alice.id, role: 'authenticated', org_id: aliceOrg }, 'authenticated', 'SELECT DISTINCT org_id FROM semantic.v_gl_fact');
    expect(mine).toEqual([{ org_id: aliceOrg }]);
    const theirs = await t.db.as({ sub: alice.id, role: 'authenticated', org_id: orgId }, 'authenticated', 'SELECT count(*)::int AS n FROM semantic.v_gl_fact');
    expect(theirs).toEqual([{ n: 0 }]);
    const tables = await t.db.as({ sub: alice.id, role: 'authenticated', org_id: aliceOrg }, 'authenticated',
      `SELECT (SELECT count(*) FROM finance.journal_lines WHERE org_id = $1)::int AS l, (SELECT count(*) FROM finance.account_balances WHERE org_id = $1)::int AS b`, [orgId]);
    expect(tables).toEqual([{ l: 0, b: 0 }]);
  });

  it('reads an entry through finance.entry_json (SECURITY DEFINER) only inside the caller\'s organization', async () => {
    const json = (claims: Record<string, unknown>, role = 'authenticated') =>
      t.db.as(claims, role, 'SELECT finance.entry_json($1::uuid) AS e', [ids.entry]).then(([r]) => r.e);
    expect((await json({ sub: users.viewer.id, role: 'authenticated', org_id: orgId })).lines).toHaveLength(2);
    expect(await json({ sub: alice.id, role: 'authenticated', org_id: aliceOrg })).toBeNull(); // her own organization
    expect(await json({ sub: alice.id, role: 'authenticated', org_id: orgId })).toBeNull(); // claiming one she is not in
    await expect(json({ role: 'anon' }, 'anon')).rejects.toThrow(/permission denied/);
  });

  it('lets a viewer read but not mutate (403) and answers 401 to anonymous callers', async () => {
    for (const [method, path, body] of routes()) {
      const anon = await call(method, ledgerUrl(orgId, path), body);
      expect([method, path, anon.status]).toEqual([method, path, 401]);
      const res = await call(method, ledgerUrl(orgId, path), body).set(users.viewer.auth);
      const mutation = method !== 'get' && !path.endsWith('/calculate');
      expect([method, path, res.status]).toEqual([method, path, mutation ? 403 : 200]);
    }
  });

  it('scopes semantic.v_gl_fact to the organization of an analyst login', async () => {
    const c = await t.db.admin.connect();
    try {
      await c.query('BEGIN');
      // this connection's login stands in for an analyst login mapped to the target organization
      await c.query('INSERT INTO core.analyst_logins (login, org_id) VALUES (session_user, $1)', [orgId]);
      await c.query('SET LOCAL ROLE omnizen_analyst');
      const { rows } = await c.query('SELECT org_id, account_code, amount::text FROM semantic.v_gl_fact ORDER BY line_no');
      expect(rows).toEqual([{ org_id: orgId, account_code: '1100', amount: '50.0000' }, { org_id: orgId, account_code: '3100', amount: '-50.0000' }]);
      await expect(c.query('UPDATE finance.journal_lines SET debit = 0')).rejects.toThrow(/permission denied/);
    } finally {
      await c.query('ROLLBACK');
      c.release();
    }
  });

  it('lets member read the books too', async () => {
    const viewer2 = await registerUser(t, 'member2');
    await addMember(t, orgId, viewer2, 'member');
    const res = await t.http.get(ledgerUrl(orgId, 'reports/trial-balance')).set(viewer2.auth).expect(200);
    expect(res.body).toMatchObject({ totalDebit: '50.00', balanced: true });
  });
});
