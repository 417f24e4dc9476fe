import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import helmet, { type HelmetOptions } from 'helmet';

/**
 * The headers helmet sets for `options`, computed once. @fastify/helmet called `helmet(options)` on every
 * request: it re-validated the options and re-parsed the CSP directives (dashify, quoting checks) each time,
 * ~15% of the app's CPU on `GET /health` (bench/README.md). With static options helmet's headers do not
 * depend on the request, so the same headers are set from a precomputed list.
 */
export function helmetHeaders(options: HelmetOptions): ReadonlyArray<readonly [name: string, value: string]> {
  const directives = typeof options.contentSecurityPolicy === 'object' ? options.contentSecurityPolicy.directives ?? {} : {};
  for (const [name, value] of Object.entries(directives)) {
    const values = typeof value === 'string' || value === null || value === undefined ? [] : [...(value as Iterable<unknown>)];
    // a directive computed per request (a nonce) cannot be set from a list made at start-up
    if (typeof value === 'function' || values.some((v) => typeof v === 'function')) {
      throw new Error(`CSP directive ${name} is a function: per-request CSP values are not supported by helmetHeaders`);
    }
  }
  const headers: [string, string][] = [];
  const res = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers.push([name, String(value)]);
    },
    removeHeader() {
      // X-Powered-By: Fastify never sets it
    },
  };
  let failed: unknown;
  helmet(options)({} as IncomingMessage, res as unknown as ServerResponse, (err?: unknown) => {
    failed = err;
  });
  if (failed) throw failed;
  return headers;
}

/** Sets helmet's headers on every answer (errors and unknown routes included), as @fastify/helmet did, in `onRequest`. */
export function sendSecurityHeaders(fastify: FastifyInstance, options: HelmetOptions): void {
  const headers = helmetHeaders(options);
  fastify.addHook('onRequest', (_req, reply, done) => {
    const raw = reply.raw;
    for (let i = 0; i < headers.length; i++) raw.setHeader(headers[i][0], headers[i][1]);
    done();
  });
}
