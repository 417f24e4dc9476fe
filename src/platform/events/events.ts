import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import type { Db, TenantTx } from '../database/database.service.js';
import { enqueue, enqueueAtCommit, JobRegistry, type Job } from '../queue/jobs.js';

/**
 * Domain events: what a module says happened ("invoice.issued"), written to the outbox in the business
 * transaction, so an event exists exactly when its change committed. Consumers (webhooks, notifications,
 * agent triggers) subscribe here; every event reaches every subscriber at least once, so subscribers are
 * idempotent per event id (the outbox row id).
 *
 * Each module declares the types it emits, with a versioned JSON Schema of the payload, in its own
 * `<module>.events.ts` as `DomainEventType[]`; the webhooks module's catalog lists them all.
 */
export interface DomainEventType {
  /** e.g. `invoice.issued`: `<entity>.<past-tense verb>`, lower snake case */
  type: string;
  /** payload version, 1 first; a breaking payload change is a new version */
  version: number;
  /** the notification category it belongs to */
  category: 'security' | 'billing' | 'finance' | 'ai' | 'organization';
  description: string;
  /** JSON Schema (draft 2020-12) of `payload` */
  payloadSchema: Record<string, unknown>;
  /** an example payload that validates against payloadSchema */
  example: Record<string, unknown>;
}

/** One delivered event, as subscribers receive it. */
export interface DomainEvent {
  /** stable id: the outbox row id */
  id: string;
  orgId: string;
  type: string;
  version: number;
  /** when the business transaction wrote it (ISO 8601) */
  occurredAt: string;
  payload: Record<string, unknown>;
}

export type DomainEventSubscriber = (event: DomainEvent) => Promise<void>;

/** The outbox topic all domain events travel on. */
export const DOMAIN_EVENT_TOPIC = 'domain_event';

/** What an outbox row of a domain event carries. */
const envelope = (type: string, payload: Record<string, unknown>, version: number, occurredAt: Date) =>
  ({ type, version, occurredAt: occurredAt.toISOString(), payload });

/** Writes a domain event in the business transaction (nothing is emitted if it rolls back). Payloads hold no secrets. */
export async function emitEvent(
  tx: TenantTx | { db: Db; orgId: string },
  type: string,
  payload: Record<string, unknown>,
  version = 1,
  occurredAt: Date = new Date(),
): Promise<void> {
  await enqueue(tx, DOMAIN_EVENT_TOPIC, envelope(type, payload, version, occurredAt));
}

/**
 * The same, its outbox row sent with the transaction's COMMIT rather than awaited (nothing in a request reads its event
 * back; a failed insert rolls the transaction back): for a hot path whose transaction holds locks others wait on, such
 * as a posting's balance rows.
 */
export function emitEventAtCommit(tx: TenantTx | { db: Db; orgId: string }, type: string, payload: Record<string, unknown>, version = 1, occurredAt: Date = new Date()): void {
  enqueueAtCommit(tx, DOMAIN_EVENT_TOPIC, envelope(type, payload, version, occurredAt));
}

/**
 * The outbox row of a domain event (its topic and the JSON it carries), for a statement that writes it itself together
 * with a value only the database knows yet (an invoice's number, taken in the same statement).
 */
export function domainEventRow(type: string, payload: Record<string, unknown>, version = 1, occurredAt: Date = new Date()): { topic: string; payload: string } {
  return { topic: DOMAIN_EVENT_TOPIC, payload: JSON.stringify(envelope(type, payload, version, occurredAt)) };
}

/** Subscribers by name; the one outbox handler of DOMAIN_EVENT_TOPIC hands each event to every subscriber. */
@Injectable()
export class DomainEvents implements OnModuleInit {
  private readonly logger = new Logger(DomainEvents.name);
  private readonly subscribers = new Map<string, DomainEventSubscriber>();

  constructor(private readonly jobs: JobRegistry) {}

  onModuleInit(): void {
    this.jobs.register(DOMAIN_EVENT_TOPIC, (job) => this.dispatch(job));
  }

  /** `name` identifies the subscriber (e.g. 'webhooks'); registering a name twice is a programming error. */
  subscribe(name: string, subscriber: DomainEventSubscriber): void {
    if (this.subscribers.has(name)) throw new Error(`a domain-event subscriber named ${name} is already registered`);
    this.subscribers.set(name, subscriber);
  }

  /**
   * Runs every subscriber, one after the other (at once they would take three of the privileged pool's connections
   * per event: many events routed together then wait past the connect timeout); if any fails the job fails and is
   * retried (all subscribers run again: they are idempotent).
   */
  async dispatch(job: Job): Promise<void> {
    const p = job.payload as { type: string; version?: number; occurredAt?: string; payload?: Record<string, unknown> };
    const event: DomainEvent = {
      id: job.id, orgId: job.orgId, type: p.type, version: p.version ?? 1,
      occurredAt: p.occurredAt ?? new Date().toISOString(), payload: p.payload ?? {},
    };
    const failures: string[] = [];
    for (const [name, subscriber] of this.subscribers) {
      try {
        await subscriber(event);
      } catch (err) {
        failures.push(`${name}: ${(err as Error).message}`);
      }
    }
    if (failures.length) {
      this.logger.warn(`domain event ${event.type} ${event.id}: ${failures.length} subscriber(s) failed (${failures.join('; ')})`);
      throw new Error(`domain event ${event.id}: ${failures.join('; ')}`);
    }
  }
}
