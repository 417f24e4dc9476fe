import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, verifyEmailOf, type TestUser } from '../support/factories.js';
import { pauseNext, releaseAll, waitsForLockOrAnswers } from '../auth/lock-order.js';
import { hashInvitationToken } from '../../src/modules/organizations/invitations.service.js';
import { DataExportService } from '../../src/modules/privacy/data-export.service.js';

/**
 * The invitee accepts while their own erasure (DELETE /v1/me) runs. The erasure locks the person's core."User" row FOR
 * UPDATE, then deletes the invitations to their address and their identities. core.accept_invitation used to lock the
 * invitation (and, with the mailed link's token, update the identity) and then insert the membership, which needs a
 * key-share lock on that same core."User" row: each waited for the other, PostgreSQL's deadlock detector rolled one back
 * (409 conflict.retry). The function now locks the caller's row first, in the erasure's order: the acceptance waits,
 * then finds an erased person, answered like the invitation the erasure deleted (404 invitation.not_found).
 */
describe('accepting an invitation during the invitee\'s erasure', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp({ AUTH_COOKIES: 'false', REDIS_URL: '' });
    owner = await verifyEmailOf(t, await registerUser(t, 'owner'));
  });
  afterEach(() => {
    releaseAll();
    jest.restoreAllMocks();
  });
  afterAll(() => t.close());

  type Response = { status: number; body: any };
  const q = async (sql: string, params: unknown[] = []) => (await t.db.admin.query(sql, params)).rows;

  /** Invites `u` to a new organization; returns it and the token `u` accepts with (the mailed link's, or the admin's). */
  async function invited(u: TestUser, token: 'mailed' | 'shown'): Promise<{ orgId: string; invitationId: string; token: string }> {
    const orgId = await createOrg(t, owner, 'Accept Race Co');
    await onPlan(t, orgId, 'professional');
    const inv = await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email: u.email, role: 'member' }).expect(201);
    if (token === 'shown') return { orgId, invitationId: inv.body.id, token: inv.body.token };
    const mailed = `mailed-link-token-${inv.body.id}`;
    await q('UPDATE core.invitations SET mailed_token_hash = $1 WHERE id = $2', [hashInvitationToken(mailed), inv.body.id]);
    return { orgId, invitationId: inv.body.id, token: mailed };
  }

  /** The erasure holds the person's row (paused after it locked it), the acceptance starts and queues behind it. */
  async function race(u: TestUser, orgId: string, token: string): Promise<{ erasure: Response; acceptance: Response }> {
    const paused = pauseNext(t.app.get(DataExportService), 'expireOfPerson');
    const erasure = t.http.delete('/v1/me').set(u.auth).send({}).then((r): Response => r);
    await paused.reached;
    const acceptance = t.http.post('/v1/invitations/accept').set(u.auth).send({ orgId, token }).then((r): Response => r);
    expect(await waitsForLockOrAnswers(t.db.admin, acceptance, paused)).toBe('waiting');
    paused.release();
    const [e, a] = await Promise.all([erasure, acceptance]);
    return { erasure: e, acceptance: a };
  }

  const after = async (u: TestUser, orgId: string, invitationId: string) => (await q(
    `SELECT u.email,
            (SELECT count(*)::int FROM core.memberships WHERE org_id = $2 AND user_id = u.id) AS memberships,
            (SELECT count(*)::int FROM core.invitations WHERE id = $3) AS invitations,
            (SELECT count(*)::int FROM core.user_identities WHERE user_id = u.id) AS identities
     FROM core."User" u WHERE u.id = $1`, [u.id, orgId, invitationId]))[0];

  it.each([
    ['the mailed link\'s token (an unverified account: the acceptance verifies the identity)', 'mailed' as const, false],
    ['the token shown to the admin (a verified account)', 'shown' as const, true],
  ])('with %s: the erasure completes, the acceptance answers 404 invitation.not_found; no membership is left', async (_label, kind, verified) => {
    const registered = await registerUser(t, 'invitee');
    const u = verified ? await verifyEmailOf(t, registered) : registered;
    const { orgId, invitationId, token } = await invited(u, kind);

    const { erasure, acceptance } = await race(u, orgId, token);

    expect([erasure.status, erasure.body.userId]).toEqual([200, u.id]);
    expect([acceptance.status, acceptance.body.error?.code]).toEqual([404, 'invitation.not_found']);
    // the erasure deletes the invitations to the addresses the person proved: an unverified one may be someone else's
    expect(await after(u, orgId, invitationId)).toEqual({ email: `erased+${u.id}@invalid`, memberships: 0, invitations: verified ? 0 : 1, identities: 0 });
    expect(await q('SELECT accepted_at, accepted_by FROM core.invitations WHERE id = $1', [invitationId]))
      .toEqual(verified ? [] : [{ accepted_at: null, accepted_by: null }]);
    expect(await q('SELECT action FROM core.audit_logs WHERE org_id = $1 AND action = $2', [orgId, 'invitation.accepted'])).toEqual([]);
  });

  it('an acceptance by a person erased meanwhile (their token still unexpired) is 404 invitation.not_found, with no membership', async () => {
    const u = await verifyEmailOf(t, await registerUser(t, 'gone'));
    const { orgId, invitationId, token } = await invited(u, 'shown');
    // as the erasure leaves the row, but with the invitation still there (one made to the address afterwards)
    await q('UPDATE core."User" SET email = $2 WHERE id = $1', [u.id, `erased+${u.id}@invalid`]);
    await q('UPDATE core.invitations SET email = $2 WHERE id = $1', [invitationId, `erased+${u.id}@invalid`]);

    const res = await t.http.post('/v1/invitations/accept').set(u.auth).send({ orgId, token });

    expect([res.status, res.body.error?.code]).toEqual([404, 'invitation.not_found']);
    expect(await after(u, orgId, invitationId)).toMatchObject({ memberships: 0, invitations: 1 });
    expect((await q('SELECT accepted_at FROM core.invitations WHERE id = $1', [invitationId]))[0].accepted_at).toBeNull();
  });
});
