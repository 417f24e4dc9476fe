import type { FastifyRequest } from 'fastify';
import { AppError } from '../errors/app-error.js';

type Done = (err: Error | null, body?: unknown) => void;
type JsonParser = (req: FastifyRequest, body: string, done: Done) => void;

/** A parameter of a Content-Type: `; name=token` or `; name="quoted string"` (RFC 9110 5.6.4, 5.6.6). */
const PARAMETER = /;\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;

/**
 * The charset a Content-Type names (lower case, unquoted), or undefined when it names none or an empty one (`charset=`).
 * `application/json; charset="UTF-8"` and `charset="utf\-8"` (a quoted pair) name utf-8.
 */
export function charsetOf(contentType: string | undefined): string | undefined {
  if (!contentType) return undefined;
  for (const [, name, raw] of contentType.matchAll(PARAMETER)) {
    if (name.toLowerCase() !== 'charset') continue;
    const value = raw.trim();
    const quoted = /^"((?:[^"\\]|\\.)*)"$/.exec(value);
    return (quoted ? quoted[1].replace(/\\(.)/g, '$1') : value).trim().toLowerCase() || undefined;
  }
  return undefined;
}

/** The charsets a JSON body may name: UTF-8, and US-ASCII, a subset of it (RFC 8259 11 defines none; 8.1: UTF-8). */
const UTF8_CHARSETS = new Set(['utf-8', 'utf8', 'us-ascii']);

/** The offset of the first byte that is not part of well-formed UTF-8 (only called once decoding failed). */
export function firstInvalidUtf8Byte(bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i];
    const [n, min, max] = b < 0x80 ? [0, 0, 0] : b >= 0xc2 && b <= 0xdf ? [1, 0x80, 0x7ff] : b >= 0xe0 && b <= 0xef ? [2, 0x800, 0xffff] : b >= 0xf0 && b <= 0xf4 ? [3, 0x10000, 0x10ffff] : [-1, 0, 0];
    if (n < 0) return i;
    let cp = n === 0 ? b : b & (0x3f >> n);
    for (let k = 1; k <= n; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    // overlong forms, UTF-16 surrogates (ED A0 80: CESU-8), beyond U+10FFFF
    if (n > 0 && (cp < min || cp > max || (cp >= 0xd800 && cp <= 0xdfff))) return i;
    i += n + 1;
  }
  return bytes.length;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The JSON body parser: the body must be UTF-8 (RFC 8259 8.1). Decoding it leniently, as Fastify does, turned an invalid
 * byte (a Latin-1 é, the UTF-8 of a lone surrogate) into U+FFFD and stored that with a 2xx: the client's value changed
 * without an error. A Content-Type naming another charset is a 415, a body that is not UTF-8 a 400 bad_request.json
 * naming the byte; the rest is `parse` (Fastify's JSON parser: empty body, syntax, `__proto__` and `constructor` keys).
 * The Nest adapter keeps the raw bytes on req.rawBody before this runs (the Stripe webhook verifies its signature over them).
 */
export function utf8JsonParser(parse: JsonParser): (req: FastifyRequest, body: Buffer, done: Done) => void {
  return (req, body, done) => {
    const charset = charsetOf(req.headers['content-type']);
    if (charset !== undefined && !UTF8_CHARSETS.has(charset)) {
      done(new AppError(415, 'unsupported_media_type', 'send the JSON body in UTF-8: the Content-Type names another charset (charset=utf-8, or none)'));
      return;
    }
    let text: string;
    try {
      text = utf8.decode(body);
    } catch {
      done(new AppError(400, 'bad_request.json', `the request body is not valid UTF-8 (byte ${firstInvalidUtf8Byte(body)}): JSON is sent in UTF-8`));
      return;
    }
    parse(req, text, done);
  };
}

/**
 * The parser of the media types no operation takes (a form's, text/plain): 415 whatever the route, as the document says.
 * An empty one is no body, as it was before this parser (`curl -X POST -d ''`, `fetch` with body ''): the route runs as
 * without one, and a DTO with required fields answers its 400 validation_failed.
 */
export function refusedMediaType(_req: FastifyRequest, body: Buffer, done: Done): void {
  if (body.length === 0) done(null, undefined);
  else done(new AppError(415, 'unsupported_media_type', 'send the body as application/json'));
}
