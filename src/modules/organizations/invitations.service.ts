import { createHash, randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { TenantTx } from '../../platform/database/database.service.js';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { translateDatabaseError } from '../../platform/errors/database-errors.js';
import { decodeCursor, isKeysetPosition, page } from '../../platform/http/pagination.js';
import { UUID } from '../../platform/http/uuid.js';
import { enqueue } from '../../platform/queue/jobs.js';
import { emitEvent } from '../../platform/events/events.js';
import { AuditService } from '../audit/audit.service.js';
import { invitationRepository as invitations, type RecentCount } from './invitation.repository.js';
import { membershipRepository as members } from './membership.repository.js';
import { organizationRepository as orgs } from './organization.repository.js';
import type {
  AcceptedInvitationDto, AcceptInvitationDto, CreatedInvitationDto, CreateInvitationDto, InvitationPage, InvitationStatus,
} from './invitation.dto.js';
import { OrganizationsErrors } from './organizations.errors.js';
import { EntitlementsService, type LimitExceeded } from '../billing/entitlements.service.js';
import { AppError } from '../../platform/errors/app-error.js';
import type { RequestRole } from '../../platform/auth/principal.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';

export const INVITATION_CREATED = 'invitation.created';

/**
 * The app whose users limit counts an organization's members and pending invitations: creating an invitation consumes
 * it (@ConsumesLimit), accepting one checks the members against it, and its subscription must allow writes for either.
 */
export const SEATS_APP = 'omnizen';

/** An acceptance refused by the users limit: the invitee cannot lift it, an admin can. */
const seatsReached = (l: LimitExceeded) => `the ${l.plan} plan allows ${l.allows} and this organization already has ${l.usage} members; `
  + `${l.upgradeTo ? `an admin must upgrade to ${l.upgradeTo}` : 'no plan allows more, so an admin must remove a member'} `
  + 'before this invitation can be accepted (it stays pending until then)';

/**
 * Invitations (each mails its invitee, with a subject naming the organization) per hour. From one organization: to one
 * mailbox, and to any; past either 429 invitation.mail_limited. To one mailbox, whichever organizations send them: past
 * it the invitation is made but not mailed (refusing it let any organization keep every other from inviting an address:
 * review r11); its admin shares the link (the response's token). Revoked ones count too: their mail went out, and
 * invite, revoke, invite again must not mail an address without end.
 */
export const INVITATIONS_PER_MAILBOX_PER_HOUR = 3;
export const INVITATIONS_PER_ORGANIZATION_PER_HOUR = 50;

/** Why an invitation past the mailbox's hourly cap was not mailed: its e-mail's not_sent reason (core.email_deliveries). */
export const MAIL_WITHHELD = `not sent: ${INVITATIONS_PER_MAILBOX_PER_HOUR} invitations to this address were made within the hour, `
  + 'whichever organizations sent them; the inviting admin shares the invitation\'s link';

/** Only the SHA-256 of a token is stored; the token itself is shown once, to the inviting admin. */
export const hashInvitationToken = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex');

/** The invitation e-mail is sent by the notifications module's handler of INVITATION_CREATED. */
@Injectable()
export class InvitationsService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly audit: AuditService,
    private readonly entitlements: EntitlementsService,
  ) {}

  async create(tx: TenantTx, dto: CreateInvitationDto): Promise<CreatedInvitationDto> {
    const org = await orgs.get(tx.db, tx.orgId);
    if (!org) throw PlatformErrors.notFound('organization', tx.orgId);
    if (org.accountType === 'personal') {
      throw OrganizationsErrors.error('invitation.personal_organization', 'a personal organization cannot have other members; create a business organization');
    }
    if (await members.findByEmail(tx.db, tx.orgId, dto.email)) {
      throw OrganizationsErrors.error('invitation.already_member', `${dto.email} is already a member of this organization`);
    }
    // counted under the organization's and the address's locks, held until this transaction ends (the invitation is in);
    // refused on this organization's own counts only, never on another's
    const recent = await invitations.recentlyCreated(tx.db, dto.email);
    refuseOverLimit(recent.toMailboxFromOrganization, INVITATIONS_PER_MAILBOX_PER_HOUR, 'invitations to this address from this organization', 'address');
    refuseOverLimit(recent.byOrganization, INVITATIONS_PER_ORGANIZATION_PER_HOUR, 'invitations from this organization', 'organization');
    const mailWithheld = recent.toMailbox.count >= INVITATIONS_PER_MAILBOX_PER_HOUR;
    for (const id of await invitations.deleteExpiredFor(tx.db, tx.orgId, dto.email)) {
      await this.audit.record(tx, { action: 'invitation.expired_replaced', entityType: 'invitation', entityId: id });
    }
    const token = randomBytes(32).toString('base64url');
    const invitation = await translateDatabaseError(invitations.create(tx.db, {
      orgId: tx.orgId, email: dto.email, role: dto.role, tokenHash: hashInvitationToken(token),
      invitedBy: tx.principal.kind === 'user' ? tx.principal.userId : null, ttlDays: this.config.invitationTtlDays,
    }), { '23505': () => OrganizationsErrors.error('invitation.pending_exists', `${dto.email} already has a pending invitation; revoke it first`) });
    await this.audit.record(tx, { action: 'invitation.created', entityType: 'invitation', entityId: invitation.id, after: invitation });
    // the notifications module mails the invitee a link with a token of its own, minted when it sends; past the
    // mailbox's cap the job records the e-mail not_sent instead (InvitationMail)
    await enqueue(tx, INVITATION_CREATED, {
      invitationId: invitation.id, email: invitation.email, role: invitation.role, expiresAt: invitation.expiresAt, ...(mailWithheld ? { mailWithheld: true } : {}),
    });
    await emitEvent(tx, 'member.invited', {
      invitationId: invitation.id, email: invitation.email, role: invitation.role, invitedBy: invitation.invitedBy, expiresAt: new Date(invitation.expiresAt).toISOString(),
    });
    return { ...invitation, token, mail: mailWithheld ? 'withheld' : 'queued' };
  }

  async list(tx: TenantTx, limit: number, status?: InvitationStatus, cursor?: string): Promise<InvitationPage> {
    const after = decodeCursor<[string, string]>(cursor, isKeysetPosition(UUID));
    const rows = await invitations.list(tx.db, tx.orgId, limit + 1, status, after);
    const { items, nextCursor } = page(rows, limit, (r) => r.key);
    return { items: items.map((r) => r.invitation), nextCursor };
  }

  async revoke(tx: TenantTx, id: string): Promise<void> {
    const before = await invitations.get(tx.db, tx.orgId, id, { lock: true });
    if (!before) throw OrganizationsErrors.notFound('invitation', id);
    const after = await invitations.revoke(tx.db, tx.orgId, id);
    if (!after) {
      throw OrganizationsErrors.error('invitation.not_pending', before.status === 'expired'
        ? `invitation ${id} expired at ${new Date(before.expiresAt).toISOString()}: it can no longer be accepted, so there is nothing to revoke`
        : `invitation ${id} is already ${before.status}`);
    }
    await this.audit.record(tx, { action: 'invitation.revoked', entityType: 'invitation', entityId: id, before, after });
  }

  /**
   * The signed-in invitee accepts: single use, unexpired, only for the email it was sent to, only while the
   * organization's members are below its plan's users limit (checked under the counted limits' lock: an invitation
   * made before a downgrade stays pending until an upgrade), and only while its subscription allows writes (a new
   * member is a write). Either refusal rolls the acceptance back: the invitation stays pending.
   */
  async accept(tx: TenantTx, dto: AcceptInvitationDto): Promise<AcceptedInvitationDto> {
    const membership = await translateDatabaseError(invitations.accept(tx.db, dto.orgId, hashInvitationToken(dto.token), SEATS_APP), {
      P0002: () => OrganizationsErrors.error('invitation.not_found', 'the invitation is unknown, already used, revoked or expired'),
      '42501': () => OrganizationsErrors.error('invitation.email_mismatch', 'this invitation was sent to another email address'),
      '23505': () => OrganizationsErrors.error('invitation.already_member', 'you are already a member of this organization'),
    });
    // Checked once the invitation has proved valid (no one learns an organization's billing state without one), as a
    // member (the organization's subscription and memberships are its members' to read), in this transaction: still
    // under the counted limits' lock core.accept_invitation took (no other acceptance adds a member meanwhile), and a
    // refusal takes the new membership back with it. The users limit first, then the writes rule (one billing context).
    const asMember: TenantTx = { ...tx, orgId: dto.orgId, role: membership.role as RequestRole, workspaceId: null, scopes: null };
    await invitations.readAsNewMember(tx.db, tx.principal, dto.orgId, async () => {
      const members = await invitations.memberCount(tx.db, dto.orgId);
      await this.entitlements.enforceWithin(asMember, SEATS_APP, 'users', members, { explain: seatsReached });
      await this.entitlements.enforce(asMember, { app: SEATS_APP }).catch((err) => {
        if (err instanceof AppError && err.code === 'billing.subscription_inactive') {
          throw new AppError(err.status, err.code, `${err.message}; the invitation stays pending until then`, err.details);
        }
        throw err;
      });
    });
    await this.audit.record(tx, { orgId: dto.orgId, action: 'invitation.accepted', entityType: 'membership', entityId: membership.userId, after: membership });
    await emitEvent({ db: tx.db, orgId: dto.orgId }, 'member.joined', {
      userId: membership.userId, email: await invitations.acceptedEmail(tx.db, membership.userId), role: membership.role,
    });
    return membership;
  }
}

/** 429 invitation.mail_limited once `recent` reached `limit` (per hour), with the wait in the body and Retry-After. */
function refuseOverLimit(recent: RecentCount, limit: number, what: string, per: 'address' | 'organization'): void {
  if (recent.count < limit) return;
  const err = OrganizationsErrors.error('invitation.mail_limited', `at most ${limit} ${what} per hour; try again in ${recent.retryAfterSeconds} seconds`,
    { per, limit, retryAfterSeconds: recent.retryAfterSeconds });
  err.retryAfterSeconds = recent.retryAfterSeconds;
  throw err;
}
