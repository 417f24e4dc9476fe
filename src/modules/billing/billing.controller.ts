import { RequiresScope } from '../../platform/auth/api-key-scopes.js';
import { Body, Controller, Get, Headers, HttpCode, Param, Post, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiHeader, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { ADMIN_ROLES, type Principal } from '../../platform/auth/principal.js';
import { Public } from '../../platform/auth/public.decorator.js';
import { DatabaseService, type TenantTx } from '../../platform/database/database.service.js';
import { ApiErrors } from '../../platform/http/openapi.js';
import { decodeKeyset, page } from '../../platform/http/pagination.js';
import { CurrentPrincipal, OrgPreflightRoute, OrgRoute, openTenant, Preflight, type PreflightTenant, RequireRole, Tx, UserPreflightRoute, UserRoute } from '../../platform/http/tenant.js';
import {
  AppCatalogDto, AppQueryDto, BillingEventPage, BillingEventQuery, CheckoutDto, CheckoutSessionDto, EntitlementsDto, PortalDto, PortalSessionDto, WebhookAckDto,
} from './billing.dto.js';
import { billingRepository as repo } from './billing.repository.js';
import { CheckoutService } from './checkout.service.js';
import { EntitlementsService } from './entitlements.service.js';
import { StripeWebhookService } from './stripe-webhook.service.js';
import { BillingErrors } from './billing.errors.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';

/** What both checkout routes say about a repeated request and the 409 (OpenAPI description). */
const CHECKOUT_DESCRIPTION = 'One open checkout per app: a double-click or a retry does not start a second one. While the session the first request '
  + 'created is open (up to 23 hours, until a Stripe event about the app\'s subscription arrives), the same request answers 201 with that same '
  + 'session (same id and url), and concurrent requests are served one at a time. Another checkout (another plan, or another admin) expires '
  + 'that session in Stripe first, so it can no longer be paid, and answers with a new one (when Stripe fails to expire it, 502 '
  + 'billing.stripe_failed: no new session is created and that one stays the open checkout, so a retry expires it first); 409 billing.checkout_superseded when another '
  + 'checkout started while Stripe was creating this one\'s session (that one stays open; this one\'s session is saved to be expired '
  + 'before Stripe is asked to expire it, so it is never forgotten: when Stripe fails to expire it at once, the next checkout or portal call of '
  + 'the account expires it first, or else the billing job). 502 billing.stripe_no_url when Stripe answers a session without a URL (it is expired, not kept '
  + 'as the open checkout). 503 billing.stripe_not_configured on a server without Stripe, before any Stripe call or write (after the caller\'s '
  + 'membership and role are checked and the body is validated). Before its own session, a checkout first expires the account\'s checkout '
  + 'sessions saved to be expired (of every app); one Stripe fails to expire stays saved for the billing job, and the checkout goes on. '
  + '409 billing.subscription_exists while a Stripe subscription of the app has not ended: live (active, trialing, past_due: change plans in the '
  + 'billing portal), incomplete (its first payment is pending: complete it, or wait until Stripe expires it), unpaid or paused (settle or cancel '
  + 'it in the billing portal); details.status says which. Also when the session being expired (or a saved one of the app) has just been paid '
  + 'and its subscription has not ended: a saved one stays saved until the subscription is recorded, so a retry answers the same 409. Once it '
  + 'is canceled or incomplete_expired, a new checkout is allowed. A subscription the billing job ended at its period end (canceled at period '
  + 'end, the period passed) without Stripe saying so yet: Stripe is asked first, and while it has not ended the subscription (its end not '
  + 'processed yet, or renewed) the checkout answers 409 billing.subscription_end_pending (details.status: the subscription\'s status in Stripe), as a new one would be billed '
  + 'besides it: try again once Stripe has ended it, or manage it in the billing portal. Once Stripe says it has ended (or does not know it), the end is final and the checkout goes on. '
  + 'When Stripe\'s answer is lost (timeout, network error), the checkout answers 502 billing.stripe_failed, though Stripe may have created '
  + 'the session: the same request again answers that session, and the next different checkout first learns it from Stripe (replaying the '
  + 'create) and expires it, so only one can be paid. Until then the request\'s Stripe parameters (they may hold the admin\'s e-mail '
  + 'address) are kept, for at most Stripe\'s 24-hour idempotency window: after it a checkout no longer looks for that session, and the '
  + 'billing job forgets the parameters. A 502 during that step means Stripe still did not tell the session (no answer, or one that says '
  + 'nothing about the first create: rate limited, not authorized, a server error): try again.';

/** What both portal routes say about their order of refusals and the saved sessions (OpenAPI description). */
const PORTAL_DESCRIPTION = '503 billing.stripe_not_configured on a server without Stripe, before any Stripe call or write (after the '
  + 'caller\'s membership and role are checked and the body is validated); then 409 '
  + 'billing.no_customer when the account has no Stripe customer yet. Before the portal session is created, the checkout sessions saved to be '
  + 'expired (overtaken checkouts\' sessions Stripe failed to expire) are expired in Stripe; one Stripe fails to expire stays saved for the '
  + 'billing job, and the portal opens anyway; one the customer paid whose subscription is not recorded yet stays saved too. '
  + 'The portal is for one app: `app`, else the app of the account\'s first subscription (404 app.not_found for an unknown app, before '
  + 'billing.no_customer); when STRIPE_PORTAL_CONFIGURATIONS names a configuration for it (`app:personal` or `app:business` for this kind of '
  + 'account first, then `app`), the session uses it, so only that app\'s products are offered; otherwise Stripe\'s default configuration.';

@ApiTags('billing')
@OrgRoute()
@Controller('v1/orgs/:orgId')
export class OrgBillingController {
  constructor(private readonly entitlements: EntitlementsService) {}

  @Get('entitlements')
  @ApiErrorCodes('organization.not_found', 'app.not_found')
  @RequiresScope('org:read')
  @ApiOperation({ operationId: 'getOrganizationEntitlements', summary: 'The organization\'s plan, status and every feature with its limit and current usage in one app (members; a service key too)' })
  @ApiOkResponse({ type: EntitlementsDto })
  @ApiErrors(400)
  get(@Tx() tx: TenantTx, @Query() q: AppQueryDto): Promise<EntitlementsDto> {
    return this.entitlements.entitlements(tx, q.app);
  }
}

@ApiTags('billing')
@UserRoute()
@Controller('v1/me')
export class MyBillingController {
  constructor(private readonly entitlements: EntitlementsService) {}

  @Get('entitlements')
  @ApiErrorCodes('auth.user_required', 'app.not_found')
  @ApiOperation({ operationId: 'getMyEntitlements', summary: 'Your personal plan, status and features in one app' })
  @ApiOkResponse({ type: EntitlementsDto })
  @ApiErrors(400, 404)
  get(@Tx() tx: TenantTx, @Query() q: AppQueryDto): Promise<EntitlementsDto> {
    return this.entitlements.entitlements(tx, q.app);
  }
}

/**
 * Checkout and portal of an organization, not @OrgRoute: Stripe answers in up to 20 s per try, and no transaction (nor
 * pool connection) may wait on it. The preflight checks membership and the role; CheckoutService reads in one short
 * transaction, calls Stripe with none open, and audits in another.
 */
@ApiTags('billing')
@OrgPreflightRoute()
@Controller('v1/orgs/:orgId')
export class OrgCheckoutController {
  constructor(
    private readonly db: DatabaseService,
    private readonly checkouts: CheckoutService,
  ) {}

  @Post('billing/checkout')
  @RequireRole(...ADMIN_ROLES)
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'app.not_found', 'billing.plan_unknown', 'billing.plan_audience', 'billing.plan_not_for_sale', 'billing.subscription_exists', 'billing.subscription_end_pending', 'billing.checkout_superseded', 'billing.stripe_no_url', 'billing.stripe_failed', 'billing.stripe_not_configured')
  @ApiOperation({ operationId: 'createOrganizationCheckout', summary: 'Start a Stripe Checkout for a plan of an app (admin or owner)', description: CHECKOUT_DESCRIPTION })
  @ApiCreatedResponse({ type: CheckoutSessionDto })
  @ApiErrors(400, 409, 422, 502, 503)
  checkout(@Preflight() preflight: PreflightTenant, @Body() dto: CheckoutDto): Promise<CheckoutSessionDto> {
    return this.checkouts.checkout(openTenant(this.db, preflight), dto);
  }

  @Post('billing/portal')
  @RequireRole(...ADMIN_ROLES)
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'app.not_found', 'billing.no_customer', 'billing.stripe_failed', 'billing.stripe_not_configured')
  @ApiOperation({ operationId: 'createOrganizationBillingPortal', summary: 'Open the Stripe customer portal (admin or owner)', description: PORTAL_DESCRIPTION })
  @ApiCreatedResponse({ type: PortalSessionDto })
  @ApiErrors(400, 409, 502, 503)
  portal(@Preflight() preflight: PreflightTenant, @Body() dto: PortalDto): Promise<PortalSessionDto> {
    return this.checkouts.portal(openTenant(this.db, preflight), dto);
  }
}

/** The organization's Stripe events (in the request's tenant transaction; after checkout and portal in the document). */
@ApiTags('billing')
@OrgRoute()
@Controller('v1/orgs/:orgId')
export class OrgBillingEventsController {
  @Get('billing/events')
  @RequireRole(...ADMIN_ROLES)
  @ApiErrorCodes('organization.not_found', 'forbidden.role')
  @ApiOperation({ operationId: 'listBillingEvents', summary: 'The Stripe events about this organization, newest first; filter by status and type (cursor pagination; admin or owner)' })
  @ApiOkResponse({ type: BillingEventPage })
  @ApiErrors(400)
  async events(@Tx() tx: TenantTx, @Query() q: BillingEventQuery): Promise<BillingEventPage> {
    const limit = q.limit ?? 50;
    const after = decodeKeyset(q.cursor, { r: 'timestamp', i: 'uuid' });
    const rows = await repo.billingEvents(tx.db, tx.orgId, { status: q.status, type: q.type, after, limit: limit + 1 });
    const p = page(rows, limit, (r) => r.key);
    return { items: p.items.map((r) => r.event), nextCursor: p.nextCursor };
  }
}

/**
 * Checkout and portal of the signed-in person, not @UserRoute for the same reason: the preflight checks the caller as
 * @UserRoute does, then each step opens its own transaction in the person's personal organization.
 */
@ApiTags('billing')
@UserPreflightRoute()
@Controller('v1/me')
export class MyCheckoutController {
  constructor(
    private readonly db: DatabaseService,
    private readonly checkouts: CheckoutService,
  ) {}

  @Post('billing/checkout')
  @ApiErrorCodes('auth.user_required', 'app.not_found', 'billing.plan_unknown', 'billing.plan_audience', 'billing.plan_not_for_sale', 'billing.subscription_exists', 'billing.subscription_end_pending', 'billing.checkout_superseded', 'billing.stripe_no_url', 'billing.stripe_failed', 'billing.stripe_not_configured')
  @ApiOperation({ operationId: 'createMyCheckout', summary: 'Start a Stripe Checkout for a personal plan', description: CHECKOUT_DESCRIPTION })
  @ApiCreatedResponse({ type: CheckoutSessionDto })
  @ApiErrors(400, 409, 422, 502, 503)
  checkout(@Preflight() preflight: PreflightTenant, @Body() dto: CheckoutDto): Promise<CheckoutSessionDto> {
    return this.checkouts.checkout(openTenant(this.db, preflight), dto);
  }

  @Post('billing/portal')
  @ApiErrorCodes('auth.user_required', 'app.not_found', 'billing.no_customer', 'billing.stripe_failed', 'billing.stripe_not_configured')
  @ApiOperation({ operationId: 'createMyBillingPortal', summary: 'Open the Stripe customer portal for your personal plans', description: PORTAL_DESCRIPTION })
  @ApiCreatedResponse({ type: PortalSessionDto })
  @ApiErrors(400, 409, 502, 503)
  portal(@Preflight() preflight: PreflightTenant, @Body() dto: PortalDto): Promise<PortalSessionDto> {
    return this.checkouts.portal(openTenant(this.db, preflight), dto);
  }
}

@ApiTags('billing')
@UserRoute()
@Controller('v1/billing/apps')
export class CatalogController {
  @Get()
  @ApiErrorCodes('auth.user_required')
  @ApiOperation({ operationId: 'listApps', summary: 'The catalog: apps, their plans, and each plan\'s features and limits' })
  @ApiOkResponse({ type: [AppCatalogDto] })
  async list(@Tx() tx: TenantTx): Promise<AppCatalogDto[]> {
    const apps: AppCatalogDto[] = [];
    for (const app of await repo.apps(tx.db)) {
      const plans = [];
      for (const p of await repo.plans(tx.db, app.id)) {
        const features = (await repo.planFeatures(tx.db, app.id, p.code)).map((f) => ({
          feature: f.feature, kind: f.kind, description: f.description, unit: f.unit,
          enabled: f.kind === 'limit' ? f.limit !== 0 : f.enabled, limit: f.kind === 'limit' ? f.limit : null, usage: null,
        }));
        plans.push({ code: p.code, name: p.name, audience: p.audience, features });
      }
      apps.push({ ...app, plans });
    }
    return apps;
  }
}

/**
 * getUserSubscription for apps (seed 000): a service-role key asks what a person is entitled to.
 * (For an organization, the same key calls GET /v1/orgs/:orgId/entitlements.)
 */
@ApiTags('billing')
@ApiBearerAuth()
@Controller('v1/billing/users/:userId/entitlements')
export class ServiceEntitlementsController {
  constructor(
    private readonly db: DatabaseService,
    private readonly entitlements: EntitlementsService,
  ) {}

  @Get()
  @ApiErrorCodes('auth.service_required', 'user.not_found', 'app.not_found')
  @ApiOperation({ operationId: 'getUserEntitlements', summary: 'A person\'s personal plan, status, features, limits and usage in one app (service-role key only)' })
  @ApiParam({ name: 'userId', description: 'core."User".id' })
  @ApiOkResponse({ type: EntitlementsDto })
  @ApiErrors(400, 401, 403, 404)
  async get(@CurrentPrincipal() principal: Principal, @Param('userId') userId: string, @Query() q: AppQueryDto, @Req() req: FastifyRequest): Promise<EntitlementsDto> {
    if (principal.kind !== 'service') throw PlatformErrors.error('auth.service_required', 'this route is for a service-role key; a person reads GET /v1/me/entitlements');
    const meta = { requestId: req.id, ip: req.ip };
    const found = await this.db.tenantResolving(principal, meta, (tx) => this.entitlements.personalOrgOf(tx, userId), (tx) => this.entitlements.entitlements(tx, q.app));
    if (!found) throw BillingErrors.notFound('user', userId);
    return found;
  }
}

@ApiTags('billing')
@Controller('v1/billing/stripe/webhook')
export class StripeWebhookController {
  constructor(private readonly webhooks: StripeWebhookService) {}

  @Post()
  @Public()
  @HttpCode(200)
  @ApiErrorCodes('billing.webhook_signature', 'billing.webhook_payload', 'billing.stripe_not_configured')
  @ApiOperation({ operationId: 'receiveStripeWebhook', summary: 'Stripe webhook: verified on the raw body, stored once per event id, processed through the job outbox' })
  @ApiHeader({ name: 'Stripe-Signature', required: true })
  @ApiOkResponse({ type: WebhookAckDto })
  @ApiErrors(400, 503)
  receive(@Req() req: FastifyRequest & { rawBody?: Buffer }, @Headers('stripe-signature') signature?: string): Promise<WebhookAckDto> {
    return this.webhooks.receive(req.rawBody, signature, req.id);
  }
}
