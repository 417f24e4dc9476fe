import { sqlState } from '../../platform/errors/database-errors.js';

/**
 * The SQLSTATE and message of a database error. Prisma wraps a failed raw query as P2010 with the
 * PostgreSQL error in meta.driverAdapterError.cause; platform sqlState() stops at "P2010" (it has
 * the shape of a SQLSTATE), so the driver error is read here first.
 */
export function pgError(err: unknown): { code?: string; message?: string } {
  const e = err as { code?: unknown; meta?: { driverAdapterError?: { cause?: unknown } } } | null;
  if (typeof e?.code === 'string' && /^P[1-9][0-9]{3}$/.test(e.code) && e.meta?.driverAdapterError?.cause) {
    return sqlState(e.meta.driverAdapterError.cause);
  }
  return sqlState(err);
}
