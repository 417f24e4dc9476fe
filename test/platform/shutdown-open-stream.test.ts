import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { freePort, until } from '../support/throwaway-servers.js';

/** One request on a connection of its own, its JSON answer. */
function call(port: number, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = httpRequest({ host: '127.0.0.1', port, method, path, agent: false, headers: payload ? { 'content-type': 'application/json' } : {} }, (res) => {
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
 * An open notification stream (SSE) lasts until it is ended: SIGTERM ends it when the server stops accepting
 * connections, so the drain does not wait for it the whole grace period and then cut it (exit 1). The real process
 * (src/main.ts), as test/platform/graceful-shutdown.test.ts runs it.
 */
describe('graceful shutdown with an open notification stream', () => {
  let db: TestDatabase;
  let api: ChildProcess;
  let port: number;
  let output = '';
  let exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  beforeAll(async () => {
    db = await createTestDatabase();
    port = await freePort();
    const env: Record<string, string | undefined> = {
      ...process.env, NODE_ENV: 'test', LOG_LEVEL: 'info', PORT: String(port), HOST: '127.0.0.1',
      DATABASE_URL: db.url, API_DATABASE_URL: db.apiUrl, MIGRATE_ON_START: 'false', JOBS_RELAY_INTERVAL_MS: '0',
      // a grace period longer than the test's timeout would let a stream that holds the drain be waited for
      SHUTDOWN_GRACE_MS: '20000', SHUTDOWN_DRAIN_DELAY_MS: '0',
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
    await db?.drop();
  });

  it('ends the stream when draining starts, cuts nothing, and exits 0', async () => {
    const credentials = { email: 'stream-drain@example.test', password: 'correct horse battery' };
    expect((await call(port, 'POST', '/v1/auth/register', { ...credentials, name: 'Stream' })).status).toBe(202);
    const signedIn = await call(port, 'POST', '/v1/auth/login', credentials);
    expect(signedIn.status).toBe(200);

    let status = 0;
    // how the client saw the stream end: 'end' (the server ended the response) or the connection cut under it
    const ended = new Promise<string>((resolve) => {
      const req = httpRequest({
        host: '127.0.0.1', port, path: '/v1/me/notifications/stream', agent: false,
        headers: { authorization: `Bearer ${signedIn.body.accessToken}`, accept: 'text/event-stream' },
      }, (res) => {
        status = res.statusCode!;
        res.on('data', () => undefined);
        res.on('end', () => resolve('end'));
        res.on('aborted', () => resolve('aborted'));
        res.on('error', (err) => resolve(`error: ${err.message}`));
      });
      req.on('error', (err) => resolve(`error: ${err.message}`));
      req.end();
    });
    await until('the stream is open', () => status === 200);

    api.kill('SIGTERM');
    expect(await ended).toBe('end');
    expect(await exit).toEqual({ code: 0, signal: null });
    expect(output).toMatch(/SIGTERM: draining 1 request\(s\) in flight/);
    expect(output).not.toMatch(/still running after \d+ ms: cut/);
    expect(output).toMatch(/shut down/);
  }, 60_000);
});
