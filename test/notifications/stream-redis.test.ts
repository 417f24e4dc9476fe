import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, hasRedis, startApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { DomainEvents, DOMAIN_EVENT_TOPIC } from '../../src/platform/events/events.js';

/**
 * The live stream across instances: two app instances over one database and one Redis (the same REDIS_PREFIX).
 * A notice routed by instance A is published on Redis and reaches a GET /v1/me/notifications/stream held open
 * on instance B. Nothing relays the outbox by itself here (JOBS_RELAY_INTERVAL_MS=0): the event is dispatched
 * on A, so A is the instance that creates the notice.
 */
(hasRedis ? describe : describe.skip)('notifications: the live stream through Redis, across two instances', () => {
  let a: TestApp;
  let b: NestFastifyApplication;
  let owner: TestUser;
  let member: TestUser;
  let orgId: string;

  beforeAll(async () => {
    a = await createTestApp({ REDIS_URL: process.env.REDIS_URL });
    // instance B: the same configuration (database, Redis, prefix), its own process state and HTTP server
    b = (await startApp(a.config)).app;
    await b.listen(0, '127.0.0.1');
    owner = await registerUser(a, 'owner');
    member = await registerUser(a, 'member');
    orgId = await createOrg(a, owner, 'Two Instances Co');
    await onEnterprisePlan(a, orgId);
    await addMember(a, orgId, member, 'member');
  });
  afterAll(async () => {
    await b?.close();
    await a.close();
  });

  it('delivers a notice created on instance A to an SSE client of instance B', async () => {
    const { port } = b.getHttpServer().address() as AddressInfo;
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/v1/me/notifications/stream', headers: { ...member.auth, Accept: 'text/event-stream' } }, resolve);
      req.on('error', reject);
      req.end();
    });
    try {
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toContain('text/event-stream');
      let received = '';
      const arrived = new Promise<{ id: string; data: string }>((resolve) => {
        response.on('data', (chunk: Buffer) => {
          received += chunk.toString('utf8');
          const match = /event: notification\nid: ([0-9a-f-]{36})\ndata: (.*)\n/.exec(received);
          if (match) resolve({ id: match[1], data: match[2] });
        });
      });
      // the role change through instance A's API; its event routed on A (A writes the notice and publishes it)
      await a.http.patch(`/v1/orgs/${orgId}/members/${member.id}`).set(owner.auth).send({ role: 'accountant' }).expect(200);
      const [event] = (await a.db.admin.query(
        `SELECT id, payload FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'member.role_changed' ORDER BY id DESC LIMIT 1`, [orgId])).rows;
      await a.app.get(DomainEvents).dispatch({ id: String(event.id), orgId, topic: DOMAIN_EVENT_TOPIC, payload: event.payload });

      const pushed = await arrived;
      const data = JSON.parse(pushed.data);
      expect(data).toMatchObject({ orgId, eventType: 'member.role_changed', category: 'organization', title: 'Your role in Two Instances Co changed', readAt: null });
      // the pushed notice is the row A wrote, and B's inbox serves the same one
      const rows = (await a.db.admin.query(`SELECT id FROM core.notifications WHERE user_id = $1 AND event_id = $2`, [member.id, event.id])).rows;
      expect(rows).toEqual([{ id: data.id }]);
      expect(pushed.id).toBe(data.id);
      const inboxOnB = await fetch(`http://127.0.0.1:${port}/v1/me/notifications`, { headers: member.auth as Record<string, string> }).then((r) => r.json()) as { items: { id: string }[] };
      expect(inboxOnB.items.map((n) => n.id)).toContain(data.id);
    } finally {
      response.destroy();
    }
  });
});
