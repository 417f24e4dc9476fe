import { createHash } from 'node:crypto';
import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import { ApiHeader } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { PlatformErrors } from '../errors/platform.errors.js';

/**
 * The `Idempotency-Key` header of a create (README "When a dependency fails": clients retry writes with it). Module-
 * neutral: the header's reading and validation, its OpenAPI parameter, and the hash of the request a replay compares.
 * Each module stores the key with what it created (unique per organization) and answers with its own codes: the same
 * key with the same request replays the first answer, with another request is a 409.
 */
export const IDEMPOTENCY_KEY_HEADER = 'Idempotency-Key';

/** The longest key (the stored columns check the same: 1 to 200 characters). */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 200;

/**
 * The key a header value carries: undefined when absent or empty (no key, as without the header); a value longer than
 * MAX_IDEMPOTENCY_KEY_LENGTH is a 400 validation_failed naming the header.
 */
export function idempotencyKeyOf(value: string | string[] | undefined): string | undefined {
  // a repeated header arrives as an array (or joined by Node): either way one value, checked whole
  const key = Array.isArray(value) ? value.join(', ') : value;
  if (!key) return undefined;
  if (key.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    const problem = `${IDEMPOTENCY_KEY_HEADER} must be at most ${MAX_IDEMPOTENCY_KEY_LENGTH} characters`;
    throw PlatformErrors.error('validation_failed', problem, [{ field: IDEMPOTENCY_KEY_HEADER, problems: [problem] }]);
  }
  return key;
}

const readKey = createParamDecorator((_: unknown, ctx: ExecutionContext): string | undefined =>
  idempotencyKeyOf(ctx.switchToHttp().getRequest<FastifyRequest>().headers['idempotency-key']));

/**
 * A handler parameter taking the request's Idempotency-Key (`@IdempotencyKey('...') key: string | undefined`), validated
 * as `idempotencyKeyOf` does; it also documents the header on the operation (`description`: what a replay answers there).
 */
export const IdempotencyKey = (description: string): ParameterDecorator => {
  const param = readKey();
  return (target, key, index) => {
    param(target, key, index);
    // parameter decorators run before the method's: the handler already is target[key]
    const handler = key === undefined ? undefined : (target as Record<string | symbol, unknown>)[key];
    if (typeof handler !== 'function' || key === undefined) return;
    ApiHeader({ name: IDEMPOTENCY_KEY_HEADER, required: false, description, schema: { type: 'string', minLength: 1, maxLength: MAX_IDEMPOTENCY_KEY_LENGTH } })(
      target, key, { value: handler } as TypedPropertyDescriptor<unknown>);
  };
};

/** JSON with every object's keys in order (undefined values left out, as JSON.stringify does). */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}

/**
 * What a replay of a key compares: the client's request as sent (its validated body, plus whatever else names what it
 * creates, such as a path id; never the key itself), hashed: sha256 of its canonical JSON, 64 hex digits. Not the
 * rows the service builds from it, which a later change of settings would alter: the retry of a request is its replay.
 */
export function requestHash(request: unknown): string {
  return createHash('sha256').update(canonicalJson(request)).digest('hex');
}
