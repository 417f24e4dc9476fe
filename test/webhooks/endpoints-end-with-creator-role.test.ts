import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { testKeys } from '../integrations/keys.js';
import { waitsForLockOrAnswers } from '../auth/lock-order.js';

/**
 * A webhook endpoint ends with its creator's right to create it (review r2; migration 20270211000400), as the
 * creator's API keys and pending invitations do: removed, left, demoted below admin, erased or deleted, the enabled
 * endpoints they created in the organization are disabled in the same transaction, audited; an owner's stay.
 */
describe('webhooks: an endpoint ends with its creator\'s role', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env, REDIS_URL: '' });
    owner = await registerUser(t, 'hook-owner');
  });
  afterAll(() => t.close());

  const teamOrg = async (name: string) => {
    const orgId = await createOrg(t, owner, name);
    await onPlan(t, orgId, 'professional');
    return orgId;
  };
  const admin = async (orgId: string, name: string) => {
    const user = await registerUser(t, name);
    await addMember(t, orgId, user, 'admin');
    return user;
  };
  const endpointOf = async (who: TestUser, orgId: string, path = 'exfil') => {
    const res = await t.http.post(`/v1/orgs/${orgId}/webhooks/endpoints`).set(who.auth).send({ url: `https://hooks.example.com/${path}` }).expect(201);
    expect(res.body).toMatchObject({ enabled: true, eventTypes: null, createdBy: who.id, secret: expect.stringMatching(/^whsec_/) });
    return res.body as { id: string };
  };
  /** The endpoint's row and the audit rows of its disabling. */
  const stateOf = async (id: string) => (await t.db.admin.query(
    `SELECT e.enabled, e.disabled_reason, e.disabled_at IS NOT NULL AS disabled_at, e.created_by,
            coalesce(jsonb_agg(jsonb_build_object('actor', a.actor_id, 'principal', a.principal_type, 'before', a.before, 'after', a.after))
              FILTER (WHERE a.id IS NOT NULL), '[]') AS audit
     FROM core.webhook_endpoints e
     LEFT JOIN core.audit_logs a ON a.org_id = e.org_id AND a.action = 'webhooks.endpoint_disabled' AND a.entity_type = 'webhook_endpoint' AND a.entity_id = e.id::text
     WHERE e.id = $1 GROUP BY e.enabled, e.disabled_reason, e.disabled_at, e.created_by`, [id])).rows[0];
  const disabled = (reason: string, createdBy: string, actor: string | null, principal = 'user') => ({
    enabled: false, disabled_reason: reason, disabled_at: true, created_by: createdBy,
    audit: [{ actor, principal, before: { enabled: true }, after: { enabled: false, reason, createdBy } }],
  });
  const live = (createdBy: string) => ({ enabled: true, disabled_reason: null, disabled_at: false, created_by: createdBy, audit: [] });

  it('disables the endpoints of a removed admin in the removal\'s transaction, audited; the owner\'s stay; an owner enables it again', async () => {
    const orgId = await teamOrg('Hook Removal Co');
    const removed = await admin(orgId, 'hook-removed');
    const ep = await endpointOf(removed, orgId);
    const ownerEp = await endpointOf(owner, orgId, 'owner');

    await t.http.delete(`/v1/orgs/${orgId}/members/${removed.id}`).set(owner.auth).expect(204);
    expect(await stateOf(ep.id)).toEqual(disabled('creator_removed', removed.id, owner.id));
    expect(await stateOf(ownerEp.id)).toEqual(live(owner.id));
    const got = await t.http.get(`/v1/orgs/${orgId}/webhooks/endpoints/${ep.id}`).set(owner.auth).expect(200);
    expect(got.body).toMatchObject({ enabled: false, disabledReason: 'creator_removed', disabledAt: expect.any(String), createdBy: removed.id });

    // a remaining owner takes it over: a new secret at once (the former admin knew the old one), then enabled again
    const rotated = await t.http.post(`/v1/orgs/${orgId}/webhooks/endpoints/${ep.id}/rotate-secret`).set(owner.auth).send({ overlapSeconds: 0 }).expect(201);
    expect(rotated.body).toMatchObject({ secret: expect.stringMatching(/^whsec_/), previousSecretExpiresAt: null });
    const enabled = await t.http.patch(`/v1/orgs/${orgId}/webhooks/endpoints/${ep.id}`).set(owner.auth).send({ enabled: true }).expect(200);
    expect(enabled.body).toMatchObject({ enabled: true, disabledReason: null, disabledAt: null, createdBy: removed.id });
    expect((await stateOf(ep.id))).toMatchObject({ enabled: true, disabled_reason: null, created_by: removed.id });
  });

  it('disables those of an admin demoted below admin; a promotion and owner to admin leave endpoints alone', async () => {
    const orgId = await teamOrg('Hook Demotion Co');
    const [demoted, promoted] = [await admin(orgId, 'hook-demoted'), await admin(orgId, 'hook-promoted')];
    const [demotedEp, promotedEp, ownerEp] = [await endpointOf(demoted, orgId), await endpointOf(promoted, orgId, 'p'), await endpointOf(owner, orgId, 'o')];

    await t.http.patch(`/v1/orgs/${orgId}/members/${demoted.id}`).set(owner.auth).send({ role: 'accountant' }).expect(200);
    expect(await stateOf(demotedEp.id)).toEqual(disabled('creator_demoted', demoted.id, owner.id));

    await t.http.patch(`/v1/orgs/${orgId}/members/${promoted.id}`).set(owner.auth).send({ role: 'owner' }).expect(200);
    await t.http.patch(`/v1/orgs/${orgId}/members/${owner.id}`).set(promoted.auth).send({ role: 'admin' }).expect(200);
    expect(await stateOf(promotedEp.id)).toEqual(live(promoted.id));
    expect(await stateOf(ownerEp.id)).toEqual(live(owner.id));
    await t.http.patch(`/v1/orgs/${orgId}/members/${owner.id}`).set(promoted.auth).send({ role: 'owner' }).expect(200);
  });

  it('disables them when the admin leaves, is demoted by an operator\'s SQL, is erased, or their user row is deleted', async () => {
    const orgId = await teamOrg('Hook Every Path Co');
    const [leaving, sqlDemoted, erased, deleted] = [
      await admin(orgId, 'hook-leaving'), await admin(orgId, 'hook-sql'), await admin(orgId, 'hook-erased'), await admin(orgId, 'hook-deleted')];
    const [leavingEp, sqlEp, erasedEp, deletedEp] = [
      await endpointOf(leaving, orgId, 'l'), await endpointOf(sqlDemoted, orgId, 's'), await endpointOf(erased, orgId, 'e'), await endpointOf(deleted, orgId, 'd')];

    await t.http.delete(`/v1/orgs/${orgId}/members/me`).set(leaving.auth).expect(204);
    await t.db.admin.query(`UPDATE core.memberships SET role = 'viewer' WHERE org_id = $1 AND user_id = $2`, [orgId, sqlDemoted.id]);
    await t.http.delete('/v1/me').set(erased.auth).send({}).expect(200);

    expect(await stateOf(leavingEp.id)).toEqual(disabled('creator_left', leaving.id, leaving.id));
    expect(await stateOf(sqlEp.id)).toEqual(disabled('creator_demoted', sqlDemoted.id, null, 'system'));
    expect(await stateOf(erasedEp.id)).toEqual(disabled('creator_erased', erased.id, null, 'system'));

    // another app of the database deletes the user row: the endpoint is disabled while created_by still names them,
    // then created_by is NULL (ON DELETE SET NULL)
    // their personal organization (owner_user_id has no ON DELETE) changes hands first, as in test/api-keys/api-keys.test.ts
    const heir = randomUUID();
    await t.db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [heir, `${heir}@example.test`]);
    await t.db.admin.query('UPDATE core.organizations SET owner_user_id = $2 WHERE id = $1', [deleted.personalOrgId, heir]);
    await t.db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'owner')`, [deleted.personalOrgId, heir]);
    await t.db.admin.query('DELETE FROM core."User" WHERE id = $1', [deleted.id]);
    expect(await stateOf(deletedEp.id)).toEqual({
      ...disabled('creator_deleted', deleted.id, null, 'system'), created_by: null,
    });
  });

  it('refuses an endpoint whose creator is demoted while it is being created (403, no endpoint): the membership is read again, locked', async () => {
    const orgId = await teamOrg('Hook Race Co');
    const demoted = await admin(orgId, 'hook-racing');
    const c = await t.db.admin.connect();
    try {
      // the demotion holds the membership row; the creation began with the role admin, and waits for it
      await c.query('BEGIN');
      await c.query(`UPDATE core.memberships SET role = 'accountant' WHERE org_id = $1 AND user_id = $2`, [orgId, demoted.id]);
      const creating = t.http.post(`/v1/orgs/${orgId}/webhooks/endpoints`).set(demoted.auth).send({ url: 'https://hooks.example.com/race' }).then((r) => r);
      expect(await waitsForLockOrAnswers(t.db.admin, creating)).toBe('waiting');
      await c.query('COMMIT');
      const res = await creating;
      expect([res.status, res.body.error]).toEqual([403, { code: 'forbidden', message: 'only an owner or admin of the organization creates webhook endpoints' }]);
    } finally {
      await c.query('ROLLBACK').catch(() => undefined);
      c.release();
    }
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.webhook_endpoints WHERE org_id = $1', [orgId])).rows).toEqual([{ n: 0 }]);
  });

  it('migration 20270211000400 names the creators the audit log names and disables the endpoints of those no longer admin; unknown creators are left alone', async () => {
    const orgId = await teamOrg('Hook Backfill Co');
    const gone = await admin(orgId, 'hook-gone');
    const [goneEp, ownerEp] = [await endpointOf(gone, orgId, 'g'), await endpointOf(owner, orgId, 'o')];
    // as before the migration: no creator recorded, and the admin demoted with nothing to disable
    await t.db.admin.query('UPDATE core.webhook_endpoints SET created_by = NULL WHERE org_id = $1', [orgId]);
    await t.db.admin.query(`UPDATE core.memberships SET role = 'member' WHERE org_id = $1 AND user_id = $2`, [orgId, gone.id]);
    // an endpoint whose creation the audit log does not name
    const { rows: [unknown] } = await t.db.admin.query(
      `INSERT INTO core.webhook_endpoints (org_id, url, secret) VALUES ($1, 'https://hooks.example.com/unknown', '{}'::jsonb) RETURNING id`, [orgId]);
    expect(await stateOf(goneEp.id)).toMatchObject({ enabled: true, created_by: null, audit: [] });

    const sql = readFileSync(new URL('../../prisma/migrations/20270211000400_webhook_endpoints_end_with_creator_role/migration.sql', import.meta.url), 'utf8');
    const backfill = sql.slice(sql.indexOf('-- backfill:'));
    await t.db.admin.query(backfill);
    await t.db.admin.query(backfill); // applied again: nothing more
    expect(await stateOf(goneEp.id)).toEqual(disabled('creator_no_longer_admin', gone.id, 'migration:20270211000400', 'system'));
    expect(await stateOf(ownerEp.id)).toEqual(live(owner.id));
    expect(await stateOf(unknown.id)).toEqual({ enabled: true, disabled_reason: null, disabled_at: false, created_by: null, audit: [] });
  });
});
