import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { IsIn, IsOptional, IsString, Length, Matches } from 'class-validator';
import { PageQuery } from '../../platform/http/pagination.js';
import { PageInfo } from '../../platform/http/openapi.js';

const CODE = /^[a-z][a-z0-9_]{0,62}$/;

export class AppQueryDto {
  @ApiProperty({ example: 'omnizen', description: 'App id from hub."App" (omnizen, app_securevault)' })
  @IsString() @Matches(CODE, { message: 'app must be an app id such as omnizen or app_securevault' })
  app: string;
}

@ApiSchema({ description: 'The app and plan to subscribe to' })
export class CheckoutDto {
  @ApiProperty({ description: 'App id to subscribe to (omnizen, app_securevault)', example: 'omnizen' }) @IsString() @Matches(CODE, { message: 'app must be an app id' }) app: string;
  @ApiProperty({ description: 'Code of the plan to subscribe to (a plan of that app)', example: 'professional' }) @IsString() @Matches(CODE, { message: 'plan must be a plan code' }) plan: string;
}

@ApiSchema({ description: 'The app whose billing to manage' })
export class PortalDto {
  @ApiPropertyOptional({
    description: 'The app whose subscription to manage (omnizen, app_securevault); default: the app of the account\'s first subscription. '
      + 'With STRIPE_PORTAL_CONFIGURATIONS, the portal uses that app\'s configuration (its products only, for this kind of account); without one, Stripe\'s default',
    example: 'omnizen',
  })
  @IsOptional() @IsString() @Matches(CODE, { message: 'app must be an app id such as omnizen or app_securevault' })
  app?: string;

  @ApiPropertyOptional({ description: 'Where Stripe sends the customer back (defaults to APP_URL/billing)' })
  @IsOptional() @IsString() @Matches(/^\/[\w\-./?=&%]*$/, { message: 'returnPath must be a path on APP_URL, starting with /' })
  returnPath?: string;
}

@ApiSchema({ description: 'A Stripe Checkout session to send the user to' })
export class CheckoutSessionDto {
  @ApiProperty({ description: 'The Stripe Checkout session id', example: 'cs_test_a1b2' }) id: string;
  @ApiProperty({ description: 'Stripe-hosted Checkout page to redirect the user to', example: 'https://checkout.stripe.com/c/pay/cs_test_a1b2' }) url: string;
}

@ApiSchema({ description: 'A Stripe billing portal session to send the user to' })
export class PortalSessionDto {
  @ApiProperty({ description: 'The Stripe billing portal session id' }) id: string;
  @ApiProperty({ description: 'Stripe-hosted billing portal page to redirect the user to' }) url: string;
}

@ApiSchema({ description: 'One feature of the plan: whether it is included, and its limit and usage when it is counted' })
export class FeatureEntitlementDto {
  @ApiProperty({ description: 'Code of the feature', example: 'users' }) feature: string;
  @ApiProperty({ description: 'boolean: included or not; limit: included up to a number', enum: ['boolean', 'limit'] }) kind: 'boolean' | 'limit';
  @ApiProperty({ description: 'What the feature is, in words' }) description: string;
  @ApiProperty({ description: 'What a limit counts (users, entries, ...); null for boolean features', type: String, nullable: true, example: 'users' }) unit: string | null;
  @ApiProperty({ description: 'Whether the plan includes the feature' }) enabled: boolean;
  @ApiProperty({ type: Number, nullable: true, description: 'limit features: the limit, null = unlimited' }) limit: number | null;
  @ApiProperty({ type: Number, nullable: true, description: 'current usage when the Hub counts it (null: counted by the app itself)' }) usage: number | null;
}

@ApiSchema({ description: 'Whose entitlements these are: an organization or a user' })
export class EntitlementSubjectDto {
  @ApiProperty({ description: 'organization for a business organization; user for a personal organization (billed to its owner)', enum: ['organization', 'user'] }) type: 'organization' | 'user';
  @ApiProperty({ description: 'The organization billed; null when the subject is a user', type: String, nullable: true }) organizationId: string | null;
  @ApiProperty({ description: 'The user billed; null when the subject is an organization', type: String, nullable: true }) userId: string | null;
}

@ApiSchema({ description: 'What the subscription to an app allows: plan, status, read-only state and features' })
export class EntitlementsDto {
  @ApiProperty({ description: 'The app id', example: 'omnizen' }) app: string;
  @ApiProperty({ description: 'Whose subscription this is', type: EntitlementSubjectDto }) subject: EntitlementSubjectDto;
  @ApiProperty({ description: 'Code of the plan in effect', example: 'starter' }) plan: string;
  @ApiProperty({ description: 'Display name of the plan; null when the plan code is not in the catalog', type: String, nullable: true, example: 'Starter' }) planName: string | null;
  @ApiProperty({ example: 'active', description: 'active, trialing, past_due, canceled, ...' }) status: string;
  @ApiProperty({ enum: ['subscription', 'default'], description: 'default: no subscription row, the app\'s default plan as a trial' }) source: 'subscription' | 'default';
  @ApiProperty({
    description: 'full: reads and writes; read_only: only reads are allowed (a status that does not allow writing, or a subscription on a Stripe price that is not a plan of the app for this account: readOnlyReason says which)',
    enum: ['full', 'read_only'],
  }) access: 'full' | 'read_only';
  @ApiProperty({ description: 'Why access is read-only, in words; null when access is full', type: String, nullable: true }) readOnlyReason: string | null;
  @ApiProperty({ description: 'When the trial ends or ended; null when there is no trial', type: Date, nullable: true }) trialEndsAt: Date | null;
  @ApiProperty({ description: 'past_due only: when the grace period of full access ends; null otherwise', type: Date, nullable: true }) graceEndsAt: Date | null;
  @ApiProperty({ description: 'End of the current paid billing period (from Stripe); null when unknown or without a subscription', type: Date, nullable: true }) currentPeriodEnd: Date | null;
  @ApiProperty({ description: 'true when the subscription is set to cancel at the end of the current period' }) cancelAtPeriodEnd: boolean;
  @ApiProperty({ description: 'Id of our subscription record; null when source is default', type: String, nullable: true }) subscriptionId: string | null;
  @ApiProperty({ description: 'Every feature of the app, with what this plan allows', type: [FeatureEntitlementDto] }) features: FeatureEntitlementDto[];
}

@ApiSchema({ description: 'A plan of an app, with its features and limits' })
export class PlanDto {
  @ApiProperty({ description: 'Code of the plan, unique within the app' }) code: string;
  @ApiProperty({ description: 'Display name of the plan' }) name: string;
  @ApiProperty({ description: 'Who can subscribe: personal organizations, business organizations, or any', enum: ['personal', 'business', 'any'] }) audience: string;
  @ApiProperty({ description: 'Every feature of the app, with what this plan allows', type: [FeatureEntitlementDto] }) features: FeatureEntitlementDto[];
}

@ApiSchema({ description: 'An app and the plans it offers' })
export class AppCatalogDto {
  @ApiProperty({ description: 'The app id' }) id: string;
  @ApiProperty({ description: 'Display name of the app' }) name: string;
  @ApiProperty({ description: 'Code of the plan in effect, as a trial, when there is no subscription' }) defaultPlan: string;
  @ApiProperty({ description: 'Length of the default-plan trial in days, counted from the organization\'s creation' }) trialDays: number;
  @ApiProperty({ description: 'The plans of the app', type: [PlanDto] }) plans: PlanDto[];
}

@ApiSchema({ description: 'A Stripe event received for the organization, and how it was processed' })
export class BillingEventDto {
  @ApiProperty({ description: 'Id of the stored event' }) id: string;
  @ApiProperty({ description: 'Stripe\'s event id (evt_...)' }) stripeEventId: string;
  @ApiProperty({ description: 'Stripe event type, e.g. customer.subscription.updated' }) type: string;
  @ApiProperty({ description: 'Id of our subscription record the event applied to; null when none', type: String, nullable: true }) subscriptionId: string | null;
  @ApiProperty({ description: 'received: stored, not yet applied; processed: applied; ignored: not applicable (see reason); failed: reserved, not set by the current code', enum: ['received', 'processed', 'ignored', 'failed'] }) status: string;
  @ApiProperty({ description: 'Why the event was ignored or failed, or what of a processed event was not applied (a price not mapped to a plan of the catalog, of another app, or of a plan of another audience, than the subscription: the plan stays, read-only until the subscription is on a plan of its app again); null otherwise', type: String, nullable: true }) reason: string | null;
  @ApiProperty({ description: 'When Stripe created the event' }) stripeCreatedAt: Date;
  @ApiProperty({ description: 'When we received the event' }) receivedAt: Date;
  @ApiProperty({ description: 'When the event was processed or ignored; null while received', type: Date, nullable: true }) processedAt: Date | null;
}

const BILLING_EVENT_STATUSES = ['received', 'processed', 'ignored', 'failed'] as const;

export class BillingEventQuery extends PageQuery {
  @ApiPropertyOptional({ enum: BILLING_EVENT_STATUSES, description: 'Only events in this status', example: 'ignored' }) @IsOptional() @IsIn(BILLING_EVENT_STATUSES) status?: string;
  @ApiPropertyOptional({ description: 'Only events of this Stripe type', example: 'invoice.payment_failed' }) @IsOptional() @IsString() @Length(1, 100) type?: string;
}

@ApiSchema({ description: 'A page of the Stripe events about an organization, newest first' })
export class BillingEventPage extends PageInfo {
  @ApiProperty({ type: [BillingEventDto], description: 'Events on this page, newest received first' }) items: BillingEventDto[];
}

@ApiSchema({ description: 'The acknowledgement Stripe expects' })
export class WebhookAckDto {
  @ApiProperty({ description: 'Always true: the event was accepted' }) received: boolean;
  @ApiProperty({ description: 'true when this event id was already stored (a Stripe retry): not processed again' }) duplicate: boolean;
}

