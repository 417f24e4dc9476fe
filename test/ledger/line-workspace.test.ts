import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/**
 * A line's workspaceId must name a workspace of the organization: finance.check_entry refuses any other with
 * ledger.unknown_workspace (migration 20270203000100), the entry's own rejection. It used to be left to the lines'
 * foreign key, whose 23503 failed a whole independent batch and answered a single posting with conflict.reference.
 */
describe('ledger: the workspace of a line', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  let acc: Record<string, string>;
  let workspaceId: string;
  let otherOrgsWorkspaceId: string;
  const unknown = '00000000-0000-4000-8000-0000000000aa';
  const rent = (amount: string, workspace?: string) => [
    { accountId: acc['5200'], debit: amount, ...(workspace ? { workspaceId: workspace } : {}) }, { accountId: acc['1100'], credit: amount }];
  const entries = async () => (await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1`, [orgId])).rows[0].n;
  const batch = (mode: string, body: object[]) => t.http.post(ledgerUrl(orgId, `journal-entries/batch?mode=${mode}`)).set(owner.auth).send({ entries: body });

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Workspaces Ltd');
    await onEnterprisePlan(t, orgId);
    acc = await startBooks(t, orgId, owner);
    workspaceId = (await t.http.post(`/v1/orgs/${orgId}/workspaces`).set(owner.auth).send({ name: 'Shop' }).expect(201)).body.id;
    const otherOrg = await createOrg(t, owner, 'Other Ltd');
    await onEnterprisePlan(t, otherOrg);
    otherOrgsWorkspaceId = (await t.http.post(`/v1/orgs/${otherOrg}/workspaces`).set(owner.auth).send({ name: 'Elsewhere' }).expect(201)).body.id;
  });
  afterAll(() => t.close());

  it('refuses a single posting to a workspace the organization does not have with 422 ledger.unknown_workspace; posts to its own', async () => {
    for (const ws of [unknown, otherOrgsWorkspaceId]) {
      const r = await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(owner.auth).send({ date: '2026-02-01', lines: rent('10', ws) }).expect(422);
      expect(r.body.error).toEqual(expect.objectContaining({ code: 'ledger.unknown_workspace', message: `line 1: workspace ${ws} does not exist in this organization` }));
    }
    expect(await entries()).toBe(0);
    const ok = await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(owner.auth).send({ date: '2026-02-01', lines: rent('10', workspaceId) }).expect(201);
    expect(ok.body.lines.map((l: any) => l.workspaceId)).toEqual([workspaceId, null]);
    const { rows } = await t.db.admin.query(`SELECT workspace_id FROM finance.journal_lines WHERE org_id = $1 AND entry_id = $2 ORDER BY line_no`, [orgId, ok.body.id]);
    expect(rows.map((r) => r.workspace_id)).toEqual([workspaceId, null]);
  });

  it('rejects only the entry naming an unknown workspace in an independent batch; the others post, audited', async () => {
    const before = await entries();
    const res = await batch('independent', [
      { date: '2026-02-02', memo: 'shop rent', lines: rent('11', workspaceId) },
      { date: '2026-02-02', memo: 'nowhere', lines: rent('12', unknown) },
      { date: '2026-02-02', memo: 'plain rent', lines: rent('13') },
    ]).expect(201);
    expect(res.body).toMatchObject({ mode: 'independent', posted: 2, replayed: 0, rejected: 1 });
    expect(res.body.results).toEqual([
      { index: 0, status: 'posted', id: expect.any(String) },
      { index: 1, status: 'rejected', error: { code: 'ledger.unknown_workspace', message: `line 1: workspace ${unknown} does not exist in this organization` } },
      { index: 2, status: 'posted', id: expect.any(String) },
    ]);
    expect(await entries()).toBe(before + 2);
    const posted = [res.body.results[0].id, res.body.results[2].id];
    const { rows } = await t.db.admin.query(`SELECT e.memo, l.workspace_id FROM finance.journal_entries e
      JOIN finance.journal_lines l ON l.org_id = e.org_id AND l.entry_id = e.id AND l.line_no = 1
      WHERE e.org_id = $1 AND e.id = ANY ($2::uuid[]) ORDER BY e.memo`, [orgId, posted]);
    expect(rows).toEqual([{ memo: 'plain rent', workspace_id: null }, { memo: 'shop rent', workspace_id: workspaceId }]);
    const audit = await t.db.admin.query(`SELECT entity_id FROM core.audit_logs WHERE org_id = $1 AND action = 'ledger.entry_posted' AND entity_id = ANY ($2::text[])`, [orgId, posted]);
    expect(audit.rows.map((r) => r.entity_id).sort()).toEqual([...posted].sort());
  });

  it('fails an all-or-nothing batch with the entry\'s code and index; nothing is posted', async () => {
    const before = await entries();
    const res = await batch('all_or_nothing', [{ date: '2026-02-03', lines: rent('14') }, { date: '2026-02-03', lines: rent('15', unknown) }]).expect(422);
    expect(res.body.error).toMatchObject({
      code: 'ledger.unknown_workspace', message: `entries[1]: line 1: workspace ${unknown} does not exist in this organization`, details: { index: 1 },
    });
    expect(await entries()).toBe(before);
  });

  it('refuses a workspaceId or accountId that is not a UUID before the database, naming the field: 400 for an all-or-nothing batch, its entry\'s rejection in an independent one', async () => {
    const before = await entries();
    for (const line of [{ accountId: acc['5200'], debit: '16', workspaceId: 'not-a-uuid' }, { accountId: 'not-a-uuid', debit: '16' }]) {
      const body = [{ date: '2026-02-04', lines: rent('16') }, { date: '2026-02-04', lines: [line, { accountId: acc['1100'], credit: '16' }] }];
      const field = line.accountId === 'not-a-uuid' ? 'accountId' : 'workspaceId';
      const res = await batch('all_or_nothing', body).expect(400);
      expect(res.body.error).toMatchObject({ code: 'validation_failed', message: expect.stringMatching(new RegExp(`${field} must be a UUID`)) });
      const independent = await batch('independent', body).expect(201);
      expect(independent.body.results[1]).toEqual({ index: 1, status: 'rejected', error: {
        code: 'validation_failed', message: expect.stringMatching(new RegExp(`${field} must be a UUID`)), details: [{ field: `entries[1].lines[0].${field}`, problems: [expect.any(String)] }] } });
    }
    expect(await entries()).toBe(before + 2);
  });
});
