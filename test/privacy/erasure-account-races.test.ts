import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onPlan, registerUser, verifyEmailOf, type TestUser } from '../support/factories.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { linkToken, settle } from '../notifications/notifications-support.js';
import { pauseNext, releaseAll, waitsForLockOrAnswers } from '../auth/lock-order.js';
import { hashToken } from '../../src/modules/auth/token.service.js';
import { accountTokenRepository } from '../../src/modules/auth/account-token.repository.js';
import { identityRepository } from '../../src/modules/auth/identity.repository.js';
import { AuditService } from '../../src/modules/audit/audit.service.js';
import { DataExportService } from '../../src/modules/privacy/data-export.service.js';
import { agentsRepository } from '../../src/modules/agents/agents.repository.js';
import { EMAIL_JOB, EmailDeliveryService } from '../../src/modules/notifications/email-delivery.service.js';

const PASSWORD = 'correct horse battery';

/**
 * An erasure (DELETE /v1/me) next to another write of the same person: e-mail verification, the mail job minting a
 * reset or verification link, a sign-out. The erasure locks the person's row, then revokes, deletes and blanks their
 * rows (identities, verification and reset tokens, deliveries...). A write that locked one of those rows and then
 * waited for the person's row (or for a row the erasure had already deleted) closed a cycle: PostgreSQL's deadlock
 * detector rolled one of the two back (409 conflict.retry, or a failed job). The writes now take the person's row first.
 */
describe('erasure next to e-mail verification, the mail job and a sign-out of the same person', () => {
  let t: TestApp;
  let smtp: SmtpDouble;

  beforeAll(async () => {
    smtp = await startSmtpDouble();
    t = await createTestApp({ ...smtp.env, AUTH_COOKIES: 'false', REDIS_URL: '', APP_URL: 'https://app.omnizen.test' });
  });
  afterEach(() => {
    releaseAll();
    jest.restoreAllMocks();
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  type Response = { status: number; body: any };
  const q = async (sql: string, params: unknown[] = []) => (await t.db.admin.query(sql, params)).rows;
  const erase = (u: TestUser) => t.http.delete('/v1/me').set(u.auth).send({}).then((r): Response => r);
  const verify = (u: TestUser, token: string) => t.http.post('/v1/auth/verify-email').set(u.auth).send({ token }).then((r): Response => r);
  const logout = (u: TestUser) => t.http.post('/v1/auth/logout').set(u.auth).send({}).then((r): Response => r);
  const answer = (r: Response) => [r.status, r.body?.error?.code ?? r.body];

  async function verificationLink(u: TestUser): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    await q(`INSERT INTO core.email_verification_tokens (token_hash, user_id, email, expires_at) VALUES ($1, $2, $3, now() + interval '1 day')`,
      [hashToken(token), u.id, u.email]);
    return token;
  }

  /** The erased account: pseudonymous, no way in, no link or e-mail of it left. */
  const state = async (userId: string) => (await q(
    `SELECT u.email,
            (SELECT count(*)::int FROM core.user_identities WHERE user_id = u.id) AS identities,
            (SELECT count(*)::int FROM core.email_verification_tokens WHERE user_id = u.id) AS verification_links,
            (SELECT count(*)::int FROM core.password_reset_tokens WHERE user_id = u.id) AS reset_links,
            (SELECT count(*)::int FROM core.email_deliveries WHERE user_id = u.id) AS deliveries,
            (SELECT count(*)::int FROM core.sessions WHERE user_id = u.id AND revoked_at IS NULL) AS live_sessions
     FROM core."User" u WHERE u.id = $1`, [userId]))[0];
  const erased = (userId: string) => ({ email: `erased+${userId}@invalid`, identities: 0, verification_links: 0, reset_links: 0, deliveries: 0, live_sessions: 0 });
  const audited = async (u: TestUser, action: string) =>
    (await q('SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = $2', [u.personalOrgId, action]))[0].n;
  const erasedRows = async (userId: string) =>
    (await q(`SELECT after->'rowsByTable' AS rows FROM core.audit_logs WHERE action = 'user.erased' AND entity_id = $1`, [userId]))[0].rows;

  /**
   * The erasure holds the person's row (locked, their keys shredded and sessions revoked, not committed) when `request`
   * starts; once the request waits for a lock, the erasure goes on. Both answers.
   */
  async function duringErasure<R>(u: TestUser, request: () => Promise<R>) {
    const paused = pauseNext(t.app.get(DataExportService), 'expireOfPerson');
    const erasure = erase(u);
    await paused.reached;
    const during = request();
    expect(await waitsForLockOrAnswers(t.db.admin, during)).toBe('waiting');
    paused.release();
    return { erasure: await erasure, during: await during };
  }

  /** `request` is paused at `at` (its locks held, not committed) when the erasure starts; once that waits, it goes on. */
  async function beforeErasure<R>(u: TestUser, at: { reached: Promise<void>; release(): void }, request: () => Promise<R>) {
    const before = request();
    await at.reached;
    const erasure = erase(u);
    expect(await waitsForLockOrAnswers(t.db.admin, erasure)).toBe('waiting');
    at.release();
    return { before: await before, erasure: await erasure };
  }

  describe('e-mail verification (POST /v1/auth/verify-email)', () => {
    it('verified while the erasure holds the account: refused (401, the account is erased), nothing verified; it used to deadlock (409)', async () => {
      const u = await registerUser(t, 'raceverify', PASSWORD);
      const token = await verificationLink(u);

      const race = await duringErasure(u, () => verify(u, token));
      expect(answer(race.erasure)).toEqual([200, expect.objectContaining({ userId: u.id })]);
      expect([race.during.status, race.during.body]).toEqual([401, { error: { code: 'auth.unauthorized', message: 'this account has been erased' }, requestId: expect.any(String) }]);
      expect(await state(u.id)).toEqual(erased(u.id));
      expect(await erasedRows(u.id)).toMatchObject({ 'core.user_identities': 1, 'core.email_verification_tokens': 1 });
      expect(await audited(u, 'user.email_verified')).toBe(0);
    });

    it('verified before the erasure takes the account: the verification completes (200), then the erasure erases (the proven address too)', async () => {
      const u = await registerUser(t, 'verifyfirst', PASSWORD);
      const token = await verificationLink(u);

      const race = await beforeErasure(u, pauseNext(t.app.get(AuditService), 'recordPrivileged'), () => verify(u, token));
      expect(answer(race.before)).toEqual([200, { email: u.email, verified: true }]);
      expect(answer(race.erasure)).toEqual([200, expect.objectContaining({ userId: u.id })]);
      expect(await state(u.id)).toEqual(erased(u.id));
      expect(await audited(u, 'user.email_verified')).toBe(1);
      expect(await erasedRows(u.id)).toMatchObject({ 'core.user_identities': 1, 'core.email_verification_tokens': 1 });
    });
  });

  describe('the mail job minting the link of a queued account e-mail', () => {
    const cases = [
      { template: 'password_reset', subject: 'Reset your OmniZen password', pauseMinting: () => pauseNext(accountTokenRepository, 'addResetToken'),
        queue: (u: TestUser) => t.http.post('/v1/auth/password-reset').send({ email: u.email }).expect(202) },
      { template: 'email_verification', subject: 'Verify your e-mail address for OmniZen', pauseMinting: () => pauseNext(identityRepository, 'addVerificationToken'),
        queue: (u: TestUser) => t.http.post('/v1/auth/email-verification').set(u.auth).send({}).expect(204) },
    ];

    /** A queued e-mail of `template` to the person, its job not run yet: the job as the relay hands it over. */
    async function queued(u: TestUser, c: (typeof cases)[number]) {
      await settle(t); // the registration's own e-mail, out of the way
      await c.queue(u);
      const [job] = await q(`SELECT o.id::text, o.org_id AS "orgId", o.topic, o.payload FROM core.outbox o
        JOIN core.email_deliveries d ON d.id::text = o.payload->>'deliveryId'
        WHERE o.topic = $1 AND d.user_id = $2 AND d.template = $3 AND o.processed_at IS NULL`, [EMAIL_JOB, u.id, c.template]);
      expect(job).toBeDefined();
      const before = smtp.messages.length;
      return {
        send: () => t.app.get(EmailDeliveryService).send(job),
        /** what the job mailed the person */
        mailed: () => smtp.messages.slice(before).filter((m) => m.to.includes(u.email) && m.subject === c.subject),
      };
    }

    it.each(cases)('$template: the job runs while the erasure holds the account: no link, no mail, the job ends (the delivery went with the person); it used to deadlock', async (c) => {
      const u = await registerUser(t, `racejob${c.template.replace('_', '')}`, PASSWORD);
      const { send, mailed } = await queued(u, c);

      const race = await duringErasure(u, () => send().then(() => 'done', (err: Error) => err));
      expect(answer(race.erasure)).toEqual([200, expect.objectContaining({ userId: u.id })]);
      expect(race.during).toBe('done');
      expect(await state(u.id)).toEqual(erased(u.id));
      expect(mailed()).toEqual([]);
    });

    it.each(cases)('$template: the job is making the link (its delivery locked) when the erasure starts: the erasure waits, the link is mailed, then the erasure deletes it; it used to deadlock', async (c) => {
      const u = await registerUser(t, `jobfirst${c.template.replace('_', '')}`, PASSWORD);
      const { send, mailed } = await queued(u, c);

      const race = await beforeErasure(u, c.pauseMinting(), () => send().then(() => 'done', (err: Error) => err));
      expect(race.before).toBe('done');
      expect(answer(race.erasure)).toEqual([200, expect.objectContaining({ userId: u.id })]);
      expect(await state(u.id)).toEqual(erased(u.id));
      const mails = mailed();
      expect(mails).toHaveLength(1);
      // the link mailed just before the erasure is of no use after it
      const { token } = linkToken(mails[0].text, c.template === 'password_reset' ? '/reset-password' : '/verify-email');
      if (c.template === 'password_reset') {
        expect(answer(await t.http.post('/v1/auth/password-reset/confirm').send({ token, password: 'a password after the erasure' }).then((r): Response => r)))
          .toEqual([400, 'auth.reset_invalid']);
      } else {
        expect(answer(await verify(u, token))).toEqual([401, 'auth.unauthorized']);
      }
    });
  });

  describe('sign-out (POST /v1/auth/logout)', () => {
    it('a sign-out while the erasure holds the account waits for it; the erasure ended the session (401), nothing else written', async () => {
      const u = await registerUser(t, 'racelogout', PASSWORD);

      const race = await duringErasure(u, () => logout(u));
      expect(answer(race.erasure)).toEqual([200, expect.objectContaining({ userId: u.id, sessionsRevoked: 1 })]);
      expect(answer(race.during)).toEqual([401, 'auth.unauthorized']);
      expect(await state(u.id)).toEqual(erased(u.id));
      expect(await q('SELECT revoked_reason FROM core.sessions WHERE user_id = $1', [u.id])).toEqual([{ revoked_reason: 'erased' }]);
      expect(await audited(u, 'auth.session_revoked')).toBe(0);
    });

    it('a sign-out under way (its session revoked, its audit row next) when the erasure starts: the erasure waits, then erases (no session left to revoke)', async () => {
      const u = await registerUser(t, 'logoutfirst', PASSWORD);

      const race = await beforeErasure(u, pauseNext(t.app.get(AuditService), 'record'), () => logout(u));
      expect(race.before.status).toBe(204);
      expect(answer(race.erasure)).toEqual([200, expect.objectContaining({ userId: u.id, sessionsRevoked: 0 })]);
      expect(await state(u.id)).toEqual(erased(u.id));
      expect(await q('SELECT revoked_reason FROM core.sessions WHERE user_id = $1', [u.id])).toEqual([{ revoked_reason: 'revoked_by_user' }]);
      expect(await audited(u, 'auth.session_revoked')).toBe(1);
    });
  });

  describe('an organization\'s members while its owner is erased', () => {
    const membersOf = async (orgId: string) => q('SELECT user_id, role FROM core.memberships WHERE org_id = $1 ORDER BY role, user_id', [orgId]);

    it('an invitee accepting while the only member is erased waits for the erasure, then finds the organization deleted (404); it used to join the deleted organization', async () => {
      const a = await verifyEmailOf(t, await registerUser(t, 'soleowner', PASSWORD));
      const b = await verifyEmailOf(t, await registerUser(t, 'joiner', PASSWORD));
      const orgId = await createOrg(t, a, 'Solo Until Now');
      await onPlan(t, orgId, 'professional');
      const inv = await t.http.post(`/v1/orgs/${orgId}/invitations`).set(a.auth).send({ email: b.email, role: 'member' }).expect(201);

      const race = await duringErasure(a, () => t.http.post('/v1/invitations/accept').set(b.auth).send({ orgId, token: inv.body.token }).then((r): Response => r));
      expect(answer(race.erasure)).toEqual([200, expect.objectContaining({ deletedOrganizationIds: expect.arrayContaining([orgId]) })]);
      expect(answer(race.during)).toEqual([404, 'invitation.not_found']);
      expect(await membersOf(orgId)).toEqual([{ user_id: a.id, role: 'owner' }]); // the deleted organization keeps its rows, B is not among them
      expect((await q('SELECT deleted_at IS NOT NULL AS deleted FROM core.organizations WHERE id = $1', [orgId]))[0]).toEqual({ deleted: true });
    });

    it('two owners erased at once: the second waits, then is refused as the only owner left (409 privacy.sole_owner); it used to answer 422', async () => {
      const a = await registerUser(t, 'owna', PASSWORD);
      const b = await registerUser(t, 'ownb', PASSWORD);
      const c = await registerUser(t, 'memberc', PASSWORD);
      const orgId = await createOrg(t, a, 'Two Owners Ltd');
      await addMember(t, orgId, b, 'owner');
      await addMember(t, orgId, c, 'member');

      const race = await duringErasure(a, () => erase(b));
      expect(answer(race.erasure)).toEqual([200, expect.objectContaining({ leftOrganizationIds: expect.arrayContaining([orgId]) })]);
      expect(answer(race.during)).toEqual([409, 'privacy.sole_owner']);
      expect(await membersOf(orgId)).toEqual([{ user_id: b.id, role: 'owner' }, { user_id: c.id, role: 'member' }].sort((x, y) => x.role.localeCompare(y.role)));
      expect((await state(b.id)).email).toBe(b.email);
    });

    /**
     * The erasure locks the person's organizations, then their runs; a deletion of one of those organizations locked its
     * running runs first and the organization's row last: two owners, A's run running, B deleting while A is erased
     * deadlocked (40P01, 409 conflict.retry). The deletion now locks the organization first: whichever comes second waits.
     */
    it.each(['erasure', 'deletion'] as const)('the other owner deletes the organization while a run of the erased owner runs, the %s first: the other waits, both succeed; it used to deadlock (409)', async (first) => {
      const a = await registerUser(t, `runowner${first}`, PASSWORD);
      const b = await registerUser(t, `deleter${first}`, PASSWORD);
      const orgId = await createOrg(t, a, `Deleted While Erasing ${first}`);
      await addMember(t, orgId, b, 'owner');
      const [{ id: agentId }] = await q(`INSERT INTO ai.agents (org_id, name, type, model_id, created_by) VALUES ($1, 'Runner', 'assistant', 'gpt-4o-mini', $2) RETURNING id`, [orgId, a.id]);
      const [{ id: runId }] = await q(`INSERT INTO ai.runs (org_id, agent_id, model_id, started_by, input, started_at, status, lease_until)
        VALUES ($1, $2, 'gpt-4o-mini', $3, '{"messages":[]}', now(), 'running', now() + interval '1 hour') RETURNING id`, [orgId, agentId, a.id]);
      const deletion = () => t.http.delete(`/v1/orgs/${orgId}`).set(b.auth).then((r): Response => r);

      const race = first === 'erasure'
        ? await duringErasure(a, deletion).then((r) => ({ erasure: r.erasure, deletion: r.during }))
        // the deletion holding the organization and its runs (cancelled, not committed)
        : await beforeErasure(a, pauseNext(agentsRepository, 'clearCancelEventMarks'), deletion).then((r) => ({ erasure: r.erasure, deletion: r.before }));
      expect([race.deletion.status, race.deletion.body]).toEqual([204, {}]);
      // the erasure first: A leaves the organization, then B deletes it; the deletion first: the erasure finds it deleted
      expect(answer(race.erasure)).toEqual([200, expect.objectContaining({
        userId: a.id, leftOrganizationIds: first === 'erasure' ? [orgId] : [] })]);
      expect(await state(a.id)).toEqual(erased(a.id));
      expect(await q('SELECT deleted_at IS NOT NULL AS deleted FROM core.organizations WHERE id = $1', [orgId])).toEqual([{ deleted: true }]);
      expect(await q('SELECT status FROM ai.runs WHERE id = $1', [runId])).toEqual([{ status: 'cancelled' }]);
      expect(await q(`SELECT after->>'reason' AS reason FROM core.audit_logs WHERE org_id = $1 AND action = 'ai.run_cancelled' AND entity_id = $2`, [orgId, runId]))
        .toEqual([{ reason: first === 'erasure' ? null : 'organization_deleted' }]);
    });

    it('the other owner stepping down while the erasure runs (after it counted the owners): 409 privacy.sole_owner, nothing erased', async () => {
      const a = await registerUser(t, 'ownx', PASSWORD);
      const b = await registerUser(t, 'owny', PASSWORD);
      const c = await registerUser(t, 'memberz', PASSWORD);
      const orgId = await createOrg(t, a, 'Stepping Down Ltd');
      await addMember(t, orgId, b, 'owner');
      await addMember(t, orgId, c, 'member');

      const paused = pauseNext(t.app.get(DataExportService), 'expireOfPerson');
      const erasure = erase(a);
      await paused.reached;
      await t.http.patch(`/v1/orgs/${orgId}/members/${b.id}`).set(b.auth).send({ role: 'member' }).expect(200);
      paused.release();
      expect(answer(await erasure)).toEqual([409, 'privacy.sole_owner']);
      expect(await membersOf(orgId)).toEqual([{ user_id: b.id, role: 'member' }, { user_id: c.id, role: 'member' }, { user_id: a.id, role: 'owner' }]
        .sort((x, y) => x.role.localeCompare(y.role) || x.user_id.localeCompare(y.user_id)));
      expect((await state(a.id)).email).toBe(a.email);
    });
  });
});
