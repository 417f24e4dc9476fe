import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { onEnterprisePlan, orgWithRoles, registerUser, uniqueEmail, type OrgWithRoles } from '../support/factories.js';
import { until } from '../support/throwaway-servers.js';

/**
 * Concurrent changes of one row run one after the other, each reading what it replaces under the row's lock: a repeat
 * finds its change made, and what each audits (and announces) as before is what the one before it left. Each test holds
 * the row from an admin connection so the requests queue in the order they are sent, then lets them go.
 */
describe('concurrent changes of one organization row: each reads what it replaces', () => {
  let t: TestApp;
  let a: OrgWithRoles;

  beforeAll(async () => {
    t = await createTestApp();
    a = await orgWithRoles(t, 'Concurrent Co');
    await onEnterprisePlan(t, a.orgId);
  });
  afterAll(() => t.close());

  const lockWaiters = (n: number) => until(`${n} backend(s) wait for a lock`, async () => (await t.db.admin.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).rows[0].n >= n);

  /** Holds `lockSql`'s row, sends each request once the one before it waits, then lets them all go; their answers in order. */
  async function queued(lockSql: string, params: unknown[], requests: (() => PromiseLike<{ status: number; body: any }>)[]) {
    const holder: pg.PoolClient = await t.db.admin.connect();
    try {
      await holder.query('BEGIN');
      expect((await holder.query(lockSql, params)).rowCount).toBe(1);
      const sent: Promise<{ status: number; body: any }>[] = [];
      for (const [i, send] of requests.entries()) {
        sent.push(Promise.resolve(send()));
        await lockWaiters(i + 1);
      }
      await holder.query('COMMIT');
      return await Promise.all(sent);
    } finally {
      holder.release();
    }
  }

  const audits = async (action: string, entityId: string) => (await t.db.admin.query(
    'SELECT before, after FROM core.audit_logs WHERE org_id = $1 AND action = $2 AND entity_id = $3 ORDER BY id', [a.orgId, action, entityId])).rows;

  it('the same role change three times at once: changed once, audited and announced once, with the role it replaced', async () => {
    const member = await registerUser(t, 'promoted');
    await t.db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'viewer')`, [a.orgId, member.id]);
    const change = () => t.http.patch(`/v1/orgs/${a.orgId}/members/${member.id}`).set(a.users.admin.auth).send({ role: 'accountant' });
    const answers = await queued('SELECT 1 FROM core.memberships WHERE org_id = $1 AND user_id = $2 FOR UPDATE', [a.orgId, member.id], [change, change, change]);

    expect(answers.map((r) => [r.status, r.body.role])).toEqual([[200, 'accountant'], [200, 'accountant'], [200, 'accountant']]);
    expect((await t.db.admin.query('SELECT role FROM core.memberships WHERE org_id = $1 AND user_id = $2', [a.orgId, member.id])).rows).toEqual([{ role: 'accountant' }]);
    const changed = await audits('membership.role_changed', member.id);
    expect(changed.map((r) => [r.before.role, r.after.role])).toEqual([['viewer', 'accountant']]);
    const events = (await t.db.admin.query(`SELECT payload->'payload' AS p FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event'
      AND payload->>'type' = 'member.role_changed' AND payload->'payload'->>'userId' = $2`, [a.orgId, member.id])).rows;
    expect(events).toEqual([{ p: { userId: member.id, previousRole: 'viewer', role: 'accountant', changedBy: a.users.admin.id } }]);
  });

  it('an invitation revoked twice at once: the second answers that it is already revoked (not "already pending")', async () => {
    const created = await t.http.post(`/v1/orgs/${a.orgId}/invitations`).set(a.users.owner.auth).send({ email: uniqueEmail('invitee'), role: 'viewer' }).expect(201);
    const id = created.body.id as string;
    const revoke = () => t.http.delete(`/v1/orgs/${a.orgId}/invitations/${id}`).set(a.users.admin.auth);
    const [first, second] = await queued('SELECT 1 FROM core.invitations WHERE org_id = $1 AND id = $2 FOR UPDATE', [a.orgId, id], [revoke, revoke]);

    expect(first.status).toBe(204);
    expect(second.status).toBe(409);
    expect(second.body.error).toEqual({ code: 'invitation.not_pending', message: `invitation ${id} is already revoked` });
    expect((await t.db.admin.query('SELECT revoked_at IS NOT NULL AS revoked FROM core.invitations WHERE id = $1', [id])).rows).toEqual([{ revoked: true }]);
    expect(await audits('invitation.revoked', id)).toHaveLength(1);
  });

  it('two renames of the organization at once: the second audits the first one\'s name as its before', async () => {
    const original = (await t.http.get(`/v1/orgs/${a.orgId}`).set(a.users.admin.auth).expect(200)).body.name;
    const rename = (name: string) => () => t.http.patch(`/v1/orgs/${a.orgId}`).set(a.users.admin.auth).send({ name });
    const answers = await queued('SELECT 1 FROM core.organizations WHERE id = $1 FOR NO KEY UPDATE', [a.orgId], [rename('Renamed First'), rename('Renamed Second')]);

    expect(answers.map((r) => [r.status, r.body.name])).toEqual([[200, 'Renamed First'], [200, 'Renamed Second']]);
    expect((await t.db.admin.query('SELECT name FROM core.organizations WHERE id = $1', [a.orgId])).rows).toEqual([{ name: 'Renamed Second' }]);
    expect((await audits('organization.updated', a.orgId)).map((r) => [r.before.name, r.after.name]))
      .toEqual([[original, 'Renamed First'], ['Renamed First', 'Renamed Second']]);
  });
});
