import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onEnterprisePlan, registerUser, verifyEmailOf, type TestUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { waitsForLockOrAnswers } from '../auth/lock-order.js';

/**
 * API keys end to end: plan gate, one-time secret, scopes per route, own organization only, revocation, the audit
 * actor, last-used at most once a minute, and the database's own verification of keyed claims.
 */
describe('API keys', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgA: string;
  let orgB: string;
  let starterOrg: string;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'keyowner');
    orgA = await createOrg(t, owner, 'Keyed A');
    orgB = await createOrg(t, owner, 'Keyed B');
    starterOrg = await createOrg(t, owner, 'Starter');
    await onEnterprisePlan(t, orgA);
    await onEnterprisePlan(t, orgB);
  });
  afterAll(async () => {
    await t.close();
  });

  const createKey = async (orgId: string, scopes: string[], name = 'integration') => {
    const res = await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(owner.auth).send({ name, scopes }).expect(201);
    return res.body as { id: string; secret: string; prefix: string; scopes: string[] };
  };
  const bearer = (secret: string) => ({ Authorization: `Bearer ${secret}` });

  it('refuses to create keys on a plan without api_access (402 naming the feature and the plan to upgrade to)', async () => {
    const res = await t.http.post(`/v1/orgs/${starterOrg}/api-keys`).set(owner.auth).send({ name: 'x', scopes: ['ledger:read'] }).expect(402);
    expect(res.body.error).toMatchObject({ code: 'billing.feature_not_in_plan', details: { feature: 'api_access', upgradeTo: 'enterprise' } });
    const { rows } = await t.db.admin.query('SELECT count(*)::int AS n FROM core.api_keys WHERE org_id = $1', [starterOrg]);
    expect(rows[0].n).toBe(0);
  });

  it('refuses keys on a personal organization (422), even on a personal plan with API access: a key would not see that plan (402 starter)', async () => {
    const solo = await registerUser(t, 'keysolo');
    await t.db.admin.query(`INSERT INTO hub."Subscription" (id, "userId", "appId", plan, status, "organizationId", "createdAt", "updatedAt")
      VALUES (gen_random_uuid()::text, $1, 'omnizen', 'enterprise', 'active', NULL, now(), now())`, [solo.id]);
    const res = await t.http.post(`/v1/orgs/${solo.personalOrgId}/api-keys`).set(solo.auth).send({ name: 'mine', scopes: ['org:read'] }).expect(422);
    expect(res.body.error).toEqual({
      code: 'api_keys.personal_organization', message: 'a personal organization takes no API keys: create them in a business organization',
    });
    const { rows } = await t.db.admin.query('SELECT count(*)::int AS n FROM core.api_keys WHERE org_id = $1', [solo.personalOrgId]);
    expect(rows[0].n).toBe(0);
  });

  it('shows the secret once, stores only its SHA-256, and never lists it', async () => {
    const key = await createKey(orgA, ['ledger:read'], 'reader');
    expect(key.secret).toMatch(/^ozk_live_[0-9a-f]{32}_[A-Za-z0-9_-]{43}$/);
    expect(key.secret.startsWith(`${key.prefix}_`)).toBe(true);
    const { rows: [row] } = await t.db.admin.query('SELECT * FROM core.api_keys WHERE id = $1', [key.id]);
    expect(row.secret_hash).toBe(createHash('sha256').update(key.secret).digest('hex'));
    expect(JSON.stringify(row)).not.toContain(key.secret.replace(/^ozk_[a-z]+_[^_]+_/, ''));
    const list = await t.http.get(`/v1/orgs/${orgA}/api-keys`).set(owner.auth).expect(200);
    expect(list.body.find((k: any) => k.id === key.id)).toMatchObject({ name: 'reader', scopes: ['ledger:read'], prefix: key.prefix, revokedAt: null });
    expect(JSON.stringify(list.body)).not.toContain(key.secret);
    expect(list.body.every((k: any) => !('secret' in k) && !('secretHash' in k))).toBe(true);
    const { rows: audit } = await t.db.admin.query(`SELECT after FROM core.audit_logs WHERE org_id = $1 AND action = 'api_key.created' AND entity_id = $2`, [orgA, key.id]);
    expect(audit).toHaveLength(1);
    expect(JSON.stringify(audit)).not.toContain(key.secret);
  });

  it('lets a ledger:read key read the ledger and refuses a post with 403 naming ledger:write', async () => {
    await startBooks(t, orgA, owner);
    const key = await createKey(orgA, ['ledger:read']);
    const read = await t.http.get(ledgerUrl(orgA, 'accounts')).set(bearer(key.secret)).expect(200);
    expect(read.body.length).toBeGreaterThan(10);
    const post = await t.http.post(ledgerUrl(orgA, 'accounts')).set(bearer(key.secret)).send({ code: '1119', name: 'Key cash', type: 'asset' }).expect(403);
    expect(post.body.error).toMatchObject({ code: 'api_keys.scope_missing', details: { scope: 'ledger:write' } });
    expect(post.body.error.message).toContain('ledger:write');
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.accounts WHERE org_id = $1 AND code = '1119'`, [orgA]);
    expect(rows[0].n).toBe(0);
  });

  it('audits a keyed write with the key as the actor', async () => {
    const key = await createKey(orgA, ['ledger:read', 'ledger:write'], 'writer');
    const res = await t.http.post(ledgerUrl(orgA, 'accounts')).set(bearer(key.secret)).send({ code: '1118', name: 'Key float', type: 'asset' }).expect(201);
    const { rows } = await t.db.admin.query(`SELECT actor_id, principal_type FROM core.audit_logs WHERE org_id = $1 AND entity_id = $2`, [orgA, res.body.id]);
    expect(rows).toEqual([{ actor_id: `api_key:${key.id}`, principal_type: 'service' }]);
  });

  it('answers 404 for another organization\'s routes, and 403 on /v1/me and on key management', async () => {
    const key = await createKey(orgA, ['ledger:read', 'org:read']);
    const other = await t.http.get(ledgerUrl(orgB, 'accounts')).set(bearer(key.secret)).expect(404);
    expect(other.body.error.code).toBe('organization.not_found');
    await t.http.get(`/v1/orgs/${orgA}`).set(bearer(key.secret)).expect(200);
    const me = await t.http.get('/v1/me/entitlements?app=omnizen').set(bearer(key.secret)).expect(403);
    expect(me.body.error.code).toBe('api_keys.route_closed');
    const keys = await t.http.get(`/v1/orgs/${orgA}/api-keys`).set(bearer(key.secret)).expect(403);
    expect(keys.body.error.code).toBe('api_keys.route_closed');
  });

  it('holds an organization to API_KEYS_MAX_ACTIVE (100) live keys: revoked and expired ones do not count', async () => {
    const capped = await createOrg(t, owner, 'Many Keys');
    await onEnterprisePlan(t, capped);
    // 99 live keys, one revoked and one expired made directly; the 100th through the API
    await t.db.admin.query(`INSERT INTO core.api_keys (org_id, name, prefix, secret_hash, scopes, created_by, revoked_at, expires_at)
      SELECT $1::uuid, 'bulk ' || g, 'ozk_live_' || md5(g || $1::text), md5('h' || g || $1::text) || md5('i' || g || $1::text), '{ledger:read}', $2,
        CASE WHEN g = 100 THEN now() END, CASE WHEN g = 101 THEN now() - interval '1 day' END
      FROM generate_series(1, 101) g`, [capped, owner.id]);
    const hundredth = await createKey(capped, ['ledger:read'], 'the 100th');
    const refused = await t.http.post(`/v1/orgs/${capped}/api-keys`).set(owner.auth).send({ name: 'one too many', scopes: ['ledger:read'] }).expect(409);
    expect(refused.body.error).toMatchObject({ code: 'api_keys.too_many_keys', details: { max: 100 } });
    expect(refused.body.error.message).toMatch(/100 live API keys/);
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.api_keys WHERE org_id = $1 AND name = 'one too many'`, [capped]);
    expect(rows[0].n).toBe(0);
    await t.http.post(`/v1/orgs/${capped}/api-keys/${hundredth.id}/revoke`).set(owner.auth).expect(200);
    await createKey(capped, ['ledger:read'], 'after a revocation');
  });

  it('refuses a revoked key from the next request on (401), and a malformed or unknown one', async () => {
    const key = await createKey(orgA, ['ledger:read']);
    await t.http.get(ledgerUrl(orgA, 'accounts')).set(bearer(key.secret)).expect(200);
    const revoked = await t.http.post(`/v1/orgs/${orgA}/api-keys/${key.id}/revoke`).set(owner.auth).expect(200);
    expect(revoked.body.revokedAt).not.toBeNull();
    const res = await t.http.get(ledgerUrl(orgA, 'accounts')).set(bearer(key.secret)).expect(401);
    expect(res.body.error.message).toContain('revoked');
    await t.http.post(`/v1/orgs/${orgA}/api-keys/${key.id}/revoke`).set(owner.auth).expect(409);
    await t.http.get(ledgerUrl(orgA, 'accounts')).set(bearer(`${key.secret.slice(0, -2)}xx`)).expect(401);
    await t.http.get(ledgerUrl(orgA, 'accounts')).set(bearer('ozk_live_nope')).expect(401);
  });

  it('refuses an expired key from its expiry on (401 "the API key has expired"), touching nothing; the database refuses its claims too', async () => {
    const key = await createKey(orgA, ['ledger:read']);
    const hash = createHash('sha256').update(key.secret).digest('hex');
    const claims = { role: 'authenticated', org_id: orgA, api_key_id: key.id, api_key_hash: hash };
    const checkedByPolicies = () => t.db.as(claims, 'authenticated', 'SELECT public.auth_org_id() AS org');
    await t.http.get(ledgerUrl(orgA, 'accounts')).set(bearer(key.secret)).expect(200);
    expect(await checkedByPolicies()).toEqual([{ org: orgA }]);
    // its expiry passed (no waiting: it moves back); last used two minutes ago, so a request that got through would touch it
    await t.db.admin.query(`UPDATE core.api_keys SET expires_at = now() - interval '1 second', last_used_at = now() - interval '2 minutes' WHERE id = $1`, [key.id]);
    const stale = (await t.db.admin.query('SELECT last_used_at FROM core.api_keys WHERE id = $1', [key.id])).rows[0].last_used_at as Date;
    const res = await t.http.get(ledgerUrl(orgA, 'accounts')).set(bearer(key.secret)).expect(401);
    expect(res.body.error).toEqual({ code: 'auth.unauthorized', message: 'the API key has expired' });
    expect((await t.db.admin.query('SELECT last_used_at, revoked_at FROM core.api_keys WHERE id = $1', [key.id])).rows).toEqual([{ last_used_at: stale, revoked_at: null }]);
    // public.auth_org_id() checks the key again for every policy (core.api_key_valid): its claims no longer name the organization
    expect(await checkedByPolicies()).toEqual([{ org: null }]);
  });

  it('updates last used at most once a minute', async () => {
    const key = await createKey(orgA, ['ledger:read']);
    const lastUsed = async () => (await t.db.admin.query('SELECT last_used_at FROM core.api_keys WHERE id = $1', [key.id])).rows[0].last_used_at;
    expect(await lastUsed()).toBeNull();
    await t.http.get(ledgerUrl(orgA, 'accounts')).set(bearer(key.secret)).expect(200);
    const first = await lastUsed();
    expect(first).not.toBeNull();
    await t.http.get(ledgerUrl(orgA, 'accounts')).set(bearer(key.secret)).expect(200);
    expect(await lastUsed()).toEqual(first);
    await t.db.admin.query(`UPDATE core.api_keys SET last_used_at = now() - interval '2 minutes' WHERE id = $1`, [key.id]);
    await t.http.get(ledgerUrl(orgA, 'accounts')).set(bearer(key.secret)).expect(200);
    expect((await lastUsed()).getTime()).toBeGreaterThan(first.getTime());
  });

  it('never makes a request wait for another\'s last-used touch (or a revocation being written) of the same key', async () => {
    const key = await createKey(orgA, ['ledger:read']);
    const hash = createHash('sha256').update(key.secret).digest('hex');
    const pg = (await import('pg')).default;
    const [first, second] = [new pg.Client({ connectionString: t.db.apiUrl }), new pg.Client({ connectionString: t.db.apiUrl })];
    const revoker = new pg.Client({ connectionString: t.db.url });
    for (const c of [first, second, revoker]) await c.connect();
    const verify = (c: InstanceType<typeof pg.Client>) => c.query('SELECT * FROM public.begin_key_request($1, $2, $3, NULL)', [key.id, hash, orgA]);
    /** Whether `c`'s verification finished without ever waiting for a lock (polls pg_stat_activity; no timer). */
    const finishesWithoutWaiting = async (c: InstanceType<typeof pg.Client>) => {
      const { rows: [{ pid }] } = await c.query('SELECT pg_backend_pid() AS pid');
      let done = false;
      const running = verify(c).finally(() => (done = true));
      for (;;) {
        const { rows: [row] } = await t.db.admin.query('SELECT wait_event_type FROM pg_stat_activity WHERE datname = current_database() AND pid = $1', [pid]);
        if (done) return { waited: false, running };
        if (row?.wait_event_type === 'Lock') return { waited: true, running };
      }
    };
    const lastUsed = async () => (await t.db.admin.query('SELECT last_used_at FROM core.api_keys WHERE id = $1', [key.id])).rows[0].last_used_at as Date | null;
    try {
      // the first request touches last_used_at and has not committed yet
      await first.query('BEGIN');
      await verify(first);
      await second.query('BEGIN');
      const during = await finishesWithoutWaiting(second);
      await first.query('COMMIT');
      expect((await during.running).rows[0]).toMatchObject({ org_id: orgA, role: 'service' });
      await second.query('COMMIT');
      expect(during.waited).toBe(false);
      const touched = await lastUsed();
      expect(touched).not.toBeNull();
      // a revocation being written (the row locked) a minute later: the request neither waits nor touches
      await t.db.admin.query(`UPDATE core.api_keys SET last_used_at = now() - interval '2 minutes' WHERE id = $1`, [key.id]);
      const stale = await lastUsed();
      await revoker.query('BEGIN');
      await revoker.query('UPDATE core.api_keys SET revoked_at = now() WHERE id = $1', [key.id]);
      await second.query('BEGIN');
      const revoking = await finishesWithoutWaiting(second);
      await revoker.query('ROLLBACK');
      await (await revoking.running);
      await second.query('COMMIT');
      expect(revoking.waited).toBe(false);
      expect(await lastUsed()).toEqual(stale);
    } finally {
      for (const c of [first, second, revoker]) await c.end();
    }
  });

  it('is verified by the database: claims naming a key count only with its hash, and a read-only key cannot write', async () => {
    // every scope ends in :read (the knowledge and semantic ones too): the key's transactions are read-only
    const key = await createKey(orgA, ['ledger:read', 'knowledge:read', 'semantic:read']);
    const hash = createHash('sha256').update(key.secret).digest('hex');
    const forged = await t.db.as({ role: 'authenticated', org_id: orgA, api_key_id: key.id, api_key_hash: '0'.repeat(64) }, 'authenticated',
      'SELECT public.auth_org_id() AS org, public.auth_role() AS role');
    expect(forged).toEqual([{ org: null, role: null }]);
    const real = await t.db.as({ role: 'authenticated', org_id: orgA, api_key_id: key.id, api_key_hash: hash }, 'authenticated',
      `SELECT public.auth_org_id() AS org, public.auth_role() AS role, public.auth_has_scope('ledger:read') AS r, public.auth_has_scope('ledger:write') AS w`);
    expect(real).toEqual([{ org: orgA, role: 'service', r: true, w: false }]);
    const api = new (await import('pg')).default.Client({ connectionString: t.db.apiUrl });
    await api.connect();
    try {
      await api.query('BEGIN');
      const { rows: [ctx] } = await api.query('SELECT * FROM public.begin_key_request($1, $2, $3, NULL)', [key.id, hash, orgA]);
      expect(ctx).toMatchObject({ org_id: orgA, role: 'service', scopes: ['ledger:read', 'knowledge:read', 'semantic:read'] });
      await expect(api.query(`INSERT INTO core.analytics_events (org_id, occurred_at, name, source) VALUES ($1, now(), 'x', 'server')`, [orgA]))
        .rejects.toMatchObject({ code: '25006' });
      await api.query('ROLLBACK');
      await api.query('BEGIN');
      await expect(api.query('SELECT * FROM public.begin_key_request($1, $2, $3, NULL)', [key.id, '1'.repeat(64), orgA])).rejects.toMatchObject({ code: '28000' });
      await api.query('ROLLBACK');
    } finally {
      await api.end();
    }
  });

  it('never answers with the secret after creation (lists, revocation, errors, the audit log)', async () => {
    const key = await createKey(orgA, ['ledger:read']);
    const secretPart = key.secret.replace(/^ozk_[a-z]+_[^_]+_/, '');
    const answers = [
      await t.http.get(`/v1/orgs/${orgA}/api-keys`).set(owner.auth).expect(200),
      await t.http.get(ledgerUrl(orgA, 'accounts')).set(bearer(key.secret)).expect(200),
      await t.http.post(ledgerUrl(orgA, 'accounts')).set(bearer(key.secret)).send({ code: '1117', name: 'x', type: 'asset' }).expect(403),
      await t.http.get(`/v1/orgs/${orgA}/audit-logs`).set(owner.auth).expect(200),
      await t.http.post(`/v1/orgs/${orgA}/api-keys/${key.id}/revoke`).set(owner.auth).expect(200),
      await t.http.get(ledgerUrl(orgA, 'accounts')).set(bearer(key.secret)).expect(401),
    ];
    for (const res of answers) {
      expect(JSON.stringify(res.body)).not.toContain(secretPart);
      expect(JSON.stringify(res.headers)).not.toContain(secretPart);
    }
    const { rows } = await t.db.admin.query('SELECT count(*)::int AS n FROM core.audit_logs WHERE after::text LIKE $1', [`%${secretPart}%`]);
    expect(rows[0].n).toBe(0);
  });

  describe('a key ends with its creator\'s right to create it (owner or admin)', () => {
    const teamOrg = async (name: string) => {
      const orgId = await createOrg(t, owner, name);
      await onEnterprisePlan(t, orgId);
      return orgId;
    };
    const admin = async (orgId: string, name: string) => {
      const user = await verifyEmailOf(t, await registerUser(t, name)); // a key's creator needs a verified e-mail
      await addMember(t, orgId, user, 'admin');
      return user;
    };
    const keyOf = async (who: TestUser, orgId: string) => {
      const res = await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(who.auth).send({ name: 'team key', scopes: ['org:read', 'ledger:read', 'ledger:write'] }).expect(201);
      return res.body as { id: string; secret: string };
    };
    /** The key's row and the audit entries of its revocation. */
    const revocationOf = async (keyId: string) => (await t.db.admin.query(
      `SELECT k.revoked_at IS NOT NULL AS revoked, k.revoked_by,
              coalesce(jsonb_agg(jsonb_build_object('actor', a.actor_id, 'principal', a.principal_type, 'reason', a.after->>'reason',
                'revokedAt', a.after->>'revokedAt' IS NOT NULL, 'createdBy', a.after->>'createdBy'))
                FILTER (WHERE a.id IS NOT NULL), '[]') AS audit
       FROM core.api_keys k
       LEFT JOIN core.audit_logs a ON a.org_id = k.org_id AND a.action = 'api_key.revoked' AND a.entity_type = 'api_key' AND a.entity_id = k.id::text
       WHERE k.id = $1 GROUP BY k.revoked_at, k.revoked_by`, [keyId])).rows[0];
    const live = { revoked: false, revoked_by: null, audit: [] };
    const expectRefused = async (orgId: string, key: { secret: string }) => {
      const res = await t.http.get(`/v1/orgs/${orgId}`).set(bearer(key.secret)).expect(401);
      expect(res.body.error).toMatchObject({ code: 'auth.unauthorized', message: 'the API key has been revoked' });
    };

    it('revokes the keys of a removed admin in the removal\'s transaction, audited; the owner\'s key stays', async () => {
      const orgId = await teamOrg('Removal Co');
      const removed = await admin(orgId, 'removed-admin');
      const key = await keyOf(removed, orgId);
      const ownerKey = await keyOf(owner, orgId);
      await t.http.get(`/v1/orgs/${orgId}`).set(bearer(key.secret)).expect(200);

      await t.http.delete(`/v1/orgs/${orgId}/members/${removed.id}`).set(owner.auth).expect(204);
      await t.http.get(`/v1/orgs/${orgId}`).set(removed.auth).expect(404);
      await expectRefused(orgId, key);
      await t.http.get(ledgerUrl(orgId, 'accounts')).set(bearer(key.secret)).expect(401);
      expect(await revocationOf(key.id)).toEqual({
        revoked: true, revoked_by: owner.id,
        audit: [{ actor: owner.id, principal: 'user', reason: 'creator_removed', revokedAt: true, createdBy: removed.id }],
      });
      await t.http.get(`/v1/orgs/${orgId}`).set(bearer(ownerKey.secret)).expect(200);
      expect(await revocationOf(ownerKey.id)).toEqual(live);
      const list = await t.http.get(`/v1/orgs/${orgId}/api-keys?status=active`).set(owner.auth).expect(200);
      expect(list.body.map((k: { id: string }) => k.id)).toEqual([ownerKey.id]);
    });

    it('revokes the keys of an admin demoted below admin; a promotion, owner to admin, and the other members\' keys leave keys alone', async () => {
      const orgId = await teamOrg('Demotion Co');
      const [demoted, promoted] = [await admin(orgId, 'demoted-admin'), await admin(orgId, 'promoted-admin')];
      const [demotedKey, promotedKey, ownerKey] = [await keyOf(demoted, orgId), await keyOf(promoted, orgId), await keyOf(owner, orgId)];

      const res = await t.http.patch(`/v1/orgs/${orgId}/members/${demoted.id}`).set(owner.auth).send({ role: 'accountant' }).expect(200);
      expect(res.body).toMatchObject({ userId: demoted.id, role: 'accountant' });
      await expectRefused(orgId, demotedKey);
      expect(await revocationOf(demotedKey.id)).toEqual({
        revoked: true, revoked_by: owner.id,
        audit: [{ actor: owner.id, principal: 'user', reason: 'creator_demoted', revokedAt: true, createdBy: demoted.id }],
      });

      // admin -> owner, then the first owner -> admin: both still may create keys
      await t.http.patch(`/v1/orgs/${orgId}/members/${promoted.id}`).set(owner.auth).send({ role: 'owner' }).expect(200);
      await t.http.patch(`/v1/orgs/${orgId}/members/${owner.id}`).set(promoted.auth).send({ role: 'admin' }).expect(200);
      for (const key of [promotedKey, ownerKey]) {
        await t.http.get(`/v1/orgs/${orgId}`).set(bearer(key.secret)).expect(200);
        expect(await revocationOf(key.id)).toEqual(live);
      }
    });

    it('revokes them too when the admin leaves, is demoted by an operator\'s SQL, or is erased', async () => {
      const orgId = await teamOrg('Every Path Co');
      const [leaving, sqlDemoted, erased] = [await admin(orgId, 'leaving-admin'), await admin(orgId, 'sql-admin'), await admin(orgId, 'erased-admin')];
      const [leavingKey, sqlKey, erasedKey] = [await keyOf(leaving, orgId), await keyOf(sqlDemoted, orgId), await keyOf(erased, orgId)];

      await t.http.delete(`/v1/orgs/${orgId}/members/me`).set(leaving.auth).expect(204);
      // Supabase's REST path writes no membership (20270205000900); an operator's SQL does, and gets the same
      await t.db.admin.query(`UPDATE core.memberships SET role = 'viewer' WHERE org_id = $1 AND user_id = $2`, [orgId, sqlDemoted.id]);
      await t.http.delete('/v1/me').set(erased.auth).send({}).expect(200);

      for (const key of [leavingKey, sqlKey, erasedKey]) await expectRefused(orgId, key);
      expect(await revocationOf(leavingKey.id)).toEqual({
        revoked: true, revoked_by: leaving.id,
        audit: [{ actor: leaving.id, principal: 'user', reason: 'creator_left', revokedAt: true, createdBy: leaving.id }],
      });
      expect(await revocationOf(sqlKey.id)).toEqual({
        revoked: true, revoked_by: null,
        audit: [{ actor: null, principal: 'system', reason: 'creator_demoted', revokedAt: true, createdBy: sqlDemoted.id }],
      });
      expect(await revocationOf(erasedKey.id)).toEqual({
        revoked: true, revoked_by: null,
        audit: [{ actor: null, principal: 'system', reason: 'creator_erased', revokedAt: true, createdBy: erased.id }],
      });
      // the trigger's audit row names the erasure's request, as the erasure's own rows do (no IP: the erasure records none)
      const { rows } = await t.db.admin.query(
        `SELECT k.request_id IS NOT NULL AS named, k.request_id = e.request_id AS same, k.ip FROM core.audit_logs k, core.audit_logs e
         WHERE k.action = 'api_key.revoked' AND k.entity_id = $1 AND e.action = 'user.erased' AND e.entity_id = $2`, [erasedKey.id, erased.id]);
      expect(rows).toEqual([{ named: true, same: true, ip: null }]);
    });

    it('revokes them when the creator\'s user row is deleted (another app, an operator): created_by still names them then', async () => {
      const orgId = await teamOrg('Deleted User Co');
      const deleted = await admin(orgId, 'deleted-admin');
      const key = await keyOf(deleted, orgId);
      // their personal organization (audited, so kept; owner_user_id has no ON DELETE, and it keeps an owner) changes hands first
      const heir = randomUUID();
      await t.db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [heir, `${heir}@example.test`]);
      await t.db.admin.query('UPDATE core.organizations SET owner_user_id = $2 WHERE id = $1', [deleted.personalOrgId, heir]);
      await t.db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'owner')`, [deleted.personalOrgId, heir]);
      await t.db.admin.query('DELETE FROM core."User" WHERE id = $1', [deleted.id]);

      await expectRefused(orgId, key);
      expect(await revocationOf(key.id)).toEqual({
        revoked: true, revoked_by: null,
        audit: [{ actor: null, principal: 'system', reason: 'creator_deleted', revokedAt: true, createdBy: deleted.id }],
      });
      expect((await t.db.admin.query('SELECT created_by FROM core.api_keys WHERE id = $1', [key.id])).rows).toEqual([{ created_by: null }]);
    });

    it('a key its creator\'s deletion left live before 20270210260100 (created_by NULL) is revoked by migration 20270210300200, audited once', async () => {
      const orgId = await teamOrg('Orphaned Key Co');
      const creator = await admin(orgId, 'orphaning-admin');
      const [orphan, ownerKey] = [await keyOf(creator, orgId), await keyOf(owner, orgId)];
      // as the cascade of a user row's delete left it then (ON DELETE SET NULL, no trigger yet)
      await t.db.admin.query('UPDATE core.api_keys SET created_by = NULL WHERE id = $1', [orphan.id]);
      await t.http.get(`/v1/orgs/${orgId}`).set(bearer(orphan.secret)).expect(200);

      const migrate = async () => { await t.db.admin.query(readFileSync(new URL('../../prisma/migrations/20270210300200_api_keys_of_deleted_creators_revoked/migration.sql', import.meta.url), 'utf8')); };
      await migrate();
      await migrate(); // applied again: nothing more
      await expectRefused(orgId, orphan);
      expect(await revocationOf(orphan.id)).toEqual({
        revoked: true, revoked_by: null,
        audit: [{ actor: 'migration:20270210300200', principal: 'system', reason: 'creator_deleted', revokedAt: true, createdBy: null }],
      });
      await t.http.get(`/v1/orgs/${orgId}`).set(bearer(ownerKey.secret)).expect(200);
      expect(await revocationOf(ownerKey.id)).toEqual(live);
    });

    it('refuses a key whose creator is demoted while it is being created (403 forbidden.role, no key): the role is read again, locked', async () => {
      const orgId = await teamOrg('Race Co');
      const demoted = await admin(orgId, 'racing-admin');
      const c = await t.db.admin.connect();
      try {
        // the demotion holds the membership row; the creation began with the role admin, and waits for it
        await c.query('BEGIN');
        await c.query(`UPDATE core.memberships SET role = 'accountant' WHERE org_id = $1 AND user_id = $2`, [orgId, demoted.id]);
        const creating = t.http.post(`/v1/orgs/${orgId}/api-keys`).set(demoted.auth).send({ name: 'racing', scopes: ['org:read'] }).then((r) => r);
        expect(await waitsForLockOrAnswers(t.db.admin, creating)).toBe('waiting');
        await c.query('COMMIT');
        const res = await creating;
        expect(res.status).toBe(403);
        expect(res.body.error).toEqual({ code: 'forbidden.role', message: 'this action needs the role owner or admin; you are accountant' });
      } finally {
        await c.query('ROLLBACK').catch(() => undefined);
        c.release();
      }
      expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.api_keys WHERE org_id = $1', [orgId])).rows).toEqual([{ n: 0 }]);
    });
  });
});

/**
 * Every line the application logs (at trace level, the most it ever writes) while a key is created, used, refused
 * and revoked, read from the logger itself: the secret is in none of them, nor in any answer after the creation.
 */
describe('API keys: the secret in logs and answers', () => {
  const lines: string[] = [];
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;

  beforeAll(async () => {
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    });
    t = await createTestApp({ LOG_LEVEL: 'trace' }, { logDestination: destination });
    owner = await registerUser(t, 'keylogs');
    orgId = await createOrg(t, owner, 'Logged');
    await onEnterprisePlan(t, orgId);
  });
  afterAll(() => t.close());

  /** Resolves once the request log line of the answer with this request id is written (after the answer is sent). */
  const logged = async (requestId: string) => {
    for (let i = 0; i < 1000 && !lines.some((l) => l.includes(`"reqId":"${requestId}"`)); i++) await new Promise((r) => setImmediate(r));
    expect(lines.some((l) => l.includes(`"reqId":"${requestId}"`))).toBe(true);
  };

  it('never writes the secret to a log line, and never answers with it after creation', async () => {
    const created = await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(owner.auth).send({ name: 'logged', scopes: ['ledger:read'] }).expect(201);
    const { id, secret } = created.body as { id: string; secret: string };
    const secretPart = secret.replace(/^ozk_[a-z]+_[^_]+_/, '');
    const bearer = { Authorization: `Bearer ${secret}` };
    const answers = [
      await t.http.get(ledgerUrl(orgId, 'accounts')).set(bearer).expect(200),
      // refused for a scope, for a route closed to keys, with a secret one character off, and after revocation
      await t.http.post(ledgerUrl(orgId, 'accounts')).set(bearer).send({ code: '1117', name: 'x', type: 'asset' }).expect(403),
      await t.http.get('/v1/auth/identities').set(bearer).expect(403),
      await t.http.get(ledgerUrl(orgId, 'accounts')).set({ Authorization: `Bearer ${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}` }).expect(401),
      await t.http.get(`/v1/orgs/${orgId}/api-keys`).set(owner.auth).expect(200),
      await t.http.get(`/v1/orgs/${orgId}/audit-logs`).set(owner.auth).expect(200),
      await t.http.post(`/v1/orgs/${orgId}/api-keys/${id}/revoke`).set(owner.auth).expect(200),
      await t.http.get(ledgerUrl(orgId, 'accounts')).set(bearer).expect(401),
    ];
    for (const res of answers) {
      expect(JSON.stringify(res.body)).not.toContain(secretPart);
      expect(JSON.stringify(res.headers)).not.toContain(secretPart);
    }
    await logged(answers[answers.length - 1].headers['x-request-id']);
    // the capture saw the whole session: a line per request, the key's id where the application names it
    for (const res of [created, ...answers]) expect(lines.some((l) => l.includes(`"reqId":"${res.headers['x-request-id']}"`))).toBe(true);
    expect(lines.length).toBeGreaterThan(answers.length);
    expect(lines.filter((l) => l.includes(secretPart) || l.includes(secret))).toEqual([]);
  });
});
