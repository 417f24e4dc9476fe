import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { WebhookDelivery } from '../../src/modules/webhooks/webhook-delivery.service.js';
import { EVENT_CATALOG } from '../../src/modules/webhooks/event-catalog.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startWebhookReceiverDouble, type ReceiverAnswer, type WebhookReceiverDouble } from '../support/doubles/webhook-receiver-double.js';
import { testKeys } from '../integrations/keys.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';

// ajv-formats is CommonJS: its default export is the plugin function
const addFormats = ((addFormatsModule as any).default ?? addFormatsModule) as (ajv: Ajv2020) => Ajv2020;

/**
 * h18: a disabled endpoint's event names its URL's origin only (the path and query of a Slack-style URL are its
 * credential, and the event goes to the organization's other endpoints and admins); a replay to a disabled endpoint is
 * refused like a ping, not answered 202 and left pending for ever. A deleted organization's endpoints are disabled and
 * send nothing more.
 */
describe('webhooks: a disabled endpoint, its event and its replays', () => {
  let t: TestApp;
  const clock = new ManualClock();
  let relay: OutboxRelay;
  let delivery: WebhookDelivery;
  const receivers: WebhookReceiverDouble[] = [];

  interface Org { orgId: string; owner: TestUser; acc: Record<string, string> }
  async function orgWithBooks(name: string): Promise<Org> {
    const owner = await registerUser(t, 'owner');
    const orgId = await createOrg(t, owner, name);
    await onPlan(t, orgId, 'professional');
    return { orgId, owner, acc: await startBooks(t, orgId, owner) };
  }
  async function receiver(answer?: (n: number) => ReceiverAnswer): Promise<WebhookReceiverDouble> {
    const r = await startWebhookReceiverDouble(answer);
    receivers.push(r);
    return r;
  }
  const endpointsUrl = (org: Org, path = '') => `/v1/orgs/${org.orgId}/webhooks/endpoints${path}`;
  async function endpoint(org: Org, r: WebhookReceiverDouble, url: string, eventTypes: string[]) {
    const res = await t.http.post(endpointsUrl(org)).set(org.owner.auth).send({ url, description: 'test receiver', eventTypes }).expect(201);
    r.secrets.current = res.body.secret;
    return res.body as { id: string; secret: string };
  }
  async function postEntry(org: Org, memo = 'rent') {
    await t.http.post(ledgerUrl(org.orgId, 'journal-entries')).set(org.owner.auth)
      .send({ date: '2026-03-03', memo, lines: [{ accountId: org.acc['5200'], debit: '700' }, { accountId: org.acc['1100'], credit: '700' }] }).expect(201);
  }
  async function flush(): Promise<void> {
    await relay.drain();
    await delivery.deliverDue();
  }
  const messagesOf = (endpointId: string) => t.db.admin.query(
    'SELECT id, status, attempts, next_attempt_at, last_attempt_at FROM core.webhook_messages WHERE endpoint_id = $1 ORDER BY created_at, id', [endpointId]).then((r) => r.rows);

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env, REDIS_URL: '' }, { clock });
    relay = t.app.get(OutboxRelay);
    delivery = t.app.get(WebhookDelivery);
  });
  afterEach(() => t.db.admin.query('DELETE FROM core.webhook_endpoints'));
  afterAll(async () => {
    for (const r of receivers) await r.close();
    await t.close();
  });

  it('webhook_endpoint.disabled (version 2) names the endpoint and its URL\'s origin, never its path or query, to other endpoints and in the admins\' notice', async () => {
    const org = await orgWithBooks('Slack Style Ltd');
    const gone = await receiver(() => ({ status: 410, body: 'gone' }));
    const watcher = await receiver();
    const secretUrl = `${gone.url}/T0SECRETTEAM/B0SECRETHOOK/xoxb-secret-token?token=sk_live_secret`;
    const ep = await endpoint(org, gone, secretUrl, ['journal_entry.posted']);
    await endpoint(org, watcher, watcher.url, ['webhook_endpoint.disabled']);
    await postEntry(org);
    await flush(); // the 410 disables it
    await flush(); // its event goes to the other endpoint

    const origin = new URL(gone.url).origin;
    expect(origin).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(watcher.received).toHaveLength(1);
    const body = watcher.received[0].body as { type: string; version: number; data: Record<string, unknown> };
    expect(body).toMatchObject({ type: 'webhook_endpoint.disabled', version: 2, data: { endpointId: ep.id, urlOrigin: origin, reason: 'gone' } });
    expect(Object.keys(body.data).sort()).toEqual(['endpointId', 'reason', 'urlOrigin']);
    expect(JSON.stringify(watcher.received[0].body)).not.toMatch(/SECRET|secret/);
    // the payload validates against the catalog's (version 2) schema, and the catalog serves that version
    const declared = EVENT_CATALOG.find((e) => e.type === 'webhook_endpoint.disabled')!;
    const ajv = new Ajv2020({ strict: false });
    addFormats(ajv);
    expect([ajv.validate(declared.payloadSchema, body.data), ajv.errorsText()]).toEqual([true, 'No errors']);
    const served = (await t.http.get('/v1/webhooks/event-types').expect(200)).body.find((e: { type: string }) => e.type === 'webhook_endpoint.disabled');
    expect(served).toMatchObject({ version: 2, bodySchemaRef: '#/components/schemas/WebhookEvent.webhook_endpoint.disabled.v2' });
    expect(served.payloadSchema.required).toEqual(['endpointId', 'urlOrigin', 'reason']);
    // the outbox row and the owner's notice carry no more than the origin either
    const [event] = (await t.db.admin.query(`SELECT payload FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'webhook_endpoint.disabled'`, [org.orgId])).rows;
    expect(event.payload).toMatchObject({ version: 2, payload: { endpointId: ep.id, urlOrigin: origin, reason: 'gone' } });
    const notices = (await t.http.get('/v1/me/notifications').set(org.owner.auth).expect(200)).body.items
      .filter((n: { eventType: string }) => n.eventType === 'webhook_endpoint.disabled');
    expect(notices.map((n: { body: string }) => n.body)).toEqual([`The endpoint ${origin} (${ep.id}) was disabled: gone.`]);
  });

  it('refuses a replay and a replay of the failed messages while the endpoint is disabled (409, nothing changed), like a ping; enabled, it replays', async () => {
    const org = await orgWithBooks('Replay Ltd');
    let answer = 410;
    const r = await receiver(() => ({ status: answer }));
    const ep = await endpoint(org, r, r.url, ['journal_entry.posted']);
    await postEntry(org);
    await flush();
    const before = await messagesOf(ep.id);
    expect(before.map((m) => m.status)).toEqual(['failed']);
    const auditBefore = (await t.db.admin.query('SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1', [org.orgId])).rows[0].n;

    const one = await t.http.post(endpointsUrl(org, `/${ep.id}/messages/${before[0].id}/replay`)).set(org.owner.auth).expect(409);
    expect(one.body.error).toEqual({ code: 'webhooks.endpoint_disabled', message: 'the endpoint is disabled: enable it to replay its messages' });
    const failed = await t.http.post(endpointsUrl(org, `/${ep.id}/replay-failed`)).set(org.owner.auth).send({ since: '2000-01-01T00:00:00Z' }).expect(409);
    expect(failed.body.error.code).toBe('webhooks.endpoint_disabled');
    expect(await messagesOf(ep.id)).toEqual(before);
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1', [org.orgId])).rows[0].n).toBe(auditBefore);
    await flush();
    expect(r.received).toHaveLength(1);

    // documented on both operations
    const doc = (await t.http.get('/docs-json').expect(200)).body;
    for (const path of ['/v1/orgs/{orgId}/webhooks/endpoints/{endpointId}/messages/{messageId}/replay', '/v1/orgs/{orgId}/webhooks/endpoints/{endpointId}/replay-failed']) {
      expect([path, doc.paths[path].post['x-error-codes']]).toEqual([path, expect.arrayContaining([expect.objectContaining({ code: 'webhooks.endpoint_disabled', status: 409 })])]);
    }

    // enabled again, the replay is accepted and delivered
    answer = 200;
    await t.http.patch(endpointsUrl(org, `/${ep.id}`)).set(org.owner.auth).send({ enabled: true }).expect(200);
    await t.http.post(endpointsUrl(org, `/${ep.id}/messages/${before[0].id}/replay`)).set(org.owner.auth).expect(202);
    await flush();
    expect(r.received).toHaveLength(2);
    expect((await messagesOf(ep.id)).map((m) => m.status)).toEqual(['succeeded']);
  });

  it('a disabled endpoint\'s backlog stays due, held back by the claim only: enabled again by any instance (one of the previous release during a deploy too), it is sent', async () => {
    const org = await orgWithBooks('Backlog Ltd');
    let answer = 500;
    const r = await receiver(() => ({ status: answer }));
    const ep = await endpoint(org, r, r.url, ['journal_entry.posted']);
    await postEntry(org);
    await flush(); // its first attempt fails: due again in 5 s
    const [pending] = await messagesOf(ep.id);
    expect(pending).toMatchObject({ status: 'pending', attempts: 1 });
    await t.http.patch(endpointsUrl(org, `/${ep.id}`)).set(org.owner.auth).send({ enabled: false }).expect(200);
    clock.advance(60_000);
    expect(await delivery.deliverDue()).toBe(0); // disabled: not claimed
    expect(await messagesOf(ep.id)).toEqual([pending]); // and left as it was, due
    // enabled by an instance that writes only the endpoint (the previous release's PATCH, during a rolling deploy)
    answer = 200;
    await t.db.admin.query(`UPDATE core.webhook_endpoints SET enabled = true, disabled_reason = NULL, disabled_at = NULL, failing_since = NULL,
      updated_at = now() WHERE id = $1`, [ep.id]);
    await flush();
    expect(r.received).toHaveLength(2);
    expect((await messagesOf(ep.id)).map((m) => [m.status, m.attempts])).toEqual([['succeeded', 2]]);
  });

  it('a deleted organization sends nothing more: a message pending at the deletion is not sent, none is queued after it, its endpoints say why (audited)', async () => {
    const org = await orgWithBooks('Closing Ltd');
    let answer = 500;
    const r = await receiver(() => ({ status: answer }));
    const ep = await endpoint(org, r, r.url, ['journal_entry.posted', 'organization.deleted', 'subscription.canceled']);
    await postEntry(org);
    await flush(); // its first attempt fails: due again in 5 s
    const [pending] = await messagesOf(ep.id);
    expect(pending).toMatchObject({ status: 'pending', attempts: 1 });
    answer = 200;
    await t.http.delete(`/v1/orgs/${org.orgId}`).set(org.owner.auth).expect(204);
    clock.advance(3600_000);
    const deletedBy = clock.now();
    // the worker's pass before the outbox relays organization.deleted: nothing of the organization is claimed
    expect(await delivery.deliverDue()).toBe(0);
    await flush(); // organization.deleted: its endpoint disabled; billing cancels its subscription (subscription.canceled)
    await flush();
    expect(r.received).toHaveLength(1);
    expect(await messagesOf(ep.id)).toEqual([pending]); // no organization.deleted or subscription.canceled queued
    const events = await t.db.admin.query(`SELECT payload->>'type' AS type FROM core.outbox WHERE org_id = $1 AND processed_at IS NOT NULL
      AND payload->>'type' IN ('organization.deleted', 'subscription.canceled', 'webhook_endpoint.disabled') ORDER BY id`, [org.orgId]);
    expect(events.rows.map((e) => e.type)).toEqual(['organization.deleted', 'subscription.canceled']);
    const [row] = (await t.db.admin.query('SELECT enabled, disabled_reason, disabled_at FROM core.webhook_endpoints WHERE id = $1', [ep.id])).rows;
    expect(row).toEqual({ enabled: false, disabled_reason: 'organization_deleted', disabled_at: expect.any(Date) });
    expect(row.disabled_at.getTime()).toBeGreaterThanOrEqual(deletedBy); // on the injected clock
    const audit = await t.db.admin.query(`SELECT principal_type, actor_id, before, after FROM core.audit_logs WHERE entity_id = $1 AND action = 'webhooks.endpoint_disabled'`, [ep.id]);
    expect(audit.rows).toEqual([{ principal_type: 'system', actor_id: null, before: { enabled: true }, after: { enabled: false, reason: 'organization_deleted' } }]);
    // organization.deleted relayed again (subscribers run at least once): nothing more disabled or audited
    await t.db.admin.query(`UPDATE core.outbox SET processed_at = NULL, attempts = 0 WHERE org_id = $1 AND payload->>'type' = 'organization.deleted'`, [org.orgId]);
    await flush();
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE entity_id = $1 AND action = 'webhooks.endpoint_disabled'`, [ep.id])).rows).toEqual([{ n: 1 }]);
    expect(r.received).toHaveLength(1);
  });
});
