import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/**
 * Closing a period and the postings in flight (migration 20270101000100): a posting holds its organization's
 * posting lock shared until it commits, and changing a period's status takes it exclusively. So a close waits for
 * the postings in flight, and a posting that starts while a close is in flight waits for it and then sees the
 * period closed: no entry ever commits into a period that a committed close had already closed.
 */
describe('ledger: closing a period waits for postings in flight', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let periodId: (start: string) => Promise<string>;
  const clients: pg.Client[] = [];

  /** A connection as the API login with an open tenant transaction of `userId` (what begin_request sets up). */
  const tenantTx = async (userId: string) => {
    const c = new pg.Client({ connectionString: t.db.apiUrl });
    await c.connect();
    clients.push(c);
    await c.query('BEGIN');
    await c.query(`SELECT set_config('request.jwt.claims', $1, true), set_config('role', 'authenticated', true)`,
      [JSON.stringify({ sub: userId, role: 'authenticated', org_id: orgId })]);
    const { rows: [{ pid }] } = await c.query('SELECT pg_backend_pid() AS pid');
    return { c, pid: pid as number };
  };
  const post = (c: pg.Client, date: string, amount: string) => c.query(`SELECT entry_id FROM finance.post_journal_entry($1::jsonb)`,
    [JSON.stringify({ date, memo: 'in flight', lines: [{ accountId: acc['5200'], debit: amount }, { accountId: acc['1100'], credit: amount }] })]);
  const close = (c: pg.Client, id: string) => c.query(`UPDATE finance.fiscal_periods SET status = 'closed', closed_at = now() WHERE org_id = $1 AND id = $2`, [orgId, id]);
  /** Resolves once backend `pid` waits for a lock (polls pg_stat_activity; no timer). */
  const waitsForLock = async (pid: number) => {
    for (;;) {
      const { rows: [row] } = await t.db.admin.query(`SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1`, [pid]);
      if (row?.wait_event_type === 'Lock') return;
    }
  };
  const entriesOn = async (date: string) => (await t.db.admin.query(
    `SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1 AND entry_date = $2`, [orgId, date])).rows[0].n;

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Close Race Ltd'));
    acc = await startBooks(t, orgId, users.owner);
    const periods = await t.http.get(ledgerUrl(orgId, 'periods')).set(users.viewer.auth).expect(200);
    periodId = async (start) => periods.body.find((p: any) => p.startDate === start).id;
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    await t.close();
  });

  it('a close waits until a posting in flight in that period has committed; the entry stays in the closed period', async () => {
    const poster = await tenantTx(users.accountant.id);
    await post(poster.c, '2026-04-10', '10');
    const closer = await tenantTx(users.owner.id);
    const closing = close(closer.c, await periodId('2026-04-01'));
    await waitsForLock(closer.pid);
    await poster.c.query('COMMIT');
    await closing;
    await closer.c.query('COMMIT');
    expect(await entriesOn('2026-04-10')).toBe(1);
    const { rows: [p] } = await t.db.admin.query(`SELECT status FROM finance.fiscal_periods WHERE id = $1`, [await periodId('2026-04-01')]);
    expect(p.status).toBe('closed');
  });

  it('a posting that starts while a close is in flight waits for it and is then refused as ledger.period_closed', async () => {
    const closer = await tenantTx(users.owner.id);
    await close(closer.c, await periodId('2026-05-01'));
    const poster = await tenantTx(users.accountant.id);
    const posting = post(poster.c, '2026-05-10', '20').then(() => undefined, (err) => err);
    await waitsForLock(poster.pid);
    await closer.c.query('COMMIT');
    expect(await posting).toMatchObject({ code: 'P0001', hint: 'ledger.period_closed' });
    await poster.c.query('ROLLBACK');
    expect(await entriesOn('2026-05-10')).toBe(0);
  });

  it('postings of the organization do not wait for one another, and a reopen lets them in again', async () => {
    const a = await tenantTx(users.accountant.id);
    const b = await tenantTx(users.owner.id);
    await post(a.c, '2026-06-10', '1');
    await post(b.c, '2026-06-11', '2'); // both hold the lock shared at once
    await Promise.all([a.c.query('COMMIT'), b.c.query('COMMIT')]);
    expect(await entriesOn('2026-06-10') + await entriesOn('2026-06-11')).toBe(2);
    await t.http.post(ledgerUrl(orgId, `periods/${await periodId('2026-05-01')}/reopen`)).set(users.owner.auth).expect(200);
    const c = await tenantTx(users.accountant.id);
    await post(c.c, '2026-05-12', '3');
    await c.c.query('COMMIT');
    expect(await entriesOn('2026-05-12')).toBe(1);
  });
});
