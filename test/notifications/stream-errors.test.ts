import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Redis } from 'ioredis';
import jwt from 'jsonwebtoken';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';

/**
 * GET /v1/me/notifications/stream with Redis down: 503 queue_unavailable with Retry-After, a status and code the
 * document declares (not a 200 whose stream sends `event: error`), and no subscriber left behind reconnecting forever
 * (each retry of a browser's EventSource made one more).
 */
describe('notifications: the live stream with Redis down', () => {
  let t: TestApp;
  let ada: TestUser;
  /** every Redis client that (re)connects while the test runs: `this` of each Redis#connect call */
  let connects: jest.SpiedFunction<Redis['connect']>;

  beforeAll(async () => {
    t = await createTestApp({ REDIS_URL: 'redis://127.0.0.1:1' }); // nothing listens on port 1
    ada = await registerUser(t, 'ada');
  });
  afterAll(async () => {
    connects?.mockRestore();
    await t.close();
  });

  it('Redis down: each request is 503 queue_unavailable with Retry-After, and the stream\'s clients are closed, not reconnecting', async () => {
    connects = jest.spyOn(Redis.prototype, 'connect');
    const requests = 3;
    for (let i = 0; i < requests; i++) {
      const res = await t.http.get('/v1/me/notifications/stream').set(ada.auth).set('Accept', 'text/event-stream').expect(503);
      expect(res.headers['retry-after']).toBe('5');
      expect(res.body).toEqual({ error: { code: 'queue_unavailable', message: 'the job queue is unavailable; retry later' }, requestId: expect.any(String) });
    }
    // the stream's subscribers are the clients that connect lazily (the shared client and the queue's connect at boot
    // and reconnect on their own schedule: those are http.test.ts's business)
    const subscribers = [...new Set(connects.mock.contexts as Redis[])].filter((c) => c.options.lazyConnect && c.listenerCount('message') > 0);
    expect(subscribers).toHaveLength(requests);
    // trying (as in http.test.ts): a reconnect scheduled, or a connection under way that was not closed on purpose; a
    // client closed while reconnecting keeps the status 'reconnecting' with neither, and stays quiet
    const trying = subscribers.filter((c) => {
      const internals = c as unknown as { reconnectTimeout?: unknown; manuallyClosing?: boolean };
      return internals.reconnectTimeout || (['connecting', 'connect', 'ready'].includes(c.status) && !internals.manuallyClosing);
    });
    expect(trying.map((c) => c.status)).toEqual([]);
  });

  it('Redis down: a service-role key still gets its 403 auth.user_required, and no subscriber is made for it', async () => {
    const made = jest.spyOn(Redis.prototype, 'connect'); // the first test's spy when it ran before: count from here
    const before = made.mock.contexts.length;
    try {
      const key = jwt.sign({ role: 'service_role', iss: 'supabase' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 600 });
      const res = await t.http.get('/v1/me/notifications/stream').set({ Authorization: `Bearer ${key}` }).expect(403);
      expect(res.body.error).toEqual({ code: 'auth.user_required', message: 'this route acts for a signed-in user; a service key cannot call it' });
      expect((made.mock.contexts.slice(before) as Redis[]).filter((c) => c.options.lazyConnect)).toEqual([]);
    } finally {
      if (made !== connects) made.mockRestore();
    }
  });
});
