import { Injectable, Logger } from '@nestjs/common';
import { context, trace, TraceFlags } from '@opentelemetry/api';
import type { Db, TenantTx } from '../database/database.service.js';
import { traceJob } from '../observability/tracing.js';

export interface Job {
  /** outbox row id: handlers use it to make their effect happen once */
  id: string;
  orgId: string;
  topic: string;
  payload: Record<string, unknown>;
  /**
   * The W3C traceparent of the sampled span the job was enqueued under (a traced request's, a traced job's): the job's
   * own span continues that trace (traceJob). Kept in the outbox row's payload under TRACE_PARENT_KEY, never given to
   * the handler in `payload`.
   */
  traceParent?: string;
}

/** Where the outbox row's payload keeps the job's traceparent (jobWithTrace takes it out again). */
export const TRACE_PARENT_KEY = '_traceparent';

/** The payload as stored: with the active sampled span's traceparent, when there is one (tracing on, a sampled request). */
function storedPayload(payload: Record<string, unknown>): string {
  const span = trace.getSpanContext(context.active());
  if (!span || (span.traceFlags & TraceFlags.SAMPLED) === 0) return JSON.stringify(payload);
  return JSON.stringify({ ...payload, [TRACE_PARENT_KEY]: `00-${span.traceId}-${span.spanId}-01` });
}

/** A stored payload as the job's: its traceparent taken out of it. */
export function jobPayload(stored: Record<string, unknown>): { payload: Record<string, unknown>; traceParent?: string } {
  if (!(TRACE_PARENT_KEY in stored)) return { payload: stored };
  const { [TRACE_PARENT_KEY]: traceParent, ...payload } = stored;
  return typeof traceParent === 'string' ? { payload, traceParent } : { payload };
}

export type JobHandler = (job: Job) => Promise<void>;

/**
 * The backoff after a job's `tries`-th failed try (core.outbox.tries): 1 s, doubling, at most an hour (the twelve first
 * tries take about 68 minutes, then one an hour). Bull's backoff is the first four; the Bull worker's last failure of a
 * hand-off backs off the same (outbox.repository recordError computes it in SQL). A hand-off Redis refused backs off by
 * the row's claims instead (nothing was tried).
 */
export const retryDelaySeconds = (tries: number): number => Math.min(3600, 2 ** Math.min(tries - 1, 12));

/**
 * How many times a job is tried (core.outbox.tries: its handler started, in-process or in Bull's worker; a claim, a job
 * waiting in Bull or a hand-off Redis refused is no try) before it is given up as dead, unless its topic says otherwise:
 * about six and a half days of retries (retryDelaySeconds), time to mend an outage or a credential the job is refused for.
 */
export const DEFAULT_JOB_MAX_ATTEMPTS = 168;

export interface JobOptions {
  /**
   * Tries before the job is dead (never relayed again, its error and payload kept in core.outbox for an operator;
   * omnizen_outbox_dead); DEFAULT_JOB_MAX_ATTEMPTS when not given.
   */
  maxAttempts?: number;
  /**
   * The payload is personal data (a PostHog erasure's distinct ids: an erased person's addresses), sealed with this box
   * (the secret box, SECRETS_KEYS): written sealed (JobRegistry.sealed), opened in memory for the handler only, emptied
   * in the statement that records the job done; Bull's copy holds none of it (the worker reads it from the outbox row,
   * OutboxRelay.withStoredPayload). A dead job keeps it sealed, for an operator's retry, until the retention purge.
   * Without SECRETS_KEYS (development) it is written in the clear until done (a warning at boot).
   */
  personalData?: PayloadSealer;
}

/** Seals a personal payload at rest, bound to a context (SecretBox is one). */
export interface PayloadSealer {
  readonly configured: boolean;
  sealFor(value: unknown, context: string): unknown;
  openFor<T = unknown>(sealed: unknown, context: string): T;
}

/** Where a stored payload keeps its sealed content (JobOptions.personalData). */
export const SEALED_PAYLOAD_KEY = '$sealed';

/** What a personal payload is sealed for: its organization and topic (one copied to another row of either does not open). */
const payloadContext = (orgId: string, topic: string) => `outbox_payload:${orgId.toLowerCase()}:${topic}`;

/** A personal payload of `topic` (organization `orgId`) as it is stored: sealed under `box`'s active key. */
const sealedWith = (box: PayloadSealer, orgId: string, topic: string, payload: Record<string, unknown>) =>
  ({ [SEALED_PAYLOAD_KEY]: box.sealFor(payload, payloadContext(orgId, topic)) });

/**
 * A stored payload of `topic` (organization `orgId`) sealed under `box`'s active key (npm run secrets:rotate), its
 * content unchanged: one sealed under another key is opened and sealed again; one in the clear (written before its topic
 * was personal data, or without SECRETS_KEYS) is sealed, its traceparent kept beside it as enqueue keeps it. Throws the
 * box's error when none of its keys opens a sealed one.
 */
export function resealedPayload(box: PayloadSealer, orgId: string, topic: string, stored: Record<string, unknown>): Record<string, unknown> {
  if (!(SEALED_PAYLOAD_KEY in stored)) {
    const { [TRACE_PARENT_KEY]: traceParent, ...payload } = stored;
    return { ...(traceParent === undefined ? {} : { [TRACE_PARENT_KEY]: traceParent }), ...sealedWith(box, orgId, topic, payload) };
  }
  const context = payloadContext(orgId, topic);
  return { ...stored, [SEALED_PAYLOAD_KEY]: box.sealFor(box.openFor(stored[SEALED_PAYLOAD_KEY], context), context) };
}

/** Topic → handler. Modules register their handlers at init; handlers must be idempotent. */
@Injectable()
export class JobRegistry {
  private readonly handlers = new Map<string, JobHandler>();
  private readonly caps = new Map<string, number>();
  private readonly sealers = new Map<string, PayloadSealer>();
  private readonly logger = new Logger(JobRegistry.name);

  register(topic: string, handler: JobHandler, options: JobOptions = {}): void {
    if (this.handlers.has(topic)) throw new Error(`a handler for job topic ${topic} is already registered`);
    const { maxAttempts = DEFAULT_JOB_MAX_ATTEMPTS, personalData } = options;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new Error(`job topic ${topic}: maxAttempts must be a positive integer`);
    this.handlers.set(topic, handler);
    this.caps.set(topic, maxAttempts);
    if (personalData) {
      this.sealers.set(topic, personalData);
      if (!personalData.configured) this.logger.warn(`SECRETS_KEYS is not set: the payloads of job topic ${topic} (personal data) are stored in the clear until done`);
    }
  }

  /** Whether `topic`'s payloads are personal data (JobOptions.personalData): kept out of Bull, emptied once done. */
  holdsPersonalData(topic: string): boolean {
    return this.sealers.has(topic);
  }

  /** The topics registered whose payloads are personal data. */
  personalDataTopics(): string[] {
    return [...this.sealers.keys()];
  }

  /** The payload of a job of `topic` for organization `orgId` as it is to be written (enqueue): sealed when its topic says so. */
  sealed(topic: string, orgId: string, payload: Record<string, unknown>): Record<string, unknown> {
    const box = this.sealers.get(topic);
    return box?.configured ? sealedWith(box, orgId, topic, payload) : payload;
  }

  /** The job as its handler sees it: a sealed payload opened (in memory only). */
  private opened(job: Job): Job {
    const box = this.sealers.get(job.topic);
    // one written in the clear (no SECRETS_KEYS then) runs as it is
    if (!box || !(SEALED_PAYLOAD_KEY in job.payload)) return job;
    try {
      return { ...job, payload: box.openFor<Record<string, unknown>>(job.payload[SEALED_PAYLOAD_KEY], payloadContext(job.orgId, job.topic)) };
    } catch (err) {
      // a failed try (retried, then dead): its key left SECRETS_KEYS, or the row was tampered with
      throw new Error(`job ${job.id} (${job.topic}): its sealed payload does not open: ${(err as Error).message}`);
    }
  }

  /** The tries a job of `topic` gets before it is dead. */
  maxAttempts(topic: string): number {
    return this.caps.get(topic) ?? DEFAULT_JOB_MAX_ATTEMPTS;
  }

  async run(job: Job): Promise<void> {
    const handler = this.handlers.get(job.topic);
    if (!handler) {
      this.logger.warn(`no handler for job topic ${job.topic}; job ${job.id} dropped`);
      return;
    }
    // a span of its own, in the trace of the request that enqueued it (when that one was traced)
    await traceJob(job, () => handler(this.opened(job)));
  }
}

/**
 * Writes a job in the business transaction: it is relayed only if that transaction commits; due `delaySeconds` after
 * now (a handler's own retry schedule: a job it writes for a later attempt).
 */
export async function enqueue(tx: TenantTx | { db: Db; orgId: string }, topic: string, payload: Record<string, unknown> = {}, delaySeconds = 0): Promise<void> {
  await tx.db.$executeRaw`INSERT INTO core.outbox (org_id, topic, payload, available_at)
    VALUES (${tx.orgId}::uuid, ${topic}, ${storedPayload(payload)}::jsonb, now() + make_interval(secs => ${delaySeconds}::double precision))`;
}

/** The same, its row sent with the transaction's COMMIT (not awaited; a failed insert rolls the transaction back). */
export function enqueueAtCommit(tx: TenantTx | { db: Db; orgId: string }, topic: string, payload: Record<string, unknown> = {}): void {
  tx.db.$executeRawAtCommit`INSERT INTO core.outbox (org_id, topic, payload) VALUES (${tx.orgId}::uuid, ${topic}, ${storedPayload(payload)}::jsonb)`;
}

