import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsString, Max, Min } from 'class-validator';
import { PlatformErrors } from '../errors/platform.errors.js';
import { isCalendarDate, isUtcInstant } from './calendar-date.js';
import { UUID } from './uuid.js';
import { CURRENCY } from './money.js';

export class PageQuery {
  @ApiPropertyOptional({ minimum: 1, maximum: 200, default: 50 })
  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(200)
  limit?: number;

  @ApiPropertyOptional({ description: 'Opaque cursor from the previous page' })
  @IsOptional() @IsString()
  cursor?: string;
}

/** Opaque keyset cursors: base64url of a JSON value. */
export function encodeCursor(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

const invalidCursor = () => PlatformErrors.error('pagination.cursor', 'cursor is not valid');

/**
 * The value of a cursor from `encodeCursor`, checked by `isValid` (a cursor is client input: a forged
 * one must answer 400 pagination.cursor, never reach SQL). Undefined for no cursor.
 */
export function decodeCursor<T>(cursor: string | undefined, isValid: (value: unknown) => boolean = () => true): T | undefined {
  if (!cursor) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalidCursor();
  }
  if (!isValid(value)) throw invalidCursor();
  return value as T;
}

/** What a field of a keyset cursor may hold (every field is a string). */
const CURSOR_FIELDS = {
  /** a calendar date, YYYY-MM-DD */
  date: isCalendarDate,
  /** a UTC instant, as exactInstant or Date.toISOString() writes it */
  timestamp: isUtcInstant,
  uuid: (v: string) => UUID.test(v),
  /** a bigint (sequence numbers, ids), as text */
  integer: (v: string) => /^[0-9]{1,19}$/.test(v) && BigInt(v) <= 9223372036854775807n,
  /** a decimal amount, as text */
  decimal: (v: string) => /^-?[0-9]{1,30}(\.[0-9]{1,30})?$/.test(v),
  /** an ISO 4217 currency code */
  currency: (v: string) => CURRENCY.test(v),
  /** free text (a sort key such as a lower-cased name) */
  text: (v: string) => v.length <= 1000 && !v.includes('\0'),
} as const;
export type CursorField = keyof typeof CURSOR_FIELDS;

/**
 * The position of a keyset cursor `{ field: string, ... }` whose fields are checked by kind (a forged or stale cursor
 * answers 400 pagination.cursor before any SQL runs). Undefined for no cursor.
 *
 *   const after = decodeKeyset(q.cursor, { d: 'date', i: 'uuid' });   // { d: string; i: string } | undefined
 */
export function decodeKeyset<const S extends Record<string, CursorField>>(cursor: string | undefined, shape: S): { [K in keyof S]: string } | undefined {
  return decodeCursor<{ [K in keyof S]: string }>(cursor, (v) =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
    && Object.entries(shape).every(([field, kind]) => {
      const value = (v as Record<string, unknown>)[field];
      return typeof value === 'string' && CURSOR_FIELDS[kind](value);
    }));
}

/** A cursor that is one sequence number (a bigint id, as text). */
export const isSequenceNumber = (v: unknown): boolean => typeof v === 'string' && CURSOR_FIELDS.integer(v);

/** A keyset position [timestamp, id] (`id` must match `idPattern`). */
export const isKeysetPosition = (idPattern: RegExp) => (v: unknown): boolean =>
  Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && CURSOR_FIELDS.timestamp(v[0]) && typeof v[1] === 'string' && idPattern.test(v[1]);

/** Take `limit + 1` rows, return `limit` and the cursor of the last one if there are more. */
export function page<T>(rows: T[], limit: number, cursorOf: (row: T) => unknown): { items: T[]; nextCursor?: string } {
  const items = rows.slice(0, limit);
  return rows.length > limit ? { items, nextCursor: encodeCursor(cursorOf(items[items.length - 1])) } : { items };
}
