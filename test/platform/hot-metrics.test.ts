import { describe, expect, it } from '@jest/globals';
import { Counter, Histogram, Registry } from 'prom-client';
import { HotCounter, HotHistogram } from '../../src/platform/observability/hot-metrics.js';

/**
 * The hot-path metrics (hot-metrics.ts) are exposed exactly as prom-client exposes its own Counter and Histogram
 * for the same observations: same lines, same order, same label order (le first), same HELP and TYPE.
 */
describe('hot metrics', () => {
  const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
  const observations: [number, string, string][] = [
    [0.004, '/v1/orgs/:orgId', 'GET'], [0.005, '/v1/orgs/:orgId', 'GET'], [0.0051, '/v1/orgs/:orgId', 'GET'], [12, '/v1/orgs/:orgId', 'GET'],
    [0.3, '/v1/orgs', 'POST'], [0.3, '/v1/orgs/:orgId', 'PATCH'], [0, 'unmatched', 'GET'], [10, '/v1/orgs', 'POST'],
  ];

  it('a histogram by route and method reads as prom-client\'s', async () => {
    const theirs = new Registry();
    const ours = new Registry();
    const h = new Histogram({ name: 'x_seconds', help: 'time, by route and method', labelNames: ['route', 'method'], buckets, registers: [theirs] });
    const hot = new HotHistogram('x_seconds', 'time, by route and method', ['route', 'method'], buckets, ours);
    for (const [v, route, method] of observations) {
      h.observe({ route, method }, v);
      hot.observe(v, route, method);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.metrics()).toContain('x_seconds_bucket{le="0.005",route="/v1/orgs/:orgId",method="GET"} 2');
  });

  it('a counter by three labels reads as prom-client\'s, and a label value with quotes is escaped', async () => {
    const theirs = new Registry();
    const ours = new Registry();
    const c = new Counter({ name: 'y_total', help: 'answers', labelNames: ['route', 'method', 'status'], registers: [theirs] });
    const hot = new HotCounter('y_total', 'answers', ['route', 'method', 'status'], ours);
    for (const [, route, method] of [...observations, [0, 'a "quoted"\\route', 'GET'] as [number, string, string]]) {
      c.inc({ route, method, status: '200' });
      hot.inc(route, method, '200');
    }
    c.inc({ route: '/v1/orgs', method: 'POST', status: '409' });
    hot.inc('/v1/orgs', 'POST', '409');
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.metrics()).toContain('y_total{route="/v1/orgs",method="POST",status="200"} 2');
  });

  it('one label, and no series before the first observation', async () => {
    const theirs = new Registry();
    const ours = new Registry();
    const h = new Histogram({ name: 'z_seconds', help: 'statement time', labelNames: ['operation'], buckets: [0.001, 0.005], registers: [theirs] });
    const hot = new HotHistogram('z_seconds', 'statement time', ['operation'], [0.001, 0.005], ours);
    expect(await ours.metrics()).toBe(await theirs.metrics());
    h.observe({ operation: 'ledger.repository.post' }, 0.002);
    hot.observe(0.002, 'ledger.repository.post');
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });
});
