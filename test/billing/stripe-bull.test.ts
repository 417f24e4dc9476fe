import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import Stripe from 'stripe';
import type { Job, Queue } from 'bull';
import { JOBS_QUEUE_TOKEN, OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, hasRedis, type TestApp } from '../support/app.js';
import { createOrg, registerUser } from '../support/factories.js';

const WEBHOOK_SECRET = 'whsec_test_omnizen_bull';

/** With REDIS_URL the outbox relays the webhook job to Bull, whose worker applies it. */
(hasRedis ? describe : describe.skip)('billing: Stripe webhook processed through Bull', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({ STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET, STRIPE_PRICES: 'price_omz_pro=omnizen:professional' });
  });
  afterAll(() => t.close());

  it('answers at once, relays to Bull, and the worker applies the event', async () => {
    const ada = await registerUser(t, 'ada');
    const orgId = await createOrg(t, ada, 'Bull Co');
    const event = {
      id: 'evt_bull_1', object: 'event', created: Math.floor(Date.now() / 1000), type: 'customer.subscription.created',
      data: { object: { id: 'sub_bull_1', object: 'subscription', customer: 'cus_bull', status: 'active', metadata: { org_id: orgId }, cancel_at_period_end: false, trial_end: null,
        items: { data: [{ price: { id: 'price_omz_pro' }, current_period_end: null }] } } },
    };
    const payload = JSON.stringify(event);
    await t.http.post('/v1/billing/stripe/webhook').set('Content-Type', 'application/json')
      .set('Stripe-Signature', Stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET })).send(payload).expect(200);
    // the Bull worker runs in this process: its 'completed' event says the handler has finished
    const queue = t.app.get<Queue>(JOBS_QUEUE_TOKEN);
    // (the registration's verification e-mail is a job too)
    const completed = new Promise<Job>((resolve, reject) => {
      const onCompleted = (job: Job) => {
        if (job.data.topic !== 'billing.stripe_event') return;
        queue.off('completed', onCompleted);
        resolve(job);
      };
      queue.on('completed', onCompleted);
      queue.once('failed', (_job, err) => reject(err));
    });
    expect(await t.app.get(OutboxRelay).drain()).toBeGreaterThanOrEqual(1);
    expect((await completed).data).toMatchObject({ topic: 'billing.stripe_event' });
    const { rows } = await t.db.admin.query(`SELECT status FROM hub."BillingEvent" WHERE "stripeEventId" = 'evt_bull_1'`);
    expect(rows[0].status).toBe('processed');
    const ent = await t.http.get(`/v1/orgs/${orgId}/entitlements?app=omnizen`).set(ada.auth).expect(200);
    expect(ent.body).toMatchObject({ plan: 'professional', status: 'active' });
  });
});
