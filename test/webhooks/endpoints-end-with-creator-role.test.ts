import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { testKeys } from '../integrations/keys.js';
import { waitsForLockOrAnswers } from '../auth/lock-order.js';

/**
 * A webhook endpoint ends with the admin role of the people answerable for it (review r2; migration 20270211000400),
 * as their API keys and pending invitations do: who chose its URL (urlSetBy) and who received its current signing
 * secret (secretSetBy) (review r4: one configuredBy, replaced by the last enabler or rotator, let the person who chose
 * the URL go on receiving). Removed, left, demoted below admin, erased or deleted, the enabled endpoints either names
 * in the organization are disabled in the same transaction, audited; an owner's stay.
 */
const ONLY_ADMINS = 'only an owner or admin of the organization creates a webhook endpoint, changes its URL, enables it or rotates its secret';

describe('webhooks: an endpoint ends with the role of whoever configured it', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env, REDIS_URL: '' });
    owner = await registerUser(t, 'hook-owner');
  });
  afterAll(() => t.close());
  const service = () => ({
    Authorization: `Bearer ${jwt.sign({ role: 'service_role', service: 'hook-ops' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 600 })}`,
  });

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
    expect(res.body).toMatchObject({ enabled: true, eventTypes: null, urlSetBy: who.id, secretSetBy: who.id, secret: expect.stringMatching(/^whsec_/) });
    return res.body as { id: string };
  };
  /** The endpoint's row and the audit rows of its disabling. */
  const stateOf = async (id: string) => (await t.db.admin.query(
    `SELECT e.enabled, e.disabled_reason, e.disabled_at IS NOT NULL AS disabled_at, e.url_set_by, e.secret_set_by,
            coalesce(jsonb_agg(jsonb_build_object('actor', a.actor_id, 'principal', a.principal_type, 'before', a.before, 'after', a.after) ORDER BY a.id)
              FILTER (WHERE a.id IS NOT NULL), '[]') AS audit
     FROM core.webhook_endpoints e
     LEFT JOIN core.audit_logs a ON a.org_id = e.org_id AND a.action = 'webhooks.endpoint_disabled' AND a.entity_type = 'webhook_endpoint' AND a.entity_id = e.id::text
     WHERE e.id = $1 GROUP BY e.enabled, e.disabled_reason, e.disabled_at, e.url_set_by, e.secret_set_by`, [id])).rows[0];
  /** `setBy`: the URL's person, and the secret's when another */
  const disabled = (reason: string, setBy: string | [string, string], actor: string | null, principal = 'user') => {
    const [urlSetBy, secretSetBy] = typeof setBy === 'string' ? [setBy, setBy] : setBy;
    return {
      enabled: false, disabled_reason: reason, disabled_at: true, url_set_by: urlSetBy, secret_set_by: secretSetBy,
      audit: [{ actor, principal, before: { enabled: true }, after: { enabled: false, reason, urlSetBy, secretSetBy } }],
    };
  };
  const live = (urlSetBy: string | null, secretSetBy = urlSetBy) => ({
    enabled: true, disabled_reason: null, disabled_at: false, url_set_by: urlSetBy, secret_set_by: secretSetBy, audit: [],
  });
  const endpointUrl = (orgId: string, id: string, action = '') => `/v1/orgs/${orgId}/webhooks/endpoints/${id}${action}`;

  it('disables the endpoints of a removed admin in the removal\'s transaction, audited; the owner\'s stay; an owner enables it again and answers for it', async () => {
    const orgId = await teamOrg('Hook Removal Co');
    const removed = await admin(orgId, 'hook-removed');
    const ep = await endpointOf(removed, orgId);
    const ownerEp = await endpointOf(owner, orgId, 'owner');

    await t.http.delete(`/v1/orgs/${orgId}/members/${removed.id}`).set(owner.auth).expect(204);
    expect(await stateOf(ep.id)).toEqual(disabled('configurer_removed', removed.id, owner.id));
    expect(await stateOf(ownerEp.id)).toEqual(live(owner.id));
    const got = await t.http.get(`/v1/orgs/${orgId}/webhooks/endpoints/${ep.id}`).set(owner.auth).expect(200);
    expect(got.body).toMatchObject({ enabled: false, disabledReason: 'configurer_removed', disabledAt: expect.any(String), urlSetBy: removed.id, secretSetBy: removed.id });

    // a remaining owner takes it over: a new secret at once (the former admin knew the old one), then enabled again;
    // the owner now answers for it
    const rotated = await t.http.post(`/v1/orgs/${orgId}/webhooks/endpoints/${ep.id}/rotate-secret`).set(owner.auth).send({ overlapSeconds: 0 }).expect(201);
    expect(rotated.body).toMatchObject({ secret: expect.stringMatching(/^whsec_/), previousSecretExpiresAt: null, urlSetBy: removed.id, secretSetBy: owner.id });
    const enabled = await t.http.patch(`/v1/orgs/${orgId}/webhooks/endpoints/${ep.id}`).set(owner.auth).send({ enabled: true }).expect(200);
    expect(enabled.body).toMatchObject({ enabled: true, disabledReason: null, disabledAt: null, urlSetBy: owner.id, secretSetBy: owner.id });
    expect((await stateOf(ep.id))).toMatchObject({ enabled: true, disabled_reason: null, url_set_by: owner.id, secret_set_by: owner.id });
  });

  it('disables those of an admin demoted below admin; a promotion and owner to admin leave endpoints alone', async () => {
    const orgId = await teamOrg('Hook Demotion Co');
    const [demoted, promoted] = [await admin(orgId, 'hook-demoted'), await admin(orgId, 'hook-promoted')];
    const [demotedEp, promotedEp, ownerEp] = [await endpointOf(demoted, orgId), await endpointOf(promoted, orgId, 'p'), await endpointOf(owner, orgId, 'o')];

    await t.http.patch(`/v1/orgs/${orgId}/members/${demoted.id}`).set(owner.auth).send({ role: 'accountant' }).expect(200);
    expect(await stateOf(demotedEp.id)).toEqual(disabled('configurer_demoted', demoted.id, owner.id));

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

    expect(await stateOf(leavingEp.id)).toEqual(disabled('configurer_left', leaving.id, leaving.id));
    expect(await stateOf(sqlEp.id)).toEqual(disabled('configurer_demoted', sqlDemoted.id, null, 'system'));
    expect(await stateOf(erasedEp.id)).toEqual(disabled('configurer_erased', erased.id, null, 'system'));

    // another app of the database deletes the user row: the endpoint is disabled while the columns still name them,
    // then they are NULL (ON DELETE SET NULL)
    // their personal organization (owner_user_id has no ON DELETE) changes hands first, as in test/api-keys/api-keys.test.ts
    const heir = randomUUID();
    await t.db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [heir, `${heir}@example.test`]);
    await t.db.admin.query('UPDATE core.organizations SET owner_user_id = $2 WHERE id = $1', [deleted.personalOrgId, heir]);
    await t.db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'owner')`, [deleted.personalOrgId, heir]);
    await t.db.admin.query('DELETE FROM core."User" WHERE id = $1', [deleted.id]);
    expect(await stateOf(deletedEp.id)).toEqual({
      ...disabled('configurer_deleted', deleted.id, null, 'system'), url_set_by: null, secret_set_by: null,
    });
  });

  /** The endpoint's previous secret (whether it has one, until when, whose) and the audit rows of its overlap's end. */
  const previousOf = async (id: string) => (await t.db.admin.query(
    `SELECT e.previous_secret IS NOT NULL AS previous_secret, e.previous_secret_expires_at, e.previous_secret_set_by,
            coalesce(jsonb_agg(jsonb_build_object('actor', a.actor_id, 'principal', a.principal_type, 'before', a.before, 'after', a.after) ORDER BY a.id)
              FILTER (WHERE a.id IS NOT NULL), '[]') AS audit
     FROM core.webhook_endpoints e
     LEFT JOIN core.audit_logs a ON a.org_id = e.org_id AND a.action = 'webhooks.previous_secret_cleared' AND a.entity_id = e.id::text
     WHERE e.id = $1 GROUP BY e.previous_secret, e.previous_secret_expires_at, e.previous_secret_set_by`, [id])).rows[0];

  it('the previous secret of a rotation\'s overlap is held by who received it: their removal ends the overlap at once, audited; the endpoint stays enabled (review rx 1)', async () => {
    const orgId = await teamOrg('Hook Overlap Co');
    const rotating = await admin(orgId, 'hook-overlap-admin');
    const ep = await endpointOf(owner, orgId, 'overlap');
    // the admin rotates (and receives S_A), then the owner rotates keeping the default overlap: S_A still signs
    await t.http.post(endpointUrl(orgId, ep.id, '/rotate-secret')).set(rotating.auth).send({ overlapSeconds: 0 }).expect(201);
    const rotated = await t.http.post(endpointUrl(orgId, ep.id, '/rotate-secret')).set(owner.auth).send({}).expect(201);
    expect(rotated.body).toMatchObject({ urlSetBy: owner.id, secretSetBy: owner.id, previousSecretExpiresAt: expect.any(String) });
    const expiresAt = rotated.body.previousSecretExpiresAt as string;
    expect(await previousOf(ep.id)).toMatchObject({ previous_secret: true, previous_secret_set_by: rotating.id, audit: [] });

    await t.http.delete(`/v1/orgs/${orgId}/members/${rotating.id}`).set(owner.auth).expect(204);
    expect(await stateOf(ep.id)).toEqual(live(owner.id));
    expect(await previousOf(ep.id)).toEqual({
      previous_secret: false, previous_secret_expires_at: null, previous_secret_set_by: null,
      audit: [{
        actor: owner.id, principal: 'user', before: { previousSecretExpiresAt: expect.any(String), previousSecretSetBy: rotating.id },
        after: { previousSecretExpiresAt: null, reason: 'configurer_removed' },
      }],
    });
    expect(new Date((await previousOf(ep.id)).audit[0].before.previousSecretExpiresAt).toISOString()).toBe(new Date(expiresAt).toISOString());
    const got = await t.http.get(endpointUrl(orgId, ep.id)).set(owner.auth).expect(200);
    expect(got.body).toMatchObject({ enabled: true, previousSecretExpiresAt: null });

    // the owner's own overlap is theirs, and a rotation without one holds nothing
    await t.http.post(endpointUrl(orgId, ep.id, '/rotate-secret')).set(owner.auth).send({ overlapSeconds: 60 }).expect(201);
    expect(await previousOf(ep.id)).toMatchObject({ previous_secret: true, previous_secret_set_by: owner.id });
    await t.http.post(endpointUrl(orgId, ep.id, '/rotate-secret')).set(owner.auth).send({ overlapSeconds: 0 }).expect(201);
    expect(await previousOf(ep.id)).toMatchObject({ previous_secret: false, previous_secret_set_by: null });
  });

  it('an endpoint rotated with an overlap while its secret\'s receiver was already gone, then enabled: the overlap ends with the enabling, audited (review rx 1)', async () => {
    const orgId = await teamOrg('Hook Overlap Enable Co');
    const gone = await admin(orgId, 'hook-overlap-gone');
    const ep = await endpointOf(gone, orgId, 'overlap-enable');
    await t.http.delete(`/v1/orgs/${orgId}/members/${gone.id}`).set(owner.auth).expect(204);
    // the owner takes it over, rotating with the default overlap: the former admin's secret is the previous one
    await t.http.post(endpointUrl(orgId, ep.id, '/rotate-secret')).set(owner.auth).send({}).expect(201);
    expect(await previousOf(ep.id)).toMatchObject({ previous_secret: true, previous_secret_set_by: gone.id });
    const enabled = await t.http.patch(endpointUrl(orgId, ep.id)).set(owner.auth).send({ enabled: true }).expect(200);
    expect(enabled.body).toMatchObject({ enabled: true, urlSetBy: owner.id, secretSetBy: owner.id, previousSecretExpiresAt: null });
    expect(await previousOf(ep.id)).toEqual({
      previous_secret: false, previous_secret_expires_at: null, previous_secret_set_by: null,
      audit: [{
        actor: owner.id, principal: 'user', before: { previousSecretExpiresAt: expect.any(String), previousSecretSetBy: gone.id },
        after: { previousSecretExpiresAt: null, reason: 'configurer_no_longer_admin' },
      }],
    });
    // rotated before it was enabled: the owner received the secret, took on only the URL; their next rotation keeps its overlap (review rA)
    expect(await takenOnOf(ep.id)).toBe(false);
    const rotated = await t.http.post(endpointUrl(orgId, ep.id, '/rotate-secret')).set(owner.auth).send({}).expect(201);
    expect(rotated.body).toMatchObject({ previousSecretExpiresAt: expect.any(String) });
    expect(await previousOf(ep.id)).toMatchObject({ previous_secret: true, previous_secret_set_by: owner.id });
  });

  it('an endpoint whose secret\'s receiver\'s user row was deleted, rotated with an overlap, disabled and enabled: the nameless previous secret ends with the enabling (review ry 1, rf2)', async () => {
    const orgId = await teamOrg('Hook Overlap Deleted Co');
    const gone = await admin(orgId, 'hook-overlap-deleted');
    const ep = await endpointOf(gone, orgId, 'overlap-deleted');
    // another app of the database deletes the user row (their personal organization handed to an heir first): the
    // endpoint is disabled, and secret_set_by is NULL (ON DELETE SET NULL), as an account claim leaves it
    const heir = randomUUID();
    await t.db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [heir, `${heir}@example.test`]);
    await t.db.admin.query('UPDATE core.organizations SET owner_user_id = $2 WHERE id = $1', [gone.personalOrgId, heir]);
    await t.db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'owner')`, [gone.personalOrgId, heir]);
    await t.db.admin.query('DELETE FROM core."User" WHERE id = $1', [gone.id]);
    // the owner rotates with the default overlap: the deleted person's secret is the previous one, held by no name
    await t.http.post(endpointUrl(orgId, ep.id, '/rotate-secret')).set(owner.auth).send({}).expect(201);
    expect(await previousOf(ep.id)).toMatchObject({ previous_secret: true, previous_secret_set_by: null });
    // a disable in between leaves no trace of why it was disabled first (review rf2): the nameless overlap still ends
    await t.http.patch(endpointUrl(orgId, ep.id)).set(owner.auth).send({ enabled: false }).expect(200);
    const enabled = await t.http.patch(endpointUrl(orgId, ep.id)).set(owner.auth).send({ enabled: true }).expect(200);
    expect(enabled.body).toMatchObject({ enabled: true, urlSetBy: owner.id, secretSetBy: owner.id, previousSecretExpiresAt: null });
    expect(await previousOf(ep.id)).toEqual({
      previous_secret: false, previous_secret_expires_at: null, previous_secret_set_by: null,
      audit: [{
        actor: owner.id, principal: 'user', before: { previousSecretExpiresAt: expect.any(String), previousSecretSetBy: null },
        after: { previousSecretExpiresAt: null, reason: 'previous_secret_holder_unknown' },
      }],
    });
  });

  /** Whether the endpoint's current secret is marked taken on. */
  const takenOnOf = async (id: string) => (await t.db.admin.query('SELECT secret_taken_on FROM core.webhook_endpoints WHERE id = $1', [id])).rows[0].secret_taken_on as boolean;
  const auditOf = async (id: string, action: string) => (await t.db.admin.query(
    'SELECT actor_id, before, after FROM core.audit_logs WHERE entity_id = $1 AND action = $2 ORDER BY id', [id, action])).rows;

  it('enabled in place of a removed admin, then rotated: the secret the admin knows keeps no overlap; an overlap asked for is a 409; the next rotation keeps one (review rA)', async () => {
    const orgId = await teamOrg('Hook Taken On Co');
    const gone = await admin(orgId, 'hook-taken-on');
    const [ep, asked] = [await endpointOf(gone, orgId, 'taken-on'), await endpointOf(gone, orgId, 'taken-on-asked')];
    await t.http.delete(`/v1/orgs/${orgId}/members/${gone.id}`).set(owner.auth).expect(204);
    // the owner enables it first: they answer for the secret now, but it is still the one the removed admin received
    for (const id of [ep.id, asked.id]) {
      const enabled = await t.http.patch(endpointUrl(orgId, id)).set(owner.auth).send({ enabled: true }).expect(200);
      expect(enabled.body).toMatchObject({ enabled: true, urlSetBy: owner.id, secretSetBy: owner.id, previousSecretExpiresAt: null, secretTakenOn: true });
    }
    // the answer says so before a rotation (review rC 3)
    const listed = await t.http.get(`/v1/orgs/${orgId}/webhooks/endpoints`).set(owner.auth).expect(200);
    expect(Object.fromEntries(listed.body.map((e: { id: string; secretTakenOn: boolean }) => [e.id, e.secretTakenOn]))).toEqual({ [ep.id]: true, [asked.id]: true });
    const { rows: [old] } = await t.db.admin.query('SELECT secret FROM core.webhook_endpoints WHERE id = $1', [ep.id]);

    // then rotates with the default overlap: the admin's secret signs no more
    const rotated = await t.http.post(endpointUrl(orgId, ep.id, '/rotate-secret')).set(owner.auth).send({}).expect(201);
    expect(rotated.body).toMatchObject({ secret: expect.stringMatching(/^whsec_/), previousSecretExpiresAt: null, secretSetBy: owner.id, secretTakenOn: false });
    expect((await t.http.get(endpointUrl(orgId, ep.id)).set(owner.auth).expect(200)).body).toMatchObject({ secretTakenOn: false });
    expect((await t.http.get(endpointUrl(orgId, asked.id)).set(owner.auth).expect(200)).body).toMatchObject({ secretTakenOn: true });
    expect(await previousOf(ep.id)).toEqual({ previous_secret: false, previous_secret_expires_at: null, previous_secret_set_by: null, audit: [] });
    // the enablings marked the secrets taken on, audited
    for (const id of [ep.id, asked.id]) {
      expect((await auditOf(id, 'webhooks.endpoint_updated')).map((r) => [r.before.secretTakenOn, r.after.secretTakenOn, r.after.secretSetBy])).toEqual([[false, true, owner.id]]);
    }
    expect(await takenOnOf(asked.id)).toBe(true);
    const { rows: [now] } = await t.db.admin.query('SELECT secret, secret_taken_on FROM core.webhook_endpoints WHERE id = $1', [ep.id]);
    expect(now).toEqual({ secret: expect.anything(), secret_taken_on: false });
    expect(now.secret).not.toEqual(old.secret);
    expect(await auditOf(ep.id, 'webhooks.secret_rotated')).toEqual([{
      actor_id: owner.id, before: { secretTakenOn: true }, after: { previousSecretExpiresAt: null, secretSetBy: owner.id, noOverlap: 'secret_taken_on' },
    }]);
    // a rotation ended the take-on: the next one keeps its overlap, held by the owner
    const again = await t.http.post(endpointUrl(orgId, ep.id, '/rotate-secret')).set(owner.auth).send({}).expect(201);
    expect(again.body).toMatchObject({ previousSecretExpiresAt: expect.any(String) });
    expect(await previousOf(ep.id)).toMatchObject({ previous_secret: true, previous_secret_set_by: owner.id });

    // an overlap asked for explicitly is refused, nothing changed; 0 is what it gets
    const before = (await t.db.admin.query('SELECT * FROM core.webhook_endpoints WHERE id = $1', [asked.id])).rows;
    const refused = await t.http.post(endpointUrl(orgId, asked.id, '/rotate-secret')).set(owner.auth).send({ overlapSeconds: 3600 });
    expect([refused.status, refused.body.error?.code, refused.body.error?.details]).toEqual([409, 'webhooks.secret_taken_on', { overlapSeconds: 3600 }]);
    expect((await t.db.admin.query('SELECT * FROM core.webhook_endpoints WHERE id = $1', [asked.id])).rows).toEqual(before);
    expect(await auditOf(asked.id, 'webhooks.secret_rotated')).toEqual([]);
    await t.http.post(endpointUrl(orgId, asked.id, '/rotate-secret')).set(owner.auth).send({ overlapSeconds: 0 }).expect(201);
    expect(await previousOf(asked.id)).toMatchObject({ previous_secret: false });
    expect(await takenOnOf(asked.id)).toBe(false);

    // the API role may not mark or unmark a secret itself (the endpoints' trigger, review rC; see below)
    await t.db.admin.query('UPDATE core.webhook_endpoints SET secret_taken_on = true WHERE id = $1', [asked.id]);
    await expect(t.db.asApi({ sub: owner.id, org_id: orgId }, 'authenticated',
      'UPDATE core.webhook_endpoints SET secret_taken_on = false WHERE id = $1', [asked.id])).rejects.toMatchObject({ code: '42501' });
    expect(await takenOnOf(asked.id)).toBe(true);
  });

  it('a rotation keeping an overlap of a secret no one took on keeps it, and an endpoint enabled by whoever still answers for its secret takes nothing on (review rA)', async () => {
    const orgId = await teamOrg('Hook Not Taken Co');
    const ep = await endpointOf(owner, orgId, 'not-taken');
    await t.http.patch(endpointUrl(orgId, ep.id)).set(owner.auth).send({ enabled: false }).expect(200);
    await t.http.patch(endpointUrl(orgId, ep.id)).set(owner.auth).send({ enabled: true }).expect(200);
    expect(await takenOnOf(ep.id)).toBe(false);
    const rotated = await t.http.post(endpointUrl(orgId, ep.id, '/rotate-secret')).set(owner.auth).send({ overlapSeconds: 3600 }).expect(201);
    expect(rotated.body).toMatchObject({ previousSecretExpiresAt: expect.any(String) });
    expect(await previousOf(ep.id)).toMatchObject({ previous_secret: true, previous_secret_set_by: owner.id });
    expect((await auditOf(ep.id, 'webhooks.secret_rotated')).map((r) => [r.before, r.after.noOverlap])).toEqual([[null, undefined]]);
  });

  it('the API role may not write secret_taken_on though it holds the table\'s grants: the trigger refuses a change and an insert marked taken on (42501); naming it unchanged passes (review rC 2)', async () => {
    const orgId = await teamOrg('Hook Taken On Guard Co');
    const ep = await endpointOf(owner, orgId, 'guard');
    const api = (sql: string, params: unknown[]) => t.db.asApi({ sub: owner.id, org_id: orgId }, 'authenticated', sql, params);
    // table-wide, as for every other column: no column grant to forget for the next column
    expect((await t.db.admin.query(`SELECT has_table_privilege('authenticated', 'core.webhook_endpoints', 'INSERT, UPDATE') AS t,
      has_column_privilege('authenticated', 'core.webhook_endpoints', 'secret_taken_on', 'INSERT, UPDATE') AS c`)).rows[0]).toEqual({ t: true, c: true });
    const rowOf = async () => (await t.db.admin.query('SELECT * FROM core.webhook_endpoints WHERE id = $1', [ep.id])).rows[0];
    const before = await rowOf();

    await expect(api('UPDATE core.webhook_endpoints SET secret_taken_on = true WHERE id = $1', [ep.id]))
      .rejects.toMatchObject({ code: '42501', message: 'whether a webhook endpoint\'s signing secret was taken on is set by the database' });
    await expect(api('UPDATE core.webhook_endpoints SET secret_taken_on = true, description = $2 WHERE id = $1', [ep.id, 'marked']))
      .rejects.toMatchObject({ code: '42501' });
    expect(await rowOf()).toEqual(before);
    const id = randomUUID();
    await expect(api(`INSERT INTO core.webhook_endpoints (org_id, id, url, secret, secret_taken_on) VALUES ($1, $2, 'https://hooks.example.com/marked', $3, true)`,
      [orgId, id, before.secret])).rejects.toMatchObject({ code: '42501' });
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.webhook_endpoints WHERE id = $1', [id])).rows[0].n).toBe(0);

    // a statement naming every column (a REST client's whole row) passes when it leaves it as it is
    await api('UPDATE core.webhook_endpoints SET secret_taken_on = false, description = $2 WHERE id = $1', [ep.id, 'named']);
    expect(await rowOf()).toMatchObject({ secret_taken_on: false, description: 'named' });
    await api(`INSERT INTO core.webhook_endpoints (org_id, id, url, secret, secret_taken_on) VALUES ($1, $2, 'https://hooks.example.com/unmarked', $3, false)`,
      [orgId, id, before.secret]);
    expect((await t.db.admin.query('SELECT secret_taken_on, secret_set_by FROM core.webhook_endpoints WHERE id = $1', [id])).rows[0]).toEqual({ secret_taken_on: false, secret_set_by: owner.id });
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
      expect([res.status, res.body.error]).toEqual([403, { code: 'forbidden.role', message: ONLY_ADMINS }]);
    } finally {
      await c.query('ROLLBACK').catch(() => undefined);
      c.release();
    }
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.webhook_endpoints WHERE org_id = $1', [orgId])).rows).toEqual([{ n: 0 }]);
  });

  it('an admin who re-points the owner\'s endpoint answers for its URL, one who rotates its secret for the secret: either\'s removal disables it (review r3, r4)', async () => {
    const orgId = await teamOrg('Hook Retarget Co');
    const retargeting = await admin(orgId, 'hook-retarget');
    const ep = await endpointOf(owner, orgId, 'erp');
    // the description and the event types alone: the events still go where the owner chose
    const described = await t.http.patch(endpointUrl(orgId, ep.id)).set(retargeting.auth).send({ description: 'mine now', eventTypes: ['journal_entry.posted'] }).expect(200);
    expect(described.body).toMatchObject({ urlSetBy: owner.id, secretSetBy: owner.id });
    const repointed = await t.http.patch(endpointUrl(orgId, ep.id)).set(retargeting.auth).send({ url: 'https://evil.example.com/x' }).expect(200);
    expect(repointed.body).toMatchObject({ url: 'https://evil.example.com/x', urlSetBy: retargeting.id, secretSetBy: owner.id });
    // re-pointed back by the owner, then rotated by the admin: the secret alone makes them answerable too
    await t.http.patch(endpointUrl(orgId, ep.id)).set(owner.auth).send({ url: 'https://hooks.example.com/erp' }).expect(200);
    expect(await stateOf(ep.id)).toEqual(live(owner.id));
    const rotated = await t.http.post(endpointUrl(orgId, ep.id, '/rotate-secret')).set(retargeting.auth).send({ overlapSeconds: 0 }).expect(201);
    expect(rotated.body).toMatchObject({ secret: expect.stringMatching(/^whsec_/), urlSetBy: owner.id, secretSetBy: retargeting.id });
    const audit = await t.db.admin.query(
      `SELECT actor_id, action, after FROM core.audit_logs WHERE org_id = $1 AND entity_id = $2 AND action IN ('webhooks.endpoint_updated', 'webhooks.secret_rotated') ORDER BY id`,
      [orgId, ep.id]);
    expect(audit.rows.map((r) => [r.actor_id, r.after.urlSetBy ?? null, r.after.secretSetBy])).toEqual([
      [retargeting.id, owner.id, owner.id], [retargeting.id, retargeting.id, owner.id], [owner.id, owner.id, owner.id], [retargeting.id, null, retargeting.id]]);

    await t.http.delete(`/v1/orgs/${orgId}/members/${retargeting.id}`).set(owner.auth).expect(204);
    expect(await stateOf(ep.id)).toEqual(disabled('configurer_removed', [owner.id, retargeting.id], owner.id));
  });

  it('the owner rotating the secret of an endpoint an admin re-pointed leaves the admin answerable for the URL: their removal disables it (review r4 A)', async () => {
    const orgId = await teamOrg('Hook Rotate After Co');
    const retargeting = await admin(orgId, 'hook-rotate-after');
    const ep = await endpointOf(owner, orgId, 'rot');
    await t.http.patch(endpointUrl(orgId, ep.id)).set(retargeting.auth).send({ url: 'https://evil.example.com/x' }).expect(200);
    const rotated = await t.http.post(endpointUrl(orgId, ep.id, '/rotate-secret')).set(owner.auth).send({ overlapSeconds: 0 }).expect(201);
    expect(rotated.body).toMatchObject({ url: 'https://evil.example.com/x', urlSetBy: retargeting.id, secretSetBy: owner.id });
    expect(await stateOf(ep.id)).toEqual(live(retargeting.id, owner.id));

    await t.http.delete(`/v1/orgs/${orgId}/members/${retargeting.id}`).set(owner.auth).expect(204);
    expect(await stateOf(ep.id)).toEqual(disabled('configurer_removed', [retargeting.id, owner.id], owner.id));
  });

  it('an owner enabling again an endpoint an admin re-pointed (the worker disabled it) leaves the admin answerable: their removal disables it (review r4 A)', async () => {
    const orgId = await teamOrg('Hook Failing Co');
    const retargeting = await admin(orgId, 'hook-failing');
    const ep = await endpointOf(owner, orgId, 'fail');
    await t.http.patch(endpointUrl(orgId, ep.id)).set(retargeting.auth).send({ url: 'https://evil.example.com/f' }).expect(200);
    // the delivery worker's auto-disable (its privileged path: no person)
    await t.db.admin.query(`UPDATE core.webhook_endpoints SET enabled = false, disabled_reason = 'failing', disabled_at = now() WHERE id = $1`, [ep.id]);
    const enabled = await t.http.patch(endpointUrl(orgId, ep.id)).set(owner.auth).send({ enabled: true }).expect(200);
    expect(enabled.body).toMatchObject({ enabled: true, urlSetBy: retargeting.id, secretSetBy: owner.id });

    await t.http.delete(`/v1/orgs/${orgId}/members/${retargeting.id}`).set(owner.auth).expect(204);
    expect(await stateOf(ep.id)).toEqual(disabled('configurer_removed', [retargeting.id, owner.id], owner.id));
  });

  it('an admin who enables a removed admin\'s endpoint takes it on: their own removal disables it again (review r3)', async () => {
    const orgId = await teamOrg('Hook Reenable Co');
    const [first, second] = [await admin(orgId, 'hook-first'), await admin(orgId, 'hook-second')];
    const ep = await endpointOf(first, orgId, 'a');
    await t.http.delete(`/v1/orgs/${orgId}/members/${first.id}`).set(owner.auth).expect(204);
    const enabled = await t.http.patch(endpointUrl(orgId, ep.id)).set(second.auth).send({ enabled: true }).expect(200);
    expect(enabled.body).toMatchObject({ enabled: true, urlSetBy: second.id, secretSetBy: second.id });
    // enabling what is enabled, or disabling, changes nothing of who answers
    await t.http.patch(endpointUrl(orgId, ep.id)).set(owner.auth).send({ enabled: true }).expect(200);
    expect(await stateOf(ep.id)).toMatchObject({ url_set_by: second.id, secret_set_by: second.id });

    await t.http.delete(`/v1/orgs/${orgId}/members/${second.id}`).set(owner.auth).expect(204);
    const state = await stateOf(ep.id);
    expect(state).toMatchObject({ enabled: false, disabled_reason: 'configurer_removed', url_set_by: second.id, secret_set_by: second.id });
    expect(state.audit).toEqual([
      { actor: owner.id, principal: 'user', before: { enabled: true }, after: { enabled: false, reason: 'configurer_removed', urlSetBy: first.id, secretSetBy: first.id } },
      { actor: owner.id, principal: 'user', before: { enabled: true }, after: { enabled: false, reason: 'configurer_removed', urlSetBy: second.id, secretSetBy: second.id } },
    ]);
  });

  it('a service replaces neither person, and may not enable an endpoint whose URL or secret no owner or admin answers for (403 webhooks.person_required); a person takes it on (review r4 E)', async () => {
    const orgId = await teamOrg('Hook Service Co');
    const retargeting = await admin(orgId, 'hook-service-admin');
    const ep = await endpointOf(owner, orgId, 'svc');
    await t.http.patch(endpointUrl(orgId, ep.id)).set(retargeting.auth).send({ url: 'https://evil.example.com/s' }).expect(200);
    await t.db.admin.query(`UPDATE core.webhook_endpoints SET enabled = false, disabled_reason = 'failing', disabled_at = now() WHERE id = $1`, [ep.id]);
    // the admin still answers for the URL: a service may enable it, and the admin stays answerable
    const enabled = await t.http.patch(endpointUrl(orgId, ep.id)).set(service()).send({ enabled: true }).expect(200);
    expect(enabled.body).toMatchObject({ enabled: true, urlSetBy: retargeting.id, secretSetBy: owner.id });
    // a service's description, URL and secret leave both as they were
    await t.http.patch(endpointUrl(orgId, ep.id)).set(service()).send({ description: 'ops', url: 'https://hooks.example.com/ops' }).expect(200);
    const rotated = await t.http.post(endpointUrl(orgId, ep.id, '/rotate-secret')).set(service()).send({ overlapSeconds: 0 }).expect(201);
    expect(rotated.body).toMatchObject({ urlSetBy: retargeting.id, secretSetBy: owner.id });

    await t.http.delete(`/v1/orgs/${orgId}/members/${retargeting.id}`).set(owner.auth).expect(204);
    expect(await stateOf(ep.id)).toEqual(disabled('configurer_removed', [retargeting.id, owner.id], owner.id));

    const updates = async () => (await t.db.admin.query(
      `SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND entity_id = $2 AND action = 'webhooks.endpoint_updated'`, [orgId, ep.id])).rows[0].n as number;
    const before = await updates();
    const refused = await t.http.patch(endpointUrl(orgId, ep.id)).set(service()).send({ enabled: true });
    expect([refused.status, refused.body.error?.code, refused.body.error?.message]).toEqual([403, 'webhooks.person_required',
      'the person who set this webhook endpoint\'s URL is no longer owner or admin of the organization (or is unknown): an owner or admin must enable it, and then answers for it']);
    expect(await stateOf(ep.id)).toEqual(disabled('configurer_removed', [retargeting.id, owner.id], owner.id));
    expect(await updates()).toBe(before);

    const taken = await t.http.patch(endpointUrl(orgId, ep.id)).set(owner.auth).send({ enabled: true }).expect(200);
    expect(taken.body).toMatchObject({ enabled: true, urlSetBy: owner.id, secretSetBy: owner.id });

    // an endpoint a service created: no one answers for it; once disabled, a person enables it again and answers for it
    const created = await t.http.post(`/v1/orgs/${orgId}/webhooks/endpoints`).set(service()).send({ url: 'https://hooks.example.com/by-service' }).expect(201);
    expect(created.body).toMatchObject({ enabled: true, urlSetBy: null, secretSetBy: null });
    await t.http.patch(endpointUrl(orgId, created.body.id)).set(service()).send({ enabled: false }).expect(200);
    const again = await t.http.patch(endpointUrl(orgId, created.body.id)).set(service()).send({ enabled: true });
    expect([again.status, again.body.error?.code]).toEqual([403, 'webhooks.person_required']);
    expect(await stateOf(created.body.id)).toMatchObject({ enabled: false, url_set_by: null, secret_set_by: null });
    const byOwner = await t.http.patch(endpointUrl(orgId, created.body.id)).set(owner.auth).send({ enabled: true }).expect(200);
    expect(byOwner.body).toMatchObject({ enabled: true, urlSetBy: owner.id, secretSetBy: owner.id });
  });

  it('re-pointing or rotating one\'s endpoint while one\'s demotion commits is a 403 forbidden.role, not a deadlock: the person is locked before the endpoint (review r4)', async () => {
    const orgId = await teamOrg('Hook Own Race Co');
    const outcomes: unknown[] = [];
    for (const [name, write] of [
      ['hook-own-repoint', (who: TestUser, id: string) => t.http.patch(endpointUrl(orgId, id)).set(who.auth).send({ url: 'https://evil.example.com/late' })],
      ['hook-own-rotate', (who: TestUser, id: string) => t.http.post(endpointUrl(orgId, id, '/rotate-secret')).set(who.auth).send({ overlapSeconds: 0 })],
    ] as const) {
      const racing = await admin(orgId, name);
      const ep = await endpointOf(racing, orgId, name);
      const c = await t.db.admin.connect();
      try {
        // the demotion's order (MembershipsService.changeRole): the membership locked, then its role changed, whose
        // trigger then disables the person's endpoints
        await c.query('BEGIN');
        await c.query('SELECT 1 FROM core.memberships WHERE org_id = $1 AND user_id = $2 FOR UPDATE', [orgId, racing.id]);
        const writing = write(racing, ep.id).then((r) => r);
        expect(await waitsForLockOrAnswers(t.db.admin, writing)).toBe('waiting');
        const demotion = await c.query(`UPDATE core.memberships SET role = 'accountant' WHERE org_id = $1 AND user_id = $2`, [orgId, racing.id])
          .then(() => 'demoted', (e: { code: string }) => `demotion failed: ${e.code}`);
        await c.query('COMMIT');
        const res = await writing;
        outcomes.push([demotion, res.status, res.body.error?.code]);
      } finally {
        await c.query('ROLLBACK').catch(() => undefined);
        c.release();
      }
      expect(await stateOf(ep.id)).toEqual(disabled('configurer_demoted', racing.id, null, 'system'));
      expect((await t.db.admin.query('SELECT url FROM core.webhook_endpoints WHERE id = $1', [ep.id])).rows).toEqual([{ url: `https://hooks.example.com/${name}` }]);
    }
    expect(outcomes).toEqual([['demoted', 403, 'forbidden.role'], ['demoted', 403, 'forbidden.role']]);
  });

  it('refuses enabling an endpoint while the enabling admin\'s demotion commits (403 forbidden.role, still disabled): the membership is read again, locked', async () => {
    const orgId = await teamOrg('Hook Enable Race Co');
    const [first, racing] = [await admin(orgId, 'hook-enable-first'), await admin(orgId, 'hook-enable-racing')];
    const ep = await endpointOf(first, orgId, 'race');
    await t.http.delete(`/v1/orgs/${orgId}/members/${first.id}`).set(owner.auth).expect(204);
    const c = await t.db.admin.connect();
    try {
      // the demotion holds the membership row; the enabling began with the role admin, and waits for it
      await c.query('BEGIN');
      await c.query(`UPDATE core.memberships SET role = 'accountant' WHERE org_id = $1 AND user_id = $2`, [orgId, racing.id]);
      const enabling = t.http.patch(endpointUrl(orgId, ep.id)).set(racing.auth).send({ enabled: true }).then((r) => r);
      expect(await waitsForLockOrAnswers(t.db.admin, enabling)).toBe('waiting');
      await c.query('COMMIT');
      const res = await enabling;
      expect([res.status, res.body.error]).toEqual([403, { code: 'forbidden.role', message: ONLY_ADMINS }]);
    } finally {
      await c.query('ROLLBACK').catch(() => undefined);
      c.release();
    }
    expect(await stateOf(ep.id)).toEqual(disabled('configurer_removed', first.id, owner.id));
  });

  it('a creation waiting for the erasure\'s lock on its person\'s user row does not deadlock with it: the user row is locked before the membership', async () => {
    const orgId = await teamOrg('Hook Deadlock Co');
    const creator = await admin(orgId, 'hook-deadlock');
    const c = await t.db.admin.connect();
    let outcome: unknown;
    try {
      // the erasure's order: the user row FOR UPDATE, then their memberships
      await c.query('BEGIN');
      await c.query('SELECT 1 FROM core."User" WHERE id = $1 FOR UPDATE', [creator.id]);
      const creating = t.http.post(`/v1/orgs/${orgId}/webhooks/endpoints`).set(creator.auth).send({ url: 'https://hooks.example.com/dl' }).then((r) => r);
      expect(await waitsForLockOrAnswers(t.db.admin, creating)).toBe('waiting');
      outcome = await c.query('SELECT 1 FROM core.memberships WHERE user_id = $1 ORDER BY org_id FOR UPDATE', [creator.id])
        .then(() => 'erasure got its locks', (e: { code: string; message: string }) => `erasure: ${e.code} ${e.message}`);
      await c.query('ROLLBACK');
      const res = await creating;
      outcome = [outcome, res.status, res.body.urlSetBy];
    } finally {
      await c.query('ROLLBACK').catch(() => undefined);
      c.release();
    }
    expect(outcome).toEqual(['erasure got its locks', 201, creator.id]);
  });

  it('migration 20270211000400 names who set each endpoint\'s URL and secret as the audit log says (a service\'s rows passed over), disables those one of whom is no longer admin or deleted, warns per organization; unknown ones are left alone (review r4)', async () => {
    const orgId = await teamOrg('Hook Backfill Co');
    const gone = await admin(orgId, 'hook-gone');
    const [goneEp, repointedEp, describedEp, ownerEp, rotatedEp, serviceEp] = [
      await endpointOf(gone, orgId, 'g'), await endpointOf(owner, orgId, 'r'), await endpointOf(owner, orgId, 'd'), await endpointOf(owner, orgId, 'o'),
      await endpointOf(owner, orgId, 'k'), await endpointOf(gone, orgId, 's')];
    await t.http.patch(endpointUrl(orgId, repointedEp.id)).set(gone.auth).send({ url: 'https://evil.example.com/r' }).expect(200);
    // re-pointed by the admin, then its secret rotated by the owner (review r4 A: the last row is the owner's)
    await t.http.post(endpointUrl(orgId, repointedEp.id, '/rotate-secret')).set(owner.auth).send({ overlapSeconds: 0 }).expect(201);
    await t.http.patch(endpointUrl(orgId, describedEp.id)).set(gone.auth).send({ description: 'only described' }).expect(200);
    // its secret rotated by the admin (the URL still the owner's)
    await t.http.post(endpointUrl(orgId, rotatedEp.id, '/rotate-secret')).set(gone.auth).send({ overlapSeconds: 0 }).expect(201);
    // the admin's endpoint re-pointed and rotated by a service afterwards (review r4: the last rows a service's)
    await t.http.patch(endpointUrl(orgId, serviceEp.id)).set(service()).send({ url: 'https://hooks.example.com/s2' }).expect(200);
    await t.http.post(endpointUrl(orgId, serviceEp.id, '/rotate-secret')).set(service()).send({ overlapSeconds: 0 }).expect(201);
    // an endpoint whose creation the audit log gives to a person whose user row is already gone (review r4: left
    // enabled and unreported)
    const ghost = randomUUID();
    const { rows: [ghostEp] } = await t.db.admin.query(
      `INSERT INTO core.webhook_endpoints (org_id, url, secret) VALUES ($1, 'https://hooks.example.com/ghost', '{}'::jsonb) RETURNING id`, [orgId]);
    await t.db.admin.query(`INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, after)
      VALUES ($1, $3, 'user', 'webhooks.endpoint_created', 'webhook_endpoint', $2, '{}'::jsonb)`, [orgId, ghostEp.id, ghost]);
    // as before the migration: no one recorded, and the admin demoted with nothing to disable
    await t.db.admin.query('UPDATE core.webhook_endpoints SET url_set_by = NULL, secret_set_by = NULL WHERE org_id = $1', [orgId]);
    await t.db.admin.query(`UPDATE core.memberships SET role = 'member' WHERE org_id = $1 AND user_id = $2`, [orgId, gone.id]);
    // an endpoint whose setting up the audit log does not name
    const { rows: [unknown] } = await t.db.admin.query(
      `INSERT INTO core.webhook_endpoints (org_id, url, secret) VALUES ($1, 'https://hooks.example.com/unknown', '{}'::jsonb) RETURNING id`, [orgId]);
    expect(await stateOf(goneEp.id)).toMatchObject({ enabled: true, url_set_by: null, secret_set_by: null, audit: [] });

    const sql = readFileSync(new URL('../../prisma/migrations/20270211000400_webhook_endpoints_end_with_creator_role/migration.sql', import.meta.url), 'utf8');
    const backfill = sql.slice(sql.indexOf('-- backfill:'));
    const warnings: string[] = [];
    const c = await t.db.admin.connect();
    try {
      c.on('notice', (n) => { if (n.severity === 'WARNING' && n.message?.includes(orgId)) warnings.push(n.message); });
      await c.query(backfill);
      await c.query(backfill); // applied again: nothing more
    } finally {
      c.release();
    }
    expect(warnings).toEqual([`organization ${orgId}: 5 enabled webhook endpoint(s) disabled (disabled_reason configurer_no_longer_admin): the person who set their URL `
      + 'or received their signing secret is no longer owner or admin there, or their user was deleted; check each URL, rotate its secret and enable it again if it is to stay']);
    const byMigration = (setBy: [string | null, string | null], named = setBy) => ({
      ...disabled('configurer_no_longer_admin', [named[0]!, named[1]!], 'migration:20270211000400', 'system'), url_set_by: setBy[0], secret_set_by: setBy[1],
    });
    expect(await stateOf(goneEp.id)).toEqual(byMigration([gone.id, gone.id]));
    expect(await stateOf(repointedEp.id)).toEqual(byMigration([gone.id, owner.id]));
    expect(await stateOf(rotatedEp.id)).toEqual(byMigration([owner.id, gone.id]));
    expect(await stateOf(serviceEp.id)).toEqual(byMigration([gone.id, gone.id]));
    expect(await stateOf(ghostEp.id)).toEqual(byMigration([null, null], [ghost, ghost]));
    expect(await stateOf(describedEp.id)).toEqual(live(owner.id));
    expect(await stateOf(ownerEp.id)).toEqual(live(owner.id));
    expect(await stateOf(unknown.id)).toEqual({ enabled: true, disabled_reason: null, disabled_at: false, url_set_by: null, secret_set_by: null, audit: [] });
  });

  it('migration 20270211001400 marks the secrets the audit log shows taken on since their last rotation, and ends an overlap whose previous secret was one, audited (review rA)', async () => {
    const orgId = await teamOrg('Hook Taken On Backfill Co');
    const gone = await admin(orgId, 'hook-taken-backfill');
    const [takenEp, leakedEp, rotatedTwiceEp] = [
      await endpointOf(gone, orgId, 'taken'), await endpointOf(gone, orgId, 'leaked'), await endpointOf(gone, orgId, 'twice')];
    const ownerEp = await endpointOf(owner, orgId, 'own');
    await t.http.post(endpointUrl(orgId, ownerEp.id, '/rotate-secret')).set(owner.auth).send({}).expect(201);
    await t.http.delete(`/v1/orgs/${orgId}/members/${gone.id}`).set(owner.auth).expect(204);
    for (const ep of [takenEp, leakedEp, rotatedTwiceEp]) {
      await t.http.patch(endpointUrl(orgId, ep.id)).set(owner.auth).send({ enabled: true }).expect(200);
    }
    // as before the migration: nothing marked, so the owner's rotation kept the admin's secret signing (the finding)
    await t.db.admin.query('UPDATE core.webhook_endpoints SET secret_taken_on = false WHERE org_id = $1', [orgId]);
    await t.http.post(endpointUrl(orgId, leakedEp.id, '/rotate-secret')).set(owner.auth).send({}).expect(201);
    expect(await previousOf(leakedEp.id)).toMatchObject({ previous_secret: true, previous_secret_set_by: owner.id });
    // rotated at once, then with an overlap: the previous secret is the owner's own
    await t.http.post(endpointUrl(orgId, rotatedTwiceEp.id, '/rotate-secret')).set(owner.auth).send({ overlapSeconds: 0 }).expect(201);
    await t.http.post(endpointUrl(orgId, rotatedTwiceEp.id, '/rotate-secret')).set(owner.auth).send({}).expect(201);

    const sql = readFileSync(new URL('../../prisma/migrations/20270211001400_webhook_secret_taken_on/migration.sql', import.meta.url), 'utf8');
    const backfill = sql.slice(sql.indexOf('-- backfill (see above)'));
    await t.db.admin.query(backfill);
    await t.db.admin.query(backfill); // applied again: nothing more

    const migrated = async (id: string) => (await t.db.admin.query(
      `SELECT action, principal_type, before, after FROM core.audit_logs WHERE entity_id = $1 AND actor_id = 'migration:20270211001400' ORDER BY id`, [id])).rows;
    expect(await takenOnOf(takenEp.id)).toBe(true);
    expect(await migrated(takenEp.id)).toEqual([{
      action: 'webhooks.secret_taken_on', principal_type: 'system', before: { secretTakenOn: false }, after: { secretTakenOn: true, secretSetBy: owner.id },
    }]);
    expect(await takenOnOf(leakedEp.id)).toBe(false);
    expect(await previousOf(leakedEp.id)).toEqual({
      previous_secret: false, previous_secret_expires_at: null, previous_secret_set_by: null,
      audit: [{
        actor: 'migration:20270211001400', principal: 'system', before: { previousSecretExpiresAt: expect.any(String), previousSecretSetBy: owner.id },
        after: { previousSecretExpiresAt: null, reason: 'secret_taken_on' },
      }],
    });
    for (const ep of [rotatedTwiceEp, ownerEp]) {
      expect(await takenOnOf(ep.id)).toBe(false);
      expect(await previousOf(ep.id)).toMatchObject({ previous_secret: true, previous_secret_set_by: owner.id, audit: [] });
      expect(await migrated(ep.id)).toEqual([]);
    }
  });
});
