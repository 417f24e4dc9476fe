import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';

// What Fastify and Node answer on their own, before a route runs, in our error shape: { error, requestId }.
// Messages never echo the request's path or headers back.

const ROUTER_ERRORS: Record<string, [status: number, code: string, message: string]> = {
  FST_ERR_MAX_PARAM_LENGTH: [414, 'uri_too_long', 'a path segment is longer than the API accepts (at most 100 characters)'],
  FST_ERR_BAD_URL: [400, 'bad_request.url', 'the path is not valid percent-encoded UTF-8'],
};

/** Fastify's `frameworkErrors`: errors of the router (a path segment too long, a malformed URL). */
export function frameworkErrors(error: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const [status, code, message] = ROUTER_ERRORS[error.code] ?? [400, 'bad_request', 'the request cannot be routed'];
  void reply.code(status).header('x-request-id', req.id).send({ error: { code, message }, requestId: req.id });
}

const CLIENT_ERRORS: Record<string, [status: number, code: string, message: string]> = {
  HPE_HEADER_OVERFLOW: [431, 'headers_too_large', 'the request headers are larger than the API accepts (16 KB with the request line)'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'request_timeout', 'the request was not received in time'],
};

const URI_TOO_LONG: [status: number, code: string, message: string] =
  [414, 'uri_too_long', 'the URL (path and query string) is longer than the API accepts: with the headers, at most 16 KB'];

/**
 * Whether Node's header limit (16 KB, the request line included) was passed in the request line: the bytes being parsed
 * when it was (`rawPacket`) hold the start of a request line and no end of it, or the end of one begun in earlier bytes.
 * A long query string is then a 414 naming the URL, not a 431 naming headers the client did not make large.
 * Best effort: `rawPacket` is only the chunk Node was parsing, so the answer depends on how TCP split the request. A
 * request line sent in small pieces, or one over 8 KB followed by large headers in the same chunk, may get
 * the other code (both are documented on every operation, and both refuse the request).
 */
function overflowInRequestLine(rawPacket: unknown): boolean {
  if (!Buffer.isBuffer(rawPacket)) return false;
  const text = rawPacket.toString('latin1', 0, Math.min(rawPacket.length, 64 * 1024));
  const eol = text.indexOf('\r\n');
  if (/^[A-Z]+ \S/.test(text)) return eol === -1 || eol > 8 * 1024;
  return eol !== -1 && / HTTP\/\d\.\d$/.test(text.slice(0, eol));
}

/** Fastify's `clientErrorHandler`: requests Node's HTTP parser refuses (headers too large, malformed requests). */
export function clientErrorHandler(error: NodeJS.ErrnoException & { rawPacket?: unknown }, socket: Socket): void {
  if (!socket.writable || error.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const [status, code, message] = error.code === 'HPE_HEADER_OVERFLOW' && overflowInRequestLine(error.rawPacket)
    ? URI_TOO_LONG
    : CLIENT_ERRORS[error.code ?? ''] ?? [400, 'bad_request', 'the request is not valid HTTP'];
  const requestId = randomUUID();
  const body = JSON.stringify({ error: { code, message }, requestId });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`,
  );
}
