import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { billingRepository } from '../../src/modules/billing/billing.repository.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onPlan, registerUser as registerUnverified, verifyEmailOf, type TestUser } from '../support/factories.js';
import { until } from '../support/throwaway-servers.js';

/** Invitees accept with the admin's token, which needs a verified e-mail. */
const registerUser = async (t: TestApp, prefix: string) => verifyEmailOf(t, await registerUnverified(t, prefix));

const LIMIT_REACHED = {
  code: 'billing.limit_reached',
  message: 'the starter plan allows 5 users and this organization already has 5 members; an admin must upgrade to professional before this invitation can be accepted (it stays pending until then)',
  details: { app: 'omnizen', feature: 'users', plan: 'starter', limit: 5, usage: 5, upgradeTo: 'professional' },
};

/**
 * The users limit counts members plus pending invitations, and creating an invitation consumes it. Invitations made
 * before a downgrade stay pending: accepting them used to add members past the new plan's limit (a professional
 * organization with 7 pending invitations, moved to starter, ended with 8 members). Accepting now checks the members
 * against the limit under the organization's counted-limit lock (hub.limit_locks), and a refused invitation stays pending.
 */
describe('invitations: accepting respects the users limit', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
  });
  afterAll(() => t.close());

  const invite = (orgId: string, email: string) =>
    t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email, role: 'member' }).expect(201).then((r) => r.body as { id: string; token: string });
  const accept = (orgId: string, who: TestUser, token: string) => t.http.post('/v1/invitations/accept').set(who.auth).send({ orgId, token });
  const members = async (orgId: string) => (await t.db.admin.query('SELECT count(*)::int AS n FROM core.memberships WHERE org_id = $1', [orgId])).rows[0].n;
  const pending = async (orgId: string) => (await t.db.admin.query(
    'SELECT id FROM core.invitations WHERE org_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL ORDER BY id', [orgId])).rows.map((r) => r.id);

  it('after a downgrade, accepts up to the new limit, then 402 naming it; the rest stay pending and are accepted after an upgrade', async () => {
    const orgId = await createOrg(t, owner, 'Downgraded Co');
    await onPlan(t, orgId, 'professional');
    const invitees: TestUser[] = [];
    const invitations: { id: string; token: string }[] = [];
    for (let i = 0; i < 7; i++) {
      invitees.push(await registerUser(t, `invitee${i}`));
      invitations.push(await invite(orgId, invitees[i].email));
    }
    await onPlan(t, orgId, 'starter');

    // the owner and four invitees fill the starter plan's five users
    for (let i = 0; i < 4; i++) {
      const res = await accept(orgId, invitees[i], invitations[i].token).expect(200);
      expect(res.body).toEqual({ orgId, userId: invitees[i].id, role: 'member' });
    }
    for (let i = 4; i < 7; i++) {
      const refused = await accept(orgId, invitees[i], invitations[i].token).expect(402);
      expect(refused.body.error).toEqual(LIMIT_REACHED);
    }
    expect(await members(orgId)).toBe(5);
    expect(await pending(orgId)).toEqual(invitations.slice(4).map((i) => i.id).sort());
    const listed = await t.http.get(`/v1/orgs/${orgId}/invitations?status=pending`).set(owner.auth).expect(200);
    expect(listed.body.items.map((i: { id: string }) => i.id).sort()).toEqual(invitations.slice(4).map((i) => i.id).sort());
    const audited = (await t.db.admin.query(`SELECT entity_id FROM core.audit_logs WHERE org_id = $1 AND action = 'invitation.accepted' ORDER BY entity_id`, [orgId])).rows;
    expect(audited.map((r) => r.entity_id)).toEqual(invitees.slice(0, 4).map((u) => u.id).sort());
    await t.http.get(`/v1/orgs/${orgId}`).set(invitees[4].auth).expect(404);

    // an upgrade lifts the limit at once: the pending invitation is still good
    await onPlan(t, orgId, 'professional');
    const later = await accept(orgId, invitees[4], invitations[4].token).expect(200);
    expect(later.body).toEqual({ orgId, userId: invitees[4].id, role: 'member' });
    expect(await members(orgId)).toBe(6);
    expect(await pending(orgId)).toEqual(invitations.slice(5).map((i) => i.id).sort());
  });

  it('two acceptances at once with one member short of the limit: counted one at a time (the limit lock): one joins, the other gets 402', async () => {
    const orgId = await createOrg(t, owner, 'Racing Co');
    await onPlan(t, orgId, 'professional');
    for (let i = 0; i < 3; i++) await addMember(t, orgId, await registerUser(t, `member${i}`), 'member'); // 4 members
    const ann = await registerUser(t, 'ann');
    const ben = await registerUser(t, 'ben');
    const forAnn = await invite(orgId, ann.email);
    const forBen = await invite(orgId, ben.email);
    await onPlan(t, orgId, 'starter'); // 4 members + 2 pending invitations, limit 5

    // the test holds the organization's row: an acceptance that has counted the members waits for it at the insert of
    // its membership (the foreign key's check), so the second acceptance counts before the first commits, unless it
    // waits for the limit lock the first holds. Both wait, whichever way, before the row is let go.
    await t.db.admin.query(`INSERT INTO hub.limit_locks (org_id, app_id) VALUES ($1, 'omnizen') ON CONFLICT DO NOTHING`, [orgId]);
    const holder = await t.db.admin.connect();
    let answers: { status: number; body: any }[];
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM core.organizations WHERE id = $1 FOR UPDATE', [orgId]);
      const first = accept(orgId, ann, forAnn.token).then((r) => r);
      const second = accept(orgId, ben, forBen.token).then((r) => r);
      let settled = 0;
      void first.then(() => settled++);
      void second.then(() => settled++);
      await until('both acceptances wait (for the organization row or the limit lock) or are answered', async () => settled === 2 || (await t.db.admin.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND usename = 'omnizen_api' AND wait_event_type = 'Lock'`)).rows[0].n === 2);
      await holder.query('COMMIT');
      answers = await Promise.all([first, second]);
    } finally {
      holder.release();
    }
    expect(answers.map((r) => r.status).sort()).toEqual([200, 402]);
    const [joined, refused] = answers[0].status === 200 ? [answers[0], answers[1]] : [answers[1], answers[0]];
    const [winner, loser] = joined.body.userId === ann.id ? [forAnn, forBen] : [forBen, forAnn];
    expect(joined.body).toEqual({ orgId, userId: joined.body.userId, role: 'member' });
    expect(refused.body.error).toEqual(LIMIT_REACHED);
    expect(await members(orgId)).toBe(5);
    expect(await pending(orgId)).toEqual([loser.id]);
    expect(await pending(orgId)).not.toContain(winner.id);
  });

  it("the limit is EntitlementsService's: one read of the billing context serves it and the writes rule, decided in that order", async () => {
    const orgId = await createOrg(t, owner, 'Read Once Co');
    await onPlan(t, orgId, 'professional');
    for (let i = 0; i < 4; i++) await addMember(t, orgId, await registerUser(t, `seat${i}`), 'member'); // 5 members
    const dan = await registerUser(t, 'dan');
    const forDan = await invite(orgId, dan.email);
    // counted against the starter plan's 5 users; the subscription canceled too: the limit is answered (as before)
    await onPlan(t, orgId, 'starter', 'canceled');

    // a spy on billing's own repository (the real query still runs) counts the reads of this organization's context
    const spy = jest.spyOn(billingRepository, 'billingContext');
    const reads = () => spy.mock.calls.filter(([, org]) => org === orgId).map(([, org, app]) => [org, app]);
    try {
      expect((await accept(orgId, dan, forDan.token).expect(402)).body.error).toEqual(LIMIT_REACHED);
      expect(reads()).toEqual([[orgId, 'omnizen']]);
      expect(await members(orgId)).toBe(5);
      expect(await pending(orgId)).toEqual([forDan.id]);

      spy.mockClear();
      await onPlan(t, orgId, 'professional', 'active');
      expect((await accept(orgId, dan, forDan.token).expect(200)).body).toEqual({ orgId, userId: dan.id, role: 'member' });
      expect(reads()).toEqual([[orgId, 'omnizen']]);
      expect(await members(orgId)).toBe(6);
      expect(await pending(orgId)).toEqual([]);
    } finally {
      spy.mockRestore();
    }
  });

  it('an app whose catalog has no users limit limits nothing: the acceptance is checked against none (200), not a 500', async () => {
    const orgId = await createOrg(t, owner, 'No Seats Feature Co');
    await onPlan(t, orgId, 'professional');
    for (let i = 0; i < 4; i++) await addMember(t, orgId, await registerUser(t, `free${i}`), 'member'); // 5 members
    const eve = await registerUser(t, 'eve');
    const forEve = await invite(orgId, eve.email);
    await onPlan(t, orgId, 'starter'); // 5 users: full, were the limit in the catalog

    // the Hub's catalog without the users feature (its plans' values go with it), put back after
    const q = async (sql: string) => (await t.db.admin.query(sql)).rows;
    const [feature] = await q(`SELECT to_jsonb(f) AS row FROM hub.features f WHERE app_id = 'omnizen' AND code = 'users'`);
    const planValues = await q(`SELECT to_jsonb(pf) AS row FROM hub.plan_features pf WHERE app_id = 'omnizen' AND feature = 'users'`);
    expect(feature).toBeDefined();
    await q(`DELETE FROM hub.features WHERE app_id = 'omnizen' AND code = 'users'`);
    try {
      const res = await accept(orgId, eve, forEve.token);
      expect([res.status, res.body]).toEqual([200, { orgId, userId: eve.id, role: 'member' }]);
      expect(await members(orgId)).toBe(6);
      expect(await pending(orgId)).toEqual([]);
    } finally {
      await t.db.admin.query('INSERT INTO hub.features SELECT * FROM jsonb_populate_record(NULL::hub.features, $1)', [feature.row]);
      for (const { row } of planValues) {
        await t.db.admin.query('INSERT INTO hub.plan_features SELECT * FROM jsonb_populate_record(NULL::hub.plan_features, $1)', [row]);
      }
    }
  });
});
