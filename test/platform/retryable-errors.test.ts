import { describe, expect, it } from '@jest/globals';
import { DatabaseUnavailableError, isTransientSqlState, mapDatabaseError } from '../../src/platform/errors/database-errors.js';
import { transientFailure } from '../../src/modules/knowledge/knowledge-ingestion.service.js';

/** One mapping turns a database that is down or slow into a retryable 503 (the fault tests show it end to end). */
describe('retryable database failures', () => {
  const mapped = (err: unknown) => {
    const e = mapDatabaseError(err);
    return e && { status: e.status, code: e.code, retryAfter: e.retryAfterSeconds };
  };

  it('a statement timeout (57014) and a lock timeout (55P03) are 503 database_timeout, Retry-After 2', () => {
    expect(mapped({ code: '57014', message: 'canceling statement due to statement timeout' })).toEqual({ status: 503, code: 'database_timeout', retryAfter: 2 });
    expect(mapped({ code: '55P03', message: 'canceling statement due to lock timeout' })).toEqual({ status: 503, code: 'database_timeout', retryAfter: 2 });
  });

  it('a lost or refused connection, a server shutting down or starting, too many connections are 503 database_unavailable, Retry-After 5', () => {
    const unavailable = { status: 503, code: 'database_unavailable', retryAfter: 5 };
    expect(mapped(new DatabaseUnavailableError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })))).toEqual(unavailable);
    for (const code of ['57P01', '57P02', '57P03', '53300', '08006', '08001', '25P03']) expect(mapped({ code, message: 'x' })).toEqual(unavailable);
  });

  it('one list of transient SQLSTATEs: the server out of memory, disk or connections, or ending an idle session, is 503 too; the knowledge job retries exactly those', () => {
    const unavailable = { status: 503, code: 'database_unavailable', retryAfter: 5 };
    for (const code of ['53000', '53100', '53200', '57P05']) expect(mapped({ code, message: 'x' })).toEqual(unavailable);
    expect(mapped({ code: '40P01', message: 'deadlock detected' })).toMatchObject({ status: 409, code: 'conflict.retry' });
    const transient = ['08006', '40001', '40P01', '53000', '53100', '53200', '53300', '57014', '55P03', '25P03', '57P01', '57P02', '57P03', '57P05'];
    // a deferred constraint refused at commit, a configured limit, a server fault or corruption: the same work fails again
    const lasting = ['40002', '53400', '58030', 'XX000', '23505', '22003', '42501', '57P04'];
    expect(transient.filter((c) => !isTransientSqlState(c))).toEqual([]);
    expect(lasting.filter((c) => isTransientSqlState(c))).toEqual([]);
    expect([...transient, ...lasting].filter((code) => transientFailure({ code, message: 'x' }) !== isTransientSqlState(code))).toEqual([]);
    for (const code of lasting) expect(mapped({ code, message: 'x' })?.status ?? 500).not.toBe(503);
  });

  it('leaves other errors to their own mapping', () => {
    expect(mapped({ code: '23505', message: 'duplicate key' })).toMatchObject({ status: 409 });
    expect(mapped(new Error('a bug'))).toBeUndefined();
  });
});
