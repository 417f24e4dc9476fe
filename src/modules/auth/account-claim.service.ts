import { Injectable } from '@nestjs/common';
import type { Db } from '../../platform/database/database.service.js';
import type { OrgRole } from '../../platform/auth/principal.js';
import { Clock } from '../../platform/clock/clock.js';
import { AuditService } from '../audit/audit.service.js';
import { queueEmail } from '../notifications/email-delivery.service.js';
import { invitationRepository } from '../organizations/invitation.repository.js';
import { organizationRepository } from '../organizations/organization.repository.js';
import { webhookRepository } from '../webhooks/webhook.repository.js';
import { accountClaimRepository } from './account-claim.repository.js';
import { identityRepository } from './identity.repository.js';
import { userRepository } from './user.repository.js';

/** What a claim took from the account (audited by the caller with its own action: claimAuditFields). */
export interface ClaimOutcome {
  password: boolean;
  identities: string[];
  emailChanges: number;
  apiKeys: number;
  invitationsRevoked: number;
  /** every organization the account belongs to (it stays in each: the notice mail lists them) */
  organizations: { orgId: string; role: OrgRole }[];
  /** in the organizations only the account is in (its personal one, its solo ones): what sent data out, now closed */
  webhookEndpointsDisabled: number;
  providerKeysRemoved: number;
  triggersStopped: number;
  /** the account's own */
  integrationsDisabled: number;
  providerPageUnpublished: boolean;
}

/** The claim's part of the caller's audit row (auth.unverified_account_claimed, auth.password_reset). */
export function claimAuditFields(c: ClaimOutcome): Record<string, unknown> {
  return {
    identitiesRemoved: c.identities, emailChangesCanceled: c.emailChanges, apiKeysRevoked: c.apiKeys, invitationsRevoked: c.invitationsRevoked,
    organizations: c.organizations, webhookEndpointsDisabled: c.webhookEndpointsDisabled, providerKeysRemoved: c.providerKeysRemoved,
    triggersStopped: c.triggersStopped, integrationsDisabled: c.integrationsDisabled, providerPageUnpublished: c.providerPageUnpublished,
  };
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/**
 * Someone proves the e-mail of an account nobody had proved it of (a verified sign-in through the token exchange, a
 * password-reset link). Nothing tells a pre-registrant (who registered another person's address and waits for its
 * owner: a pre-account takeover) from a genuine owner who never clicked the verification link (every account older than
 * the verification, and anyone who never verified: organizations, invitations and keys need no verification). So the
 * claim closes every way in and out that only the account's own can use, keeps what the account shares with others,
 * and tells the address's owner what it found:
 * - every way in goes: the linked identities, a pending e-mail change, with `password` the password (the caller ends
 *   the sessions), the API keys it created (identityRepository.removeUnverifiedAccess);
 * - every pending invitation it sent, in any organization (one accepted later would bring its invitee in), revoked and
 *   audited as the API's revoke, with the reason inviter_account_claimed;
 * - the enabled webhook endpoints whose URL or signing secret the account set (url_set_by, secret_set_by: the URL is the
 *   pre-registrant's choice, or they know the secret), in any organization, disabled, as its API keys are revoked
 *   everywhere; no endpoint names the account as their URL's or secret's person any more (a service could have enabled
 *   one again; a person enabling it takes it on), and the previous secret it holds stops signing at once
 *   (webhooks.previous_secret_cleared); and in the organizations only the account is in (its personal one and its solo ones: only
 *   the claimant reaches them now), what sends their data out is closed, each audited there with the reason
 *   account_claimed: the enabled webhook endpoints disabled, the AI provider key removed (every agent call goes with it: to a server of the pre-registrant's
 *   when it has a base URL of its own, else to the pre-registrant's account at the default provider, whose logs and
 *   usage show the prompts), the agent triggers the account set up stopped;
 * - the account's own integrations (CalDAV credentials and server) disabled and its provider page taken off the public
 *   pages, audited in its personal organization;
 * - its memberships stay (a genuine owner keeps their company's organizations); the security notice mailed to the
 *   address (account_claimed) lists them with the role and says to leave any it does not recognise, and lists what was
 *   cleared.
 * In the caller's transaction, after the account's row is locked (userRepository.lockIfNotErased); then its
 * organizations in id order, and the rows in them in (organization, id) order.
 */
@Injectable()
export class AccountClaim {
  constructor(private readonly audit: AuditService, private readonly clock: Clock) {}

  async clear(db: Db, userId: string, opts: { password: boolean; via: string; meta?: { requestId?: string; ip?: string } }): Promise<ClaimOutcome> {
    // the erasure's order (after the account's row): its organizations, then its keys and invitations. An acceptance of
    // one of its invitations (which takes the organization's row FOR SHARE before the invitation's) waits for the claim
    // and finds the invitation revoked, or the claim waits for it and counts its new member below
    await organizationRepository.lockLiveOfMember(db, userId);
    const removed = await identityRepository.removeUnverifiedAccess(db, userId, opts);
    const invitations = await this.revokeSentInvitations(db, userId, 'inviter_account_claimed', opts.meta);

    const memberships = await accountClaimRepository.memberships(db, userId);
    const own = memberships.filter((m) => m.accountType === 'personal' || m.members === 1).map((m) => m.orgId);
    const names = new Map(memberships.map((m) => [m.orgId, m.name]));
    const reason = 'account_claimed';
    const changed = await webhookRepository.disableEndpointsOfClaimedAccount(db, own, userId, new Date(this.clock.now()));
    for (const e of changed) {
      const people = { urlSetBy: e.url_set_by, secretSetBy: e.secret_set_by };
      const unnamed = { urlSetBy: e.url_set_by === userId ? null : e.url_set_by, secretSetBy: e.secret_set_by === userId ? null : e.secret_set_by };
      // the disabling's row names who answered (as every path's); an endpoint already disabled records the account unnamed
      if (e.disabled) {
        await this.audit.recordPrivileged(db, e.org_id, 'system', {
          action: 'webhooks.endpoint_disabled', entityType: 'webhook_endpoint', entityId: e.id,
          before: { enabled: true }, after: { enabled: false, reason, ...people },
        }, opts.meta);
      } else if (e.url_set_by === userId || e.secret_set_by === userId) {
        await this.audit.recordPrivileged(db, e.org_id, 'system', {
          action: 'webhooks.endpoint_updated', entityType: 'webhook_endpoint', entityId: e.id, before: people, after: { ...unnamed, reason },
        }, opts.meta);
      }
      if (e.previous_secret_cleared) {
        await this.audit.recordPrivileged(db, e.org_id, 'system', {
          action: 'webhooks.previous_secret_cleared', entityType: 'webhook_endpoint', entityId: e.id,
          before: { previousSecretExpiresAt: e.previous_secret_expires_at, previousSecretSetBy: e.previous_secret_set_by },
          after: { previousSecretExpiresAt: null, reason },
        }, opts.meta);
      }
    }
    const endpoints = changed.filter((e) => e.disabled);
    const providerKeys = await accountClaimRepository.deleteProviderKeysOf(db, own);
    for (const k of providerKeys) {
      await this.audit.recordPrivileged(db, k.org_id, 'system', {
        action: 'ai.provider_key_removed', entityType: 'ai_provider_key', entityId: k.org_id,
        before: { keyHint: k.key_hint, baseUrl: k.base_url }, after: { reason },
      }, opts.meta);
    }
    const triggers = await accountClaimRepository.stopTriggersOf(db, own, userId);
    for (const t of triggers) {
      await this.audit.recordPrivileged(db, t.org_id, 'system', {
        action: 'ai.trigger_stopped', entityType: 'ai_trigger', entityId: t.id,
        before: { status: 'active' }, after: { status: 'stopped', lastError: reason, reason },
      }, opts.meta);
    }
    const personalOrgId = await userRepository.personalOrgId(db, userId);
    const integrations = await accountClaimRepository.disableIntegrationsOf(db, userId);
    const pages = await accountClaimRepository.unpublishProviderOf(db, userId);
    if (personalOrgId) {
      for (const i of integrations) {
        await this.audit.recordPrivileged(db, personalOrgId, 'system', {
          action: 'integration.updated', entityType: 'integration', entityId: i.id,
          before: { status: 'active' }, after: { status: 'disabled', reason },
        }, opts.meta);
      }
      for (const p of pages) {
        await this.audit.recordPrivileged(db, personalOrgId, 'system', {
          action: 'provider.updated', entityType: 'provider', entityId: p.id,
          before: { isPublic: true, publicSlug: p.public_slug }, after: { isPublic: false, reason },
        }, opts.meta);
      }
    }

    const outcome: ClaimOutcome = {
      password: removed.password, identities: removed.identities, emailChanges: removed.emailChanges, apiKeys: removed.apiKeys,
      invitationsRevoked: invitations, organizations: memberships.map((m) => ({ orgId: m.orgId, role: m.role })),
      webhookEndpointsDisabled: endpoints.length, providerKeysRemoved: providerKeys.length, triggersStopped: triggers.length,
      integrationsDisabled: integrations.length, providerPageUnpublished: pages.length > 0,
    };
    const user = await userRepository.findById(db, userId);
    if (user && personalOrgId) {
      const cleared = [
        ...(removed.identities.length ? [`Sign-in methods removed: ${removed.identities.join(', ')}`] : []),
        ...(removed.password ? ['The password set before was removed'] : []),
        ...(removed.emailChanges ? ['A pending change of the account\'s e-mail address was canceled'] : []),
        ...(removed.apiKeys ? [`${plural(removed.apiKeys, 'API key', 'API keys')} revoked`] : []),
        ...(invitations ? [`${plural(invitations, 'pending invitation', 'pending invitations')} sent from the account revoked`] : []),
        ...(endpoints.length ? [`${plural(endpoints.length, 'webhook endpoint', 'webhook endpoints')} disabled`] : []),
        // the host only: the URL is the pre-registrant's text (the audit row keeps it whole), and mail clients link URLs
        ...providerKeys.map((k) => `The AI provider key of ${names.get(k.org_id) ?? k.org_id}, which sent the agents' calls to ${
          k.base_url ? `a server of its own (${hostOf(k.base_url)})` : 'the provider account it belongs to'}, removed`),
        ...(triggers.length ? [`${plural(triggers.length, 'AI agent trigger', 'AI agent triggers')} stopped`] : []),
        ...integrations.map((i) => `The ${i.integration_type} integration disabled (its credentials and server were kept, not used)`),
        ...(pages.length ? ['Your public provider page was taken offline'] : []),
      ];
      await queueEmail({ db, orgId: personalOrgId }, {
        userId, to: user.email, template: 'account_claimed', category: 'security',
        data: {
          via: opts.via, claimedAt: new Date(this.clock.now()).toISOString(), cleared,
          organizations: memberships.map((m) => ({ name: m.name, role: m.role, personal: m.accountType === 'personal' })),
        },
      });
    }
    return outcome;
  }

  /**
   * Revokes every pending invitation `userId` sent, in any organization, each audited there as the API's revoke with
   * `reason`. The caller has locked the account's row, then its live organizations (organizationRepository.lockLiveOfMember),
   * as the erasure does: an acceptance under way is waited for, or waits and finds the invitation revoked.
   */
  async revokeSentInvitations(db: Db, userId: string, reason: string, meta?: { requestId?: string; ip?: string }): Promise<number> {
    const invitations = await invitationRepository.revokePendingSentBy(db, userId);
    for (const after of invitations) {
      await this.audit.recordPrivileged(db, after.orgId, 'system', {
        action: 'invitation.revoked', entityType: 'invitation', entityId: after.id,
        before: { ...after, status: 'pending', revokedAt: null }, after: { ...after, reason },
      }, meta);
    }
    return invitations.length;
  }
}

/** The host of a stored base URL ('another server' when it does not parse). */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'another server';
  }
}
