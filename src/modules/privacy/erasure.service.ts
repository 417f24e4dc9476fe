import { Injectable } from '@nestjs/common';
import type { Principal } from '../../platform/auth/principal.js';
import { Clock } from '../../platform/clock/clock.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import type { Db, RequestMeta } from '../../platform/database/database.service.js';
import { AuditService } from '../audit/audit.service.js';
import { PasswordHasher } from '../auth/password-hasher.js';
import { LoginThrottle } from '../auth/login-throttle.service.js';
import { SignInFailureAudit } from '../auth/sign-in-failure-audit.js';
import type { ClientInfo } from '../auth/auth.service.js';
import { erasedEmail } from '../auth/user.repository.js';
import type { ErasureDto } from './privacy.dto.js';
import { erasureRepository, organizationsErasedWith, RECEIVED_MARGIN_MS, walkCovers, type AnalyticsWalk, type LocatedPerson, type MembershipFacts } from './erasure.repository.js';
import { organizationRepository } from '../organizations/organization.repository.js';
import { emailSubject, userSubject } from './audit-sealing.js';
import { personalDataKeyRepository } from './personal-data-key.repository.js';
import { PrivacyErrors } from './privacy.errors.js';
import { translateDatabaseError } from '../../platform/errors/database-errors.js';
import { DataExportService } from './data-export.service.js';
import { emitEvent } from '../../platform/events/events.js';
import { RunsService, runFinishedAudit, runFinishedEvent } from '../agents/runs.service.js';
import { analyticsRepository } from '../analytics/analytics.repository.js';
import { distinctIdsOfPerson, PostHogForwarder } from '../analytics/posthog.forwarder.js';
import { OutboxRelay } from '../../platform/queue/outbox-relay.service.js';
import { MAX_AGE_MS } from '../analytics/analytics.service.js';
import { sessionRepository } from '../auth/session.repository.js';
import { AppError } from '../../platform/errors/app-error.js';
import { RETRYABLE_ERRORS } from '../../platform/errors/database-errors.js';

/** How recent the sign-in (of the access token's session) must be to erase without the password. */
export const RECENT_SIGN_IN_SECONDS = 300;

/**
 * Analytics events a batch of the erasure's walk reads (erasureRepository.eraseAnalyticsBatch): a value scan of ~10 µs an
 * event, well under any statement timeout, a transaction each.
 */
export const ANALYTICS_ERASURE_BATCH = 20_000;
const DAY_MS = 86_400_000;
/**
 * Times one erasure starts its walk over when its transaction finds it does not cover the person (an address proven or an
 * organization joined meanwhile, or too old: walkCovers) before it answers 503: the person retries.
 */
export const MAX_WALK_RESTARTS = 2;

/**
 * A person's erasure (right to erasure), on the privileged path privacy.erasure: it crosses every organization the person
 * belongs to. The core."User" row stays (other apps reference its id) with a unique, undeliverable pseudonym for the
 * e-mail and no name. In three steps: a transaction checks that they may be erased (their credential, no organization
 * left without an owner) and begins the walk of the analytics events of their organizations (core.erasure_prepasses);
 * the walk, in batches of its own transactions, redacts the events naming them (millions of events: one statement over
 * them all outlasted the statement timeout, every time); then one transaction erases everything else, and the events
 * that arrived since the walk began. A retry after a failure resumes the walk where it stopped. The walk changes their
 * events before that transaction commits: one that refuses then (another owner left meanwhile, a credential no longer
 * holds) leaves their events pseudonymized and the walk's row, which the retention job deletes after a week.
 */
@Injectable()
export class ErasureService {
  /** the walk's batch size (tests set a smaller one) */
  analyticsBatch = ANALYTICS_ERASURE_BATCH;
  /** called after each batch of the walk has committed (tests: an event arriving meanwhile, an erasure cut short) */
  afterAnalyticsBatch?: (walk: AnalyticsWalk) => Promise<void>;

  constructor(
    private readonly privileged: PrivilegedDatabase,
    private readonly hasher: PasswordHasher,
    private readonly throttle: LoginThrottle,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly exports: DataExportService,
    private readonly runs: RunsService,
    private readonly posthog: PostHogForwarder,
    private readonly relay: OutboxRelay,
    private readonly failures: SignInFailureAudit,
  ) {}

  async eraseMe(principal: Principal, password: string | undefined, client: ClientInfo): Promise<ErasureDto> {
    if (principal.kind !== 'user') throw PrivacyErrors.error('privacy.user_required', 'this route acts for a signed-in person; a service key cannot call it');
    const { userId } = principal;
    // a password guess here counts like a login attempt (a stolen access token must not be a password oracle), and is
    // audited as one (SignInFailureAudit), its lockout too
    if (password !== undefined) await this.throttle.reserveLogin(principal.email, client.ip).catch((err) => { throw this.failures.lockedOut(err, principal.email, 'erasure', client); });
    // whether they may be erased, before the walk changes anything: a refusal here leaves their events as they were (one
    // by the erasure's transaction, after the walk, does not: their events stay pseudonymized, docs/privacy.md)
    const checked = await this.privileged.run('privacy.erasure', async (db) => {
      const person = await erasureRepository.lockUser(db, userId);
      if (!person || person.email === erasedEmail(userId)) throw PrivacyErrors.error('privacy.already_erased', 'this person has been erased already');
      await this.reauthenticate(db, principal, person.passwordHash, password, client);
      refuseSoleOwner(await erasureRepository.memberships(db, userId));
      const emails = await erasureRepository.provenEmails(db, userId);
      const orgIds = await erasureRepository.organizationsOf(db, userId, emails);
      // (one left by an attempt before that no longer covers them starts over)
      await erasureRepository.startAnalyticsWalk(db, userId, orgIds, emails, this.occurredFrom());
      // (a sign-out racing the request's start, committed by now, does not stop it: only one during the walk does, below)
      const sessionLive = principal.sessionId ? await sessionRepository.isLive(db, principal.sessionId, userId) : false;
      return { passwordHash: person.passwordHash, sessionLive };
    });
    // answers undefined when the walk no longer covers them: it has been started over, to be walked again
    const erase = () => this.privileged.run('privacy.erasure', async (db) => {
      const person = await erasureRepository.lockUser(db, userId);
      if (!person || person.email === erasedEmail(userId)) throw PrivacyErrors.error('privacy.already_erased', 'this person has been erased already');
      // the credential checked above still holds (the walk took a while): the session, live then, ended since (a sign-out,
      // a password reset committed during the walk) refuses as the access token's check would; a password changed since is
      // checked again. (Not locked: a sign-out still under way now is ordered after the erasure, as before the walk)
      if (checked.sessionLive && !(await sessionRepository.isLive(db, principal.sessionId!, userId))) {
        throw AppError.unauthorized('the session of this access token has ended; log in again');
      }
      if (person.passwordHash !== checked.passwordHash) await this.reauthenticate(db, principal, person.passwordHash, password, client);
      // the walk locked: a concurrent retry's batch waits for this erasure
      const walk = await erasureRepository.analyticsWalk(db, userId);

      // their organizations locked before their members are counted: an invitee joining (core.accept_invitation takes the
      // row FOR SHARE) waits, or is counted; another owner erasing themselves waits and counts this erasure's result
      await organizationRepository.lockLiveOfMember(db, userId);
      // only addresses they proved: an unverified one may be another person's (an invitee's), whose key must stay
      const emails = await erasureRepository.provenEmails(db, userId);
      // then the rows a role change, a removal or a revoke locks before sealing its audit under their keys: before the keys go
      await erasureRepository.lockRowsOf(db, userId, emails);
      const memberships = await erasureRepository.memberships(db, userId);
      refuseSoleOwner(memberships);
      // before their memberships end, their invitations go and their keys are shredded: the bound of the erasure's run
      // lookups and of its value scans
      const orgIds = await erasureRepository.organizationsOf(db, userId, emails);
      // the walk searched the events it passed for what it knew when it began: an address proven or an organization joined
      // since, or a walk of long ago (this transaction would scan every event received since it began), and it is started
      // over (nothing else changed yet)
      if (!walkCovers(walk, orgIds, emails)) {
        await erasureRepository.restartAnalyticsWalk(db, userId, orgIds, emails, this.occurredFrom());
        return undefined;
      }
      if (!walk.done) return undefined;
      // the personal organization, and business ones nobody else belongs to, go with the person
      const deleted = organizationsErasedWith(memberships);
      const left = memberships.filter((m) => !deleted.includes(m.orgId)).map((m) => m.orgId);

      // not even the client's address in what it audits: it would be new personal data about the erased person
      const meta = { requestId: client.requestId };
      // and the database's own audit rows of it (the keys its memberships' end revokes) name the request too
      if (client.requestId) await erasureRepository.publishRequestId(db, client.requestId);
      // the events its walk did: only those received since it began are scanned again
      const located: LocatedPerson = {
        userId, emails, orgIds, pseudonym: walk.pseudonym,
        analyticsWalked: { orgIds: walk.orgIds, receivedFrom: new Date(walk.startedAt.getTime() - RECEIVED_MARGIN_MS), occurredFrom: walk.occurredFrom },
      };
      // crypto-shredding: the keys that sealed their data in audit snapshots go (the audit rows stay as written)
      const keysShredded = await personalDataKeyRepository.deleteSubjects(db, [userSubject(userId), ...emails.map(emailSubject)]);
      const sessionsRevoked = await erasureRepository.revokeSessions(db, userId);
      const exportsExpired = await this.exports.expireOfPerson(db, userId, deleted);
      // the last owner taken away meanwhile by a role change (memberships_keep_owner, 23514): the sole-owner refusal
      await translateDatabaseError(erasureRepository.endMemberships(db, userId, left), {
        '23514': ({ message }) => (message?.includes('at least one owner')
          ? PrivacyErrors.error('privacy.sole_owner',
            'you are the only owner of an organization that has other members: make another member owner (or delete the organization) first')
          : undefined),
      });
      await erasureRepository.deleteOrganizations(db, deleted);
      // the billing module cancels their subscriptions (the person's personal plans with the personal organization)
      for (const m of memberships.filter((x) => deleted.includes(x.orgId))) {
        await emitEvent({ db, orgId: m.orgId }, 'organization.deleted', { organizationId: m.orgId, accountType: m.accountType, reason: 'erased' });
      }
      // the runs of the organizations that go (the person's, those of API keys, of members who left, naming nobody) stop
      // as the organization's deletion stops them (OrganizationsService.delete): cancelled, audited with reason
      // organization_deleted, no event, their executions here cut once this commits.
      // First: the person's own cancellation below would finish theirs and clear their mid-call marks (then not found
      // here), so it is left the organizations that live on
      const runsCancelled: Awaited<ReturnType<typeof erasureRepository.cancelRuns>> = [];
      for (const orgId of deleted) {
        const tx = { db, principal, orgId, role: null, workspaceId: null, meta: meta as RequestMeta, scopes: null };
        runsCancelled.push(...(await this.runs.cancelRunsOfDeletedOrganization(tx)).map((run) => ({ orgId, run, midCall: false, orgDeleted: true })));
      }
      // their runs still running elsewhere stop before their content goes (a late call adds no content), each audited as a
      // cancel is and its event emitted as the cancel emits it (RunsService.cancel: left to an execution with a call in
      // flight); none into an organization deleted before: its subscribers heard organization.deleted last
      const ownCancelled = await erasureRepository.cancelRuns(db, { userId, emails, orgIds }, new Date(this.clock.now()));
      for (const { orgId, run, midCall, orgDeleted } of ownCancelled) {
        if (!midCall && !orgDeleted) await emitEvent({ db, orgId }, ...runFinishedEvent(run));
        await this.audit.recordPrivileged(db, orgId, principal, runFinishedAudit(run), meta);
      }
      runsCancelled.push(...ownCancelled);
      const inviterNamesCleared = await erasureRepository.clearInviterNames(db, userId);
      // the analytics roll-up waited for and held off until this commits: one whose snapshot predates this erasure's
      // commit would write their user id back into core.analytics_daily_users after the catalog deleted it
      await analyticsRepository.lockRollUps(db);
      // the ids their analytics events naming them went to PostHog under (a visitor's, `mailto:<e-mail>`), before the catalog clears them
      // (those its walk read before it cleared them too)
      const namedInAnalytics = [...walk.posthogIds, ...(await erasureRepository.analyticsIdsNaming(db, located))];
      // with the organizations that go, their knowledge base and the content of their AI runs (the catalog's `erased-org` rows);
      // the walk's row goes too (core.erasure_prepasses)
      const { counts: rows, deletedJobIds } = await erasureRepository.applyCatalog(db, { ...located, erasedOrgIds: deleted });
      await erasureRepository.eraseAuthUser(db, userId, erasedEmail(userId));
      // the events forwarded to PostHog (now or before: when its deletion is configured): their persons deleted with their
      // events by a job an hour after this commits (their last events have reached PostHog), retried until PostHog has taken it
      // (at most POSTHOG_ERASURE_MAX_ATTEMPTS times, then dead)
      const posthogErasure = await this.posthog.erasePersons({ db, orgId: principal.personalOrgId }, distinctIdsOfPerson(userId, emails, orgIds, namedInAnalytics));

      // audited without personal data: ids and counts only
      const erasedAt = new Date(this.clock.now()).toISOString();
      const after = {
        deletedOrganizationIds: deleted, leftOrganizationIds: left, sessionsRevoked, exportsExpired: exportsExpired.count, rowsByTable: rows, inviterNamesCleared,
        keysShredded, runsCancelled: runsCancelled.length, posthogErasure,
      };
      await this.audit.recordPrivileged(db, principal.personalOrgId, principal, { action: 'user.erased', entityType: 'user', entityId: userId, after }, meta);
      for (const orgId of left) {
        await this.audit.recordPrivileged(db, orgId, principal, { action: 'membership.erased', entityType: 'membership', entityId: userId }, meta);
      }
      return { done: { userId, erasedAt, deletedOrganizationIds: deleted, leftOrganizationIds: left, sessionsRevoked }, exportFiles: exportsExpired.files, deletedJobIds };
    });
    await this.walkAnalytics(userId);
    let outcome = await erase();
    for (let restarts = 1; !outcome; restarts++) {
      // (addresses proven or organizations joined faster than it walks, or a walk longer than WALK_FRESH_MS)
      if (restarts > MAX_WALK_RESTARTS) {
        throw AppError.unavailable('database_timeout', 'the erasure could not walk your organizations\' analytics events in time; retry later', RETRYABLE_ERRORS.database_timeout.retryAfterSeconds);
      }
      await this.walkAnalytics(userId);
      outcome = await erase();
    }
    // the archives go once the erasure has committed (a rolled-back erasure keeps them)
    await this.exports.deleteFiles(outcome.exportFiles);
    // and the deleted jobs' copies in the jobs queue (their payload; best effort, logged: the queue's sweep removes what is left)
    await this.relay.removeFromQueue(outcome.deletedJobIds);
    if (password !== undefined) await this.throttle.loginSucceeded(principal.email, client.ip);
    return outcome.done;
  }

  /**
   * The walk of the analytics events of their organizations, batch by batch, each in a transaction of its own, until it is
   * done (one a retry resumes where the last committed batch left it), for the organizations and addresses it stores.
   */
  private async walkAnalytics(userId: string): Promise<void> {
    for (;;) {
      const walk = await this.privileged.run('privacy.erasure', async (db) => {
        const current = await erasureRepository.analyticsWalk(db, userId);
        if (!current || current.done) return undefined;
        const person: LocatedPerson = { userId, emails: current.emails, orgIds: current.orgIds, pseudonym: current.pseudonym };
        return (await erasureRepository.eraseAnalyticsBatch(db, person, current, this.analyticsBatch)).walk;
      });
      if (!walk) return;
      await this.afterAnalyticsBatch?.(walk);
      if (walk.done) return;
    }
  }

  /**
   * The earliest date an event received from now on may have (the analytics service refuses older ones), a day of the
   * app instances' clocks apart allowed.
   */
  private occurredFrom(): Date {
    return new Date(this.clock.now() - MAX_AGE_MS - DAY_MS);
  }

  private async reauthenticate(db: Db, principal: Extract<Principal, { kind: 'user' }>, passwordHash: string | null, password: string | undefined, client: ClientInfo): Promise<void> {
    if (password !== undefined) {
      const ok = passwordHash ? (await this.hasher.verify(passwordHash, password)).ok : await this.hasher.verifyDummy(password);
      if (!ok) {
        // audited apart from this transaction, which the refusal rolls back
        this.failures.record(principal.email, 'auth.login_failed', 'erasure', client);
        throw PrivacyErrors.error('privacy.password_incorrect', 'the password is not this account\'s');
      }
      return;
    }
    // the session's sign-in, not the token's iat: a refresh issues a fresh token without any credential
    const signedInAt = principal.sessionId ? await erasureRepository.signedInAt(db, principal.sessionId, principal.userId) : undefined;
    const ageSeconds = signedInAt === undefined ? Infinity : (this.clock.now() - signedInAt.getTime()) / 1000;
    if (!(ageSeconds <= RECENT_SIGN_IN_SECONDS)) {
      throw PrivacyErrors.error('privacy.recent_sign_in_required',
        `send your password, or sign in again: erasure without the password needs a sign-in (password or token exchange) within the last ${RECENT_SIGN_IN_SECONDS / 60} minutes; refreshing the access token does not count`);
    }
  }
}

/** Refuses the erasure of the only owner of a business organization with other members: it would be left without one. */
function refuseSoleOwner(memberships: MembershipFacts[]): void {
  const blocking = memberships.filter((m) => m.role === 'owner' && m.owners === 1 && m.members > 1 && m.accountType === 'business');
  if (blocking.length) {
    throw PrivacyErrors.error('privacy.sole_owner',
      'you are the only owner of an organization that has other members: make another member owner (or delete the organization) first',
      { organizationIds: blocking.map((m) => m.orgId) });
  }
}
