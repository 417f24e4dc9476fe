import { sql } from 'kysely';
import { qb } from '../../platform/database/query-builder.js';
import type { Db } from '../../platform/database/database.service.js';
import { locks, lockId } from '../../platform/database/locks.js';
import type { ApiKeyDto, ApiKeyListStatus } from './api-key.dto.js';

const COLUMNS = [
  'id', 'org_id as orgId', 'name', 'prefix', 'scopes', 'created_by as createdBy', 'created_at as createdAt',
  'expires_at as expiresAt', 'last_used_at as lastUsedAt', 'revoked_at as revokedAt',
] as const;

/** core.api_keys: the secret's hash is written once and never read back (no API-facing role may select it). */
export const apiKeyRepository = {
  async insert(db: Db, k: { orgId: string; id: string; name: string; prefix: string; secretHash: string; scopes: string[]; createdBy: string; expiresAt: Date | null }): Promise<ApiKeyDto> {
    const [row] = await db.run(qb.insertInto('core.api_keys').values({
      org_id: k.orgId, id: k.id, name: k.name, prefix: k.prefix, secret_hash: k.secretHash, scopes: k.scopes, created_by: k.createdBy, expires_at: k.expiresAt,
    }).returning(COLUMNS));
    return row;
  },

  /**
   * The creator's role in the organization, read again under FOR SHARE (RLS shows a member their organization's
   * memberships; the lock passes the membership update policy as an owner or admin, all that reach here). begin_request
   * reads the role once, as the transaction begins: a demotion or removal committed since, or under way (waited for), is
   * seen here (READ COMMITTED); one coming later waits for this transaction, and its trigger then revokes the new key.
   */
  async creatorRoleLocked(db: Db, orgId: string, userId: string): Promise<string | undefined> {
    const [row] = await db.run(qb.selectFrom('core.memberships').select('role').where('org_id', '=', orgId).where('user_id', '=', userId).forShare());
    return row?.role;
  },

  /** Keys not revoked and not expired, counted under a lock that concurrent creations take too (so none passes the cap). */
  async countLiveLocked(db: Db, orgId: string, now: Date): Promise<number> {
    await locks.exclusive(db, `core.api_keys:${lockId(orgId)}`);
    const [row] = await db.run(qb.selectFrom('core.api_keys').select((s) => s.fn.countAll<string>().as('n')).where('org_id', '=', orgId)
      .where('revoked_at', 'is', null).where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)])));
    return Number(row.n);
  },

  /** Newest first; `active`: not revoked (expired ones included). */
  async list(db: Db, orgId: string, status: ApiKeyListStatus): Promise<ApiKeyDto[]> {
    let q = qb.selectFrom('core.api_keys').select(COLUMNS).where('org_id', '=', orgId);
    if (status !== 'all') q = q.where('revoked_at', status === 'active' ? 'is' : 'is not', null);
    return db.run(q.orderBy('created_at', 'desc').orderBy('id'));
  },

  async get(db: Db, orgId: string, id: string): Promise<ApiKeyDto | undefined> {
    const [row] = await db.run(qb.selectFrom('core.api_keys').select(COLUMNS).where('org_id', '=', orgId).where('id', '=', id));
    return row;
  },

  async revoke(db: Db, orgId: string, id: string, by: string): Promise<ApiKeyDto | undefined> {
    const [row] = await db.run(qb.updateTable('core.api_keys').set({ revoked_at: sql`now()`, revoked_by: by })
      .where('org_id', '=', orgId).where('id', '=', id).where('revoked_at', 'is', null).returning(COLUMNS));
    return row;
  },

  /**
   * Who created each of these keys of the caller's organization (core.api_key_creators, migration 20270211000500: read
   * past api_keys_read, which shows keys to signed-in owners and admins only, for the bookkeepers' four-eyes checks).
   * A key of another organization is not answered; createdBy is null once its creator was deleted.
   */
  async creatorsOf(db: Db, keyIds: string[]): Promise<{ keyId: string; createdBy: string | null }[]> {
    if (!keyIds.length) return [];
    return db.$queryRaw<{ keyId: string; createdBy: string | null }[]>`SELECT key_id AS "keyId", created_by AS "createdBy" FROM core.api_key_creators(${keyIds}::uuid[])`;
  },

  /**
   * Revokes every key `userId` created (in every organization) that nobody has revoked yet, each audited as api_key.revoked
   * with `reason` (core.revoke_api_keys_of_creator, migration 20270210160100; a membership that stops being owner or admin
   * does the same for its organization by trigger). Privileged paths only (service_role); answers how many went.
   */
  async revokeAllOfCreator(db: Db, userId: string, reason: string, meta?: { requestId?: string; ip?: string }): Promise<number> {
    const [row] = await db.$queryRaw<{ n: number }[]>`
      SELECT core.revoke_api_keys_of_creator(${userId}, NULL, ${reason}, ${meta?.requestId ?? null}, ${meta?.ip ?? null}) AS n`;
    return row.n;
  },
};
