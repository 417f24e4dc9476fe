import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, uniqueEmail } from '../support/factories.js';
import { ManualClock } from '../support/clock.js';
import { SignInFailureAudit } from '../../src/modules/auth/sign-in-failure-audit.js';

const PASSWORD = 'correct horse battery';

/** A wrong password on an e-mail change or an erasure is audited as a failed sign-in (as login and linking are), its lockout too. */
describe('failed re-authentication audited: e-mail change and erasure', () => {
  let t: TestApp;
  const clock = new ManualClock();

  beforeAll(async () => {
    t = await createTestApp({ REDIS_URL: undefined }, { clock });
  });
  afterAll(async () => {
    await t?.close();
  });

  const auditOf = async (orgId: string, action: string) => (await t.db.admin.query(
    'SELECT principal_type, entity_id, after FROM core.audit_logs WHERE org_id = $1 AND action = $2 ORDER BY id', [orgId, action])).rows;

  it('a wrong password on an e-mail change: 403, one auth.login_failed (route email_change), and the lockout audited', async () => {
    const dee = await registerUser(t, 'dee', PASSWORD);
    const statuses: number[] = [];
    const codes: string[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await t.http.post('/v1/auth/email-change').set(dee.auth).send({ newEmail: uniqueEmail('dee-new'), password: `guess ${i}` });
      statuses.push(res.status);
      codes.push(res.body.error.code);
    }
    expect(statuses).toEqual([403, 403, 403, 403, 403, 429]);
    expect(codes).toEqual(['auth.password_incorrect', 'auth.password_incorrect', 'auth.password_incorrect', 'auth.password_incorrect', 'auth.password_incorrect', 'auth.locked']);
    await t.app.get(SignInFailureAudit).settled();
    // at most one a minute per account (the failed sign-ins' audit window)
    expect(await auditOf(dee.personalOrgId, 'auth.login_failed')).toEqual([{ principal_type: 'system', entity_id: dee.id, after: { route: 'email_change' } }]);
    expect(await auditOf(dee.personalOrgId, 'auth.locked')).toEqual([{ principal_type: 'system', entity_id: dee.id, after: { route: 'email_change' } }]);
    expect(await auditOf(dee.personalOrgId, 'auth.email_change_requested')).toEqual([]);
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.email_change_requests WHERE user_id = $1', [dee.id])).rows).toEqual([{ n: 0 }]);
  });

  it('a wrong password on the erasure: 403, one auth.login_failed (route erasure), the person kept, and the lockout audited', async () => {
    const eve = await registerUser(t, 'eve', PASSWORD);
    const statuses: number[] = [];
    const codes: string[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await t.http.delete('/v1/me').set(eve.auth).send({ password: `guess ${i}` });
      statuses.push(res.status);
      codes.push(res.body.error.code);
    }
    expect(statuses).toEqual([403, 403, 403, 403, 403, 429]);
    expect(codes).toEqual(['privacy.password_incorrect', 'privacy.password_incorrect', 'privacy.password_incorrect', 'privacy.password_incorrect', 'privacy.password_incorrect', 'auth.locked']);
    const wrong = await t.http.delete('/v1/me').set(eve.auth).send({ password: 'guess again' }).expect(429);
    expect(wrong.body.error.code).toBe('auth.locked');
    await t.app.get(SignInFailureAudit).settled();
    expect(await auditOf(eve.personalOrgId, 'auth.login_failed')).toEqual([{ principal_type: 'system', entity_id: eve.id, after: { route: 'erasure' } }]);
    expect(await auditOf(eve.personalOrgId, 'auth.locked')).toEqual([{ principal_type: 'system', entity_id: eve.id, after: { route: 'erasure' } }]);
    expect((await t.db.admin.query('SELECT email FROM core."User" WHERE id = $1', [eve.id])).rows).toEqual([{ email: eve.email }]);
  });
});
