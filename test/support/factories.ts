import { randomBytes } from 'node:crypto';
import type { TestApp } from './app.js';

export interface TestUser {
  id: string;
  email: string;
  token: string;
  refreshToken: string;
  personalOrgId: string;
  auth: { Authorization: string };
}

let seq = 0;
export function uniqueEmail(prefix = 'user'): string {
  return `${prefix}.${++seq}.${randomBytes(3).toString('hex')}@example.test`;
}

/** Registers (202, e-mail unverified) and signs in with the password. */
export async function registerUser(t: TestApp, prefix = 'user', password = 'correct horse battery', email = uniqueEmail(prefix)): Promise<TestUser> {
  await t.http.post('/v1/auth/register').send({ email, password, name: prefix }).expect(expectStatus(202));
  const res = await t.http.post('/v1/auth/login').send({ email, password }).expect(expectStatus(200));
  return {
    id: res.body.user.id,
    email,
    token: res.body.accessToken,
    refreshToken: res.body.refreshToken,
    personalOrgId: res.body.personalOrgId,
    auth: { Authorization: `Bearer ${res.body.accessToken}` },
  };
}

/**
 * Like supertest's expect(status), with the answer's body in the failure (a 503 says which of its codes it was); a
 * contract violation's message whole: for a 5xx it holds what the server logged (its error's name, message and stack).
 */
function expectStatus(status: number) {
  return (res: { status: number; text: string; body?: { error?: { code?: unknown; message?: unknown } } }) => {
    if (res.status === status) return;
    const { code, message } = res.body?.error ?? {};
    throw new Error(`expected ${status}, got ${res.status}: ${code === 'contract.response_mismatch' && typeof message === 'string' ? message : res.text.slice(0, 500)}`);
  };
}

/** Marks the user's e-mail verified, as the link of the verification e-mail would (setup only). */
export async function verifyEmailOf<U extends { id: string }>(t: TestApp, user: U): Promise<U> {
  await t.db.admin.query('UPDATE core.user_identities SET email_verified_at = now() WHERE user_id = $1 AND email_verified_at IS NULL', [user.id]);
  return user;
}

/**
 * Runs `setup` with the user's e-mail verified, then takes that verification back (setup only): an account that made
 * organizations, invitations or API keys before they needed a verified e-mail, and never verified it since (a
 * pre-registered one, or a genuine owner who never did), as an account claim finds it.
 */
export async function beforeVerificationWasNeeded<T>(t: TestApp, user: { id: string }, setup: () => Promise<T>): Promise<T> {
  const { rows } = await t.db.admin.query(
    'UPDATE core.user_identities SET email_verified_at = now() WHERE user_id = $1 AND email_verified_at IS NULL RETURNING provider, subject', [user.id]);
  try {
    return await setup();
  } finally {
    await t.db.admin.query(`UPDATE core.user_identities i SET email_verified_at = NULL FROM unnest($2::text[], $3::text[]) AS v(provider, subject)
      WHERE i.user_id = $1 AND i.provider = v.provider AND i.subject = v.subject`, [user.id, rows.map((r) => r.provider), rows.map((r) => r.subject)]);
  }
}

/** A business organization of `owner`, whose e-mail is verified first (POST /v1/orgs needs it: auth.email_unverified). */
export async function createOrg(t: TestApp, owner: TestUser, name = 'Acme'): Promise<string> {
  await verifyEmailOf(t, owner);
  const res = await t.http.post('/v1/orgs').set(owner.auth).send({ name }).expect(201);
  return res.body.id;
}

/** Adds a member directly through the owner connection (setup only; the API path is tested in its own file). */
export async function addMember(t: TestApp, orgId: string, user: TestUser, role: string): Promise<void> {
  await t.db.admin.query('INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, $3)', [orgId, user.id, role]);
}

export type RoleUsers = Record<'owner' | 'admin' | 'accountant' | 'member' | 'viewer', TestUser>;
export interface OrgWithRoles {
  orgId: string;
  users: RoleUsers;
}

/** An organization with one user of every role. */
export async function orgWithRoles(t: TestApp, name = 'Acme'): Promise<OrgWithRoles> {
  const owner = await registerUser(t, 'owner');
  const orgId = await createOrg(t, owner, name);
  const users = { owner } as RoleUsers;
  for (const role of ['admin', 'accountant', 'member', 'viewer'] as const) {
    users[role] = await registerUser(t, role);
    await addMember(t, orgId, users[role], role);
  }
  return { orgId, users };
}

/** Puts an organization on an omnizen plan (its subscription row created or changed; the catalog's rules then apply as in production). */
export async function onPlan(t: TestApp, orgId: string, plan: 'starter' | 'professional' | 'enterprise', status = 'active'): Promise<void> {
  await t.db.admin.query(
    `WITH changed AS (
       UPDATE hub."Subscription" SET plan = $2, status = $3, "updatedAt" = now() WHERE "organizationId" = $1 AND "appId" = 'omnizen' RETURNING 1)
     INSERT INTO hub."Subscription" (id, "userId", "appId", plan, status, "organizationId", "createdAt", "updatedAt")
     SELECT gen_random_uuid()::text, NULL, 'omnizen', $2, $3, $1, now(), now() WHERE NOT EXISTS (SELECT 1 FROM changed)`, [orgId, plan, status]);
}

/**
 * Puts an organization on the omnizen enterprise plan (no user or workspace limits), so tests that are
 * not about billing are not stopped by the starter trial's limits (5 users, 1 workspace).
 */
export function onEnterprisePlan(t: TestApp, orgId: string): Promise<void> {
  return onPlan(t, orgId, 'enterprise');
}
