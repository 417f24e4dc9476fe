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
describe('error reporting leaves out the retryable 503s', () => {
  it('does not report a 503 that carries a Retry-After (the queue, the database, a busy limit)', () => {
    const busy = AppError.unavailable('semantic.busy', 'too many semantic queries run at once', 3);
    for (const exception of [retryableError('queue_unavailable'), new DatabaseUnavailableError(new Error('connect ECONNREFUSED')), busy]) {
      const { answer, reported } = filtered(exception);
      expect(answer.status).toBe(503);
      expect(answer.headers['Retry-After']).toMatch(/^\d+$/);
      expect(reported).toEqual([]);
    }
  });

  it('still reports an unexpected failure (500) and a 503 without a Retry-After', () => {
    const failed = filtered(new Error('relation "finance.journal_entries" does not exist'));
    expect(failed.answer).toMatchObject({ status: 500, body: { error: { code: 'internal' }, requestId: 'req-1' } });
    expect(failed.reported).toEqual([500]);
    expect(filtered(new AppError(503, 'unavailable', 'no retry hint')).reported).toEqual([503]);
  });
});
