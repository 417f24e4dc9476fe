import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Metrics } from './metrics.js';

/** The status an abandoned request is counted under (nginx's "client closed request"): it never had an answer. */
export const CLIENT_CLOSED_REQUEST = '499';

/**
 * Every request counted once, by route template (never the raw path: ids would make the label set unbounded): when its
 * answer has been sent (onResponse), or, when the client closed the connection before that (a timeout of its own, a
 * user who left), as status 499 with the time until then. Fastify runs no onResponse for an abandoned request, and its
 * onRequestAbort only while the request's body is being read (Node marks a request aborted only then): the answer's
 * own 'close' before it finished is what tells. A slow route whose callers give up would otherwise show neither its
 * requests nor its latency. The API may still finish such a request (its answer goes nowhere): not counted again. An
 * answer whose head was sent but whose body never finished (a stream closed by the client) counts under its status,
 * without a duration.
 */
export function recordHttpMetrics(fastify: FastifyInstance, metrics: Metrics): void {
  const count = (req: FastifyRequest, reply: FastifyReply, status: string, timed = true) => {
    const route = req.routeOptions?.url ?? 'unmatched';
    metrics.httpRequests.inc(route, req.method, status);
    if (timed) metrics.httpDuration.observe(reply.elapsedTime / 1000, route, req.method);
  };
  fastify.addHook('onRequest', (req, reply, done) => {
    const res = reply.raw;
    res.once('close', () => {
      if (res.writableFinished) return;
      // no answer yet: abandoned (499). Its status line sent but its body unfinished (a notifications stream the client
      // closed, a download stopped part-way, a body that failed on the way): the client had that status; the time until
      // the close is a stream's lifetime, no latency
      if (!res.headersSent) count(req, reply, CLIENT_CLOSED_REQUEST);
      else count(req, reply, String(res.statusCode), false);
    });
    done();
  });
  fastify.addHook('onResponse', (req, reply, done) => {
    // Fastify runs it on the answer's 'error' too: one that never finished is counted at its 'close', as abandoned
    if (reply.raw.writableFinished) count(req, reply, String(reply.statusCode));
    done();
  });
}
