import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { freePort, until } from '../support/throwaway-servers.js';

/** One request on a connection of its own, its JSON answer. */
function call(port: number, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = httpRequest({ host: '127.0.0.1', port, method, path, agent: false, headers: { ...headers, ...(payload ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * An agent run's event stream (SSE) lasts until its run ends: SIGTERM cuts the run when the server stops accepting
 * connections (as it ends a notification stream: test/platform/shutdown-open-stream.test.ts), which finishes it cancelled
 * and streams its result, and the stream ends, so the drain does not wait for it the whole grace period and then cut it
 * (exit 1, the run left running). The real process (src/main.ts), its provider call left hanging by the double.
 */
describe('graceful shutdown with an open agent run stream', () => {
  let db: TestDatabase;
  let llm: OpenAiDouble;
  let api: ChildProcess;
  let port: number;
  let output = '';
  let exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  beforeAll(async () => {
    db = await createTestDatabase();
    llm = await startOpenAiDouble();
    port = await freePort();
    const env: Record<string, string | undefined> = {
      ...process.env, NODE_ENV: 'test', LOG_LEVEL: 'info', PORT: String(port), HOST: '127.0.0.1',
      DATABASE_URL: db.url, API_DATABASE_URL: db.apiUrl, MIGRATE_ON_START: 'false', JOBS_RELAY_INTERVAL_MS: '0',
      // a grace period longer than the test's timeout would let a stream that holds the drain be waited for
      SHUTDOWN_GRACE_MS: '20000', SHUTDOWN_DRAIN_DELAY_MS: '0',
      // the provider's call hangs for longer than the grace: only the shutdown ends the run
      AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-platform-key-0000', AI_TIMEOUT_MS: '120000', AI_MAX_RETRIES: '0',
    };
    delete env.REDIS_URL;
    delete env.NODE_OPTIONS; // jest's --experimental-vm-modules is not for the API
    api = spawn(process.execPath, ['--import', './scripts/register-ts.mjs', 'src/main.ts'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    api.stdout!.on('data', (d) => (output += d));
    api.stderr!.on('data', (d) => (output += d));
    exit = new Promise((resolve) => api.once('exit', (code, signal) => resolve({ code, signal })));
    await until('the API answers /health', async () => {
      if (api.exitCode !== null) throw new Error(`the API exited: ${output}`);
      return call(port, 'GET', '/health').then((r) => r.status === 200, () => false);
    }, 900, 100);
  }, 120_000);
  afterAll(async () => {
    if (api?.exitCode === null && api.signalCode === null) api.kill('SIGKILL');
    await llm?.close();
    await db?.drop();
  });

  it('cuts the run when draining starts: finished cancelled, its result streamed, the stream ended, nothing cut, exit 0', async () => {
    const credentials = { email: 'run-stream-drain@example.test', password: 'correct horse battery' };
    const registered = await call(port, 'POST', '/v1/auth/register', { ...credentials, name: 'Runner' });
    expect(registered.status).toBe(202);
    await db.admin.query(`UPDATE core.user_identities SET email_verified_at = now() WHERE lower(email) = $1`, [credentials.email]);
    const signedIn = await call(port, 'POST', '/v1/auth/login', credentials);
    expect(signedIn.status).toBe(200);
    const auth = { authorization: `Bearer ${signedIn.body.accessToken}` };
    const org = await call(port, 'POST', '/v1/orgs', { name: 'Drain Ltd' }, auth);
    expect(org.status).toBe(201);
    const orgId = org.body.id as string;
    await db.admin.query(`INSERT INTO hub."Subscription" (id, "userId", "appId", plan, status, "organizationId", "createdAt", "updatedAt")
      VALUES (gen_random_uuid()::text, NULL, 'omnizen', 'professional', 'active', $1, now(), now())`, [orgId]);
    const agent = await call(port, 'POST', `/v1/orgs/${orgId}/agents`, { name: 'Slow', type: 'assistant', modelId: 'gpt-4o', maxSteps: 1 }, auth);
    expect(agent.status).toBe(201);

    llm.enqueue({ kind: 'hang' });
    const hung = llm.nextHang();
    let status = 0;
    let events = '';
    // how the client saw the stream end: 'end' (the server ended the response) or the connection cut under it
    const ended = new Promise<string>((resolve) => {
      const req = httpRequest({
        host: '127.0.0.1', port, method: 'POST', path: `/v1/orgs/${orgId}/agents/${agent.body.id}/runs`, agent: false,
        headers: { ...auth, accept: 'text/event-stream', 'content-type': 'application/json' },
      }, (res) => {
        status = res.statusCode!;
        res.setEncoding('utf8');
        res.on('data', (chunk) => (events += chunk));
        res.on('end', () => resolve('end'));
        res.on('aborted', () => resolve('aborted'));
        res.on('error', (err) => resolve(`error: ${err.message}`));
      });
      req.on('error', (err) => resolve(`error: ${err.message}`));
      req.end(JSON.stringify({ messages: [{ role: 'user', content: 'take your time' }] }));
    });
    await hung; // the run's provider call is in flight
    expect(status).toBe(200);

    api.kill('SIGTERM');
    expect(await ended).toBe('end');
    expect(await exit).toEqual({ code: 0, signal: null });
    expect(output).toMatch(/SIGTERM: draining 1 request\(s\) in flight/);
    expect(output).not.toMatch(/still running after \d+ ms: cut/);
    expect(output).toMatch(/shut down/);

    const result = events.split('\n\n').find((e) => e.startsWith('event: result\n'));
    expect(result).toBeDefined();
    expect(JSON.parse(result!.slice(result!.indexOf('data: ') + 6))).toMatchObject({
      status: 'cancelled', stopReason: 'cancelled', errorClass: 'cancelled', errorMessage: 'cut as the server shut down',
    });
    const { rows } = await db.admin.query(`SELECT id, status, stop_reason, error_class, error_message, started_by FROM ai.runs WHERE org_id = $1`, [orgId]);
    expect(rows).toEqual([{
      id: expect.any(String), status: 'cancelled', stop_reason: 'cancelled', error_class: 'cancelled', error_message: 'cut as the server shut down', started_by: expect.any(String),
    }]);
    expect((await db.admin.query('SELECT count(*)::int AS n FROM ai.budget_reservations')).rows[0].n).toBe(0);
    // audited as cut by the shutdown (its actor is its starter, whose transaction finished it): not as if they cancelled it
    const { rows: audits } = await db.admin.query(`SELECT action, actor_id, after->>'reason' AS reason FROM core.audit_logs
      WHERE org_id = $1 AND entity_type = 'ai_run' AND entity_id = $2 ORDER BY id`, [orgId, rows[0].id]);
    expect(audits).toEqual([
      { action: 'ai.run_started', actor_id: rows[0].started_by, reason: null },
      { action: 'ai.run_cancelled', actor_id: rows[0].started_by, reason: 'server_shutdown' },
    ]);
  }, 60_000);
});
