import { Injectable } from '@nestjs/common';
import type { TenantTx } from '../../platform/database/database.service.js';
import type { OrgRole } from '../../platform/auth/principal.js';
import { translateDatabaseError } from '../../platform/errors/database-errors.js';
import { decodeCursor, isKeysetPosition, page } from '../../platform/http/pagination.js';
import { emitEvent } from '../../platform/events/events.js';
import { AuditService } from '../audit/audit.service.js';
import { membershipRepository as members } from './membership.repository.js';
import type { MemberDto, MemberPage } from './membership.dto.js';
import { OrganizationsErrors } from './organizations.errors.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';

/** The memberships_keep_owner trigger (23514) as a clear conflict. */
function keepingAnOwner<T>(work: Promise<T>): Promise<T> {
  return translateDatabaseError(work, {
    '23514': ({ message }) => (message?.includes('at least one owner')
      ? OrganizationsErrors.error('membership.last_owner', 'an organization must keep at least one owner: make another member owner first')
      : undefined),
  });
}

const isOwnerLevel = (tx: TenantTx) => tx.role === 'owner' || tx.role === 'service';

@Injectable()
export class MembershipsService {
  constructor(private readonly audit: AuditService) {}

  async list(tx: TenantTx, limit: number, cursor?: string): Promise<MemberPage> {
    const after = decodeCursor<[string, string]>(cursor, isKeysetPosition(/^[^\0]{1,200}$/));
    const rows = await members.list(tx.db, tx.orgId, limit + 1, after);
    const { items, nextCursor } = page(rows, limit, (r) => r.key);
    return { items: items.map((r) => r.member), nextCursor };
  }

  private async get(tx: TenantTx, userId: string, o: { lock?: boolean } = {}): Promise<MemberDto> {
    const member = await members.get(tx.db, tx.orgId, userId, o);
    if (!member) throw OrganizationsErrors.notFound('member', userId);
    return member;
  }

  /** Admins change roles; only an owner may grant or take away 'owner'. */
  async changeRole(tx: TenantTx, userId: string, role: OrgRole): Promise<MemberDto> {
    // locked first: a change committed meanwhile is waited for, so a repeat finds the role set and changes nothing
    const before = await this.get(tx, userId, { lock: true });
    if (before.role === role) return before;
    if ((before.role === 'owner' || role === 'owner') && !isOwnerLevel(tx)) {
      throw OrganizationsErrors.error('membership.owner_only', "only an owner can grant or take away the role 'owner'");
    }
    await keepingAnOwner(members.setRole(tx.db, tx.orgId, userId, role));
    const after = await this.get(tx, userId);
    await this.audit.record(tx, { action: 'membership.role_changed', entityType: 'membership', entityId: userId, before, after });
    await emitEvent(tx, 'member.role_changed', {
      userId, previousRole: before.role, role: after.role, changedBy: tx.principal.kind === 'user' ? tx.principal.userId : null,
    });
    return after;
  }

  /** Admins remove members; only an owner removes an owner. */
  async remove(tx: TenantTx, userId: string): Promise<void> {
    const self = tx.principal.kind === 'user' && tx.principal.userId === userId;
    // an admin's removal locks first, as a role change does (a role changed meanwhile is the one audited); a member
    // leaving cannot (a row lock needs the update policy, an admin's): their deletion's own lock orders it
    const before = await this.get(tx, userId, { lock: !self });
    if (before.role === 'owner' && !self && !isOwnerLevel(tx)) {
      throw OrganizationsErrors.error('membership.owner_only', 'only an owner can remove an owner');
    }
    // audited first: once your own membership is gone the audit policy no longer lets you write in this
    // organization; the row still commits only with the removal (same transaction)
    await this.audit.record(tx, { action: self ? 'membership.left' : 'membership.removed', entityType: 'membership', entityId: userId, before });
    await emitEvent(tx, 'member.removed', { userId, role: before.role, left: self });
    if (!(await keepingAnOwner(members.remove(tx.db, tx.orgId, userId)))) throw OrganizationsErrors.notFound('member', userId);
  }

  /** Any member may leave, except the last owner. */
  async leave(tx: TenantTx): Promise<void> {
    if (tx.principal.kind !== 'user') throw PlatformErrors.error('auth.user_required', 'only a user can leave an organization');
    await this.remove(tx, tx.principal.userId);
  }
}
