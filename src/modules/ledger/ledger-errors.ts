import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import { catchError, Observable, throwError } from 'rxjs';
import { mapDatabaseError, sqlState } from '../../platform/errors/database-errors.js';

/**
 * Prisma reports an error raised by SQL in a raw query as P2010 with the SQLSTATE in meta.code;
 * the shared mapper reads the P2010 first and answers 500. The ledger's rules are RAISEd in SQL,
 * so its routes map the SQLSTATE themselves (P0001 → 422 naming the rule, 42501 → 403, ...).
 */
/** The PostgreSQL SQLSTATE and message under Prisma's P2010 wrapper (or wherever sqlState finds it). */
export function postgresState(err: unknown): { code?: string; message?: string } {
  const e = err as { code?: unknown; meta?: unknown };
  return e?.code === 'P2010' && e.meta ? sqlState(e.meta) : {};
}

export function ledgerDatabaseError(err: unknown): unknown {
  const state = postgresState(err);
  return (state.code && mapDatabaseError(state)) || err;
}

@Injectable()
export class LedgerErrorInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(catchError((err) => throwError(() => ledgerDatabaseError(err))));
  }
}
