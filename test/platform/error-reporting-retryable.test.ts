import { describe, expect, it } from '@jest/globals';
import type { ArgumentsHost } from '@nestjs/common';
import { ErrorFilter } from '../../src/platform/errors/error.filter.js';
import { AppError } from '../../src/platform/errors/app-error.js';
import { DatabaseUnavailableError, retryableError } from '../../src/platform/errors/database-errors.js';

/** The filter on one exception: what it answered, and whether it handed the exception to error reporting. */
function filtered(exception: unknown) {
  const reported: number[] = [];
  const answer: { status?: number; body?: any; headers: Record<string, string> } = { headers: {} };
  const reply = {
    sent: false,
    header: (name: string, value: string) => { answer.headers[name] = value; return reply; },
    status: (status: number) => { answer.status = status; return reply; },
    send: (body: unknown) => { answer.body = body; return reply; },
  };
  const req = { id: 'req-1', method: 'GET', url: '/x' };
  const host = { switchToHttp: () => ({ getRequest: () => req, getResponse: () => reply }) } as unknown as ArgumentsHost;
  new ErrorFilter(undefined, (_e, _req, status) => reported.push(status)).catch(exception, host);
  return { answer, reported };
}

/**
 * The review (r3): every 5xx went to Sentry, the retryable 503s too (database_unavailable, queue_unavailable,
 * semantic.busy), which a caller can provoke at will while a dependency is down or busy, spending the quota. A 503 with
 * a Retry-After is the service telling the caller to retry, not a fault: not reported; a 500 still is.
 */
describe('error reporting leaves out the expected 503s, and only those', () => {
  it('does not report a deliberate 503 with a Retry-After (the queue, the database unreachable, a busy limit)', () => {
    const busy = AppError.unavailable('semantic.busy', 'too many semantic queries run at once', 3);
    for (const exception of [retryableError('queue_unavailable'), new DatabaseUnavailableError(new Error('connect ECONNREFUSED')), busy]) {
      const { answer, reported } = filtered(exception);
      expect(answer.status).toBe(503);
      expect(answer.headers['Retry-After']).toMatch(/^\d+$/);
      expect(reported).toEqual([]);
    }
  });

  it('does not report a database that cannot be reached: connection refused or lost (08xxx), the server shutting down (57P01-57P03)', () => {
    const pg = (code: string) => Object.assign(new Error(`pg ${code}`), { code, severity: 'FATAL' });
    const unreachable = [
      new DatabaseUnavailableError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })),
      new DatabaseUnavailableError(new Error('Connection terminated unexpectedly')),
      new DatabaseUnavailableError(new Error('Connection terminated due to connection timeout', { cause: new Error('Connection terminated unexpectedly') })),
      new DatabaseUnavailableError(pg('57P01')),
      pg('08006'), pg('57P01'), pg('57P02'), pg('57P03'),
    ];
    for (const exception of unreachable) {
      const { answer, reported } = filtered(exception);
      expect([answer.status, answer.body.error.code, reported]).toEqual([503, 'database_unavailable', []]);
    }
  });

  /**
   * The re-review (fixrev units): every 503 with a Retry-After went unreported, faults among them that a retry does not
   * fix: a statement or lock timeout (a slow query, a lock held too long), an idle-in-transaction timeout (a handler that
   * left a transaction open), the server out of disk or memory, a pool whose connections are all taken.
   */
  it('still reports the retryable 503s that show a fault: timeouts, out of resources, a jammed pool', () => {
    const pg = (code: string) => Object.assign(new Error(`pg ${code}`), { code, severity: 'ERROR' });
    const faults: [unknown, string][] = [
      [pg('57014'), 'database_timeout'],
      [pg('55P03'), 'database_timeout'],
      [pg('25P03'), 'database_unavailable'],
      [new DatabaseUnavailableError(pg('25P03')), 'database_unavailable'],
      [pg('53100'), 'database_unavailable'],
      [pg('53200'), 'database_unavailable'],
      [new DatabaseUnavailableError(new Error('timeout exceeded when trying to connect')), 'database_unavailable'],
      [new DatabaseUnavailableError(new Error('Query read timeout')), 'database_unavailable'],
    ];
    for (const [exception, code] of faults) {
      const { answer, reported } = filtered(exception);
      expect([(exception as Error).message, answer.status, answer.body.error.code, answer.headers['Retry-After']]).toEqual([(exception as Error).message, 503, code, expect.stringMatching(/^\d+$/)]);
      expect([(exception as Error).message, reported]).toEqual([(exception as Error).message, [503]]);
    }
  });

  it('still reports an unexpected failure (500) and a 503 without a Retry-After', () => {
    const failed = filtered(new Error('relation "finance.journal_entries" does not exist'));
    expect(failed.answer).toMatchObject({ status: 500, body: { error: { code: 'internal' }, requestId: 'req-1' } });
    expect(failed.reported).toEqual([500]);
    expect(filtered(new AppError(503, 'unavailable', 'no retry hint')).reported).toEqual([503]);
  });
});
