import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { rollUpStatement } from '../../src/modules/analytics/analytics.repository.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

const DAY = 86_400_000;
const EVENTS = 3_100;

/**
 * The daily roll-up reads the days it redoes by an occurred_at range across every organization: with a month of events
 * (a few thousand, analyzed) the plan of the very statement the job runs reaches them through the occurred_at index of
 * the one partition in range, not by reading the partition whole. A plan, not a timing.
 */
describe('analytics roll-up: the occurred_at range is served by an index', () => {
  let db: TestDatabase;
  let orgs: string[];
  // the previous month: its partition exists from the first migration on, and every one of its days is past
  const now = new Date();
  const monthStart = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1);
  const monthEnd = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1);
  const partition = `analytics_events_p${new Date(monthStart).toISOString().slice(0, 7).replace('-', '')}`;
  const day = new Date(monthStart + 9 * DAY);

  /** A tag that hands the statement to the owner pool with `prefix` (EXPLAIN, or nothing to run it). */
  const onAdmin = (prefix: string) => (strings: TemplateStringsArray, ...values: unknown[]) =>
    db.admin.query(prefix + strings.reduce((text, part, i) => text + `$${i}` + part), values);

  beforeAll(async () => {
    db = await createTestDatabase();
    orgs = [];
    for (const name of ['Rolled A', 'Rolled B']) {
      const userId = randomUUID();
      await db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [userId, `${userId}@example.test`]);
      const { rows } = await db.admin.query(`INSERT INTO core.organizations (name, owner_user_id) VALUES ($1, $2) RETURNING id`, [name, userId]);
      orgs.push(rows[0].id);
    }
    // spread evenly over the month, two organizations, three events, ten users
    await db.admin.query(`INSERT INTO core.analytics_events (org_id, occurred_at, name, properties, user_id, source)
      SELECT ($1::uuid[])[1 + i % 2], to_timestamp($2::float8 / 1000) + (i * (($3::float8 - $2::float8) / $4) || ' ms')::interval,
        (ARRAY['invoice.viewed', 'report.opened', 'entry.posted'])[1 + i % 3], jsonb_build_object('n', i, 'pad', repeat('x', 200)),
        'user-' || (i % 10), 'client'
      FROM generate_series(0, $4 - 1) AS i`, [orgs, monthStart, monthEnd, EVENTS]);
    await db.admin.query('ANALYZE core.analytics_events');
  });
  afterAll(() => db?.drop());

  it('has the index on every partition, those made later too', async () => {
    await db.admin.query(`SELECT core.analytics_create_partitions((now() + interval '5 months')::date, 0)`);
    const { rows } = await db.admin.query(`SELECT c.relname AS partition,
        EXISTS (SELECT 1 FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
                WHERE x.indrelid = c.oid AND a.attname = 'occurred_at') AS indexed
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'core.analytics_events'::regclass`);
    expect(rows.length).toBeGreaterThanOrEqual(6);
    expect(rows.filter((r) => !r.indexed)).toEqual([]);
  });

  it('plans the roll-up of a day as an index range scan of the one partition in range', async () => {
    const { rows } = await rollUpStatement(onAdmin('EXPLAIN (COSTS OFF) '), [day]);
    const plan = rows.map((r: Record<string, string>) => r['QUERY PLAN']).join('\n');
    expect(plan).toMatch(new RegExp(`(Index Scan|Index Only Scan|Bitmap Index Scan) (using|on) ${partition}_occurred_at_idx`));
    expect(plan).not.toMatch(/Seq Scan/);
    // the other months are pruned
    expect(plan.match(/analytics_events_p\d{6}/g)!.every((name) => name === partition)).toBe(true);
  });

  it('rolls the day up: per organization and event, its events and distinct users', async () => {
    await rollUpStatement(onAdmin(''), [day]);
    const { rows } = await db.admin.query(`SELECT org_id, event, events::int, users::int FROM core.analytics_daily WHERE day = $1::date ORDER BY org_id, event`, [day.toISOString().slice(0, 10)]);
    const { rows: expected } = await db.admin.query(`SELECT org_id, name AS event, count(*)::int AS events, count(DISTINCT user_id)::int AS users
      FROM core.analytics_events WHERE (occurred_at AT TIME ZONE 'UTC')::date = $1::date GROUP BY 1, 2 ORDER BY 1, 2`, [day.toISOString().slice(0, 10)]);
    expect(expected.length).toBe(6);
    expect(rows).toEqual(expected);
  });
});
