import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import Stripe from 'stripe';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { AppError } from '../../platform/errors/app-error.js';
import { ReadinessProbes } from '../../platform/health/readiness-probes.js';
import { BillingErrors } from './billing.errors.js';
import { stripeStillBills } from './subscription-status.js';

/**
 * StripeClient.call's failure: 502 billing.stripe_failed, details { stripeType, stripeStatus } (the error body's).
 * `replayed` is for the callers only: the answer is one Stripe kept under the request's Idempotency-Key and replayed
 * (response header Idempotent-Replayed: true), so Stripe executed the first request with that key.
 */
export class StripeCallError extends AppError {
  constructor(message: string, stripeType: string | null, stripeStatus: number | null, readonly replayed: boolean) {
    super(BillingErrors.codes['billing.stripe_failed'].status, 'billing.stripe_failed', message, { stripeType, stripeStatus });
  }
}

/**
 * The Stripe SDK, configured from the `billing` config. STRIPE_API_HOST/PORT/PROTOCOL point it at
 * another server (the tests' double, test/support/doubles/stripe-double.ts) through the SDK's own
 * host/port/protocol options. Signature checks use the SDK's static webhooks helper.
 */
@Injectable()
export class StripeClient implements OnModuleInit {
  private readonly client?: Stripe;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig, private readonly probes: ReadinessProbes) {
    const b = config.billing;
    if (b.stripeSecretKey) {
      this.client = new Stripe(b.stripeSecretKey, {
        maxNetworkRetries: 1,
        timeout: 20_000,
        ...(b.stripeApiHost ? { host: b.stripeApiHost } : {}),
        ...(b.stripeApiPort ? { port: b.stripeApiPort } : {}),
        ...(b.stripeApiProtocol ? { protocol: b.stripeApiProtocol } : {}),
      });
    }
  }

  /** Readiness reports Stripe when it is configured: one cheap read (the balance), no retry, time-boxed. */
  onModuleInit(): void {
    const client = this.client;
    if (client) this.probes.register('stripe', () => client.balance.retrieve({}, { maxNetworkRetries: 0, timeout: 2000 }));
  }

  /** The API client; 503 when STRIPE_SECRET_KEY is not configured. */
  api(): Stripe {
    if (!this.client) throw BillingErrors.error('billing.stripe_not_configured', 'Stripe is not configured on this server (STRIPE_SECRET_KEY is missing)');
    return this.client;
  }

  /** 503 billing.stripe_not_configured when STRIPE_SECRET_KEY is not configured: checked before any work that needs Stripe. */
  requireConfigured(): void {
    this.api();
  }

  /**
   * Runs one API call; a Stripe failure becomes a 502 naming what Stripe said (never the key), details `stripeType` and
   * `stripeStatus`: a StripeCallError, whose `replayed` tells the callers whether Stripe replayed the answer.
   */
  async call<T>(what: string, request: (api: Stripe) => Promise<T>): Promise<T> {
    const api = this.api();
    try {
      return await request(api);
    } catch (err) {
      const e = err as { type?: string; message?: string; statusCode?: number; headers?: Record<string, string | undefined> };
      throw new StripeCallError(`Stripe could not ${what}: ${e.message ?? 'no answer'}`, e.type ?? null, e.statusCode ?? null, e.headers?.['idempotent-replayed'] === 'true');
    }
  }

  /**
   * Cancels a subscription at once (no proration, no final invoice: Stripe's defaults), with an idempotency key. Stripe
   * answers 404 "No such subscription" for one that has ended already (canceled elsewhere, or by an earlier try):
   * accepted when a read of it says it has ended, or that Stripe has none. Any other failure is thrown (502).
   */
  async cancelSubscription(stripeSubscriptionId: string, idempotencyKey: string): Promise<void> {
    await this.call('cancel the subscription', async (api) => {
      try {
        await api.subscriptions.cancel(stripeSubscriptionId, {}, { idempotencyKey });
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode !== 404) throw err;
        const status = await subscriptionStatus(api, stripeSubscriptionId);
        if (stripeStillBills(status)) throw err;
      }
    });
  }

  /** A subscription's status in Stripe ('missing': Stripe has none of that id). */
  async subscriptionStatus(stripeSubscriptionId: string): Promise<string> {
    return this.call('read the subscription', (api) => subscriptionStatus(api, stripeSubscriptionId));
  }

  /**
   * Expires a Checkout session that may still be open, so it can no longer be paid. Stripe answers 400 for one that is
   * not open (expired already, or completed: paid) and 404 for one it does not have: a read then says which. Answers
   * what the session is after the call (`expiredNow`: by this call; a completed one with the subscription it started
   * and the plan of its metadata). Any other failure is thrown (502).
   */
  async expireCheckoutSession(sessionId: string): Promise<{ status: 'expired' | 'complete' | 'missing'; expiredNow: boolean; subscription?: string; plan?: string }> {
    return this.call('expire the previous checkout session', async (api) => {
      try {
        await api.checkout.sessions.expire(sessionId);
        return { status: 'expired', expiredNow: true };
      } catch (err) {
        const status = (err as { statusCode?: number }).statusCode;
        if (status !== 400 && status !== 404) throw err;
        const session = await api.checkout.sessions.retrieve(sessionId).catch((e: { statusCode?: number }) => {
          if (e.statusCode === 404) return undefined;
          throw e;
        });
        if (!session) return { status: 'missing', expiredNow: false };
        if (session.status === 'expired') return { status: 'expired', expiredNow: false };
        if (session.status !== 'complete') throw err;
        const subscription = typeof session.subscription === 'string' ? session.subscription : session.subscription?.id;
        return { status: 'complete', expiredNow: false, subscription: subscription ?? undefined, plan: session.metadata?.plan };
      }
    });
  }

  /** 503 billing.stripe_not_configured when STRIPE_WEBHOOK_SECRET is not configured: checked before the body is looked at. */
  requireWebhookConfigured(): string {
    const secret = this.config.billing.stripeWebhookSecret;
    if (!secret) throw BillingErrors.error('billing.stripe_not_configured', 'Stripe webhooks are not configured on this server (STRIPE_WEBHOOK_SECRET is missing)');
    return secret;
  }

  /** Verifies the Stripe-Signature header over the raw body and parses the event; throws on a bad signature. */
  verify(rawBody: Buffer, signature: string | undefined): Stripe.Event {
    return Stripe.webhooks.constructEvent(rawBody, signature ?? '', this.requireWebhookConfigured());
  }
}

/** A subscription's status in Stripe, or 'missing' when Stripe answers 404. */
async function subscriptionStatus(api: Stripe, id: string): Promise<string> {
  return api.subscriptions.retrieve(id).then(
    (sub) => sub.status as string,
    (e: { statusCode?: number }) => { if (e.statusCode === 404) return 'missing'; throw e; },
  );
}
