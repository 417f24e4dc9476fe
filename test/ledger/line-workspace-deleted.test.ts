import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { openTenantTransaction } from '../support/database.js';
import { onEnterprisePlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { balanceDrift, ledgerUrl, startBooks } from './ledger-support.js';

/**
 * A line's workspace deleted while the posting checks it (migration 20270205000100). finance.check_entry holds the
 * workspace it checks (FOR KEY SHARE): a delete in flight is waited for and, once committed, the check finds no
 * workspace, so only that entry is refused (ledger.unknown_workspace) and the others of an independent batch post. The
 * check used to read the row without holding it: it still saw the workspace, the batch's single write then waited for
 * the delete at the lines' foreign key, and its 23503 failed the whole batch. A delete starting after the check waits
 * for the posting and then finds the workspace in use.
 */
describe('ledger: a line\'s workspace deleted while the entry is posted', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  const clients: pg.Client[] = [];
  const rent = (amount: string, workspaceId?: string) => [
    { accountId: acc['5200'], debit: amount, ...(workspaceId ? { workspaceId } : {}) }, { accountId: acc['1100'], credit: amount }];
  const newWorkspace = async (name: string) => (await t.http.post(`/v1/orgs/${orgId}/workspaces`).set(users.owner.auth).send({ name }).expect(201)).body.id as string;
  /** The owner's tenant transaction on a connection of the API login, held open by the test. */
  const tenantTx = () => openTenantTransaction(t.db.apiUrl, { sub: users.owner.id, org_id: orgId }, clients);
  /** Resolves once a backend of the API login other than `holder` waits for a lock (polls pg_stat_activity; no timer). */
  const requestWaits = async (holder: number) => {
    for (;;) {
      const { rows } = await t.db.admin.query(`SELECT 1 FROM pg_stat_activity
        WHERE datname = current_database() AND usename = 'omnizen_api' AND pid <> $1 AND wait_event_type = 'Lock'`, [holder]);
      if (rows.length) return;
    }
  };
  const deleteInFlight = async (workspaceId: string) => {
    const deleting = await tenantTx();
    expect((await deleting.c.query('DELETE FROM core.workspaces WHERE org_id = $1 AND id = $2', [orgId, workspaceId])).rowCount).toBe(1);
    return deleting;
  };
  const linesOn = async (workspaceId: string) => (await t.db.admin.query(
    `SELECT count(*)::int AS n FROM finance.journal_lines WHERE org_id = $1 AND workspace_id = $2`, [orgId, workspaceId])).rows[0].n;
  const workspaceExists = async (workspaceId: string) => (await t.db.admin.query(
    `SELECT count(*)::int AS n FROM core.workspaces WHERE org_id = $1 AND id = $2`, [orgId, workspaceId])).rows[0].n === 1;

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Workspace Race Ltd'));
    await onEnterprisePlan(t, orgId);
    acc = await startBooks(t, orgId, users.owner);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    await t.close();
  });

  it('an independent batch waits for a delete in flight, then rejects only the entry naming that workspace; the others post, audited', async () => {
    const kept = await newWorkspace('Kept');
    const doomed = await newWorkspace('Doomed');
    const deleting = await deleteInFlight(doomed);
    const posting = t.http.post(ledgerUrl(orgId, 'journal-entries/batch?mode=independent')).set(users.accountant.auth).send({ entries: [
      { date: '2026-05-02', memo: 'kept rent', lines: rent('21', kept) },
      { date: '2026-05-02', memo: 'doomed rent', lines: rent('22', doomed) },
      { date: '2026-05-02', memo: 'plain rent', lines: rent('23') },
    ] }).then((r) => r);
    await requestWaits(deleting.pid);
    await deleting.c.query('COMMIT');
    const res = await posting;

    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ mode: 'independent', posted: 2, replayed: 0, rejected: 1 });
    expect(res.body.results).toEqual([
      { index: 0, status: 'posted', id: expect.any(String) },
      { index: 1, status: 'rejected', error: { code: 'ledger.unknown_workspace', message: `line 1: workspace ${doomed} does not exist in this organization` } },
      { index: 2, status: 'posted', id: expect.any(String) },
    ]);
    const posted = [res.body.results[0].id, res.body.results[2].id];
    const { rows } = await t.db.admin.query(`SELECT e.memo, l.workspace_id, l.base_debit::text AS debit FROM finance.journal_entries e
      JOIN finance.journal_lines l ON l.org_id = e.org_id AND l.entry_id = e.id AND l.line_no = 1
      WHERE e.org_id = $1 AND e.entry_date = '2026-05-02' ORDER BY e.memo`, [orgId]);
    expect(rows).toEqual([{ memo: 'kept rent', workspace_id: kept, debit: '21.0000' }, { memo: 'plain rent', workspace_id: null, debit: '23.0000' }]);
    const audit = await t.db.admin.query(`SELECT entity_id FROM core.audit_logs WHERE org_id = $1 AND action = 'ledger.entry_posted' AND entity_id = ANY ($2::text[])`, [orgId, posted]);
    expect(audit.rows.map((r) => r.entity_id).sort()).toEqual([...posted].sort());
    expect(await workspaceExists(doomed)).toBe(false);
    expect(await linesOn(doomed)).toBe(0);
    expect(await balanceDrift(t, orgId)).toEqual([]);
  });

  it('a single posting waits for a delete in flight, then answers 422 ledger.unknown_workspace and writes nothing', async () => {
    const doomed = await newWorkspace('Doomed too');
    const deleting = await deleteInFlight(doomed);
    const posting = t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.accountant.auth)
      .send({ date: '2026-05-03', memo: 'single doomed rent', lines: rent('24', doomed) }).then((r) => r);
    await requestWaits(deleting.pid);
    await deleting.c.query('COMMIT');
    const res = await posting;

    expect(res.status).toBe(422);
    expect(res.body.error).toEqual(expect.objectContaining({
      code: 'ledger.unknown_workspace', message: `line 1: workspace ${doomed} does not exist in this organization` }));
    const { rows: [n] } = await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1 AND entry_date = '2026-05-03'`, [orgId]);
    expect(n.n).toBe(0);
    expect(await workspaceExists(doomed)).toBe(false);
  });

  it('a delete starting after the check waits for the posting, then answers 409 conflict.reference: the workspace stays with its line', async () => {
    const used = await newWorkspace('Used');
    const poster = await tenantTx();
    const { rows: [entry] } = await poster.c.query(`SELECT entry_id FROM finance.post_journal_entry($1::jsonb)`,
      [JSON.stringify({ date: '2026-05-04', memo: 'held rent', lines: rent('25', used) })]);
    const deleting = t.http.delete(`/v1/orgs/${orgId}/workspaces/${used}`).set(users.owner.auth).then((r) => r);
    await requestWaits(poster.pid);
    await poster.c.query('COMMIT');
    const res = await deleting;

    expect(res.status).toBe(409);
    expect(res.body.error).toEqual(expect.objectContaining({ code: 'conflict.reference' }));
    expect(await workspaceExists(used)).toBe(true);
    const { rows } = await t.db.admin.query(`SELECT entry_id, workspace_id FROM finance.journal_lines WHERE org_id = $1 AND workspace_id = $2`, [orgId, used]);
    expect(rows).toEqual([{ entry_id: entry.entry_id, workspace_id: used }]);
    const audit = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'workspace.deleted' AND entity_id = $2`, [orgId, used]);
    expect(audit.rows[0].n).toBe(0);
  });
});
