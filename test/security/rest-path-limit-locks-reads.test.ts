import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { restGateway, type RestGateway } from '../support/rest-gateway.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';

/**
 * hub.limit_locks over Supabase's REST path (PostgREST: `authenticated` with the token's claims, never through
 * begin_request): SELECT is granted and its policy (limit_lock_member) checks only the organization, and migration
 * 20270205000900 closed its writes only, so any member's token (a viewer's) read a checkout's key, its Stripe sessions
 * and checkout_params (a checkout in doubt: the requesting admin's e-mail address, the Stripe customer id). Now its
 * reads need begin_request's verified claims too (migration 20270209090100); the API's checkouts, which read it in their
 * own transactions, go on.
 */
describe('the Supabase REST path cannot read hub.limit_locks', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let gateway: RestGateway;
  let owner: TestUser;
  let viewer: TestUser;
  let orgId: string;

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({
      ...stripe.env, REDIS_URL: '', STRIPE_SECRET_KEY: 'sk_test_double', STRIPE_WEBHOOK_SECRET: 'whsec_test_limit_locks_reads',
      STRIPE_PRICES: 'price_omz_pro=omnizen:professional,price_omz_ent=omnizen:enterprise',
    });
    gateway = await restGateway(t.db);
    owner = await registerUser(t, 'owner');
    viewer = await registerUser(t, 'viewer');
    orgId = await createOrg(t, owner, 'Locked Rows Co');
    await addMember(t, orgId, viewer, 'viewer');
  });
  afterAll(async () => {
    await gateway?.end();
    await t?.close();
    await stripe?.close();
  });

  const rows = (orgClaim: boolean, user: TestUser) => gateway.rest('authenticated',
    { sub: user.id, email: user.email, aud: 'authenticated', ...(orgClaim ? { org_id: orgId } : {}) },
    `SELECT org_id, app_id, checkout_key, checkout_session_id, checkout_params, checkout_sessions_to_expire FROM hub.limit_locks`);

  it('a member\'s token (viewer or owner, with or without an org_id claim) reads no row, not even a checkout in doubt\'s parameters; the API\'s checkout still reads it', async () => {
    // a checkout through the API: its transaction reads and writes the row (the key, the session)
    const started = await t.http.post(`/v1/orgs/${orgId}/billing/checkout`).set(owner.auth).send({ app: 'omnizen', plan: 'professional' });
    expect(started.status).toBe(201);
    const again = await t.http.post(`/v1/orgs/${orgId}/billing/checkout`).set(owner.auth).send({ app: 'omnizen', plan: 'professional' });
    expect([again.status, again.body.id]).toEqual([201, started.body.id]); // the key read back: the same session
    // a checkout in doubt: its Stripe parameters kept (the admin's e-mail address, the Stripe customer id)
    await t.db.admin.query(`UPDATE hub.limit_locks SET checkout_params = $2 WHERE org_id = $1 AND app_id = 'omnizen'`,
      [orgId, JSON.stringify({ customer: 'cus_test_private', customer_email: owner.email })]);
    const { rows: [row] } = await t.db.admin.query(`SELECT checkout_session_id AS session, checkout_params AS params FROM hub.limit_locks WHERE org_id = $1`, [orgId]);
    expect(row).toEqual({ session: started.body.id, params: expect.stringContaining('cus_test_private') });

    for (const user of [viewer, owner]) {
      for (const orgClaim of [true, false]) expect(await rows(orgClaim, user)).toEqual([]);
    }
    // reads of the organization's other tables over REST stay open (closed here only)
    expect(await gateway.rest('authenticated', { sub: viewer.id, email: viewer.email, aud: 'authenticated', org_id: orgId },
      'SELECT id FROM core.organizations WHERE id = $1', [orgId])).toEqual([{ id: orgId }]);

    // and the API goes on (the parameters put back as the session's recording left them): a different checkout reads
    // the key, expires the first session, records its own
    await t.db.admin.query(`UPDATE hub.limit_locks SET checkout_params = NULL WHERE org_id = $1 AND app_id = 'omnizen'`, [orgId]);
    const next = await t.http.post(`/v1/orgs/${orgId}/billing/checkout`).set(owner.auth).send({ app: 'omnizen', plan: 'enterprise' });
    expect(next.status).toBe(201);
    expect((await t.db.admin.query(`SELECT checkout_session_id AS session, checkout_params AS params FROM hub.limit_locks WHERE org_id = $1`, [orgId])).rows)
      .toEqual([{ session: next.body.id, params: null }]);
  });

  it('every hub table `authenticated` may read has a restrictive read policy (verified claims, or the API\'s login), or is listed here as meant to be read over REST', async () => {
    const { rows: open } = await t.db.admin.query(`
      SELECT c.oid::regclass::text AS rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'hub' AND c.relkind IN ('r', 'p') AND has_table_privilege('authenticated', c.oid, 'SELECT')
        AND NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND NOT p.polpermissive AND 'authenticated'::regrole = ANY (p.polroles)
          AND p.polcmd = 'r' AND (pg_get_expr(p.polqual, p.polrelid) LIKE '%auth_claims_verified()%'
            OR pg_get_expr(p.polqual, p.polrelid) = '(SESSION_USER = ''omnizen_api''::name)'))
      ORDER BY 1`);
    // read over REST by design: the catalog (every caller) and seed 000's contract table hub."Subscription" (the
    // organization's members, a person their personal plans), which apps read directly. Closed by 20270209100100:
    // subscription_billing, BillingEvent, rate_limit_overrides (test/security/rest-path-hub-billing-reads.test.ts)
    expect(open.map((r) => r.rel)).toEqual(['hub."App"', 'hub."Subscription"', 'hub.features', 'hub.plan_features', 'hub.plans']);
  });
});
