import type { FastifyInstance } from 'fastify';
import type { Metrics } from './metrics.js';

/** Every answered request counted by route template (never the raw path: ids would make the label set unbounded). */
export function recordHttpMetrics(fastify: FastifyInstance, metrics: Metrics): void {
  fastify.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions?.url ?? 'unmatched';
    metrics.httpRequests.inc(route, req.method, String(reply.statusCode));
    metrics.httpDuration.observe(reply.elapsedTime / 1000, route, req.method);
    done();
  });
}
