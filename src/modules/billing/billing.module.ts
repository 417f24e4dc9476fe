import { Module, OnModuleInit } from '@nestjs/common';
import { ENTITLEMENT_GATE } from '../../platform/http/tenant.js';
import { BillingExpiryJob } from './billing-expiry.job.js';
import {
  CatalogController, MyBillingController, MyCheckoutController, OrgBillingController, OrgBillingEventsController, OrgCheckoutController, ServiceEntitlementsController, StripeWebhookController,
} from './billing.controller.js';
import { CheckoutService } from './checkout.service.js';
import { DeletedOrgSubscriptions } from './deleted-org-subscriptions.service.js';
import { EntitlementsService } from './entitlements.service.js';
import { StripeClient } from './stripe.client.js';
import { StripeWebhookService } from './stripe-webhook.service.js';
import { seatUsage, UsageCounters } from './usage-counters.js';

/**
 * Apps, plans, plan features and limits, Hub subscriptions, Stripe, entitlements (issue 3).
 * Provides the platform's ENTITLEMENT_GATE (@ConsumesLimit / @RequiresFeature / @RequiresActiveSubscription)
 * and exports UsageCounters so modules register the counters of their own counted features (seats here;
 * workspaces by the organizations module, which owns them).
 */
@Module({
  controllers: [OrgBillingController, OrgCheckoutController, OrgBillingEventsController, MyBillingController, MyCheckoutController, CatalogController, ServiceEntitlementsController, StripeWebhookController],
  providers: [
    UsageCounters, EntitlementsService, CheckoutService, StripeClient, StripeWebhookService, BillingExpiryJob, DeletedOrgSubscriptions,
    { provide: ENTITLEMENT_GATE, useExisting: EntitlementsService },
  ],
  exports: [UsageCounters, EntitlementsService, ENTITLEMENT_GATE],
})
export class BillingModule implements OnModuleInit {
  constructor(private readonly usage: UsageCounters) {}

  onModuleInit(): void {
    this.usage.register('omnizen', 'users', seatUsage);
    this.usage.register('app_securevault', 'users', seatUsage);
  }
}
