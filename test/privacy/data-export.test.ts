import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, onEnterprisePlan, uniqueEmail, verifyEmailOf, type TestUser } from '../support/factories.js';
import { startBooks } from '../ledger/ledger-support.js';
import { payablesUrl } from '../payables/payables-support.js';
import { testKeys } from '../integrations/keys.js';
import { startEmbeddingsDouble, type EmbeddingsDouble } from '../support/doubles/embeddings-double.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { RetentionJob } from '../../src/modules/privacy/retention.job.js';
import { AuditService } from '../../src/modules/audit/audit.service.js';
import { dataExportRepository } from '../../src/modules/privacy/data-export.repository.js';
import { WITHHELD } from '../../src/modules/privacy/audit-sealing.js';
import { locate } from '../../src/modules/privacy/erasure.repository.js';
import { PERSONAL_DATA_CATALOG } from '../../src/modules/privacy/personal-data.catalog.js';
import { unzip } from '../support/zip.js';

const PASSWORD = 'correct horse battery';
const HOUR = 3_600_000;

/** A person with a name found nowhere else, so an archive can be scanned for it. */
async function person(t: TestApp, prefix: string): Promise<TestUser & { name: string }> {
  const email = uniqueEmail(prefix);
  const name = `Ximena ${prefix} Vorhees ${randomBytes(4).toString('hex')}`;
  await t.http.post('/v1/auth/register').send({ email, password: PASSWORD, name }).expect(202);
  const res = await t.http.post('/v1/auth/login').send({ email, password: PASSWORD }).expect(200);
  return {
    id: res.body.user.id, email, name, token: res.body.accessToken, refreshToken: res.body.refreshToken,
    personalOrgId: res.body.personalOrgId, auth: { Authorization: `Bearer ${res.body.accessToken}` },
  };
}

describe('data exports: POST /v1/me/data-export, POST /v1/orgs/{orgId}/data-export', () => {
  let t: TestApp;
  let embeddings: EmbeddingsDouble;
  const clock = new ManualClock();
  const dir = mkdtempSync(join(tmpdir(), 'omnizen-exports-'));
  let p: TestUser & { name: string };
  let q: TestUser & { name: string };
  let owner: TestUser & { name: string };
  let acme: string;
  let pTrading: string;
  let quux: string;
  const ids: Record<string, string> = {};

  const download = async (url: string, status = 200) => t.http.get(url).buffer(true)
    .parse((res, cb) => { const chunks: Buffer[] = []; res.on('data', (c: Buffer) => chunks.push(c)); res.on('end', () => cb(null, Buffer.concat(chunks))); })
    .expect(status);

  beforeAll(async () => {
    // jobs run in-process (the relay is drained by the test); integrations' secrets need a key; the knowledge base embeds
    embeddings = await startEmbeddingsDouble();
    t = await createTestApp({ DATA_EXPORT_DIR: dir, REDIS_URL: '', SECRETS_KEYS: testKeys('k1').env, AI_BASE_URL: embeddings.url, AI_API_KEY: embeddings.apiKey,
      AI_EMBEDDING_MODEL: 'double-hash-256', AI_EMBEDDING_DIMENSIONS: '256' }, { clock });
    owner = await person(t, 'acmeowner');
    p = await person(t, 'exported');
    q = await person(t, 'otherperson');
    acme = await createOrg(t, owner, 'Acme Export Ltd');
    await onEnterprisePlan(t, acme);
    const acc = await startBooks(t, acme, owner);
    await addMember(t, acme, p, 'accountant');
    await addMember(t, acme, q, 'member');
    // P's rows in every module: their own organization, an invitation they sent, an integration, analytics, an expense claim
    pTrading = await createOrg(t, p, 'P Trading');
    await t.http.post(`/v1/orgs/${pTrading}/invitations`).set(p.auth).send({ email: 'third.party@example.test', role: 'viewer' }).expect(201);
    ids.pIntegration = (await t.http.post('/v1/me/integrations').set(p.auth).send({ integrationType: 'caldav', label: 'P calendar', externalEmail: p.email }).expect(201)).body.id;
    await t.http.put(`/v1/me/integrations/${ids.pIntegration}/secret`).set(p.auth)
      .send({ credentials: { username: p.email, password: 'p-secret-app-password', serverUrl: 'https://caldav.example.com' } }).expect(200);
    await t.http.post(`/v1/orgs/${pTrading}/analytics/events`).set(p.auth).send({ events: [{ name: 'p.opened', properties: { screen: 'home' } }] }).expect(200);
    const claim = { claimDate: '2026-02-04', currency: 'EUR', lines: [{ accountId: acc['5200'], amount: '9.99', currency: 'EUR', date: '2026-02-04' }] };
    ids.pClaim = (await t.http.post(payablesUrl(acme, 'expense-claims')).set(p.auth).send(claim).expect(201)).body.id;
    // Q: the same kinds of rows, in Acme and in an organization of their own
    quux = await createOrg(t, q, 'Quux Holdings');
    ids.qClaim = (await t.http.post(payablesUrl(acme, 'expense-claims')).set(q.auth).send(claim).expect(201)).body.id;
    ids.qIntegration = (await t.http.post('/v1/me/integrations').set(q.auth).send({ integrationType: 'icloud', label: 'Q iCloud', externalEmail: q.email }).expect(201)).body.id;
    await t.http.post(`/v1/orgs/${quux}/analytics/events`).set(q.auth).send({ events: [{ name: 'q.opened' }] }).expect(200);
    // about P, by someone else: the owner changes their role
    await t.http.patch(`/v1/orgs/${acme}/members/${p.id}`).set(owner.auth).send({ role: 'member' }).expect(200);
    // Stripe events: one of P's personal organization, one of Q's
    for (const [orgId, tag] of [[p.personalOrgId, 'p'], [q.personalOrgId, 'q']]) {
      await t.db.admin.query(`INSERT INTO hub."BillingEvent" ("stripeEventId", type, "orgId", "stripeCreatedAt", payload, status)
        VALUES ($1, 'invoice.paid', $2, now(), $3, 'processed')`, [`evt_${tag}_${randomBytes(6).toString('hex')}`, orgId, JSON.stringify({ tag })]);
    }
    await t.app.get(OutboxRelay).drain();
  });
  afterAll(async () => {
    await t.close();
    await embeddings?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('exports everything about the person, table by table with a README, and nothing of another person or organization; progress moves; audited', async () => {
    const started = await t.http.post('/v1/me/data-export').set(p.auth).expect(202);
    expect(started.body).toMatchObject({ kind: 'person', status: 'queued', progress: 0, downloadUrl: null });
    const again = await t.http.post('/v1/me/data-export').set(p.auth).expect(409);
    expect(again.body.error.code).toBe('privacy.export_in_progress');

    // progress as a client polling the status route sees it while the job runs
    const seen: number[] = [];
    const original = dataExportRepository.setProgress;
    const spy = jest.spyOn(dataExportRepository, 'setProgress').mockImplementation(async (db, id, progress) => {
      await original(db, id, progress);
      seen.push((await t.http.get(`/v1/me/data-exports/${started.body.id}`).set(p.auth).expect(200)).body.progress);
    });
    try {
      await t.app.get(OutboxRelay).drain();
    } finally {
      spy.mockRestore();
    }
    expect(seen.length).toBeGreaterThan(5);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(seen[0]).toBe(0);
    expect(seen[seen.length - 1]).toBeGreaterThan(90);
    expect(seen[seen.length - 1]).toBeLessThan(100);

    const status = (await t.http.get(`/v1/me/data-exports/${started.body.id}`).set(p.auth).expect(200)).body;
    expect(status).toMatchObject({ status: 'ready', progress: 100, downloadUrl: expect.stringMatching(/^\/v1\/data-exports\/download\?token=/) });
    expect(status.tablesDone).toBe(status.tablesTotal);
    expect(Date.parse(status.expiresAt) - Date.parse(status.completedAt)).toBe(24 * HOUR);
    // nobody else sees it: another person's status route, an organization's
    await t.http.get(`/v1/me/data-exports/${started.body.id}`).set(q.auth).expect(404);
    await t.http.get(`/v1/orgs/${p.personalOrgId}/data-exports/${started.body.id}`).set(p.auth).expect(404);

    const zip = await download(status.downloadUrl);
    expect(zip.headers['content-type']).toBe('application/zip');
    const files = await unzip(zip.body as Buffer);
    const rows = (name: string) => JSON.parse(files[name]) as Record<string, any>[];
    expect(rows('core.User.json')).toEqual([expect.objectContaining({ id: p.id, email: p.email, name: p.name })]);
    expect(rows('core.memberships.json').map((m) => m.org_id).sort()).toEqual([acme, pTrading, p.personalOrgId].sort());
    expect(rows('core.sessions.json').length).toBeGreaterThan(0);
    expect(rows('public.integrations.json')).toEqual([expect.objectContaining({ id: ids.pIntegration, external_email: p.email })]);
    expect(rows('core.analytics_events.json').map((e) => e.name)).toContain('p.opened');
    expect(rows('finance.bills.json').map((b) => b.id)).toEqual([ids.pClaim]);
    expect(rows('core.organizations.json').map((o) => o.id)).toEqual([p.personalOrgId]);
    // the lines of their expense claim; the Stripe events of their personal organization
    expect(rows('finance.bill_lines.json').map((l) => [l.bill_id, Number(l.gross)])).toEqual([[ids.pClaim, 9.99]]);
    expect(rows('hub.BillingEvent.json').map((e) => [e.orgId, e.payload])).toEqual([[p.personalOrgId, { tag: 'p' }]]);
    const audit = rows('core.audit_logs.json');
    // the entries they acted in, and those about them (their account, their memberships) whoever acted
    expect(audit.every((a) => a.actor_id === p.id || (['user', 'membership'].includes(a.entity_type) && a.entity_id === p.id))).toBe(true);
    expect(audit.map((a) => a.action)).toEqual(expect.arrayContaining(['organization.created', 'invitation.created', 'payables.expense_claim_created', 'integration.created']));
    // the owner's change of their role: its snapshots open (sealed for P), the owner's IP address is withheld
    const roleChanged = audit.filter((a) => a.action === 'membership.role_changed');
    expect(roleChanged).toEqual([expect.objectContaining({ actor_id: owner.id, org_id: acme, ip: WITHHELD,
      before: expect.objectContaining({ role: 'accountant', email: p.email }), after: expect.objectContaining({ role: 'member', email: p.email }) })]);
    expect(audit.filter((a) => a.actor_id === p.id && a.ip !== null).every((a) => a.ip !== WITHHELD)).toBe(true);
    // their own sealed data reads; another person's (the invitee's e-mail) is withheld
    expect(audit.find((a) => a.action === 'integration.created')!.after).toMatchObject({ externalEmail: p.email });
    expect(audit.find((a) => a.action === 'invitation.created')!.after).toMatchObject({ email: WITHHELD, role: 'viewer' });
    // secrets never leave: no sealed secret, no password hash, no token hash
    expect(Object.keys(files).filter((f) => /integration_secrets|user_credentials|refresh_tokens|password_reset/.test(f))).toEqual([]);
    const all = Object.values(files).join('\n');
    expect(all).not.toMatch(/p-secret-app-password|password_hash|token_hash/);
    // the README lists every file with what it holds
    for (const name of Object.keys(files).filter((f) => f !== 'README.md')) expect(files['README.md']).toContain(`| ${name} |`);
    expect(files['README.md']).toContain('your profile');

    // nothing of the other person nor of their organization
    for (const needle of [q.email, q.name, q.id, quux, 'Quux Holdings', q.personalOrgId, ids.qClaim, ids.qIntegration]) {
      expect([needle, all.includes(needle)]).toEqual([needle, false]);
    }
    // the invitee of their invitation: withheld in the audit entry; only the notice and e-mail P received about it name them
    expect(Object.keys(files).filter((f) => files[f].includes('third.party@example.test')).sort()).toEqual(['core.email_deliveries.json', 'core.notifications.json']);

    const audited = await t.db.admin.query(`SELECT action, actor_id, after FROM core.audit_logs WHERE entity_id = $1 ORDER BY id`, [started.body.id]);
    expect(audited.rows).toEqual([
      { action: 'data_export.requested', actor_id: p.id, after: { kind: 'person' } },
      { action: 'data_export.completed', actor_id: null, after: { kind: 'person', rowsWritten: status.rowsWritten, sizeBytes: status.sizeBytes } },
    ]);
  });

  it('an organization\'s owner exports its data as CSV per table; a non-owner cannot; nothing of another organization', async () => {
    const refused = await t.http.post(`/v1/orgs/${acme}/data-export`).set(p.auth).send({}).expect(403);
    expect(refused.body.error.code).toBe('forbidden.role');
    const started = await t.http.post(`/v1/orgs/${acme}/data-export`).set(owner.auth).send({}).expect(202);
    expect(started.body).toMatchObject({ kind: 'organization', status: 'queued' });
    await t.app.get(OutboxRelay).drain();
    const status = (await t.http.get(`/v1/orgs/${acme}/data-exports/${started.body.id}`).set(owner.auth).expect(200)).body;
    expect(status).toMatchObject({ status: 'ready', progress: 100 });
    await t.http.get(`/v1/orgs/${acme}/data-exports/${started.body.id}`).set(p.auth).expect(403);
    await t.http.get(`/v1/me/data-exports/${started.body.id}`).set(owner.auth).expect(404);

    const files = await unzip((await download(status.downloadUrl)).body as Buffer);
    const csv = (name: string) => files[name].trim().split('\n');
    expect(csv('finance.bills.csv')[0].split(',')).toEqual(expect.arrayContaining(['id', 'org_id', 'kind', 'claimant_id', 'total']));
    expect(csv('finance.bills.csv').slice(1).map((l) => l.split(',')[1]).sort()).toEqual([ids.pClaim, ids.qClaim].sort());
    expect(csv('core.memberships.csv')).toHaveLength(4); // header, owner, P, Q
    expect(csv('finance.journal_entries.csv').length).toBeGreaterThan(0);
    expect(files['core.audit_logs.csv']).toContain('ledger.books_started');
    // secret columns are left out (webhook signing secrets, key hashes, token hashes)
    expect(Object.values(files).map((f) => f.split('\n')[0]).join(',')).not.toMatch(/secret|_hash|token/);
    const all = Object.values(files).join('\n');
    for (const needle of [quux, 'Quux Holdings', pTrading, 'P Trading', p.personalOrgId, q.personalOrgId, 'third.party@example.test']) {
      expect([needle, all.includes(needle)]).toEqual([needle, false]);
    }
  });

  it('the link lives 24 hours: then it is refused (410), and the retention job deletes the file', async () => {
    const started = await t.http.post('/v1/me/data-export').set(q.auth).expect(202);
    await t.app.get(OutboxRelay).drain();
    const status = (await t.http.get(`/v1/me/data-exports/${started.body.id}`).set(q.auth).expect(200)).body;
    await download(status.downloadUrl);
    // a forged or altered token is refused
    const forged = await t.http.get(status.downloadUrl.replace(/.$/, (c: string) => (c === 'A' ? 'B' : 'A'))).expect(403);
    expect(forged.body.error.code).toBe('privacy.export_link_invalid');
    await t.http.get('/v1/data-exports/download?token=not-a-token').expect(403);

    clock.advance(24 * HOUR + 1000);
    const expired = await t.http.get(status.downloadUrl).expect(410);
    expect(expired.body.error.code).toBe('privacy.export_link_expired');
    expect((await t.http.get(`/v1/me/data-exports/${started.body.id}`).set(q.auth).expect(200)).body).toMatchObject({ status: 'expired', downloadUrl: null });

    expect(existsSync(join(dir, `${started.body.id}.zip`))).toBe(true);
    const purged = await t.app.get(RetentionJob).run();
    expect(purged.dataExports).toBeGreaterThanOrEqual(1);
    expect(existsSync(join(dir, `${started.body.id}.zip`))).toBe(false);
    expect(readdirSync(dir).filter((f) => f.endsWith('.part'))).toEqual([]);
    const row = await t.db.admin.query('SELECT status FROM core.data_exports WHERE id = $1', [started.body.id]);
    expect(row.rows).toEqual([{ status: 'expired' }]);
  });

  it('an invitation to the person\'s address, and the audit entries about it, are in their export only once they proved the address (an unverified one may be someone else\'s)', async () => {
    const s = await person(t, 'invited');
    const invitationId = (await t.http.post(`/v1/orgs/${acme}/invitations`).set(owner.auth).send({ email: s.email, role: 'viewer' }).expect(201)).body.id;
    await t.http.delete(`/v1/orgs/${acme}/invitations/${invitationId}`).set(owner.auth).expect(204);
    const exported = async () => {
      const started = (await t.http.post('/v1/me/data-export').set(s.auth).expect(202)).body.id;
      await t.app.get(OutboxRelay).drain();
      const status = (await t.http.get(`/v1/me/data-exports/${started}`).set(s.auth).expect(200)).body;
      const files = await unzip((await download(status.downloadUrl)).body as Buffer);
      const rows = (name: string) => JSON.parse(files[name]) as Record<string, any>[];
      return {
        invitations: rows('core.invitations.json').map((i) => [i.org_id, i.email]),
        // the owner created then revoked it: the invitee's e-mail opens (sealed for it), the owner's IP address is withheld
        audit: rows('core.audit_logs.json').filter((a) => a.entity_type === 'invitation')
          .map((a) => [a.action, a.org_id, a.entity_id, a.actor_id, a.ip, a.before?.email ?? null, a.after?.email ?? null]).sort(),
      };
    };
    expect(await exported()).toEqual({ invitations: [], audit: [] });
    await verifyEmailOf(t, s);
    expect(await exported()).toEqual({
      invitations: [[acme, s.email]],
      audit: [
        ['invitation.created', acme, invitationId, owner.id, WITHHELD, null, s.email],
        ['invitation.revoked', acme, invitationId, owner.id, WITHHELD, s.email, s.email],
      ],
    });
  });

  it('reads the person\'s audit entries across organizations by index, not by reading the whole log', async () => {
    // the export's own statement (its WHERE, as the catalog builds it), planned with sequential scans priced out: a
    // lookup no index serves still reads the table whole
    const table = PERSONAL_DATA_CATALOG.find((x) => x.table === 'core.audit_logs')!;
    const where = locate(table, { userId: p.id, emails: [p.email] }, false)!;
    const client = await t.db.admin.connect();
    try {
      await client.query('BEGIN');
      await client.query('SET LOCAL enable_seqscan = off');
      const { rows } = await client.query(`EXPLAIN (COSTS OFF) DECLARE export_rows NO SCROLL CURSOR FOR SELECT x.id FROM core.audit_logs x WHERE ${where.sql}`, where.values);
      const plan = rows.map((r: Record<string, string>) => r['QUERY PLAN']).join('\n');
      expect(plan).not.toMatch(/Seq Scan on audit_logs/);
      for (const index of ['audit_logs_actor_idx', 'audit_logs_about_person_idx', 'audit_logs_invitation_key_idx']) expect(plan).toContain(`Bitmap Index Scan on ${index}`);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });

  it('erasing the person expires their exports at once: a ready archive is deleted and its link refused; a queued one never runs', async () => {
    const r = await person(t, 'erased');
    const ready = (await t.http.post('/v1/me/data-export').set(r.auth).expect(202)).body.id;
    await t.app.get(OutboxRelay).drain();
    const link = (await t.http.get(`/v1/me/data-exports/${ready}`).set(r.auth).expect(200)).body.downloadUrl;
    await download(link);
    const queued = (await t.http.post('/v1/me/data-export').set(r.auth).expect(202)).body.id; // not run yet
    expect(existsSync(join(dir, `${ready}.zip`))).toBe(true);

    await t.http.delete('/v1/me').set(r.auth).send({ password: PASSWORD }).expect(200);
    expect(JSON.parse(((await download(link, 410)).body as Buffer).toString('utf8')).error.code).toBe('privacy.export_link_expired');
    expect(existsSync(join(dir, `${ready}.zip`))).toBe(false);
    await t.app.get(OutboxRelay).drain();
    expect(existsSync(join(dir, `${queued}.zip`))).toBe(false);
    const rows = await t.db.admin.query('SELECT id, status FROM core.data_exports WHERE id = ANY($1::uuid[]) ORDER BY created_at', [[ready, queued]]);
    expect(rows.rows).toEqual([{ id: ready, status: 'expired' }, { id: queued, status: 'expired' }]);
    const audit = await t.db.admin.query(`SELECT after->>'exportsExpired' AS n FROM core.audit_logs WHERE action = 'user.erased' AND entity_id = $1`, [r.id]);
    expect(audit.rows).toEqual([{ n: '2' }]);
  });

  it('erasing the person also expires the organization exports they asked for and those of the organizations it deletes: their links answer 410, their files go', async () => {
    const r = await person(t, 'orgexporter');
    const solo = await createOrg(t, r, 'R Solo Trading'); // only R: deleted with R
    const shared = await createOrg(t, owner, 'Shared Export Ltd'); // stays: R leaves it
    await addMember(t, shared, r, 'owner');
    const exportOf = async (orgId: string, u: TestUser) => {
      const id = (await t.http.post(`/v1/orgs/${orgId}/data-export`).set(u.auth).send({}).expect(202)).body.id as string;
      await t.app.get(OutboxRelay).drain();
      return { id, link: (await t.http.get(`/v1/orgs/${orgId}/data-exports/${id}`).set(u.auth).expect(200)).body.downloadUrl as string };
    };
    const ofSolo = await exportOf(solo, r);
    const ofShared = await exportOf(shared, r);
    const ofSharedByOwner = await exportOf(shared, owner); // not R's, of an organization that stays
    await download(ofShared.link);

    await t.http.delete('/v1/me').set(r.auth).send({ password: PASSWORD }).expect(200);

    for (const e of [ofSolo, ofShared]) {
      expect(JSON.parse(((await download(e.link, 410)).body as Buffer).toString('utf8')).error.code).toBe('privacy.export_link_expired');
      expect(existsSync(join(dir, `${e.id}.zip`))).toBe(false);
    }
    await download(ofSharedByOwner.link);
    const rows = await t.db.admin.query('SELECT id, status FROM core.data_exports WHERE id = ANY($1::uuid[]) ORDER BY id', [[ofSolo.id, ofShared.id, ofSharedByOwner.id]]);
    expect(rows.rows).toEqual([{ id: ofSolo.id, status: 'expired' }, { id: ofShared.id, status: 'expired' }, { id: ofSharedByOwner.id, status: 'ready' }]
      .sort((a, b) => a.id.localeCompare(b.id)));
    const audit = await t.db.admin.query(`SELECT after->>'exportsExpired' AS n FROM core.audit_logs WHERE action = 'user.erased' AND entity_id = $1`, [r.id]);
    expect(audit.rows).toEqual([{ n: '2' }]);
  });

  it('the export of an organization deleted since is not served (410)', async () => {
    const gone = await createOrg(t, owner, 'Gone Export Ltd');
    const id = (await t.http.post(`/v1/orgs/${gone}/data-export`).set(owner.auth).send({}).expect(202)).body.id;
    await t.app.get(OutboxRelay).drain();
    const link = (await t.http.get(`/v1/orgs/${gone}/data-exports/${id}`).set(owner.auth).expect(200)).body.downloadUrl;
    await download(link);
    await t.http.delete(`/v1/orgs/${gone}`).set(owner.auth).expect(204);
    const res = await download(link, 410);
    expect(JSON.parse((res.body as Buffer).toString('utf8')).error.code).toBe('privacy.export_link_expired');
  });

  it('an export failing at its finish leaves no archive; the retention job deletes an archive left of a failed or expired export, never a live one', async () => {
    const u = await person(t, 'failfinish');
    const id = (await t.http.post('/v1/me/data-export').set(u.auth).expect(202)).body.id as string;
    const audit = t.app.get(AuditService);
    const record = audit.recordPrivileged.bind(audit);
    jest.spyOn(audit, 'recordPrivileged').mockImplementation(async (...args: Parameters<AuditService['recordPrivileged']>) => {
      if ((args[3] as { action?: string }).action === 'data_export.completed') throw new Error('connection lost (simulated)');
      return record(...args);
    });
    try {
      await t.app.get(OutboxRelay).drain();
    } finally {
      jest.restoreAllMocks();
    }
    expect((await t.db.admin.query('SELECT status, file_name FROM core.data_exports WHERE id = $1', [id])).rows).toEqual([{ status: 'failed', file_name: null }]);
    expect(readdirSync(dir).filter((f) => f.startsWith(id))).toEqual([]);

    // an archive a crash left behind (of the failed export), next to a live one's: the retention job takes the first only
    const live = (await t.http.post('/v1/me/data-export').set(u.auth).expect(202)).body.id as string;
    await t.app.get(OutboxRelay).drain();
    writeFileSync(join(dir, `${id}.zip`), 'left behind');
    await t.app.get(RetentionJob).run();
    expect(existsSync(join(dir, `${id}.zip`))).toBe(false);
    expect(existsSync(join(dir, `${live}.zip`))).toBe(true);
  });

  it('the knowledge base: the export holds the documents the person added and those of the organizations that go with them; the erasure deletes those organizations\' (versions, chunks), one that goes on keeps what they added', async () => {
    const k = await person(t, 'knowledge');
    const solo = await createOrg(t, k, 'K Solo');
    const shared = await createOrg(t, owner, 'K Shared');
    await addMember(t, shared, k, 'member');
    const doc = async (orgId: string, by: TestUser, title: string) => {
      await onEnterprisePlan(t, orgId);
      const collectionId = (await t.http.post(`/v1/orgs/${orgId}/knowledge/collections`).set(orgId === shared ? owner.auth : k.auth)
        .send({ name: `Notes ${title}`, readRoles: ['member'] }).expect(201)).body.id;
      return (await t.http.post(`/v1/orgs/${orgId}/knowledge/documents`).set(by.auth)
        .send({ collectionId, title: `${title} of ${k.email}`, text: `My diagnosis (${title}): type 2 diabetes. Contact ${k.email}.` }).expect(201)).body.id as string;
    };
    const ids = { personal: await doc(k.personalOrgId, k, 'personal'), solo: await doc(solo, k, 'solo'), theirsShared: await doc(shared, k, 'theirs'),
      ownersShared: await doc(shared, owner, 'owners') };
    await t.app.get(OutboxRelay).drain(); // ingested: versions and chunks
    const orgs = [k.personalOrgId, solo, shared];
    const held = async () => (await t.db.admin.query(`SELECT d.id, d.title IS NOT NULL AS titled,
        (SELECT count(*)::int FROM ai.knowledge_versions v WHERE v.org_id = d.org_id AND v.document_id = d.id) AS versions,
        (SELECT count(*)::int FROM ai.knowledge_chunks c WHERE c.org_id = d.org_id AND c.document_id = d.id) AS chunks
      FROM ai.knowledge_documents d WHERE d.org_id = ANY($1::uuid[]) ORDER BY d.title`, [orgs])).rows;
    expect(await held()).toEqual(Object.values(ids).map(() => ({ id: expect.any(String), titled: true, versions: 1, chunks: 1 })));

    // the export: theirs everywhere, and the organizations' that go with them; not another member's in one that goes on
    const started = (await t.http.post('/v1/me/data-export').set(k.auth).expect(202)).body.id;
    await t.app.get(OutboxRelay).drain();
    const status = (await t.http.get(`/v1/me/data-exports/${started}`).set(k.auth).expect(200)).body;
    const files = await unzip((await download(status.downloadUrl)).body as Buffer);
    const rows = (name: string) => JSON.parse(files[name]) as Record<string, any>[];
    const exported = [ids.personal, ids.solo, ids.theirsShared].sort();
    expect(rows('ai.knowledge_documents.json').map((d) => d.id).sort()).toEqual(exported);
    expect(rows('ai.knowledge_versions.json').map((v) => [v.document_id, v.text.includes(k.email)]).sort()).toEqual(exported.map((id) => [id, true]));
    expect(Object.keys(files).filter((f) => f.startsWith('ai.knowledge_chunks'))).toEqual([]);
    expect(files['README.md']).toContain('| ai.knowledge_documents.json | knowledge base documents you added');

    await t.http.delete('/v1/me').set(k.auth).send({ password: PASSWORD }).expect(200);
    // the organizations that went took their knowledge base; the one that goes on keeps both documents, indexed
    expect(await held()).toEqual([ids.ownersShared, ids.theirsShared].map((id) => ({ id, titled: true, versions: 1, chunks: 1 })));
    const gone = await t.db.admin.query(`SELECT (SELECT count(*)::int FROM ai.knowledge_versions WHERE org_id = ANY($1::uuid[])) AS versions,
      (SELECT count(*)::int FROM ai.knowledge_chunks WHERE org_id = ANY($1::uuid[])) AS chunks,
      (SELECT json_agg(json_build_object('documents', documents, 'bytes', text_bytes)) FROM ai.knowledge_usage_counters WHERE org_id = ANY($1::uuid[])) AS counted`,
    [[k.personalOrgId, solo]]);
    expect(gone.rows).toEqual([{ versions: 0, chunks: 0, counted: [{ documents: 0, bytes: 0 }, { documents: 0, bytes: 0 }] }]);
    const erased = await t.db.admin.query(`SELECT after->'rowsByTable' AS r, after->'posthogErasure' AS ph FROM core.audit_logs WHERE action = 'user.erased' AND entity_id = $1`, [k.id]);
    expect(erased.rows[0].r).toMatchObject({ 'ai.knowledge_documents': 2, 'ai.knowledge_versions': 2, 'ai.knowledge_chunks': 2 });
    // events are not forwarded to PostHog here: the erasure leaves no PostHog job
    expect(erased.rows[0].ph).toBe(false);
    // the documents' audit entries (the deleted organizations' log stays) hold ids and states, not a title naming them
    const audited = await t.db.admin.query(`SELECT count(*)::int AS entries,
        count(*) FILTER (WHERE strpos(lower(coalesce(before::text, '') || coalesce(after::text, '')), lower($2)) > 0)::int AS naming
      FROM core.audit_logs WHERE entity_type = 'knowledge_document' AND entity_id = ANY($1::text[]) AND action = 'knowledge.document_created'`, [Object.values(ids), k.email]);
    expect(audited.rows).toEqual([{ entries: 4, naming: 0 }]);
  });

  it('the knowledge versions in the export: those the person wrote, not another member\'s of a document they added (in an organization they left or are in); every one of an organization that goes with them; the erasure unchanged', async () => {
    const k = await person(t, 'versions');
    const m = await person(t, 'versionsmember');
    const left = await createOrg(t, owner, 'KV Left'); // k leaves it, then the owner writes into k's document
    const stays = await createOrg(t, owner, 'KV Stays'); // k stays a member
    const solo = await createOrg(t, k, 'KV Solo'); // m writes into k's document and leaves: it goes with k
    await addMember(t, left, k, 'member');
    await addMember(t, stays, k, 'member');
    await addMember(t, solo, m, 'member');
    const collection = async (orgId: string, by: TestUser) => {
      await onEnterprisePlan(t, orgId);
      return (await t.http.post(`/v1/orgs/${orgId}/knowledge/collections`).set(by.auth).send({ name: 'Versions', readRoles: ['member'] }).expect(201)).body.id as string;
    };
    // each text starts with its marker: who wrote it where
    const note = async (orgId: string, collectionId: string, by: TestUser, text: string) => (await t.http.post(`/v1/orgs/${orgId}/knowledge/documents`).set(by.auth)
      .send({ collectionId, title: `Note ${text}`, text: `${text} and more` }).expect(201)).body.id as string;
    const version = (orgId: string, documentId: string, by: TestUser, text: string) => t.http.post(`/v1/orgs/${orgId}/knowledge/documents/${documentId}/versions`)
      .set(by.auth).attach('file', Buffer.from(`${text} and more`), { filename: `${text}.txt`, contentType: 'text/plain' }).expect(201);
    const [cLeft, cStays, cSolo] = [await collection(left, owner), await collection(stays, owner), await collection(solo, k)];
    const docs = { kLeft: await note(left, cLeft, k, 'k-left-1'), kStays: await note(stays, cStays, k, 'k-stays-1'),
      ownersStays: await note(stays, cStays, owner, 'owner-stays-1'), kSolo: await note(solo, cSolo, k, 'k-solo-1') };
    await version(stays, docs.kStays, owner, 'owner-stays-2');
    await version(stays, docs.ownersStays, k, 'k-stays-2');
    await version(solo, docs.kSolo, m, 'm-solo-2');
    await t.http.delete(`/v1/orgs/${left}/members/me`).set(k.auth).expect(204);
    await t.http.delete(`/v1/orgs/${solo}/members/me`).set(m.auth).expect(204);
    await version(left, docs.kLeft, owner, 'owner-left-2');
    await t.app.get(OutboxRelay).drain();

    const started = (await t.http.post('/v1/me/data-export').set(k.auth).expect(202)).body.id;
    await t.app.get(OutboxRelay).drain();
    const status = (await t.http.get(`/v1/me/data-exports/${started}`).set(k.auth).expect(200)).body;
    const files = await unzip((await download(status.downloadUrl)).body as Buffer);
    const rows = (name: string) => JSON.parse(files[name]) as Record<string, any>[];
    expect(rows('ai.knowledge_documents.json').map((d) => d.id).sort()).toEqual([docs.kLeft, docs.kStays, docs.kSolo].sort());
    expect(rows('ai.knowledge_versions.json').map((v) => String(v.text).trim().split(' ')[0]).sort())
      .toEqual(['k-left-1', 'k-solo-1', 'k-stays-1', 'k-stays-2', 'm-solo-2']);
    expect(Object.values(files).join('\n')).not.toMatch(/owner-(left|stays)-2/);

    // the erasure deletes what it did: every version of the organization that goes with them, none elsewhere
    const versions = async () => (await t.db.admin.query(`SELECT org_id, count(*)::int AS n FROM ai.knowledge_versions WHERE org_id = ANY($1::uuid[]) GROUP BY org_id`,
      [[left, stays, solo]])).rows.reduce((o: Record<string, number>, r) => ({ ...o, [r.org_id]: r.n }), {});
    expect(await versions()).toEqual({ [left]: 2, [stays]: 4, [solo]: 2 });
    await t.http.delete('/v1/me').set(k.auth).send({ password: PASSWORD }).expect(200);
    expect(await versions()).toEqual({ [left]: 2, [stays]: 4 });
    const erased = await t.db.admin.query(`SELECT after->'rowsByTable' AS r FROM core.audit_logs WHERE action = 'user.erased' AND entity_id = $1`, [k.id]);
    expect(erased.rows[0].r).toMatchObject({ 'ai.knowledge_documents': 1, 'ai.knowledge_versions': 2, 'ai.knowledge_chunks': 1 }); // the indexed version's
  });

  it('a service key cannot export a person; an unknown or malformed export id is 404', async () => {
    await t.http.get(`/v1/me/data-exports/00000000-0000-4000-8000-000000000000`).set(p.auth).expect(404);
    const bad = await t.http.get('/v1/me/data-exports/not-a-uuid').set(p.auth).expect(404);
    expect(bad.body.error.code).toBe('data_export.not_found');
  });
});
