import { HttpStatus } from '@nestjs/common';
import { AppError } from './app-error.js';

/** The SQLSTATE of a PostgreSQL error however it was wrapped (pg, Prisma's driver adapter, raw query). */
export function sqlState(err: unknown): { code?: string; message?: string; constraint?: string; detail?: string } {
  const seen = new Set<unknown>();
  let cur: any = err;
  while (cur && typeof cur === 'object' && !seen.has(cur)) {
    seen.add(cur);
    // A SQLSTATE is five characters; Prisma's own codes (P1xxx–P6xxx, e.g. P2010 "raw query failed")
    // look alike but wrap the PostgreSQL error in meta.driverAdapterError.cause, read next.
    const isState = (c: unknown) => (typeof c === 'string' && /^[0-9A-Z]{5}$/.test(c) && !/^P[1-9]\d{3}$/.test(c) ? c : undefined);
    const code = isState(cur.originalCode) ?? isState(cur.code) ?? isState(cur.meta?.code);
    if (code) {
      return {
        code,
        message: cur.originalMessage ?? (isState(cur.meta?.code) ? cur.meta?.message : undefined) ?? cur.message,
        constraint: cur.constraint ?? cur.meta?.constraint,
        detail: cur.detail,
      };
    }
    cur = cur.cause ?? cur.meta?.driverAdapterError?.cause ?? cur.meta?.driverAdapterError ?? cur.driverAdapterError;
  }
  return {};
}

/**
 * Maps database errors to API errors: unique → 409, foreign key → 409/404, check → 422,
 * RLS or privilege denial → 403, raised application errors keep their message.
 */
export function mapDatabaseError(err: unknown): AppError | undefined {
  const anyErr = err as any;
  // Prisma's own codes, when it produced them from the database error
  if (anyErr?.code === 'P2002') {
    return AppError.conflict('conflict.unique', `a record with the same ${[anyErr.meta?.target ?? anyErr.meta?.modelName ?? 'key'].flat().join(', ')} already exists`);
  }
  if (anyErr?.code === 'P2025') {
    return new AppError(HttpStatus.NOT_FOUND, 'not_found', anyErr.meta?.cause ?? 'record not found');
  }
  if (anyErr?.code === 'P2003') {
    return AppError.conflict('conflict.reference', 'the record refers to, or is referred to by, another record');
  }
  const { code, message, constraint } = sqlState(err);
  if (!code) return undefined;
  switch (code) {
    case '23505':
      return AppError.conflict('conflict.unique', constraint ? `a record with the same key already exists (${constraint})` : message ?? 'duplicate');
    case '23503':
      return AppError.conflict('conflict.reference', 'the record refers to, or is referred to by, another record');
    case '23514':
    case '23502':
    case '22P02':
    case '22003':
    case '22007':
    case '22008':
    case '22023':
      return new AppError(HttpStatus.UNPROCESSABLE_ENTITY, 'invalid', message ?? 'invalid value');
    case '28000':
      return AppError.unauthorized(message);
    case '42501':
      return AppError.forbidden('forbidden', message?.startsWith('new row violates row-level security')
        ? 'you are not allowed to make this change in this organization'
        : message ?? 'permission denied');
    case 'P0002':
      return AppError.notFound(message ?? 'record');
    case '40001':
    case '40P01':
      return new AppError(HttpStatus.CONFLICT, 'conflict.retry', 'the change conflicted with a concurrent one; retry');
    case 'P0001':
      return new AppError(HttpStatus.UNPROCESSABLE_ENTITY, 'rejected', message ?? 'rejected by the database');
    default:
      return undefined;
  }
}
