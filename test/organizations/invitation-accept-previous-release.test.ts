import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onPlan, registerUser, verifyEmailOf, type TestUser } from '../support/factories.js';
import { hashInvitationToken } from '../../src/modules/organizations/invitations.service.js';

/**
 * A rolling deploy: 20270207300100 replaced core.accept_invitation(uuid, text) with a three-argument function, and an
 * instance of the previous release, still calling the two-argument one in its tenant transaction, answered every
 * acceptance 500 until it was replaced. The two-argument function is back as a wrapper (for one release): it accepts
 * as the three-argument one does, with the same checks, and counts the members against the users limit as the previous
 * release's function did (its API does not count them after the call).
 */
describe('invitations: the previous release\'s call of core.accept_invitation(uuid, text)', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp({ REDIS_URL: '' });
    owner = await verifyEmailOf(t, await registerUser(t, 'owner'));
  });
  afterAll(() => t.close());

  const invite = (orgId: string, email: string) =>
    t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email, role: 'member' }).expect(201).then((r) => r.body as { id: string; token: string });
  const invitation = async (id: string) => (await t.db.admin.query('SELECT accepted_at IS NOT NULL AS accepted, accepted_by FROM core.invitations WHERE id = $1', [id])).rows[0];
  const memberships = async (orgId: string) => (await t.db.admin.query('SELECT user_id, role FROM core.memberships WHERE org_id = $1 ORDER BY created_at, user_id', [orgId])).rows;

  /** What the previous release's API ran: its login, begin_request with the caller's claims, the two-argument call. */
  async function previousRelease(user: TestUser, orgId: string, token: string): Promise<{ row?: unknown; error?: { code: string; message: string; hint?: string; detail?: unknown } }> {
    const c = new pg.Client({ connectionString: t.db.apiUrl });
    await c.connect();
    try {
      await c.query('BEGIN');
      await c.query(`SELECT public.begin_request($1, 'authenticated')`, [JSON.stringify({ sub: user.id, role: 'authenticated' })]);
      const { rows } = await c.query('SELECT org_id, user_id, role FROM core.accept_invitation($1::uuid, $2)', [orgId, hashInvitationToken(token)]);
      await c.query('COMMIT');
      return { row: rows[0] };
    } catch (err) {
      await c.query('ROLLBACK');
      const e = err as pg.DatabaseError;
      return { error: { code: e.code!, message: e.message, ...(e.hint ? { hint: e.hint } : {}), ...(e.detail ? { detail: JSON.parse(e.detail) } : {}) } };
    } finally {
      await c.end();
    }
  }

  it('accepts as before, with the same checks: the e-mail, a used or unknown token, an unverified address, the REST path', async () => {
    const orgId = await createOrg(t, owner, 'Rolling Deploy Co');
    await onPlan(t, orgId, 'professional');
    const ada = await verifyEmailOf(t, await registerUser(t, 'ada'));
    const eve = await verifyEmailOf(t, await registerUser(t, 'eve'));
    const una = await registerUser(t, 'una'); // e-mail not verified
    const adas = await invite(orgId, ada.email);
    const unas = await invite(orgId, una.email);

    // another person's invitation, an unknown token, an unverified address: refused, nothing written
    expect(await previousRelease(eve, orgId, adas.token)).toEqual({ error: { code: '42501', message: 'invitation was sent to another email address' } });
    expect(await previousRelease(ada, orgId, 'not-a-token')).toEqual({ error: { code: 'P0002', message: 'invitation is invalid, used, revoked or expired' } });
    expect(await previousRelease(una, orgId, unas.token)).toEqual({
      error: { code: 'P0001', message: 'verify your e-mail address first (or accept with the link mailed to it)', hint: 'invitation.email_unverified' },
    });
    // the Supabase REST path (no begin_request): refused as the three-argument function refuses it
    await expect(t.db.as({ sub: ada.id, role: 'authenticated' }, 'authenticated', 'SELECT * FROM core.accept_invitation($1::uuid, $2)', [orgId, hashInvitationToken(adas.token)]))
      .rejects.toThrow(/only through the API/);
    expect(await invitation(adas.id)).toEqual({ accepted: false, accepted_by: null });
    expect(await memberships(orgId)).toEqual([{ user_id: owner.id, role: 'owner' }]);

    // the invitee's own call: the membership, the invitation used (once)
    expect(await previousRelease(ada, orgId, adas.token)).toEqual({ row: { org_id: orgId, user_id: ada.id, role: 'member' } });
    expect(await invitation(adas.id)).toEqual({ accepted: true, accepted_by: ada.id });
    expect(await memberships(orgId)).toEqual([{ user_id: owner.id, role: 'owner' }, { user_id: ada.id, role: 'member' }]);
    expect(await previousRelease(ada, orgId, adas.token)).toEqual({ error: { code: 'P0002', message: 'invitation is invalid, used, revoked or expired' } });

    // the same grants and security as the three-argument function
    const fns = (await t.db.admin.query(
      `SELECT pg_get_function_identity_arguments(p.oid) AS args, p.prosecdef AS definer, p.proconfig AS config,
              has_function_privilege('authenticated', p.oid, 'EXECUTE') AS authenticated, has_function_privilege('anon', p.oid, 'EXECUTE') AS anon,
              has_function_privilege('service_role', p.oid, 'EXECUTE') AS service_role
       FROM pg_proc p WHERE p.pronamespace = 'core'::regnamespace AND p.proname = 'accept_invitation' ORDER BY p.pronargs`)).rows;
    const same = { definer: true, config: ['search_path=""'], authenticated: true, anon: false, service_role: false };
    expect(fns).toEqual([{ args: 'p_org uuid, p_token_hash text', ...same }, { args: 'p_org uuid, p_token_hash text, p_app text', ...same }]);
  });

  it('refuses past the users limit as the previous release did (HINT billing.limit_reached): the invitation stays pending', async () => {
    const orgId = await createOrg(t, owner, 'Downgraded During Deploy Co');
    await onPlan(t, orgId, 'professional');
    const late = await verifyEmailOf(t, await registerUser(t, 'late'));
    const lates = await invite(orgId, late.email);
    // downgraded to starter (5 users) with five members already
    await onPlan(t, orgId, 'starter');
    for (let i = 0; i < 4; i++) await addMember(t, orgId, await registerUser(t, `filler${i}`), 'member');

    expect(await previousRelease(late, orgId, lates.token)).toEqual({
      error: {
        code: 'P0001',
        message: 'the starter plan allows 5 users and this organization already has 5 members; an admin must upgrade to professional before this invitation can be accepted (it stays pending until then)',
        hint: 'billing.limit_reached',
        detail: { app: 'omnizen', feature: 'users', plan: 'starter', limit: 5, usage: 5, upgradeTo: 'professional' },
      },
    });
    expect(await invitation(lates.id)).toEqual({ accepted: false, accepted_by: null });
    expect((await memberships(orgId)).map((m) => m.user_id)).not.toContain(late.id);

    // an upgrade: accepted
    await onPlan(t, orgId, 'professional');
    expect(await previousRelease(late, orgId, lates.token)).toEqual({ row: { org_id: orgId, user_id: late.id, role: 'member' } });
    expect(await invitation(lates.id)).toEqual({ accepted: true, accepted_by: late.id });
  });
});
