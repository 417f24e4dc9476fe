import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PrivilegedDatabase } from '../../src/platform/database/privileged.service.js';
import { retentionRepository } from '../../src/modules/privacy/erasure.repository.js';
import { sessionRepository } from '../../src/modules/auth/session.repository.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser } from '../support/factories.js';

/**
 * The retention job's webhook purge and the session purge read their whole tables (one DELETE each, no index on what
 * they select by): at volume a scan of every message or session per run. They now walk indexes in bounded batches,
 * each from where the previous one stopped. Same answers: exactly the rows past their retention go, counted per
 * organization (per user), however many batches it takes.
 */
describe('purges: webhook deliveries and ended sessions, in batches, through indexes', () => {
  let t: TestApp;
  let privileged: PrivilegedDatabase;
  beforeAll(async () => {
    t = await createTestApp();
    privileged = t.app.get(PrivilegedDatabase);
  });
  afterAll(() => t.close());

  const q = (text: string, params: unknown[] = []) => t.db.admin.query(text, params);

  type Statement = { text: string; values: unknown[] };
  /** A Db that records the statements a purge issues and answers none (the first batch of each walk ends it). */
  function recorder(statements: Statement[]) {
    const push = (strings: TemplateStringsArray, values: unknown[]) => statements.push({ text: strings.reduce((text, part, i) => `${text}$${i}${part}`), values });
    return {
      $queryRaw: async (strings: TemplateStringsArray, ...values: unknown[]) => { push(strings, values); return []; },
      $queryRawUnsafe: async (text: string, ...values: unknown[]) => { statements.push({ text, values }); return []; },
      $executeRaw: async (strings: TemplateStringsArray, ...values: unknown[]) => { push(strings, values); return 0; },
      runCount: async (query: { compile(): { sql: string; parameters: readonly unknown[] } }) => {
        const c = query.compile();
        statements.push({ text: c.sql, values: [...c.parameters] });
        return 0;
      },
    };
  }
  /** The relations a statement reads with a sequential scan, planned as on a large table (seq scans priced out). */
  async function seqScanned(s: Statement): Promise<string[]> {
    await q('BEGIN; SET LOCAL enable_seqscan = off');
    try {
      const { rows: [{ 'QUERY PLAN': [plan] }] } = await q(`EXPLAIN (FORMAT JSON) ${s.text}`, s.values);
      type Node = { 'Node Type': string; 'Relation Name'?: string; Plans?: Node[] };
      const nodes = (n: Node): Node[] => [n, ...(n.Plans ?? []).flatMap(nodes)];
      return nodes(plan.Plan).filter((n) => n['Node Type'] === 'Seq Scan').map((n) => n['Relation Name']!);
    } finally {
      await q('ROLLBACK');
    }
  }

  /** The rows of `tables` one statement deletes (run in a transaction rolled back): a batch's, at most its size. */
  async function removedBy(s: Statement, tables: string[]): Promise<number> {
    const total = async () => {
      let n = 0;
      for (const table of tables) n += (await q(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n;
      return n;
    };
    await q('BEGIN');
    try {
      const before = await total();
      await q(s.text, s.values);
      return before - await total();
    } finally {
      await q('ROLLBACK');
    }
  }

  it('the webhook purge deletes the finished messages and those of endpoints disabled since before the cutoff, exactly, in batches of 2, through indexes', async () => {
    const owner = await registerUser(t, 'owner');
    const orgA = await createOrg(t, owner, 'Purge A Ltd');
    const orgB = await createOrg(t, owner, 'Purge B Ltd');
    const endpoint = async (orgId: string, disabledDaysAgo: number | null) => (await q(`INSERT INTO core.webhook_endpoints (org_id, url, secret, enabled, disabled_reason, disabled_at)
      VALUES ($1, 'https://hooks.example.test/x', '{}', $2::int IS NULL, CASE WHEN $2::int IS NOT NULL THEN 'failing' END,
              CASE WHEN $2::int IS NOT NULL THEN now() - make_interval(days => $2::int) END) RETURNING id`, [orgId, disabledDaysAgo])).rows[0].id as string;
    const messages = async (orgId: string, endpointId: string, n: number, status: string, createdDaysAgo: number, lastAttemptDaysAgo: number | null = null) => (await q(
      `INSERT INTO core.webhook_messages (org_id, endpoint_id, event_type, body, status, next_attempt_at, created_at, last_attempt_at)
       SELECT $1, $2, 'test.event', '{}', $3, CASE WHEN $3 = 'pending' THEN now() - make_interval(secs => g) END, now() - make_interval(days => $4::int),
              CASE WHEN $5::int IS NOT NULL THEN now() - make_interval(days => $5::int) END
       FROM generate_series(1, $6::int) g RETURNING id`, [orgId, endpointId, status, createdDaysAgo, lastAttemptDaysAgo, n])).rows.map((r) => r.id as string);
    const liveA = await endpoint(orgA, null);
    const liveB = await endpoint(orgB, null);
    const longOffA = await endpoint(orgA, 35);
    const longOffB = await endpoint(orgB, 40);
    const justOffA = await endpoint(orgA, 1);
    const gone = [
      ...await messages(orgA, liveA, 3, 'succeeded', 40),
      ...await messages(orgA, liveA, 2, 'failed', 31, 31),
      ...await messages(orgB, liveB, 1, 'succeeded', 50, 45),
      ...await messages(orgA, longOffA, 5, 'pending', 36, 36),
      ...await messages(orgA, longOffA, 1, 'failed', 40),
      ...await messages(orgB, longOffB, 3, 'pending', 45),
    ];
    const kept = [
      ...await messages(orgA, liveA, 2, 'succeeded', 1),
      ...await messages(orgA, liveA, 1, 'succeeded', 40, 1), // replayed by hand yesterday
      ...await messages(orgA, liveA, 2, 'pending', 40), // still being delivered
      ...await messages(orgA, longOffA, 1, 'pending', 40, 2), // attempted two days ago
      ...await messages(orgA, justOffA, 2, 'pending', 40),
      ...await messages(orgB, liveB, 1, 'failed', 20),
    ];
    const cutoff = new Date(Date.now() - 30 * 86_400_000);

    const purged = await privileged.run('privacy.retention', (db) => retentionRepository.purgeWebhookDeliveries(db, cutoff, 2));
    expect(purged).toEqual([{ orgId: orgA, count: 11 }, { orgId: orgB, count: 4 }].sort((x, y) => (x.orgId < y.orgId ? -1 : 1)));
    const left = (await q('SELECT id FROM core.webhook_messages WHERE org_id = ANY($1)', [[orgA, orgB]])).rows.map((r) => r.id).sort();
    expect(left).toEqual([...kept].sort());
    expect(gone.filter((id) => left.includes(id))).toEqual([]);
    // nothing more the second time
    expect(await privileged.run('privacy.retention', (db) => retentionRepository.purgeWebhookDeliveries(db, cutoff, 2))).toEqual([]);

    // every statement it issues reads the messages through an index
    const statements: Statement[] = [];
    await retentionRepository.purgeWebhookDeliveries(recorder(statements) as never, cutoff, 2);
    expect(statements.length).toBeGreaterThanOrEqual(1);
    for (const s of statements) expect(await seqScanned(s)).not.toContain('webhook_messages');
    // and deletes no more than a batch (the messages put back as they were, in a transaction rolled back)
    await q(`UPDATE core.webhook_messages SET status = 'succeeded', next_attempt_at = NULL, created_at = now() - interval '40 days' WHERE id = ANY($1)`, [kept.slice(0, 3)]);
    for (const s of statements) expect(await removedBy(s, ['core.webhook_messages'])).toBeLessThanOrEqual(2);
  });

  it('the session purge deletes the sessions expired a day ago or revoked 30 days ago and the tokens a day past expiry, exactly, in batches of 1, through indexes', async () => {
    const u = await registerUser(t, 'sessions');
    const { rows: [{ personal }] } = await q('SELECT core.personal_org_id($1) AS personal', [u.id]);
    const { rows: before } = await q('SELECT id FROM core.sessions WHERE user_id = $1', [u.id]);
    const sessions = async (n: number, expires: string, revoked: string | null) => (await q(`INSERT INTO core.sessions (user_id, expires_at, revoked_at)
      SELECT $1, now() + $2::interval, now() + $3::interval FROM generate_series(1, $4::int) RETURNING id`, [u.id, expires, revoked, n])).rows.map((r) => r.id as string);
    const gone = [
      ...await sessions(3, '-2 days', null),
      ...await sessions(3, '+10 days', '-31 days'),
      ...await sessions(1, '-40 days', '-35 days'), // both: counted once
    ];
    const kept = [
      ...before.map((r) => r.id as string),
      ...await sessions(1, '-1 hour', null),
      ...await sessions(1, '+10 days', '-29 days'),
      ...await sessions(2, '+10 days', null),
    ];
    const live = kept[kept.length - 1];
    const tokens = async (n: number, expires: string) => (await q(`INSERT INTO core.refresh_tokens (token_hash, session_id, user_id, expires_at)
      SELECT md5(random()::text || g), $1, $2, now() + $3::interval FROM generate_series(1, $4::int) g RETURNING token_hash`, [live, u.id, expires, n])).rows.map((r) => r.token_hash as string);
    await tokens(3, '-2 days');
    const keptTokens = await tokens(2, '-1 hour');

    const purged = await privileged.run('jobs.purge', (db) => sessionRepository.purgeExpired(db, 1));
    expect(purged).toEqual({ tokens: 3, sessions: 7, byUser: [{ userId: u.id, personalOrgId: personal, sessions: 7 }] });
    expect((await q('SELECT id FROM core.sessions WHERE user_id = $1', [u.id])).rows.map((r) => r.id).sort()).toEqual([...kept].sort());
    expect((await q('SELECT id FROM core.sessions WHERE id = ANY($1)', [gone])).rows).toEqual([]);
    const tokensLeft = (await q('SELECT token_hash FROM core.refresh_tokens WHERE session_id = $1', [live])).rows.map((r) => r.token_hash).sort();
    expect(tokensLeft).toEqual([...keptTokens].sort());
    expect(await privileged.run('jobs.purge', (db) => sessionRepository.purgeExpired(db, 1))).toEqual({ tokens: 0, sessions: 0, byUser: [] });

    // every statement it issues reads the sessions and tokens through an index
    const statements: Statement[] = [];
    await sessionRepository.purgeExpired(recorder(statements) as never, 1);
    expect(statements.length).toBeGreaterThanOrEqual(2);
    for (const s of statements) expect(await seqScanned(s)).toEqual([]);
    // and deletes no more than a batch: sessions and tokens ended as before, in a transaction rolled back
    await q(`INSERT INTO core.sessions (user_id, expires_at) SELECT $1, now() - interval '3 days' FROM generate_series(1, 3)`, [u.id]);
    await q(`INSERT INTO core.refresh_tokens (token_hash, session_id, user_id, expires_at)
      SELECT md5(random()::text || g), $1, $2, now() - interval '3 days' FROM generate_series(1, 3) g`, [live, u.id]);
    for (const s of statements) expect(await removedBy(s, ['core.sessions', 'core.refresh_tokens'])).toBeLessThanOrEqual(1);
  });
});
