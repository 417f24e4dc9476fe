import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { SqlPool, type Db } from './sql.js';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { claimsFor, type Principal, type RequestRole } from '../auth/principal.js';
import { AppError } from '../errors/app-error.js';

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
}

/** The transaction of a public (unauthenticated) request: role anon, no identity. */
export interface PublicTx {
  readonly db: Db;
  readonly meta: RequestMeta;
}

@Injectable()
export class DatabaseService implements OnApplicationShutdown {
  private readonly logger = new Logger(DatabaseService.name);
  /** Runtime login (omnizen_api): can only SET ROLE authenticated / anon. */
  private readonly pool: SqlPool;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.pool = new SqlPool(config.apiDatabaseUrl, { max: config.apiDatabasePoolSize, ...config.database }, 'Database');
  }

  /**
   * Runs `work` in one transaction as `principal` inside organization `orgId`.
   * A caller who may not act in the organization gets a 404, decided by the database.
   */
  async tenant<T>(
    principal: Principal,
    orgId: string,
    meta: RequestMeta,
    work: (tx: TenantTx) => Promise<T>,
    options: { workspaceId?: string; allowNonMember?: boolean; readOnlyRolledBack?: boolean } = {},
  ): Promise<T> {
    const claims = JSON.stringify(claimsFor(principal, orgId, options.workspaceId));
    const role = principal.kind === 'anonymous' ? 'anon' : 'authenticated';
    return this.pool.transaction(async (db) => {
      const [ctx] = await db.$queryRaw<{ org_id: string | null; role: RequestRole | null; workspace_id: string | null }[]>`
        SELECT org_id, role, workspace_id FROM public.begin_request(${claims}, ${role})`;
      if (!ctx.org_id && !options.allowNonMember) {
        throw AppError.notFound('organization', orgId);
      }
      if (options.workspaceId && !ctx.workspace_id) {
        throw AppError.notFound('workspace', options.workspaceId);
      }
      return work({ db, principal, orgId, role: ctx.role, workspaceId: ctx.workspace_id, meta });
    }, { readOnlyRolledBack: options.readOnlyRolledBack });
  }

  /**
   * Runs `work` in one transaction as the anonymous role (public pages). Only what policies or
   * SECURITY DEFINER functions grant to `anon` is reachable.
   */
  async anonymous<T>(meta: RequestMeta, work: (tx: PublicTx) => Promise<T>): Promise<T> {
    return this.pool.transaction(async (db) => {
      await db.$queryRaw`SELECT org_id FROM public.begin_request(${JSON.stringify({ role: 'anon' })}, 'anon')`;
      return work({ db, meta });
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
