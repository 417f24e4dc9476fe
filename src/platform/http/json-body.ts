import { applyDecorators } from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import { ApiConsumes } from '@nestjs/swagger';
import type { FastifyInstance, FastifyRequest } from 'fastify';
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
 * On an operation that takes another media type (the uploads: MultipartBody), JSON is refused as any other type is
 * (refusedMediaType: a 415 naming multipart/form-data); it reached the upload, which answered 400 knowledge.file_missing.
 */
export function utf8JsonParser(parse: JsonParser): (req: FastifyRequest, body: Buffer, done: Done) => void {
  return (req, body, done) => {
    if (bodyMediaTypeOf(req) !== 'application/json') {
      refusedMediaType(req, body, done);
      return;
    }
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
 * An operation whose body is multipart/form-data (the knowledge uploads): documented so, and marked on its Fastify route,
 * where a 415 refusing another media type reads it (`bodyMediaType`) to name the one to send.
 */
export function MultipartBody(): MethodDecorator {
  return applyDecorators(ApiConsumes('multipart/form-data'), RouteConfig({ bodyMediaType: 'multipart/form-data' }));
}

/** The media type the request's operation takes a body in: multipart/form-data on an upload (MultipartBody), else JSON. */
export function bodyMediaTypeOf(req: FastifyRequest): string {
  return (req.routeOptions?.config as { bodyMediaType?: string } | undefined)?.bodyMediaType ?? 'application/json';
}

/**
 * The parser of the media types no operation takes (a form's, text/plain, and `*`: any other, or none with a chunked
 * body): 415 whatever the route, as the document says. An empty one is no body, as it was before this parser
 * (`curl -X POST -d ''`, `fetch` with body '', `Transfer-Encoding: chunked` with no chunk): the route runs as without
 * one, and a DTO with required fields answers its 400 validation_failed. (Fastify had no parser for `*`: an empty body
 * of another type, or chunked without a Content-Type, was a 415 where Content-Length: 0 ran as no body.)
 */
export function refusedMediaType(req: FastifyRequest, body: Buffer, done: Done): void {
  if (body.length === 0 || req.is404) done(null, undefined);
  else done(new AppError(415, 'unsupported_media_type', `send the body as ${bodyMediaTypeOf(req)}`));
}

/** The codings a Content-Encoding or Transfer-Encoding lists, lower case (RFC 9110 8.4, RFC 9112 6.1: case-insensitive). */
function codingsOf(header: string | string[] | undefined): string[] {
  return (Array.isArray(header) ? header.join(',') : header ?? '').split(',').map((c) => c.split(';')[0].trim().toLowerCase()).filter(Boolean);
}

/** The methods whose body Fastify does not read (nor the routes: a GET's body is ignored, whatever its coding). */
const BODYLESS_METHODS = new Set(['GET', 'HEAD', 'TRACE']);

/**
 * No operation decodes a coded body: a body sent with a Content-Encoding other than identity (gzip, br...) was read as if
 * it were plain, so a proxy or WAF that honours the coding saw another body than the one the API stored. It is a 415
 * naming the coding, with `Accept-Encoding: identity` (RFC 9110 15.5.16, 12.5.3). A Transfer-Encoding with a coding other
 * than chunked before the final chunked (Node's parser takes the chunking off and leaves the rest; one without a final
 * chunked is Node's own 400) is a 400: the client's mistake, not a 501 a client could send to raise the server-error
 * alert and report to Sentry at will. Once, in `preParsing` (after every `onRequest` hook: the answer has the security
 * headers, and is counted in flight), before any body is read, on every route (Stripe's raw one too). Both answers close
 * the connection (as Fastify does after a parser's error): the refused body is not read to its end on a kept-alive one.
 * A request without a body (no Content-Length or 0, no Transfer-Encoding) is not refused for the header; a chunked one
 * with a Content-Encoding is refused before its size is known, even when it turns out empty.
 */
export function refuseCodedBodies(fastify: FastifyInstance): void {
  fastify.addHook('preParsing', (req, reply, payload, done) => {
    if (BODYLESS_METHODS.has(req.method)) return done(null, payload);
    const { 'transfer-encoding': te, 'content-length': length, 'content-encoding': ce } = req.headers;
    const transfer = codingsOf(te).filter((c) => c !== 'chunked');
    if (transfer.length > 0) {
      void reply.header('connection', 'close');
      return done(new AppError(400, 'unsupported_transfer_coding',
        `the Transfer-Encoding ${transfer.join(', ')} is not supported: send the body with Content-Length, or chunked only`));
    }
    const content = codingsOf(ce).filter((c) => c !== 'identity');
    if (content.length > 0 && (te !== undefined || Number(length ?? 0) > 0)) {
      void reply.header('accept-encoding', 'identity').header('connection', 'close');
      return done(new AppError(415, 'unsupported_media_type',
        `the body is sent with Content-Encoding ${content.join(', ')}: send it uncompressed (no Content-Encoding, or identity)`));
    }
    done(null, payload);
  });
}
