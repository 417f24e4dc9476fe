import { randomUUID } from 'node:crypto';
import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { Db } from '../../platform/database/database.service.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import type { Principal } from '../../platform/auth/principal.js';
import { AppError } from '../../platform/errors/app-error.js';
import { translateDatabaseError } from '../../platform/errors/database-errors.js';
import { normalizeEmail } from '../../platform/http/email.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { AuditService } from '../audit/audit.service.js';
import { OrganizationsService } from '../organizations/organizations.service.js';
import { organizationRepository } from '../organizations/organization.repository.js';
import { EmailLinks, queueEmail } from '../notifications/email-delivery.service.js';
import { AccountErrors } from './account.errors.js';
import { accountTokenRepository as tokens, type RecentCount } from './account-token.repository.js';
import { identityRepository } from './identity.repository.js';
import { AccountClaim, claimAuditFields } from './account-claim.service.js';
import { LoginThrottle } from './login-throttle.service.js';
import { PasswordHasher } from './password-hasher.js';
import { SignInFailureAudit } from './sign-in-failure-audit.js';
import { sessionRepository } from './session.repository.js';
import { TokenService, hashToken } from './token.service.js';
import { userRepository, type UserRow } from './user.repository.js';
import type { ClientInfo } from './auth.service.js';
import type { CheckEmailDto } from './auth.dto.js';

export const PASSWORD_RESET_TTL_MINUTES = 30;
export const EMAIL_CHANGE_TTL_HOURS = 24;
/** reset e-mails per account per hour; past it the request answers the same and sends nothing */
export const PASSWORD_RESET_MAILS_PER_HOUR = 3;
/** verification e-mails per account per hour (the registration's counts); past it 429 auth.mail_limited */
export const EMAIL_VERIFICATION_MAILS_PER_HOUR = 5;
/** e-mail change requests per account per hour (each mails a stranger's address, or would); past it 429 auth.mail_limited */
export const EMAIL_CHANGE_REQUESTS_PER_HOUR = 5;

/** Thrown to roll a rehearsal transaction back (the same statements as the real thing, for the same answer time). */
export const ROLLED_BACK = Symbol('rolled back');

export const RESET_REQUESTED: CheckEmailDto = {
  status: 'check_email',
  message: 'If this address has an account, a link to reset its password has been sent to it. The link is valid for 30 minutes.',
};
export const EMAIL_CHANGE_REQUESTED: CheckEmailDto = {
  status: 'check_email',
  message: 'A link to confirm the new address has been sent to it. The address changes when the link is used.',
};

/**
 * The account e-mails: e-mail verification, password reset and e-mail change. Each is queued in the
 * transaction of its request (core.email_deliveries + the outbox, no token anywhere); the link's token is
 * minted when the mail is sent (the EmailLinks minters below) and only its hash stored.
 */
@Injectable()
export class AccountMailService implements OnModuleInit {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly privileged: PrivilegedDatabase,
    private readonly hasher: PasswordHasher,
    private readonly tokenService: TokenService,
    private readonly links: EmailLinks,
    private readonly audit: AuditService,
    private readonly throttle: LoginThrottle,
    private readonly organizations: OrganizationsService,
    private readonly accountClaim: AccountClaim,
    private readonly failures: SignInFailureAudit,
  ) {}

  private link(path: string, token: string): string {
    return `${this.config.billing.appUrl}${path}?token=${encodeURIComponent(token)}`;
  }

  onModuleInit(): void {
    // the token rows reference the account's row, which the erasure locks before it deletes them and the deliveries:
    // the mail job locks it first too (before the delivery's row), and mails an erased account nothing
    const lockUser = async (db: Db, userId: string) => (await userRepository.lockIfNotErased(db, userId)) !== undefined;
    this.links.register('email_verification', async (db, d) => {
      if (!d.userId) return undefined;
      // queued for an address the account no longer has (sent late or retried after an e-mail change): no link, as for a
      // reset below (the change ended the earlier links too; the new address is verified by the change)
      const current = await userRepository.lockIfNotErased(db, d.userId);
      if (!current || current.email.toLowerCase() !== d.to.toLowerCase()) return undefined;
      const token = this.tokenService.newRefreshToken(); // 32 random bytes
      await identityRepository.addVerificationToken(db, { tokenHash: token.hash, userId: d.userId, email: d.to, ttlHours: this.config.auth.emailVerificationTtlHours });
      return this.link('/verify-email', token.token);
    }, { lockUser });
    this.links.register('password_reset', async (db, d) => {
      if (!d.userId) return undefined;
      // queued for an address the account no longer has (sent late or retried after an e-mail change): no link, or the
      // old mailbox, which the person may have lost, could set their password (the change ended the earlier links too)
      const current = await userRepository.lockIfNotErased(db, d.userId);
      if (!current || current.email.toLowerCase() !== d.to.toLowerCase()) return undefined;
      const token = this.tokenService.newRefreshToken();
      await tokens.addResetToken(db, d.userId, token.hash, PASSWORD_RESET_TTL_MINUTES);
      return this.link('/reset-password', token.token);
    }, { lockUser });
    this.links.register('email_change_confirm', async (db, d) => {
      const token = this.tokenService.newRefreshToken();
      if (!(await tokens.setEmailChangeToken(db, String(d.data.requestId), token.hash))) return undefined;
      return this.link('/confirm-email-change', token.token);
    });
  }

  /**
   * Queues another verification e-mail (the signed-in user asked), in the caller's transaction, which has locked the
   * account's row (concurrent requests count one after the other); past the hour's limit 429 auth.mail_limited.
   */
  async queueVerificationAgain(db: Db, user: UserRow, personalOrgId: string): Promise<void> {
    refuseOverLimit(await tokens.recentMails(db, user.id, 'email_verification'), EMAIL_VERIFICATION_MAILS_PER_HOUR, 'verification e-mails');
    await this.queueVerification(db, user, personalOrgId);
  }

  /** Queues the verification e-mail of a new (or still unverified) password account, in the caller's transaction. */
  async queueVerification(db: Db, user: UserRow, personalOrgId: string): Promise<void> {
    await queueEmail({ db, orgId: personalOrgId }, {
      userId: user.id, to: user.email, template: 'email_verification', category: 'security',
      data: { ttlHours: this.config.auth.emailVerificationTtlHours },
    });
  }

  /**
   * Answers the same whether or not the address has an account (and whether or not the hourly limit
   * was reached), after the same statements: the queuing runs in a savepoint, rolled back for an unknown
   * address (queued for a stand-in account) or one past the limit, and the transaction commits either way
   * (a rollback answered sooner than a commit's WAL flush). The stand-in is made for a known address too,
   * in a savepoint of its own rolled back at once: made only for unknown ones, its user, auth.users row and
   * personal organization took their answers 6-9 ms longer. The mail is sent by a job, so the answer's time
   * does not depend on the SMTP server.
   */
  async requestPasswordReset(email: string, client: ClientInfo): Promise<CheckEmailDto> {
    await this.privileged.run('auth.credentials', async (db) => {
      const user = await userRepository.findByEmail(db, email);
      const known = user?.personalOrgId ? { id: user.id, email: user.email, personalOrgId: user.personalOrgId } : undefined;
      await db.$executeRaw`SAVEPOINT password_reset_request`;
      const standIn = await this.standIn(db, { keep: !known });
      const account = known ?? standIn!;
      const recent = await tokens.recentMails(db, account.id, 'password_reset');
      await queueEmail({ db, orgId: account.personalOrgId }, {
        userId: account.id, to: account.email, template: 'password_reset', category: 'security', data: { ttlMinutes: PASSWORD_RESET_TTL_MINUTES },
      });
      await this.audit.recordPrivileged(db, account.personalOrgId, 'system', {
        action: 'auth.password_reset_requested', entityType: 'user', entityId: account.id,
      }, client);
      if (known && recent.count < PASSWORD_RESET_MAILS_PER_HOUR) await db.$executeRaw`RELEASE SAVEPOINT password_reset_request`;
      else await db.$executeRaw`ROLLBACK TO SAVEPOINT password_reset_request`;
    });
    return RESET_REQUESTED;
  }

  /**
   * An account and its personal organization for a rehearsal: an address nobody can have. Made in a savepoint,
   * released when `keep` (the request's own savepoint undoes it then), else rolled back at once: the same statements.
   */
  private async standIn(db: Db, { keep }: { keep: boolean }): Promise<{ id: string; email: string; personalOrgId: string } | undefined> {
    await db.$executeRaw`SAVEPOINT password_reset_stand_in`;
    const email = `${randomUUID()}@password-reset.invalid`;
    const user = (await userRepository.create(db, { email }))!;
    const account = { id: user.id, email, personalOrgId: await this.organizations.createPersonal(db, user.id, email) };
    if (keep) await db.$executeRaw`RELEASE SAVEPOINT password_reset_stand_in`;
    else await db.$executeRaw`ROLLBACK TO SAVEPOINT password_reset_stand_in`;
    return keep ? account : undefined;
  }

  /**
   * Sets a new password with a reset link's token (once); every session of the account ends, and with them its pending
   * e-mail change and the pending invitations it sent.
   */
  async resetPassword(token: string, password: string, client: ClientInfo): Promise<void> {
    const hash = await this.hasher.hash(password); // before the lookup: the same work for a bad token
    const tokenHash = hashToken(token);
    const done = await this.privileged.run('auth.credentials', async (db) => {
      const userId = await tokens.resetTokenUser(db, tokenHash);
      if (!userId) return false;
      // the account's row before the link's, as the erasure locks them (it deletes the links): in the other order the
      // two deadlocked, and one of them failed
      const user = await userRepository.lockIfNotErased(db, userId);
      // used up either way (a concurrent reset with the same link, or the erasure, got there first: refused)
      if (!(await tokens.consumeResetToken(db, tokenHash, userId))) return false;
      // an erased account takes no password: its erasure deletes its reset links, and a link of before the erasure
      // must not bring it back
      if (!user) return false;
      const { email } = user;
      // the link came to the account's address: if nobody had proved it before, this proves it, and whatever was set
      // up before (a pre-registration's linked identities, its pending e-mail change, its invitations, what sends its
      // solo organizations' data out) goes as on a verified claim, and the address gets the claim's notice (AccountClaim)
      const claimed = (await identityRepository.hasVerifiedEmail(db, userId, email))
        ? undefined : await this.accountClaim.clear(db, userId, { password: false, via: 'a password reset', meta: client });
      // a reset is how an owner takes the account back from someone who had its password or a session: what such a
      // person set going from it ends with their sessions, or it outlived them. A pending e-mail change (confirmed later
      // from their mailbox, it gave them the address and with it the next reset's link); the pending invitations it sent
      // (accepted later, they bring their invitee in), in the claim's lock order: its live organizations, then the
      // invitations. Both are no-ops after a claim, which ended them. The API keys and webhook endpoints it set up stay:
      // the organizations' own, not this person's way in (their admins review them)
      const emailChanges = await tokens.endPendingEmailChanges(db, userId);
      if (!claimed) await organizationRepository.lockLiveOfMember(db, userId);
      const invitations = await this.accountClaim.revokeSentInvitations(db, userId, 'inviter_password_reset', client);
      // the link proves the address whatever proved it before (a Hub's say-so may move to another address later)
      await identityRepository.proveUserEmail(db, userId);
      await userRepository.setPassword(db, userId, hash);
      const sessions = await sessionRepository.revokeAllForUser(db, userId, 'password_reset');
      const personalOrgId = await userRepository.personalOrgId(db, userId);
      if (personalOrgId) {
        await this.audit.recordPrivileged(db, personalOrgId, 'system', {
          action: 'auth.password_reset', entityType: 'user', entityId: userId,
          after: {
            sessionsRevoked: sessions,
            // what the reset ended, named when there was any (after a claim, in its fields: the claim ended them)
            ...(claimed
              ? { emailVerified: true, ...claimAuditFields({ ...claimed, emailChanges: claimed.emailChanges + emailChanges, invitationsRevoked: claimed.invitationsRevoked + invitations }) }
              : { ...(emailChanges ? { emailChangesCanceled: emailChanges } : {}), ...(invitations ? { invitationsRevoked: invitations } : {}) }),
          },
        }, client);
      }
      return true;
    });
    if (!done) throw AccountErrors.error('auth.reset_invalid', 'this reset link is unknown, already used or expired; ask for a new one');
  }

  /**
   * The signed-in user asks to use another address: confirmed with the current password, then by the link
   * mailed to the new address. A taken address answers alike and gets no mail (nothing is revealed).
   */
  async requestEmailChange(principal: Principal, newEmail: string, password: string, client: ClientInfo): Promise<CheckEmailDto> {
    if (principal.kind !== 'user') throw PlatformErrors.error('auth.user_required', 'this route acts for a signed-in user; a service key cannot call it');
    const found = await this.privileged.run('auth.credentials', (db) => userRepository.findWithCredentials(db, principal.userId));
    // a password guess here counts like a login attempt (a stolen access token must not be a password oracle), and is
    // audited as one (SignInFailureAudit), its lockout too
    await this.throttle.reserveLogin(principal.email, client.ip).catch((err) => { throw this.failures.lockedOut(err, principal.email, 'email_change', client); });
    const check = found?.passwordHash ? await this.hasher.verify(found.passwordHash, password) : { ok: await this.hasher.verifyDummy(password) };
    if (!found || !check.ok) {
      this.failures.record(principal.email, 'auth.login_failed', 'email_change', client);
      throw AccountErrors.error('auth.password_incorrect', 'the current password is not correct');
    }
    await this.throttle.loginSucceeded(principal.email, client.ip);
    if (newEmail === found.email.toLowerCase()) throw AccountErrors.error('auth.email_unchanged', 'the new e-mail address is the current one');
    await this.privileged.run('auth.credentials', async (db) => {
      // the account's row first, as the erasure locks it before the requests it deletes: ending the earlier request and
      // then waiting (the new row's key) for an erasure under way deadlocked with it
      if (!(await userRepository.lockIfNotErased(db, found.id))) throw AppError.unauthorized('this account has been erased');
      const personalOrgId = found.personalOrgId ?? (await userRepository.personalOrgId(db, found.id));
      if (!personalOrgId) return;
      // counted after the account's lock: concurrent requests count one after the other
      refuseOverLimit(await tokens.recentEmailChangeRequests(db, personalOrgId, found.id), EMAIL_CHANGE_REQUESTS_PER_HOUR, 'e-mail change requests');
      // alike for a taken address (the earlier link ends, the request is audited): what the caller can see tells nothing
      await tokens.endPendingEmailChanges(db, found.id);
      await this.audit.recordPrivileged(db, personalOrgId, principal, {
        action: 'auth.email_change_requested', entityType: 'user', entityId: found.id, after: { newEmail },
      }, client);
      // but no request row: it would name another account's address as this person's
      if (await userRepository.findByEmail(db, newEmail)) return;
      const requestId = await tokens.addEmailChange(db, { userId: found.id, oldEmail: found.email, newEmail, ttlHours: EMAIL_CHANGE_TTL_HOURS });
      await queueEmail({ db, orgId: personalOrgId }, {
        userId: found.id, to: newEmail, template: 'email_change_confirm', category: 'security',
        data: { requestId, oldEmail: found.email, newEmail, ttlHours: EMAIL_CHANGE_TTL_HOURS },
      });
    });
    return EMAIL_CHANGE_REQUESTED;
  }

  /** The link from the new address: the account takes it (verified), and the old address is told. */
  async confirmEmailChange(token: string, client: ClientInfo): Promise<{ email: string }> {
    const tokenHash = hashToken(token);
    const changed = await this.privileged.run('auth.credentials', async (db) => {
      const userId = await tokens.emailChangeUser(db, tokenHash);
      if (!userId) return undefined;
      // the account's row before the request's, as the erasure locks them (it deletes the requests): in the other order
      // the two deadlocked, and one of them failed. An erased account takes no address: a link of before the erasure
      // must not give it a deliverable one again; thrown, so that nothing is written
      const current = await userRepository.lockIfNotErased(db, userId);
      if (!current) throw emailChangeInvalid();
      // the erasure (or a concurrent confirmation) got there first: no longer pending
      const request = await tokens.consumeEmailChange(db, tokenHash, userId);
      if (!request) return undefined;
      // a request of before migration 20270211000700 whose new address, in NFC, is the account's own (review ro): used up,
      // and the address stays (no change audited, no notice, the reset links stay), as the request endpoint would have
      // refused it. But the link came to that address: it proves it, as a change's link does (review rf1: an unverified
      // account stayed unverified), audited as a verification link's use is
      if (normalizeEmail(request.new_email) === current.email.toLowerCase()) {
        await identityRepository.proveUserEmail(db, userId);
        await this.audit.recordPrivileged(db, (await userRepository.personalOrgId(db, userId))!, 'system', {
          action: 'user.email_verified', entityType: 'user', entityId: userId, after: { email: current.email, by: 'email_change_confirm' },
        }, client);
        return { email: current.email };
      }
      // in the form the app stores, whatever the request row holds (one written before migration 20270211000700 may be
      // decomposed): written as it was, it made a second account of an address taken in NFC (review rn). Every stored
      // address but a reported pair's decomposed one is NFC, whose NFC form is the kept account's: the unique e-mail
      // refuses an address taken in either form.
      const newEmail = normalizeEmail(request.new_email);
      await translateDatabaseError(tokens.changeEmail(db, request.user_id, newEmail), {
        '23505': () => AccountErrors.error('auth.email_taken', 'another account uses this e-mail address now'),
      });
      const personalOrgId = (await userRepository.personalOrgId(db, request.user_id))!;
      await this.audit.recordPrivileged(db, personalOrgId, 'system', {
        action: 'auth.email_changed', entityType: 'user', entityId: request.user_id, before: { email: request.old_email }, after: { email: newEmail },
      }, client);
      await queueEmail({ db, orgId: personalOrgId }, {
        userId: request.user_id, to: request.old_email, template: 'email_change_notice', category: 'security',
        data: { oldEmail: request.old_email, newEmail },
      });
      return { email: newEmail };
    });
    if (!changed) throw emailChangeInvalid();
    return changed;
  }
}

/** 429 auth.mail_limited once `recent` reached `limit` (per account and hour), with the wait in the body and Retry-After. */
function refuseOverLimit(recent: RecentCount, limit: number, what: string): void {
  if (recent.count < limit) return;
  const err = AccountErrors.error('auth.mail_limited', `at most ${limit} ${what} per hour; try again in ${recent.retryAfterSeconds} seconds`,
    { limit, retryAfterSeconds: recent.retryAfterSeconds });
  err.retryAfterSeconds = recent.retryAfterSeconds;
  throw err;
}

const emailChangeInvalid = () =>
  AccountErrors.error('auth.email_change_invalid', 'this confirmation link is unknown, already used or expired; ask for the change again');
