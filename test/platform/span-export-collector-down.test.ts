import { describe, expect, it } from '@jest/globals';
import { SpanQueue } from '../../src/platform/observability/tracing.js';
import type { SpanRecord } from '../../src/platform/observability/span-export-worker.js';
import { freePort } from '../support/throwaway-servers.js';

const span = (n: number): SpanRecord => ({
  traceId: 'a'.repeat(32), spanId: n.toString(16).padStart(16, '0'), parentSpanId: undefined, parentRemote: false, scope: 'omnizen-http',
  name: 'GET /health', kind: 1, start: 1_800_000_000_000, end: 1_800_000_000_005, attributes: {}, status: 0, message: undefined, events: [],
});

/**
 * The review (r4): with the collector down a flush's export fails and the batch processor's forceFlush (and shutdown)
 * rejects; the worker answered the flush, then ended on the unhandled rejection, and every later span was dropped.
 */
describe('span export worker with the collector down', () => {
  it('answers a flush whose export failed and stays up for the next ones', async () => {
    const refused = await freePort(); // nobody listens there
    const queue = await SpanQueue.start({ spanExport: true, url: `http://127.0.0.1:${refused}/v1/traces`, protocol: 'http/json', serviceName: 'omnizen-test' });
    const stopped = () => (queue as unknown as { stopped: boolean }).stopped;
    try {
      queue.push(span(1));
      await queue.flush();
      // a second flush: a worker ended by the first one's rejection never answers it (its exit does, and marks it stopped)
      queue.push(span(2));
      await queue.flush();
      expect(stopped()).toBe(false);
    } finally {
      await queue.shutdown();
    }
    expect(stopped()).toBe(true); // ended by the shutdown, which it answered
  }, 60_000);
});
