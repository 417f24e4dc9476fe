import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { parseOptions } from '@node-rs/argon2';
import bcrypt from 'bcryptjs';
import { Redis } from 'ioredis';
import { createTestApp, hasRedis, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { uniqueEmail } from '../support/factories.js';
import { PasswordHasher } from '../../src/modules/auth/password-hasher.js';
import { REGISTRATION_ACCEPTED } from '../../src/modules/auth/auth.service.js';
import { LoginThrottle } from '../../src/modules/auth/login-throttle.service.js';
import { SignInFailureAudit } from '../../src/modules/auth/sign-in-failure-audit.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { settle } from '../notifications/notifications-support.js';

const PASSWORD = 'correct horse battery';
const WRONG = 'wrong password!';
const LIMITS = { LOGIN_MAX_FAILURES: '5', LOGIN_LOCKOUT_SECONDS: '900', LOGIN_ACCOUNT_MAX_FAILURES: '10', LOGIN_ACCOUNT_WINDOW_SECONDS: '3600' };

async function register(t: TestApp, email = uniqueEmail('pw'), password = PASSWORD) {
  const res = await t.http.post('/v1/auth/register').send({ email, password, name: 'Pat' }).expect(202);
  expect(res.body).toEqual(REGISTRATION_ACCEPTED);
  return email;
}

const login = (t: TestApp, email: string, password: string, ip = '198.51.100.1') =>
  t.http.post('/v1/auth/login').set('X-Forwarded-For', ip).send({ email, password });

/** Counts the password checks the API really runs (real hashes and the dummy one). */
function countPasswordChecks(t: TestApp) {
  const hasher = t.app.get(PasswordHasher);
  const real = jest.spyOn(hasher, 'verify');
  const dummy = jest.spyOn(hasher, 'verifyDummy');
  return {
    get count() { return real.mock.calls.length + dummy.mock.calls.length; },
    restore() { real.mockRestore(); dummy.mockRestore(); },
  };
}

/** The same throttle semantics with Redis (shared by every instance) and in this process. */
describe.each([
  { store: 'in memory', redis: false },
  { store: 'in Redis', redis: true },
])('login throttle ($store)', ({ redis }) => {
  let t: TestApp;
  const clock = new ManualClock();
  const run = redis && !hasRedis ? it.skip : it;

  beforeAll(async () => {
    if (redis && !hasRedis) return;
    t = await createTestApp({ ...LIMITS, ...(redis ? {} : { REDIS_URL: undefined }) }, { clock });
  });
  afterAll(async () => { await t?.close(); });

  run('20 parallel guesses against a limit of 5 check at most 5 passwords; the right one among them cannot slip through', async () => {
    const email = await register(t);
    const checks = countPasswordChecks(t);
    // the right guess is sent once five wrong ones are being checked (their attempts reserved), while the rest are in flight
    const hasher = t.app.get(PasswordHasher);
    let fiveChecking!: () => void;
    const fiveChecks = new Promise<void>((resolve) => { fiveChecking = resolve; });
    const onCheck = () => { if (checks.count >= 5) fiveChecking(); };
    const verify = PasswordHasher.prototype.verify.bind(hasher); // the spy of countPasswordChecks is the same mock: restored with it
    jest.spyOn(hasher, 'verify').mockImplementation((hash, password) => { const check = verify(hash, password); onCheck(); return check; });
    try {
      const wrong = Array.from({ length: 19 }, () => login(t, email, WRONG, '198.51.100.2').then((r) => r)); // sent now
      await Promise.race([fiveChecks, Promise.all(wrong)]);
      const right = await login(t, email, PASSWORD, '198.51.100.2');
      const results = [...await Promise.all(wrong), right];
      expect([right.status, right.body.error?.code]).toEqual([429, 'auth.locked']);
      expect(checks.count).toBeLessThanOrEqual(5);
      const statuses = results.map((r) => r.status);
      expect(statuses).not.toContain(200);
      expect(statuses.filter((s) => s !== 429).length).toBeLessThanOrEqual(5);
      expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(15);
      for (const r of results.filter((x) => x.status === 429)) expect(r.body.error.code).toBe('auth.locked');
    } finally {
      checks.restore();
    }
  });

  run('five wrong passwords lock the account for that address only: its owner signs in from elsewhere (no lockout DoS)', async () => {
    const email = await register(t);
    for (let i = 0; i < 5; i++) await login(t, email, WRONG, '203.0.113.10').expect(401);
    const locked = await login(t, email, PASSWORD, '203.0.113.10').expect(429);
    expect(locked.body.error).toMatchObject({
      code: 'auth.locked', message: expect.stringMatching(/too many failed logins for this account from this address; try again in \d+ seconds/),
      details: { retryAfterSeconds: expect.any(Number) },
    });
    expect(locked.body.error.details.retryAfterSeconds).toBeLessThanOrEqual(900);
    expect(locked.headers['retry-after']).toBe(String(locked.body.error.details.retryAfterSeconds));
    await login(t, email, PASSWORD, '203.0.113.11').expect(200);
    // the lock ends after LOGIN_LOCKOUT_SECONDS, with no sleeping: the injected clock moves
    clock.advance(901_000);
    await login(t, email, PASSWORD, '203.0.113.10').expect(200);
  });

  run('a slower per-account limit (LOGIN_ACCOUNT_MAX_FAILURES) stops guesses spread over many addresses', async () => {
    const email = await register(t);
    for (let i = 0; i < 5; i++) await login(t, email, WRONG, '203.0.113.20').expect(401);
    for (let i = 0; i < 5; i++) await login(t, email, WRONG, '203.0.113.21').expect(401);
    const res = await login(t, email, PASSWORD, '203.0.113.22').expect(429);
    expect(res.body.error.message).toMatch(/for this account; try again/);
    clock.advance(3601_000);
    await login(t, email, PASSWORD, '203.0.113.22').expect(200);
  });

  run('a success resets the account+address counter and gives its attempt back', async () => {
    const email = await register(t);
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 4; i++) await login(t, email, WRONG, '203.0.113.30').expect(401);
      await login(t, email, PASSWORD, '203.0.113.30').expect(200);
    }
  });

  run('limits one address spraying many accounts (4 x LOGIN_MAX_FAILURES), leaving other addresses alone', async () => {
    const ip = '203.0.113.40';
    for (let i = 0; i < 20; i++) await login(t, uniqueEmail('spray'), WRONG, ip).expect(401);
    const email = await register(t);
    const blocked = await login(t, email, PASSWORD, ip).expect(429);
    expect(blocked.body.error.message).toMatch(/for this address/);
    await login(t, email, PASSWORD, '203.0.113.41').expect(200);
    clock.advance(901_000);
  });

  // the same app as the tests above (its clock): no app of its own
  if (redis) run('keeps the counters in Redis, where every instance sees them, and honours a lock another instance wrote', async () => {
    const client = new Redis(process.env.REDIS_URL!);
    try {
      const email = await register(t);
      const ip = '198.51.100.40';
      for (let i = 0; i < 2; i++) await login(t, email, WRONG, ip).expect(401);
      const keys = t.app.get(LoginThrottle).loginKeys(email, ip);
      expect(await client.hget(keys.accountAddress, 'count')).toBe('2');
      expect(await client.hget(keys.account, 'count')).toBe('2');
      expect(await client.pttl(keys.accountAddress)).toBeGreaterThan(0);

      const other = await register(t);
      await client.hset(t.app.get(LoginThrottle).loginKeys(other, ip).account, 'count', '10', 'reset', String(clock.now() + 60_000));
      const res = await login(t, other, PASSWORD, ip).expect(429);
      expect(res.body.error).toMatchObject({ code: 'auth.locked', details: { retryAfterSeconds: expect.any(Number) } });
    } finally {
      client.disconnect();
    }
  });

  // the review's probe (r5): the keys were `login:acct-ip:<email>|<ip>`, `login:acct:<email>`, `login-audit:<kind>:<email>`,
  // which an erasure did not delete. Now they hold keyed hashes: no address to erase, in Redis or in this process. The same
  // for the per-minute request limiter's buckets of an address (r2: `rl:<limit>:ip:<address>`)
  run('no counter key holds an e-mail or a client address; any case of the e-mail counts on the same account', async () => {
    const email = await register(t);
    const unknown = uniqueEmail('nobody');
    const ip = '198.51.100.77';
    await login(t, email, WRONG, ip).expect(401);
    await login(t, email.toUpperCase(), WRONG, ip).expect(401);
    await login(t, unknown, WRONG, ip).expect(401);
    await t.app.get(SignInFailureAudit).settled(); // its once-a-minute counter (login-audit) is written beside the answer
    const keys = t.app.get(LoginThrottle).loginKeys(email, ip);
    let all: string[];
    let countOf: (key: string) => Promise<string | null>;
    if (redis) {
      const client = new Redis(process.env.REDIS_URL!);
      try {
        all = [];
        let cursor = '0';
        do {
          const [next, batch] = await client.scan(cursor, 'MATCH', `${t.config.redisPrefix}:*`, 'COUNT', 1000);
          all.push(...batch);
          cursor = next;
        } while (cursor !== '0');
        // the per-minute request limiter's buckets among them (`rl:<limit>:ip:<keyed hash>`, as the throttle's)
        expect(all.filter((k) => k.startsWith(`${t.config.redisPrefix}:rl:`) && k.includes(':ip:')).length).toBeGreaterThan(0);
        const counts = new Map(await Promise.all([keys.accountAddress, keys.account].map(async (k) => [k, await client.hget(k, 'count')] as const)));
        countOf = async (k) => counts.get(k) ?? null;
      } finally {
        client.disconnect();
      }
    } else {
      // the counters, the lockouts pushed out of them, and the failed-sign-in audit reservations (a map of their own)
      const { memory, lockouts, auditReservations } = t.app.get(LoginThrottle) as unknown as Record<'memory' | 'lockouts' | 'auditReservations', Map<string, { count: number }>>;
      all = [...memory.keys(), ...lockouts.keys(), ...auditReservations.keys()];
      countOf = async (k) => (memory.has(k) ? String(memory.get(k)!.count) : null);
    }
    // both spellings of the address counted on one account counter
    expect([await countOf(keys.accountAddress), await countOf(keys.account)]).toEqual(['2', '2']);
    expect(all).toEqual(expect.arrayContaining([keys.accountAddress, keys.account, keys.address, expect.stringMatching(/:login-audit:auth\.login_failed:/)]));
    const local = (e: string) => e.split('@')[0].toLowerCase();
    const named = all.filter((k) => [email, unknown, ip, local(email), local(unknown), 'example.test'].some((n) => k.toLowerCase().includes(n.toLowerCase())));
    expect(named).toEqual([]);
  });
});

describe('register and password hashing', () => {
  let t: TestApp;
  let smtp: SmtpDouble;
  const clock = new ManualClock();

  beforeAll(async () => {
    smtp = await startSmtpDouble();
    t = await createTestApp({ ...smtp.env, REDIS_URL: undefined, REGISTER_MAX_PER_ADDRESS: '3', REGISTER_WINDOW_SECONDS: '3600' }, { clock });
  });
  afterAll(async () => {
    await t.close();
    await smtp.close();
  });

  // registrations are limited per address: each test registers from its own
  let nextAddress = 0;
  const registerFrom = (body: Record<string, unknown>, ip = `192.0.2.${++nextAddress}`) =>
    t.http.post('/v1/auth/register').set('X-Forwarded-For', ip).send(body);
  const registered = async (email = uniqueEmail('pw')) => {
    await registerFrom({ email, password: PASSWORD, name: 'Pat' }).expect(202);
    return email;
  };

  it('creates the account with an unverified e-mail, a password identity and a personal organization, and audits it', async () => {
    const email = uniqueEmail('ada');
    const res = await registerFrom({ email: email.toUpperCase(), password: PASSWORD, name: 'Ada' }).expect(202);
    expect(res.body).toEqual(REGISTRATION_ACCEPTED);
    const { rows: [user] } = await t.db.admin.query('SELECT id, name FROM core."User" WHERE email = $1', [email]);
    expect(user.name).toBe('Ada');
    const identities = await t.db.admin.query('SELECT provider, subject, email, email_verified_at FROM core.user_identities WHERE user_id = $1', [user.id]);
    expect(identities.rows).toEqual([{ provider: 'password', subject: user.id, email, email_verified_at: null }]);
    const audit = await t.db.admin.query(
      `SELECT a.principal_type, a.actor_id FROM core.audit_logs a JOIN core.organizations o ON o.id = a.org_id
       WHERE o.owner_user_id = $1 AND a.action = 'user.registered'`, [user.id]);
    expect(audit.rows).toEqual([{ principal_type: 'user', actor_id: user.id }]);
    const ok = await login(t, email, PASSWORD, '198.51.100.10').expect(200);
    expect(ok.body.user).toMatchObject({ id: user.id, email, name: 'Ada', accountType: 'personal' });
  });

  it('answers a taken e-mail exactly like a free one, and changes nothing on the existing account', async () => {
    const email = await registered();
    const snapshot = async () => (await t.db.admin.query(
      `SELECT (SELECT count(*)::int FROM core."User") AS users, (SELECT password_hash FROM core.user_credentials c JOIN core."User" u ON u.id = c.user_id WHERE u.email = $1) AS hash`, [email])).rows[0];
    const before = await snapshot();
    const taken = await registerFrom({ email: email.toUpperCase(), password: 'another long password' });
    const free = await registerFrom({ email: uniqueEmail('free'), password: 'another long password' });
    expect(taken.status).toBe(202);
    expect(taken.status).toBe(free.status);
    expect(taken.body).toEqual(free.body);
    expect(JSON.stringify(taken.body)).not.toContain(email);
    const after = await snapshot();
    expect(after).toEqual({ users: before.users + 1, hash: before.hash });
    await login(t, email, 'another long password', '198.51.100.11').expect(401);
    await login(t, email, PASSWORD, '198.51.100.11').expect(200);
  });

  it('registers an address longer than an organization\'s name may be (its personal organization takes the first 200 characters)', async () => {
    const email = `${'a'.repeat(50)}.${Date.now()}@${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(40)}.test`;
    expect(email.length).toBeGreaterThan(200);
    const res = await registerFrom({ email, password: PASSWORD });
    expect([res.status, res.body]).toEqual([202, expect.objectContaining({ status: 'check_email' })]);
    const ok = await login(t, email, PASSWORD, '198.51.100.12').expect(200);
    const { rows } = await t.db.admin.query('SELECT name FROM core.organizations WHERE id = $1', [ok.body.personalOrgId]);
    expect(rows).toEqual([{ name: email.slice(0, 200) }]);
  });

  it('lets only one of two concurrent registrations of an e-mail set the password', async () => {
    const email = uniqueEmail('race');
    const bodies = [{ email, password: PASSWORD }, { email, password: 'another long password' }];
    const results = await Promise.all(bodies.map((b) => registerFrom(b)));
    expect(results.map((r) => r.status)).toEqual([202, 202]);
    const outcomes = await Promise.all(bodies.map((b) => login(t, email, b.password, '198.51.100.50')));
    expect(outcomes.map((r) => r.status).sort()).toEqual([200, 401]);
  });

  it('limits registrations per address (REGISTER_MAX_PER_ADDRESS per REGISTER_WINDOW_SECONDS)', async () => {
    const ip = '192.0.2.200';
    for (let i = 0; i < 3; i++) await registerFrom({ email: uniqueEmail('many'), password: PASSWORD }, ip).expect(202);
    const email = uniqueEmail('many');
    const res = await registerFrom({ email, password: PASSWORD }, ip).expect(429);
    expect(res.body.error).toMatchObject({ code: 'auth.rate_limited', details: { retryAfterSeconds: expect.any(Number) } });
    expect((await t.db.admin.query('SELECT 1 FROM core."User" WHERE email = $1', [email])).rows).toEqual([]);
    await registerFrom({ email, password: PASSWORD }, '192.0.2.201').expect(202);
    clock.advance(3601_000);
    await registerFrom({ email: uniqueEmail('later'), password: PASSWORD }, ip).expect(202);
  });

  it('answers 400 naming every bad field, and rejects unknown ones', async () => {
    const res = await registerFrom({ email: 'not-an-email', password: 'short', admin: true }).expect(400);
    expect(res.body.error.code).toBe('validation_failed');
    expect(res.body.error.details.map((d: { field: string }) => d.field).sort()).toEqual(['admin', 'email', 'password']);
  });

  it('refuses a wrong password and an unknown e-mail with the same 401, after the same kind of hash check', async () => {
    const email = await registered();
    const checks = countPasswordChecks(t);
    try {
      const wrong = await login(t, email, WRONG, '198.51.100.12').expect(401);
      const unknown = await login(t, uniqueEmail('nobody'), PASSWORD, '198.51.100.12').expect(401);
      expect(wrong.body.error).toEqual({ code: 'auth.unauthorized', message: 'email or password is incorrect' });
      expect(unknown.body.error).toEqual(wrong.body.error);
      expect(checks.count).toBe(2);
    } finally {
      checks.restore();
    }
  });

  it('hashes with argon2id, and the dummy hash for unknown e-mails has the same algorithm and costs as real hashes', async () => {
    const email = await registered();
    const { rows: [row] } = await t.db.admin.query(
      'SELECT c.password_hash FROM core.user_credentials c JOIN core."User" u ON u.id = c.user_id WHERE u.email = $1', [email]);
    expect(row.password_hash).toMatch(/^\$argon2id\$/);
    const dummy = await t.app.get(PasswordHasher).dummyHash();
    const costs = (h: string) => {
      const o = parseOptions(h);
      return { algorithm: o.algorithm, memoryCost: o.memoryCost, timeCost: o.timeCost, parallelism: o.parallelism, outputLen: o.outputLen };
    };
    expect(costs(dummy)).toEqual(costs(row.password_hash));
    expect(costs(dummy)).toMatchObject({ memoryCost: t.config.auth.passwordHash.memoryKib, timeCost: t.config.auth.passwordHash.timeCost });
  });

  it('keeps accepting a bcrypt hash from before, and replaces it with argon2id at the next login', async () => {
    const email = await registered();
    await t.db.admin.query(
      'UPDATE core.user_credentials c SET password_hash = $2 FROM core."User" u WHERE u.id = c.user_id AND u.email = $1',
      [email, bcrypt.hashSync(PASSWORD, 4)]);
    await login(t, email, WRONG, '198.51.100.13').expect(401);
    const ok = await login(t, email, PASSWORD, '198.51.100.13').expect(200);
    const { rows: [row] } = await t.db.admin.query('SELECT password_hash FROM core.user_credentials WHERE user_id = $1', [ok.body.user.id]);
    expect(row.password_hash).toMatch(/^\$argon2id\$/);
    await login(t, email, PASSWORD, '198.51.100.13').expect(200);
    const audit = await t.db.admin.query(
      `SELECT after FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.login' ORDER BY id`, [ok.body.personalOrgId]);
    expect(audit.rows).toEqual([{ after: { passwordHashUpgraded: true } }, { after: null }]);
  });

  it('an e-mail change to a taken address answers alike, mails nothing and stores no request naming the address; the pending one ends all the same', async () => {
    const email = await registered();
    const taken = await registered();
    const session = await login(t, email, PASSWORD, '198.51.100.18').expect(200);
    const auth = { Authorization: `Bearer ${session.body.accessToken}` };
    await settle(t);
    const from = smtp.messages.length;
    const free = uniqueEmail('free');
    const first = await t.http.post('/v1/auth/email-change').set(auth).send({ newEmail: free, password: PASSWORD }).expect(202);
    await settle(t);
    const second = await t.http.post('/v1/auth/email-change').set(auth).send({ newEmail: taken, password: PASSWORD }).expect(202);
    await settle(t);
    expect(second.body).toEqual(first.body);
    expect(smtp.messages.slice(from).filter((m) => m.subject.startsWith('Confirm your new e-mail')).map((m) => m.to[0])).toEqual([free]);
    // only the request to the free address, no longer pending: the taken one ended it, as any new request does
    const { rows } = await t.db.admin.query('SELECT new_email, expires_at <= now() AS ended FROM core.email_change_requests WHERE user_id = $1', [session.body.user.id]);
    expect(rows).toEqual([{ new_email: free, ended: true }]);
    const audit = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'auth.email_change_requested'`, [session.body.personalOrgId]);
    expect(audit.rows).toEqual([{ n: 2 }]);
  });

  it('at most 5 e-mail change requests per account per hour, to taken addresses as to free ones (or the 429 would tell them apart): then 429 auth.mail_limited', async () => {
    const email = await registered();
    const taken = await registered();
    const session = await login(t, email, PASSWORD, '198.51.100.20').expect(200);
    const auth = { Authorization: `Bearer ${session.body.accessToken}` };
    const change = (newEmail: string) => t.http.post('/v1/auth/email-change').set(auth).send({ newEmail, password: PASSWORD });
    for (let i = 0; i < 3; i++) await change(uniqueEmail('stranger')).expect(202);
    for (let i = 0; i < 2; i++) await change(taken).expect(202);
    for (const newEmail of [uniqueEmail('stranger'), taken]) {
      const refused = await change(newEmail).expect(429);
      expect(refused.body.error).toEqual({
        code: 'auth.mail_limited', message: expect.stringMatching(/^at most 5 e-mail change requests per hour; try again in \d+ seconds$/),
        details: { limit: 5, retryAfterSeconds: expect.any(Number) },
      });
    }
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.email_deliveries WHERE user_id = $1 AND template = 'email_change_confirm'`, [session.body.user.id]);
    expect(rows).toEqual([{ n: 3 }]);
  });

  describe('e-mail verification', () => {
    /** The verification links mailed (over SMTP, by the outbox's jobs) since this was called. */
    const captureLinks = async () => {
      await settle(t); // mails queued before are not this test's
      const from = smtp.messages.length;
      return {
        async links() {
          await settle(t);
          return smtp.messages.slice(from).filter((m) => m.subject.startsWith('Verify your e-mail'))
            .map((m) => ({ email: m.to[0], link: /https?:\/\/\S+\/verify-email\?token=\S+/.exec(m.text)![0] }));
        },
        restore: () => undefined,
      };
    };
    const tokenOf = (link: string) => new URL(link).searchParams.get('token')!;

    const bearer = (res: { body: { accessToken: string } }) => ({ Authorization: `Bearer ${res.body.accessToken}` });
    const verifiedOf = async (email: string) => (await t.db.admin.query(
      `SELECT i.email_verified_at IS NOT NULL AS verified FROM core.user_identities i JOIN core."User" u ON u.id = i.user_id WHERE u.email = $1`, [email])).rows;

    it('sends a link at registration (none for a taken e-mail); the account\'s own session uses it once, and it is audited', async () => {
      const sent = await captureLinks();
      try {
        const email = await registered();
        await registerFrom({ email, password: 'another long password' }).expect(202);
        const links = await sent.links();
        expect(links.map((l) => l.email)).toEqual([email]);
        expect(links[0].link.startsWith(`${t.config.billing.appUrl}/verify-email?token=`)).toBe(true);
        const token = tokenOf(links[0].link);
        const { rows: stored } = await t.db.admin.query('SELECT token_hash FROM core.email_verification_tokens WHERE email = $1', [email]);
        expect(stored).toHaveLength(1);
        expect(stored[0].token_hash).not.toBe(token); // only the hash is kept

        const session = await login(t, email, PASSWORD, '198.51.100.15').expect(200);
        const res = await t.http.post('/v1/auth/verify-email').set(bearer(session)).send({ token }).expect(200);
        expect(res.body).toEqual({ email, verified: true });
        expect(await verifiedOf(email)).toEqual([{ verified: true }]);
        const again = await t.http.post('/v1/auth/verify-email').set(bearer(session)).send({ token }).expect(400);
        expect(again.body.error.code).toBe('auth.verification_invalid');
        const audit = await t.db.admin.query(
          `SELECT a.actor_id, a.after FROM core.audit_logs a WHERE a.org_id = $1 AND a.action = 'user.email_verified'`, [session.body.personalOrgId]);
        // the e-mail is sealed with the person's key in the row (issue 20); the audit route opens it
        expect(audit.rows).toEqual([{ actor_id: session.body.user.id, after: { $sealed: expect.objectContaining({ fields: ['email'] }) } }]);
        expect(JSON.stringify(audit.rows)).not.toContain(email);
        const read = await t.http.get(`/v1/orgs/${session.body.personalOrgId}/audit-logs?action=user.email_verified`).set(bearer(session)).expect(200);
        expect(read.body.items).toEqual([expect.objectContaining({ actorId: session.body.user.id, after: { email } })]);
      } finally {
        sent.restore();
      }
    });

    it('a link to someone who never registered verifies nothing: the mailbox owner alone, or another account, cannot use it', async () => {
      const sent = await captureLinks();
      try {
        // the attacker pre-registers the victim's address; the link goes to the victim
        const victimEmail = await registered();
        const token = tokenOf((await sent.links())[0].link);
        await t.http.post('/v1/auth/verify-email').send({ token }).expect(401);
        const someoneElse = await login(t, await registered(), PASSWORD, '198.51.100.16').expect(200);
        const other = await t.http.post('/v1/auth/verify-email').set(bearer(someoneElse)).send({ token }).expect(400);
        expect(other.body.error.code).toBe('auth.verification_invalid');
        expect(await verifiedOf(victimEmail)).toEqual([{ verified: false }]);
        // still usable by the account's own session (the link was not used up)
        const own = await login(t, victimEmail, PASSWORD, '198.51.100.16').expect(200);
        await t.http.post('/v1/auth/verify-email').set(bearer(own)).send({ token }).expect(200);
      } finally {
        sent.restore();
      }
    });

    it('sends a signed-in user a new link while the e-mail is unverified, and none once it is', async () => {
      const email = await registered();
      const session = await login(t, email, PASSWORD, '198.51.100.14').expect(200);
      const sent = await captureLinks();
      try {
        await t.http.post('/v1/auth/email-verification').set(bearer(session)).expect(204);
        const links = await sent.links();
        expect(links).toHaveLength(1);
        await t.http.post('/v1/auth/verify-email').set(bearer(session)).send({ token: tokenOf(links[0].link) }).expect(200);
        await t.http.post('/v1/auth/email-verification').set(bearer(session)).expect(204);
        expect(await sent.links()).toHaveLength(1);
        const audit = await t.db.admin.query(
          `SELECT actor_id FROM core.audit_logs WHERE org_id = $1 AND action = 'user.verification_link_sent'`, [session.body.personalOrgId]);
        expect(audit.rows).toEqual([{ actor_id: session.body.user.id }]);
      } finally {
        sent.restore();
      }
    });

    it('sends at most 5 verification e-mails per account per hour (the registration\'s included): then 429 auth.mail_limited, mailing nothing', async () => {
      const email = await registered();
      const session = await login(t, email, PASSWORD, '198.51.100.19').expect(200);
      for (let i = 0; i < 4; i++) await t.http.post('/v1/auth/email-verification').set(bearer(session)).expect(204);
      const refused = await t.http.post('/v1/auth/email-verification').set(bearer(session)).expect(429);
      expect(refused.body.error).toEqual({
        code: 'auth.mail_limited', message: expect.stringMatching(/^at most 5 verification e-mails per hour; try again in \d+ seconds$/),
        details: { limit: 5, retryAfterSeconds: expect.any(Number) },
      });
      expect(refused.body.error.details.retryAfterSeconds).toBeLessThanOrEqual(3600);
      expect(refused.headers['retry-after']).toBe(String(refused.body.error.details.retryAfterSeconds));
      const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.email_deliveries WHERE user_id = $1 AND template = 'email_verification'`, [session.body.user.id]);
      expect(rows).toEqual([{ n: 5 }]);
    });

    it('refuses an expired link (400 auth.verification_invalid): the address stays unverified, the link unused, nothing audited', async () => {
      const sent = await captureLinks();
      const email = await registered();
      const [{ link }] = await sent.links();
      const session = await login(t, email, PASSWORD, '198.51.100.21').expect(200);
      // the link's time is over (no waiting: its expiry moves back)
      const moved = await t.db.admin.query(`UPDATE core.email_verification_tokens SET expires_at = now() - interval '1 second' WHERE user_id = $1`, [session.body.user.id]);
      expect(moved.rowCount).toBe(1);
      const res = await t.http.post('/v1/auth/verify-email').set(bearer(session)).send({ token: tokenOf(link) }).expect(400);
      expect(res.body.error.code).toBe('auth.verification_invalid');
      expect(await verifiedOf(email)).toEqual([{ verified: false }]);
      expect((await t.db.admin.query('SELECT used_at FROM core.email_verification_tokens WHERE user_id = $1', [session.body.user.id])).rows).toEqual([{ used_at: null }]);
      const audit = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'user.email_verified'`, [session.body.personalOrgId]);
      expect(audit.rows).toEqual([{ n: 0 }]);
    });

    it('refuses an unknown or malformed token', async () => {
      const session = await login(t, await registered(), PASSWORD, '198.51.100.17').expect(200);
      const res = await t.http.post('/v1/auth/verify-email').set(bearer(session)).send({ token: 'x'.repeat(43) }).expect(400);
      expect(res.body.error.code).toBe('auth.verification_invalid');
      await t.http.post('/v1/auth/verify-email').set(bearer(session)).send({}).expect(400);
    });
  });
});
