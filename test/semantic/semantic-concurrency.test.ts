import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import { createTestApp, startApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { until } from '../support/throwaway-servers.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { agentsUrl, booksWithEntry, semanticUrl } from '../agents/agents-support.js';
import { SemanticService } from '../../src/modules/semantic/semantic.service.js';
import type { DatabaseService } from '../../src/platform/database/database.service.js';
import type { AppConfig } from '../../src/platform/config/config.js';
import type { Principal } from '../../src/platform/auth/principal.js';
import { AppError } from '../../src/platform/errors/app-error.js';

/**
 * The semantic queries that run at once: at most SEMANTIC_MAX_CONCURRENT_QUERIES in the process and
 * SEMANTIC_MAX_CONCURRENT_QUERIES_PER_ORG of one organization (what one query builds across rows of views joined with
 * each other is bounded by its statement timeout only). Past either, a query waits for a slot as one of at most
 * SEMANTIC_QUEUED_QUERIES_PER_ORG of its organization (this file's first app: 0, the last test's: 1), else it is
 * refused without running: 503 semantic.busy with Retry-After; an agent's query_semantic call gets a tool error. Queries are held running,
 * deterministically, by this test's own transaction holding an ACCESS EXCLUSIVE lock on finance.journal_lines (which
 * semantic.v_gl_fact reads): they wait for it until it is released.
 */
describe('semantic queries running at once', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  let ownerA: TestUser;
  let ownerB: TestUser;
  let orgA: string;
  let orgB: string;
  const SQL = 'SELECT memo, sum(base_amount) AS total FROM semantic.v_gl_fact GROUP BY memo ORDER BY memo';

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    // 3 in the process, 2 of one organization; timeouts far past the test's time (the held queries wait for a lock)
    t = await createTestApp({
      SEMANTIC_MAX_CONCURRENT_QUERIES: '3', SEMANTIC_MAX_CONCURRENT_QUERIES_PER_ORG: '2', SEMANTIC_QUEUED_QUERIES_PER_ORG: '0',
      AI_SEMANTIC_TIMEOUT_MS: '120000', DATABASE_LOCK_TIMEOUT_MS: '120000', DATABASE_STATEMENT_TIMEOUT_MS: '180000',
      AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-platform-key-0000', AI_TIMEOUT_MS: '30000', REDIS_URL: '',
    });
    ownerA = await registerUser(t, 'sem-busy-a');
    ownerB = await registerUser(t, 'sem-busy-b');
    orgA = await createOrg(t, ownerA, 'Semantic busy A');
    orgB = await createOrg(t, ownerB, 'Semantic busy B');
    await onPlan(t, orgA, 'professional');
    await booksWithEntry(t, orgA, ownerA, '100.00', 'A capital');
    await booksWithEntry(t, orgB, ownerB, '999.00', 'B capital');
  });
  afterAll(async () => {
    await t?.close();
    await llm?.close();
  });

  const query = (user: TestUser, org: string) => t.http.post(semanticUrl(org)).set(user.auth).send({ sql: SQL });
  /** A request sent now, answered later (supertest sends on then). */
  const started = (user: TestUser, org: string) => query(user, org).then((res) => res);
  const waiting = async () => (await t.db.admin.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'relation'`)).rows[0].n as number;

  /** Holds semantic.v_gl_fact's lines locked while `work` runs; released (rolled back) whatever happens. */
  async function withLinesLocked<T>(work: (release: () => Promise<void>) => Promise<T>): Promise<T> {
    const locker: pg.PoolClient = await t.db.admin.connect();
    let held = true;
    const release = async () => {
      if (!held) return;
      held = false;
      await locker.query('ROLLBACK');
    };
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE finance.journal_lines IN ACCESS EXCLUSIVE MODE');
      return await work(release);
    } finally {
      await release();
      locker.release();
    }
  }

  it('refuses at once past the organization\'s limit and the process\'s (503 semantic.busy, Retry-After, nothing run), another organization\'s query running meanwhile; runs again once they end', async () => {
    await withLinesLocked(async (release) => {
      const a1 = started(ownerA, orgA);
      const a2 = started(ownerA, orgA);
      await until('two queries of A wait for the lock', async () => (await waiting()) === 2);

      // A's third: past A's 2 (the process runs 2 of 3)
      const a3 = await query(ownerA, orgA).expect(503);
      expect(a3.headers['retry-after']).toBe('1');
      expect(a3.body).toEqual({
        error: {
          code: 'semantic.busy',
          message: '2 semantic queries of this organization are running, the most one organization may run at once (SEMANTIC_MAX_CONCURRENT_QUERIES_PER_ORG); the query did not run: retry in 1 s',
          details: { limit: 'organization', maxConcurrent: 2, running: 2 },
        },
        requestId: expect.any(String),
      });
      // it never reached the database: still the two waiting
      expect(await waiting()).toBe(2);
      // the same organization in upper case is the same organization's limit (the validation pipe gives the id in lower
      // case; the service keys its limits on lower case whatever its caller gives: see the last test)
      const upper = await query(ownerA, orgA.toUpperCase()).timeout(10_000).expect(503);
      expect(upper.body.error).toEqual({ code: 'semantic.busy', message: expect.stringContaining('2 semantic queries of this organization are running'), details: { limit: 'organization', maxConcurrent: 2, running: 2 } });
      expect(await waiting()).toBe(2);

      // B is not held by A's limit: its first query runs (the process's third)
      const b1 = started(ownerB, orgB);
      await until('B\'s query waits for the lock too', async () => (await waiting()) === 3);
      // B's second: B runs 1 of its 2, but the process runs 3 of 3
      const b2 = await query(ownerB, orgB).expect(503);
      expect(b2.headers['retry-after']).toBe('1');
      expect(b2.body.error).toEqual({
        code: 'semantic.busy',
        message: '3 semantic queries are running on this server, the most it runs at once (SEMANTIC_MAX_CONCURRENT_QUERIES); the query did not run: retry in 1 s',
        details: { limit: 'process', maxConcurrent: 3, running: 3 },
      });
      expect(await waiting()).toBe(3);

      await release();
      const answers = await Promise.all([a1, a2, b1]);
      expect(answers.map((r) => [r.status, r.body.rows])).toEqual([
        [200, [['A capital', '0.0000']]], [200, [['A capital', '0.0000']]], [200, [['B capital', '0.0000']]],
      ]);
    });
    // the slots came back: each organization runs again, two at once
    expect(await waiting()).toBe(0);
    const again = await Promise.all([query(ownerA, orgA), query(ownerA, orgA), query(ownerB, orgB)]);
    expect(again.map((r) => [r.status, r.body.rows])).toEqual([
      [200, [['A capital', '0.0000']]], [200, [['A capital', '0.0000']]], [200, [['B capital', '0.0000']]],
    ]);
  });

  it('gives an agent\'s query_semantic call a tool error while the organization runs its limit (the run goes on)', async () => {
    const agent = await t.http.post(agentsUrl(orgA)).set(ownerA.auth).send({
      name: 'Busy analyst', type: 'analyst', instructions: 'Answer from the books.', modelId: 'gpt-4o', maxOutputTokens: 1000, maxSteps: 3, tools: ['query_semantic'],
    }).expect(201);
    llm.enqueue(
      { kind: 'tool_calls', calls: [{ name: 'query_semantic', arguments: JSON.stringify({ sql: SQL }) }] },
      { kind: 'text', content: 'The books are busy; try again.' },
    );
    await withLinesLocked(async (release) => {
      const held = [started(ownerA, orgA), started(ownerA, orgA)];
      await until('two queries of A wait for the lock', async () => (await waiting()) === 2);
      const run = await t.http.post(agentsUrl(orgA, `/${agent.body.id}/runs`)).set(ownerA.auth)
        .send({ messages: [{ role: 'user', content: 'What is our cash?' }] }).expect(200);
      expect(run.body).toMatchObject({ status: 'succeeded', output: 'The books are busy; try again.' });
      expect(run.body.trace.map((s: any) => [s.stepNo, s.kind, s.name, s.status, s.errorClass])).toEqual([
        [1, 'llm_call', 'gpt-4o', 'succeeded', null], [2, 'tool_call', 'query_semantic', 'failed', 'tool_error'], [3, 'llm_call', 'gpt-4o', 'succeeded', null],
      ]);
      const message = '2 semantic queries of this organization are running, the most one organization may run at once (SEMANTIC_MAX_CONCURRENT_QUERIES_PER_ORG); the query did not run: retry in 1 s';
      expect(run.body.trace[1].errorMessage).toBe(message);
      // the model was told
      const toolMessage = llm.requests[llm.requests.length - 1].body.messages.find((m: any) => m.role === 'tool');
      expect(JSON.parse(toolMessage.content)).toEqual({ error: message });
      // as recorded
      const { rows } = await t.db.admin.query(`SELECT status, error_class, error_message FROM ai.run_steps WHERE run_id = $1 AND kind = 'tool_call'`, [run.body.id]);
      expect(rows).toEqual([{ status: 'failed', error_class: 'tool_error', error_message: message }]);
      await release();
      expect((await Promise.all(held)).map((r) => r.status)).toEqual([200, 200]);
    });
  });
  it('lets a query past the organization\'s limit wait for a slot (one queued of A), refusing the next at once; the waiting one runs once a slot is free', async () => {
    // a second app on this file's database, its organization's queue one query long
    const q = await startApp({ ...t.config, ai: { ...t.config.ai, semanticQueuedQueriesPerOrg: 1 } });
    try {
      const ask = () => q.http.post(semanticUrl(orgA)).set(ownerA.auth).send({ sql: SQL }).then((res) => res);
      await withLinesLocked(async (release) => {
        const a1 = ask();
        const a2 = ask();
        await until('two queries of A wait for the lock', async () => (await waiting()) === 2);
        // the third waits for a slot (not for the lock: it holds no connection yet); the fourth finds A's queue full
        const a3 = ask();
        // the fourth is sent once the third is queued (sent together, the fourth could take the queue's place first)
        const service = q.app.get(SemanticService) as unknown as { waiters: unknown[] };
        await until('the third query waits for a slot', async () => service.waiters.length === 1);
        const a4 = await q.http.post(semanticUrl(orgA)).set(ownerA.auth).send({ sql: SQL }).expect(503);
        expect(a4.body.error).toEqual({
          code: 'semantic.busy',
          message: '2 semantic queries of this organization are running, the most one organization may run at once (SEMANTIC_MAX_CONCURRENT_QUERIES_PER_ORG); the query did not run: retry in 1 s',
          details: { limit: 'organization', maxConcurrent: 2, running: 2 },
        });
        expect(await waiting()).toBe(2);
        await release();
        const answers = await Promise.all([a1, a2, a3]);
        expect(answers.map((r) => [r.status, r.body.rows])).toEqual([
          [200, [['A capital', '0.0000']]], [200, [['A capital', '0.0000']]], [200, [['A capital', '0.0000']]],
        ]);
      });
    } finally {
      await q.app.close();
    }
    expect(q.contract.violations).toEqual([]);
  });
});

/**
 * The service's own keys (review r7): its limits were keyed on the organization's id as its caller spelled it, so that
 * an id in upper case was another organization's limit (a caller not going through the validation pipe, which gives
 * ids in lower case). A stub database holds the queries running until released.
 */
describe('semantic queries running at once: one organization whatever the letter case of its id', () => {
  it('counts an upper-case and a mixed-case id with the lower-case one (503 semantic.busy, the organization\'s limit; nothing run)', async () => {
    const started: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    let onStart: () => void = () => {};
    const db = { tenant: async (_p: unknown, orgId: string) => { started.push(orgId); onStart(); await gate; return { rows: [], columns: [], fetched: 0 }; } };
    const config = { ai: { semanticRowCap: 10, semanticByteCap: 1000, semanticTimeoutMs: 5000, semanticMaxConcurrentQueries: 4, semanticMaxConcurrentQueriesPerOrg: 2, semanticQueuedQueriesPerOrg: 0 } };
    const service = new SemanticService(db as unknown as DatabaseService, config as unknown as AppConfig);
    const org = 'abcdef01-2345-6789-abcd-ef0123456789';
    const run = (id: string) => service.query({} as Principal, id, { requestId: 'r', ip: '127.0.0.1' }, 'SELECT 1');
    const startedCount = (n: number) => new Promise<void>((resolve) => {
      onStart = () => { if (started.length >= n) resolve(); };
      onStart();
    });
    const held = [run(org), run(org)];
    await startedCount(2);
    for (const id of [org.toUpperCase(), 'Abcdef01-2345-6789-ABCD-ef0123456789']) {
      // (ran: the stub's tenant was entered a third time)
      const outcome = await Promise.race([run(id).then(() => 'answered', (e: unknown) => e), startedCount(3).then(() => 'ran')]);
      expect(outcome).toBeInstanceOf(AppError);
      expect((outcome as AppError).code).toBe('semantic.busy');
      expect((outcome as AppError).details).toEqual({ limit: 'organization', maxConcurrent: 2, running: 2 });
    }
    expect(started).toEqual([org, org]);
    release();
    await Promise.all(held);
    // the slots came back under the one key: the upper-case id runs now
    await expect(run(org.toUpperCase())).resolves.toMatchObject({ rows: [], rowCount: 0 });
    expect(started).toEqual([org, org, org.toUpperCase()]);
  });
});
