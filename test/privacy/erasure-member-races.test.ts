import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onPlan, registerUser, verifyEmailOf, type TestUser } from '../support/factories.js';
import { pauseNext, releaseAll, waitsForLockOrAnswers } from '../auth/lock-order.js';
import { personalDataKeyRepository } from '../../src/modules/privacy/personal-data-key.repository.js';

const PASSWORD = 'correct horse battery';

/**
 * An admin's change of a person's row (removing their membership, changing their role, revoking the invitation to their
 * address) while that person erases themselves. The change locks the row, then seals its audit entry under the person's
 * key (core.personal_data_key, an insert that waits for a key whose deletion is uncommitted). The erasure shredded the
 * keys first and ended the memberships (deleted the invitations) after: each waited for the other (40P01, the erasure
 * answered 409 conflict.retry). The erasure now locks those rows before it shreds the keys: the change commits first,
 * under the still-live key, and its entry reads [erased] once the erasure has committed.
 */
describe('erasure next to an admin\'s change of the person\'s membership or invitation', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  type Response = { status: number; body: any };
  const q = async (sql: string, params: unknown[] = []) => (await t.db.admin.query(sql, params)).rows;
  const deadlocks = async () => Number((await q(`SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`))[0].deadlocks);
  const erase = (u: TestUser) => t.http.delete('/v1/me').set(u.auth).send({ password: PASSWORD }).then((r): Response => r);
  const auditOf = async (action: string, entityId: string) =>
    (await t.http.get(`/v1/orgs/${orgId}/audit-logs?action=${action}`).set(owner.auth).expect(200)).body.items.filter((a: any) => a.entityId === entityId);

  beforeAll(async () => {
    t = await createTestApp({ REDIS_URL: '' });
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Races Ltd');
    await onPlan(t, orgId, 'enterprise');
  });
  afterEach(() => {
    releaseAll();
    jest.restoreAllMocks();
  });
  afterAll(async () => {
    await t?.close();
  });

  /** Starts `change`, pauses it at its audit key (its row locked), erases `x` meanwhile, then lets the change go on. */
  async function race(x: TestUser, change: () => Promise<Response>): Promise<{ change: Response; erasure: Response; deadlocks: number }> {
    const d0 = await deadlocks();
    const paused = pauseNext(personalDataKeyRepository, 'getOrCreate');
    const changed = change();
    await paused.reached;
    const erased = erase(x);
    expect(await waitsForLockOrAnswers(t.db.admin, erased, paused)).toBe('waiting');
    paused.release();
    const [c, e] = await Promise.all([changed, erased]);
    return { change: c, erasure: e, deadlocks: (await deadlocks()) - d0 };
  }

  for (const kind of ['removal', 'role change'] as const) {
    it(`a member's ${kind} holding their membership, then their erasure: both answer, no deadlock, the entry reads [erased]`, async () => {
      const x = await registerUser(t, 'member');
      await addMember(t, orgId, x, 'member');
      const r = await race(x, () => (kind === 'removal'
        ? t.http.delete(`/v1/orgs/${orgId}/members/${x.id}`).set(owner.auth)
        : t.http.patch(`/v1/orgs/${orgId}/members/${x.id}`).set(owner.auth).send({ role: 'viewer' })).then((res): Response => res));

      expect([r.erasure.status, r.change.status, r.deadlocks]).toEqual([200, kind === 'removal' ? 204 : 200, 0]);
      // the removal committed first: the erasure left no organization of theirs here; the role change's membership it ended
      expect(r.erasure.body.leftOrganizationIds).toEqual(kind === 'removal' ? [] : [orgId]);
      expect(await q(`SELECT user_id FROM core.memberships WHERE org_id = $1 AND user_id = $2`, [orgId, x.id])).toEqual([]);
      expect(await q(`SELECT id FROM core.personal_data_keys WHERE subject = $1`, [`user:${x.id}`])).toEqual([]);
      const [entry] = await auditOf(kind === 'removal' ? 'membership.removed' : 'membership.role_changed', x.id);
      expect(entry.before).toMatchObject({ userId: x.id, email: '[erased]' });
    });
  }

  it('an invitation\'s revoke holding it, then the invitee\'s erasure: both answer, no deadlock, the entry reads [erased]', async () => {
    const x = await verifyEmailOf(t, await registerUser(t, 'invitee'));
    const invitation = (await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email: x.email, role: 'viewer' }).expect(201)).body;
    const r = await race(x, () => t.http.delete(`/v1/orgs/${orgId}/invitations/${invitation.id}`).set(owner.auth).then((res): Response => res));

    expect([r.erasure.status, r.change.status, r.deadlocks]).toEqual([200, 204, 0]);
    expect(await q(`SELECT id FROM core.invitations WHERE org_id = $1 AND id = $2`, [orgId, invitation.id])).toEqual([]);
    const [entry] = await auditOf('invitation.revoked', invitation.id);
    expect(entry.before).toMatchObject({ email: '[erased]' });
  });
});
