import type { Db } from '../../platform/database/database.service.js';
import type { OrgRole } from '../../platform/auth/principal.js';

/** A live organization a claimed account belongs to, with its member count. */
export interface ClaimedMembership {
  orgId: string;
  name: string;
  role: OrgRole;
  accountType: 'personal' | 'business';
  members: number;
}

/** The statements of an account's claim (account-claim.service.ts), on the privileged path auth.credentials. */
export const accountClaimRepository = {

  /** Every live organization the account belongs to, in id order. */
  async memberships(db: Db, userId: string): Promise<ClaimedMembership[]> {
    const rows = await db.$queryRaw<{ org_id: string; name: string; role: OrgRole; account_type: 'personal' | 'business'; members: number }[]>`
      SELECT m.org_id, o.name, m.role, o.account_type,
             (SELECT count(*)::int FROM core.memberships x WHERE x.org_id = m.org_id) AS members
      FROM core.memberships m JOIN core.organizations o ON o.id = m.org_id AND o.deleted_at IS NULL
      WHERE m.user_id = ${userId}
      ORDER BY m.org_id`;
    return rows.map((r) => ({ orgId: r.org_id, name: r.name, role: r.role, accountType: r.account_type, members: r.members }));
  },

  /**
   * Deletes the AI provider keys of `orgIds`, locked in org order first; answers those deleted (the module has no
   * disabled state: a key is set or removed). Every key goes, not only those with a base URL of their own: a key without
   * one is an account at the default provider, whose logs and usage show its owner every prompt the agents send.
   */
  async deleteProviderKeysOf(db: Db, orgIds: string[]): Promise<{ org_id: string; base_url: string | null; key_hint: string }[]> {
    if (!orgIds.length) return [];
    return db.$queryRaw`
      WITH locked AS (
        SELECT k.org_id FROM ai.provider_keys k
        WHERE k.org_id = ANY(${orgIds}::uuid[]) ORDER BY k.org_id FOR UPDATE OF k)
      DELETE FROM ai.provider_keys k USING locked WHERE k.org_id = locked.org_id
      RETURNING k.org_id, k.base_url, k.key_hint`;
  },

  /** Stops the active agent triggers of `orgIds` that `userId` set up (they run with its claims), locked in (org, id) order. */
  async stopTriggersOf(db: Db, orgIds: string[], userId: string): Promise<{ org_id: string; id: string; agent_id: string }[]> {
    if (!orgIds.length) return [];
    return db.$queryRaw`
      WITH locked AS (
        SELECT t.org_id, t.id FROM ai.agent_triggers t
        WHERE t.org_id = ANY(${orgIds}::uuid[]) AND t.created_by::text = ${userId} AND t.status = 'active'
        ORDER BY t.org_id, t.id FOR NO KEY UPDATE OF t)
      UPDATE ai.agent_triggers t SET status = 'stopped', last_error = 'account_claimed'
      FROM locked WHERE t.org_id = locked.org_id AND t.id = locked.id
      RETURNING t.org_id, t.id, t.agent_id`;
  },

  /** Disables the account's active integrations (their credentials and servers were set by whoever registered it), in id order. */
  async disableIntegrationsOf(db: Db, userId: string): Promise<{ id: string; integration_type: string }[]> {
    return db.$queryRaw`
      WITH locked AS (
        SELECT i.id FROM public.integrations i WHERE i.user_id::text = ${userId} AND i.status = 'active' ORDER BY i.id FOR NO KEY UPDATE OF i)
      UPDATE public.integrations i SET status = 'disabled'
      FROM locked WHERE i.id = locked.id
      RETURNING i.id, i.integration_type`;
  },

  /** Takes the account's provider page off the public pages (is_public = false); answers it when it was public. */
  async unpublishProviderOf(db: Db, userId: string): Promise<{ id: string; public_slug: string | null }[]> {
    return db.$queryRaw`
      UPDATE public.providers p SET is_public = false
      WHERE p.owner_user_id::text = ${userId} AND p.is_public
      RETURNING p.id, p.public_slug`;
  },
};
