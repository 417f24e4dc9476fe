import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { Db, TenantTx } from '../../platform/database/database.service.js';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { Clock } from '../../platform/clock/clock.js';
import { decodeKeyset, page } from '../../platform/http/pagination.js';
import { FEATURE_LABEL_LIMIT } from '../../platform/observability/metrics.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { AuditService } from '../audit/audit.service.js';
import { analyticsRepository as repo, type AnalyticsEventRow } from './analytics.repository.js';
import { AnalyticsErrors } from './analytics.errors.js';
import { type AnalyticsEventInputDto, EVENT_NAME, POSTHOG_RESERVED_PROPERTIES, SERVER_EVENT_NAMES, type ServerEventName, type ActiveUsersDto, type AnalyticsBatchResultDto, type EventDayCountDto, type FeatureUsageByPlanDto, type RejectedEventDto, type TopEventDto } from './analytics.dto.js';
import { PostHogForwarder } from './posthog.forwarder.js';

const DAY_MS = 86_400_000;
/** how far back an event may be dated: inside the partitions that always exist (previous month onwards) */
export const MAX_AGE_MS = 28 * DAY_MS;
const MAX_AHEAD_MS = DAY_MS;
const MAX_PROPERTIES_BYTES = 8 * 1024;
const MAX_RANGE_DAYS = 400;
/** rows of GET .../analytics/events/daily per page, unless ?limit= asks fewer */
export const DAILY_COUNTS_PAGE = 1000;
const EVENT_FIELDS = new Set(['name', 'properties', 'timestamp', 'userId', 'anonymousId']);
const SERVER_NAMES: ReadonlySet<string> = new Set(SERVER_EVENT_NAMES);
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/**
 * An event's timestamp (ISO_DATE_TIME) as epoch ms. A date-time without an offset is read as UTC, as the reports' days
 * are (JavaScript would read it in the server's time zone: the same event a different hour, maybe day, per server); a
 * date alone is its UTC midnight. NaN when it is no instant.
 */
function eventInstant(timestamp: string): number {
  return Date.parse(/T[^Z+-]*$/.test(timestamp) ? `${timestamp}Z` : timestamp);
}

/** A server-side event a module records (its name one of SERVER_EVENT_NAMES, which apps may not send). */
export interface ServerEvent {
  name: ServerEventName;
  properties?: Record<string, unknown>;
  /** default: the transaction's user, if a person acts */
  userId?: string | null;
}

/**
 * Usage analytics: events from apps (batches) and from the modules themselves (record), stored per organization in
 * monthly partitions, rolled up per day by AnalyticsMaintenanceJob, optionally forwarded to PostHog.
 */
@Injectable()
export class AnalyticsService {
  /**
   * The UTC days (ms at midnight) that received events from apps since the roll-up last took them. An app may date an
   * event up to MAX_AGE_MS back, and the 10-minute roll-up recomputes only yesterday and today: it recomputes these too.
   */
  private readonly receivedDays = new Set<number>();

  /** the cap on distinct event names per organization (ANALYTICS_MAX_EVENT_NAMES) */
  readonly maxEventNames: number;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly clock: Clock,
    private readonly posthog: PostHogForwarder,
    private readonly privileged: PrivilegedDatabase,
    private readonly audit: AuditService,
  ) {
    this.maxEventNames = config.analytics.maxEventNames;
  }

  /**
   * Records a server-side event in the caller's transaction: it commits with the business change, its row sent with
   * the transaction's COMMIT (no round trip of its own; a failed insert rolls the transaction back), and is forwarded to
   * PostHog once that COMMIT succeeded.
   */
  record(tx: TenantTx, event: ServerEvent): void {
    const userId = event.userId !== undefined ? event.userId : tx.principal.kind === 'user' ? tx.principal.userId : null;
    this.storeAtCommit(tx.db, this.serverRow(tx.orgId, event, userId));
  }

  /** The same on a privileged path (the login), in that path's transaction. */
  recordPrivileged(db: Db, orgId: string, event: ServerEvent): void {
    this.storeAtCommit(db, this.serverRow(orgId, event, event.userId ?? null));
  }

  private serverRow(orgId: string, event: ServerEvent, userId: string | null): AnalyticsEventRow {
    if (!EVENT_NAME.test(event.name)) throw new Error(`analytics: ${event.name} is not a valid event name`);
    return { id: randomUUID(), orgId, name: event.name, properties: event.properties ?? {}, occurredAt: new Date(this.clock.now()), userId, anonymousId: null, source: 'server' };
  }

  private storeAtCommit(db: Db, row: AnalyticsEventRow): void {
    repo.insertEventAtCommit(db, row);
    db.afterCommit(() => this.posthog.forward([row]));
  }

  /**
   * A batch from an app: each event checked on its own; the valid ones stored, the others reported by index. An event
   * whose name the organization's apps never sent is refused once the organization holds maxEventNames names (the
   * batch's new names are taken in order until then). A batch that stores events is audited once, in its transaction
   * (analytics.events_recorded: how many of each name, and how many rejected).
   */
  async ingest(tx: TenantTx, events: unknown[]): Promise<AnalyticsBatchResultDto> {
    const now = this.clock.now();
    const valid: { index: number; row: AnalyticsEventRow }[] = [];
    const rejected: RejectedEventDto[] = [];
    const caller = tx.principal.kind === 'user' ? tx.principal.userId : null;
    events.forEach((raw, index) => {
      const problems = this.problemsOf(raw, now);
      if (problems.length) {
        rejected.push({ index, problems });
        return;
      }
      const e = raw as AnalyticsEventInputDto;
      const userId = e.userId ?? (e.anonymousId ? null : caller);
      if (!userId && !e.anonymousId) {
        rejected.push({ index, problems: ['userId or anonymousId is required when the caller is not a signed-in user'] });
        return;
      }
      valid.push({ index, row: {
        id: randomUUID(), orgId: tx.orgId, name: e.name, properties: e.properties ?? {}, occurredAt: new Date(e.timestamp ? eventInstant(e.timestamp) : now),
        userId, anonymousId: e.anonymousId ?? null, source: 'client',
      } });
    });
    const refused = await this.registerNames(tx, [...new Set(valid.map((v) => v.row.name))]);
    const rows: AnalyticsEventRow[] = [];
    for (const { index, row } of valid) {
      if (!refused.has(row.name)) rows.push(row);
      else rejected.push({ index, problems: [`name ${row.name} is new and the organization already has ${this.maxEventNames} distinct event names, the most it may; ${refused.size} new name(s) of this batch refused`] });
    }
    if (refused.size) rejected.sort((a, b) => a.index - b.index);
    await repo.insertEvents(tx.db, rows);
    if (rows.length) {
      // who stored what in the organization's data: counts and event names, never the properties (an app's free text)
      // (a Map: an app's event name is any key, `constructor` too, which a plain object would read from its prototype)
      const perName = new Map<string, number>();
      for (const r of rows) perName.set(r.name, (perName.get(r.name) ?? 0) + 1);
      await this.audit.record(tx, { action: 'analytics.events_recorded', entityType: 'analytics_event', after: { accepted: rows.length, rejected: rejected.length, events: Object.fromEntries(perName) } });
    }
    tx.db.afterCommit(() => {
      // once committed: a roll-up that took the day before would not see the events
      for (const r of rows) this.receivedDays.add(r.occurredAt.getTime() - (r.occurredAt.getTime() % DAY_MS));
      this.posthog.forward(rows, caller);
    });
    return { accepted: rows.length, rejected };
  }

  /**
   * Registers the names of a batch the organization's apps never sent, in the batch's order while the organization
   * holds fewer than maxEventNames, and answers those refused. Names already held cost one primary-key read; new ones
   * are counted and added under the organization's lock (concurrent batches cannot pass the cap together). A name added
   * is the organization's data (it takes one of its maxEventNames) that the caller caused: audited once, when added.
   */
  private async registerNames(tx: TenantTx, names: string[]): Promise<Set<string>> {
    const known = await repo.knownEventNames(tx.db, tx.orgId, names);
    const unknown = names.filter((n) => !known.has(n));
    if (!unknown.length) return new Set();
    const { held, present } = await repo.eventNamesLocked(tx.db, tx.orgId, unknown);
    const fresh = unknown.filter((n) => !present.has(n));
    const room = Math.max(0, this.maxEventNames - held);
    const added = await repo.insertEventNames(tx.db, tx.orgId, fresh.slice(0, room));
    for (const name of added) {
      await this.audit.record(tx, { action: 'analytics.event_name_registered', entityType: 'analytics_event_name', entityId: name, after: { name } });
    }
    return new Set(fresh.slice(room));
  }

  /** The days that received events since the last call (AnalyticsMaintenanceJob.rollUp), ascending; forgotten here. */
  takeReceivedDays(): number[] {
    const days = [...this.receivedDays].sort((a, b) => a - b);
    this.receivedDays.clear();
    return days;
  }

  /** Days a failed roll-up took: the next one recomputes them. */
  restoreReceivedDays(days: number[]): void {
    for (const d of days) this.receivedDays.add(d);
  }

  /**
   * The problems of one event, checked by hand rather than through class-validator: a batch holds up to 500 events
   * and this runs for each (the benchmark's ingestion figure is mostly this loop). Same rules and words as
   * AnalyticsEventInputDto documents.
   */
  private problemsOf(raw: unknown, now: number): string[] {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return ['an event must be a JSON object'];
    const e = raw as Record<string, unknown>;
    const problems: string[] = [];
    for (const key of Object.keys(e)) if (!EVENT_FIELDS.has(key)) problems.push(`property ${key} should not exist`);
    if (typeof e.name !== 'string' || !EVENT_NAME.test(e.name)) problems.push('name must be lower case letters, digits and _ . : - (up to 100), starting with a letter');
    else if (SERVER_NAMES.has(e.name)) problems.push(`name ${e.name} is reserved for the server's own events`);
    if (e.properties !== undefined && (typeof e.properties !== 'object' || e.properties === null || Array.isArray(e.properties))) problems.push('properties must be an object');
    else if (e.properties !== undefined) {
      if (Buffer.byteLength(JSON.stringify(e.properties)) > MAX_PROPERTIES_BYTES) problems.push('properties must be at most 8 KB of JSON');
      // PostHog applies $set, $set_once, $unset... of any event to a person that every organization of the project shares
      const reserved = Object.keys(e.properties).find((key) => key.startsWith('$'));
      if (reserved !== undefined) problems.push(`properties key ${reserved} is not allowed: keys starting with $ are reserved`);
      // PostHog's capture reads these from the properties too, properties.distinct_id before the event's own: an app's
      // would name a person of another organization (its user id), or the event's project, id or time
      const posthogKey = Object.keys(e.properties).find((key) => POSTHOG_RESERVED_PROPERTIES.includes(key));
      if (posthogKey !== undefined) problems.push(`properties key ${posthogKey} is not allowed: ${POSTHOG_RESERVED_PROPERTIES.join(', ')} are reserved`);
    }
    for (const field of ['userId', 'anonymousId'] as const) {
      const v = e[field];
      if (v !== undefined && (typeof v !== 'string' || v.length > 200)) problems.push(`${field} must be a string of at most 200 characters`);
    }
    if (e.timestamp !== undefined) {
      const at = typeof e.timestamp === 'string' && ISO_DATE_TIME.test(e.timestamp) ? eventInstant(e.timestamp) : NaN;
      if (Number.isNaN(at)) problems.push('timestamp must be a valid ISO 8601 date string');
      else if (at < now - MAX_AGE_MS) problems.push('timestamp must be at most 28 days ago');
      else if (at > now + MAX_AHEAD_MS) problems.push('timestamp must be at most 1 day ahead');
    }
    return problems;
  }

  private range(from: string, to: string): void {
    const days = (new Date(to).getTime() - new Date(from).getTime()) / DAY_MS;
    if (days < 0) throw AnalyticsErrors.error('analytics.range', 'from is after to');
    if (days > MAX_RANGE_DAYS) throw AnalyticsErrors.error('analytics.range', `the range is longer than ${MAX_RANGE_DAYS} days`);
  }

  /** One page of the roll-ups over the range, by day and event (keyset cursor: the last row's day and event). */
  async dailyCounts(tx: TenantTx, q: { from: string; to: string; event?: string; limit?: number; cursor?: string }): Promise<{ items: EventDayCountDto[]; nextCursor?: string }> {
    this.range(q.from, q.to);
    const after = decodeKeyset(q.cursor, { d: 'date', e: 'text' });
    const limit = q.limit ?? DAILY_COUNTS_PAGE;
    const rows = await repo.dailyCounts(tx.db, tx.orgId, { from: q.from, to: q.to, event: q.event, after, limit });
    return page(rows, limit, (r) => ({ d: r.day, e: r.event }));
  }

  topEvents(tx: TenantTx, from: string, to: string, limit = 10): Promise<TopEventDto[]> {
    this.range(from, to);
    return repo.topEvents(tx.db, tx.orgId, from, to, limit);
  }

  activeUsers(tx: TenantTx, from: string, to: string): Promise<ActiveUsersDto> {
    this.range(from, to);
    return repo.activeUsers(tx.db, tx.orgId, from, to);
  }

  /**
   * The FEATURE_LABEL_LIMIT most used events of each plan over the range, as the operation documents: the read's row of
   * the rest of a plan's events (event null; the usage gauge's "other") is not part of this answer.
   */
  async featureUsageByPlan(from: string, to: string): Promise<FeatureUsageByPlanDto[]> {
    this.range(from, to);
    const rows = await this.privileged.run('analytics.reports', (db) => repo.featureUsageByPlan(db, from, to, FEATURE_LABEL_LIMIT));
    return rows.flatMap((r) => (r.event === null ? [] : [{ ...r, event: r.event }]));
  }
}
