import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { PrivilegedDatabase } from '../../src/platform/database/privileged.service.js';
import { AuditService } from '../../src/modules/audit/audit.service.js';
import { SecretBox, SecretOpenError } from '../../src/modules/integrations/secret-box.js';
import { resealWebhookSecrets } from '../../src/modules/webhooks/webhook-secret-rotation.js';
import { secretContext } from '../../src/modules/webhooks/webhooks.service.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { WebhookDelivery } from '../../src/modules/webhooks/webhook-delivery.service.js';
import { MAX_ATTEMPTS } from '../../src/modules/webhooks/retry-schedule.js';
import { webhookRepository } from '../../src/modules/webhooks/webhook.repository.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { testKeys } from '../integrations/keys.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { until } from '../support/throwaway-servers.js';

/** Production's URL rules: https only, and the outbound SSRF guard on (no private networks), at creation and when connecting. */
describe('webhooks: endpoint URLs as production checks them', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  const url = (path = '') => `/v1/orgs/${orgId}/webhooks/endpoints${path}`;
  /** what the application logs (warnings and errors) */
  const lines: string[] = [];

  beforeAll(async () => {
    const logs = new Writable({ write: (chunk: Buffer, _e, done) => done(void lines.push(...chunk.toString().split('\n').filter(Boolean))) });
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env, WEBHOOKS_REQUIRE_HTTPS: 'true', OUTBOUND_ALLOW_PRIVATE_NETWORKS: 'false', REDIS_URL: '', LOG_LEVEL: 'warn' }, { logDestination: logs });
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Prod Rules Ltd');
    await onPlan(t, orgId, 'professional');
  });
  afterAll(() => t.close());

  it('refuses http, credentials in the URL and non-public address literals, naming the problem', async () => {
    const http = await t.http.post(url()).set(owner.auth).send({ url: 'http://hooks.example.com/x' }).expect(400);
    expect(http.body.error).toMatchObject({ code: 'webhooks.url_invalid', message: expect.stringContaining('https') });
    const creds = await t.http.post(url()).set(owner.auth).send({ url: 'https://user:pw@hooks.example.com/x' }).expect(400);
    expect(creds.body.error.code).toBe('webhooks.url_invalid');
    for (const literal of ['https://127.0.0.1/x', 'https://10.0.0.5/x', 'https://169.254.169.254/latest', 'https://[::1]/x']) {
      const res = await t.http.post(url()).set(owner.auth).send({ url: literal }).expect(400);
      expect([literal, res.body.error.code]).toEqual([literal, 'webhooks.url_not_public']);
    }
    const { rows } = await t.db.admin.query('SELECT count(*)::int AS n FROM core.webhook_endpoints WHERE org_id = $1', [orgId]);
    expect(rows[0].n).toBe(0);
  });

  it('refuses to connect to a name that resolves to a non-public address, and logs the attempt', async () => {
    const acc = await startBooks(t, orgId, owner);
    const created = await t.http.post(url()).set(owner.auth).send({ url: 'https://localhost:8443/hook', eventTypes: ['journal_entry.posted'] }).expect(201);
    await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(owner.auth)
      .send({ date: '2026-03-03', lines: [{ accountId: acc['5200'], debit: '1' }, { accountId: acc['1100'], credit: '1' }] }).expect(201);
    await t.app.get(OutboxRelay).drain();
    await t.app.get(WebhookDelivery).deliverDue();
    const log = await t.http.get(url(`/${created.body.id}/attempts`)).set(owner.auth).expect(200);
    expect(log.body.items).toHaveLength(1);
    // the tenant sees the name it chose, never the address it resolved to (our network's): that is for the operators' log
    expect(log.body.items[0]).toMatchObject({ succeeded: false, statusCode: null, eventType: 'journal_entry.posted', error: 'localhost resolves to a non-public address: the connection was refused' });
    expect(JSON.stringify(log.body)).not.toMatch(/127\.0\.0\.1|::1/);
    expect(lines.filter((l) => /refused to connect to localhost: (127\.0\.0\.1|::1) is not a public address/.test(l))).toHaveLength(1);
  });

  it('re-seals signing secrets under a new active key (secrets:rotate): the secret itself is unchanged', async () => {
    const created = await t.http.post(url()).set(owner.auth).send({ url: 'https://hooks.example.com/rotate' }).expect(201);
    const rotated = await t.http.post(url(`/${created.body.id}/rotate-secret`)).set(owner.auth).send({ overlapSeconds: 600 }).expect(201);
    const k2 = randomBytes(32);
    const both = new SecretBox({ ...t.config.secrets.keys, k2 }, 'k2');
    const result = await resealWebhookSecrets(t.app.get(PrivilegedDatabase), both, t.app.get(AuditService));
    expect(result).toMatchObject({ resealed: expect.any(Number), failed: [], remaining: 0 });
    const [row] = (await t.db.admin.query('SELECT secret, previous_secret FROM core.webhook_endpoints WHERE id = $1', [created.body.id])).rows;
    expect([row.secret.kid, row.previous_secret.kid]).toEqual(['k2', 'k2']);
    // only the new key is needed now, and it opens the very secrets the endpoint was given
    const onlyK2 = new SecretBox({ k2 }, 'k2');
    const context = secretContext(orgId, created.body.id);
    expect(onlyK2.openFor(row.secret, context)).toBe(rotated.body.secret);
    expect(onlyK2.openFor(row.previous_secret, context)).toBe(created.body.secret);
    // bound to its row: another endpoint's context does not open it
    expect(() => onlyK2.openFor(row.secret, secretContext(orgId, randomUUID()))).toThrow(SecretOpenError);
  });

  it('changes the event types (null: every type) and refuses null where a field is not nullable', async () => {
    const created = await t.http.post(url()).set(owner.auth).send({ url: 'https://hooks.example.com/a', eventTypes: ['period.closed'] }).expect(201);
    const all = await t.http.patch(url(`/${created.body.id}`)).set(owner.auth).send({ eventTypes: null, description: 'everything' }).expect(200);
    expect(all.body).toMatchObject({ eventTypes: null, description: 'everything' });
    const [row] = (await t.db.admin.query('SELECT event_types FROM core.webhook_endpoints WHERE id = $1', [created.body.id])).rows;
    expect(row.event_types).toEqual([]);
    const bad = await t.http.patch(url(`/${created.body.id}`)).set(owner.auth).send({ url: null }).expect(400);
    expect(bad.body.error.code).toBe('validation_failed');
    await t.http.delete(url(`/${created.body.id}`)).set(owner.auth).expect(204);
    await t.http.get(url(`/${created.body.id}`)).set(owner.auth).expect(404);
    const audit = await t.db.admin.query(`SELECT action FROM core.audit_logs WHERE entity_id = $1 ORDER BY id`, [created.body.id]);
    expect(audit.rows.map((r) => r.action)).toEqual(['webhooks.endpoint_created', 'webhooks.endpoint_updated', 'webhooks.endpoint_deleted']);
  });

  it('holds an organization to WEBHOOKS_MAX_ENDPOINTS (16): the 17th is a 409 naming the cap, nothing written; deleting one makes room', async () => {
    const capped = await createOrg(t, owner, 'Many Hooks Ltd');
    await onPlan(t, capped, 'professional');
    const cappedUrl = `/v1/orgs/${capped}/webhooks/endpoints`;
    // 15 made directly, the 16th through the API
    await t.db.admin.query(`INSERT INTO core.webhook_endpoints (org_id, url, secret) SELECT $1, 'https://hooks.example.com/' || g, '{}' FROM generate_series(1, 15) g`, [capped]);
    const sixteenth = await t.http.post(cappedUrl).set(owner.auth).send({ url: 'https://hooks.example.com/16' }).expect(201);
    const refused = await t.http.post(cappedUrl).set(owner.auth).send({ url: 'https://hooks.example.com/17' }).expect(409);
    expect(refused.body.error).toMatchObject({ code: 'webhooks.too_many_endpoints', details: { max: 16 } });
    expect(refused.body.error.message).toMatch(/16 webhook endpoints/);
    const count = async () => (await t.db.admin.query('SELECT count(*)::int AS n FROM core.webhook_endpoints WHERE org_id = $1', [capped])).rows[0].n;
    expect(await count()).toBe(16);
    // two at once when one place is left: one of them gets it
    await t.http.delete(`${cappedUrl}/${sixteenth.body.id}`).set(owner.auth).expect(204);
    const both = await Promise.all([1, 2].map((n) => t.http.post(cappedUrl).set(owner.auth).send({ url: `https://hooks.example.com/race${n}` })));
    expect(both.map((r) => r.status).sort()).toEqual([201, 409]);
    expect(await count()).toBe(16);
  });

  it('deletes an endpoint while the worker records an attempt of its message: in the worker\'s lock order, neither deadlocks', async () => {
    const created = await t.http.post(url()).set(owner.auth).send({ url: 'https://hooks.example.com/deleted' }).expect(201);
    const id = created.body.id as string;
    const ping = await t.http.post(url(`/${id}/ping`)).set(owner.auth).expect(202);
    await t.db.admin.query(`INSERT INTO core.webhook_attempts (org_id, message_id, endpoint_id, attempted_at, succeeded, status_code, latency_ms)
      VALUES ($1, $2, $3, now(), false, 500, 1)`, [orgId, ping.body.id, id]);
    // the worker's record(): its attempts key-share lock the message, then it updates the endpoint's health
    const worker = await t.db.admin.connect();
    try {
      await worker.query('BEGIN');
      await worker.query('SELECT 1 FROM core.webhook_messages WHERE id = $1 FOR KEY SHARE', [ping.body.id]);
      const deleting = t.http.delete(url(`/${id}`)).set(owner.auth).then((res) => res);
      await until('the DELETE waits for the message\'s lock', async () => (await t.db.admin.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'omnizen_api' AND wait_event_type = 'Lock' AND datname = current_database()`)).rows[0].n === 1);
      const recorded = await worker.query('UPDATE core.webhook_endpoints SET failing_since = now() WHERE id = $1', [id]).then(() => 'recorded', (err) => err.code);
      await worker.query('COMMIT');
      const res = await deleting;
      expect([recorded, res.status, res.body]).toEqual(['recorded', 204, {}]);
    } finally {
      worker.release();
    }
    const left = await t.db.admin.query(`SELECT (SELECT count(*)::int FROM core.webhook_endpoints WHERE id = $1) AS endpoints,
      (SELECT count(*)::int FROM core.webhook_messages WHERE endpoint_id = $1) AS messages, (SELECT count(*)::int FROM core.webhook_attempts WHERE endpoint_id = $1) AS attempts`, [id]);
    expect(left.rows).toEqual([{ endpoints: 0, messages: 0, attempts: 0 }]);
    const audit = await t.db.admin.query(`SELECT before FROM core.audit_logs WHERE entity_id = $1 AND action = 'webhooks.endpoint_deleted'`, [id]);
    expect(audit.rows).toEqual([{ before: { id, url: 'https://hooks.example.com/deleted', description: '', eventTypes: null, enabled: true, urlSetBy: owner.id, secretSetBy: owner.id } }]);
    await t.http.delete(url(`/${id}`)).set(owner.auth).expect(404);
  });

  it('replays the failed messages while the endpoint is being deleted: both in the worker\'s lock order (messages, then the endpoint), neither deadlocks', async () => {
    const created = await t.http.post(url()).set(owner.auth).send({ url: 'https://hooks.example.com/replayed-deleted' }).expect(201);
    const id = created.body.id as string;
    const ping = await t.http.post(url(`/${id}/ping`)).set(owner.auth).expect(202);
    await t.db.admin.query(`UPDATE core.webhook_messages SET status = 'failed', next_attempt_at = NULL WHERE id = $1`, [ping.body.id]);
    const waiting = async () => (await t.db.admin.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'omnizen_api' AND wait_event_type = 'Lock' AND datname = current_database()`)).rows[0].n;
    // the failed message held elsewhere: the DELETE waits for it first, then the replay of the failed messages behind it
    const holder = await t.db.admin.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM core.webhook_messages WHERE id = $1 FOR UPDATE', [ping.body.id]);
      const deleting = t.http.delete(url(`/${id}`)).set(owner.auth).then((res) => res);
      await until('the DELETE waits for the message', async () => (await waiting()) === 1);
      const replaying = t.http.post(url(`/${id}/replay-failed`)).set(owner.auth).send({ since: '2000-01-01T00:00:00Z' }).then((res) => res);
      await until('the replay waits too', async () => (await waiting()) === 2);
      await holder.query('COMMIT');
      const [deleted, replayed] = await Promise.all([deleting, replaying]);
      // the DELETE goes first; the replay then finds the endpoint gone (locking it first, it deadlocked with the DELETE: a 409 to one)
      expect([deleted.status, deleted.body]).toEqual([204, {}]);
      expect([replayed.status, replayed.body.error?.code]).toEqual([404, 'webhook_endpoint.not_found']);
    } finally {
      holder.release();
    }
    const left = await t.db.admin.query(`SELECT (SELECT count(*)::int FROM core.webhook_endpoints WHERE id = $1) AS endpoints,
      (SELECT count(*)::int FROM core.webhook_messages WHERE endpoint_id = $1) AS messages`, [id]);
    expect(left.rows).toEqual([{ endpoints: 0, messages: 0 }]);
    const audit = await t.db.admin.query(`SELECT action FROM core.audit_logs WHERE entity_id = $1 ORDER BY id`, [id]);
    expect(audit.rows.map((r) => r.action)).toEqual(['webhooks.endpoint_created', 'webhooks.endpoint_pinged', 'webhooks.endpoint_deleted']);
  });

  it('replays one message while the worker records its last claim\'s late outcome: in the worker\'s lock order neither deadlocks, and the outcome does not undo the replay', async () => {
    const created = await t.http.post(url()).set(owner.auth).send({ url: 'https://hooks.example.com/late-outcome' }).expect(201);
    const id = created.body.id as string;
    const ping = await t.http.post(url(`/${id}/ping`)).set(owner.auth).expect(202);
    // claimDue failed it (its last claim ran out unrecorded) while that claim's send was still under way
    await t.db.admin.query(`UPDATE core.webhook_messages SET status = 'failed', next_attempt_at = NULL, attempts = $2 WHERE id = $1`, [ping.body.id, MAX_ATTEMPTS]);
    const late = {
      message: { org_id: orgId, id: ping.body.id, endpoint_id: id, event_type: 'ping', body: {}, attempts: MAX_ATTEMPTS, url: created.body.url, secret: null, previous_secret: null, previous_secret_expires_at: null },
      at: new Date(), latencyMs: 1, statusCode: 500, responseBody: null, error: null,
    };
    const recordBatch = (batch: unknown[]) => (t.app.get(WebhookDelivery) as unknown as { recordBatch(batch: unknown[]): Promise<void> }).recordBatch(batch);
    const waiting = async () => (await t.db.admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`)).rows[0].n;
    // the endpoint held elsewhere: the replay locks the message and waits for the endpoint; the recording waits for the message
    const insert = jest.spyOn(webhookRepository, 'insertAttempts');
    const holder = await t.db.admin.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM core.webhook_endpoints WHERE id = $1 FOR UPDATE', [id]);
      const replaying = t.http.post(url(`/${id}/messages/${ping.body.id}/replay`)).set(owner.auth).then((res) => res);
      await until('the replay waits for the endpoint', async () => (await waiting()) === 1);
      const recording = recordBatch([late]);
      await until('the recording waits for the message', async () => (await waiting()) === 2);
      await holder.query('COMMIT');
      const [replayed] = await Promise.all([replaying, recording]);
      expect([replayed.status, replayed.body.status, replayed.body.attemptCount]).toEqual([202, 'pending', 0]);
      expect(insert).toHaveBeenCalledTimes(1); // recorded at the first try: no deadlock retried
    } finally {
      insert.mockRestore();
      holder.release();
    }
    // the late attempt is logged; the message keeps the replay's new round (the late outcome failed it: never sent again)
    const { rows: [message] } = await t.db.admin.query('SELECT status, attempts, next_attempt_at IS NOT NULL AS due FROM core.webhook_messages WHERE id = $1', [ping.body.id]);
    expect(message).toEqual({ status: 'pending', attempts: 0, due: true });
    expect((await t.db.admin.query('SELECT status_code FROM core.webhook_attempts WHERE message_id = $1', [ping.body.id])).rows).toEqual([{ status_code: 500 }]);
    await t.db.admin.query('DELETE FROM core.webhook_endpoints WHERE id = $1', [id]); // not sent by a later test's pass
  });

  it('replays the failed messages only if the endpoint is still enabled once they are locked: disabled meanwhile, a 409 and nothing replayed', async () => {
    const created = await t.http.post(url()).set(owner.auth).send({ url: 'https://hooks.example.com/disabled-meanwhile' }).expect(201);
    const id = created.body.id as string;
    const ping = await t.http.post(url(`/${id}/ping`)).set(owner.auth).expect(202);
    await t.db.admin.query(`UPDATE core.webhook_messages SET status = 'failed', next_attempt_at = NULL WHERE id = $1`, [ping.body.id]);
    const holder = await t.db.admin.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM core.webhook_messages WHERE id = $1 FOR UPDATE', [ping.body.id]);
      const replaying = t.http.post(url(`/${id}/replay-failed`)).set(owner.auth).send({ since: '2000-01-01T00:00:00Z' }).then((res) => res);
      await until('the replay waits for the message', async () => (await t.db.admin.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'omnizen_api' AND wait_event_type = 'Lock' AND datname = current_database()`)).rows[0].n === 1);
      await t.http.patch(url(`/${id}`)).set(owner.auth).send({ enabled: false }).expect(200);
      await holder.query('COMMIT');
      const replayed = await replaying;
      expect([replayed.status, replayed.body.error?.code]).toEqual([409, 'webhooks.endpoint_disabled']);
    } finally {
      holder.release();
    }
    expect((await t.db.admin.query('SELECT status FROM core.webhook_messages WHERE id = $1', [ping.body.id])).rows).toEqual([{ status: 'failed' }]);
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE entity_id = $1 AND action = 'webhooks.failed_replayed'`, [id])).rows).toEqual([{ n: 0 }]);
  });

  it('a signing secret that cannot be opened (its key left SECRETS_KEYS): the operators\' log names the endpoint, the tenant\'s log not our key', async () => {
    const created = await t.http.post(url()).set(owner.auth).send({ url: 'https://hooks.example.com/lost-key' }).expect(201);
    const id = created.body.id as string;
    await t.db.admin.query(`UPDATE core.webhook_endpoints SET secret = jsonb_set(secret, '{kid}', '"k0"') WHERE id = $1`, [id]);
    await t.http.post(url(`/${id}/ping`)).set(owner.auth).expect(202);
    const from = lines.length;
    await t.app.get(WebhookDelivery).deliverDue();
    const log = await t.http.get(url(`/${id}/attempts`)).set(owner.auth).expect(200);
    expect(log.body.items).toEqual([expect.objectContaining({ succeeded: false, statusCode: null, eventType: 'ping', error: 'the endpoint\'s signing secret could not be opened' })]);
    expect(JSON.stringify(log.body)).not.toContain('k0');
    const [stored] = (await t.db.admin.query('SELECT error FROM core.webhook_attempts WHERE endpoint_id = $1', [id])).rows;
    expect(stored.error).toBe('the endpoint\'s signing secret could not be opened');
    expect(lines.slice(from).filter((l) => l.includes(`webhook endpoint ${id} of organization ${orgId}`) && /its current signing secret cannot be opened \(.*key \\?"k0\\?" is not configured\)/.test(l))).toHaveLength(1);
  });
});
