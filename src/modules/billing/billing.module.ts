import { Module } from '@nestjs/common';

/** Apps, plans, plan features and limits, Hub subscriptions, Stripe, entitlements (issue 3). */
@Module({})
export class BillingModule {}
