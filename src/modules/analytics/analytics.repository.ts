import { sql } from 'kysely';
import { prepare, qb } from '../../platform/database/query-builder.js';
import type { Db } from '../../platform/database/database.service.js';
import { locks, lockId } from '../../platform/database/locks.js';
import { OMNIZEN_APP, plansOfOrganizations } from '../billing/plan-of-org.repository.js';

export interface AnalyticsEventRow {
  id: string;
  orgId: string;
  name: string;
  properties: Record<string, unknown>;
  occurredAt: Date;
  userId: string | null;
  anonymousId: string | null;
  source: 'client' | 'server';
}

const num = (v: bigint | number | string | null) => (v === null ? 0 : Number(v));
const isoDay = (d: Date | string) => (typeof d === 'string' ? d.slice(0, 10) : d.toISOString().slice(0, 10));
/**
 * A UTC day as a `date` parameter: its YYYY-MM-DD text cast in SQL. A JS Date bound to a date column is written by pg in
 * the process's local time zone (TZ=America/New_York: UTC midnight is 19:00 the day before), which shifts the day.
 */
const utcDay = (d: Date | string) => sql<Date>`${isoDay(d)}::date`;

/** One event, as the server records them on hot paths (a posted entry): compiled once, no arrays to serialize. */
const oneEvent = prepare((p: { id: string; orgId: string; name: string; properties: string; occurredAt: string; userId: string | null; anonymousId: string | null; source: string }) => qb
  .insertInto('core.analytics_events')
  .columns(['id', 'org_id', 'name', 'properties', 'occurred_at', 'user_id', 'anonymous_id', 'source'])
  .expression(sql`VALUES (${p.id}::uuid, ${p.orgId}::uuid, ${p.name}::text, ${p.properties}::jsonb, ${p.occurredAt}::timestamptz, ${p.userId}::text, ${p.anonymousId}::text, ${p.source}::text)`));

const oneEventParams = (r: AnalyticsEventRow) => ({ ...r, properties: JSON.stringify(r.properties), occurredAt: r.occurredAt.toISOString() });

/** The distinct UTC days of `days`, in order. */
const byDay = (days: Date[]) => [...new Set(days.map(isoDay))].sort().map((d) => new Date(`${d}T00:00:00Z`));

/**
 * The name of the lock (platform/database/locks.ts) that a roll-up of a day (analyticsRepository.rollUpDay, rollUpDailyUsers)
 * and a person's erasure (analyticsRepository.lockRollUps, shared) hold until their transaction ends, and the retention
 * purge (holdRollUps) from before it reads anything
 */
export const ROLL_UP_LOCK = 'core.analytics_daily';

/** ROLL_UP_LOCK taken for the transaction, or false at once when another transaction holds it. */
async function tryRollUpLock(db: Db): Promise<boolean> {
  return locks.tryExclusive(db, ROLL_UP_LOCK);
}

/**
 * The roll-up's statement for `days` (at least one), handed to `tag` (the database's $executeRaw; a test's EXPLAIN of
 * the very statement the job runs).
 */
export function rollUpStatement<T>(tag: (sql: TemplateStringsArray, ...values: unknown[]) => T, days: Date[]): T {
  const ms = days.map((d) => d.getTime());
  const first = new Date(Math.min(...ms));
  const end = new Date(Math.max(...ms) + 86_400_000);
  return tag`
    INSERT INTO core.analytics_daily AS d (org_id, day, event, events, users, updated_at)
    SELECT org_id, (occurred_at AT TIME ZONE 'UTC')::date, name, count(*), count(DISTINCT user_id), now()
    FROM core.analytics_events
    WHERE occurred_at >= ${first} AND occurred_at < ${end}
      AND (occurred_at AT TIME ZONE 'UTC')::date = ANY(${days.map(isoDay)}::date[])
    GROUP BY 1, 2, 3
    ON CONFLICT (org_id, day, event) DO UPDATE SET events = excluded.events, users = excluded.users, updated_at = now()`;
}

/**
 * The roll-up's second statement for `days`: who was active on each of them (core.analytics_daily_users, the
 * omnizen_active_users gauge's source), from the same range scan. Writes only what changed: the (organization, day, user)
 * rows not yet there, and deletes those of these days whose events no longer name that user (an erasure pseudonymized
 * them, or deleted the row before a roll-up that had counted them committed).
 */
export function dailyUsersStatement<T>(tag: (sql: TemplateStringsArray, ...values: unknown[]) => T, days: Date[]): T {
  const ms = days.map((d) => d.getTime());
  const first = new Date(Math.min(...ms));
  const end = new Date(Math.max(...ms) + 86_400_000);
  const isoDays = days.map(isoDay);
  return tag`
    WITH fresh AS (
      SELECT DISTINCT org_id, (occurred_at AT TIME ZONE 'UTC')::date AS day, user_id
      FROM core.analytics_events
      WHERE occurred_at >= ${first} AND occurred_at < ${end} AND user_id IS NOT NULL
        AND (occurred_at AT TIME ZONE 'UTC')::date = ANY(${isoDays}::date[])
    ), gone AS (
      DELETE FROM core.analytics_daily_users u
      WHERE u.day = ANY(${isoDays}::date[])
        AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.org_id = u.org_id AND f.day = u.day AND f.user_id = u.user_id)
    )
    INSERT INTO core.analytics_daily_users (org_id, day, user_id)
    SELECT org_id, day, user_id FROM fresh
    ON CONFLICT (org_id, day, user_id) DO NOTHING`;
}

/** core.analytics_events (partitioned by month), core.analytics_daily (roll-ups) and core.analytics_daily_users (who was active per day). */
export const analyticsRepository = {
  /** One server event, sent with the transaction's COMMIT (not awaited): nothing in a request reads its own event back. */
  insertEventAtCommit(db: Db, r: AnalyticsEventRow): void {
    db.runAtCommit(oneEvent(oneEventParams(r)));
  },

  /**
   * One INSERT ... SELECT FROM unnest(arrays): eight parameters whatever the batch size, so a 500-event batch is one
   * short statement to bind and plan rather than 4,000 parameters.
   */
  async insertEvents(db: Db, rows: AnalyticsEventRow[]): Promise<void> {
    if (!rows.length) return;
    if (rows.length === 1) {
      const [r] = rows;
      await db.run(oneEvent(oneEventParams(r)));
      return;
    }
    await db.run(qb.insertInto('core.analytics_events')
      .columns(['id', 'org_id', 'name', 'properties', 'occurred_at', 'user_id', 'anonymous_id', 'source'])
      .expression(sql`SELECT * FROM unnest(${rows.map((r) => r.id)}::uuid[], ${rows.map((r) => r.orgId)}::uuid[], ${rows.map((r) => r.name)}::text[],
        ${rows.map((r) => JSON.stringify(r.properties))}::jsonb[], ${rows.map((r) => r.occurredAt.toISOString())}::timestamptz[],
        ${rows.map((r) => r.userId)}::text[], ${rows.map((r) => r.anonymousId)}::text[], ${rows.map((r) => r.source)}::text[])`));
  },

  /**
   * The roll-ups of [from, to] by day and event, one page: `limit + 1` rows after the keyset position `after`
   * (day, event), for `page()` to cut.
   */
  async dailyCounts(db: Db, orgId: string, q: { from: string; to: string; event?: string; after?: { d: string; e: string }; limit: number }): Promise<{ day: string; event: string; events: number; users: number }[]> {
    let query = qb.selectFrom('core.analytics_daily').select(['day', 'event', 'events', 'users'])
      .where('org_id', '=', orgId).where('day', '>=', utcDay(q.from)).where('day', '<=', utcDay(q.to));
    if (q.event) query = query.where('event', '=', q.event);
    if (q.after) {
      const { d, e } = q.after;
      query = query.where((eb) => eb.or([eb('day', '>', utcDay(d)), eb.and([eb('day', '=', utcDay(d)), eb('event', '>', e)])]));
    }
    const rows = await db.run(query.orderBy('day').orderBy('event').limit(q.limit + 1));
    return rows.map((r) => ({ day: isoDay(r.day), event: r.event, events: num(r.events), users: num(r.users) }));
  },

  /** Which of `names` the organization's apps have sent before (by primary key; no lock). */
  async knownEventNames(db: Db, orgId: string, names: string[]): Promise<Set<string>> {
    if (!names.length) return new Set();
    const rows = await db.run(qb.selectFrom('core.analytics_event_names').select('name')
      .where('org_id', '=', orgId).where('name', '=', sql<string>`ANY(${names}::text[])`));
    return new Set(rows.map((r) => r.name));
  },

  /**
   * Under a lock that every registration of the organization takes until its transaction ends (so two batches cannot
   * both pass the cap): how many names the organization holds and which of `names` are among them now.
   */
  async eventNamesLocked(db: Db, orgId: string, names: string[]): Promise<{ held: number; present: Set<string> }> {
    await locks.exclusive(db, `core.analytics_event_names:${lockId(orgId)}`);
    const [row] = await db.$queryRaw<{ held: bigint; present: string[] | null }[]>`
      SELECT count(*) AS held, array_agg(name) FILTER (WHERE name = ANY(${names}::text[])) AS present
      FROM core.analytics_event_names WHERE org_id = ${orgId}::uuid`;
    return { held: num(row.held), present: new Set(row.present ?? []) };
  },

  /** Registers new names (taken under eventNamesLocked) and answers those it added. */
  async insertEventNames(db: Db, orgId: string, names: string[]): Promise<string[]> {
    if (!names.length) return [];
    const rows = await db.run(qb.insertInto('core.analytics_event_names').columns(['org_id', 'name'])
      .expression(sql`SELECT ${orgId}::uuid, unnest(${names}::text[])`)
      .onConflict((oc) => oc.columns(['org_id', 'name']).doNothing())
      .returning('name'));
    return rows.map((r) => r.name);
  },

  /**
   * Forgets the names registered before `before` that no roll-up from `before` on holds (their events are past the
   * retention): the organization may use that many new ones (privileged: service_role). Answers the names forgotten.
   */
  async deleteEventNamesUnusedSince(db: Db, before: Date): Promise<{ orgId: string; name: string }[]> {
    const rows = await db.run(qb.deleteFrom('core.analytics_event_names as n').where('n.first_seen_at', '<', before)
      .where(({ not, exists, selectFrom }) => not(exists(selectFrom('core.analytics_daily as d').select(sql`1`.as('one'))
        .whereRef('d.org_id', '=', 'n.org_id').whereRef('d.event', '=', 'n.name').where('d.day', '>=', utcDay(before)))))
      .returning(['n.org_id', 'n.name']));
    return rows.map((r) => ({ orgId: r.org_id, name: r.name }));
  },

  async topEvents(db: Db, orgId: string, from: string, to: string, limit: number): Promise<{ event: string; events: number }[]> {
    const rows = await db.run(qb.selectFrom('core.analytics_daily')
      .select((eb) => ['event', eb.fn.sum<string>('events').as('events')])
      .where('org_id', '=', orgId).where('day', '>=', utcDay(from)).where('day', '<=', utcDay(to))
      .groupBy('event').orderBy('events', 'desc').orderBy('event').limit(limit));
    return rows.map((r) => ({ event: r.event, events: num(r.events) }));
  },

  /** Distinct users (events with a user id) per UTC day and per calendar month, from the events themselves. */
  async activeUsers(db: Db, orgId: string, from: string, to: string): Promise<{ daily: { day: string; users: number }[]; monthly: { month: string; users: number }[] }> {
    const daily = await db.$queryRaw<{ day: Date | string; users: bigint }[]>`
      SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, count(DISTINCT user_id) AS users
      FROM core.analytics_events
      WHERE org_id = ${orgId}::uuid AND user_id IS NOT NULL
        AND occurred_at >= ${from}::date::timestamp AT TIME ZONE 'UTC' AND occurred_at < (${to}::date + 1)::timestamp AT TIME ZONE 'UTC'
      GROUP BY 1 ORDER BY 1`;
    const monthly = await db.$queryRaw<{ month: string; users: bigint }[]>`
      SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month, count(DISTINCT user_id) AS users
      FROM core.analytics_events
      WHERE org_id = ${orgId}::uuid AND user_id IS NOT NULL
        AND occurred_at >= ${from}::date::timestamp AT TIME ZONE 'UTC' AND occurred_at < (${to}::date + 1)::timestamp AT TIME ZONE 'UTC'
      GROUP BY 1 ORDER BY 1`;
    return {
      daily: daily.map((r) => ({ day: isoDay(r.day), users: num(r.users) })),
      monthly: monthly.map((r) => ({ month: r.month, users: num(r.users) })),
    };
  },

  /**
   * Recomputes the roll-ups of every organization for the UTC day `day` (privileged: service_role), one range scan of it
   * (analytics_events_occurred_at_idx; the other partitions pruned), under ROLL_UP_LOCK until the caller's transaction
   * ends: the statement counts from its own snapshot, and without the lock a roll-up of another instance that counted
   * earlier but committed later would overwrite newer counts. Null, nothing written, when another transaction holds the
   * lock (another instance's roll-up of a day, an erasure): the caller skips the day and a later run redoes it, rather
   * than wait past the lock timeout. A day per transaction: the nightly run's 30 days held the lock ~60 s at 2.5 million
   * events (roll-ups and who was active), every other instance's run failing on it; a day takes about 1 s.
   */
  async rollUpDay(db: Db, day: Date): Promise<number | null> {
    if (!(await tryRollUpLock(db))) return null;
    return rollUpStatement(db.$executeRaw.bind(db), byDay([day]));
  },

  /**
   * Rewrites who was active on the UTC day `day` (dailyUsersStatement, privileged: service_role; 30 days in one statement
   * took 27 to 41 s at 2.5 million events, a day about 1 s) under ROLL_UP_LOCK, as rollUpDay: a roll-up of another
   * instance that read its events earlier cannot delete a user this one found since, nor write back a user an erasure
   * (which waits for the lock: lockRollUps) deleted after this statement's snapshot. False, nothing written, when the
   * lock is held: a later run redoes the day.
   */
  async rollUpDailyUsers(db: Db, day: Date): Promise<boolean> {
    if (!(await tryRollUpLock(db))) return false;
    await dailyUsersStatement(db.$executeRaw.bind(db), byDay([day]));
    return true;
  },

  /**
   * Waits for the roll-up in progress, if any, and holds ROLL_UP_LOCK until the caller's transaction ends (the erasure,
   * before it reads or changes analytics events and core.analytics_daily_users): a roll-up statement whose snapshot
   * predates the erasure's commit would otherwise write the erased user id back (its INSERT goes through after the
   * erasure's DELETE). A roll-up holds it one day at a time (about 1 s), within the privileged pool's lock timeout.
   */
  async lockRollUps(db: Db): Promise<void> {
    // shared: erasures do not wait for one another (a slow one held every other past the lock timeout: 503), a roll-up
    // (exclusive, tryRollUpLock) skips while any is open
    await locks.shared(db, ROLL_UP_LOCK);
  },

  /**
   * ROLL_UP_LOCK taken exclusively until the caller's transaction ends, waiting for the erasures in flight (they hold it
   * shared, lockRollUps) and a roll-up's day: the retention purge, before it reads or deletes anything. An erasure reads
   * every partition of core.analytics_events and then deletes the person's core.analytics_daily_users rows; the purge
   * deleted old rows of that table and then waited to drop partitions the erasure had read, which waited for those rows:
   * a deadlock. Erasures that start meanwhile wait at lockRollUps, before they touch either table.
   */
  async holdRollUps(db: Db): Promise<void> {
    await locks.exclusive(db, ROLL_UP_LOCK);
  },

  /**
   * Deletes the roll-ups of the days before `before` (their events' partitions are dropped: privileged, service_role);
   * answers the rows deleted per organization.
   */
  async deleteRollUpsBefore(db: Db, before: Date): Promise<{ orgId: string; count: number }[]> {
    const rows = await db.$queryRaw<{ org_id: string; count: bigint }[]>`
      WITH d AS (DELETE FROM core.analytics_daily WHERE day < ${isoDay(before)}::date RETURNING org_id)
      SELECT org_id::text, count(*) AS count FROM d GROUP BY org_id ORDER BY org_id`;
    return rows.map((r) => ({ orgId: r.org_id, count: num(r.count) }));
  },

  /**
   * Deletes who was active on the days before `before` (core.analytics_daily_users: the gauge reads 30 days, the nightly
   * retention keeps 31; privileged, service_role); answers the rows deleted per organization.
   */
  async deleteDailyUsersBefore(db: Db, before: Date): Promise<{ orgId: string; count: number }[]> {
    const rows = await db.$queryRaw<{ org_id: string; count: bigint }[]>`
      WITH d AS (DELETE FROM core.analytics_daily_users WHERE day < ${isoDay(before)}::date RETURNING org_id)
      SELECT org_id::text, count(*) AS count FROM d GROUP BY org_id ORDER BY org_id`;
    return rows.map((r) => ({ orgId: r.org_id, count: num(r.count) }));
  },

  /**
   * The events per organization of the partitions that dropPartitions(`before`) drops (every event before `before`, a
   * month's start: the partitions are monthly), counted before they go; only those partitions are read.
   */
  async eventsBefore(db: Db, before: Date): Promise<{ orgId: string; count: number }[]> {
    const rows = await db.$queryRaw<{ org_id: string; count: bigint }[]>`
      SELECT org_id::text, count(*) AS count FROM core.analytics_events WHERE occurred_at < ${before} GROUP BY org_id ORDER BY org_id`;
    return rows.map((r) => ({ orgId: r.org_id, count: num(r.count) }));
  },

  /**
   * Distinct users per organization on the UTC day `day` and over the 30 days ending with it (privileged: service_role),
   * read by the roll-up job for the omnizen_active_users gauge: from who was active on each rolled-up day
   * (core.analytics_daily_users, one row per organization, day and user: 30 of the 31 days kept),
   * not from the raw events (count(DISTINCT) over 30 days of every organization's events took 47.5 s at 2.5 million).
   */
  async activeUsersByOrg(db: Db, day: Date): Promise<{ orgId: string; day: number; month: number }[]> {
    const rows = await db.$queryRaw<{ org_id: string; day: bigint; month: bigint }[]>`
      SELECT org_id::text, count(*) FILTER (WHERE day = ${isoDay(day)}::date) AS day, count(DISTINCT user_id) AS month
      FROM core.analytics_daily_users
      WHERE day >= ${isoDay(day)}::date - 29 AND day <= ${isoDay(day)}::date
      GROUP BY org_id`;
    return rows.map((r) => ({ orgId: r.org_id, day: num(r.day), month: num(r.month) }));
  },

  async createPartitions(db: Db, from: Date, monthsAhead: number): Promise<string[]> {
    const rows = await db.$queryRaw<{ name: string }[]>`SELECT core.analytics_create_partitions(${from.toISOString().slice(0, 10)}::date, ${monthsAhead}::int) AS name`;
    return rows.map((r) => r.name);
  },

  /**
   * The retention purge's lock (AnalyticsMaintenanceJob.maintainPartitions): true when this transaction took it, false
   * when another holds it (another instance purging now), without waiting.
   */
  async tryRetentionLock(db: Db): Promise<boolean> {
    return locks.tryExclusive(db, 'core.analytics_events.retention');
  },

  /**
   * The partitions' lock (the key core.analytics_create_partitions and core.analytics_drop_partitions take first,
   * migration 20270211002400), held to the commit: taken by the retention purge before it reads core.analytics_events.
   * Its reads hold ACCESS SHARE on the table to the commit; taking the lock only in dropPartitions, it waited there for a
   * create that held the lock and waited for that ACCESS SHARE (its DDL takes ACCESS EXCLUSIVE): a deadlock.
   */
  async lockPartitions(db: Db): Promise<void> {
    await locks.exclusive(db, 'core.analytics_events.partitions');
  },

  async dropPartitions(db: Db, before: Date): Promise<string[]> {
    const rows = await db.$queryRaw<{ name: string }[]>`SELECT core.analytics_drop_partitions(${before.toISOString().slice(0, 10)}::date) AS name`;
    return rows.map((r) => r.name);
  },

  /**
   * Feature (event) usage by OmniZen plan across every organization, from the roll-ups (privileged: service_role), each
   * organization under its current plan as billing defines it (plansOfOrganizations): per plan its `perPlan` most used
   * events, most used first, then one row (event null) of the plan's other events summed (organizations: 0), so that
   * the rows are bounded by plans, not by the names every organization sent. The one place where the less used events
   * are folded: the rows of a plan add up to all of its events.
   */
  async featureUsageByPlan(db: Db, from: string, to: string, perPlan: number): Promise<{ plan: string; event: string | null; organizations: number; events: number }[]> {
    const rows = await db.run(qb
      .with('plan_of', () => plansOfOrganizations(OMNIZEN_APP))
      .with('usage', (w) => w.selectFrom('core.analytics_daily as d').innerJoin('plan_of as p', 'p.org_id', 'd.org_id')
        .select((eb) => ['p.plan', 'd.event', eb.fn.count<string>('d.org_id').distinct().as('organizations'), eb.fn.sum<string>('d.events').as('events')])
        .where('d.day', '>=', utcDay(from)).where('d.day', '<=', utcDay(to))
        .groupBy(['p.plan', 'd.event']))
      .with('ranked', (w) => w.selectFrom('usage').selectAll()
        .select(sql<string>`row_number() OVER (PARTITION BY plan ORDER BY events DESC, event)`.as('rank')))
      .selectFrom('ranked').select((eb) => ['plan', eb.ref('event').$castTo<string | null>().as('event'), 'organizations', 'events', 'rank']).where('rank', '<=', sql<string>`${perPlan}::int`)
      .unionAll((w) => w.selectFrom('ranked')
        .select((eb) => ['plan', sql<string | null>`NULL`.as('event'), sql<string>`0`.as('organizations'), eb.fn.sum<string>('events').as('events'), sql<string>`${perPlan}::int + 1`.as('rank')])
        .where('rank', '>', sql<string>`${perPlan}::int`).groupBy('plan'))
      .orderBy('plan').orderBy('rank'));
    return rows.map((r) => ({ plan: r.plan, event: r.event, organizations: num(r.organizations), events: num(r.events) }));
  },
};
