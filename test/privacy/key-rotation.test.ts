import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import { PrivilegedDatabase } from '../../src/platform/database/privileged.service.js';
import { AuditService } from '../../src/modules/audit/audit.service.js';
import { SecretBox, SecretOpenError } from '../../src/modules/integrations/secret-box.js';
import { rewrapPersonalDataKeys } from '../../src/modules/privacy/personal-data-key-rotation.js';
import { PERSONAL_DATA_JOB_TOPICS, resealJobPayloads } from '../../src/modules/privacy/job-payload-rotation.js';
import { POSTHOG_ERASURE_JOB } from '../../src/modules/analytics/posthog.forwarder.js';
import { DatabaseService } from '../../src/platform/database/database.service.js';
import { enqueue, jobPayload, JobRegistry, type Job } from '../../src/platform/queue/jobs.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser } from '../support/factories.js';
import { testKeys } from '../integrations/keys.js';

// npm run secrets:rotate re-wraps the per-person keys that seal personal fields of audit snapshots, so the old
// SECRETS_KEYS entry can be removed as the command says without making any sealed snapshot unreadable.
describe('secrets:rotate: personal data keys', () => {
  let t: TestApp;
  const k1 = testKeys('k1');
  const k2 = randomBytes(32); // the key the first rotation moves to

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: k1.env, REDIS_URL: '' });
  });
  afterAll(() => t.close());

  const keyOf = async (userId: string) =>
    (await t.db.admin.query<{ id: string; wrapped: Record<string, unknown> }>('SELECT id, wrapped FROM core.personal_data_keys WHERE subject = $1', [`user:${userId}`])).rows[0];
  const context = (id: string) => `personal_data_key:${id}`;

  it('re-wraps every key not under the active key (wrapped under the old one, or stored unwrapped), audited, the keys themselves unchanged; again: nothing to do', async () => {
    const [a, b, c] = [await registerUser(t, 'rot-a'), await registerUser(t, 'rot-b'), await registerUser(t, 'rot-c')];
    const before = await keyOf(a.id);
    expect(before.wrapped.kid).toBe('k1'); // registration sealed the e-mail with a's key, wrapped under k1
    const oldBox = new SecretBox(k1.keys, 'k1');
    const raw = new Map<string, string>();
    for (const u of [a, b, c]) {
      const k = await keyOf(u.id);
      raw.set(u.id, oldBox.openFor<string>(k.wrapped, context(k.id)));
    }
    // c's key as a deployment without SECRETS_KEYS stored it
    const cKey = await keyOf(c.id);
    await t.db.admin.query('UPDATE core.personal_data_keys SET wrapped = $2 WHERE id = $1', [cKey.id, { unwrapped: raw.get(c.id) }]);

    const both = new SecretBox({ ...k1.keys, k2 }, 'k2');
    const result = await rewrapPersonalDataKeys(t.app.get(PrivilegedDatabase), both, t.app.get(AuditService), 2);
    expect(result).toEqual({ total: expect.any(Number), rewrapped: result.total, failed: [], remaining: 0 });
    expect(result.total).toBeGreaterThanOrEqual(3);

    // only k2 is needed now, and it opens the very keys the snapshots were sealed with
    const onlyK2 = new SecretBox({ k2 }, 'k2');
    for (const u of [a, b, c]) {
      const k = await keyOf(u.id);
      expect([u.id, k.wrapped.kid]).toEqual([u.id, 'k2']);
      expect(onlyK2.openFor<string>(k.wrapped, context(k.id))).toBe(raw.get(u.id));
      expect(() => onlyK2.openFor(k.wrapped, context(a.id === u.id ? b.id : a.id))).toThrow(SecretOpenError); // bound to its row
    }
    // audited where the key seals entries: the person's own organization
    const audited = await t.db.admin.query(
      `SELECT org_id, principal_type, entity_id, before, after FROM core.audit_logs WHERE action = 'privacy.personal_data_key_rewrapped' AND entity_id = ANY($1) ORDER BY entity_id`,
      [[before.id, cKey.id]]);
    expect(audited.rows).toEqual([
      { org_id: a.personalOrgId, principal_type: 'system', entity_id: before.id, before: { keyId: 'k1' }, after: { keyId: 'k2' } },
      { org_id: c.personalOrgId, principal_type: 'system', entity_id: cKey.id, before: { keyId: null }, after: { keyId: 'k2' } },
    ].sort((x, y) => x.entity_id.localeCompare(y.entity_id)));

    const again = await rewrapPersonalDataKeys(t.app.get(PrivilegedDatabase), both, t.app.get(AuditService));
    expect(again).toEqual({ total: 0, rewrapped: 0, failed: [], remaining: 0 });
  });

  it('reports a key no configured key opens and leaves it as it was; the others move on', async () => {
    const d = await registerUser(t, 'rot-d');
    const k = await keyOf(d.id);
    const foreign = new SecretBox({ k0: randomBytes(32) }, 'k0').sealFor(randomBytes(32).toString('base64'), context(k.id));
    await t.db.admin.query('UPDATE core.personal_data_keys SET wrapped = $2 WHERE id = $1', [k.id, foreign]);
    const k3 = randomBytes(32);
    const result = await rewrapPersonalDataKeys(t.app.get(PrivilegedDatabase), new SecretBox({ ...k1.keys, k2, k3 }, 'k3'), t.app.get(AuditService));
    expect(result.failed).toEqual([k.id]);
    expect(result.remaining).toBe(1);
    expect((await keyOf(d.id)).wrapped).toEqual(foreign);
  });

  it('re-seals the sealed payloads of waiting and dead personal-data jobs under the active key, audited with ids only; they still open, with the new key alone', async () => {
    const u = await registerUser(t, 'rot-jobs');
    const registry = t.app.get(JobRegistry);
    const service = { kind: 'service', name: 'key-rotation-test' } as const;
    const write = (distinctIds: string[]) => t.app.get(DatabaseService).tenant(service, u.personalOrgId, { requestId: 'key-rotation-test' },
      (tx) => enqueue(tx, POSTHOG_ERASURE_JOB, registry.sealed(POSTHOG_ERASURE_JOB, tx.orgId, { distinctIds })));
    await write(['waiting-1']);
    await write(['dead-1']);
    await write(['done-1']);
    const rows = async () => (await t.db.admin.query<{ id: string; payload: Record<string, any> }>(
      `SELECT id::text, payload FROM core.outbox WHERE org_id = $1 AND topic = $2 ORDER BY id`, [u.personalOrgId, POSTHOG_ERASURE_JOB])).rows;
    const [waiting, dead, done] = await rows();
    expect([waiting, dead].map((r) => r.payload.$sealed.kid)).toEqual(['k1', 'k1']);
    await t.db.admin.query(`UPDATE core.outbox SET processed_at = now(), dead_at = now() WHERE id = $1`, [dead.id]);
    await t.db.admin.query(`UPDATE core.outbox SET processed_at = now(), payload = '{}' WHERE id = $1`, [done.id]);

    const both = new SecretBox({ ...k1.keys, k2 }, 'k2');
    const result = await resealJobPayloads(t.app.get(PrivilegedDatabase), both, t.app.get(AuditService), 1);
    expect(result).toEqual({ total: 2, resealed: 2, emptied: 0, failed: [], remaining: 0 });
    const after = await rows();
    expect(after.map((r) => r.payload.$sealed?.kid ?? null)).toEqual(['k2', 'k2', null]);
    expect(after[2].payload).toEqual({});

    // what the job's handler gets, with k2 alone: the distinct ids as written
    const onlyK2 = new JobRegistry();
    const opened: unknown[] = [];
    onlyK2.register(POSTHOG_ERASURE_JOB, async (job) => void opened.push(job.payload), { personalData: new SecretBox({ k2 }, 'k2') });
    for (const r of after.slice(0, 2)) {
      await onlyK2.run({ id: r.id, orgId: u.personalOrgId, topic: POSTHOG_ERASURE_JOB, ...jobPayload(r.payload) } satisfies Job);
    }
    expect(opened).toEqual([{ distinctIds: ['waiting-1'] }, { distinctIds: ['dead-1'] }]);
    // bound to its organization: copied to another one, it does not open
    await expect(onlyK2.run({ id: waiting.id, orgId: randomUUID(), topic: POSTHOG_ERASURE_JOB, ...jobPayload(after[0].payload) }))
      .rejects.toThrow(`job ${waiting.id} (${POSTHOG_ERASURE_JOB}): its sealed payload does not open`);

    const audited = await t.db.admin.query(
      `SELECT org_id, principal_type, entity_type, entity_id, before, after FROM core.audit_logs WHERE action = 'jobs.payload_resealed' ORDER BY entity_id::bigint`);
    expect(audited.rows).toEqual([waiting, dead].map((r) => ({
      org_id: u.personalOrgId, principal_type: 'system', entity_type: 'outbox_job', entity_id: r.id, before: { keyId: 'k1' }, after: { keyId: 'k2' },
    })));
    expect(await resealJobPayloads(t.app.get(PrivilegedDatabase), both, t.app.get(AuditService))).toEqual({ total: 0, resealed: 0, emptied: 0, failed: [], remaining: 0 });
  });

  it('seals the payloads of personal-data jobs still in the clear (written before their topic was sealed): waiting and dead ones sealed, a done one emptied, audited; no address left in the clear', async () => {
    // the rotation, which runs without the application, knows the topics the application registers as personal data
    expect(t.app.get(JobRegistry).personalDataTopics()).toEqual([...PERSONAL_DATA_JOB_TOPICS]);
    const u = await registerUser(t, 'rot-clear');
    const address = `clear-${randomUUID()}@example.test`;
    const ids = (what: string) => ({ distinctIds: [`${what}-${u.id}`, `org:${u.personalOrgId}:user:${address}`] });
    const traceParent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    // the rows as the earlier version wrote them: the payload in the clear (its traceparent beside it)
    const insert = async (topic: string, payload: Record<string, unknown>, state = '') => {
      const { rows: [r] } = await t.db.admin.query<{ id: string }>(`INSERT INTO core.outbox (org_id, topic, payload) VALUES ($1, $2, $3) RETURNING id::text`, [u.personalOrgId, topic, payload]);
      if (state) await t.db.admin.query(`UPDATE core.outbox SET ${state} WHERE id = $1`, [r.id]);
      return r.id;
    };
    const waiting = await insert(POSTHOG_ERASURE_JOB, { ...ids('waiting'), _traceparent: traceParent });
    const dead = await insert(POSTHOG_ERASURE_JOB, ids('dead'), 'processed_at = now(), dead_at = now()');
    const done = await insert(POSTHOG_ERASURE_JOB, ids('done'), 'processed_at = now()');
    const emptied = await insert(POSTHOG_ERASURE_JOB, {}, 'processed_at = now()');
    const otherTopic = await insert('notifications.email', { eventId: 'e-1' });
    const payloadOf = async (id: string) => (await t.db.admin.query(`SELECT payload FROM core.outbox WHERE id = $1`, [id])).rows[0].payload;

    const both = new SecretBox({ ...k1.keys, k2 }, 'k2');
    const result = await resealJobPayloads(t.app.get(PrivilegedDatabase), both, t.app.get(AuditService), 2);
    expect(result).toEqual({ total: 3, resealed: 2, emptied: 1, failed: [], remaining: 0 });
    const [w, d] = [await payloadOf(waiting), await payloadOf(dead)];
    expect([Object.keys(w).sort(), w.$sealed.kid, w._traceparent, Object.keys(d), d.$sealed.kid]).toEqual([['$sealed', '_traceparent'], 'k2', traceParent, ['$sealed'], 'k2']);
    expect([await payloadOf(done), await payloadOf(emptied), await payloadOf(otherTopic)]).toEqual([{}, {}, { eventId: 'e-1' }]);
    // no row holds the address in the clear
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM core.outbox WHERE strpos(payload::text, $1) > 0`, [address])).rows).toEqual([{ n: 0 }]);

    // what the job's handler gets, with k2 alone: the distinct ids as written, the trace it was written in
    const onlyK2 = new JobRegistry();
    const opened: Job[] = [];
    onlyK2.register(POSTHOG_ERASURE_JOB, async (job) => void opened.push(job), { personalData: new SecretBox({ k2 }, 'k2') });
    await onlyK2.run({ id: waiting, orgId: u.personalOrgId, topic: POSTHOG_ERASURE_JOB, ...jobPayload(w) });
    await onlyK2.run({ id: dead, orgId: u.personalOrgId, topic: POSTHOG_ERASURE_JOB, ...jobPayload(d) });
    expect(opened.map((j) => [j.payload, j.traceParent])).toEqual([[ids('waiting'), traceParent], [ids('dead'), undefined]]);

    const audited = await t.db.admin.query(`SELECT action, principal_type, entity_type, entity_id, before, after FROM core.audit_logs
      WHERE org_id = $1 AND action LIKE 'jobs.payload_%' ORDER BY entity_id::bigint`, [u.personalOrgId]);
    expect(audited.rows).toEqual([
      { action: 'jobs.payload_resealed', principal_type: 'system', entity_type: 'outbox_job', entity_id: waiting, before: { keyId: null }, after: { keyId: 'k2' } },
      { action: 'jobs.payload_resealed', principal_type: 'system', entity_type: 'outbox_job', entity_id: dead, before: { keyId: null }, after: { keyId: 'k2' } },
      { action: 'jobs.payload_emptied', principal_type: 'system', entity_type: 'outbox_job', entity_id: done, before: null, after: null },
    ]);
    expect(await resealJobPayloads(t.app.get(PrivilegedDatabase), both, t.app.get(AuditService))).toEqual({ total: 0, resealed: 0, emptied: 0, failed: [], remaining: 0 });
  });
});
