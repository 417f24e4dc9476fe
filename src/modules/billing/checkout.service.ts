import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { AuditService } from '../audit/audit.service.js';
import { audienceOf, billingRepository as repo, type Subject, subjectOf } from './billing.repository.js';
import type { CheckoutDto, CheckoutSessionDto, PortalDto, PortalSessionDto } from './billing.dto.js';
import { StripeClient } from './stripe.client.js';
import { BillingErrors } from './billing.errors.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import type { OpenTenant } from '../../platform/http/tenant.js';

/** The statuses in which a Stripe subscription bills the customer: a second checkout for the app would bill them twice. */
const BILLING_STATUSES: ReadonlySet<string> = new Set(['active', 'trialing', 'past_due']);

/**
 * Stripe Checkout and the customer portal, for an organization or (in a personal organization) a person. Stripe answers
 * in up to 20 s per try (one retry): no transaction, nor pool connection, may wait on it. So each call reads what it
 * needs in one short transaction, calls Stripe with none open, and audits in a second one.
 */
@Injectable()
export class CheckoutService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly stripe: StripeClient,
    private readonly audit: AuditService,
  ) {}

  private async subject(tx: TenantTx): Promise<Subject> {
    const org = await repo.org(tx.db, tx.orgId);
    if (!org) throw PlatformErrors.notFound('organization', tx.orgId);
    return subjectOf(org);
  }

  async checkout(open: OpenTenant, dto: CheckoutDto): Promise<CheckoutSessionDto> {
    const { orgId, price, customer, email, metadata } = await open(async (tx) => {
      if (!(await repo.app(tx.db, dto.app))) throw BillingErrors.notFound('app', dto.app);
      const plan = (await repo.plans(tx.db, dto.app)).find((p) => p.code === dto.plan);
      if (!plan) throw BillingErrors.error('billing.plan_unknown', `${dto.app} has no plan ${dto.plan}`);
      const subject = await this.subject(tx);
      const audience = audienceOf(subject);
      if (plan.audience !== 'any' && plan.audience !== audience) {
        throw BillingErrors.error('billing.plan_audience', `the ${dto.app} plan ${dto.plan} is a ${plan.audience} plan; this is a ${audience} account`);
      }
      // one live Stripe subscription per app: a plan change goes through the portal, which updates that subscription
      const current = await repo.subscription(tx.db, subject, dto.app);
      if (current?.stripeSubscriptionId && current.status && BILLING_STATUSES.has(current.status)) {
        const portal = subject.kind === 'user' ? '/v1/me/billing/portal' : `/v1/orgs/${tx.orgId}/billing/portal`;
        throw BillingErrors.error('billing.subscription_exists',
          `this ${audience === 'personal' ? 'account' : 'organization'} already has a live ${dto.app} subscription (${current.plan}, ${current.status}); `
          + `to change plans, open the billing portal (POST ${portal}) instead of starting another checkout`,
          { app: dto.app, plan: current.plan, status: current.status });
      }
      const price = Object.entries(this.config.billing.stripePrices).find(([, v]) => v.app === dto.app && v.plan === dto.plan)?.[0];
      if (!price) throw BillingErrors.error('billing.plan_not_for_sale', `no Stripe price is configured for ${dto.app}:${dto.plan} (STRIPE_PRICES); contact sales`);
      return {
        orgId: tx.orgId, price, customer: await repo.stripeCustomer(tx.db, subject),
        email: tx.principal.kind === 'user' ? tx.principal.email : undefined,
        // the webhook finds the organization (or person) and the plan again from this metadata
        metadata: { org_id: tx.orgId, app: dto.app, plan: dto.plan, ...(subject.kind === 'user' ? { user_id: subject.userId } : {}) },
      };
    });
    const base = this.config.billing.appUrl;
    const session = await this.stripe.call('create a checkout session', (api) => api.checkout.sessions.create({
      mode: 'subscription',
      line_items: [{ price, quantity: 1 }],
      client_reference_id: orgId,
      ...(customer ? { customer } : email ? { customer_email: email } : {}),
      metadata,
      subscription_data: { metadata },
      success_url: `${base}/billing/success?session_id={CHECKOUT_SESSION_ID}`,
      cancel_url: `${base}/billing/canceled`,
    }));
    if (!session.url) throw BillingErrors.error('billing.stripe_no_url', 'Stripe returned a checkout session without a URL');
    await open((tx) => this.audit.record(tx, {
      action: 'billing.checkout_started', entityType: 'checkout_session', entityId: session.id,
      after: { app: dto.app, plan: dto.plan, price, customer: customer ?? null },
    }));
    return { id: session.id, url: session.url };
  }

  async portal(open: OpenTenant, dto: PortalDto): Promise<PortalSessionDto> {
    const customer = await open(async (tx) => repo.stripeCustomer(tx.db, await this.subject(tx)));
    if (!customer) throw BillingErrors.error('billing.no_customer', 'there is no Stripe customer for this account yet; start a checkout first');
    const base = this.config.billing.appUrl;
    const session = await this.stripe.call('open a portal session', (api) => api.billingPortal.sessions.create({ customer, return_url: `${base}${dto.returnPath ?? '/billing'}` }));
    await open((tx) => this.audit.record(tx, { action: 'billing.portal_opened', entityType: 'portal_session', entityId: session.id, after: { customer } }));
    return { id: session.id, url: session.url };
  }
}
