import {
  applyDecorators, CallHandler, type OnApplicationBootstrap, createParamDecorator, ExecutionContext, Inject, Injectable, NestInterceptor,
  RequestMethod, SetMetadata, UseInterceptors,
} from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA, ROUTE_ARGS_METADATA } from '@nestjs/common/constants.js';
import { ModuleRef, ModulesContainer, Reflector } from '@nestjs/core';
import { ApiBearerAuth, ApiExtension, ApiHeader, ApiParam } from '@nestjs/swagger';
import { from, lastValueFrom, Observable, switchMap } from 'rxjs';
import { DatabaseService, type TenantTx } from '../database/database.service.js';
import type { Principal, RequestRole } from '../auth/principal.js';
import { ApiErrors } from './openapi.js';
import { PlatformErrors } from '../errors/platform.errors.js';
import { API_KEY_SCOPE } from '../auth/api-key-scopes.js';
import { LimitedPerOrganization, NOT_RATE_LIMITED, OrgRateLimits, RateLimiter } from './rate-limit.js';
import { AppError } from '../errors/app-error.js';
import { sqlState } from '../errors/database-errors.js';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { UUID } from './uuid.js';

const SCOPE = 'omnizen:tenant-scope';
const ROLES = 'omnizen:required-roles';
const ENTITLEMENTS = 'omnizen:entitlements';

type Scope = 'org' | 'user';

/** The scope of a preflight route: 'org' (@OrgPreflightRoute) or 'user' (@UserPreflightRoute). */
const PREFLIGHT = 'omnizen:preflight';

/**
 * Whether a handler acts in an organization named by the path: its tenant transaction (@OrgRoute) or its preflight
 * (@OrgPreflightRoute: agent runs, semantic queries, knowledge search), which checks an API key and its scope the same
 * way. The only routes API keys may call.
 */
export function isOrgRoute(reflector: Reflector, context: ExecutionContext): boolean {
  const targets = [context.getHandler(), context.getClass()];
  return reflector.getAllAndOverride<Scope>(SCOPE, targets) === 'org' || reflector.getAllAndOverride<Scope>(PREFLIGHT, targets) === 'org';
}

/**
 * Whether the route's work runs in a tenant transaction (@OrgRoute, @UserRoute, @OrgPreflightRoute, @UserPreflightRoute),
 * whose begin_request refuses the access token of an ended session. The other routes check the session in the auth guard.
 */
export function runsTenantTransaction(reflector: Reflector, context: ExecutionContext): boolean {
  const targets = [context.getHandler(), context.getClass()];
  return reflector.getAllAndOverride<Scope>(SCOPE, targets) !== undefined || reflector.getAllAndOverride<Scope>(PREFLIGHT, targets) !== undefined;
}

/**
 * What a route needs from the organization's plan in an app. `feature` absent: only a subscription
 * that allows writing. `consumes`: the route adds one unit of the counted limit `feature`.
 */
export interface EntitlementRequirement {
  app: string;
  feature?: string;
  consumes?: boolean;
  /** only the plan's feature is checked: a read-only subscription passes (the API key check; the routes refuse its writes) */
  readOnlyPasses?: boolean;
}

/**
 * Checks requirements inside the request transaction, before the handler; throws an AppError
 * (402) naming the limit and the plan that lifts it. Provided by the billing module under
 * ENTITLEMENT_GATE, so the platform needs no billing import.
 */
export interface EntitlementGate {
  enforce(tx: TenantTx, requirement: EntitlementRequirement): Promise<void>;
}
export const ENTITLEMENT_GATE = 'omnizen:entitlement-gate';

/**
 * What a request made with an API key needs from the organization's plan, on every request and not only when the key
 * was created: API access (docs/plans.md). A key made on enterprise stops at a downgrade and works again after an
 * upgrade. A read-only subscription passes this check (its reads stay open to keys as to people).
 */
const API_ACCESS: EntitlementRequirement = { app: 'omnizen', feature: 'api_access', readOnlyPasses: true };

/** The plan gate's 402 for a keyed request says that API keys are what the plan lacks. */
function apiAccessRefused(err: unknown): never {
  if (err instanceof AppError && err.status === 402) {
    throw new AppError(err.status, err.code, `API keys need a plan with API access: ${err.message}`, err.details);
  }
  throw err;
}

/**
 * Opens the request's one tenant transaction around the handler.
 * Org routes act in :orgId; user routes act in the caller's personal organization.
 * The database decides membership and role (begin_request); a role required with
 * @RequireRole is checked here for a clear 403, and again by the policies.
 */
@Injectable()
export class TenantTransactionInterceptor implements NestInterceptor {
  private gate?: EntitlementGate;

  constructor(
    private readonly db: DatabaseService,
    private readonly reflector: Reflector,
    private readonly moduleRef: ModuleRef,
    private readonly limiter: RateLimiter,
    private readonly orgLimits: OrgRateLimits,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** Resolved on first use: the billing module that provides it is not a platform dependency. */
  private entitlementGate(): EntitlementGate {
    this.gate ??= this.moduleRef.get<EntitlementGate>(ENTITLEMENT_GATE, { strict: false });
    return this.gate;
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const request = this.prepare(context);
    return from(request.open(() =>
      this.db.tenant(request.principal, request.orgId, request.meta, async (tx) => {
        await request.verify(tx);
        context.switchToHttp().getRequest().tenantTx = tx;
        return lastValueFrom(next.handle(), { defaultValue: undefined });
      }, { workspaceId: request.workspaceId })));
  }

  /**
   * Everything checked before a handler of an org or user route runs, for this interceptor and for
   * OrgPreflightInterceptor alike: which organization, then, inside the tenant transaction (`verify`), the rate
   * limit, the API key's scope, the role, and the plan's requirements (for an API key, API access as well). `open`
   * wraps the transaction: a caller the database refuses on entry (an API key that does not verify: 401; an
   * organization the user is no member of: 404) is counted apart, per client IP (IPv6: per /64) or per user
   * (RATE_LIMIT_REFUSED_PER_MINUTE), and past that limit refused with 429 before any transaction: the organization's
   * own limit counts only callers let in, so without this a made-up key could hold a pooled connection per request
   * for ever. An API key the database let in within the last minutes is not pre-checked (RateLimiter.keyVerified).
   */
  prepare(context: ExecutionContext): {
    principal: Principal; orgId: string; workspaceId?: string; meta: { requestId: string; ip: string };
    verify: (tx: TenantTx) => Promise<void>;
    open: <T>(transaction: () => Promise<T>) => Promise<T>;
  } {
    const req = context.switchToHttp().getRequest();
    const targets = [context.getHandler(), context.getClass()];
    const scope = this.reflector.getAllAndOverride<Scope>(SCOPE, targets) ?? this.reflector.getAllAndOverride<Scope>(PREFLIGHT, targets) ?? 'org';
    const roles = this.reflector.getAllAndOverride<RequestRole[] | undefined>(ROLES, targets);
    const principal = req.user as Principal;
    // a request that only stops something (@OnlyStops): the route's plan requirements do not apply to it
    const stops = this.reflector.get<StopsOnly | undefined>(ONLY_STOPS, context.getHandler());
    const entitlements = stops && (!stops.when || stops.when(req.body)) ? []
      : this.reflector.getAllAndMerge<EntitlementRequirement[]>(ENTITLEMENTS, targets) ?? [];
    const keyScope = this.reflector.getAllAndOverride<string | undefined>(API_KEY_SCOPE, targets);
    const limited = this.limiter.enabled && !this.reflector.getAllAndOverride<boolean>(NOT_RATE_LIMITED, targets);
    const reply = context.switchToHttp().getResponse();
    let orgId: string;
    if (scope === 'org') {
      orgId = req.params.orgId;
      if (!UUID.test(orgId ?? '')) throw PlatformErrors.notFound('organization', orgId);
      // one spelling (as the validation pipe gives ids): the rate limit's bucket, the audit rows and the events key by it
      orgId = orgId.toLowerCase();
    } else {
      if (principal.kind !== 'user') throw PlatformErrors.error('auth.user_required', 'this route acts for a signed-in user; a service key or API key cannot call it');
      orgId = principal.personalOrgId;
    }
    const header = req.headers['x-workspace-id'];
    const workspaceId = typeof header === 'string' && header ? header.toLowerCase() : undefined;
    if (workspaceId && !UUID.test(workspaceId)) throw PlatformErrors.error('workspace.invalid', 'X-Workspace-Id must be a UUID');
    let entered = false;
    const [letIn, letInWhat] = principal.kind === 'apiKey' ? [`key:${principal.keyId}`, 'this API key'] : [`org:${orgId}`, 'this organization'];
    const verify = async (tx: TenantTx): Promise<void> => {
      entered = true;
      // after begin_request: only a caller the database let into the organization counts against its limit
      if (limited) {
        if (principal.kind === 'apiKey') this.limiter.keyVerified(principal);
        const limit = await this.orgLimits.limitOf(tx);
        if (limit !== null) await this.limiter.consume(letIn, limit, reply, letInWhat);
      }
      if (tx.scopes) {
        if (!keyScope) throw PlatformErrors.error('api_keys.route_closed', 'this route is not open to API keys; call it with a user token');
        if (!tx.scopes.includes(keyScope)) {
          throw PlatformErrors.error('api_keys.scope_missing', `this API key lacks the scope ${keyScope}`, { scope: keyScope, scopes: tx.scopes });
        }
      }
      if (roles && !roles.includes(tx.role as RequestRole)) {
        throw PlatformErrors.error('forbidden.role', `this action needs the role ${roles.filter((r) => r !== 'service').join(' or ')}; you are ${tx.role ?? 'not a member'}`);
      }
      // in the request transaction, before the write: a counted limit locks and counts here. An API key's plan check
      // goes out with the route's own (the connection pipelines their reads); both settle before an error leaves, the
      // key's first.
      if (!tx.scopes && !entitlements.length) return;
      const gate = this.entitlementGate();
      const checks = await Promise.allSettled([
        tx.scopes ? gate.enforce(tx, API_ACCESS).catch(apiAccessRefused) : undefined,
        (async () => {
          for (const requirement of entitlements) await gate.enforce(tx, requirement);
        })(),
      ]);
      for (const check of checks) if (check.status === 'rejected') throw check.reason;
    };
    const refused = !limited ? undefined
      : principal.kind === 'apiKey' ? { bucket: `refused:${this.limiter.addressBucket(req.ip)}`, what: 'this client address' }
        : principal.kind === 'user' ? { bucket: `refused:user:${principal.userId}`, what: 'this user' } : undefined;
    const open = async <T>(transaction: () => Promise<T>): Promise<T> => {
      // a key the database let in lately is not held up by the made-up keys of others at its address
      if (!(principal.kind === 'apiKey' && this.limiter.keyRecentlyVerified(principal))) this.limiter.assertNotRefusing(refused?.bucket, refused?.what ?? '');
      try {
        return await transaction();
      } catch (err) {
        if (!limited || entered) throw err;
        if (err instanceof AppError && err.code === 'workspace.not_found') {
          // let into the organization, in none of its workspaces (a stale X-Workspace-Id): no refusal, but a request
          // of the organization (or key) all the same, counted against its limit as last read
          if (principal.kind === 'apiKey') this.limiter.keyVerified(principal);
          const limit = this.orgLimits.lastKnownLimit(orgId);
          if (limit !== null) await this.limiter.consume(letIn, limit, reply, letInWhat);
        } else if (refused && refusedOnEntry(err)) {
          if (principal.kind === 'apiKey') this.limiter.keyRefused(principal);
          await this.limiter.countRefusal(refused.bucket, this.config.rateLimits.refusedPerMinute, refused.what);
        }
        throw err;
      }
    };
    return { principal, orgId, workspaceId, meta: { requestId: req.id, ip: req.ip }, verify, open };
  }
}

/**
 * begin_request found no organization for the caller (404 `organization.not_found`), or begin_key_request did not
 * verify the key (28000 → 401). Not a workspace of the organization that is not there (a stale X-Workspace-Id).
 */
const refusedOnEntry = (err: unknown): boolean =>
  (err instanceof AppError && (err.code === 'organization.not_found' || err.status === 401)) || sqlState(err).code === '28000';

/**
 * For routes whose handler opens its own transactions instead of running in the request's one: a run of an
 * AI agent (provider calls take seconds; no transaction may stay open across them), a semantic query (its
 * own READ ONLY transaction, always rolled back), a Stripe checkout. The same checks as TenantTransactionInterceptor
 * (membership decided by the database → 404, @RequireRole → 403, the plan's requirements → 402; on a user route, a
 * caller who is not a signed-in user → 403 `auth.user_required`) run first, in a short transaction of their own,
 * before the body is validated; the handler then receives no @Tx(). Serves @OrgPreflightRoute and @UserPreflightRoute.
 */
@Injectable()
export class OrgPreflightInterceptor implements NestInterceptor {
  constructor(
    private readonly db: DatabaseService,
    private readonly tenant: TenantTransactionInterceptor,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const request = this.tenant.prepare(context);
    const checked: PreflightTenant = { principal: request.principal, orgId: request.orgId, workspaceId: request.workspaceId, meta: request.meta };
    context.switchToHttp().getRequest().preflightTenant = checked;
    return from(request.open(() => this.db.tenant(request.principal, request.orgId, request.meta, (tx) => request.verify(tx), { workspaceId: request.workspaceId })))
      .pipe(switchMap(() => next.handle()));
  }
}

/** What the preflight checked, for the handler's own transactions: the caller, the organization and workspace, the request's metadata. */
export interface PreflightTenant {
  principal: Principal;
  orgId: string;
  workspaceId?: string;
  meta: { requestId: string; ip: string };
}

/** Opens one of a handler's own transactions: as `db.tenant(...)` for the caller its preflight checked. */
export type OpenTenant = <T>(work: (tx: TenantTx) => Promise<T>) => Promise<T>;

/** The transactions of the tenant a preflight checked. */
export function openTenant(db: DatabaseService, p: PreflightTenant): OpenTenant {
  return (work) => db.tenant(p.principal, p.orgId, p.meta, work, { workspaceId: p.workspaceId });
}

/** In an @OrgPreflightRoute or @UserPreflightRoute handler: the tenant its preflight checked (open its transactions with openTenant). */
export const Preflight = createParamDecorator((_: unknown, ctx: ExecutionContext): PreflightTenant => ctx.switchToHttp().getRequest().preflightTenant);

/** A controller under /v1/orgs/:orgId whose handlers open their own transactions (see OrgPreflightInterceptor). */
export function OrgPreflightRoute(): ClassDecorator {
  return applyDecorators(
    SetMetadata(PREFLIGHT, 'org'),
    LimitedPerOrganization(),
    UseInterceptors(OrgPreflightInterceptor),
    ApiBearerAuth(),
    ApiExtension('x-omnizen-scope', 'org'),
    ApiParam({ name: 'orgId', description: 'Organization id (UUID)', type: String, format: 'uuid' }),
    ApiHeader({ name: 'X-Workspace-Id', required: false, description: 'Act inside one workspace of the organization' }),
    ApiErrors(400, 401, 403, 404),
  );
}

/** A controller under /v1/orgs/:orgId: every handler runs in that organization's tenant transaction. */
export function OrgRoute(): ClassDecorator {
  return applyDecorators(
    SetMetadata(SCOPE, 'org'),
    LimitedPerOrganization(),
    UseInterceptors(TenantTransactionInterceptor),
    ApiBearerAuth(),
    ApiExtension('x-omnizen-scope', 'org'),
    ApiParam({ name: 'orgId', description: 'Organization id (UUID)', type: String, format: 'uuid' }),
    ApiHeader({ name: 'X-Workspace-Id', required: false, description: 'Act inside one workspace of the organization' }),
    ApiErrors(400, 401, 403, 404),
  );
}

/**
 * A controller acting for the signed-in user (their own sessions, integrations, provider profile), in their personal
 * organization. A service key is refused before the handler (403 `auth.user_required`), an API key before that by the
 * auth guard (403 `api_keys.route_closed`): its handlers need not check the principal's kind.
 */
export function UserRoute(): ClassDecorator {
  return applyDecorators(SetMetadata(SCOPE, 'user'), LimitedPerOrganization(), UseInterceptors(TenantTransactionInterceptor), ApiBearerAuth(),
    ApiExtension('x-omnizen-scope', 'user'), ApiErrors(400, 401, 403));
}

/**
 * A controller acting for the signed-in user whose handlers open their own transactions in the user's personal
 * organization (see OrgPreflightInterceptor): checked as @UserRoute checks, then @Preflight() and openTenant.
 */
export function UserPreflightRoute(): ClassDecorator {
  return applyDecorators(SetMetadata(PREFLIGHT, 'user'), LimitedPerOrganization(), UseInterceptors(OrgPreflightInterceptor), ApiBearerAuth(),
    ApiExtension('x-omnizen-scope', 'user'), ApiErrors(400, 401, 403));
}

/** The roles that may call the route (checked in the request transaction: 403 `forbidden.role`); listed as `x-omnizen-roles`. */
export const RequireRole = (...roles: RequestRole[]): MethodDecorator & ClassDecorator =>
  applyDecorators(SetMetadata(ROLES, roles), ApiExtension('x-omnizen-roles', roles.filter((r) => r !== 'service')));

/** Adds to the route's list (several billing decorators stack; they run top to bottom). */
function addRequirement(requirement: EntitlementRequirement): MethodDecorator & ClassDecorator {
  return (target: object, _key?: string | symbol, descriptor?: PropertyDescriptor): void => {
    const holder = descriptor ? descriptor.value : target;
    Reflect.defineMetadata(ENTITLEMENTS, [requirement, ...(Reflect.getMetadata(ENTITLEMENTS, holder) ?? [])], holder);
  };
}

function entitlement(requirement: EntitlementRequirement, summary: string): MethodDecorator & ClassDecorator {
  return applyDecorators(
    addRequirement(requirement),
    ApiErrors(402),
    ApiExtension('x-omnizen-billing', { ...requirement, summary }),
  );
}

/** The route adds one unit of a counted plan limit (members, workspaces, AI agents...): 402 `billing.limit_reached` when none is left. */
export const ConsumesLimit = (app: string, feature: string) =>
  entitlement({ app, feature, consumes: true }, `consumes one ${feature} of the ${app} plan`);

/** The route needs an on/off plan feature (and a subscription that allows writing). */
export const RequiresFeature = (app: string, feature: string) =>
  entitlement({ app, feature }, `requires the ${feature} feature of the ${app} plan`);

/** The route writes: 402 when the organization's subscription to `app` is read-only (canceled, past_due after grace, trial ended). */
export const RequiresActiveSubscription = (app: string) => entitlement({ app }, `requires a ${app} subscription that allows writing`);

const DOES_NOT_WRITE = 'omnizen:does-not-write';
/** A POST that only computes (a tax calculation): open to a read-only subscription like any read. */
export const DoesNotWrite = () => SetMetadata(DOES_NOT_WRITE, true);

const ONLY_STOPS = 'omnizen:only-stops';
interface StopsOnly { what: string; when?: (body: unknown) => boolean }

/**
 * A write that only stops something the organization set up (deleting a webhook endpoint, or a change that only disables
 * it): open on any plan and subscription, a read-only one included, so a customer who lapsed or downgraded can always stop
 * what still runs in its name, never start or change it. Without `when`, the route has no plan requirement at all
 * (@WritesRequireSubscription skips it, as it skips @DoesNotWrite). With `when`, the route keeps its requirements (listed
 * in the document, 402) and only a request whose JSON body `when` accepts is let through them: decided before the body is
 * validated (the validation pipe refuses unknown fields and converts nothing, so `when` must accept only a body that
 * validation leaves as it is). `what` names those requests in the 402's description (x-omnizen-only-stops). What the
 * handler does is audited as any write of it; an API key's own plan check (API access) still applies.
 */
export const OnlyStops = (what: string, when?: (body: unknown) => boolean): MethodDecorator =>
  applyDecorators(SetMetadata(ONLY_STOPS, { what, when } satisfies StopsOnly), ApiExtension('x-omnizen-only-stops', what));

const READ_METHODS = new Set([RequestMethod.GET, RequestMethod.HEAD, RequestMethod.OPTIONS]);

/**
 * On a controller of a paid app's module: every handler that writes (any method but GET/HEAD/OPTIONS; not @DoesNotWrite,
 * nor @OnlyStops) gets @RequiresActiveSubscription(app), so a lapsed customer can still read and export, never write.
 * Applied per handler when the class is defined (class decorators run after the method decorators), so the OpenAPI
 * document lists the 402 on exactly the writes, and a write added later cannot miss it.
 */
export function WritesRequireSubscription(app: string): ClassDecorator {
  return (target) => {
    const proto = target.prototype;
    for (const key of Object.getOwnPropertyNames(proto)) {
      const descriptor = Object.getOwnPropertyDescriptor(proto, key);
      const handler = descriptor?.value;
      if (key === 'constructor' || typeof handler !== 'function' || Reflect.getMetadata(PATH_METADATA, handler) === undefined) continue;
      if (READ_METHODS.has(Reflect.getMetadata(METHOD_METADATA, handler)) || Reflect.getMetadata(DOES_NOT_WRITE, handler)) continue;
      // a write that only ever stops something (@OnlyStops without a condition) is open to a read-only subscription
      const stops: StopsOnly | undefined = Reflect.getMetadata(ONLY_STOPS, handler);
      if (stops && !stops.when) continue;
      // any requirement of the same app already refuses a read-only subscription
      if ((Reflect.getMetadata(ENTITLEMENTS, handler) ?? []).some((r: EntitlementRequirement) => r.app === app)) continue;
      RequiresActiveSubscription(app)(proto, key, descriptor!);
    }
  };
}

function tenantTxOf(_: unknown, ctx: ExecutionContext): TenantTx {
  return ctx.switchToHttp().getRequest().tenantTx;
}

/** The request's tenant transaction (only inside @OrgRoute / @UserRoute controllers: checked at start-up). */
export const Tx = createParamDecorator(tenantTxOf);

/**
 * Refuses to start on a route mistake found at start-up rather than per request:
 * - a handler takes @Tx() but its controller is neither @OrgRoute nor @UserRoute (it would have no transaction to
 *   receive: a 500 per request);
 * - a handler of an @OrgPreflightRoute / @UserPreflightRoute controller has @ConsumesLimit: its plan checks run in the
 *   preflight's own short transaction, which commits (releasing the limit's lock) before the handler writes, so
 *   concurrent requests would all count the same usage and pass the limit together.
 */
@Injectable()
export class TenantRouteCheck implements OnApplicationBootstrap {
  constructor(private readonly modules: ModulesContainer) {}

  onApplicationBootstrap(): void {
    const wrong: string[] = [];
    const limitedPreflight: string[] = [];
    const consumes = (holder: object) => ((Reflect.getMetadata(ENTITLEMENTS, holder) ?? []) as EntitlementRequirement[]).some((r) => r.consumes);
    for (const module of this.modules.values()) {
      for (const { metatype } of module.controllers.values()) {
        if (!metatype) continue;
        const preflight = Reflect.getMetadata(PREFLIGHT, metatype) !== undefined;
        for (const key of Object.getOwnPropertyNames(metatype.prototype)) {
          const handler = metatype.prototype[key];
          if (key === 'constructor' || typeof handler !== 'function') continue;
          if (preflight && Reflect.getMetadata(PATH_METADATA, handler) !== undefined && (consumes(handler) || consumes(metatype))) limitedPreflight.push(`${metatype.name}.${key}`);
          if (Reflect.getMetadata(SCOPE, metatype)) continue;
          const args: Record<string, { factory?: unknown }> = Reflect.getMetadata(ROUTE_ARGS_METADATA, metatype, key) ?? {};
          if (Object.values(args).some((a) => a.factory === tenantTxOf) && !Reflect.getMetadata(SCOPE, handler)) wrong.push(`${metatype.name}.${key}`);
        }
      }
    }
    if (wrong.length) throw new Error(`@Tx() is used outside an @OrgRoute/@UserRoute controller, where no tenant transaction exists: ${wrong.join(', ')}`);
    if (limitedPreflight.length) {
      throw new Error('@ConsumesLimit is used on a preflight route (@OrgPreflightRoute/@UserPreflightRoute), whose plan checks commit before the '
        + 'handler writes, so the limit\'s lock would not cover the write: '
        + `${limitedPreflight.join(', ')}; move the handler to an @OrgRoute controller (one transaction) or count it in the handler's own transaction`);
    }
  }
}

export const CurrentPrincipal = createParamDecorator((_: unknown, ctx: ExecutionContext): Principal => ctx.switchToHttp().getRequest().user);
