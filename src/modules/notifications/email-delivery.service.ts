import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { Clock } from '../../platform/clock/clock.js';
import type { Db } from '../../platform/database/database.service.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { enqueue, JobRegistry, type Job } from '../../platform/queue/jobs.js';
import { scheduleFromConfig } from '../../platform/queue/schedule.js';
import { renderEmail, type EmailTemplate } from './email-templates.js';
import { Mailer } from './mailer.service.js';
import { effectivePreference } from './notification-preferences.js';
import { NOT_A_MEMBER, notificationRepository as repo, SWITCHED_OFF } from './notification.repository.js';
import type { NotificationCategory } from './notification.dto.js';
import { redactAddresses } from './redact-addresses.js';

/** The outbox topic of one e-mail: `{ deliveryId }`; a later attempt's job also carries `after` (see send). */
export const EMAIL_JOB = 'notifications.email';
/**
 * How long a refused (4xx: greylisting, a full mailbox, a server restarting) e-mail waits before each next attempt:
 * such refusals last minutes, and the outbox's own backoff (seconds) would spend every attempt within half a minute.
 */
export const EMAIL_RETRY_DELAYS_SECONDS = [60, 5 * 60, 30 * 60, 2 * 3600] as const;
/** Sending attempts of one e-mail before it stays `failed` (the outbox would retry up to its cap of tries). */
export const MAX_EMAIL_ATTEMPTS = EMAIL_RETRY_DELAYS_SECONDS.length + 1;
/**
 * How long an attempt owns its 'sending' row: a run of the same job meanwhile (relayed again because its outbox claim
 * ran out) leaves it alone and is retried later. Far longer than one SMTP conversation may last (the mailer gives up
 * after 10 s without a connection or greeting, 30 s of silence), so only an attempt cut off by a crash is resumed.
 */
export const EMAIL_SENDING_LEASE_MS = 5 * 60_000;

/**
 * The templates mailed to their user's address at the time they are sent (a notice, a digest): a user who changed their
 * address since gets them at the new one. The others belong to the address they were queued for (a link that proves
 * it, a change told to the old address).
 */
const TO_CURRENT_ADDRESS: ReadonlySet<string> = new Set<EmailTemplate>(['notice', 'digest']);

export interface QueuedEmail {
  userId: string | null;
  to: string;
  template: EmailTemplate;
  category: NotificationCategory;
  /** what the template shows; never a token (see EmailLinks) */
  data: Record<string, unknown>;
  eventId?: string;
  /** a notice addressed to the recipient in person (a person route): see notificationRepository.insertNotification */
  toPerson?: boolean;
}

/**
 * Writes one e-mail (delivery row 'queued' and its job) in the caller's transaction, which must run as
 * service_role (a privileged path): it is sent only if that transaction commits.
 */
export async function queueEmail(tx: { db: Db; orgId: string }, email: QueuedEmail): Promise<string> {
  const id = await repo.insertDelivery(tx.db, { orgId: tx.orgId, ...email, status: 'queued' });
  await enqueue(tx, EMAIL_JOB, { deliveryId: id });
  return id;
}

/** The delivery a link is minted for. */
export interface DeliveryForLink {
  orgId: string;
  id: string;
  userId: string | null;
  to: string;
  data: Record<string, unknown>;
}

/**
 * Makes the link (with a fresh token) of an e-mail when it is sent, in the sending job's transaction: only
 * the token's hash is stored (by the minter), so neither the outbox, the job nor the delivery row holds it.
 * Undefined: the link cannot be made any more (the invitation was revoked, the request expired): not sent.
 */
export type LinkMinter = (db: Db, delivery: DeliveryForLink) => Promise<string | undefined>;

/**
 * Locks the row of the delivery's user, for a minter whose link's row references it (a reset token: its insert
 * key-share locks the user's row). The job takes it before the delivery's row, in the order of a person's erasure
 * (their row, then the rows it deletes: their tokens, then their deliveries); delivery first, the two deadlocked.
 * False: the user can receive no link any more (erased); the delivery is not sent.
 */
export type LinkUserLock = (db: Db, userId: string) => Promise<boolean>;

/** Minters by template, registered by the modules that own the tokens (auth, organizations). */
@Injectable()
export class EmailLinks {
  private readonly minters = new Map<string, { mint: LinkMinter; lockUser?: LinkUserLock }>();

  register(template: EmailTemplate, minter: LinkMinter, options: { lockUser?: LinkUserLock } = {}): void {
    if (this.minters.has(template)) throw new Error(`a link minter for ${template} is already registered`);
    this.minters.set(template, { mint: minter, lockUser: options.lockUser });
  }

  get(template: string): LinkMinter | undefined {
    return this.minters.get(template)?.mint;
  }

  /** The lock a delivery of `template` takes on its user's row before its own (see LinkUserLock), if any. */
  userLock(template: string): LinkUserLock | undefined {
    return this.minters.get(template)?.lockUser;
  }
}

/**
 * Sends queued e-mails (one job each, bounded retries: MAX_EMAIL_ATTEMPTS) and the hourly digests. The
 * SMTP conversation happens between two short transactions: the first marks the attempt (and when it began) and mints
 * the link, the second records the server's answer. A process killed in between leaves the row 'sending'; the outbox
 * runs the job again and, once the attempt's lease (EMAIL_SENDING_LEASE_MS) has passed, it is sent again (at least
 * once). A run of the job while the attempt is still live fails and is retried: the e-mail is not sent twice.
 */
@Injectable()
export class EmailDeliveryService implements OnModuleInit {
  private readonly logger = new Logger(EmailDeliveryService.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly privileged: PrivilegedDatabase,
    private readonly jobs: JobRegistry,
    private readonly links: EmailLinks,
    private readonly mailer: Mailer,
    private readonly clock: Clock,
    private readonly scheduler: SchedulerRegistry,
  ) {}

  onModuleInit(): void {
    this.jobs.register(EMAIL_JOB, (job) => this.send(job));
    scheduleFromConfig(this.scheduler, 'notification-digests', this.config.mail.digestCron, () => this.flushDigests(), this.logger);
  }

  private appUrl(path: string): string {
    return `${this.config.billing.appUrl}${path}`;
  }

  /**
   * The job of one e-mail. A refusal that may pass (4xx) while attempts remain writes the next attempt's job, due
   * after EMAIL_RETRY_DELAYS_SECONDS, with the delivery back to 'queued'. A job names the attempts made before it
   * (`after`; the first job none) and does nothing once its attempt has been made (a job relayed twice sends once).
   */
  async send(job: Job): Promise<void> {
    const deliveryId = String(job.payload.deliveryId);
    const after = typeof job.payload.after === 'number' ? job.payload.after : 0;
    const prepared = await this.privileged.run('notifications.deliver', async (db) => {
      // a link that references the user: the user's row first, then the delivery's (LinkUserLock)
      const userGone = this.mailer.configured && !(await this.lockUserOf(db, job.orgId, deliveryId));
      const d = await repo.lockDelivery(db, job.orgId, deliveryId);
      if (!d || !['queued', 'sending'].includes(d.status)) return undefined;
      // this job's attempt: not made yet, or begun and cut off (the process ended while sending; relayed again), that
      // one or the attempt that resumed it (each resumption counts one more attempt: cut off again, it is resumed again)
      if (d.attempts !== after && !(d.status === 'sending' && d.attempts > after)) return undefined;
      const now = this.clock.now();
      if (d.status === 'sending' && d.sending_since && now - d.sending_since.getTime() < EMAIL_SENDING_LEASE_MS) {
        // begun by another run that may still be talking to the SMTP server: its outcome decides; this run is retried
        throw new Error(`e-mail ${d.id} is being sent by another run since ${d.sending_since.toISOString()}; it is resumed only after ${EMAIL_SENDING_LEASE_MS / 1000} s`);
      }
      if (d.status === 'sending' && d.attempts >= MAX_EMAIL_ATTEMPTS) {
        // every attempt was made, the last one cut off: failed, as when the last one is refused
        const response = `not sent again: its last attempt (${d.attempts} of ${MAX_EMAIL_ATTEMPTS}) was cut off while sending; whether it arrived is unknown`;
        await repo.setDelivery(db, d.org_id, d.id, { status: 'failed', smtpResponse: response });
        this.logger.warn(`e-mail ${d.id} failed for good: ${redactAddresses(response)}`);
        return undefined;
      }
      // a notice queued before its recipient left the organization: their inbox no longer shows it, so it is not mailed
      // either (dropped as the digest drops one: dropDigestItemsOfFormerOrgs), unless it was addressed to them in person
      if (d.template === 'notice' && !(await repo.recipientMayRead(db, d))) {
        await repo.setDelivery(db, d.org_id, d.id, { status: 'not_sent', smtpResponse: NOT_A_MEMBER });
        return undefined;
      }
      // a notice or digest whose category's e-mail its recipient switched off since it was queued (a retry, a late job)
      if (d.user_id !== null && TO_CURRENT_ADDRESS.has(d.template) && !(await this.emailWanted(db, d.user_id, d.category))) {
        await repo.setDelivery(db, d.org_id, d.id, { status: 'not_sent', smtpResponse: SWITCHED_OFF });
        return undefined;
      }
      let to = d.to_address;
      if (d.user_id !== null && TO_CURRENT_ADDRESS.has(d.template)) {
        const current = await repo.currentAddress(db, d.user_id);
        if (current === undefined) {
          await repo.setDelivery(db, d.org_id, d.id, { status: 'not_sent', smtpResponse: 'not sent: the recipient\'s account is gone (erased)' });
          return undefined;
        }
        to = current;
      }
      const data: Record<string, unknown> = { ...(d.data as Record<string, unknown>), preferencesLink: this.appUrl('/settings/notifications') };
      const base = { orgId: d.org_id, id: d.id, to, template: d.template as EmailTemplate };
      if (!this.mailer.configured) return { ...base, data, attempts: d.attempts };
      const minter = this.links.get(d.template);
      if (minter) {
        const link = userGone ? undefined : await minter(db, { orgId: d.org_id, id: d.id, userId: d.user_id, to: d.to_address, data });
        if (!link) {
          await repo.setDelivery(db, d.org_id, d.id, { status: 'failed', smtpResponse: 'not sent: the link can no longer be made (revoked, used, expired or its person erased)' });
          return undefined;
        }
        data.link = link;
      } else {
        data.link ??= this.appUrl('/notifications');
      }
      await repo.setDelivery(db, d.org_id, d.id, { status: 'sending', attempt: { at: new Date(now), to } });
      return { ...base, data, attempts: d.attempts + 1 };
    });
    if (!prepared) return;
    const message = renderEmail(prepared.template, prepared.data);
    const outcome = await this.mailer.send(prepared.to, message);
    const retry = outcome.kind === 'failed' && !outcome.permanent && prepared.attempts < MAX_EMAIL_ATTEMPTS;
    await this.privileged.run('notifications.deliver', (db) => {
      switch (outcome.kind) {
        case 'sent':
          return repo.setDelivery(db, prepared.orgId, prepared.id, { status: 'sent', smtpResponse: outcome.response, messageId: outcome.messageId, sent: true });
        case 'not_sent':
          return repo.setDelivery(db, prepared.orgId, prepared.id, { status: 'not_sent', smtpResponse: 'SMTP_URL is not set: logged, not sent' });
        case 'failed':
          return repo.setDelivery(db, prepared.orgId, prepared.id, { status: retry ? 'queued' : 'failed', smtpResponse: outcome.response })
            .then(() => retry ? enqueue({ db, orgId: prepared.orgId }, EMAIL_JOB, { deliveryId: prepared.id, after: prepared.attempts },
              EMAIL_RETRY_DELAYS_SECONDS[prepared.attempts - 1]) : undefined);
      }
    });
    // the delivery's id names it (its row holds the recipient), never the address itself
    if (outcome.kind === 'not_sent') this.logger.log(`e-mail ${prepared.id} (${prepared.template}) not sent: SMTP_URL is not set`);
    if (retry) {
      const delay = EMAIL_RETRY_DELAYS_SECONDS[prepared.attempts - 1];
      this.logger.warn(`e-mail ${prepared.id} not accepted (attempt ${prepared.attempts} of ${MAX_EMAIL_ATTEMPTS}), next in ${delay} s: ${redactAddresses((outcome as { response: string }).response)}`);
      return;
    }
    // the server's reply quotes the recipient often (550 5.1.1 <bob@…>): logged without the addresses' local parts
    if (outcome.kind === 'failed') this.logger.warn(`e-mail ${prepared.id} failed for good after ${prepared.attempts} attempt(s): ${redactAddresses(outcome.response)}`);
  }

  /**
   * Takes the lock on the delivery's user that its link's minter asks for (LinkUserLock), before the delivery's own;
   * false when that user can receive no link any more. True when there is nothing to lock (no such minter, no user, no
   * delivery: the locked read that follows decides).
   */
  private async lockUserOf(db: Db, orgId: string, deliveryId: string): Promise<boolean> {
    const recipient = await repo.deliveryRecipient(db, orgId, deliveryId);
    const lockUser = recipient?.user_id ? this.links.userLock(recipient.template) : undefined;
    return lockUser ? lockUser(db, recipient!.user_id!) : true;
  }

  /** Whether the user's e-mail of `category` is on now (their preference as it is, not as it was when a mail was queued). */
  private async emailWanted(db: Db, userId: string, category: string): Promise<boolean> {
    const stored = await repo.preferencesOf(db, [userId], category);
    return effectivePreference(stored.get(userId), category as NotificationCategory, 'email').enabled;
  }

  /**
   * Sends every digest whose hour is over: all its pending notices in one e-mail, queued in the
   * transaction that marks them digested (so each notice is in exactly one digest); none when the recipient has switched
   * the category's e-mail off meanwhile (its notices not_sent, SWITCHED_OFF). Returns how many.
   */
  async flushDigests(now: Date = new Date(this.clock.now())): Promise<number> {
    return this.privileged.run('notifications.deliver', async (db) => {
      const due = await repo.dueDigests(db, now, 200);
      for (const digest of due) {
        // an organization's notices reach only its current members (as their inbox: core.notifications' policy)
        await repo.dropDigestItemsOfFormerOrgs(db, digest.user_id, digest.category);
        // the category's e-mail switched off since its notices were queued: none is mailed
        if (!(await this.emailWanted(db, digest.user_id, digest.category))) {
          await repo.dropDigestItems(db, digest.user_id, digest.category, SWITCHED_OFF);
          await repo.closeDigest(db, digest.id);
          continue;
        }
        const items = (await repo.takeDigestItems(db, digest.user_id, digest.category, digest.id))
          .sort((a, b) => a.created_at.getTime() - b.created_at.getTime());
        await repo.closeDigest(db, digest.id);
        if (items.length === 0) continue;
        // the user's address now, not one a notice was queued for (the user may have changed it since); the sending job
        // reads it again. An erased user gets none.
        const to = await repo.currentAddress(db, digest.user_id);
        if (to === undefined) continue;
        await queueEmail({ db, orgId: items[0].org_id }, {
          userId: digest.user_id, to, template: 'digest', category: digest.category as NotificationCategory,
          data: {
            category: digest.category, count: items.length,
            items: items.map((i) => ({ title: (i.data as { title?: string }).title ?? '', body: (i.data as { body?: string }).body ?? '' })),
          },
        });
      }
      return due.length;
    });
  }
}
