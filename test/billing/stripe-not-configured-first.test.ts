import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';

/**
 * A server without Stripe answers 503 billing.stripe_not_configured on every billing route that needs Stripe before
 * any other refusal or work, as checkout does: the portal answered 409 billing.no_customer first (an account that had
 * never paid learned nothing of the missing key), and the webhook answered an empty body 400 billing.webhook_signature
 * though no signature could be checked on this server.
 */
describe('billing: 503 stripe_not_configured comes first', () => {
  let bare: TestApp;
  let cy: TestUser;
  let orgId: string;

  const errorOf = (res: { status: number; body: { error?: { code: string; message: string } } }) => [res.status, res.body.error?.code, res.body.error?.message];
  const billingRows = async () => ({
    audits: (await bare.db.admin.query(`SELECT action FROM core.audit_logs WHERE org_id = ANY ($1::uuid[]) AND action LIKE 'billing.%'`, [[cy.personalOrgId, orgId]])).rows,
    locks: (await bare.db.admin.query('SELECT org_id FROM hub.limit_locks WHERE org_id = ANY ($1::uuid[])', [[cy.personalOrgId, orgId]])).rows,
    events: (await bare.db.admin.query('SELECT id FROM hub."BillingEvent"')).rows,
  });

  beforeAll(async () => {
    bare = await createTestApp({ REDIS_URL: '', STRIPE_SECRET_KEY: '', STRIPE_WEBHOOK_SECRET: '', STRIPE_PRICES: 'price_omz_pro=omnizen:professional' });
    cy = await registerUser(bare, 'cy');
    orgId = await createOrg(bare, cy, 'Never Paid Ltd');
  });
  afterAll(async () => {
    await bare?.close();
  });

  it('the portal of an account without a Stripe customer: 503, not 409 no_customer, for a person and an organization', async () => {
    const answers = await Promise.all([
      bare.http.post('/v1/me/billing/portal').set(cy.auth).send({}),
      bare.http.post(`/v1/orgs/${orgId}/billing/portal`).set(cy.auth).send({}),
    ]);
    const refused = [503, 'billing.stripe_not_configured', 'Stripe is not configured on this server (STRIPE_SECRET_KEY is missing)'];
    expect(answers.map(errorOf)).toEqual([refused, refused]);
    expect(await billingRows()).toEqual({ audits: [], locks: [], events: [] });
  });

  it('the webhook without a body: 503, not 400 webhook_signature', async () => {
    const res = await bare.http.post('/v1/billing/stripe/webhook');
    expect(errorOf(res)).toEqual([503, 'billing.stripe_not_configured', 'Stripe webhooks are not configured on this server (STRIPE_WEBHOOK_SECRET is missing)']);
    const signedNothing = await bare.http.post('/v1/billing/stripe/webhook').set('Stripe-Signature', 't=1,v1=00').set('Content-Type', 'application/json').send({ id: 'evt_1' });
    expect(errorOf(signedNothing)[0]).toBe(503);
    expect(await billingRows()).toEqual({ audits: [], locks: [], events: [] });
  });
});
