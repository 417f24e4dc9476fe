import { AgentErrors } from './agents.errors.js';
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleInit } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { CronTime } from 'cron';
import { ADMIN_ROLES, type Principal } from '../../platform/auth/principal.js';
import { Clock } from '../../platform/clock/clock.js';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { DatabaseService, type TenantTx } from '../../platform/database/database.service.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { AppError } from '../../platform/errors/app-error.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { DomainEvents, type DomainEvent } from '../../platform/events/events.js';
import { Coalescer } from '../../platform/queue/coalesce.js';
import { AuditService } from '../audit/audit.service.js';
import type { CreateTriggerDto, TriggerDto } from './agents.dto.js';
import { agentsRepository } from './agents.repository.js';
import { RunsService } from './runs.service.js';
import { triggersRepository as repo, type TriggerRow } from './triggers.repository.js';

interface TriggerLookup {
  orgId: string;
  eventType: string;
  /** filled by the lookup */
  triggers: TriggerRow[];
}

/** This event or slot already fired: the run is not created (at most once). */
class AlreadyFired extends Error {}

/**
 * Whether a firing's refusal stops its trigger: the member left (404) or lost the role (403), or the plan lost the
 * feature (402 billing.feature_not_in_plan). A read-only subscription or a reached limit (the other 402s) passes with a
 * payment or a new month, as a paused agent with a resume: those firings are skipped.
 */
const stopsTrigger = (err: AppError) => err.status === 403 || err.status === 404 || err.code === 'billing.feature_not_in_plan';

/** The first slot of `time` after `from`; undefined if none ever comes (the cron library gives up searching: 30 February). */
function nextSlot(time: CronTime, from: Date): Date | undefined {
  try {
    return time.getNextDateFrom(from).toJSDate();
  } catch {
    return undefined;
  }
}

/** The latest slot of `cron` (UTC) after `from` and at or before `now`, or undefined. */
export function dueSlot(cron: string, from: Date, now: Date): Date | undefined {
  const time = new CronTime(cron, 'UTC');
  let due: Date | undefined;
  let cursor = from;
  for (let i = 0; i < 10_000; i++) {
    const next = time.getNextDateFrom(cursor).toJSDate();
    if (next.getTime() > now.getTime()) break;
    due = next;
    cursor = next;
  }
  return due;
}

/**
 * Automation (plan feature ai_automation): triggers run an agent on a schedule or on a domain event, with the
 * claims of the member who set the trigger, re-checked at every firing (membership, role owner/admin, the
 * plan's feature): a member who left or lost the role, or a plan without the feature, stops the trigger with an
 * error. A paused agent, a missing provider key or a read-only subscription (states an owner or admin undoes) skips the firing and leaves the
 * trigger active. A firing, run or skipped, is recorded under a unique key (event id, or scheduled slot): at most
 * one run per event or slot.
 */
@Injectable()
export class AutomationService implements OnModuleInit, OnApplicationBootstrap {
  private readonly logger = new Logger(AutomationService.name);

  constructor(
    private readonly events: DomainEvents,
    private readonly privileged: PrivilegedDatabase,
    private readonly db: DatabaseService,
    private readonly runs: RunsService,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly scheduler: SchedulerRegistry,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onModuleInit(): void {
    this.events.subscribe('agents', (event) => this.onEvent(event));
  }

  onApplicationBootstrap(): void {
    const every = this.config.ai.scheduleTickMs;
    if (every > 0) {
      this.scheduler.addInterval('agents-schedule', setInterval(() => void this.tick().catch((e: Error) => this.logger.warn(`agent schedule tick failed: ${e.message}`)), every));
    }
  }

  // ---------------------------------------------------------------- management (owner, admin; feature-gated by the route)
  async list(tx: TenantTx, agentId: string): Promise<TriggerDto[]> {
    if (!(await agentsRepository.getAgent(tx.db, tx.orgId, agentId))) throw AgentErrors.notFound('agent', agentId);
    return repo.list(tx.db, tx.orgId, agentId);
  }

  async create(tx: TenantTx, agentId: string, dto: CreateTriggerDto): Promise<TriggerDto> {
    if (tx.principal.kind !== 'user') throw PlatformErrors.error('auth.user_required', 'a trigger runs with a person\'s claims: a service key cannot set one');
    if (!(await agentsRepository.getAgent(tx.db, tx.orgId, agentId))) throw AgentErrors.notFound('agent', agentId);
    const field = dto.kind === 'schedule' ? 'cron' : 'eventType';
    if (!dto[field] || (dto.kind === 'schedule' ? dto.eventType : dto.cron)) {
      throw PlatformErrors.error('validation_failed', `a ${dto.kind} trigger needs ${field} (and only it)`, [{ field, problems: [`${field} is required for kind ${dto.kind}`] }]);
    }
    if (dto.cron) {
      let time: CronTime;
      try {
        if (dto.cron.trim().split(/\s+/).length !== 5) throw new Error('5 fields expected');
        time = new CronTime(dto.cron, 'UTC');
      } catch (err) {
        throw PlatformErrors.error('validation_failed', `cron "${dto.cron}" is not a 5-field cron expression: ${(err as Error).message}`, [{ field: 'cron', problems: ['not a cron expression'] }]);
      }
      // a date that never comes (30 February): every tick would search for its next slot in vain (dueSlot)
      if (!nextSlot(time, new Date(this.clock.now()))) {
        throw PlatformErrors.error('validation_failed', `cron "${dto.cron}" names no date that ever comes`, [{ field: 'cron', problems: ['never due: no date matches it'] }]);
      }
    }
    if (dto.eventType?.startsWith('agent.run.') || dto.eventType?.startsWith('ai.')) {
      throw PlatformErrors.error('validation_failed', 'agents\' own events cannot trigger agents (a loop)', [{ field: 'eventType', problems: ['agent.run.* and ai.* events are not allowed'] }]);
    }
    const trigger = await repo.create(tx.db, tx.orgId, {
      agentId, kind: dto.kind, cron: dto.cron ?? null, eventType: dto.eventType ?? null, prompt: dto.prompt, createdBy: tx.principal.userId,
    });
    await this.audit.record(tx, { action: 'ai.trigger_created', entityType: 'ai_trigger', entityId: trigger.id, after: trigger });
    return trigger;
  }

  async remove(tx: TenantTx, agentId: string, id: string): Promise<void> {
    const before = await repo.get(tx.db, tx.orgId, agentId, id);
    if (!before) throw AgentErrors.notFound('trigger', id);
    if (!(await repo.remove(tx.db, tx.orgId, id))) throw AgentErrors.notFound('trigger', id); // deleted by a concurrent request meanwhile
    await this.audit.record(tx, { action: 'ai.trigger_deleted', entityType: 'ai_trigger', entityId: id, before });
  }

  // ---------------------------------------------------------------- firing
  /** A domain event from the outbox: fires the organization's triggers of its type (idempotent per event id). */
  async onEvent(event: DomainEvent): Promise<void> {
    // an agent's own events never trigger agents (no loops)
    if (event.type.startsWith('agent.run.') || event.type.startsWith('ai.')) return;
    const lookup: TriggerLookup = { orgId: event.orgId, eventType: event.type, triggers: [] };
    await this.triggerLookups.add(lookup);
    for (const t of lookup.triggers) {
      await this.fire(t, event.id, `${t.prompt}\n\nEvent ${event.type} (id ${event.id}, at ${event.occurredAt}):\n${JSON.stringify(event.payload)}`, 'event');
    }
  }

  /**
   * The triggers of the events handled at once, read in one query when the lookup runs (as each event's own query
   * did: a trigger created before the event is handled fires for it), instead of one transaction per event.
   */
  private readonly triggerLookups = new Coalescer<TriggerLookup>(async (lookups) => {
    const rows = await this.privileged.run('agents.triggers', (db) => repo.eventTriggersOf(db, lookups));
    for (const l of lookups) l.triggers = rows.filter((r) => r.org_id === l.orgId && r.event_type === l.eventType);
  });

  /** A clock tick: fires every schedule trigger with a slot due since its last firing (one run per trigger and tick). */
  async tick(now: Date = new Date(this.clock.now())): Promise<number> {
    let fired = 0;
    for (const t of await this.privileged.run('agents.triggers', (db) => repo.scheduleTriggers(db))) {
      // one trigger's failure is its own: the tick goes on with the others (of every organization)
      try {
        let slot: Date | undefined;
        try {
          slot = dueSlot(t.cron!, new Date(t.last_fired_at ?? t.created_at), now);
        } catch (err) {
          // a cron with no date that ever comes (stored before creation refused it): it can never fire, it stops
          await this.stop(t, `cron "${t.cron}" has no next date: ${(err as Error).message.split('\n')[0]}`);
          continue;
        }
        if (!slot) continue;
        if (await this.fire(t, slot.toISOString(), `${t.prompt}\n\n(Scheduled run of ${slot.toISOString()}.)`, 'schedule', slot)) fired++;
      } catch (err) {
        this.logger.error(`agent trigger ${t.id} of organization ${t.org_id}: its scheduled firing failed: ${(err as Error).message}`);
      }
    }
    return fired;
  }

  /**
   * Starts one run of `t` as its member, executed by a job of its own (agents.run, as ?async=true): the domain event's
   * job or the tick that fired it does not wait for the model (up to 50 calls, each up to a minute), so other events
   * and e-mails behind it do not either. False when it already fired, was skipped or the trigger stopped.
   */
  private async fire(t: TriggerRow, key: string, content: string, kind: 'event' | 'schedule', at = new Date(this.clock.now())): Promise<boolean> {
    const email = await this.privileged.run('agents.triggers', (db) => repo.userEmail(db, t.created_by));
    if (!email) {
      await this.stop(t, 'the member who set the trigger no longer exists');
      return false;
    }
    const principal: Principal = { kind: 'user', userId: t.created_by, email, personalOrgId: t.org_id };
    try {
      await this.runs.start(principal, t.org_id, { requestId: `trigger:${t.id}:${key}` }, t.agent_id, { messages: [{ role: 'user', content }] }, kind, {
        roles: ADMIN_ROLES, feature: 'ai_automation', asJob: true,
        onCreated: async (tx, run) => {
          if (!(await repo.recordFiring(tx.db, t.org_id, t.id, key, run.id, at))) throw new AlreadyFired();
        },
      });
    } catch (err) {
      if (err instanceof AlreadyFired) return false;
      if (!(err instanceof AppError) || err.status >= 500) throw err;
      // the member left, lost the role, or the plan lost the feature: the trigger can no longer run as it was set, it
      // stops, with the reason
      if (stopsTrigger(err)) {
        await this.stop(t, `${err.code}: ${err.message}`);
        return false;
      }
      // the agent is paused (409 ai.agent_paused), no provider key (422 ai.no_provider_key), the subscription is
      // read-only or a limit reached (402), ...: this firing is skipped,
      // the trigger stays active and runs again once an owner or admin resumes the agent or stores a key
      await this.skip(principal, t, key, at, err);
      return false;
    }
    return true;
  }

  /**
   * Records a skipped firing as the member (as a run's firing is recorded: its key is used, without a run), so the slot or
   * event is not tried again at every tick, and audits why.
   */
  private async skip(principal: Principal, t: TriggerRow, key: string, at: Date, err: AppError): Promise<void> {
    const reason = `${err.code}: ${err.message}`;
    this.logger.warn(`agent trigger ${t.id} of organization ${t.org_id} skipped ${key}: ${reason}`);
    await this.db.tenant(principal, t.org_id, { requestId: `trigger:${t.id}:${key}` }, async (tx) => {
      // no run: a skipped firing's run_id is null
      if (!(await repo.recordFiring(tx.db, t.org_id, t.id, key, null, at))) return;
      await this.audit.record(tx, { action: 'ai.trigger_skipped', entityType: 'ai_trigger', entityId: t.id, after: { fireKey: key, reason } });
    });
  }

  private async stop(t: TriggerRow, reason: string): Promise<void> {
    this.logger.warn(`agent trigger ${t.id} of organization ${t.org_id} stopped: ${reason}`);
    await this.privileged.run('agents.triggers', async (db) => {
      await repo.stop(db, t.org_id, t.id, reason);
      await this.audit.recordPrivileged(db, t.org_id, 'system', { action: 'ai.trigger_stopped', entityType: 'ai_trigger', entityId: t.id, after: { status: 'stopped', lastError: reason } });
    });
  }
}
