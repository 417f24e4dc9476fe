import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import type { TestApp } from '../support/app.js';

/** A Stripe event as Stripe sends it (an id of its own unless given). */
export function stripeEvent(type: string, object: Record<string, unknown>, created: number, id = `evt_${randomBytes(8).toString('hex')}`) {
  return { id, object: 'event', api_version: '2026-10-28.endive', created, livemode: false, pending_webhooks: 1, type, data: { object } };
}

/**
 * Delivers `event` to the webhook route signed with `secret` (200 expected) and runs the job it enqueued (the app is
 * started with REDIS_URL '': jobs run in-process on drain). Answers the route's body.
 */
export async function sendStripeEvent(t: TestApp, secret: string, event: object): Promise<Record<string, unknown>> {
  const body = await postStripeEvent(t, secret, event);
  await t.app.get(OutboxRelay).drain();
  return body;
}

/** Delivers `event` as sendStripeEvent does, without running its job (a test runs it: StripeWebhookService.process). */
export async function postStripeEvent(t: TestApp, secret: string, event: object): Promise<Record<string, unknown>> {
  const payload = JSON.stringify(event);
  const header = Stripe.webhooks.generateTestHeaderString({ payload, secret });
  return (await t.http.post('/v1/billing/stripe/webhook').set('Content-Type', 'application/json').set('Stripe-Signature', header).send(payload).expect(200)).body;
}
