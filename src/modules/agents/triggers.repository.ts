import { sql, type Selectable } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { qb, type DB } from '../../platform/database/query-builder.js';
import type { TriggerDto } from './agents.dto.js';

// SQL of agent automation: triggers and their firings (the privileged reads run on the path 'agents.triggers').

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

export interface TriggerRow {
  org_id: string;
  id: string;
  agent_id: string;
  kind: string;
  cron: string | null;
  event_type: string | null;
  prompt: string;
  created_by: string;
  last_fired_at: Date | null;
  created_at: Date;
}

const toTrigger = (r: Selectable<DB['ai.agent_triggers']>): TriggerDto => ({
  id: r.id, agentId: r.agent_id, kind: r.kind, cron: r.cron, eventType: r.event_type, prompt: r.prompt, createdBy: r.created_by,
  status: r.status, lastError: r.last_error, lastFiredAt: iso(r.last_fired_at), createdAt: iso(r.created_at)!,
});

export const triggersRepository = {
  async list(db: Db, orgId: string, agentId: string): Promise<TriggerDto[]> {
    return (await db.run(qb.selectFrom('ai.agent_triggers').selectAll().where('org_id', '=', orgId).where('agent_id', '=', agentId).orderBy('created_at'))).map(toTrigger);
  },

  async get(db: Db, orgId: string, agentId: string, id: string): Promise<TriggerDto | undefined> {
    const [r] = await db.run(qb.selectFrom('ai.agent_triggers').selectAll().where('org_id', '=', orgId).where('agent_id', '=', agentId).where('id', '=', id));
    return r && toTrigger(r);
  },

  async create(db: Db, orgId: string, t: { agentId: string; kind: string; cron: string | null; eventType: string | null; prompt: string; createdBy: string }): Promise<TriggerDto> {
    const [r] = await db.run(qb.insertInto('ai.agent_triggers').values({
      org_id: orgId, agent_id: t.agentId, kind: t.kind, cron: t.cron, event_type: t.eventType, prompt: t.prompt, created_by: t.createdBy,
    }).returningAll());
    return toTrigger(r);
  },

  async remove(db: Db, orgId: string, id: string): Promise<number> {
    return db.runCount(qb.deleteFrom('ai.agent_triggers').where('org_id', '=', orgId).where('id', '=', id));
  },

  /**
   * Privileged: the active event triggers of several (organization, event type) pairs in one query: the events the
   * jobs worker runs at once are looked up together, and an event no trigger matches costs no transaction of its own.
   */
  async eventTriggersOf(db: Db, pairs: { orgId: string; eventType: string }[]): Promise<TriggerRow[]> {
    if (!pairs.length) return [];
    const orgIds = pairs.map((p) => p.orgId);
    const types = pairs.map((p) => p.eventType);
    return db.run(qb.selectFrom('ai.agent_triggers').select(['org_id', 'id', 'agent_id', 'kind', 'cron', 'event_type', 'prompt', 'created_by', 'last_fired_at', 'created_at'])
      .where('kind', '=', 'event').where('status', '=', 'active')
      .where(sql<boolean>`(org_id, event_type) IN (SELECT * FROM unnest(${orgIds}::uuid[], ${types}::text[]))`)
      .orderBy('created_at').orderBy('id')) as Promise<TriggerRow[]>;
  },

  /** Privileged: every active schedule trigger. */
  async scheduleTriggers(db: Db): Promise<TriggerRow[]> {
    return db.run(qb.selectFrom('ai.agent_triggers').select(['org_id', 'id', 'agent_id', 'kind', 'cron', 'event_type', 'prompt', 'created_by', 'last_fired_at', 'created_at'])
      .where('kind', '=', 'schedule').where('status', '=', 'active')) as Promise<TriggerRow[]>;
  },

  /** Privileged: the e-mail of the trigger's member (the claims carry it). */
  async userEmail(db: Db, userId: string): Promise<string | undefined> {
    const [r] = await db.run(qb.selectFrom('core.User').select('email').where('id', '=', userId));
    return r?.email;
  },

  /** Privileged: stops a trigger whose member may no longer run it. */
  async stop(db: Db, orgId: string, id: string, error: string): Promise<void> {
    await db.run(qb.updateTable('ai.agent_triggers').set({ status: 'stopped', last_error: error }).where('org_id', '=', orgId).where('id', '=', id));
  },

  /** As the member: records a firing; false when this event or slot already fired (at most once). */
  async recordFiring(db: Db, orgId: string, triggerId: string, fireKey: string, runId: string | null, at: Date): Promise<boolean> {
    const n = await db.runCount(qb.insertInto('ai.trigger_firings').values({ org_id: orgId, trigger_id: triggerId, fire_key: fireKey, run_id: runId })
      .onConflict((oc) => oc.columns(['org_id', 'trigger_id', 'fire_key']).doNothing()));
    if (n === 0) return false;
    await db.run(qb.updateTable('ai.agent_triggers').set({ last_fired_at: at }).where('org_id', '=', orgId).where('id', '=', triggerId)
      .where((eb) => eb.or([eb('last_fired_at', 'is', null), eb('last_fired_at', '<', at)])));
    return true;
  },

  async firings(db: Db, orgId: string, triggerId: string): Promise<{ fireKey: string; runId: string | null }[]> {
    const rows = await db.run(qb.selectFrom('ai.trigger_firings').select(['fire_key', 'run_id']).where('org_id', '=', orgId).where('trigger_id', '=', triggerId).orderBy(sql`created_at`));
    return rows.map((r) => ({ fireKey: r.fire_key, runId: r.run_id }));
  },
};
