import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { Clock } from '../../platform/clock/clock.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import type { Db, TenantTx } from '../../platform/database/database.service.js';
import { AppError } from '../../platform/errors/app-error.js';
import type { Principal } from '../../platform/auth/principal.js';
import { AuditService } from '../audit/audit.service.js';
import { OrganizationsService } from '../organizations/organizations.service.js';
import { AnalyticsService } from '../analytics/analytics.service.js';
import { LoginThrottle } from './login-throttle.service.js';
import { PasswordHasher } from './password-hasher.js';
import { TokenService, hashToken } from './token.service.js';
import { userRepository, type UserRow } from './user.repository.js';
import { sessionRepository } from './session.repository.js';
import { identityRepository, type IdentityInput } from './identity.repository.js';
import { legacyHubAccountRepository } from './legacy-hub-account.repository.js';
import { AccountMailService, ROLLED_BACK } from './account-mail.service.js';
import { accountTokenRepository } from './account-token.repository.js';
import { AccountClaim, claimAuditFields } from './account-claim.service.js';
import { SupabaseEmailCheck } from './supabase-email-check.js';
import { SignInFailureAudit } from './sign-in-failure-audit.js';
import { AccountErrors } from './account.errors.js';
import type { AppSessionDto, AppTokenDto, IdentityDto, RegistrationAcceptedDto, TokensDto } from './auth.dto.js';
import { EXCHANGE_PROVIDERS, verifyExternalToken, type ExchangeProvider, type ExternalIdentity } from './external-token.js';
import { AuthErrors } from './auth.errors.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { emitEvent } from '../../platform/events/events.js';
import { queueEmail } from '../notifications/email-delivery.service.js';
import { deviceHash, knownDeviceRepository, networkPrefix } from './known-device.repository.js';

/** App tokens only carry the user into the app's login page (seed 000 handshake). */
export const APP_TOKEN_TTL_SECONDS = 120;

/** The one answer to every registration, whether or not the e-mail already has an account. */
export const REGISTRATION_ACCEPTED: RegistrationAcceptedDto = {
  status: 'check_email',
  message: 'If this e-mail can be registered, a verification link has been sent to it. Then sign in with your password.',
};

const PROVIDER_LABEL: Record<ExchangeProvider, string> = { nextauth: 'Hub', supabase: 'Supabase' };

/** How recent the sign-in of the access token's session must be to add or remove a sign-in method without the password (as for an erasure). */
export const SIGN_IN_METHOD_RECENT_SECONDS = 300;

export interface ClientInfo {
  ip?: string;
  userAgent?: string;
  requestId?: string;
}

@Injectable()
export class AuthService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly privileged: PrivilegedDatabase,
    private readonly tokens: TokenService,
    private readonly throttle: LoginThrottle,
    private readonly hasher: PasswordHasher,
    private readonly audit: AuditService,
    private readonly analytics: AnalyticsService,
    private readonly accountMail: AccountMailService,
    private readonly supabaseEmails: SupabaseEmailCheck,
    private readonly clock: Clock,
    private readonly organizations: OrganizationsService,
    private readonly accountClaim: AccountClaim,
    private readonly failures: SignInFailureAudit,
  ) {}

  /**
   * Creates an account whose e-mail is not yet verified, and queues the verification e-mail (its link's
   * token is minted when the mail is sent: account-mail.service.ts). Answers alike for taken and free e-mails, after the same hashing work,
   * so registration does not tell which e-mails have accounts.
   */
  async register(input: { email: string; password: string; name?: string }, client: ClientInfo): Promise<RegistrationAcceptedDto> {
    await this.throttle.reserveRegistration(client.ip);
    const existing = await this.privileged.run('auth.credentials', (db) => userRepository.findByEmail(db, input.email));
    // a taken e-mail must not answer faster: the same hashing, and the same writes, rolled back
    const hash = await this.hasher.hash(input.password);
    if (existing) {
      await this.createPasswordAccount({ ...input, email: `${randomUUID()}@registration.invalid` }, hash, client, true)
        .catch((err) => { if (err !== ROLLED_BACK) throw err; });
      return REGISTRATION_ACCEPTED;
    }
    await this.createPasswordAccount(input, hash, client);
    return REGISTRATION_ACCEPTED;
  }

  /**
   * The account, its password, its unverified password identity and its verification e-mail, in one
   * transaction. `rehearse`: the same statements, then a rollback (for a taken e-mail's answer time).
   */
  private createPasswordAccount(input: { email: string; name?: string }, hash: string, client: ClientInfo, rehearse = false) {
    return this.privileged.run('auth.credentials', async (db) => {
      const made = await this.createUser(db, { email: input.email, name: input.name });
      // a concurrent registration of the same e-mail won the race: never set a password on its account
      if (!made) return undefined;
      const { user, personalOrgId } = made;
      await userRepository.setPassword(db, user.id, hash);
      await identityRepository.add(db, user.id, { provider: 'password', subject: user.id, email: user.email, emailVerified: false });
      await this.accountMail.queueVerification(db, user, personalOrgId);
      await this.audit.recordPrivileged(db, personalOrgId, this.principalOf(user, personalOrgId), {
        action: 'user.registered', entityType: 'user', entityId: user.id, after: { ...user, provider: 'password', emailVerified: false },
      }, client);
      if (rehearse) throw ROLLED_BACK;
      return { user };
    });
  }

  /**
   * Proves the signed-in user's current e-mail (the link from registration, or one asked for again), whichever way the
   * account signs in: a Hub or Supabase account too (identityRepository.proveUserEmail). Only
   * the account's own session may use its link: the mail proves the mailbox, the session proves the
   * password. Otherwise someone who pre-registered another person's address could have that person
   * click "verify" and keep a verified account with the pre-registered password.
   */
  async verifyEmail(principal: Principal, token: string, client: ClientInfo): Promise<{ email: string; verified: true }> {
    if (principal.kind !== 'user') throw PlatformErrors.error('auth.user_required', 'this route acts for a signed-in user; a service key cannot call it');
    const done = await this.privileged.run('auth.credentials', async (db) => {
      // the account's row before the link's and the identity's, as the erasure locks them (it deletes identities, then
      // links): in the other order the two deadlocked, and one of them failed. An erased account proves nothing
      if (!(await userRepository.lockIfNotErased(db, principal.userId))) throw AppError.unauthorized('this account has been erased');
      const used = await identityRepository.consumeVerificationToken(db, hashToken(token), principal.userId);
      if (!used) return undefined;
      await this.audit.recordPrivileged(db, principal.personalOrgId, principal, {
        action: 'user.email_verified', entityType: 'user', entityId: used.userId, after: { email: used.email },
      }, client);
      return used;
    });
    if (!done) {
      throw AuthErrors.error('auth.verification_invalid',
        'this verification link is unknown, already used, expired or for another account; sign in to the account it was sent for, or ask for a new one');
    }
    return { email: done.email, verified: true };
  }

  /**
   * Sends a new verification link for the signed-in user's e-mail, unless it is verified already; at most
   * EMAIL_VERIFICATION_MAILS_PER_HOUR an hour (429 auth.mail_limited).
   */
  async resendVerification(principal: Principal): Promise<void> {
    if (principal.kind !== 'user') throw PlatformErrors.error('auth.user_required', 'this route acts for a signed-in user; a service key cannot call it');
    await this.privileged.run('auth.credentials', async (db) => {
      // the account's row first (as the erasure takes it): concurrent requests count the hour's mails one after the other
      if (!(await userRepository.lockIfNotErased(db, principal.userId))) throw AppError.unauthorized('this account has been erased');
      const user = await userRepository.findById(db, principal.userId);
      if (!user || (await identityRepository.hasVerifiedEmail(db, user.id, user.email))) return;
      await this.accountMail.queueVerificationAgain(db, user, principal.personalOrgId);
      await this.audit.recordPrivileged(db, principal.personalOrgId, principal, {
        action: 'user.verification_link_sent', entityType: 'user', entityId: user.id, after: { email: user.email },
      });
    });
  }

  /** A new user and its personal organization (the organizations module's), in the caller's transaction; undefined when the e-mail is taken. */
  private async createUser(db: Db, u: { id?: string; email: string; name?: string | null; image?: string | null }): Promise<{ user: UserRow; personalOrgId: string } | undefined> {
    const user = await userRepository.create(db, u);
    if (!user) return undefined;
    // an organization's name has at most 200 characters; an address (up to 254) or a provider's display name may be longer
    return { user, personalOrgId: await this.organizations.createPersonal(db, user.id, (u.name?.trim() || u.email).slice(0, 200)) };
  }

  /**
   * Password login. The attempt is counted before the password is checked (so parallel guesses
   * cannot outrun the limit), and an unknown e-mail costs the same hash check as a wrong password.
   * A wrong password and a lockout are audited for an address with an account (SignInFailureAudit:
   * beside the answer, whose time stays the same for an address without one).
   */
  async login(email: string, password: string, client: ClientInfo): Promise<TokensDto> {
    await this.throttle.reserveLogin(email, client.ip).catch((err) => { throw this.failures.lockedOut(err, email, 'login', client); });
    const found = await this.privileged.run('auth.credentials', (db) => userRepository.findByEmail(db, email));
    const check = found?.passwordHash
      ? await this.hasher.verify(found.passwordHash, password)
      : { ok: await this.hasher.verifyDummy(password), needsRehash: false };
    if (!found || !found.passwordHash || !check.ok || !found.personalOrgId) {
      this.failures.record(email, 'auth.login_failed', 'login', client);
      throw AppError.unauthorized('email or password is incorrect');
    }
    await this.throttle.loginSucceeded(email, client.ip);
    const upgraded = check.needsRehash ? await this.hasher.hash(password) : undefined;
    const personalOrgId = found.personalOrgId;
    const oldHash = found.passwordHash;
    const user: UserRow = { id: found.id, email: found.email, name: found.name, image: found.image, accountType: found.accountType };
    return this.privileged.run('auth.credentials', async (db) => {
      await refuseErased(db, user.id);
      const passwordUpgraded = upgraded ? await userRepository.replacePasswordHash(db, user.id, oldHash, upgraded) : false;
      await this.audit.recordPrivileged(db, personalOrgId, this.principalOf(user, personalOrgId), {
        action: 'auth.login', entityType: 'user', entityId: user.id, ...(passwordUpgraded ? { after: { passwordHashUpgraded: true } } : {}),
      }, client);
      this.analytics.recordPrivileged(db, personalOrgId, { name: 'user.signed_in', userId: user.id, properties: { method: 'password' } });
      return this.startSession(db, user, personalOrgId, client, 'password');
    });
  }

  /**
   * Exchanges a Hub / NextAuth session or a Supabase access token for our tokens. The user is the
   * one the identity (provider, subject) belongs to. A new identity joins an existing account of
   * the same e-mail only when the provider verified the e-mail; if nobody ever verified that
   * account's e-mail, the verified identity claims it: whatever else could sign in to it (a pre-registered password,
   * its sessions) is removed, what it set up is closed, and the address is mailed a security notice (AccountClaim); an
   * identity linked to an account verified before is mailed to its address (sign_in_method_added). An account the Hub
   * made before identities existed is joined by its first Hub sign-in without a claim (joinLegacyHubAccount). Otherwise:
   * 409 auth.link_required.
   */
  async exchange(token: string, provider: ExchangeProvider | undefined, client: ClientInfo): Promise<TokensDto> {
    const identity = await this.withEmailProof(verifyExternalToken(this.config, token, provider), token);
    const input = identityInput(identity);
    return this.privileged.run('auth.credentials', async (db) => {
      const known = await identityRepository.findUser(db, identity.provider, identity.subject);
      if (known) {
        await refuseErased(db, known.id);
        await identityRepository.touch(db, input);
        const user = await userRepository.updateProfile(db, known.id, { name: identity.name, image: identity.image });
        const personalOrgId = known.personalOrgId ?? (await userRepository.personalOrgId(db, known.id))!;
        const { personalOrgId: _, ...before } = known;
        await this.audit.recordPrivileged(db, personalOrgId, this.principalOf(user, personalOrgId), {
          action: 'auth.exchanged', entityType: 'user', entityId: user.id, before, after: { ...user, provider: identity.provider },
        }, client);
        return this.startSession(db, user, personalOrgId, client, 'exchange');
      }

      const existing = await userRepository.findByEmail(db, identity.email);
      if (!existing) {
        // a new Supabase user keeps its auth.users id, unless that id already names another user
        const id = identity.provider === 'supabase' && !(await userRepository.exists(db, identity.subject)) ? identity.subject : undefined;
        const made = await this.createUser(db, { id, email: identity.email, name: identity.name, image: identity.image });
        if (!made) throw linkRequired(identity.provider); // the e-mail was registered meanwhile
        await identityRepository.add(db, made.user.id, input);
        await this.audit.recordPrivileged(db, made.personalOrgId, this.principalOf(made.user, made.personalOrgId), {
          action: 'user.registered', entityType: 'user', entityId: made.user.id,
          after: { ...made.user, provider: identity.provider, emailVerified: identity.emailVerified },
        }, client);
        return this.startSession(db, made.user, made.personalOrgId, client, 'exchange');
      }

      if (identity.provider === 'nextauth') {
        await refuseErased(db, existing.id);
        const legacy = await legacyHubAccountRepository.take(db, existing.id);
        if (legacy === 'join') return this.joinLegacyHubAccount(db, existing, identity, client);
        if (legacy === 'spent') {
          // claimed since it was recorded: the record ends here (kept if what follows refuses the sign-in)
          await this.audit.recordPrivileged(db, existing.personalOrgId ?? (await userRepository.personalOrgId(db, existing.id))!, 'system', {
            action: 'auth.legacy_hub_account_dropped', entityType: 'user', entityId: existing.id,
            before: { legacyHubAccount: true }, after: { legacyHubAccount: false, reason: 'claimed_since' },
          }, client);
        }
      }
      if (!identity.emailVerified) throw linkRequired(identity.provider);
      await refuseErased(db, existing.id);
      const personalOrgId = existing.personalOrgId ?? (await userRepository.personalOrgId(db, existing.id))!;
      const accountVerified = await identityRepository.hasVerifiedEmail(db, existing.id, existing.email);
      if (!accountVerified) {
        const removed = await this.accountClaim.clear(db, existing.id, { password: true, via: `a ${PROVIDER_LABEL[identity.provider]} sign-in`, meta: client });
        const sessions = await sessionRepository.revokeAllForUser(db, existing.id, 'claimed_by_verified_identity');
        await this.audit.recordPrivileged(db, personalOrgId, 'system', {
          action: 'auth.unverified_account_claimed', entityType: 'user', entityId: existing.id,
          before: { passwordRemoved: removed.password, sessionsRevoked: sessions, ...claimAuditFields(removed) },
          after: { provider: identity.provider, email: identity.email },
        }, client);
      }
      if (!(await identityRepository.add(db, existing.id, input))) throw linkRequired(identity.provider);
      if (accountVerified) {
        // linked because both proved the same address: still a new way in, told to the address as an explicit link is
        await this.mailSignInMethodAdded(db, personalOrgId, existing, identity);
      }
      const user = await userRepository.updateProfile(db, existing.id, { name: identity.name, image: identity.image });
      await this.audit.recordPrivileged(db, personalOrgId, this.principalOf(user, personalOrgId), {
        action: 'auth.identity_linked', entityType: 'user', entityId: user.id,
        after: { provider: identity.provider, email: identity.email, emailVerified: true, by: 'verified_email' },
      }, client);
      return this.startSession(db, user, personalOrgId, client, 'exchange');
    });
  }

  /** A new way into the account, told to its address (security mail): a link its owner did not make is seen and can be removed. */
  private async mailSignInMethodAdded(db: Db, personalOrgId: string, user: { id: string; email: string }, identity: { provider: ExchangeProvider; email: string }): Promise<void> {
    await queueEmail({ db, orgId: personalOrgId }, {
      userId: user.id, to: user.email, template: 'sign_in_method_added', category: 'security',
      data: { provider: PROVIDER_LABEL[identity.provider], identityEmail: identity.email, addedAt: new Date(this.clock.now()).toISOString() },
    });
  }

  /**
   * The first Hub sign-in of an account the Hub made before identities existed (legacyHubAccountRepository.take: still as
   * the Hub left it): its identity joins the account as the account's own, verified or not as the token says, with no
   * claim: nothing is removed, closed or revoked. The Hub signed this e-mail into this account before, by the same
   * assertion (only the Hub holds NEXTAUTH_SECRET): the join gives no one a way in the old exchange did not give. Once:
   * a later Hub identity of the address is an ordinary one. Mailed to the address as any new way in is.
   */
  private async joinLegacyHubAccount(db: Db, existing: UserRow & { personalOrgId: string | null }, identity: ExternalIdentity, client: ClientInfo): Promise<TokensDto> {
    const personalOrgId = existing.personalOrgId ?? (await userRepository.personalOrgId(db, existing.id))!;
    // the identity was looked up in this transaction: one added meanwhile by the same subject is another sign-in's
    if (!(await identityRepository.add(db, existing.id, identityInput(identity)))) throw linkRequired(identity.provider);
    await this.mailSignInMethodAdded(db, personalOrgId, existing, identity);
    const user = await userRepository.updateProfile(db, existing.id, { name: identity.name, image: identity.image });
    await this.audit.recordPrivileged(db, personalOrgId, this.principalOf(user, personalOrgId), {
      action: 'auth.identity_linked', entityType: 'user', entityId: user.id,
      after: { provider: identity.provider, email: identity.email, emailVerified: identity.emailVerified, by: 'legacy_hub_account' },
    }, client);
    return this.startSession(db, user, personalOrgId, client, 'exchange');
  }

  /**
   * Links another identity to the signed-in user: the explicit way when the exchange answered auth.link_required. The
   * identity becomes a way into the account that a password reset keeps, so this asks what an erasure asks: the password,
   * or a sign-in of the token's session within SIGN_IN_METHOD_RECENT_SECONDS (reauthenticate). A new link is mailed to
   * the account's address (sign_in_method_added), so that a link its owner did not make is seen and can be removed. An
   * identity asserting another account's address is linked with that address unverified (review rf1): it proves nothing
   * of it to this account (erasure, export).
   */
  async linkIdentity(principal: Principal, token: string, provider: ExchangeProvider | undefined, password: string | undefined, client: ClientInfo): Promise<IdentityDto[]> {
    if (principal.kind !== 'user') throw PlatformErrors.error('auth.user_required', 'this route acts for a signed-in user; a service key cannot call it');
    // a password guess here counts like a login attempt (a stolen access token must not be a password oracle)
    if (password !== undefined) await this.throttle.reserveLogin(principal.email, client.ip).catch((err) => { throw this.failures.lockedOut(err, principal.email, 'link_identity', client); });
    const identity = await this.withEmailProof(verifyExternalToken(this.config, token, provider), token);
    const input = identityInput(identity);
    const listed = await this.privileged.run('auth.credentials', async (db) => {
      await refuseErased(db, principal.userId);
      // after the provider's checks over the network: the session is locked live here, or the link is refused
      const reauthenticated = await this.reauthenticate(db, principal, password, 'link_identity', client);
      const owner = await identityRepository.findUser(db, identity.provider, identity.subject);
      if (owner && owner.id !== principal.userId) throw identityTaken(identity.provider);
      const added = !owner;
      // another account's address is kept unverified whatever the provider says (add), or not taken at all (touch keeps
      // the address it had, verified or not): audited as stored, not as asserted (review rB)
      const stored = owner ? await identityRepository.touch(db, input) : await identityRepository.add(db, principal.userId, input);
      if (!owner && !stored) throw identityTaken(identity.provider); // linked meanwhile
      await this.audit.recordPrivileged(db, principal.personalOrgId, principal, {
        action: 'auth.identity_linked', entityType: 'user', entityId: principal.userId,
        after: {
          provider: identity.provider, email: stored?.email ?? identity.email, emailVerified: stored?.emailVerified ?? false,
          by: 'signed_in_user', reauthenticated, added,
        },
      }, client);
      if (added) {
        await this.mailSignInMethodAdded(db, principal.personalOrgId, (await userRepository.findById(db, principal.userId))!, identity);
      }
      return identityRepository.listForUser(db, principal.userId);
    });
    if (password !== undefined) await this.throttle.loginSucceeded(principal.email, client.ip);
    return listed;
  }

  /**
   * Removes the signed-in user's identities of a Hub / Supabase provider (the password is changed by a reset, not here).
   * Re-authenticated as a link is; refused when it would leave no way to sign in (409 auth.last_sign_in_method) or take
   * the only proof of the account's e-mail (409 auth.email_proof_required: an unproven account may be claimed by a verified
   * sign-in). Audited, and mailed to the account's address.
   */
  async unlinkIdentity(principal: Principal, provider: string, password: string | undefined, client: ClientInfo): Promise<IdentityDto[]> {
    if (principal.kind !== 'user') throw PlatformErrors.error('auth.user_required', 'this route acts for a signed-in user; a service key cannot call it');
    if (!(EXCHANGE_PROVIDERS as readonly string[]).includes(provider)) throw identityNotFound(provider);
    const issuer = provider as ExchangeProvider;
    if (password !== undefined) await this.throttle.reserveLogin(principal.email, client.ip).catch((err) => { throw this.failures.lockedOut(err, principal.email, 'unlink_identity', client); });
    const listed = await this.privileged.run('auth.credentials', async (db) => {
      await refuseErased(db, principal.userId);
      const reauthenticated = await this.reauthenticate(db, principal, password, 'unlink_identity', client);
      const removed = await identityRepository.removeProvider(db, principal.userId, issuer);
      if (!removed.length) throw identityNotFound(provider);
      const left = await identityRepository.signInMethods(db, principal.userId);
      if (!left.password && left.identities === 0) {
        throw AuthErrors.error('auth.last_sign_in_method', `this ${PROVIDER_LABEL[issuer]} sign-in is the account's last way to sign in: set a password or link another identity first`);
      }
      const user = (await userRepository.findById(db, principal.userId))!;
      const provedEmail = removed.some((r) => r.emailVerified && r.email.toLowerCase() === user.email.toLowerCase());
      if (provedEmail && !(await identityRepository.hasVerifiedEmail(db, user.id, user.email))) {
        throw AuthErrors.error('auth.email_proof_required',
          `this ${PROVIDER_LABEL[issuer]} sign-in is the only proof of the account's e-mail: verify the e-mail another way (POST /v1/auth/email-verification) first`);
      }
      await this.audit.recordPrivileged(db, principal.personalOrgId, principal, {
        action: 'auth.identity_unlinked', entityType: 'user', entityId: principal.userId,
        before: { provider: issuer, emails: removed.map((r) => r.email) }, after: { reauthenticated },
      }, client);
      for (const r of removed) {
        await queueEmail({ db, orgId: principal.personalOrgId }, {
          userId: user.id, to: user.email, template: 'sign_in_method_removed', category: 'security',
          data: { provider: PROVIDER_LABEL[issuer], identityEmail: r.email, removedAt: new Date(this.clock.now()).toISOString() },
        });
      }
      return identityRepository.listForUser(db, principal.userId);
    });
    if (password !== undefined) await this.throttle.loginSucceeded(principal.email, client.ip);
    return listed;
  }

  /**
   * Re-authentication for adding or removing a way to sign in, in the change's transaction: the access token's session
   * is locked live until it commits (a sign-out, revocation or password reset under way is waited for and seen: the
   * guard checked it before any network call), then the password, or a sign-in of that session (password or token
   * exchange, not a refresh) within SIGN_IN_METHOD_RECENT_SECONDS. A wrong password is audited as a failed sign-in.
   */
  private async reauthenticate(db: Db, principal: Extract<Principal, { kind: 'user' }>, password: string | undefined, route: string, client: ClientInfo): Promise<'password' | 'recent_sign_in'> {
    const signedInAt = principal.sessionId ? await sessionRepository.lockLiveSignIn(db, principal.sessionId, principal.userId) : undefined;
    if (principal.sessionId && !signedInAt) throw AppError.unauthorized('the session of this access token has ended; log in again');
    if (password !== undefined) {
      const found = await userRepository.findWithCredentials(db, principal.userId);
      const ok = found?.passwordHash ? (await this.hasher.verify(found.passwordHash, password)).ok : await this.hasher.verifyDummy(password);
      if (!ok) {
        this.failures.record(principal.email, 'auth.login_failed', route, client);
        throw AccountErrors.error('auth.password_incorrect', 'the password is not this account\'s');
      }
      return 'password';
    }
    const ageSeconds = signedInAt ? (this.clock.now() - signedInAt.getTime()) / 1000 : Infinity;
    if (!(ageSeconds <= SIGN_IN_METHOD_RECENT_SECONDS)) {
      throw AuthErrors.error('auth.recent_sign_in_required',
        `send your password, or sign in again: adding or removing a way to sign in without the password needs a sign-in (password or token exchange) within the last ${SIGN_IN_METHOD_RECENT_SECONDS / 60} minutes; refreshing the access token does not count`);
    }
    return 'recent_sign_in';
  }

  /**
   * A Supabase identity signing in for the first time, without a verified-e-mail claim: the project
   * says whether the e-mail is confirmed (outside any transaction: it is a network call). Known
   * identities keep the verification they have. Neither a claim nor `email_confirmed_at` counts when
   * the project auto-confirms sign-ups (SupabaseEmailCheck): anyone can sign up there with any address.
   */
  private async withEmailProof(identity: ExternalIdentity, token: string): Promise<ExternalIdentity> {
    if (identity.provider !== 'supabase') return identity;
    if (identity.emailVerified) return { ...identity, emailVerified: await this.supabaseEmails.projectConfirmsEmails() };
    const known = await this.privileged.run('auth.credentials', (db) => identityRepository.findUser(db, identity.provider, identity.subject));
    if (known) return identity;
    return { ...identity, emailVerified: await this.supabaseEmails.isConfirmed(token, identity.email) };
  }

  async listIdentities(principal: Principal): Promise<IdentityDto[]> {
    if (principal.kind !== 'user') throw PlatformErrors.error('auth.user_required', 'this route acts for a signed-in user; a service key cannot call it');
    return this.privileged.run('auth.credentials', (db) => identityRepository.listForUser(db, principal.userId));
  }

  /**
   * A short-lived token for the Hub -> app handshake. Its audience is the app's, so the API
   * refuses it; the app redeems it once at POST /v1/auth/app-token/redeem.
   */
  async appToken(tx: TenantTx, appCode: string): Promise<AppTokenDto> {
    const p = tx.principal as Extract<Principal, { kind: 'user' }>;
    const { token, expiresIn } = this.tokens.issueAppToken(
      { userId: p.userId, email: p.email, personalOrgId: p.personalOrgId, sessionId: p.sessionId }, appCode, APP_TOKEN_TTL_SECONDS,
    );
    await this.audit.record(tx, { action: 'auth.app_token_issued', entityType: 'app', entityId: appCode, after: { appCode, expiresIn } });
    return { accessToken: token, tokenType: 'Bearer', expiresIn, appCode, redirectQuery: `token=${encodeURIComponent(token)}` };
  }

  /**
   * The app's side of the handshake: checks an app token for that app and uses it up. The session it was minted in must
   * still be live (the check begin_request makes): a sign-out, a revocation or a password reset cancels it. A token
   * minted without a session (an access token that names none) has nothing to end.
   */
  async redeemAppToken(token: string, appCode: string, client: ClientInfo): Promise<AppSessionDto> {
    const claims = this.tokens.verifyAppToken(token, appCode);
    return this.privileged.run('auth.credentials', async (db) => {
      // minted before the person erased their account: the app must not learn who they were
      const account = await userRepository.lockIfNotErased(db, claims.userId);
      if (!account) throw AppError.unauthorized('the app token\'s account has been erased or no longer exists');
      // locked until the redemption commits: a sign-out or revocation under way is waited for, not read past
      if (claims.sessionId && !(await sessionRepository.lockIfLive(db, claims.sessionId, claims.userId))) {
        throw AppError.unauthorized('the session that made this app token has ended');
      }
      const first = await identityRepository.redeemAppToken(db, { jti: claims.jti, userId: claims.userId, appCode, expiresAt: claims.expiresAt });
      if (!first) throw AppError.unauthorized('this app token was already used; open the app from the Hub again');
      await this.audit.recordPrivileged(db, claims.personalOrgId, 'system', {
        action: 'auth.app_token_redeemed', entityType: 'app', entityId: appCode, after: { userId: claims.userId, appCode },
      }, client);
      // the account's address now, not the one the token was minted with (an e-mail change may have been confirmed since)
      return { userId: claims.userId, email: account.email, orgId: claims.orgId, personalOrgId: claims.personalOrgId, appCode };
    });
  }

  /**
   * Rotates a refresh token. A token used once more within REFRESH_GRACE_SECONDS (two tabs
   * refreshing at once) gets the same successor again; used later, it means the token leaked:
   * the whole session (the token family) is revoked.
   */
  async refresh(refreshToken: string, client: ClientInfo): Promise<TokensDto> {
    const tokenHash = hashToken(refreshToken);
    const successor = this.tokens.successorOf(refreshToken);
    const now = this.clock.now();
    const outcome = await this.privileged.run('auth.refresh', async (db) => {
      const t = await sessionRepository.findTokenForRotation(db, tokenHash);
      if (!t) return { error: 'the refresh token is not valid' } as const;
      if (t.revoked_at || t.session_expired || t.token_expired) return { error: 'the session has ended; log in again' } as const;
      if (t.used_at) {
        const withinGrace = now - t.used_at.getTime() <= this.config.auth.refreshGraceSeconds * 1000;
        if (!withinGrace || !(await sessionRepository.hasToken(db, t.session_id, successor.hash))) {
          await sessionRepository.revoke(db, t.session_id, 'refresh_token_reuse');
          // a replayed token means someone else has held the session: their pending e-mail change ends with it, as at a
          // password reset (confirmed later from their mailbox, it gave them the address and the next reset's link). This
          // holds the session's row, which a reset or an erasure locks after the requests: those they hold are theirs
          const emailChanges = await accountTokenRepository.endPendingEmailChanges(db, t.user_id, { skipLocked: true });
          const personalOrgId = await userRepository.personalOrgId(db, t.user_id);
          if (personalOrgId) {
            await this.audit.recordPrivileged(db, personalOrgId, 'system', {
              action: 'auth.refresh_token_reused', entityType: 'session', entityId: t.session_id,
              ...(emailChanges ? { after: { emailChangesCanceled: emailChanges } } : {}),
            }, client);
          }
          return { error: 'the refresh token was already used; the session has been revoked' } as const;
        }
      } else {
        await sessionRepository.markUsed(db, tokenHash, new Date(now));
        await sessionRepository.addToken(db, t.session_id, t.user_id, successor.hash, this.config.auth.refreshTokenTtlDays);
      }
      const user = (await userRepository.findById(db, t.user_id))!;
      const personalOrgId = (await userRepository.personalOrgId(db, t.user_id))!;
      await this.audit.recordPrivileged(db, personalOrgId, this.principalOf(user, personalOrgId), {
        action: 'auth.refreshed', entityType: 'session', entityId: t.session_id, ...(t.used_at ? { after: { graceWindow: true } } : {}),
      }, client);
      return { tokens: this.tokensFor(user, personalOrgId, t.session_id, successor.token) } as const;
    });
    if ('error' in outcome) throw AppError.unauthorized(outcome.error);
    return outcome.tokens;
  }

  /** Log out: revoke the session of the calling access token. */
  async logout(tx: TenantTx): Promise<void> {
    const p = tx.principal;
    if (p.kind !== 'user' || !p.sessionId) return;
    // ended since the request began (an erasure, a password reset, another sign-out: the update waited for it on the
    // session's row, then found it revoked): the answer of a token whose session has ended, not revokeSession's 404
    if (!(await sessionRepository.revoke(tx.db, p.sessionId, 'revoked_by_user'))) throw AppError.unauthorized('the session of this access token has ended; log in again');
    await this.audit.record(tx, { action: 'auth.session_revoked', entityType: 'session', entityId: p.sessionId });
  }

  async listSessions(tx: TenantTx) {
    const p = tx.principal as Extract<Principal, { kind: 'user' }>;
    const rows = await sessionRepository.listForUser(tx.db, p.userId);
    return rows.map((s) => ({ ...s, current: s.id === p.sessionId }));
  }

  async revokeSession(tx: TenantTx, sessionId: string): Promise<void> {
    // RLS: the update only reaches the caller's own sessions
    if (!(await sessionRepository.revoke(tx.db, sessionId, 'revoked_by_user'))) throw AuthErrors.notFound('session', sessionId);
    await this.audit.record(tx, { action: 'auth.session_revoked', entityType: 'session', entityId: sessionId });
  }

  /**
   * Creates a session (refresh-token family) and returns the first token pair. A sign-in from a device this
   * account never used (known-device.repository.ts) emits a security event in the same transaction.
   */
  async startSession(db: Db, user: UserRow, personalOrgId: string, client: ClientInfo, method: 'password' | 'exchange' = 'password'): Promise<TokensDto> {
    const refresh = this.tokens.newRefreshToken();
    const sessionId = await sessionRepository.create(db, {
      userId: user.id, userAgent: client.userAgent, ip: client.ip, ttlDays: this.config.auth.refreshTokenTtlDays, tokenHash: refresh.hash,
      signedInAt: new Date(this.clock.now()),
    });
    const device = await knownDeviceRepository.record(db, user.id, deviceHash(client.userAgent, client.ip));
    if (device.unknown) {
      await emitEvent({ db, orgId: personalOrgId }, 'session.started_from_unknown_device', {
        userId: user.id, sessionId, userAgent: (client.userAgent ?? 'unknown').slice(0, 200), ipPrefix: networkPrefix(client.ip),
        signedInAt: new Date(this.clock.now()).toISOString(), method,
      });
    }
    return this.tokensFor(user, personalOrgId, sessionId, refresh.token);
  }

  private tokensFor(user: UserRow, personalOrgId: string, sessionId: string, refreshToken: string): TokensDto {
    const access = this.tokens.issueAccessToken({ userId: user.id, email: user.email, personalOrgId, sessionId });
    return { accessToken: access.token, tokenType: 'Bearer', expiresIn: access.expiresIn, refreshToken, user, personalOrgId };
  }

  principalOf(user: UserRow, personalOrgId: string): Principal {
    return { kind: 'user', userId: user.id, email: user.email, personalOrgId };
  }
}

function identityInput(identity: ExternalIdentity): IdentityInput {
  return { provider: identity.provider, subject: identity.subject, email: identity.email, emailVerified: identity.emailVerified };
}

/**
 * An erased account signs in nowhere again. First in its transaction, where a sign-in turns into a session or a link:
 * the lock it takes waits for an erasure under way and sees it (a sign-in checked against the account before — its
 * password, its identity — starts nothing), and is taken in the erasure's order (the account's row first).
 */
async function refuseErased(db: Db, userId: string): Promise<void> {
  if (!(await userRepository.lockIfNotErased(db, userId))) throw AppError.unauthorized('this account has been erased');
}

function identityTaken(provider: ExchangeProvider): AppError {
  return AuthErrors.error('auth.identity_taken', `this ${PROVIDER_LABEL[provider]} identity already signs in to another account`);
}

function identityNotFound(provider: string): AppError {
  return AuthErrors.error('auth.identity_not_found', `the signed-in user has no ${provider.slice(0, 40)} identity`);
}

function linkRequired(provider: ExchangeProvider): AppError {
  return AuthErrors.error('auth.link_required',
    `an account with this e-mail already exists and this ${PROVIDER_LABEL[provider]} sign-in cannot be joined to it automatically `
    + '(its e-mail is not verified by the provider); sign in to that account and link this identity with POST /v1/auth/identities');
}
