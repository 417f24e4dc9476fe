import { Injectable } from '@nestjs/common';
import type { Db } from '../../platform/database/database.service.js';
import type { OrgRole } from '../../platform/auth/principal.js';
import { emitEvent } from '../../platform/events/events.js';
import { Clock } from '../../platform/clock/clock.js';
import { AuditService } from '../audit/audit.service.js';
import { invitationRepository } from '../organizations/invitation.repository.js';
import { membershipRepository } from '../organizations/membership.repository.js';
import { webhookRepository } from '../webhooks/webhook.repository.js';
import { accountClaimRepository } from './account-claim.repository.js';
import { identityRepository } from './identity.repository.js';

/** What a claim took from the account (audited by the caller with its own action). */
export interface ClaimOutcome {
  password: boolean;
  identities: string[];
  emailChanges: number;
  apiKeys: number;
  invitationsRevoked: number;
  /** the organizations shared with others that the account left; `newOwner`: the member who took over as its only owner */
  organizationsLeft: { orgId: string; role: OrgRole; newOwner?: string }[];
  /** the organizations the account still belongs to: its personal one and those nobody else is in */
  organizations: { orgId: string; role: OrgRole }[];
  /** the webhook endpoints of those organizations that were enabled, now disabled */
  webhookEndpointsDisabled: number;
}

/**
 * Someone proves the e-mail of an account nobody had proved it of (a verified sign-in through the token exchange, a
 * password-reset link): nothing shows they are who registered it, and whoever did (perhaps to wait for the address's
 * owner: a pre-account takeover) chose everything the account has so far. So the account starts over as the claimant's:
 * - every way in goes: the linked identities, a pending e-mail change, with `password` the password (the caller ends
 *   the sessions), the API keys it created (identityRepository.removeUnverifiedAccess);
 * - every pending invitation it sent, in any organization (one accepted later would bring its invitee in next to the
 *   claimant), revoked and audited as the API's revoke, with the reason inviter_account_claimed;
 * - it leaves every organization it shares with other people: the pre-registrant chose them (they may be the
 *   pre-registrant's own other accounts), and the claimant must not find themself working among them unknowingly.
 *   Where it was the only owner, the remaining member with the highest role (the earliest of them) becomes owner: the
 *   organization stays theirs rather than being deleted or left without an owner. Each change audited in its organization
 *   and emitted (member.role_changed, member.removed) as the API's.
 * Kept: its personal organization and the organizations nobody else is in: nobody else reaches into them (their keys
 * went above), and an owner who simply never clicked the verification link keeps the work they did alone. Their enabled
 * webhook endpoints are disabled (reason account_claimed, audited): they may send the claimant's work to a server of the
 * pre-registrant's; the claimant may enable them again.
 * In the caller's transaction, after the account's row is locked (userRepository.lockIfNotErased).
 */
@Injectable()
export class AccountClaim {
  constructor(private readonly audit: AuditService, private readonly clock: Clock) {}

  async clear(db: Db, userId: string, opts: { password: boolean; meta?: { requestId?: string; ip?: string } }): Promise<ClaimOutcome> {
    // the erasure's order (after the account's row): its organizations, then its keys and invitations, then its memberships.
    // An acceptance of one of its invitations (which takes the organization's row FOR SHARE before the invitation's) waits
    // for the claim and finds the invitation revoked, or the claim waits for it and counts its new member below
    await accountClaimRepository.lockOrganizations(db, userId);
    const removed = await identityRepository.removeUnverifiedAccess(db, userId, opts);
    const invitations = await invitationRepository.revokePendingSentBy(db, userId);
    for (const after of invitations) {
      await this.audit.recordPrivileged(db, after.orgId, 'system', {
        action: 'invitation.revoked', entityType: 'invitation', entityId: after.id,
        before: { ...after, status: 'pending', revokedAt: null }, after: { ...after, reason: 'inviter_account_claimed' },
      }, opts.meta);
    }

    const memberships = await accountClaimRepository.memberships(db, userId);
    const organizationsLeft: ClaimOutcome['organizationsLeft'] = [];
    for (const m of memberships.filter((x) => x.accountType === 'business' && x.members > 1)) {
      const newOwner = m.role === 'owner' && m.owners === 1 ? await this.handOver(db, m.orgId, userId, opts.meta) : undefined;
      const before = await membershipRepository.get(db, m.orgId, userId);
      await this.audit.recordPrivileged(db, m.orgId, 'system', {
        action: 'membership.removed', entityType: 'membership', entityId: userId, before, after: { reason: 'account_claimed' },
      }, opts.meta);
      await emitEvent({ db, orgId: m.orgId }, 'member.removed', { userId, role: m.role, left: false });
      await membershipRepository.remove(db, m.orgId, userId);
      organizationsLeft.push({ orgId: m.orgId, role: m.role, ...(newOwner ? { newOwner } : {}) });
    }
    const left = new Set(organizationsLeft.map((o) => o.orgId));
    const organizations = memberships.filter((m) => !left.has(m.orgId)).map((m) => ({ orgId: m.orgId, role: m.role }));
    const endpoints = await webhookRepository.disableEndpointsOfClaimedAccount(db, organizations.map((o) => o.orgId), new Date(this.clock.now()));
    for (const e of endpoints) {
      await this.audit.recordPrivileged(db, e.org_id, 'system', {
        action: 'webhooks.endpoint_disabled', entityType: 'webhook_endpoint', entityId: e.id,
        before: { enabled: true }, after: { enabled: false, reason: 'account_claimed' },
      }, opts.meta);
    }
    return {
      password: removed.password, identities: removed.identities, emailChanges: removed.emailChanges, apiKeys: removed.apiKeys,
      invitationsRevoked: invitations.length, organizationsLeft, organizations, webhookEndpointsDisabled: endpoints.length,
    };
  }

  /** The organization's senior remaining member becomes its owner (audited as a role change); their user id. */
  private async handOver(db: Db, orgId: string, userId: string, meta?: { requestId?: string; ip?: string }): Promise<string> {
    const successor = (await accountClaimRepository.successor(db, orgId, userId))!;
    const before = await membershipRepository.get(db, orgId, successor.userId);
    await membershipRepository.setRole(db, orgId, successor.userId, 'owner');
    const after = await membershipRepository.get(db, orgId, successor.userId);
    await this.audit.recordPrivileged(db, orgId, 'system', {
      action: 'membership.role_changed', entityType: 'membership', entityId: successor.userId,
      before, after: { ...after, reason: 'only_owner_account_claimed' },
    }, meta);
    await emitEvent({ db, orgId }, 'member.role_changed', { userId: successor.userId, previousRole: successor.role, role: 'owner', changedBy: null });
    return successor.userId;
  }
}
