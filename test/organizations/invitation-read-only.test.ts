import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, onPlan, registerUser as registerUnverified, verifyEmailOf, type TestUser } from '../support/factories.js';

/** Invitees accept with the admin's token, which needs a verified e-mail. */
const registerUser = async (t: TestApp, prefix: string) => verifyEmailOf(t, await registerUnverified(t, prefix));

/**
 * Accepting an invitation adds a member: a write. While the organization's omnizen subscription is read-only (canceled,
 * unpaid, a trial over, past due beyond the grace) it is refused like the organization's other writes, 402
 * billing.subscription_inactive, and the invitation stays pending; it used to add the member regardless.
 */
describe('invitations: accepting needs a subscription that allows writes', () => {
  let t: TestApp;
  let owner: TestUser;
  const clock = new ManualClock();

  beforeAll(async () => {
    t = await createTestApp({}, { clock });
    owner = await registerUser(t, 'owner');
  });
  afterAll(() => t.close());

  const invite = (orgId: string, email: string) =>
    t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email, role: 'member' }).expect(201).then((r) => r.body as { id: string; token: string });
  const accept = (orgId: string, who: TestUser, token: string) => t.http.post('/v1/invitations/accept').set(who.auth).send({ orgId, token });
  /** What an acceptance leaves in the database: the invitee's membership, the invitation, its audit row and event. */
  const traces = async (orgId: string, who: TestUser, invitationId: string) => ({
    membership: (await t.db.admin.query('SELECT role FROM core.memberships WHERE org_id = $1 AND user_id = $2', [orgId, who.id])).rows,
    invitation: (await t.db.admin.query('SELECT accepted_at, accepted_by FROM core.invitations WHERE id = $1', [invitationId])).rows,
    audited: (await t.db.admin.query(`SELECT entity_id FROM core.audit_logs WHERE org_id = $1 AND action = 'invitation.accepted'`, [orgId])).rows,
    joined: (await t.db.admin.query(`SELECT payload -> 'payload' ->> 'userId' AS user_id FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event' AND payload ->> 'type' = 'member.joined'`, [orgId])).rows,
  });
  const untouched = { membership: [], invitation: [{ accepted_at: null, accepted_by: null }], audited: [], joined: [] };

  it('a canceled subscription: 402 billing.subscription_inactive, nothing written, the invitation pending; accepted once renewed', async () => {
    const orgId = await createOrg(t, owner, 'Canceled Co');
    await onPlan(t, orgId, 'professional');
    const ann = await registerUser(t, 'ann');
    const invitation = await invite(orgId, ann.email);
    await onPlan(t, orgId, 'professional', 'canceled');

    const refused = await accept(orgId, ann, invitation.token).expect(402);
    expect(refused.body.error).toEqual({
      code: 'billing.subscription_inactive',
      message: 'the omnizen subscription of this organization is read-only: the subscription is canceled; renew or upgrade it to make changes; '
        + 'the invitation stays pending until then',
      details: { app: 'omnizen', plan: 'professional', status: 'canceled' },
    });
    expect(await traces(orgId, ann, invitation.id)).toEqual(untouched);
    const pending = await t.http.get(`/v1/orgs/${orgId}/invitations?status=pending`).set(owner.auth).expect(200);
    expect(pending.body.items.map((i: { id: string }) => i.id)).toEqual([invitation.id]);
    await t.http.get(`/v1/orgs/${orgId}`).set(ann.auth).expect(404);

    await onPlan(t, orgId, 'professional', 'active');
    const accepted = await accept(orgId, ann, invitation.token).expect(200);
    expect(accepted.body).toEqual({ orgId, userId: ann.id, role: 'member' });
    expect(await traces(orgId, ann, invitation.id)).toEqual({
      membership: [{ role: 'member' }], invitation: [{ accepted_at: expect.any(Date), accepted_by: ann.id }], audited: [{ entity_id: ann.id }], joined: [{ user_id: ann.id }],
    });
  });

  it('an unpaid subscription answers a wrong token or another e-mail as any organization does: its billing state is told only to the invitee', async () => {
    const orgId = await createOrg(t, owner, 'Unpaid Co');
    await onPlan(t, orgId, 'starter');
    const bob = await registerUser(t, 'bob');
    const eve = await registerUser(t, 'eve');
    const invitation = await invite(orgId, bob.email);
    await onPlan(t, orgId, 'starter', 'unpaid');

    expect((await accept(orgId, eve, 'x'.repeat(43)).expect(404)).body.error.code).toBe('invitation.not_found');
    expect((await accept(orgId, eve, invitation.token).expect(403)).body.error.code).toBe('invitation.email_mismatch');
    const refused = await accept(orgId, bob, invitation.token).expect(402);
    expect(refused.body.error).toMatchObject({ code: 'billing.subscription_inactive', details: { app: 'omnizen', plan: 'starter', status: 'unpaid' } });
    expect(await traces(orgId, bob, invitation.id)).toEqual(untouched);
  });

  // last: the clock stays moved, so every organization made after this would start past its trial
  it("the default trial over on the application's clock: 402, the invitation pending", async () => {
    const orgId = await createOrg(t, owner, 'Trial Over Co');
    const cy = await registerUser(t, 'cy');
    const invitation = await invite(orgId, cy.email);
    const trialEndsAt = new Date((await t.http.get(`/v1/orgs/${orgId}/entitlements?app=omnizen`).set(owner.auth).expect(200)).body.trialEndsAt);
    clock.advance(trialEndsAt.getTime() - clock.now() + 60_000); // a minute after the end

    const refused = await accept(orgId, cy, invitation.token).expect(402);
    expect(refused.body.error).toEqual({
      code: 'billing.subscription_inactive',
      message: `the omnizen subscription of this organization is read-only: the trial ended on ${trialEndsAt.toISOString().slice(0, 10)}; renew or upgrade it `
        + 'to make changes; the invitation stays pending until then',
      details: { app: 'omnizen', plan: 'starter', status: 'trialing' },
    });
    expect(await traces(orgId, cy, invitation.id)).toEqual(untouched);
  });
});
