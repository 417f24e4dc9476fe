import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { firstValueFrom, take } from 'rxjs';
import { createTestApp, hasRedis, type TestApp } from '../support/app.js';
import { NotificationStream } from '../../src/modules/notifications/notification-stream.js';
import type { NotificationDto } from '../../src/modules/notifications/notification.dto.js';

/** With REDIS_URL, a push travels through Redis pub/sub (it never short-cuts in-process), so any instance's stream gets it. */
(hasRedis ? describe : describe.skip)('notification stream over Redis pub/sub', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t?.close());

  it('delivers a notice published on one instance to a stream of its user, and only of its user', async () => {
    const stream = t.app.get(NotificationStream);
    const notice: NotificationDto = {
      id: '9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d', orgId: '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b', eventType: 'payment.failed', category: 'billing',
      title: 'A payment failed', body: 'Update the payment method.', createdAt: new Date('2026-12-02T08:00:00.000Z'), readAt: null, archivedAt: null,
    };
    const mine = firstValueFrom((await stream.stream('user-a')).pipe(take(1)));
    const others: NotificationDto[] = [];
    const sub = (await stream.stream('user-b')).subscribe((n) => others.push(n));
    // a second subscriber connection would be another instance; the message must come back from Redis to arrive at all
    await stream.publish('user-a', notice);
    const received = await mine;
    sub.unsubscribe();
    expect(received).toEqual({ ...notice, createdAt: '2026-12-02T08:00:00.000Z' });
    expect(others).toEqual([]);
  });
});
