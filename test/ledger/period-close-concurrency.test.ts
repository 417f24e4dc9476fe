import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { advisoryLockWaiters, openTenantTransaction } from '../support/database.js';
import { orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/**
 * Closing a period and the postings in flight (migration 20270101000100): a posting holds its organization's
 * posting lock shared until it commits, and changing a period's status takes it exclusively. So a close waits for
 * the postings in flight, and a posting that starts while a close is in flight waits for it and then sees the
 * period closed: no entry ever commits into a period that a committed close had already closed.
 * Also two postings in flight with one idempotency key: the second writes nothing (migration 20270120000100's
 * one-entry statement keeps the batch statement's conflict handling).
 */
describe('ledger: postings in flight (a period close waits for them; one idempotency key posts once)', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let periodId: (start: string) => Promise<string>;
  const clients: pg.Client[] = [];

  /** A connection as the API login with an open tenant transaction of `userId` (what begin_request sets up). */
  const tenantTx = (userId: string) => openTenantTransaction(t.db.apiUrl, { sub: userId, org_id: orgId }, clients);
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

  it('a posting whose idempotency key a posting in flight commits first writes nothing and answers with that entry (or 409)', async () => {
    const keyed = (c: pg.Client, key: string, amount: string) => c.query<{ entry_id: string; replayed: boolean; entry: any }>(
      `SELECT entry_id, replayed, entry FROM finance.post_journal_entry($1::jsonb)`,
      [JSON.stringify({ date: '2026-07-10', memo: 'keyed', idempotencyKey: key, lines: [{ accountId: acc['5200'], debit: amount }, { accountId: acc['1100'], credit: amount }] })]);
    const written = async (key: string) => (await t.db.admin.query(`
      SELECT (SELECT count(*) FROM finance.journal_entries WHERE org_id = $1 AND idempotency_key = $2)::int AS entries,
             (SELECT count(*) FROM finance.journal_lines l JOIN finance.journal_entries e ON e.org_id = l.org_id AND e.id = l.entry_id
              WHERE e.org_id = $1 AND e.idempotency_key = $2)::int AS lines,
             (SELECT count(*) FROM core.audit_logs a JOIN finance.journal_entries e ON a.entity_id = e.id::text
              WHERE a.org_id = $1 AND e.org_id = $1 AND e.idempotency_key = $2)::int AS audit,
             -- lines and audit rows of an entry that was not written (neither has a foreign key to the entries)
             (SELECT count(*) FROM finance.journal_lines l WHERE l.org_id = $1
              AND NOT EXISTS (SELECT 1 FROM finance.journal_entries e WHERE e.org_id = l.org_id AND e.id = l.entry_id))::int AS stray_lines,
             (SELECT count(*) FROM core.audit_logs a WHERE a.org_id = $1 AND a.entity_type = 'journal_entry'
              AND NOT EXISTS (SELECT 1 FROM finance.journal_entries e WHERE e.org_id = a.org_id AND e.id::text = a.entity_id))::int AS stray_audit`,
      [orgId, key])).rows[0];
    const balance5200 = async () => (await t.db.admin.query(
      `SELECT coalesce(sum(debit), 0)::text AS debit FROM finance.account_balances WHERE org_id = $1 AND account_id = $2`, [orgId, acc['5200']])).rows[0].debit;
    const before = await balance5200();

    for (const [key, second, outcome] of [['race-same', '30', 'replayed'], ['race-other', '31', 'conflict']] as const) {
      const a = await tenantTx(users.accountant.id);
      const first = await keyed(a.c, key, '30');
      const b = await tenantTx(users.owner.id);
      // the key is not visible to b yet: b checks its entry, then waits on a's index entry for the key
      const posting = keyed(b.c, key, second).then((r) => r.rows[0], (err) => err);
      await waitsForLock(b.pid);
      await a.c.query('COMMIT');
      const answer = await posting;
      if (outcome === 'replayed') {
        expect(answer).toMatchObject({ entry_id: first.rows[0].entry_id, replayed: true, entry: { id: first.rows[0].entry_id, idempotencyKey: key } });
        await b.c.query('COMMIT');
      } else {
        expect(answer).toMatchObject({ code: '23505', hint: 'ledger.idempotency_conflict' });
        await b.c.query('ROLLBACK');
      }
      // one entry, its two lines and its one audit row: nothing of b's
      expect(await written(key)).toEqual({ entries: 1, lines: 2, audit: 1, stray_lines: 0, stray_audit: 0 });
    }
    expect(Number(await balance5200()) - Number(before)).toBe(60); // 30 per key, once each
  });

  it('archiving an account (or making it a group) waits for a posting in flight to it, then sees its balance', async () => {
    const account = async (code: string) => (await t.http.post(ledgerUrl(orgId, 'accounts')).set(users.owner.auth)
      .send({ code, name: `In flight ${code}`, type: 'expense' }).expect(201)).body.id as string;
    const archived = async (id: string) => (await t.db.admin.query(`SELECT archived_at, is_group FROM finance.accounts WHERE org_id = $1 AND id = $2`, [orgId, id])).rows[0];
    for (const [code, change] of [['5910', 'archive'], ['5911', 'group']] as const) {
      const id = await account(code);
      const poster = await tenantTx(users.accountant.id);
      await poster.c.query(`SELECT finance.post_journal_entry($1::jsonb)`, [JSON.stringify({ date: '2026-08-10', memo: 'in flight',
        lines: [{ accountId: id, debit: '15' }, { accountId: acc['1100'], credit: '15' }] })]);
      const changing = (change === 'archive'
        ? t.http.post(ledgerUrl(orgId, `accounts/${id}/archive`)).set(users.owner.auth)
        : t.http.patch(ledgerUrl(orgId, `accounts/${id}`)).set(users.owner.auth).send({ isGroup: true })).then((r) => r);
      let answered = false;
      void changing.then(() => { answered = true; });
      // until the change waits for the posting lock (or, not waiting, has answered already)
      while (!answered) {
        const { rows } = await t.db.admin.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event IN ('transactionid', 'tuple')`);
        if (rows.length) break;
      }
      await poster.c.query('COMMIT');
      const res = await changing;
      expect(res.status).toBe(422);
      expect(res.body.error.message).toMatch(change === 'archive' ? /^account 5910 has a balance/ : /account 5911 has postings: it cannot become a group account/);
      expect(await archived(id)).toEqual({ archived_at: null, is_group: false });
    }
  });

  it('a batch reads its accounts after the posting lock: an archive committed while it waited is seen (account_not_postable)', async () => {
    const id = (await t.http.post(ledgerUrl(orgId, 'accounts')).set(users.owner.auth).send({ code: '5912', name: 'Archived meanwhile', type: 'expense' }).expect(201)).body.id;
    // an archive in flight, as the API runs one: the posting lock exclusively, then the account's update
    const archiver = await tenantTx(users.owner.id);
    await archiver.c.query(`SELECT core.xact_lock(('finance.posting:' || $1::uuid::text))`, [orgId]);
    await archiver.c.query(`UPDATE finance.accounts SET archived_at = now() WHERE org_id = $1 AND id = $2`, [orgId, id]);
    const poster = await tenantTx(users.accountant.id);
    const posting = poster.c.query(`SELECT finance.post_journal_entries($1::jsonb, NULL, true) AS results`, [JSON.stringify([{ date: '2026-08-11', memo: 'batch',
      lines: [{ accountId: id, debit: '16' }, { accountId: acc['1100'], credit: '16' }] }])]);
    await waitsForLock(poster.pid);
    await archiver.c.query('COMMIT');
    const { rows: [{ results }] } = await posting;
    await poster.c.query('COMMIT');
    expect(results.map((r: any) => [r.status, r.error?.code])).toEqual([['rejected', 'ledger.account_not_postable']]);
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_lines WHERE org_id = $1 AND account_id = $2`, [orgId, id])).rows[0].n).toBe(0);
  });

  it('a year-end close waits for a posting in flight before it reads the year: that posting is closed out too', async () => {
    // an organization of its own: this close ends its whole year
    const other = await orgWithRoles(t, 'Year Close Race Ltd');
    const accounts = await startBooks(t, other.orgId, other.users.owner);
    const { c } = await openTenantTransaction(t.db.apiUrl, { sub: other.users.accountant.id, org_id: other.orgId }, clients);
    await c.query(`SELECT finance.post_journal_entry($1::jsonb)`, [JSON.stringify({ date: '2026-12-10', memo: 'in flight',
      lines: [{ accountId: accounts['5200'], debit: '10' }, { accountId: accounts['1100'], credit: '10' }] })]);
    const [year] = (await t.http.get(ledgerUrl(other.orgId, 'fiscal-years')).set(other.users.owner.auth).expect(200)).body;
    // the organization id in capitals: the same organization, so the same posting lock
    const closing = t.http.post(ledgerUrl(other.orgId.toUpperCase(), `fiscal-years/${year.id}/close`)).set(other.users.owner.auth).then((r) => r);
    // the close's backend waits for the posting lock (a row lock; the posting holds it shared until it commits)
    await advisoryLockWaiters(t.db.admin);
    await c.query('COMMIT');
    const res = await closing;
    expect(res.status).toBe(200);
    expect(res.body.closingEntry.lines.find((l: any) => l.accountId === accounts['5200'])).toMatchObject({ credit: '10.00' });
    // nothing of the year's expenses is left in it
    const balance = await t.http.get(ledgerUrl(other.orgId, `accounts/${accounts['5200']}/balance?asOf=2026-12-31`)).set(other.users.owner.auth).expect(200);
    expect(balance.body.baseBalance).toBe('0.00');
  });
});
