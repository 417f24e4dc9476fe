import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebhookDelivery } from '../../src/modules/webhooks/webhook-delivery.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { testKeys } from '../integrations/keys.js';

// small: the body's wait is min(1 s, what is left of it) on the wall clock
const TIMEOUT_MS = 1500;

describe('webhook delivery: the status line decides, not the end of the body', () => {
  let t: TestApp;
  const clock = ManualClock.at('2030-05-01T09:00:00Z');
  let owner: TestUser;
  let orgId: string;
  let server: Server;
  let port: number;
  const received: string[] = [];
  const open = new Set<ServerResponse>();
  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env, WEBHOOKS_TIMEOUT_MS: String(TIMEOUT_MS), REDIS_URL: '' }, { clock });
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Streaming Ltd');
    await onPlan(t, orgId, 'professional');
    // a receiver that answers 200 at once and keeps its body open (a framework streaming its answer, a proxy)
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        received.push(String(req.headers['webhook-id']));
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('accepted');
        open.add(res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    for (const res of open) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await t.close();
  });

  it('records a 200 whose body never ends as a success, with the body as far as it came, and sends it no more', async () => {
    const url = `/v1/orgs/${orgId}/webhooks/endpoints`;
    const ep = (await t.http.post(url).set(owner.auth).send({ url: `http://127.0.0.1:${port}/hook` }).expect(201)).body;
    const ping = (await t.http.post(`${url}/${ep.id}/ping`).set(owner.auth).expect(202)).body;
    const delivery = t.app.get(WebhookDelivery);
    expect(await delivery.deliverDue()).toBe(1);

    const { rows } = await t.db.admin.query(
      `SELECT a.succeeded, a.status_code, a.response_body, a.error, m.status, m.attempts, m.next_attempt_at FROM core.webhook_attempts a
       JOIN core.webhook_messages m ON m.org_id = a.org_id AND m.id = a.message_id WHERE a.endpoint_id = $1`, [ep.id]);
    expect(rows).toEqual([{
      succeeded: true, status_code: 200, error: null, status: 'succeeded', attempts: 1, next_attempt_at: null,
      response_body: expect.stringMatching(/^accepted \[the body did not end within \d+ ms of the status: cut here\]$/),
    }]);
    const detail = (await t.http.get(`${url}/${ep.id}/messages/${ping.id}`).set(owner.auth).expect(200)).body;
    expect(detail.status).toBe('succeeded');
    expect(detail.attemptLog).toMatchObject([{ succeeded: true, statusCode: 200, error: null }]);
    const endpoint = (await t.http.get(`${url}/${ep.id}`).set(owner.auth).expect(200)).body;
    expect(endpoint.enabled).toBe(true);

    // past the first retry delay (5 s + jitter): nothing is due, the receiver got the message once
    clock.advance(60_000);
    expect(await delivery.deliverDue()).toBe(0);
    expect(received).toEqual([`msg_${ping.id.replaceAll('-', '')}`]);
  });
});
