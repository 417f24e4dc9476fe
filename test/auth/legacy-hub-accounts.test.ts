import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import jwt from 'jsonwebtoken';
import { migrate, projectRoot } from '../../src/platform/database/migrator.js';
import { loadConfig, type AppConfig } from '../../src/platform/config/config.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { startApp } from '../support/app.js';
import { uniqueEmail } from '../support/factories.js';

const IDENTITIES = '20261202000100_identities';
const MIGRATION = '20270210960100_legacy_hub_accounts';
const migrations = readdirSync(join(projectRoot(), 'prisma', 'migrations')).sort();
const beforeIdentities = migrations.filter((m) => m < IDENTITIES).at(-1)!;
const beforeMigration = migrations.filter((m) => m < MIGRATION).at(-1)!;
const quiet = { log: () => undefined };

/**
 * Before 2026-12-02 the token exchange found users by e-mail and kept no Hub (NextAuth) subject; the identities migration
 * then recorded no Hub identity for the accounts the Hub had made, and gave each a Supabase identity named after its id,
 * which no Supabase user has. Their owner's first Hub sign-in got 409 auth.link_required (no email_verified) or claimed
 * the account as an unverified one (sessions revoked, invitations revoked, ... : AccountClaim). Migration 20270210960100
 * records those accounts; the first Hub sign-in of the e-mail joins the account without a claim.
 */
describe('accounts the Hub made before identities: the first Hub sign-in joins them as their own', () => {
  let db: TestDatabase;
  let config: AppConfig;
  let api: Awaited<ReturnType<typeof startApp>>;
  const q = (sql: string, params: unknown[] = []) => db.admin.query(sql, params);

  interface OldAccount { id: string; email: string; personalOrgId: string }
  /** An account as the old exchange made it (userRepository.upsert of 78877a6 and its audit row), with a live session. */
  async function oldExchangeAccount(provider: 'nextauth' | 'supabase', prefix: string, extra: Record<string, unknown> = {}): Promise<OldAccount> {
    const id = randomUUID(); // the old exchange's randomUUID() for a Hub user, the auth.users id for a Supabase one
    const email = uniqueEmail(prefix);
    await q(`INSERT INTO auth.users (id, email) VALUES ($1, $2)`, [id, email]);
    await q(`INSERT INTO core."User" (id, email, name, "accountType", "createdAt", "updatedAt") VALUES ($1, $2, 'Old Hub User', 'personal', now(), now())`, [id, email]);
    const { rows: [org] } = await q(`INSERT INTO core.organizations (name, account_type, owner_user_id) VALUES ($1, 'personal', $2) RETURNING id`, [email, id]);
    await q(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'owner')`, [org.id, id]);
    await q(`INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, after) VALUES ($1, $2, 'user', 'user.registered', 'user', $2, $3)`,
      [org.id, id, { id, email, name: 'Old Hub User', image: null, accountType: 'personal', provider, ...extra }]);
    await q(`INSERT INTO core.sessions (user_id, expires_at) VALUES ($1, now() + interval '30 days')`, [id]);
    return { id, email, personalOrgId: org.id };
  }

  let hubVerified: OldAccount; // its owner's Hub token says email_verified
  let hubUnverified: OldAccount; // its owner's Hub token does not
  let hubLinkedBySupabase: OldAccount; // GoTrue linked a sign-in to its auth.users row (Supabase-shaped auth schema)
  let hubClaimedSince: OldAccount; // claimed by a verified Hub sign-in after the upgrade, before this migration
  let supabaseMade: OldAccount; // not the Hub's: keeps today's behaviour
  let forgedVictim: OldAccount; // not the Hub's; another member of its organization forged a Hub registration row for it
  let attacker: OldAccount;
  let hubWithPassword: OldAccount; // the Hub's, but a password was set on it (a claim by a reset)
  let hubVerifiedSupabase: OldAccount; // the Hub's, but its Supabase identity proved the e-mail
  let hubErased: OldAccount; // the Hub's, erased
  let madeSince: OldAccount; // a Hub registration row with emailVerified: made since identities, by today's exchange
  let passwordSince: OldAccount; // recorded, then a password was set (a reset) before its first Hub sign-in
  let acme: string;
  let invitation: string;

  beforeAll(async () => {
    db = await createTestDatabase({ template: null });
    await migrate(db.url, { ...quiet, until: beforeIdentities });
    hubVerified = await oldExchangeAccount('nextauth', 'hub-verified');
    hubUnverified = await oldExchangeAccount('nextauth', 'hub-unverified');
    hubLinkedBySupabase = await oldExchangeAccount('nextauth', 'hub-gotrue');
    hubClaimedSince = await oldExchangeAccount('nextauth', 'hub-claimed');
    supabaseMade = await oldExchangeAccount('supabase', 'supa');
    forgedVictim = await oldExchangeAccount('supabase', 'victim');
    attacker = await oldExchangeAccount('supabase', 'attacker');
    hubWithPassword = await oldExchangeAccount('nextauth', 'hub-password');
    hubVerifiedSupabase = await oldExchangeAccount('nextauth', 'hub-supa-verified');
    hubErased = await oldExchangeAccount('nextauth', 'hub-erased');
    madeSince = await oldExchangeAccount('nextauth', 'made-since', { emailVerified: false });
    passwordSince = await oldExchangeAccount('nextauth', 'password-since');
    await q(`UPDATE core."User" SET email = 'erased+' || id || '@invalid' WHERE id = $1`, [hubErased.id]);
    // what any Supabase user could write (2026-11-22 .. 20270202000200): audit rows as itself in an organization of its
    // own, with any entity and after; here in an organization it shares with its victim, and in its personal one
    const { rows: [{ id: shared }] } = await q(`INSERT INTO core.organizations (name, account_type, owner_user_id) VALUES ('Shared', 'business', $1) RETURNING id`, [attacker.id]);
    await q(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'owner'), ($1, $3, 'member')`, [shared, attacker.id, forgedVictim.id]);
    for (const orgId of [shared, attacker.personalOrgId]) {
      await q(`INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, after) VALUES ($1, $2, 'user', 'user.registered', 'user', $3, $4)`,
        [orgId, attacker.id, forgedVictim.id, { id: forgedVictim.id, accountType: 'personal', provider: 'nextauth' }]);
    }
    // the Hub user's company, with an invitation it sent, still pending
    ({ rows: [{ id: acme }] } = await q(`INSERT INTO core.organizations (name, account_type, owner_user_id) VALUES ('Acme', 'business', $1) RETURNING id`, [hubVerified.id]));
    await q(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'owner')`, [acme, hubVerified.id]);
    ({ rows: [{ id: invitation }] } = await q(`INSERT INTO core.invitations (org_id, email, role, token_hash, invited_by, expires_at)
      VALUES ($1, $2, 'member', $3, $4, now() + interval '7 days') RETURNING id`, [acme, uniqueEmail('invitee'), randomUUID(), hubVerified.id]));

    await migrate(db.url, { ...quiet, until: beforeMigration });
    // what the identities migration left: a Supabase identity named after the id, which no Supabase user has
    const { rows } = await q(`SELECT provider, subject FROM core.user_identities WHERE user_id = $1`, [hubVerified.id]);
    expect(rows).toEqual([{ provider: 'supabase', subject: hubVerified.id }]);
    // a verified Hub sign-in claimed this one meanwhile: it has its Hub identity, nothing to record
    await q(`DELETE FROM core.user_identities WHERE user_id = $1`, [hubClaimedSince.id]);
    await q(`INSERT INTO core.user_identities (provider, subject, user_id, email, email_verified_at) VALUES ('nextauth', 'hub-claimed', $1, $2, now())`,
      [hubClaimedSince.id, hubClaimedSince.email]);
    await q(`UPDATE core.user_identities SET email_verified_at = now() WHERE user_id = $1`, [hubVerifiedSupabase.id]);
    // a password only (one from before identities got a password identity, which the identity check already excludes)
    await q(`INSERT INTO core.user_credentials (user_id, password_hash) VALUES ($1, '$2a$12$legacy')`, [hubWithPassword.id]);
    // auth as Supabase shapes it: GoTrue's columns, its identities; it linked a sign-in to one mirror row
    await q(`ALTER TABLE auth.users ADD COLUMN is_sso_user boolean NOT NULL DEFAULT false, ADD COLUMN instance_id uuid, ADD COLUMN aud varchar(255)`);
    await q(`CREATE TABLE auth.identities (user_id uuid NOT NULL, provider text NOT NULL)`);
    await q(`INSERT INTO auth.identities (user_id, provider) VALUES ($1, 'google')`, [hubLinkedBySupabase.id]);
    await q(`UPDATE auth.users SET aud = 'authenticated', instance_id = '00000000-0000-0000-0000-000000000000' WHERE id = $1`, [supabaseMade.id]);

    expect(await migrate(db.url, quiet)).toContain(MIGRATION);
    await q(`INSERT INTO core.user_credentials (user_id, password_hash) VALUES ($1, '$2a$12$reset')`, [passwordSince.id]);
    config = loadConfig({
      ...process.env, NODE_ENV: 'test', DATABASE_URL: db.url, API_DATABASE_URL: db.apiUrl, API_DATABASE_POOL_SIZE: '4',
      REDIS_URL: undefined, REDIS_PREFIX: `test:${db.name}`, JOBS_RELAY_INTERVAL_MS: '0', MIGRATE_ON_START: 'false',
    });
    api = await startApp(config);
  }, 300_000);
  afterAll(async () => {
    await api?.app.close();
    await db.drop();
    expect(api?.contract.violations ?? []).toEqual([]);
  });

  const hubToken = (claims: Record<string, unknown>) => jwt.sign(claims, config.auth.nextAuthSecret!, { algorithm: 'HS256', expiresIn: 600 });
  const exchange = (claims: Record<string, unknown>) => api.http.post('/v1/auth/exchange').send({ token: hubToken(claims) });
  const identitiesOf = async (userId: string) => (await q(
    `SELECT provider, subject, email_verified_at IS NOT NULL AS verified FROM core.user_identities WHERE user_id = $1 ORDER BY provider`, [userId])).rows;
  const auditOf = async (orgId: string, action: string) => (await q(
    `SELECT actor_id, principal_type, entity_id, before, after FROM core.audit_logs WHERE org_id = $1 AND action = $2 ORDER BY id`, [orgId, action])).rows;
  const recorded = async () => (await q(`SELECT user_id FROM core.legacy_hub_accounts ORDER BY user_id`)).rows.map((r) => r.user_id);

  it('records the accounts the Hub made, nothing claimed since and whose Supabase identity is nobody\'s; drops that identity', async () => {
    expect(await recorded()).toEqual([hubVerified.id, hubUnverified.id, passwordSince.id].sort());
    expect(await identitiesOf(hubVerified.id)).toEqual([]);
    expect(await identitiesOf(hubUnverified.id)).toEqual([]);
    // GoTrue linked a sign-in to its auth.users row: that Supabase identity may be someone's, it stays, and the account
    // is not recorded (a join would remove nothing)
    expect(await identitiesOf(hubLinkedBySupabase.id)).toEqual([{ provider: 'supabase', subject: hubLinkedBySupabase.id, verified: false }]);
    // not the Hub's (a forged row), or claimed since (password, verified identity), erased, or made since: not recorded
    for (const account of [forgedVictim, attacker, hubWithPassword, hubVerifiedSupabase, hubErased, madeSince]) {
      expect(await auditOf(account.personalOrgId, 'auth.legacy_hub_account_recorded')).toEqual([]);
    }
    expect(await identitiesOf(forgedVictim.id)).toEqual([{ provider: 'supabase', subject: forgedVictim.id, verified: false }]);
    expect(await identitiesOf(hubVerifiedSupabase.id)).toEqual([{ provider: 'supabase', subject: hubVerifiedSupabase.id, verified: true }]);
    expect(await identitiesOf(hubClaimedSince.id)).toEqual([{ provider: 'nextauth', subject: 'hub-claimed', verified: true }]);
    expect(await identitiesOf(supabaseMade.id)).toEqual([{ provider: 'supabase', subject: supabaseMade.id, verified: false }]);
    const entry = (identities: string[]) => ({
      actor_id: `migration:${MIGRATION.split('_')[0]}`, principal_type: 'system', before: { identities: ['supabase'] }, after: { identities, legacyHubAccount: true },
    });
    expect(await auditOf(hubVerified.personalOrgId, 'auth.legacy_hub_account_recorded')).toEqual([{ ...entry([]), entity_id: hubVerified.id }]);
    expect(await auditOf(hubLinkedBySupabase.personalOrgId, 'auth.legacy_hub_account_recorded')).toEqual([]);
    expect(await auditOf(supabaseMade.personalOrgId, 'auth.legacy_hub_account_recorded')).toEqual([]);
    // the table: RLS forced, service_role reads and consumes, API-facing roles nothing
    const { rows: [t] } = await q(`SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'core.legacy_hub_accounts'::regclass`);
    expect(t).toEqual({ relrowsecurity: true, relforcerowsecurity: true });
    const { rows: grants } = await q(`SELECT grantee, privilege_type FROM information_schema.role_table_grants
      WHERE table_schema = 'core' AND table_name = 'legacy_hub_accounts' AND grantee IN ('anon', 'authenticated', 'service_role', 'PUBLIC') ORDER BY 1, 2`);
    expect(grants).toEqual([{ grantee: 'service_role', privilege_type: 'DELETE' }, { grantee: 'service_role', privilege_type: 'SELECT' }]);
  });

  it('the first Hub sign-in with email_verified gets into the account with its organizations: nothing claimed, closed or revoked', async () => {
    const res = await exchange({ sub: 'hub-sub-verified', email: hubVerified.email, email_verified: true, name: 'Hub Ada' }).expect(200);
    expect(res.body).toMatchObject({ user: { id: hubVerified.id, email: hubVerified.email, name: 'Hub Ada' }, personalOrgId: hubVerified.personalOrgId });
    const orgs = await api.http.get('/v1/orgs').set('Authorization', `Bearer ${res.body.accessToken}`).expect(200);
    expect(orgs.body.map((o: { id: string; role: string }) => ({ id: o.id, role: o.role })).sort((a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : 1)))
      .toEqual([{ id: acme, role: 'owner' }, { id: hubVerified.personalOrgId, role: 'owner' }].sort((a, b) => (a.id < b.id ? -1 : 1)));

    expect(await identitiesOf(hubVerified.id)).toEqual([{ provider: 'nextauth', subject: 'hub-sub-verified', verified: true }]);
    const { rows: sessions } = await q(`SELECT revoked_at, revoked_reason FROM core.sessions WHERE user_id = $1 ORDER BY created_at`, [hubVerified.id]);
    expect(sessions).toEqual([{ revoked_at: null, revoked_reason: null }, { revoked_at: null, revoked_reason: null }]);
    const { rows: invitations } = await q(`SELECT revoked_at FROM core.invitations WHERE org_id = $1 AND id = $2`, [acme, invitation]);
    expect(invitations).toEqual([{ revoked_at: null }]);
    expect(await auditOf(hubVerified.personalOrgId, 'auth.unverified_account_claimed')).toEqual([]);
    expect(await auditOf(acme, 'invitation.revoked')).toEqual([]);
    expect(await auditOf(hubVerified.personalOrgId, 'auth.identity_linked')).toEqual([{
      actor_id: hubVerified.id, principal_type: 'user', entity_id: hubVerified.id, before: null,
      after: expect.objectContaining({ provider: 'nextauth', emailVerified: true, by: 'legacy_hub_account' }),
    }]);
    expect(await recorded()).not.toContain(hubVerified.id);
    // the address is told of the new way in (a security notice, not a claim's)
    const { rows: mails } = await q(`SELECT template, to_address FROM core.email_deliveries WHERE org_id = $1 ORDER BY created_at`, [hubVerified.personalOrgId]);
    expect(mails).toEqual([{ template: 'sign_in_method_added', to_address: hubVerified.email }]);

    // the same Hub user again: found by its identity
    const again = await exchange({ sub: 'hub-sub-verified', email: hubVerified.email }).expect(200);
    expect(again.body.user.id).toBe(hubVerified.id);
  });

  it('the first Hub sign-in without email_verified gets in too; the record is used up: another Hub subject of the address is refused', async () => {
    const res = await exchange({ sub: 'hub-sub-unverified', email: hubUnverified.email }).expect(200);
    expect(res.body).toMatchObject({ user: { id: hubUnverified.id }, personalOrgId: hubUnverified.personalOrgId });
    await api.http.get('/v1/orgs').set('Authorization', `Bearer ${res.body.accessToken}`).expect(200);
    expect(await identitiesOf(hubUnverified.id)).toEqual([{ provider: 'nextauth', subject: 'hub-sub-unverified', verified: false }]);
    const { rows: sessions } = await q(`SELECT count(*)::int AS live FROM core.sessions WHERE user_id = $1 AND revoked_at IS NULL`, [hubUnverified.id]);
    expect(sessions).toEqual([{ live: 2 }]);
    expect(await auditOf(hubUnverified.personalOrgId, 'auth.identity_linked')).toEqual([
      expect.objectContaining({ after: expect.objectContaining({ provider: 'nextauth', emailVerified: false, by: 'legacy_hub_account' }) }),
    ]);
    expect(await recorded()).not.toContain(hubUnverified.id);

    const other = await exchange({ sub: 'someone-else', email: hubUnverified.email }).expect(409);
    expect(other.body.error.code).toBe('auth.link_required');
    expect(await identitiesOf(hubUnverified.id)).toEqual([{ provider: 'nextauth', subject: 'hub-sub-unverified', verified: false }]);
  });

  it('an account the Hub did not make keeps today\'s behaviour: 409 without email_verified, nothing written', async () => {
    const res = await exchange({ sub: 'hub-sub-supa', email: supabaseMade.email }).expect(409);
    expect(res.body.error.code).toBe('auth.link_required');
    expect(await identitiesOf(supabaseMade.id)).toEqual([{ provider: 'supabase', subject: supabaseMade.id, verified: false }]);
    expect(await auditOf(supabaseMade.personalOrgId, 'auth.identity_linked')).toEqual([]);
    // and one claimed since is an ordinary account of its Hub identity
    const claimed = await exchange({ sub: 'another-hub-sub', email: hubClaimedSince.email }).expect(409);
    expect(claimed.body.error.code).toBe('auth.link_required');
  });

  it('a forged Hub registration row gets nobody into its victim: a Hub token of the victim\'s address without email_verified is refused', async () => {
    const res = await exchange({ sub: 'evil', email: forgedVictim.email }).expect(409);
    expect(res.body.error.code).toBe('auth.link_required');
    expect(await identitiesOf(forgedVictim.id)).toEqual([{ provider: 'supabase', subject: forgedVictim.id, verified: false }]);
    expect(await auditOf(forgedVictim.personalOrgId, 'auth.identity_linked')).toEqual([]);
    const { rows } = await q(`SELECT count(*)::int AS n FROM core.sessions WHERE user_id = $1`, [forgedVictim.id]);
    expect(rows).toEqual([{ n: 1 }]);
  });

  it('an account whose Supabase identity stayed keeps today\'s behaviour: 409 without email_verified, the identity stays', async () => {
    const res = await exchange({ sub: 'hub-sub-gotrue', email: hubLinkedBySupabase.email }).expect(409);
    expect(res.body.error.code).toBe('auth.link_required');
    expect(await identitiesOf(hubLinkedBySupabase.id)).toEqual([{ provider: 'supabase', subject: hubLinkedBySupabase.id, verified: false }]);
    expect(await auditOf(hubLinkedBySupabase.personalOrgId, 'auth.identity_linked')).toEqual([]);
    // a Hub-made account with a password keeps it too
    const withPassword = await exchange({ sub: 'hub-sub-password', email: hubWithPassword.email }).expect(409);
    expect(withPassword.body.error.code).toBe('auth.link_required');
    expect(await identitiesOf(hubWithPassword.id)).toEqual([{ provider: 'supabase', subject: hubWithPassword.id, verified: false }]);
    const { rows } = await q(`SELECT count(*)::int AS n FROM core.user_credentials WHERE user_id = $1`, [hubWithPassword.id]);
    expect(rows).toEqual([{ n: 1 }]);
  });

  it('a recorded account given a password since is not joined: 409 without email_verified (record kept), a verified sign-in claims it', async () => {
    const res = await exchange({ sub: 'hub-sub-password-since', email: passwordSince.email }).expect(409);
    expect(res.body.error.code).toBe('auth.link_required');
    expect(await identitiesOf(passwordSince.id)).toEqual([]);
    expect(await recorded()).toContain(passwordSince.id); // nothing half-written
    expect(await auditOf(passwordSince.personalOrgId, 'auth.legacy_hub_account_dropped')).toEqual([]);

    const claimed = await exchange({ sub: 'hub-sub-password-since', email: passwordSince.email, email_verified: true }).expect(200);
    expect(claimed.body.user.id).toBe(passwordSince.id);
    expect(await identitiesOf(passwordSince.id)).toEqual([{ provider: 'nextauth', subject: 'hub-sub-password-since', verified: true }]);
    expect(await recorded()).not.toContain(passwordSince.id);
    expect(await auditOf(passwordSince.personalOrgId, 'auth.legacy_hub_account_dropped')).toEqual([{
      actor_id: null, principal_type: 'system', entity_id: passwordSince.id,
      before: { legacyHubAccount: true }, after: { legacyHubAccount: false, reason: 'claimed_since' },
    }]);
    expect(await auditOf(passwordSince.personalOrgId, 'auth.unverified_account_claimed')).toEqual([
      expect.objectContaining({ before: expect.objectContaining({ passwordRemoved: true }) }),
    ]);
    const { rows } = await q(`SELECT count(*)::int AS n FROM core.user_credentials WHERE user_id = $1`, [passwordSince.id]);
    expect(rows).toEqual([{ n: 0 }]);
  });
});
