import { Injectable } from '@nestjs/common';
import type { Db } from '../../platform/database/database.service.js';
import { billingRepository } from './billing.repository.js';

/** Counts what an organization currently uses of one counted feature, inside the caller's transaction. */
export type UsageCounter = (ctx: { db: Db; orgId: string }) => Promise<number>;

/**
 * (app, feature) → counter. Billing registers the core ones (users, workspaces); a module that owns
 * a counted thing registers its own at init, e.g.
 *   usage.register('omnizen', 'ai_agents', ({ db }) => agentRepository.count(db));
 * and marks its create route with @ConsumesLimit('omnizen', 'ai_agents').
 */
@Injectable()
export class UsageCounters {
  private readonly counters = new Map<string, UsageCounter>();

  register(app: string, feature: string, counter: UsageCounter): void {
    const key = `${app}/${feature}`;
    if (this.counters.has(key)) throw new Error(`a usage counter for ${key} is already registered`);
    this.counters.set(key, counter);
  }

  get(app: string, feature: string): UsageCounter | undefined {
    return this.counters.get(`${app}/${feature}`);
  }
}

/** Members plus pending invitations (hub.seat_usage() sees invitations even for non-admin readers). */
export const seatUsage: UsageCounter = ({ db }) => billingRepository.seatUsage(db);
