import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { withTimeout } from '../../src/platform/clock/clock.js';

// The one timeout helper of the health probes and the jobs queue's calls. Jest's fake timers move time: no waiting.
describe('withTimeout', () => {
  beforeEach(() => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask'] });
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  it('answers what the promise answers, and leaves no timer behind', async () => {
    await expect(withTimeout(Promise.resolve('pong'), 2000, () => new Error('timeout'))).resolves.toBe('pong');
    expect(jest.getTimerCount()).toBe(0);
  });

  it('passes the promise\'s own rejection through, and leaves no timer behind', async () => {
    await expect(withTimeout(Promise.reject(new Error('connection refused')), 2000, () => new Error('timeout'))).rejects.toThrow('connection refused');
    expect(jest.getTimerCount()).toBe(0);
  });

  it('rejects with onTimeout() once `ms` pass first, not before', async () => {
    let outcome: unknown = 'pending';
    const never = new Promise<string>(() => undefined);
    const timed = withTimeout(never, 2000, () => new Error('the jobs queue did not answer'))
      .then((v) => (outcome = v), (err: Error) => (outcome = err.message));
    await jest.advanceTimersByTimeAsync(1999);
    expect(outcome).toBe('pending');
    await jest.advanceTimersByTimeAsync(1);
    await timed;
    expect(outcome).toBe('the jobs queue did not answer');
    expect(jest.getTimerCount()).toBe(0);
  });
});
