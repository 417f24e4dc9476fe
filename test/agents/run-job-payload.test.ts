import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Job as BullJob, Queue } from 'bull';
import { JOBS_QUEUE_TOKEN, OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, hasRedis, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { agentsUrl } from './agents-support.js';

/**
 * The job of a run started ?async=true names who started it by ids only: its payload, kept in the outbox row and in
 * Redis (Bull's copy of the job), held the starter's e-mail or their API key's secret hash. The job reads those on its
 * privileged path, and the run still completes as its starter.
 */
(hasRedis ? describe : describe.skip)('the agents.run job\'s payload (REDIS_URL set)', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  let owner: TestUser;
  let org: string;
  let agent: string;
  let queue: Queue;

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    t = await createTestApp({ AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-platform-key-0000', REDIS_URL: process.env.REDIS_URL });
    queue = t.app.get<Queue>(JOBS_QUEUE_TOKEN);
    owner = await registerUser(t, 'job-payload-owner');
    org = await createOrg(t, owner, 'Job Payload Ltd');
    await onEnterprisePlan(t, org);
    agent = (await t.http.post(agentsUrl(org)).set(owner.auth).send({ name: 'J', type: 'assistant', modelId: 'gpt-4o', maxSteps: 1 }).expect(201)).body.id;
  });
  afterAll(async () => {
    await t?.close();
    await llm?.close();
  });

  /** Starts a run ?async=true as `auth`, relays its job through Bull and waits for it: the outbox row's and Bull's copy of its payload. */
  const runAsJob = async (auth: Record<string, string>) => {
    llm.enqueue({ kind: 'text', content: 'done', usage: { prompt: 10, completion: 1 } });
    const runId = (await t.http.post(agentsUrl(org, `/${agent}/runs?async=true`)).set(auth).send({ messages: [{ role: 'user', content: 'hi' }] }).expect(202)).body.id as string;
    const { rows: [row] } = await t.db.admin.query(`SELECT id::text, payload FROM core.outbox WHERE org_id = $1 AND topic = 'agents.run' AND payload->>'runId' = $2`, [org, runId]);
    // this job's completion (other outbox rows, the domain events, are relayed with it)
    const jobId = `outbox-${row.id}`;
    const completed = new Promise<void>((resolve, reject) => {
      const onCompleted = (job: BullJob) => {
        if (String(job.id) !== jobId) return;
        queue.off('completed', onCompleted).off('failed', onFailed);
        resolve();
      };
      const onFailed = (job: BullJob, err: Error) => {
        if (String(job.id) !== jobId) return;
        queue.off('completed', onCompleted).off('failed', onFailed);
        reject(err);
      };
      queue.on('completed', onCompleted).on('failed', onFailed);
    });
    await t.app.get(OutboxRelay).drain();
    await completed;
    const bull = await queue.getJob(jobId);
    return { runId, outbox: JSON.stringify(row.payload), bull: JSON.stringify(bull!.data) };
  };

  it('holds no e-mail of a person who started a run, and the run completes', async () => {
    const { runId, outbox, bull } = await runAsJob(owner.auth);
    for (const copy of [outbox, bull]) {
      expect(copy).toContain(runId); // the copy read is the run's
      expect(copy.toLowerCase()).not.toContain(owner.email.toLowerCase());
    }
    expect(JSON.parse(outbox)).toMatchObject({ runId, agentId: agent, starter: { kind: 'user', userId: owner.id } });
    const run = (await t.http.get(agentsUrl(org, `/${agent}/runs/${runId}`)).set(owner.auth).expect(200)).body;
    expect(run).toMatchObject({ status: 'succeeded', output: 'done', startedBy: owner.id });
  });

  it('holds no secret hash of the API key that started a run, and the run completes', async () => {
    const key = (await t.http.post(`/v1/orgs/${org}/api-keys`).set(owner.auth).send({ name: 'runner', scopes: ['agents:run'] }).expect(201)).body;
    const { rows: [{ secret_hash: hash }] } = await t.db.admin.query('SELECT secret_hash FROM core.api_keys WHERE id = $1', [key.id]);
    const { runId, outbox, bull } = await runAsJob({ Authorization: `Bearer ${key.secret}` });
    for (const copy of [outbox, bull]) {
      expect(copy).toContain(runId);
      expect(copy).not.toContain(hash);
      expect(copy).not.toContain(key.secret);
    }
    expect(JSON.parse(outbox)).toMatchObject({ runId, agentId: agent, starter: { kind: 'apiKey', keyId: key.id } });
    const run = (await t.http.get(agentsUrl(org, `/${agent}/runs/${runId}`)).set(owner.auth).expect(200)).body;
    expect(run).toMatchObject({ status: 'succeeded', output: 'done', startedBy: null });
    const { rows: [stored] } = await t.db.admin.query('SELECT api_key_id FROM ai.runs WHERE id = $1', [runId]);
    expect(stored.api_key_id).toBe(key.id);
  });
});
