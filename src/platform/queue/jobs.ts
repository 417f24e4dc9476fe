import { Injectable, Logger } from '@nestjs/common';
import type { Db, TenantTx } from '../database/database.service.js';

export interface Job {
  /** outbox row id: handlers use it to make their effect happen once */
  id: string;
  orgId: string;
  topic: string;
  payload: Record<string, unknown>;
}

export type JobHandler = (job: Job) => Promise<void>;

/** Topic → handler. Modules register their handlers at init; handlers must be idempotent. */
@Injectable()
export class JobRegistry {
  private readonly handlers = new Map<string, JobHandler>();
  private readonly logger = new Logger(JobRegistry.name);

  register(topic: string, handler: JobHandler): void {
    if (this.handlers.has(topic)) throw new Error(`a handler for job topic ${topic} is already registered`);
    this.handlers.set(topic, handler);
  }

  async run(job: Job): Promise<void> {
    const handler = this.handlers.get(job.topic);
    if (!handler) {
      this.logger.warn(`no handler for job topic ${job.topic}; job ${job.id} dropped`);
      return;
    }
    await handler(job);
  }
}

/**
 * Writes a job in the business transaction: it is relayed only if that transaction commits; due `delaySeconds` after
 * now (a handler's own retry schedule: a job it writes for a later attempt).
 */
export async function enqueue(tx: TenantTx | { db: Db; orgId: string }, topic: string, payload: Record<string, unknown> = {}, delaySeconds = 0): Promise<void> {
  await tx.db.$executeRaw`INSERT INTO core.outbox (org_id, topic, payload, available_at)
    VALUES (${tx.orgId}::uuid, ${topic}, ${JSON.stringify(payload)}::jsonb, now() + make_interval(secs => ${delaySeconds}::double precision))`;
}

/** The same, its row sent with the transaction's COMMIT (not awaited; a failed insert rolls the transaction back). */
export function enqueueAtCommit(tx: TenantTx | { db: Db; orgId: string }, topic: string, payload: Record<string, unknown> = {}): void {
  tx.db.$executeRawAtCommit`INSERT INTO core.outbox (org_id, topic, payload) VALUES (${tx.orgId}::uuid, ${topic}, ${JSON.stringify(payload)}::jsonb)`;
}

