import { sql, type ExpressionBuilder } from 'kysely';
import { claimOrganization, type Db } from '../../platform/database/database.service.js';
import type { Principal } from '../../platform/auth/principal.js';
import { exactInstant, qb, type DB } from '../../platform/database/query-builder.js';
import type { InvitationDto, InvitationStatus } from './invitation.dto.js';

type Invitations = ExpressionBuilder<DB, 'core.invitations'>;

// Status is derived, so the list filter and the DTO agree on one definition.
const status = (eb: Invitations) => eb.case()
  .when('accepted_at', 'is not', null).then(sql.lit('accepted'))
  .when('revoked_at', 'is not', null).then(sql.lit('revoked'))
  .when('expires_at', '<=', sql<Date>`now()`).then(sql.lit('expired'))
  .else(sql.lit('pending'))
  .end()
  .$castTo<InvitationStatus>();

const COLUMNS = [
  'id', 'org_id as orgId', 'email', 'role', 'invited_by as invitedBy', 'expires_at as expiresAt', 'accepted_at as acceptedAt',
  'accepted_by as acceptedBy', 'revoked_at as revokedAt', 'created_at as createdAt',
] as const;

const statusColumn = (eb: Invitations) => status(eb).as('status');

/** How many invitations were created within the last hour, and in how many seconds the oldest of them leaves it (0 without any). */
export interface RecentCount { count: number; retryAfterSeconds: number }

/** core.invitations (admins only, by policy) and core.accept_invitation (the invitee, not yet a member). */
export const invitationRepository = {
  async create(db: Db, i: { orgId: string; email: string; role: string; tokenHash: string; invitedBy: string | null; ttlDays: number }): Promise<InvitationDto> {
    const [row] = await db.run(qb.insertInto('core.invitations')
      .values({
        org_id: i.orgId, email: i.email, role: i.role, token_hash: i.tokenHash, invited_by: i.invitedBy,
        expires_at: sql<Date>`now() + make_interval(days => ${i.ttlDays}::int)`,
      })
      .returning([...COLUMNS, statusColumn]));
    return row;
  },

  /**
   * The invitations created within the last hour to `email`'s mailbox (core.invitation_mailbox: lower-cased, without a "+tag", Gmail's dots and googlemail.com folded): by any
   * organization, and by the request's organization; and by the request's organization to any address; each with the
   * seconds until the oldest leaves the hour. core.invitations_within_hour (SECURITY DEFINER: the first count reads
   * across organizations) takes the organization's and the mailbox's locks first, held until the transaction ends:
   * concurrent creations count one after the other.
   */
  async recentlyCreated(db: Db, email: string): Promise<{ toMailbox: RecentCount; toMailboxFromOrganization: RecentCount; byOrganization: RecentCount }> {
    const [row] = await db.$queryRaw<{
      to_mailbox: number; to_mailbox_retry_after: number; to_mailbox_from_org: number; to_mailbox_from_org_retry_after: number;
      by_org: number; by_org_retry_after: number;
    }[]>`
      SELECT to_mailbox, to_mailbox_retry_after, to_mailbox_from_org, to_mailbox_from_org_retry_after, by_org, by_org_retry_after
      FROM core.invitations_within_hour(${email})`;
    return {
      toMailbox: { count: row.to_mailbox, retryAfterSeconds: row.to_mailbox_retry_after },
      toMailboxFromOrganization: { count: row.to_mailbox_from_org, retryAfterSeconds: row.to_mailbox_from_org_retry_after },
      byOrganization: { count: row.by_org, retryAfterSeconds: row.by_org_retry_after },
    };
  },

  /** An expired, never-answered invitation still holds the "one pending per email" index; a new one replaces it. Returns the ids deleted. */
  async deleteExpiredFor(db: Db, orgId: string, email: string): Promise<string[]> {
    const rows = await db.run(qb.deleteFrom('core.invitations')
      .where('org_id', '=', orgId).where(sql`lower(email)`, '=', sql`lower(${email})`)
      .where('accepted_at', 'is', null).where('revoked_at', 'is', null).where('expires_at', '<=', sql<Date>`now()`)
      .returning('id'));
    return rows.map((r) => r.id);
  },

  /** `lock`: the row stays locked until commit, as the revoke that follows locks it (a revoke or acceptance committed meanwhile is waited for and seen). */
  async get(db: Db, orgId: string, id: string, o: { lock?: boolean } = {}): Promise<InvitationDto | undefined> {
    const q = qb.selectFrom('core.invitations').select([...COLUMNS, statusColumn]).where('org_id', '=', orgId).where('id', '=', id);
    const [row] = await db.run(o.lock ? q.forNoKeyUpdate() : q);
    return row;
  },

  /** Newest first, keyset on (created_at, id); `key` is each row's position at full (microsecond) precision. */
  async list(db: Db, orgId: string, limit: number, filter?: InvitationStatus, after?: [string, string]): Promise<{ invitation: InvitationDto; key: [string, string] }[]> {
    let query = qb.selectFrom('core.invitations')
      .select([...COLUMNS, statusColumn, exactInstant('created_at').as('position')])
      .where('org_id', '=', orgId)
      .orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit);
    if (filter) query = query.where((eb) => eb(status(eb), '=', filter));
    if (after) query = query.where(sql`(created_at, id)`, '<', sql`(${after[0]}::timestamptz, ${after[1]}::uuid)`);
    const rows = await db.run(query);
    return rows.map(({ position, ...invitation }) => ({ invitation, key: [position, invitation.id] }));
  },

  /**
   * Revokes a pending invitation: not accepted, revoked nor expired (by the database's clock, as `status` and
   * core.accept_invitation tell expiry: within one transaction now() is its start, so this agrees with a `get` before it).
   */
  async revoke(db: Db, orgId: string, id: string): Promise<InvitationDto | undefined> {
    const [row] = await db.run(qb.updateTable('core.invitations').set({ revoked_at: sql<Date>`now()` })
      .where('org_id', '=', orgId).where('id', '=', id).where('accepted_at', 'is', null).where('revoked_at', 'is', null)
      .where('expires_at', '>', sql<Date>`now()`)
      .returning([...COLUMNS, statusColumn]));
    return row;
  },

  /**
   * Revokes every pending invitation of an organization being deleted (OrganizationsService.delete): none of them can be
   * mailed or accepted any more. In the deletion's transaction, after it locked the organization (an acceptance takes
   * the organization's row FOR SHARE before the invitation's: it waits, then finds the invitation revoked). The revoked
   * invitations, oldest first.
   */
  async revokePendingOf(db: Db, orgId: string): Promise<InvitationDto[]> {
    const rows = await db.run(qb.updateTable('core.invitations').set({ revoked_at: sql<Date>`now()` })
      .where('org_id', '=', orgId).where('accepted_at', 'is', null).where('revoked_at', 'is', null).where('expires_at', '>', sql<Date>`now()`)
      .returning([...COLUMNS, statusColumn]));
    return rows.sort((a, b) => new Date(a.createdAt).getTime() - new Date(b.createdAt).getTime() || (a.id < b.id ? -1 : 1));
  },

  /**
   * Revokes every pending invitation `userId` sent, in every organization (an account claimed by the owner of its
   * address: auth/account-claim.service.ts). Privileged path only; the revoked invitations, oldest first.
   */
  async revokePendingSentBy(db: Db, userId: string): Promise<InvitationDto[]> {
    const rows = await db.run(qb.updateTable('core.invitations').set({ revoked_at: sql<Date>`now()` })
      .where('invited_by', '=', userId).where('accepted_at', 'is', null).where('revoked_at', 'is', null).where('expires_at', '>', sql<Date>`now()`)
      .returning([...COLUMNS, statusColumn]));
    return rows.sort((a, b) => (a.orgId === b.orgId ? new Date(a.createdAt).getTime() - new Date(b.createdAt).getTime() : a.orgId < b.orgId ? -1 : 1));
  },

  /**
   * The database checks the hash, single use, expiry and the caller's email (SECURITY DEFINER) and adds the membership,
   * under the organization's counted-limit lock of `app` (held until the transaction ends: the caller checks the members
   * against the users limit of `app`'s plan after this, under it).
   */
  async accept(db: Db, orgId: string, tokenHash: string, app: string): Promise<{ orgId: string; userId: string; role: string }> {
    const [row] = await db.$queryRaw<{ org_id: string; user_id: string; role: string }[]>`
      SELECT org_id, user_id, role FROM core.accept_invitation(${orgId}::uuid, ${tokenHash}, ${app})`;
    return { orgId: row.org_id, userId: row.user_id, role: row.role };
  },

  /**
   * The address of the account that has just accepted (accept), as core.accept_invitation checked it: it keeps the
   * account's row locked until the transaction ends, so no e-mail change commits in between (the access token's address
   * may be older). A statement of its own: a join with the function's call could read the row from before its lock.
   */
  async acceptedEmail(db: Db, userId: string): Promise<string> {
    const [row] = await db.run(qb.selectFrom('core.User').select('email').where('id', '=', userId));
    return row.email;
  },

  /**
   * The members of `orgId`, the new one among them: read inside readAsNewMember (a member sees its organization's
   * memberships), after accept, under the lock it took, so no other acceptance adds one until the transaction ends.
   */
  async memberCount(db: Db, orgId: string): Promise<number> {
    const [row] = await db.run(qb.selectFrom('core.memberships').select((eb) => eb.fn.countAll<string>().as('n')).where('org_id', '=', orgId));
    return Number(row.n);
  },

  /**
   * Runs `read` inside the organization the caller has just joined in this transaction (accept), whose rows (its
   * subscription among them) the request's own organization does not show: the claims name it, and the database
   * decides the membership again (claimOrganization, as DatabaseService.tenantResolving does). Reads only: such claims
   * are not the ones begin_request verified, which the API's writes need; the request's claims are put back after,
   * whether `read` answers or throws.
   */
  async readAsNewMember<T>(db: Db, principal: Principal, orgId: string, read: () => Promise<T>): Promise<T> {
    const [{ claims }] = await db.$queryRaw<{ claims: string }[]>`SELECT current_setting('request.jwt.claims') AS claims`;
    const restore = () => db.$executeRaw`SELECT set_config('request.jwt.claims', ${claims}, true)`;
    let result: T;
    try {
      await claimOrganization(db, principal, orgId);
      result = await read();
    } catch (err) {
      // put back even on a refusal (a caller may catch it and go on); a failed statement leaves the transaction
      // aborted, where the restore fails too: the original error is the one to report
      await restore().catch(() => undefined);
      throw err;
    }
    await restore();
    return result;
  },

  /**
   * Privileged (jobs.purge): deletes invitations that expired unanswered more than `retentionDays`
   * ago, and reports how many per organization for the audit trail (a set-based statement: raw, typed).
   */
  async purgeExpired(db: Db, retentionDays: number): Promise<{ orgId: string; count: number }[]> {
    const rows = await db.$queryRaw<{ org_id: string; count: bigint }[]>`
      WITH gone AS (
        DELETE FROM core.invitations
        WHERE accepted_at IS NULL AND expires_at < now() - make_interval(days => ${retentionDays}::int)
        RETURNING org_id)
      SELECT org_id, count(*) AS count FROM gone GROUP BY org_id ORDER BY org_id`;
    return rows.map((r) => ({ orgId: r.org_id, count: Number(r.count) }));
  },
};
