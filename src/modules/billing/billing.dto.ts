import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { IsOptional, IsString, Matches } from 'class-validator';

const CODE = /^[a-z][a-z0-9_]{0,62}$/;

export class AppQueryDto {
  @ApiProperty({ example: 'omnizen', description: 'App id from hub."App" (omnizen, app_securevault)' })
  @IsString() @Matches(CODE, { message: 'app must be an app id such as omnizen or app_securevault' })
  app: string;
}

@ApiSchema({ description: 'The app and plan to subscribe to' })
export class CheckoutDto {
  @ApiProperty({ example: 'omnizen' }) @IsString() @Matches(CODE, { message: 'app must be an app id' }) app: string;
  @ApiProperty({ example: 'professional' }) @IsString() @Matches(CODE, { message: 'plan must be a plan code' }) plan: string;
}

@ApiSchema({ description: 'The app whose billing to manage' })
export class PortalDto {
  @ApiPropertyOptional({ description: 'Where Stripe sends the customer back (defaults to APP_URL/billing)' })
  @IsOptional() @IsString() @Matches(/^\/[\w\-./?=&%]*$/, { message: 'returnPath must be a path on APP_URL, starting with /' })
  returnPath?: string;
}

@ApiSchema({ description: 'A Stripe Checkout session to send the user to' })
export class CheckoutSessionDto {
  @ApiProperty({ example: 'cs_test_a1b2' }) id: string;
  @ApiProperty({ example: 'https://checkout.stripe.com/c/pay/cs_test_a1b2' }) url: string;
}

@ApiSchema({ description: 'A Stripe billing portal session to send the user to' })
export class PortalSessionDto {
  @ApiProperty() id: string;
  @ApiProperty() url: string;
}

@ApiSchema({ description: 'One feature of the plan: whether it is included, and its limit and usage when it is counted' })
export class FeatureEntitlementDto {
  @ApiProperty({ example: 'users' }) feature: string;
  @ApiProperty({ enum: ['boolean', 'limit'] }) kind: 'boolean' | 'limit';
  @ApiProperty() description: string;
  @ApiProperty({ type: String, nullable: true, example: 'users' }) unit: string | null;
  @ApiProperty() enabled: boolean;
  @ApiProperty({ type: Number, nullable: true, description: 'limit features: the limit, null = unlimited' }) limit: number | null;
  @ApiProperty({ type: Number, nullable: true, description: 'current usage when the Hub counts it (null: counted by the app itself)' }) usage: number | null;
}

@ApiSchema({ description: 'Whose entitlements these are: an organization or a user' })
export class EntitlementSubjectDto {
  @ApiProperty({ enum: ['organization', 'user'] }) type: 'organization' | 'user';
  @ApiProperty({ type: String, nullable: true }) organizationId: string | null;
  @ApiProperty({ type: String, nullable: true }) userId: string | null;
}

@ApiSchema({ description: 'What the subscription to an app allows: plan, status, read-only state and features' })
export class EntitlementsDto {
  @ApiProperty({ example: 'omnizen' }) app: string;
  @ApiProperty({ type: EntitlementSubjectDto }) subject: EntitlementSubjectDto;
  @ApiProperty({ example: 'starter' }) plan: string;
  @ApiProperty({ type: String, nullable: true, example: 'Starter' }) planName: string | null;
  @ApiProperty({ example: 'active', description: 'active, trialing, past_due, canceled, ...' }) status: string;
  @ApiProperty({ enum: ['subscription', 'default'], description: 'default: no subscription row, the app\'s default plan as a trial' }) source: 'subscription' | 'default';
  @ApiProperty({ enum: ['full', 'read_only'] }) access: 'full' | 'read_only';
  @ApiProperty({ type: String, nullable: true }) readOnlyReason: string | null;
  @ApiProperty({ type: Date, nullable: true }) trialEndsAt: Date | null;
  @ApiProperty({ type: Date, nullable: true }) graceEndsAt: Date | null;
  @ApiProperty({ type: Date, nullable: true }) currentPeriodEnd: Date | null;
  @ApiProperty() cancelAtPeriodEnd: boolean;
  @ApiProperty({ type: String, nullable: true }) subscriptionId: string | null;
  @ApiProperty({ type: [FeatureEntitlementDto] }) features: FeatureEntitlementDto[];
}

@ApiSchema({ description: 'A plan of an app, with its features and limits' })
export class PlanDto {
  @ApiProperty() code: string;
  @ApiProperty() name: string;
  @ApiProperty({ enum: ['personal', 'business', 'any'] }) audience: string;
  @ApiProperty({ type: [FeatureEntitlementDto] }) features: FeatureEntitlementDto[];
}

@ApiSchema({ description: 'An app and the plans it offers' })
export class AppCatalogDto {
  @ApiProperty() id: string;
  @ApiProperty() name: string;
  @ApiProperty() defaultPlan: string;
  @ApiProperty() trialDays: number;
  @ApiProperty({ type: [PlanDto] }) plans: PlanDto[];
}

@ApiSchema({ description: 'A Stripe event received for the organization, and how it was processed' })
export class BillingEventDto {
  @ApiProperty() id: string;
  @ApiProperty() stripeEventId: string;
  @ApiProperty() type: string;
  @ApiProperty({ type: String, nullable: true }) subscriptionId: string | null;
  @ApiProperty({ enum: ['received', 'processed', 'ignored', 'failed'] }) status: string;
  @ApiProperty({ type: String, nullable: true }) reason: string | null;
  @ApiProperty() stripeCreatedAt: Date;
  @ApiProperty() receivedAt: Date;
  @ApiProperty({ type: Date, nullable: true }) processedAt: Date | null;
}

@ApiSchema({ description: 'The acknowledgement Stripe expects' })
export class WebhookAckDto {
  @ApiProperty() received: boolean;
  @ApiProperty({ description: 'true when this event id was already stored (a Stripe retry): not processed again' }) duplicate: boolean;
}

