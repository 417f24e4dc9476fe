import { Injectable } from '@nestjs/common';
import type { Db, TenantTx } from '../../platform/database/database.service.js';
import { AuditService } from '../audit/audit.service.js';
import { organizationRepository as orgs } from './organization.repository.js';
import { invitationRepository as invitations } from './invitation.repository.js';
import type { CreateOrganizationDto, OrganizationDto, UpdateOrganizationDto } from './organization.dto.js';
import { OrganizationsErrors } from './organizations.errors.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { emitEvent } from '../../platform/events/events.js';
import { RunsService } from '../agents/runs.service.js';

@Injectable()
export class OrganizationsService {
  constructor(private readonly audit: AuditService, private readonly runs: RunsService) {}

  /** Creates a business organization; the creator becomes its owner. */
  async create(tx: TenantTx, dto: CreateOrganizationDto): Promise<OrganizationDto> {
    const org = await orgs.create(tx.db, dto.name);
    await this.audit.record(tx, { orgId: org.id, action: 'organization.created', entityType: 'organization', entityId: org.id, after: org });
    return org;
  }

  /**
   * The personal organization of a user being created (the auth module's registration and first
   * exchange), in the caller's privileged transaction. The caller audits the registration.
   */
  createPersonal(db: Db, ownerUserId: string, name: string): Promise<string> {
    return orgs.createPersonal(db, ownerUserId, name);
  }

  listMine(tx: TenantTx): Promise<OrganizationDto[]> {
    if (tx.principal.kind !== 'user') throw PlatformErrors.error('auth.user_required', 'only a user has organizations');
    return orgs.listForUser(tx.db, tx.principal.userId);
  }

  async get(tx: TenantTx, o: { lock?: boolean } = {}): Promise<OrganizationDto> {
    const org = await orgs.get(tx.db, tx.orgId, o);
    if (!org) throw PlatformErrors.notFound('organization', tx.orgId);
    return org;
  }

  async update(tx: TenantTx, dto: UpdateOrganizationDto): Promise<OrganizationDto> {
    const before = await this.get(tx, { lock: true });
    const after = await orgs.update(tx.db, tx.orgId, dto);
    if (!after) throw PlatformErrors.notFound('organization', tx.orgId);
    await this.audit.record(tx, { action: 'organization.updated', entityType: 'organization', entityId: tx.orgId, before, after });
    return after;
  }

  async delete(tx: TenantTx): Promise<void> {
    // the organization before its runs, in the order of an erasure of one of its members
    if (!(await orgs.lockForDeletion(tx.db, tx.orgId))) throw PlatformErrors.notFound('organization', tx.orgId);
    const before = await this.get(tx);
    if (before.accountType === 'personal') {
      throw OrganizationsErrors.error('organization.personal', 'a personal organization cannot be deleted');
    }
    await this.audit.record(tx, { action: 'organization.deleted', entityType: 'organization', entityId: tx.orgId, before });
    // its AI runs stop with it (no transaction of theirs opens in a deleted organization, nor does the lost-runs sweep's):
    // cancelled, audited, their reservations released, with no event of theirs
    await this.runs.cancelRunsOfDeletedOrganization(tx);
    // its pending invitations are revoked, audited as the API's revoke with the reason: none is mailed or accepted afterwards
    // (the invitation e-mail's job and link also skip an organization deleted since, as by a member's erasure)
    for (const after of await invitations.revokePendingOf(tx.db, tx.orgId)) {
      await this.audit.record(tx, {
        action: 'invitation.revoked', entityType: 'invitation', entityId: after.id,
        before: { ...after, status: 'pending', revokedAt: null }, after: { ...after, reason: 'organization_deleted' },
      });
    }
    // before the row goes: the outbox's policy admits rows of an organization the caller can still act in.
    // The billing module cancels the organization's subscriptions on this event (in Stripe too).
    await emitEvent(tx, 'organization.deleted', { organizationId: tx.orgId, accountType: before.accountType, reason: 'deleted' });
    if (!(await orgs.delete(tx.db, tx.orgId))) throw PlatformErrors.notFound('organization', tx.orgId);
  }
}
