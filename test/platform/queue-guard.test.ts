import { describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';

/**
 * guardQueue (src/platform/queue/outbox-relay.service.ts) against a real Bull queue whose Redis cannot be reached and
 * whose client gives up (no retries). Bull's process() names the worker's connection and drops that promise; it
 * rejects when the client ends before it was ever ready, and an unhandled rejection ends a Node process. Under Jest
 * an unhandled rejection is swallowed, so the queue runs in a child process of its own: it must live on, log the
 * failure and exit 0 (without the guard it exits 1 with ECONNREFUSED as the unhandled rejection).
 */
const SCRIPT = `
import 'reflect-metadata';
import Queue from 'bull';
import { guardQueue } from './src/platform/queue/outbox-relay.service.js';
const queue = new Queue('jobs', { redis: { host: '127.0.0.1', port: 1, retryStrategy: () => null, maxRetriesPerRequest: null } });
const warnings = [];
guardQueue(queue, { warn: (message) => warnings.push(message) }, 1000);
const ended = new Promise((resolve) => queue.client.once('end', resolve));
queue.process(async () => undefined);
await ended;
// the rejections settle after the client's 'end': let them surface before reporting
for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
await queue.close().catch(() => undefined);
console.log(JSON.stringify({ survived: true, warnings }));
`;

describe('the jobs queue when Redis is gone for good', () => {
  it('logs the failures of the worker it could not start instead of ending the process', async () => {
    const child = spawn(process.execPath, ['--import', './scripts/register-ts.mjs', '--input-type=module', '-e', SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect({ code, err: err.split('\n').filter((l) => /unhandled|ECONNREFUSED|Error/i.test(l)) }).toEqual({ code: 0, err: [] });
    const report = JSON.parse(out.trim().split('\n').pop()!) as { survived: boolean; warnings: string[] };
    expect(report.survived).toBe(true);
    expect(report.warnings).toEqual(expect.arrayContaining([expect.stringMatching(/^jobs worker connection not named: .*ECONNREFUSED/)]));
  });
});
