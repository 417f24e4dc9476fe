import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { SqlPool, type Db } from './sql.js';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { claimsFor, type Principal, type RequestRole } from '../auth/principal.js';
import { PlatformErrors } from '../errors/platform.errors.js';
import { mapDatabaseError, translateDatabaseError } from '../errors/database-errors.js';
import { Metrics } from '../observability/metrics.js';

export type { Db } from './sql.js';

export interface RequestMeta {
  requestId: string;
  ip?: string;
}

/**
 * One request's database work: a transaction that has already set request.jwt.claims and
 * SET LOCAL ROLE. Repositories take this object, never a client, so a tenant query outside
 * the transaction cannot be written. `orgId` and `role` are what the database concluded
 * (auth_org_id(), auth_role()), not what the caller claimed.
 */
export interface TenantTx {
  readonly db: Db;
  readonly principal: Principal;
  readonly orgId: string;
  readonly role: RequestRole | null;
  readonly workspaceId: string | null;
  readonly meta: RequestMeta;
  /** an API key's scopes, as the database verified them; null for every other principal */
  readonly scopes: string[] | null;
}

/** The transaction of a public (unauthenticated) request: role anon, no identity. */
export interface PublicTx {
  readonly db: Db;
  readonly meta: RequestMeta;
}

/**
 * Points the transaction's claims (request.jwt.claims, for the rest of the transaction) at `orgId` for `principal`, and
 * lets the database decide the membership again (auth_org_id()'s full check): the organization and the principal's role
 * in it, or a null organization when the principal is not a member. Such claims are not the ones begin_request
 * verified (auth_claims_verified() is false under them). DatabaseService.tenantResolving and
 * invitationRepository.readAsNewMember use it.
 */
export async function claimOrganization(db: Db, principal: Principal, orgId: string): Promise<{ orgId: string | null; role: RequestRole | null }> {
  await db.$executeRaw`SELECT set_config('request.jwt.claims', ${JSON.stringify(claimsFor(principal, orgId))}, true)`;
  const [ctx] = await db.$queryRaw<{ org_id: string | null; role: RequestRole | null }[]>`SELECT public.auth_org_id() AS org_id, public.auth_role() AS role`;
  return { orgId: ctx.org_id, role: ctx.role };
}

/**
 * begin_request (an ended session: logout, revocation, expiry) or begin_key_request (an unknown, revoked or expired API
 * key) refused the caller with SQLSTATE 28000: the 401 `auth.unauthorized` with the database's message, as the HTTP error
 * filter answers it (mapDatabaseError), thrown as that AppError so that every caller sees it so, not only the filter: a
 * job run as the person or key that started it (RunsService: a run whose starter can no longer run it fails at once).
 */
const refusedCaller = <T>(begin: Promise<T>): Promise<T> => translateDatabaseError(begin, { '28000': (e) => mapDatabaseError(e)! });

/** What the row-level-security canary found wrong with one table or view. */
export interface CanaryLeak {
  table: string;
  /** rows the probe principal saw; 0 for what the catalog shows (a table need not hold rows to be open) */
  rows: number;
  /**
   * rows_visible: the probe saw rows; rls_disabled, rls_not_forced: the table's row-level security off, or not forced
   * (its owner, and what runs as it, reads past the policies); policy_allows_all: a permissive policy the probe's role
   * falls under whose USING is `true`; view_not_invoker: a view that reads as its owner (no security_invoker).
   */
  reason: 'rows_visible' | 'rls_disabled' | 'rls_not_forced' | 'policy_allows_all' | 'view_not_invoker';
}

/** One read of the row-level-security canary: which pages of which table or view, and what it saw. */
export interface CanaryRead {
  table: string;
  /** rows the probe principal saw in those pages (0 or 1: the read stops at the first) */
  rows: number;
  /**
   * the pages read, [from, to) of `pages` (a partitioned table: the same pages of each partition, `pages` its largest
   * partition's); a table of at most the block's pages is read whole (from 0, to = pages), a view too (pages 0)
   */
  from: number;
  to: number;
  pages: number;
}

/**
 * The pages of a table of `pages` the canary reads this check: `blockPages` of them from page `next` (0 when `next` is
 * past the end: the table shrank, or a pass is done), or the whole table when it has no more than that. Successive
 * checks move the block forward (RlsCanary), so every page is read within pages / blockPages checks.
 */
export function rlsCanaryRange(pages: number, blockPages: number, next = 0): { from: number; to: number } {
  if (pages <= blockPages) return { from: 0, to: pages };
  const from = Number.isInteger(next) && next > 0 && next < pages ? next : 0;
  return { from, to: Math.min(from + blockPages, pages) };
}

/**
 * The canary's read of one table: the pages of `range` (rlsCanaryRange) through a TID range (a TID Range Scan: the
 * comparisons of ctid are leakproof, so the planner applies them under the policies and reads those pages only), the
 * whole table without one. Unbounded, a read the policies hide every row of is a scan of the whole table whenever the
 * plan has no index for them (a large table: the statement timeout every check, so never a verdict); bounded, it costs
 * the same on any size of table. On a partitioned table the range applies to each partition.
 */
export function rlsCanaryProbe(table: string, range?: { from: number; to: number }): string {
  const where = range ? ` WHERE ctid >= '(${Math.trunc(range.from)},0)'::tid AND ctid < '(${Math.trunc(range.to)},0)'::tid` : '';
  return `SELECT count(*)::int AS n FROM (SELECT 1 FROM ${table}${where} LIMIT 1) x`;
}

/** Ends the canary's transaction by rollback, carrying what it saw. */
class CanaryDone extends Error {
  constructor(readonly seen: { leaks: CanaryLeak[]; reads: CanaryRead[] }) {
    super('canary done');
  }
}

@Injectable()
export class DatabaseService implements OnApplicationShutdown {
  private readonly logger = new Logger(DatabaseService.name);
  /** Runtime login (omnizen_api): can only SET ROLE authenticated / anon. */
  private readonly pool: SqlPool;

  /**
   * `metrics`: statements are timed by repository operation when metrics are served (Metrics.queryRecorder). The
   * transactions' callbacks below are named functions, not arrows, so that their own statements are timed under
   * `database.service.tenant` and the like (sql.ts operationOf: an anonymous callback would be "anonymous").
   */
  constructor(@Inject(APP_CONFIG) config: AppConfig, metrics?: Metrics) {
    this.pool = new SqlPool(config.apiDatabaseUrl, {
      max: config.apiDatabasePoolSize, ...config.database, recordQuery: metrics?.queryRecorder,
      onConnectionError: metrics && (() => metrics.dbPoolErrors.inc({ pool: 'api' })),
    }, 'Database');
  }

  /**
   * Runs `work` in one transaction as `principal` inside organization `orgId`.
   * A caller who may not act in the organization gets a 404, decided by the database; a token whose session has ended,
   * a 401 (refusedCaller).
   */
  async tenant<T>(
    principal: Principal,
    orgId: string,
    meta: RequestMeta,
    work: (tx: TenantTx) => Promise<T>,
    options: { workspaceId?: string; allowNonMember?: boolean; readOnlyRolledBack?: boolean } = {},
  ): Promise<T> {
    if (principal.kind === 'apiKey') return this.keyTenant(principal, orgId, meta, work, options);
    const claims = JSON.stringify(claimsFor(principal, orgId, options.workspaceId));
    const role = principal.kind === 'anonymous' ? 'anon' : 'authenticated';
    return this.pool.transaction(async function tenant(db) {
      const [ctx] = await refusedCaller(db.$queryRaw<{ org_id: string | null; role: RequestRole | null; workspace_id: string | null }[]>`
        SELECT org_id, role, workspace_id FROM public.begin_request(${claims}, ${role})`);
      if (!ctx.org_id && !options.allowNonMember) {
        throw PlatformErrors.notFound('organization', orgId);
      }
      if (options.workspaceId && !ctx.workspace_id) {
        throw PlatformErrors.notFound('workspace', options.workspaceId);
      }
      return work({ db, principal, orgId, role: ctx.role, workspaceId: ctx.workspace_id, meta, scopes: null });
    }, { readOnlyRolledBack: options.readOnlyRolledBack });
  }

  /**
   * The same for an API key: the database verifies the key (hash, revocation, expiry: 401 otherwise, refusedCaller) and sets
   * the claims itself (public.begin_key_request), in the same single round trip. Another organization's key: 404.
   */
  private keyTenant<T>(
    principal: Extract<Principal, { kind: 'apiKey' }>,
    orgId: string,
    meta: RequestMeta,
    work: (tx: TenantTx) => Promise<T>,
    options: { workspaceId?: string; readOnlyRolledBack?: boolean },
  ): Promise<T> {
    return this.pool.transaction(async function keyTenant(db) {
      const [ctx] = await refusedCaller(db.$queryRaw<{ org_id: string | null; role: RequestRole | null; workspace_id: string | null; scopes: string[] }[]>`
        SELECT org_id, role, workspace_id, scopes FROM public.begin_key_request(${principal.keyId}::uuid, ${principal.secretHash}, ${orgId}::uuid, ${options.workspaceId ?? null})`);
      if (!ctx.org_id) throw PlatformErrors.notFound('organization', orgId);
      if (options.workspaceId && !ctx.workspace_id) throw PlatformErrors.notFound('workspace', options.workspaceId);
      return work({ db, principal, orgId, role: ctx.role, workspaceId: ctx.workspace_id, meta, scopes: ctx.scopes });
    }, { readOnlyRolledBack: options.readOnlyRolledBack });
  }

  /**
   * Like `tenant`, for a principal that must first look up which organization it acts in (a service key
   * reading a person's personal organization): one transaction. `resolve` runs as the principal outside
   * any organization; the transaction then continues inside the organization it names (claims replaced,
   * membership decided again by the database: auth_org_id()). Undefined when `resolve` finds none.
   */
  async tenantResolving<T>(
    principal: Principal,
    meta: RequestMeta,
    resolve: (tx: TenantTx) => Promise<string | null>,
    work: (tx: TenantTx) => Promise<T>,
  ): Promise<T | undefined> {
    const role = principal.kind === 'anonymous' ? 'anon' : 'authenticated';
    return this.pool.transaction(async function tenantResolving(db) {
      const [outside] = await refusedCaller(db.$queryRaw<{ role: RequestRole | null }[]>`
        SELECT role FROM public.begin_request(${JSON.stringify(claimsFor(principal, ''))}, ${role})`);
      const orgId = await resolve({ db, principal, orgId: '', role: outside.role, workspaceId: null, meta, scopes: null });
      if (!orgId) return undefined;
      const ctx = await claimOrganization(db, principal, orgId);
      if (!ctx.orgId) throw PlatformErrors.notFound('organization', orgId);
      return work({ db, principal, orgId, role: ctx.role, workspaceId: null, meta, scopes: null });
    });
  }

  /**
   * Runs `work` in one transaction as the anonymous role (public pages). Only what policies or
   * SECURITY DEFINER functions grant to `anon` is reachable.
   */
  async anonymous<T>(meta: RequestMeta, work: (tx: PublicTx) => Promise<T>): Promise<T> {
    return this.pool.transaction(async function anonymous(db) {
      await db.$queryRaw`SELECT org_id FROM public.begin_request(${JSON.stringify({ role: 'anon' })}, 'anon')`;
      return work({ db, meta });
    });
  }

  /** The runtime pool's connections (for /metrics). */
  poolStats(): { inUse: number; idle: number; waiting: number } {
    return this.pool.stats();
  }

  /**
   * The row-level-security canary: as `authenticated` with the claims of a person who belongs to no organization,
   * checks every table and view of `schemas` that holds organizations' rows (an org_id column, and the organizations
   * themselves) and that the role may select, if only some of its columns (core.api_keys), so a module's new table is
   * covered at once. The catalog first: RLS enabled and forced, no permissive policy `USING (true)` for the role, views
   * security_invoker (`leaks`). Then a read of each other, which must show no row (a policy loosened some other way):
   * a table's `blockPages` of its pages from the page `next` gives for it (rlsCanaryRange, rlsCanaryProbe: the caller
   * moves it forward), a partitioned table's those pages of each partition (its partitions need not be granted: read
   * through it, under its policies), a view's whole (a view has no pages; an invoker view reads its tables under
   * their policies, and one that calls a SECURITY DEFINER function, semantic.v_ar_open, could show rows its tables
   * hide) (`reads`). Runs in a transaction that is always rolled back.
   */
  async rlsCanary(schemas: readonly string[], lockTimeoutMs: number, blockPages: number, next: ReadonlyMap<string, number>): Promise<{ leaks: CanaryLeak[]; reads: CanaryRead[] }> {
    return this.pool.transaction(async function rlsCanary(db) {
      // a table locked by a migration or VACUUM FULL fails the check soon (55P03) instead of holding it for the pool's
      // timeout; no JIT: the reads find nothing, and compiling a view's plan (semantic.v_cash_flow) cost more than running it
      await db.$queryRaw`SELECT set_config('lock_timeout', ${`${Math.max(1, Math.trunc(lockTimeoutMs))}ms`}, true), set_config('jit', 'off', true)`;
      const probe = JSON.stringify({ sub: '00000000-0000-4000-8000-00000000c4a7', role: 'authenticated' });
      await db.$queryRaw`SELECT org_id FROM public.begin_request(${probe}, 'authenticated')`;
      const relations = await db.$queryRaw<{ name: string; kind: string; pages: number; rls: boolean; forced: boolean; allowsAll: boolean; invoker: boolean; ctid: boolean }[]>`
        SELECT format('%I.%I', n.nspname, c.relname) AS name, c.relkind::text AS kind,
          (CASE WHEN c.relkind = 'p' THEN (SELECT coalesce(max(pg_relation_size(t.relid)), 0) FROM pg_partition_tree(c.oid) t WHERE t.isleaf)
                ELSE pg_relation_size(c.oid) END / current_setting('block_size')::int)::float8 AS pages,
          c.relrowsecurity AS rls, c.relforcerowsecurity AS forced,
          EXISTS (SELECT 1 FROM pg_policy p
                  WHERE p.polrelid = c.oid AND p.polpermissive AND p.polcmd IN ('r', '*') AND pg_get_expr(p.polqual, p.polrelid) = 'true'
                    AND EXISTS (SELECT 1 FROM unnest(p.polroles) r WHERE CASE WHEN r = 0 THEN true ELSE pg_has_role(r, 'MEMBER') END)) AS "allowsAll",
          EXISTS (SELECT 1 FROM unnest(c.reloptions) o WHERE o ~* '^security_invoker=(t|tr|tru|true|y|ye|yes|on|1)$') AS invoker,
          -- a table the role may read some columns of only (core.api_keys) has no ctid for it: a TID range is refused (42501)
          CASE WHEN c.relkind = 'v' THEN false ELSE has_column_privilege(c.oid, 'ctid', 'SELECT') END AS ctid
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v') AND n.nspname = ANY(${schemas as string[]}) AND has_any_column_privilege(c.oid, 'SELECT')
          AND (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped)
               OR (n.nspname, c.relname) = ('core', 'organizations'))
        ORDER BY 1`;
      const leaks: CanaryLeak[] = [];
      const reads: CanaryRead[] = [];
      for (const r of relations) {
        const view = r.kind === 'v';
        const found: CanaryLeak['reason'] | null = view
          ? (r.invoker ? null : 'view_not_invoker')
          : !r.rls ? 'rls_disabled' : !r.forced ? 'rls_not_forced' : r.allowsAll ? 'policy_allows_all' : null;
        if (found) {
          leaks.push({ table: r.name, rows: 0, reason: found });
          continue;
        }
        // a view has no pages of its own (0): read whole, as a table of no more than blockPages pages
        // a table whose ctid the role may not read (column grants only): whole, each check (its pass is one check)
        const range = r.ctid ? rlsCanaryRange(r.pages, blockPages, next.get(r.name)) : { from: 0, to: Math.max(r.pages, 1) };
        const whole = range.from === 0 && range.to >= r.pages;
        const [row] = await db.$queryRawUnsafe<{ n: number }[]>(rlsCanaryProbe(r.name, whole ? undefined : range));
        reads.push({ table: r.name, rows: row.n, ...range, pages: r.pages });
      }
      throw new CanaryDone({ leaks, reads });
    }).catch((err: unknown) => {
      if (err instanceof CanaryDone) return err.seen;
      throw err;
    });
  }

  /** Readiness probe: one round trip on the runtime pool (touches no table). */
  async ping(): Promise<void> {
    await this.pool.ping();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.pool.end();
    this.logger.log('database pool closed');
  }
}
