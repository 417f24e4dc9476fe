import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { performance } from 'node:perf_hooks';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { CallTimer, Clock } from '../../platform/clock/clock.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import type { Db } from '../../platform/database/sql.js';
import { DomainEvents, emitEvent, type DomainEvent } from '../../platform/events/events.js';
import { BodyCut, readBodyAtMost } from '../../platform/http/body-reader.js';
import { outboundFetch, outboundRefusal } from '../../platform/http/outbound.js';
import { sqlState } from '../../platform/errors/database-errors.js';
import { Metrics } from '../../platform/observability/metrics.js';
import { Coalescer } from '../../platform/queue/coalesce.js';
import { AuditService } from '../audit/audit.service.js';
import { SECRET_BOX, SecretOpenError, type SecretBox } from '../integrations/secret-box.js';
import type { WebhookBody } from './event-catalog.js';
import { DISABLE_AFTER_FAILING_MS, MAX_ATTEMPTS, retryDelayMs } from './retry-schedule.js';
import { webhookRepository as repo, type ClaimedMessage } from './webhook.repository.js';
import { signedHeaders } from './webhook-signing.js';
import { secretContext } from './webhooks.service.js';

/** What is kept of an answer's body. */
const RESPONSE_BODY_MAX = 1024;
/** The most an answer's body is waited for once its status has come (what is left of the send timeout, if less). */
const RESPONSE_BODY_WAIT_MS = 1000;
/** A claimed message is due again this long after its send timeout if its outcome was never recorded (the process died). */
const CLAIM_MARGIN_MS = 30_000;

/** How often a worker clears the previous secrets whose rotation overlap has ended. */
const SECRET_SWEEP_MS = 60_000;

/** One event to fan out. */
type FanOut = Parameters<typeof repo.fanOut>[1][number];

interface Outcome {
  statusCode: number | null;
  responseBody: string | null;
  error: string | null;
}

/** One send's outcome, recorded with its batch. */
interface Attempt extends Outcome {
  message: ClaimedMessage;
  at: Date;
  latencyMs: number;
}

/** PostgreSQL's text cannot hold NUL (a receiver may answer anything): it is dropped from what is kept, or the batch's record would fail. */
const storable = (text: string): string => text.replaceAll('\u0000', '');

/**
 * The first RESPONSE_BODY_MAX characters (UTF-16 units) of an answer, reading no more of it than they can take (4 bytes
 * a character). A cut between the two halves of a surrogate pair drops the lone half (it would be stored as U+FFFD).
 * A body that has not ended (or filled the prefix) when `until` aborts keeps what arrived, marked as cut: the outcome
 * is the status line's, a receiver that answered 2xx and keeps its body open has received the message.
 */
async function bodyPrefix(res: Response, until: AbortSignal, waitedMs: number): Promise<string | null> {
  let text: string;
  let cut = false;
  try {
    text = await readBodyAtMost(res, 4 * RESPONSE_BODY_MAX, { over: 'truncate', until });
  } catch (err) {
    if (!(err instanceof BodyCut)) throw err;
    text = err.partial;
    cut = true;
  }
  let kept = storable(text).slice(0, RESPONSE_BODY_MAX);
  if (/[\uD800-\uDBFF]$/.test(kept)) kept = kept.slice(0, -1);
  return cut ? `${kept}${bodyCutNote(waitedMs)}` : kept || null;
}

/** Appended to the kept body of an answer whose body did not end in time (after its status). */
export const bodyCutNote = (waitedMs: number): string => ` [the body did not end within ${waitedMs} ms of the status: cut here]`;

/** The metric's outcome label of one attempt: 2xx success, 410 gone (the endpoint is disabled), no answer in time, any other failure. */
export function deliveryOutcome(statusCode: number | null, timedOut: boolean): 'success' | 'failed' | 'timeout' | 'gone' {
  if (timedOut) return 'timeout';
  if (statusCode !== null && statusCode >= 200 && statusCode < 300) return 'success';
  return statusCode === 410 ? 'gone' : 'failed';
}

/** What the tenant's attempt log says of a secret that cannot be opened (why is in the operators' log: secrets()). */
const SECRET_NOT_OPENED = 'the endpoint\'s signing secret could not be opened';

/** A failed send's error as the attempt log shows it to the tenant. */
const describe = (err: unknown): string => {
  if (err instanceof SecretOpenError) return SECRET_NOT_OPENED;
  const refused = outboundRefusal(err);
  // the name, never the address it resolved to: the log is the tenant's, the addresses are our network's
  if (refused) return refused.forTenant;
  const e = err as Error & { cause?: Error & { code?: string } };
  const cause = e.cause ? `: ${e.cause.code ?? ''} ${e.cause.message}`.replace(/\s+/g, ' ') : '';
  return storable(`${e.message}${cause}`).slice(0, 500);
};

/**
 * Delivers webhooks, at least once:
 * 1. fan-out: the `webhooks` domain-event subscriber writes one message per endpoint that takes the event
 *    (idempotent: unique per event and endpoint), then wakes the worker;
 * 2. the worker claims due messages (FOR UPDATE SKIP LOCKED, committed at once; a claim is a lease past the
 *    send timeout), signs and POSTs each outside any transaction, and records the attempt: 2xx succeeds;
 *    otherwise the next attempt follows the retry schedule, a 410 disables the endpoint at once, and 5 days
 *    of failures disable it (event `webhook_endpoint.disabled`).
 * A process that dies mid-send leaves the claim to run out: another worker (or the next process) sends the
 * message again, with the same webhook-id. The time the schedule runs on is the injected Clock.
 */
@Injectable()
export class WebhookDelivery implements OnModuleInit, OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(WebhookDelivery.name);
  private readonly send: typeof fetch;
  private readonly shutdown = new AbortController();
  private running: Promise<number> | null = null;
  private rerun = false;
  /** Wakes a pass waiting for a send to end: something may be due meanwhile (deliverDue during the pass). */
  private nudge: (() => void) | null = null;
  private sweptSecretsAt = -Infinity;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(SECRET_BOX) private readonly box: SecretBox,
    private readonly privileged: PrivilegedDatabase,
    private readonly events: DomainEvents,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly scheduler: SchedulerRegistry,
    private readonly metrics: Metrics,
    private readonly timer: CallTimer,
  ) {
    // connections to receivers stay open between deliveries (keep-alive), at most as many per receiver as sends in flight
    this.send = outboundFetch(config.outbound.allowPrivateNetworks, { keepAliveTimeoutMs: 30_000, connectionsPerOrigin: config.webhooks.concurrency });
  }

  onModuleInit(): void {
    this.events.subscribe('webhooks', async (event) => {
      await this.fanOut(event);
      if (event.type === 'organization.deleted') await this.organizationDeleted(event);
    });
  }

  /**
   * A deleted organization sends nothing more (an owner's DELETE, or the erasure of its only member): from the deletion's
   * commit on, claimDue claims none of its messages and fanOut queues none; on `organization.deleted` its enabled endpoints
   * are disabled (reason organization_deleted), audited, so the endpoints say why their pending messages are left (the
   * retention job drops them, as any disabled endpoint's). No webhook_endpoint.disabled: nobody is left to tell. The
   * organization's row decides, not the event: one for an organization that is not deleted (a forged outbox row) disables
   * nothing; a second delivery of the event, nothing more.
   */
  async organizationDeleted(event: DomainEvent): Promise<void> {
    await this.privileged.run('webhooks.delivery', async (db) => {
      for (const e of await repo.disableEndpointsOfDeletedOrg(db, event.orgId, new Date(this.clock.now()))) {
        await this.audit.recordPrivileged(db, event.orgId, 'system', {
          action: 'webhooks.endpoint_disabled', entityType: 'webhook_endpoint', entityId: e.id,
          before: { enabled: true }, after: { enabled: false, reason: 'organization_deleted' },
        }, { requestId: event.id });
      }
    });
  }

  onApplicationBootstrap(): void {
    const every = this.config.webhooks.pollIntervalMs;
    if (every > 0) this.scheduler.addInterval('webhooks-delivery', setInterval(() => this.wake(), every));
  }

  /** At shutdown: no new pass; sends in flight are abandoned unrecorded (their claims run out, as if the process had died). */
  async onModuleDestroy(): Promise<void> {
    if (this.scheduler.doesExist('interval', 'webhooks-delivery')) this.scheduler.deleteInterval('webhooks-delivery');
    this.shutdown.abort();
    await this.running?.catch(() => undefined);
  }

  /**
   * One message per enabled endpoint of the event's organization that takes its type. Events fanned out while a
   * previous fan-out is being written go together in one statement (the jobs worker runs many events at once).
   */
  fanOut(event: DomainEvent): Promise<void> {
    const body: WebhookBody = {
      id: `evt_${event.id}`, type: event.type, version: event.version, timestamp: event.occurredAt, organizationId: event.orgId, data: event.payload,
    };
    return this.fanOuts.add({ orgId: event.orgId, eventId: event.id, type: event.type, body, now: new Date(this.clock.now()) });
  }

  private readonly fanOuts = new Coalescer<FanOut>(async (events) => {
    const created = await this.privileged.run('webhooks.delivery', (db) => repo.fanOut(db, events));
    if (created > 0) this.wake();
  });

  /** Starts a delivery pass in the background (when the worker runs by itself: WEBHOOKS_POLL_INTERVAL_MS > 0). */
  private wake(): void {
    if (this.config.webhooks.pollIntervalMs <= 0 || this.shutdown.signal.aborted) return;
    void this.deliverDue().catch((err: Error) => this.logger.warn(`webhook delivery pass failed: ${err.message}`));
  }

  /**
   * Delivers every due message; answers how many attempts were made. A call during a pass makes that pass look once more,
   * at once if slots are free (it does not wait for a send to end: those in flight may be to receivers that do not answer).
   */
  deliverDue(): Promise<number> {
    if (this.running) {
      this.rerun = true;
      this.nudge?.();
      return this.running;
    }
    this.running = this.passes().finally(() => (this.running = null));
    return this.running;
  }

  private async passes(): Promise<number> {
    let total = 0;
    for (;;) {
      this.rerun = false;
      const n = await this.pass();
      total += n;
      if ((n === 0 && !this.rerun) || this.shutdown.signal.aborted) return total;
    }
  }

  /**
   * Sends until nothing is due, as a pool of WEBHOOKS_CONCURRENCY sends: a slot is claimed again as soon as its send
   * ends (once a quarter of the slots is free, or none is sending), so one slow receiver holds up no other send, one
   * endpoint holds at most WEBHOOKS_CONCURRENCY_PER_ENDPOINT slots and one organization at most
   * WEBHOOKS_CONCURRENCY_PER_ORGANIZATION (claimDue): receivers that do not answer leave the other organizations'
   * messages free slots, claimed as soon as they are due (deliverDue nudges a pass waiting on its sends). What has been
   * sent is recorded in batches, one recording at a time, while the sends go on: the worker is not idle while the
   * database writes.
   */
  private async pass(): Promise<number> {
    const { concurrency, concurrencyPerEndpoint, concurrencyPerOrganization, timeoutMs } = this.config.webhooks;
    await this.clearExpiredSecrets().catch((err: Error) => this.logger.warn(`clearing expired webhook secrets failed: ${err.message}`));
    const quarter = Math.max(1, Math.ceil(concurrency / 4));
    const sends = new Set<Promise<void>>();
    const sending = new Map<string, number>(); // endpoint id → sends in flight
    const sendingByOrg = new Map<string, number>(); // organization id → sends in flight
    const count = (map: Map<string, number>, key: string, by: 1 | -1) => {
      const n = (map.get(key) ?? 0) + by;
      if (n > 0) map.set(key, n);
      else map.delete(key);
    };
    let sent: Attempt[] = []; // not yet recorded
    let recording: Promise<void> | null = null;
    const record = () => {
      if (recording || !sent.length) return;
      const batch = sent;
      sent = [];
      // each batch is recorded on its own and never rejects: one batch's failure does not stop the next ones
      recording = this.recordBatch(batch).finally(() => (recording = null));
    };
    let total = 0;
    let nothingDue = false;
    try {
      while (!this.shutdown.signal.aborted) {
        const free = concurrency - sends.size;
        const mayClaim = free > 0 && (free >= quarter || sends.size === 0);
        if (mayClaim && (!nothingDue || this.rerun)) {
          this.rerun = false; // this claim finds what a call of deliverDue before it was for
          const now = new Date(this.clock.now());
          const lease = new Date(now.getTime() + timeoutMs + CLAIM_MARGIN_MS);
          const { claimed, exhausted } = await this.privileged.run('webhooks.delivery',
            (db) => repo.claimDue(db, now, lease, free, MAX_ATTEMPTS, { perEndpoint: concurrencyPerEndpoint, perOrganization: concurrencyPerOrganization, sending, sendingByOrg }));
          for (const m of exhausted) this.logger.warn(`webhook message ${m.id} of organization ${m.org_id} failed: claimed ${MAX_ATTEMPTS} times, its outcome never recorded`);
          if (claimed.length === 0 && exhausted.length === 0) nothingDue = true;
          for (const m of claimed) {
            count(sending, m.endpoint_id, 1);
            count(sendingByOrg, m.org_id, 1);
            const send: Promise<void> = this.attempt(m).then((a) => {
              if (a) sent.push(a);
            }).finally(() => {
              sends.delete(send);
              count(sending, m.endpoint_id, -1);
              count(sendingByOrg, m.org_id, -1);
            });
            sends.add(send);
          }
          total += claimed.length;
          continue;
        }
        if (sends.size === 0) break; // nothing due, nothing sending
        // a send ends (a slot is free again, its endpoint and organization may be below their limits again), or, slots
        // being free, deliverDue is called: a message due meanwhile does not wait behind sends to silent receivers
        await Promise.race([...sends, ...(mayClaim ? [new Promise<void>((resolve) => (this.nudge = resolve))] : [])]);
        this.nudge = null;
        nothingDue = false;
        record();
      }
    } finally {
      await Promise.all(sends); // at shutdown they end at once, unrecorded (their claims run out)
      for (;;) {
        await recording;
        if (!sent.length) break;
        record();
      }
    }
    return total;
  }

  /**
   * One transaction records a batch. A failure is logged, never thrown: the other batches are recorded all the same,
   * and this one's claims run out, so its messages are sent again (at most MAX_ATTEMPTS claims: claimDue then fails them).
   * A deadlock (40P01: a request changing one of the batch's messages or endpoints) is retried once: the batch holds
   * other organizations' messages too, which would all be sent again.
   */
  private async recordBatch(attempts: Attempt[]): Promise<void> {
    if (!attempts.length) return;
    for (let run = 1; ; run++) {
      try {
        await this.privileged.run('webhooks.delivery', (db) => this.record(db, attempts));
        return;
      } catch (err) {
        const { code } = sqlState(err);
        if (code === '40P01' && run === 1) {
          this.logger.warn(`recording webhook attempts deadlocked with a concurrent change; retrying once (messages ${attempts.map((a) => a.message.id).join(', ')})`);
          continue;
        }
        this.logger.error(`recording webhook attempts failed (${code ?? 'no SQLSTATE'}: ${(err as Error).message}) for messages ${attempts.map((a) => a.message.id).join(', ')}`);
        return;
      }
    }
  }

  /** At most once a SECRET_SWEEP_MS: a rotation's previous secret is not kept (sealed, but a secret) past its overlap. */
  private async clearExpiredSecrets(): Promise<void> {
    const now = this.clock.now();
    if (now - this.sweptSecretsAt < SECRET_SWEEP_MS) return;
    this.sweptSecretsAt = now;
    await this.privileged.run('webhooks.delivery', async (db) => {
      for (const e of await repo.clearExpiredPreviousSecrets(db, new Date(now))) {
        await this.audit.recordPrivileged(db, e.org_id, 'system', {
          action: 'webhooks.previous_secret_cleared', entityType: 'webhook_endpoint', entityId: e.id,
          before: { previousSecretExpiresAt: new Date(e.previous_secret_expires_at).toISOString() }, after: { previousSecretExpiresAt: null },
        });
      }
    });
  }

  /**
   * The endpoint's signing secrets. One that cannot be opened (its key left SECRETS_KEYS before the secrets were
   * re-sealed, or the row was tampered with) is logged for the operators, with why; the tenant's attempt log says only
   * that it could not be opened (our key ids are not theirs to see). The current one: SecretOpenError, nothing is sent.
   * The previous one (a rotation's overlap): sent signed with the current one alone, which the receiver has.
   */
  private secrets(m: ClaimedMessage, now: Date): string[] {
    const context = secretContext(m.org_id, m.endpoint_id);
    const open = (sealed: unknown, which: 'current' | 'previous'): string | null => {
      try {
        return this.box.openFor<string>(sealed, context);
      } catch (err) {
        if (!(err instanceof SecretOpenError)) throw err;
        const outcome = which === 'current' ? 'not sent' : 'sent signed with the current secret alone';
        this.logger.warn(`webhook endpoint ${m.endpoint_id} of organization ${m.org_id}: its ${which} signing secret cannot be opened (${err.message}); message ${m.id} ${outcome}`);
        if (which === 'current') throw err;
        return null;
      }
    };
    const secrets = [open(m.secret, 'current') as string];
    if (m.previous_secret && m.previous_secret_expires_at && new Date(m.previous_secret_expires_at) > now) {
      const previous = open(m.previous_secret, 'previous');
      if (previous !== null) secrets.push(previous);
    }
    return secrets;
  }

  /** Sends one message; null when the process is shutting down (nothing is recorded: the claim runs out). */
  private async attempt(m: ClaimedMessage): Promise<Attempt | null> {
    const now = new Date(this.clock.now());
    const { timeoutMs } = this.config.webhooks;
    const started = performance.now();
    let outcome: Outcome;
    let timedOut = false;
    const timeout = new AbortController();
    const stopTimer = this.timer.start(timeoutMs, () => timeout.abort());
    try {
      const body = JSON.stringify(m.body);
      // the signed timestamp is the wall clock's: receivers compare it with theirs
      const headers = { 'content-type': 'application/json', 'user-agent': 'OmniZen-Webhooks/1.0', ...signedHeaders(m.id, body, this.secrets(m, now), new Date()) };
      const res = await this.send(m.url, { method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.any([timeout.signal, this.shutdown.signal]) });
      // the status decides the outcome: its body is read under a budget of its own, and a body that does not end in it
      // is kept as far as it came (a 2xx stays a success); the request's timeout no longer applies
      stopTimer();
      const bodyWaitMs = Math.max(0, Math.min(RESPONSE_BODY_WAIT_MS, timeoutMs - (performance.now() - started)));
      const bodyDone = new AbortController();
      const stopBodyTimer = this.timer.start(Math.round(bodyWaitMs), () => bodyDone.abort());
      try {
        outcome = { statusCode: res.status, responseBody: await bodyPrefix(res, bodyDone.signal, Math.round(bodyWaitMs)), error: null };
      } catch {
        if (this.shutdown.signal.aborted) return null;
        // the body failed (the connection broke): the status had come, the outcome is its
        outcome = { statusCode: res.status, responseBody: null, error: null };
      } finally {
        stopBodyTimer();
      }
    } catch (err) {
      if (this.shutdown.signal.aborted) return null; // shutting down: the claim runs out and another process sends it
      timedOut = timeout.signal.aborted;
      const refused = outboundRefusal(err);
      if (refused) this.logger.warn(`webhook message ${m.id} of organization ${m.org_id}: ${refused.message}`);
      outcome = { statusCode: null, responseBody: null, error: timedOut ? `timed out after ${timeoutMs} ms` : describe(err) };
    } finally {
      stopTimer();
    }
    this.metrics.webhookDeliveries.inc({ outcome: deliveryOutcome(outcome.statusCode, timedOut) });
    return { message: m, at: now, latencyMs: Math.max(0, Math.round(performance.now() - started)), ...outcome };
  }

  /**
   * A batch's attempts, the messages' next states and the endpoints' health, set-based: 2xx succeeds; otherwise
   * the retry schedule, except that a 410 disables the endpoint at once, and so do 5 days of failures.
   */
  private async record(db: Db, attempts: Attempt[]): Promise<void> {
    const ok = (a: Attempt) => a.statusCode !== null && a.statusCode >= 200 && a.statusCode < 300;
    await repo.insertAttempts(db, attempts.map((a) => ({
      orgId: a.message.org_id, messageId: a.message.id, at: a.at, succeeded: ok(a),
      statusCode: a.statusCode, latencyMs: a.latencyMs, responseBody: a.responseBody, error: a.error,
    })));
    const key = (a: Attempt) => `${a.message.org_id}/${a.message.endpoint_id}`;
    // every endpoint this recording may update (health, disabling), locked at once in one order (lockEndpoints)
    await repo.lockEndpoints(db, [...new Map(attempts.map((a) => [key(a), { orgId: a.message.org_id, id: a.message.endpoint_id }])).values()]);
    const healthy = new Set(attempts.filter(ok).map(key));
    const failed = new Map(attempts.filter((a) => !ok(a) && a.statusCode !== 410 && !healthy.has(key(a))).map((a) => [key(a), a]));
    await repo.endpointsSucceeded(db, [...new Map(attempts.filter(ok).map((a) => [key(a), { orgId: a.message.org_id, id: a.message.endpoint_id }])).values()]);
    const failingSince = await repo.endpointsFailed(db, [...failed.values()].map((a) => ({ orgId: a.message.org_id, id: a.message.endpoint_id, at: a.at })));
    const disable = new Map<string, { attempt: Attempt; reason: 'gone' | 'failing'; since?: Date }>();
    for (const a of attempts) {
      if (a.statusCode === 410) disable.set(key(a), { attempt: a, reason: 'gone' });
    }
    for (const [k, a] of failed) {
      const since = failingSince.get(a.message.endpoint_id);
      if (!disable.has(k) && since && a.at.getTime() - since.getTime() >= DISABLE_AFTER_FAILING_MS) disable.set(k, { attempt: a, reason: 'failing', since });
    }
    await repo.settleMessages(db, attempts.map((a) => {
      const delay = ok(a) || disable.has(key(a)) ? null : retryDelayMs(a.message.attempts);
      const status = ok(a) ? 'succeeded' : delay === null ? 'failed' : 'pending';
      return { orgId: a.message.org_id, id: a.message.id, attempts: a.message.attempts, status, at: a.at, next: delay === null ? null : new Date(a.at.getTime() + delay) };
    }));
    for (const { attempt: a, reason, since } of disable.values()) {
      const endpoint = await repo.disableEndpoint(db, a.message.org_id, a.message.endpoint_id, reason, a.at);
      if (!endpoint) continue; // another worker disabled it already
      this.logger.warn(`webhook endpoint ${endpoint.id} of organization ${a.message.org_id} disabled: ${reason}`);
      // the URL's origin only: its path and query can hold a credential, and the event reaches other endpoints (webhooks.events.ts)
      await emitEvent({ db, orgId: a.message.org_id }, 'webhook_endpoint.disabled', {
        endpointId: endpoint.id, urlOrigin: new URL(endpoint.url).origin, reason, ...(since ? { failingSince: since.toISOString() } : {}),
      }, 2, a.at);
      await this.audit.recordPrivileged(db, a.message.org_id, 'system', {
        action: 'webhooks.endpoint_disabled', entityType: 'webhook_endpoint', entityId: endpoint.id,
        before: { enabled: true }, after: { enabled: false, reason, statusCode: a.statusCode },
      });
    }
  }
}
