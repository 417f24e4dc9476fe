import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { migrate, projectRoot } from '../../src/platform/database/migrator.js';
import { loadConfig } from '../../src/platform/config/config.js';
import { Sleeper } from '../../src/platform/ai/llm-provider.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { startApp, type TestApp } from '../support/app.js';
import { createTestDatabase } from '../support/database.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { agentsUrl } from './agents-support.js';

const MIGRATION = '20270211000600_api_key_runs_service_member_reads';
const before = readdirSync(join(projectRoot(), 'prisma', 'migrations')).sort().filter((m) => m < MIGRATION).at(-1)!;

/**
 * Runs an API key started before migration 20270211000600 recorded no key (ai.runs.api_key_id came with it): the
 * migration takes the key from each run's start audit row (ai.run_started, actor api_key:<id>). Without it a run queued
 * at the deploy was invisible to its own job and its key (404), and a finished one dropped out of its key's list.
 */
describe('migration 20270211000600: the runs keys started before it are theirs', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  let owner: TestUser;
  let org: string;
  let agent: string;
  let key: { id: string; auth: Record<string, string> };

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    const db = await createTestDatabase({ template: null });
    await migrate(db.url, { until: before, log: () => undefined });
    const config = loadConfig({
      ...process.env, NODE_ENV: 'test', DATABASE_URL: db.url, API_DATABASE_URL: db.apiUrl, API_DATABASE_POOL_SIZE: '4', REDIS_PREFIX: `test:${db.name}`,
      JOBS_RELAY_INTERVAL_MS: '0', MIGRATE_ON_START: 'false', REDIS_COMMAND_TIMEOUT_MS: '10000', DATABASE_LOCK_TIMEOUT_MS: '30000',
      DATABASE_STATEMENT_TIMEOUT_MS: '60000', DATABASE_CONNECT_TIMEOUT_MS: '60000',
      AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-platform-key-0000', AI_TIMEOUT_MS: '30000', AI_MAX_RETRIES: '2', REDIS_URL: '',
    });
    const { app, http, contract } = await startApp(config);
    t = { app, http, config, db, contract, close: async () => { await app.close(); await db.drop(); } };
    (t.app.get(Sleeper) as Sleeper).sleep = async () => {};
    owner = await registerUser(t, 'backfill-owner');
    org = await createOrg(t, owner, 'Upgraded Runs');
    await onEnterprisePlan(t, org);
    agent = (await t.http.post(agentsUrl(org)).set(owner.auth).send({ name: 'K', type: 'accountant', modelId: 'gpt-4o', maxSteps: 2, tools: [] }).expect(201)).body.id;
    const res = await t.http.post(`/v1/orgs/${org}/api-keys`).set(owner.auth).send({ name: 'runner', scopes: ['agents:run'] }).expect(201);
    key = { id: res.body.id, auth: { Authorization: `Bearer ${res.body.secret}` } };
  });
  afterAll(async () => {
    await t?.close();
    await llm?.close();
  });

  it('a key\'s run queued at the deploy is run by its job and read by its key; its finished run is in its list; a person\'s run stays without a key', async () => {
    const hasColumn = async () => (await t.db.admin.query(`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_schema = 'ai' AND table_name = 'runs' AND column_name = 'api_key_id'`)).rows[0].n;
    expect(await hasColumn()).toBe(0);
    const run = (auth: Record<string, string>, async: boolean) => t.http.post(agentsUrl(org, `/${agent}/runs${async ? '?async=true' : ''}`)).set(auth).send({ messages: [{ role: 'user', content: 'hi' }] });
    llm.enqueue({ kind: 'text', content: 'finished before', usage: { prompt: 10, completion: 1 } });
    const finished = (await run(key.auth, false).expect(200)).body.id as string;
    llm.enqueue({ kind: 'text', content: 'for the owner', usage: { prompt: 10, completion: 1 } });
    const person = (await run(owner.auth, false).expect(200)).body.id as string;
    // queued at the deploy: its job not yet delivered
    const queued = (await run(key.auth, true).expect(202)).body.id as string;

    const applied = await migrate(t.db.url, { log: () => undefined });
    expect(applied).toContain(MIGRATION);
    expect(await hasColumn()).toBe(1);
    const rows = (await t.db.admin.query(`SELECT id::text, status, api_key_id::text FROM ai.runs WHERE org_id = $1 ORDER BY id`, [org])).rows;
    expect(rows).toEqual([
      { id: finished, status: 'succeeded', api_key_id: key.id }, { id: person, status: 'succeeded', api_key_id: null },
      { id: queued, status: 'running', api_key_id: key.id },
    ].sort((a, b) => a.id.localeCompare(b.id)));
    const audit = (await t.db.admin.query(`SELECT entity_id, before, after FROM core.audit_logs WHERE org_id = $1 AND action = 'ai.run_api_key_recorded' AND actor_id = $2 ORDER BY entity_id`,
      [org, `migration:${MIGRATION.slice(0, 14)}`])).rows;
    expect(audit).toEqual([finished, queued].sort().map((id) => ({ entity_id: id, before: { apiKeyId: null }, after: { apiKeyId: key.id } })));

    // the job, delivered after the deploy, runs the key's run; the key reads its outcome and lists both its runs
    llm.enqueue({ kind: 'text', content: 'queued before', usage: { prompt: 10, completion: 1 } });
    await t.app.get(OutboxRelay).drain();
    const got = await t.http.get(agentsUrl(org, `/${agent}/runs/${queued}`)).set(key.auth);
    expect([got.status, got.body.error?.code]).toEqual([200, undefined]);
    expect(got.body).toMatchObject({ id: queued, status: 'succeeded', output: 'queued before', apiKeyId: key.id });
    const list = (await t.http.get(agentsUrl(org, `/${agent}/runs`)).set(key.auth).expect(200)).body.items;
    expect(list.map((r: any) => r.id).sort()).toEqual([finished, queued].sort());
    expect((await t.http.get(`/v1/orgs/${org}/ai/usage`).set(key.auth).expect(200)).body.runs).toBe(2);
    expect((await t.http.get(agentsUrl(org, `/${agent}/runs/${person}`)).set(key.auth).expect(404)).body.error.code).toBe('run.not_found');
  });
});
