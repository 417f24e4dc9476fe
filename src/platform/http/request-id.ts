import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';

const WELL_FORMED = /^[\w.-]{1,128}$/;

/** Fastify's `genReqId`: the caller's x-request-id when well-formed, a UUID otherwise. */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && WELL_FORMED.test(given) ? given : randomUUID();
}

/**
 * Sends the request id back in x-request-id on every answer. `onRequest` runs before the body is
 * parsed, so even a request whose body cannot be parsed (or an unknown route) gets it.
 */
export function echoRequestId(fastify: FastifyInstance): void {
  fastify.addHook('onRequest', (req, reply, done) => {
    reply.header('x-request-id', req.id);
    done();
  });
}
