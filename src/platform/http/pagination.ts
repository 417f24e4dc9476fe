import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsString, Max, Min } from 'class-validator';
import { PlatformErrors } from '../errors/platform.errors.js';

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

/** A keyset position [timestamp, id] (`id` must match `idPattern`). */
export const isKeysetPosition = (idPattern: RegExp) => (v: unknown): boolean =>
  Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && !Number.isNaN(Date.parse(v[0])) && typeof v[1] === 'string' && idPattern.test(v[1]);

/** Take `limit + 1` rows, return `limit` and the cursor of the last one if there are more. */
export function page<T>(rows: T[], limit: number, cursorOf: (row: T) => unknown): { items: T[]; nextCursor?: string } {
  const items = rows.slice(0, limit);
  return rows.length > limit ? { items, nextCursor: encodeCursor(cursorOf(items[items.length - 1])) } : { items };
}
