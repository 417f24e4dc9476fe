import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Logger } from '@nestjs/common';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { projectRoot } from '../../src/platform/database/migrator.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { WebhookDelivery } from '../../src/modules/webhooks/webhook-delivery.service.js';
import { MAX_ATTEMPTS, RETRY_DELAYS_SECONDS } from '../../src/modules/webhooks/retry-schedule.js';
import { EVENT_CATALOG } from '../../src/modules/webhooks/event-catalog.js';
import { webhookRepository } from '../../src/modules/webhooks/webhook.repository.js';
import { CallTimer } from '../../src/platform/clock/clock.js';
import { createTestApp, startApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startWebhookReceiverDouble, type ReceiverAnswer, type WebhookReceiverDouble } from '../support/doubles/webhook-receiver-double.js';
import { testKeys } from '../integrations/keys.js';
import { ResponseContract } from '../support/contract.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { until } from '../support/throwaway-servers.js';

// ajv-formats is CommonJS: its default export is the plugin function
const addFormats = ((addFormatsModule as any).default ?? addFormatsModule) as (ajv: Ajv2020) => Ajv2020;
/** The file's delivery timeout: a receiver that answers always beats it, even on a loaded machine. */
const TIMEOUT_MS = 60_000;
/** Past the longest jittered delay after attempt n (delays get up to 10 % added). */
const afterRetry = (n: number) => RETRY_DELAYS_SECONDS[n - 1] * 1100 + 1;

describe('webhooks: signed delivery of the ledger\'s events with retries, the delivery log, replay, rotation and restarts', () => {
  let t: TestApp;
  const clock = new ManualClock();
  let relay: OutboxRelay;
  let delivery: WebhookDelivery;
  const receivers: WebhookReceiverDouble[] = [];

  interface Org { orgId: string; owner: TestUser; acc: Record<string, string> }
  async function orgWithBooks(name: string, plan: 'starter' | 'professional' = 'professional'): Promise<Org> {
    const owner = await registerUser(t, 'owner');
    const orgId = await createOrg(t, owner, name);
    await onPlan(t, orgId, plan);
    return { orgId, owner, acc: await startBooks(t, orgId, owner) };
  }
  async function receiver(answer?: (n: number) => ReceiverAnswer): Promise<WebhookReceiverDouble> {
    const r = await startWebhookReceiverDouble(answer);
    receivers.push(r);
    return r;
  }
  const endpointsUrl = (org: Org, path = '') => `/v1/orgs/${org.orgId}/webhooks/endpoints${path}`;
  async function endpoint(org: Org, r: WebhookReceiverDouble, extra: Record<string, unknown> = {}) {
    const res = await t.http.post(endpointsUrl(org)).set(org.owner.auth).send({ url: r.url, description: 'test receiver', ...extra }).expect(201);
    r.secrets.current = res.body.secret;
    return res.body as { id: string; secret: string };
  }
  async function postEntry(org: Org, memo = 'rent') {
    const res = await t.http.post(ledgerUrl(org.orgId, 'journal-entries')).set(org.owner.auth)
      .send({ date: '2026-03-03', memo, lines: [{ accountId: org.acc['5200'], debit: '700' }, { accountId: org.acc['1100'], credit: '700' }] }).expect(201);
    return res.body.id as string;
  }
  /** The outbox relayed (fan-out) and every due message delivered. */
  async function flush(): Promise<void> {
    await relay.drain();
    await delivery.deliverDue();
  }
  /** What the OpenAPI document says a delivery is (createWebhookEndpoint's callback): its problems with one received. */
  async function deliveryProblems(w: { id: string; timestamp: string; signature: string; body: unknown }): Promise<string | undefined> {
    const doc = (await t.http.get('/docs-json').expect(200)).body;
    const callback = doc.paths['/v1/orgs/{orgId}/webhooks/endpoints'].post.callbacks.delivery['{$request.body#/url}'].post;
    const headers = Object.fromEntries(callback.parameters.map((p: { name: string; required: boolean }) => [p.name, p.required]));
    expect(headers).toEqual({ 'webhook-id': true, 'webhook-timestamp': true, 'webhook-signature': true });
    expect([w.id, w.timestamp, w.signature]).toEqual([expect.stringMatching(/^msg_/), expect.stringMatching(/^\d+$/), expect.stringMatching(/^v1,/)]);
    return new ResponseContract(doc).problems(callback.requestBody.content['application/json'].schema, w.body);
  }
  const attemptsOf = (endpointId: string) => t.db.admin.query(
    `SELECT a.succeeded, a.status_code, a.response_body, a.error, m.id AS message_id, m.status FROM core.webhook_attempts a
     JOIN core.webhook_messages m ON m.org_id = a.org_id AND m.id = a.message_id WHERE a.endpoint_id = $1 ORDER BY a.id`, [endpointId]).then((r) => r.rows);

  beforeAll(async () => {
    // in-process jobs (no Bull): flush() then means the fan-out has run
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env, WEBHOOKS_TIMEOUT_MS: String(TIMEOUT_MS), REDIS_URL: '' }, { clock });
    relay = t.app.get(OutboxRelay);
    delivery = t.app.get(WebhookDelivery);
  });
  // every test's endpoints go: a later test's clock jump must not retry them
  afterEach(() => t.db.admin.query('DELETE FROM core.webhook_endpoints'));
  afterAll(async () => {
    for (const r of receivers) await r.close();
    await t.close();
  });

  it('serves the event catalog: every type with a JSON Schema its example validates against, and its body schema in the OpenAPI document', async () => {
    const res = await t.http.get('/v1/webhooks/event-types').expect(200);
    const types = res.body.map((e: { type: string }) => e.type);
    expect(types).toEqual(expect.arrayContaining(['journal_entry.posted', 'period.closed', 'fiscal_year.closed', 'webhook_endpoint.disabled']));
    const ajv = new Ajv2020({ strict: false });
    addFormats(ajv);
    for (const e of res.body) expect([e.type, ajv.validate(e.payloadSchema, e.example), ajv.errorsText()]).toEqual([e.type, true, 'No errors']);
    const doc = (await t.http.get('/docs-json').expect(200)).body;
    for (const e of res.body) expect(doc.components.schemas[e.bodySchemaRef.split('/').pop()]).toMatchObject({ type: 'object', required: expect.arrayContaining(['id', 'type', 'data']) });
    // a delivery is the callback of the operation that creates an endpoint: one of the catalog's bodies, or the ping's
    const body = doc.paths['/v1/orgs/{orgId}/webhooks/endpoints'].post.callbacks.delivery['{$request.body#/url}'].post.requestBody.content['application/json'].schema;
    expect(Object.keys(body.discriminator.mapping).sort()).toEqual([...types, 'ping'].sort());
    expect(body.oneOf.map((s: { $ref: string }) => s.$ref).sort()).toEqual([...res.body.map((e: { bodySchemaRef: string }) => e.bodySchemaRef), '#/components/schemas/WebhookEvent.ping.v1'].sort());
    // docs/webhooks.md lists every type
    const guide = readFileSync(join(projectRoot(), 'docs', 'webhooks.md'), 'utf8');
    expect(EVENT_CATALOG.map((e) => e.type).filter((type) => !guide.includes(`\`${type}\``))).toEqual([]);
  });

  it('shows the signing secret once, stores it sealed, and refuses unknown event types', async () => {
    const org = await orgWithBooks('Secret Ltd');
    const r = await receiver();
    const created = await endpoint(org, r, { eventTypes: ['journal_entry.posted'] });
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/=]{40,}$/);
    const read = await t.http.get(endpointsUrl(org, `/${created.id}`)).set(org.owner.auth).expect(200);
    expect(read.body).not.toHaveProperty('secret');
    expect(read.body).toMatchObject({ id: created.id, url: r.url, eventTypes: ['journal_entry.posted'], enabled: true, disabledReason: null });
    const [row] = (await t.db.admin.query('SELECT secret FROM core.webhook_endpoints WHERE id = $1', [created.id])).rows;
    expect(JSON.stringify(row.secret)).not.toContain(created.secret.slice(6));
    expect(row.secret).toMatchObject({ kid: 'k1', ciphertext: expect.any(String) });
    const bad = await t.http.post(endpointsUrl(org)).set(org.owner.auth).send({ url: r.url, eventTypes: ['invoice.teleported'] }).expect(400);
    expect(bad.body.error).toMatchObject({ code: 'webhooks.unknown_event_type', details: { unknown: ['invoice.teleported'] } });
    const notUrl = await t.http.post(endpointsUrl(org)).set(org.owner.auth).send({ url: 'ftp://files.example.com/x' }).expect(400);
    expect(notUrl.body.error.code).toBe('webhooks.url_invalid');
    // an accountant is not an admin
    const accountant = await registerUser(t, 'accountant');
    await t.db.admin.query('INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, $3)', [org.orgId, accountant.id, 'accountant']);
    await t.http.get(endpointsUrl(org)).set(accountant.auth).expect(403);
    const audit = await t.db.admin.query(`SELECT action, after FROM core.audit_logs WHERE entity_id = $1`, [created.id]);
    expect(audit.rows).toEqual([{ action: 'webhooks.endpoint_created', after: expect.objectContaining({ url: r.url }) }]);
    expect(JSON.stringify(audit.rows)).not.toContain(created.secret);
  });

  it('retries a failing receiver on the schedule: fails three times, then succeeds — four attempts logged, one message id, every signature valid', async () => {
    const org = await orgWithBooks('Retry Ltd');
    const r = await receiver((n) => (n <= 3 ? { status: 500, body: 'boom' } : { status: 200, body: 'thanks' }));
    const ep = await endpoint(org, r);
    const entryId = await postEntry(org);
    await flush();
    expect(r.received).toHaveLength(1);
    await delivery.deliverDue();
    expect(r.received).toHaveLength(1); // not due yet: the next attempt is 5 s later
    for (const n of [1, 2, 3]) {
      clock.advance(afterRetry(n));
      await delivery.deliverDue();
      expect(r.received).toHaveLength(n + 1);
    }
    expect(new Set(r.received.map((w) => w.id)).size).toBe(1);
    expect(r.received.every((w) => w.verifiedWith.current)).toBe(true);
    expect(r.received[0].body).toMatchObject({ type: 'journal_entry.posted', version: 1, organizationId: org.orgId, id: expect.stringMatching(/^evt_\d+$/),
      data: { entryId, date: '2026-03-03', source: 'manual', memo: 'rent' } });
    expect(await deliveryProblems(r.received[0])).toBeUndefined();
    const log = await t.http.get(endpointsUrl(org, `/${ep.id}/attempts`)).set(org.owner.auth).expect(200);
    expect(log.body.items.map((a: any) => [a.succeeded, a.statusCode, a.responseBody])).toEqual([[true, 200, 'thanks'], [false, 500, 'boom'], [false, 500, 'boom'], [false, 500, 'boom']]);
    const failed = await t.http.get(endpointsUrl(org, `/${ep.id}/attempts?status=failed`)).set(org.owner.auth).expect(200);
    expect(failed.body.items).toHaveLength(3);
    const messages = await t.http.get(endpointsUrl(org, `/${ep.id}/messages?eventType=journal_entry.posted`)).set(org.owner.auth).expect(200);
    expect(messages.body.items).toHaveLength(1);
    expect(messages.body.items[0]).toMatchObject({ status: 'succeeded', attemptCount: 4, webhookId: r.received[0].id, nextAttemptAt: null });
    const detail = await t.http.get(endpointsUrl(org, `/${ep.id}/messages/${messages.body.items[0].id}`)).set(org.owner.auth).expect(200);
    expect(detail.body.attemptLog.map((a: any) => a.statusCode)).toEqual([500, 500, 500, 200]);
    const rows = await attemptsOf(ep.id);
    expect(rows).toHaveLength(4);
    expect(new Set(rows.map((x) => x.message_id)).size).toBe(1);
    const [endpointRow] = (await t.db.admin.query('SELECT failing_since FROM core.webhook_endpoints WHERE id = $1', [ep.id])).rows;
    expect(endpointRow.failing_since).toBeNull();
  });

  it('keeps the first 1024 characters of a long answer, multi-byte ones whole (no half of a surrogate pair)', async () => {
    const org = await orgWithBooks('Chatty Ltd');
    // 'a' then emoji of two UTF-16 units each: unit 1024 is the first half of the 512th emoji, which is dropped
    const r = await receiver(() => ({ status: 200, body: `é${'😀'.repeat(2000)}` }));
    const ep = await endpoint(org, r);
    await postEntry(org);
    await flush();
    const rows = await attemptsOf(ep.id);
    expect(rows).toEqual([{ succeeded: true, status_code: 200, response_body: `é${'😀'.repeat(511)}`, error: null, message_id: expect.any(String), status: 'succeeded' }]);
    expect(rows[0].response_body).not.toContain('\uFFFD');
  });

  it('counts a receiver that does not answer within the timeout as a failed attempt, retried later', async () => {
    const org = await orgWithBooks('Slow Ltd');
    const r = await receiver(() => 'hang');
    const ep = await endpoint(org, r);
    await postEntry(org);
    await relay.drain();
    // the request is cut once the receiver has it (the injected timer fires), not after a wait on the wall clock
    const expiries: (() => void)[] = [];
    const timer = jest.spyOn(t.app.get(CallTimer), 'start').mockImplementation((_ms, expire) => {
      expiries.push(expire);
      return () => undefined;
    });
    try {
      const delivering = delivery.deliverDue();
      await r.waitFor(1);
      for (const expire of expiries) expire();
      expect(await delivering).toBe(1);
    } finally {
      timer.mockRestore();
    }
    const rows = await attemptsOf(ep.id);
    expect(rows).toEqual([{ succeeded: false, status_code: null, response_body: null, error: `timed out after ${TIMEOUT_MS} ms`, message_id: expect.any(String), status: 'pending' }]);
    // the next attempt is the schedule's first delay (5 s, up to 10 % of jitter added) after the failed one
    const [m] = (await t.db.admin.query(
      `SELECT m.attempts, (extract(epoch FROM m.next_attempt_at - a.attempted_at) * 1000)::int AS wait_ms FROM core.webhook_messages m
       JOIN core.webhook_attempts a ON a.org_id = m.org_id AND a.message_id = m.id WHERE m.endpoint_id = $1`, [ep.id])).rows;
    expect(m.attempts).toBe(1);
    expect(m.wait_ms).toBeGreaterThanOrEqual(RETRY_DELAYS_SECONDS[0] * 1000);
    expect(m.wait_ms).toBeLessThanOrEqual(RETRY_DELAYS_SECONDS[0] * 1100);
  });

  it('disables an endpoint that answers 410 Gone at once, and says so with a webhook_endpoint.disabled event', async () => {
    const org = await orgWithBooks('Gone Ltd');
    const r = await receiver(() => ({ status: 410, body: 'gone' }));
    const ep = await endpoint(org, r);
    await postEntry(org);
    await flush();
    const read = await t.http.get(endpointsUrl(org, `/${ep.id}`)).set(org.owner.auth).expect(200);
    expect(read.body).toMatchObject({ enabled: false, disabledReason: 'gone', disabledAt: expect.any(String) });
    expect((await attemptsOf(ep.id)).map((a) => [a.status_code, a.status])).toEqual([[410, 'failed']]);
    const events = await t.db.admin.query(`SELECT payload FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'webhook_endpoint.disabled'`, [org.orgId]);
    expect(events.rows.map((e) => e.payload.payload)).toEqual([{ endpointId: ep.id, urlOrigin: new URL(r.url).origin, reason: 'gone' }]);
    const audit = await t.db.admin.query(`SELECT action, principal_type FROM core.audit_logs WHERE entity_id = $1 AND action = 'webhooks.endpoint_disabled'`, [ep.id]);
    expect(audit.rows).toHaveLength(1);
    // a disabled endpoint gets nothing more
    await postEntry(org, 'after');
    await flush();
    expect(r.received).toHaveLength(1);
    // a ping to it is refused until it is enabled again
    const ping = await t.http.post(endpointsUrl(org, `/${ep.id}/ping`)).set(org.owner.auth).expect(409);
    expect(ping.body.error.code).toBe('webhooks.endpoint_disabled');
  });

  it('disables an endpoint that has failed for 5 days', async () => {
    const org = await orgWithBooks('Failing Ltd');
    const r = await receiver(() => ({ status: 503 }));
    const ep = await endpoint(org, r);
    await postEntry(org);
    await flush();
    expect((await t.http.get(endpointsUrl(org, `/${ep.id}`)).set(org.owner.auth).expect(200)).body).toMatchObject({ enabled: true, failingSince: expect.any(String) });
    clock.advance(5 * 24 * 3600_000 + 1000);
    await delivery.deliverDue();
    expect((await t.http.get(endpointsUrl(org, `/${ep.id}`)).set(org.owner.auth).expect(200)).body).toMatchObject({ enabled: false, disabledReason: 'failing' });
    const events = await t.db.admin.query(`SELECT payload FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'webhook_endpoint.disabled'`, [org.orgId]);
    expect(events.rows.map((e) => e.payload.payload)).toEqual([{ endpointId: ep.id, urlOrigin: new URL(r.url).origin, reason: 'failing', failingSince: expect.any(String) }]);
    // enabling it by hand starts over
    const enabled = await t.http.patch(endpointsUrl(org, `/${ep.id}`)).set(org.owner.auth).send({ enabled: true }).expect(200);
    expect(enabled.body).toMatchObject({ enabled: true, disabledReason: null, failingSince: null });
  });

  it('signs with both secrets during a rotation\'s overlap, and only with the new one after it', async () => {
    const org = await orgWithBooks('Rotation Ltd');
    const r = await receiver();
    const ep = await endpoint(org, r);
    r.secrets.old = ep.secret;
    const rotated = await t.http.post(endpointsUrl(org, `/${ep.id}/rotate-secret`)).set(org.owner.auth).send({ overlapSeconds: 3600 }).expect(201);
    expect(rotated.body.secret).not.toBe(ep.secret);
    expect(rotated.body.previousSecretExpiresAt).toEqual(expect.any(String));
    r.secrets.current = rotated.body.secret;
    await postEntry(org, 'during overlap');
    await flush();
    expect(r.received[0].verifiedWith).toEqual({ current: true, old: true });
    expect(r.received[0].signature.split(' ')).toHaveLength(2);
    clock.advance(3601_000);
    // the overlap is over: no expiry to show, and the worker's next pass forgets the old secret
    expect((await t.http.get(endpointsUrl(org, `/${ep.id}`)).set(org.owner.auth).expect(200)).body.previousSecretExpiresAt).toBeNull();
    await postEntry(org, 'after overlap');
    await flush();
    expect(r.received[1].verifiedWith).toEqual({ current: true, old: false });
    expect(r.received[1].signature.split(' ')).toHaveLength(1);
    const [row] = (await t.db.admin.query('SELECT previous_secret, previous_secret_expires_at FROM core.webhook_endpoints WHERE id = $1', [ep.id])).rows;
    expect(row).toEqual({ previous_secret: null, previous_secret_expires_at: null });
    const audit = await t.db.admin.query(`SELECT principal_type, before, after FROM core.audit_logs WHERE entity_id = $1 AND action = 'webhooks.previous_secret_cleared'`, [ep.id]);
    expect(audit.rows).toEqual([{ principal_type: 'system', before: { previousSecretExpiresAt: rotated.body.previousSecretExpiresAt }, after: { previousSecretExpiresAt: null } }]);
    expect((await t.http.get(endpointsUrl(org)).set(org.owner.auth).expect(200)).body.find((e: any) => e.id === ep.id).previousSecretExpiresAt).toBeNull();
  });

  it('delivers only the event types an endpoint takes; a batch posting is one event per entry; a period close is period.closed', async () => {
    const org = await orgWithBooks('Filter Ltd');
    const periodsOnly = await receiver();
    const everything = await receiver();
    await endpoint(org, periodsOnly, { eventTypes: ['period.closed'] });
    await endpoint(org, everything);
    const line = (memo: string) => ({ date: '2026-02-03', memo, lines: [{ accountId: org.acc['5200'], debit: '1' }, { accountId: org.acc['1100'], credit: '1' }] });
    const batch = await t.http.post(ledgerUrl(org.orgId, 'journal-entries/batch')).set(org.owner.auth).send({ entries: [line('b1'), line('b2'), line('b3')] }).expect(201);
    const years = await t.http.get(ledgerUrl(org.orgId, 'fiscal-years')).set(org.owner.auth).expect(200);
    const period = years.body[0].periods[0];
    await t.http.post(ledgerUrl(org.orgId, `periods/${period.id}/close`)).set(org.owner.auth).expect(200);
    await flush();
    expect(periodsOnly.received.map((w) => w.body.type)).toEqual(['period.closed']);
    expect(periodsOnly.received[0].body.data).toEqual({ periodId: period.id, fiscalYearId: years.body[0].id, startDate: period.startDate, endDate: period.endDate });
    expect(everything.received.map((w) => w.body.type).sort()).toEqual(['journal_entry.posted', 'journal_entry.posted', 'journal_entry.posted', 'period.closed']);
    expect(everything.received.filter((w) => w.body.type === 'journal_entry.posted').map((w) => w.body.data.entryId).sort())
      .toEqual(batch.body.results.map((x: any) => x.id).sort());
    // every delivered payload validates against its catalog schema
    const ajv = new Ajv2020({ strict: false });
    addFormats(ajv);
    const schemaOf = new Map(EVENT_CATALOG.map((e) => [e.type, e.payloadSchema]));
    for (const w of everything.received) expect([w.body.type, ajv.validate(schemaOf.get(w.body.type)!, w.body.data), ajv.errorsText()]).toEqual([w.body.type, true, 'No errors']);
    // a replayed posting (same idempotency key) is no new event
    const body = { ...line('keyed'), idempotencyKey: 'k-1' };
    await t.http.post(ledgerUrl(org.orgId, 'journal-entries')).set(org.owner.auth).send(body).expect(201);
    await t.http.post(ledgerUrl(org.orgId, 'journal-entries')).set(org.owner.auth).send(body).expect(200);
    await flush();
    expect(everything.received).toHaveLength(5);
  });

  it('replays one message (same webhook-id) and every failed message since a time, after the schedule ran out', async () => {
    const org = await orgWithBooks('Replay Ltd');
    let down = true;
    const r = await receiver(() => (down ? { status: 500 } : { status: 204 }));
    const ep = await endpoint(org, r);
    const since = new Date(clock.now() - 1000).toISOString();
    await postEntry(org);
    await flush();
    for (let n = 1; n <= RETRY_DELAYS_SECONDS.length; n++) {
      clock.advance(afterRetry(n));
      await delivery.deliverDue();
    }
    expect(r.received).toHaveLength(RETRY_DELAYS_SECONDS.length + 1);
    const failed = await t.http.get(endpointsUrl(org, `/${ep.id}/messages?status=failed`)).set(org.owner.auth).expect(200);
    expect(failed.body.items).toHaveLength(1);
    expect(failed.body.items[0]).toMatchObject({ attemptCount: 8, nextAttemptAt: null });
    down = false;
    const replayed = await t.http.post(endpointsUrl(org, `/${ep.id}/replay-failed`)).set(org.owner.auth).send({ since }).expect(202);
    expect(replayed.body).toEqual({ replayed: 1 });
    await delivery.deliverDue();
    expect(r.received).toHaveLength(9);
    const messageId = failed.body.items[0].id;
    const again = await t.http.post(endpointsUrl(org, `/${ep.id}/messages/${messageId}/replay`)).set(org.owner.auth).expect(202);
    expect(again.body).toMatchObject({ status: 'pending', attemptCount: 0 });
    // while it is pending, a second replay is refused
    expect((await t.http.post(endpointsUrl(org, `/${ep.id}/messages/${messageId}/replay`)).set(org.owner.auth).expect(409)).body.error.code).toBe('webhooks.message_pending');
    await delivery.deliverDue();
    expect(r.received).toHaveLength(10);
    expect(new Set(r.received.map((w) => w.id)).size).toBe(1);
    const detail = await t.http.get(endpointsUrl(org, `/${ep.id}/messages/${messageId}`)).set(org.owner.auth).expect(200);
    expect(detail.body).toMatchObject({ status: 'succeeded', attemptCount: 1 });
    expect(detail.body.attemptLog).toHaveLength(10);
  });

  it('sends a signed ping to one endpoint', async () => {
    const org = await orgWithBooks('Ping Ltd');
    const r = await receiver();
    const ep = await endpoint(org, r, { eventTypes: ['period.closed'] });
    const ping = await t.http.post(endpointsUrl(org, `/${ep.id}/ping`)).set(org.owner.auth).expect(202);
    expect(ping.body).toMatchObject({ eventType: 'ping', status: 'pending', eventId: null });
    await delivery.deliverDue();
    expect(r.received).toHaveLength(1);
    expect(r.received[0]).toMatchObject({ id: ping.body.webhookId, verifiedWith: { current: true }, body: { type: 'ping', organizationId: org.orgId, data: { endpointId: ep.id } } });
    expect(await deliveryProblems(r.received[0])).toBeUndefined();
    // and the check can fail: a ping whose data lacks the ping's message
    expect(await deliveryProblems({ ...r.received[0], body: { ...r.received[0].body, data: { endpointId: ep.id } } })).toMatch(/oneOf|message/);
  });

  it('records a batch once more when its transaction deadlocked (40P01), instead of leaving it to be sent again', async () => {
    const owner = await registerUser(t, 'owner');
    const org = { owner, orgId: await createOrg(t, owner, 'Deadlocked Ltd'), acc: {} };
    await onPlan(t, org.orgId, 'professional');
    const r = await receiver();
    const ep = await endpoint(org, r);
    const ping = await t.http.post(endpointsUrl(org, `/${ep.id}/ping`)).set(org.owner.auth).expect(202);
    // the first recording loses a deadlock (a request deleting or changing one of its endpoints)
    const insert = jest.spyOn(webhookRepository, 'insertAttempts').mockRejectedValueOnce(Object.assign(new Error('deadlock detected'), { code: '40P01' }));
    let recordings: number;
    try {
      expect(await delivery.deliverDue()).toBe(1);
    } finally {
      recordings = insert.mock.calls.length;
      insert.mockRestore();
    }
    expect(recordings).toBe(2);
    expect(r.received).toHaveLength(1);
    const [message] = (await t.db.admin.query('SELECT status, attempts, next_attempt_at FROM core.webhook_messages WHERE id = $1', [ping.body.id])).rows;
    expect(message).toEqual({ status: 'succeeded', attempts: 1, next_attempt_at: null });
    expect((await attemptsOf(ep.id)).map((a) => [a.succeeded, a.status_code])).toEqual([[true, 200]]);
    // recorded: past the claim's lease nothing is sent again
    clock.advance(TIMEOUT_MS + 30_000 + 1);
    expect(await delivery.deliverDue()).toBe(0);
    expect(r.received).toHaveLength(1);
  });

  it('records two batches at once whose endpoints are the same in opposite roles (one\'s succeeded is the other\'s failed) without a deadlock', async () => {
    const owner = await registerUser(t, 'owner');
    const org = { owner, orgId: await createOrg(t, owner, 'Two Workers Ltd'), acc: {} };
    await onPlan(t, org.orgId, 'professional');
    const r = await receiver();
    const [lo, hi] = [(await endpoint(org, r)).id, (await endpoint(org, r)).id].sort();
    const pings: Record<string, string[]> = { [lo]: [], [hi]: [] };
    for (const id of [lo, hi, lo, hi]) pings[id].push((await t.http.post(endpointsUrl(org, `/${id}/ping`)).set(org.owner.auth).expect(202)).body.id);
    await t.db.admin.query('UPDATE core.webhook_endpoints SET failing_since = $2 WHERE id = ANY($1)', [[lo, hi], new Date(clock.now())]);
    await t.db.admin.query('UPDATE core.webhook_messages SET attempts = 1 WHERE org_id = $1', [org.orgId]); // claimed once, as the attempts say
    const attempt = (endpointId: string, messageId: string, statusCode: number) => ({
      message: { org_id: org.orgId, id: messageId, endpoint_id: endpointId, event_type: 'ping', body: {}, attempts: 1, url: r.url, secret: null, previous_secret: null, previous_secret_expires_at: null },
      at: new Date(clock.now()), latencyMs: 1, statusCode, responseBody: null, error: null,
    });
    // two workers' recordings (record(): the batch's attempts, then its endpoints' health)
    const recordBatch = (batch: unknown[]) => (delivery as unknown as { recordBatch(batch: unknown[]): Promise<void> }).recordBatch(batch);
    const waiting = async () => (await t.db.admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`)).rows[0].n;
    const insert = jest.spyOn(webhookRepository, 'insertAttempts');
    const holder = await t.db.admin.connect();
    let recordings: number;
    try {
      // the first endpoint held elsewhere: the first recording waits for it, then the second one behind it; each batch's order
      // alone (lo then hi, hi then lo) deadlocked them, one of them recorded twice
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM core.webhook_endpoints WHERE id = $1 FOR UPDATE', [lo]);
      const first = recordBatch([attempt(lo, pings[lo][0], 200), attempt(hi, pings[hi][0], 500)]);
      await until('the first recording waits for the endpoint', async () => (await waiting()) === 1);
      const second = recordBatch([attempt(hi, pings[hi][1], 200), attempt(lo, pings[lo][1], 500)]);
      await until('the second recording waits too', async () => (await waiting()) === 2);
      await holder.query('COMMIT');
      await Promise.all([first, second]);
    } finally {
      recordings = insert.mock.calls.length;
      insert.mockRestore();
      holder.release();
    }
    expect(recordings).toBe(2);
    const messages = await t.db.admin.query('SELECT id, status FROM core.webhook_messages WHERE org_id = $1', [org.orgId]);
    expect(Object.fromEntries(messages.rows.map((m) => [m.id, m.status]))).toEqual({
      [pings[lo][0]]: 'succeeded', [pings[hi][0]]: 'pending', [pings[hi][1]]: 'succeeded', [pings[lo][1]]: 'pending',
    });
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.webhook_attempts WHERE org_id = $1', [org.orgId])).rows).toEqual([{ n: 4 }]);
    // in the order they were recorded: lo failing again (the second batch), hi healthy (the second batch)
    const health = await t.db.admin.query('SELECT id, failing_since IS NOT NULL AS failing FROM core.webhook_endpoints WHERE id = ANY($1)', [[lo, hi]]);
    expect(Object.fromEntries(health.rows.map((e) => [e.id, e.failing]))).toEqual({ [lo]: true, [hi]: false });
  });

  it('sends with the current secret alone when only the previous one (a rotation\'s overlap) cannot be opened, and tells the operators', async () => {
    const owner = await registerUser(t, 'owner');
    const org = { owner, orgId: await createOrg(t, owner, 'Lost Previous Ltd'), acc: {} };
    await onPlan(t, org.orgId, 'professional');
    const r = await receiver();
    const ep = await endpoint(org, r);
    r.secrets.old = ep.secret;
    const rotated = await t.http.post(endpointsUrl(org, `/${ep.id}/rotate-secret`)).set(org.owner.auth).send({ overlapSeconds: 3600 }).expect(201);
    r.secrets.current = rotated.body.secret;
    // the previous secret's key left SECRETS_KEYS
    await t.db.admin.query(`UPDATE core.webhook_endpoints SET previous_secret = jsonb_set(previous_secret, '{kid}', '"k0"') WHERE id = $1`, [ep.id]);
    const ping = await t.http.post(endpointsUrl(org, `/${ep.id}/ping`)).set(org.owner.auth).expect(202);
    const warn = jest.spyOn(Logger.prototype, 'warn');
    let warned: string[];
    try {
      expect(await delivery.deliverDue()).toBe(1);
    } finally {
      warned = warn.mock.calls.map((c) => String(c[0]));
      warn.mockRestore();
    }
    expect(r.received).toHaveLength(1);
    expect(r.received[0]).toMatchObject({ id: ping.body.webhookId, verifiedWith: { current: true, old: false } });
    expect(r.received[0].signature.split(' ')).toHaveLength(1);
    const [message] = (await t.db.admin.query('SELECT status, attempts FROM core.webhook_messages WHERE id = $1', [ping.body.id])).rows;
    expect(message).toEqual({ status: 'succeeded', attempts: 1 });
    expect((await attemptsOf(ep.id)).map((a) => [a.succeeded, a.status_code, a.error])).toEqual([[true, 200, null]]);
    expect(warned.filter((l) => l.startsWith(`webhook endpoint ${ep.id} of organization ${org.orgId}: its previous signing secret cannot be opened (`)
      && /key "?k0"? is not configured/.test(l) && l.endsWith(`message ${ping.body.id} sent signed with the current secret alone`))).toHaveLength(1);
  });

  it('never delivers one organization\'s events to another\'s endpoint', async () => {
    const a = await orgWithBooks('Org A');
    const b = await orgWithBooks('Org B');
    const ra = await receiver();
    const rb = await receiver();
    await endpoint(a, ra);
    await endpoint(b, rb);
    await postEntry(b, 'b only');
    await postEntry(b, 'b again');
    await postEntry(a, 'a only');
    await flush();
    expect(ra.received.map((w) => [w.body.organizationId, w.body.data.memo])).toEqual([[a.orgId, 'a only']]);
    expect(rb.received.map((w) => w.body.organizationId)).toEqual([b.orgId, b.orgId]);
    // B's endpoint and its messages are not visible in A
    const bEndpoints = await t.http.get(endpointsUrl(b)).set(b.owner.auth).expect(200);
    await t.http.get(endpointsUrl(a, `/${bEndpoints.body[0].id}`)).set(a.owner.auth).expect(404);
    await t.http.get(endpointsUrl(b, `/${bEndpoints.body[0].id}`)).set(a.owner.auth).expect(404);
  });

  it('is an OmniZen feature of professional and up: a starter organization cannot create an endpoint', async () => {
    const org = await orgWithBooks('Starter Ltd', 'starter');
    const r = await receiver();
    const res = await t.http.post(endpointsUrl(org)).set(org.owner.auth).send({ url: r.url }).expect(402);
    expect(res.body.error).toMatchObject({ code: 'billing.feature_not_in_plan', details: { feature: 'webhooks', upgradeTo: 'professional' } });
    await t.http.get(endpointsUrl(org)).set(org.owner.auth).expect(200);
  });

  it('records each batch of a pass on its own: a NUL in an answer or an endpoint deleted mid-send stops no other message, and none is sent twice', async () => {
    const org = await orgWithBooks('Batches Ltd');
    const nul = await receiver(() => ({ status: 200, body: 'ok\0 fine' }));
    const held = await receiver(() => 'hang');
    const plain = await receiver(() => ({ status: 200, body: 'thanks' }));
    const [a, b, c] = [await endpoint(org, nul), await endpoint(org, held), await endpoint(org, plain)];
    // one ping each, due in this order; a worker claiming one message per batch: three batches in one pass
    for (const ep of [a, b, c]) {
      await t.http.post(endpointsUrl(org, `/${ep.id}/ping`)).set(org.owner.auth).expect(202);
      clock.advance(1);
    }
    const lines: string[] = [];
    const logs = new Writable({ write: (chunk: Buffer, _e, done) => done(void lines.push(...chunk.toString().split('\n').filter(Boolean))) });
    const worker = await startApp({ ...t.config, logLevel: 'warn', webhooks: { ...t.config.webhooks, concurrency: 1, timeoutMs: 60_000 } }, clock, logs);
    try {
      const pass = worker.app.get(WebhookDelivery).deliverDue();
      await held.waitFor(1); // b's message is at its receiver: its endpoint (and so the message) is deleted meanwhile
      await t.http.delete(endpointsUrl(org, `/${b.id}`)).set(org.owner.auth).expect(204);
      await held.close(); // the send fails after its message is gone
      expect(await pass).toBe(3);
      const messages = async () => (await t.db.admin.query(
        'SELECT endpoint_id, status, attempts FROM core.webhook_messages WHERE org_id = $1 ORDER BY created_at', [org.orgId])).rows;
      expect(await messages()).toEqual([{ endpoint_id: a.id, status: 'succeeded', attempts: 1 }, { endpoint_id: c.id, status: 'succeeded', attempts: 1 }]);
      expect((await attemptsOf(a.id)).map((x) => [x.succeeded, x.status_code, x.response_body])).toEqual([[true, 200, 'ok fine']]);
      expect((await attemptsOf(c.id)).map((x) => [x.succeeded, x.status_code, x.response_body])).toEqual([[true, 200, 'thanks']]);
      expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.webhook_attempts WHERE endpoint_id = $1', [b.id])).rows).toEqual([{ n: 0 }]);
      // the deleted message's attempt was skipped, not refused by the foreign key
      expect(lines.filter((l) => l.includes('recording webhook attempts failed'))).toEqual([]);
      const log = await t.http.get(endpointsUrl(org, `/${a.id}/attempts`)).set(org.owner.auth).expect(200);
      expect(log.body.items.map((x: any) => x.responseBody)).toEqual(['ok fine']);
      // settled once: past every claim's lease nothing is sent again
      clock.advance(60_000 + 30_000 + 1);
      expect(await worker.app.get(WebhookDelivery).deliverDue()).toBe(0);
      expect([nul.received.length, held.received.length, plain.received.length]).toEqual([1, 1, 1]);
      expect(await messages()).toEqual([{ endpoint_id: a.id, status: 'succeeded', attempts: 1 }, { endpoint_id: c.id, status: 'succeeded', attempts: 1 }]);
    } finally {
      await worker.app.close();
    }
  });

  it('shares the sends between endpoints: one that does not answer holds at most its slots, and the others\' messages go on meanwhile', async () => {
    const org = await orgWithBooks('Tarpit Ltd');
    const tarpit = await receiver(() => 'hang');
    const plain = await receiver(() => ({ status: 200, body: 'thanks' }));
    const [slow, fast] = [await endpoint(org, tarpit), await endpoint(org, plain)];
    // the slow endpoint's six messages are due first, then the other's three
    for (const [ep, n] of [[slow, 6], [fast, 3]] as const) {
      for (let i = 0; i < n; i++) {
        await t.http.post(endpointsUrl(org, `/${ep.id}/ping`)).set(org.owner.auth).expect(202);
        clock.advance(1);
      }
    }
    const worker = await startApp({ ...t.config, webhooks: { ...t.config.webhooks, concurrency: 4, concurrencyPerEndpoint: 2, timeoutMs: 60_000 } }, clock);
    try {
      const pass = worker.app.get(WebhookDelivery).deliverDue();
      // two sends wait at the slow receiver; all three of the other's messages arrive while they wait
      await tarpit.waitFor(2);
      await plain.waitFor(3);
      expect(tarpit.received).toHaveLength(2);
      await tarpit.close(); // its sends fail now (and the rest of its messages at once): the pass ends
      await pass;
      const statuses = (await t.db.admin.query(`SELECT status, count(*)::int AS n FROM core.webhook_messages WHERE endpoint_id = $1 GROUP BY status`, [fast.id])).rows;
      expect(statuses).toEqual([{ status: 'succeeded', n: 3 }]);
      expect((await attemptsOf(fast.id)).map((x) => [x.succeeded, x.status_code])).toEqual([[true, 200], [true, 200], [true, 200]]);
    } finally {
      await worker.app.close();
    }
  });

  it('shares the sends between organizations: one whose receivers do not answer holds at most its slots, and another\'s messages, older backlog or not, go on meanwhile', async () => {
    const [a, b] = [await orgWithBooks('Backlog Org'), await orgWithBooks('Other Org')];
    const tarpit = await receiver(() => 'hang');
    const plain = await receiver(() => ({ status: 200, body: 'thanks' }));
    const [a1, a2] = [await endpoint(a, tarpit, { url: `${tarpit.url}/a1` }), await endpoint(a, tarpit, { url: `${tarpit.url}/a2` })];
    const other = await endpoint(b, plain);
    // A's backlog of 40 messages, all due before B's one: the oldest due messages are all A's
    await t.db.admin.query(`INSERT INTO core.webhook_messages (org_id, endpoint_id, event_type, body, next_attempt_at, created_at)
      SELECT $1, CASE WHEN g % 2 = 0 THEN $2::uuid ELSE $3::uuid END, 'ping', '{"type":"ping"}', $4::timestamptz + g * interval '1 ms', $4::timestamptz
      FROM generate_series(1, 40) g`, [a.orgId, a1.id, a2.id, new Date(clock.now() - 10_000)]);
    const ping = async () => (await t.http.post(endpointsUrl(b, `/${other.id}/ping`)).set(b.owner.auth).expect(202)).body.id as string;
    const first = await ping();
    const worker = await startApp({ ...t.config, webhooks: { ...t.config.webhooks, concurrency: 4, concurrencyPerEndpoint: 2, concurrencyPerOrganization: 2, timeoutMs: 60_000 } }, clock);
    try {
      const sender = worker.app.get(WebhookDelivery);
      const pass = sender.deliverDue();
      // A's two sends wait at the receiver that does not answer; B's message is sent meanwhile
      await plain.waitFor(1);
      await tarpit.waitFor(2);
      // one more of B's, due while the pass waits on A's sends: a call of deliverDue has the pass claim it at once
      const second = await ping();
      void sender.deliverDue();
      await plain.waitFor(2);
      expect(tarpit.received).toHaveLength(2);
      const inFlight = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.webhook_messages WHERE org_id = $1 AND attempts > 0`, [a.orgId]);
      expect(inFlight.rows).toEqual([{ n: 2 }]); // claimed: A's two sends, no more
      // the rest of A's backlog is not this test's: A's two sends fail now, and the pass ends
      await t.db.admin.query(`UPDATE core.webhook_messages SET status = 'failed', next_attempt_at = NULL WHERE org_id = $1 AND attempts = 0`, [a.orgId]);
      await tarpit.close();
      await pass;
      const messages = await t.db.admin.query(`SELECT id, status, attempts FROM core.webhook_messages WHERE org_id = $1 ORDER BY created_at`, [b.orgId]);
      expect(messages.rows).toEqual([{ id: first, status: 'succeeded', attempts: 1 }, { id: second, status: 'succeeded', attempts: 1 }]);
      expect(plain.received.map((w) => w.id)).toEqual([first, second].map((id) => `msg_${id.replace(/-/g, '')}`));
    } finally {
      await worker.app.close();
    }
  });

  it(`fails a message claimed ${MAX_ATTEMPTS} times whose last outcome was never recorded, instead of sending it forever`, async () => {
    const org = await orgWithBooks('Exhausted Ltd');
    const r = await receiver();
    const ep = await endpoint(org, r);
    const last = (await t.http.post(endpointsUrl(org, `/${ep.id}/ping`)).set(org.owner.auth).expect(202)).body.id as string;
    const exhausted = (await t.http.post(endpointsUrl(org, `/${ep.id}/ping`)).set(org.owner.auth).expect(202)).body.id as string;
    // as the worker leaves them when recording failed: claimed (attempts counted), the claim run out
    await t.db.admin.query('UPDATE core.webhook_messages SET attempts = $2 WHERE id = $1', [last, MAX_ATTEMPTS - 1]);
    await t.db.admin.query('UPDATE core.webhook_messages SET attempts = $2 WHERE id = $1', [exhausted, MAX_ATTEMPTS]);
    expect(await delivery.deliverDue()).toBe(1);
    expect(r.received.map((w) => w.id)).toEqual([`msg_${last.replace(/-/g, '')}`]);
    const rows = (await t.db.admin.query('SELECT id, status, attempts, next_attempt_at FROM core.webhook_messages WHERE endpoint_id = $1', [ep.id])).rows;
    expect(new Map(rows.map((m) => [m.id, [m.status, m.attempts, m.next_attempt_at]]))).toEqual(new Map([
      [last, ['succeeded', MAX_ATTEMPTS, null]], [exhausted, ['failed', MAX_ATTEMPTS, null]],
    ]));
    const detail = await t.http.get(endpointsUrl(org, `/${ep.id}/messages/${exhausted}`)).set(org.owner.auth).expect(200);
    expect(detail.body).toMatchObject({ status: 'failed', attemptCount: MAX_ATTEMPTS, nextAttemptAt: null, attemptLog: [] });
    clock.advance(3600_000);
    expect(await delivery.deliverDue()).toBe(0);
    expect(r.received).toHaveLength(1);
  });

  it('delivers a message committed before the process died mid-send: a new process on the same database sends it, same webhook-id', async () => {
    const org = await orgWithBooks('Restart Ltd');
    const r = await receiver((n) => (n === 1 ? 'hang' : { status: 200 }));
    const ep = await endpoint(org, r);
    await postEntry(org);
    await relay.drain(); // committed and fanned out: the message exists
    const first = await startApp({ ...t.config, webhooks: { ...t.config.webhooks, timeoutMs: TIMEOUT_MS } }, clock);
    const inFlight = first.app.get(WebhookDelivery).deliverDue();
    await r.waitFor(1); // the request is at the receiver, unanswered
    await first.app.close(); // the process goes away mid-send
    await inFlight;
    const [m] = (await t.db.admin.query('SELECT status, attempts FROM core.webhook_messages WHERE endpoint_id = $1', [ep.id])).rows;
    expect(m).toEqual({ status: 'pending', attempts: 1 });
    expect(await attemptsOf(ep.id)).toEqual([]); // nothing was recorded: as if killed
    // a new process: once the dead one's claim has run out, the message is sent again
    const second = await startApp({ ...t.config, webhooks: { ...t.config.webhooks, timeoutMs: TIMEOUT_MS } }, clock);
    try {
      await second.app.get(WebhookDelivery).deliverDue();
      expect(r.received).toHaveLength(1); // the claim has not run out yet
      clock.advance(TIMEOUT_MS + 30_000 + 1);
      await second.app.get(WebhookDelivery).deliverDue();
      expect(r.received).toHaveLength(2);
      expect(r.received[1].id).toBe(r.received[0].id);
      expect(r.received[1].verifiedWith.current).toBe(true);
      expect((await attemptsOf(ep.id)).map((a) => [a.succeeded, a.status])).toEqual([[true, 'succeeded']]);
    } finally {
      await second.app.close();
    }
  });
});
