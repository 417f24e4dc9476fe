import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, registerUser, uniqueEmail, verifyEmailOf, type TestUser } from '../support/factories.js';
import { PERSONAL_DATA_CATALOG } from '../../src/modules/privacy/personal-data.catalog.js';
import { locate } from '../../src/modules/privacy/erasure.repository.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { EmailDeliveryService } from '../../src/modules/notifications/email-delivery.service.js';
import { unzip } from '../support/zip.js';

const PASSWORD = 'correct horse battery';
/** The transport tables whose payloads the erasure scans for the person's address and id. */
const TRANSPORT = ['core.outbox', 'core.webhook_messages', 'core.notifications', 'core.email_deliveries'] as const;

/**
 * The erasure looks for the person's jobs, webhook messages, notices and e-mails in the organizations they are or were
 * in (their personal one, those they left, those that invited them), by the primary keys that lead on org_id, not
 * through every organization's rows; an e-mail to their address by its index, in any organization.
 */
describe('DELETE /v1/me: the transport tables looked at in the person\'s organizations', () => {
  let t: TestApp;
  const clock = new ManualClock();
  const dir = mkdtempSync(join(tmpdir(), 'omnizen-exports-'));

  beforeAll(async () => {
    t = await createTestApp({ AUTH_COOKIES: 'false', REDIS_URL: '', DATA_EXPORT_DIR: dir }, { clock });
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds and erases their rows in an organization they left and one that invited them (and their personal one), never another person\'s there; the statements read by index', async () => {
    const owner = await registerUser(t, 'bound-owner');
    const email = uniqueEmail('bound');
    await t.http.post('/v1/auth/register').send({ email, password: PASSWORD, name: 'Bound Person' }).expect(202);
    const login = await t.http.post('/v1/auth/login').send({ email, password: PASSWORD }).expect(200);
    const p: TestUser = {
      id: login.body.user.id, email, token: login.body.accessToken, refreshToken: login.body.refreshToken,
      personalOrgId: login.body.personalOrgId, auth: { Authorization: `Bearer ${login.body.accessToken}` },
    };
    await verifyEmailOf(t, p);
    const q = (sql: string, params: unknown[]) => t.db.admin.query(sql, params);

    // an organization they left (through the API: its audit entry records it), one that invited them (never accepted),
    // one they never knew
    const left = await createOrg(t, owner, 'Left Transport Ltd');
    await addMember(t, left, p, 'member');
    await t.http.delete(`/v1/orgs/${left}/members/me`).set(p.auth).expect(204);
    const inviting = await createOrg(t, owner, 'Inviting Transport Ltd');
    await t.http.post(`/v1/orgs/${inviting}/invitations`).set(owner.auth).send({ email: p.email, role: 'viewer' }).expect(201);
    const stranger = await createOrg(t, owner, 'Stranger Transport Ltd');
    await t.app.get(OutboxRelay).drain();

    /** One row of each transport table in `orgId` whose payload names `address` (or the user id `userId`), tagged. */
    const rowsNaming = async (orgId: string, tag: string, address: string, userId?: string) => {
      const payload = JSON.stringify(userId ? { userId, tag } : { email: address, tag });
      const [endpoint] = (await q(`INSERT INTO core.webhook_endpoints (org_id, url, secret) VALUES ($1, $2, '{}') RETURNING id`, [orgId, `https://hooks.example.test/${tag}`])).rows;
      return {
        'core.outbox': String((await q(`INSERT INTO core.outbox (org_id, topic, payload, processed_at) VALUES ($1, 'test.job', $2, now()) RETURNING id`, [orgId, payload])).rows[0].id),
        'core.webhook_messages': (await q(`INSERT INTO core.webhook_messages (org_id, endpoint_id, event_id, event_type, body, status)
          VALUES ($1, $2, (random() * 1e12)::bigint, 'member.invited', $3, 'succeeded') RETURNING id`, [orgId, endpoint.id, payload])).rows[0].id as string,
        // a notice to the owner naming the address (a notice names no user id)
        'core.notifications': (await q(`INSERT INTO core.notifications (org_id, user_id, event_id, event_type, category, title, body)
          VALUES ($1, $2, (random() * 1e12)::bigint, 'member.invited', 'organization', 'Invited', $3) RETURNING id`, [orgId, owner.id, `${address} was invited (${tag}).`])).rows[0].id as string,
        // an e-mail to the owner whose data names them
        'core.email_deliveries': (await q(`INSERT INTO core.email_deliveries (org_id, user_id, to_address, template, category, data, status)
          VALUES ($1, $2, $3, 'notice', 'organization', $4, 'sent') RETURNING id`, [orgId, owner.id, owner.email, payload])).rows[0].id as string,
      };
    };
    const theirs = {
      left: await rowsNaming(left, 'left', p.email),
      leftById: await rowsNaming(left, 'left-by-id', p.email, p.id),
      inviting: await rowsNaming(inviting, 'inviting', p.email),
      personal: await rowsNaming(p.personalOrgId, 'personal', p.email, p.id),
    };
    // another person's rows in the same organizations stay
    const others = {
      left: await rowsNaming(left, 'other-left', owner.email, owner.id),
      inviting: await rowsNaming(inviting, 'other-inviting', owner.email),
    };
    // an organization they never belonged to nor were invited to: its record, kept (as an AI run naming them there)
    const strangers = await rowsNaming(stranger, 'stranger', p.email);
    // an e-mail to their address is theirs in any organization (found by the address's index): the stranger's too
    const [toThem] = (await q(`INSERT INTO core.email_deliveries (org_id, to_address, template, category, data, status)
      VALUES ($1, $2, 'notice', 'organization', '{}', 'sent') RETURNING id`, [stranger, p.email.toUpperCase()])).rows;
    // and notices and an e-mail to them, in the organization they left: in their export, then erased
    const [noticeToThem] = (await q(`INSERT INTO core.notifications (org_id, user_id, event_id, event_type, category, title, body)
      VALUES ($1, $2, (random() * 1e12)::bigint, 'member.role_changed', 'organization', 'Role changed', 'Your role changed') RETURNING id`, [left, p.id])).rows;
    const [mailToThem] = (await q(`INSERT INTO core.email_deliveries (org_id, user_id, to_address, template, category, data, status)
      VALUES ($1, $2, $3, 'notice', 'organization', '{}', 'sent') RETURNING id`, [left, p.id, p.email])).rows;

    // the organizations the erasure looks in (erasureRepository.organizationsOf): their personal one, the one they left, the one that invited them
    const orgIds = [left, inviting, p.personalOrgId];

    // each table's erasure statement (as the catalog builds it), planned with sequential scans priced out: every arm of it
    // reads an index (the organizations' primary keys, the user id's, the address's), none the whole table
    const client = await t.db.admin.connect();
    try {
      await client.query('BEGIN');
      await client.query('SET LOCAL enable_seqscan = off');
      for (const table of TRANSPORT) {
        const where = locate(PERSONAL_DATA_CATALOG.find((x) => x.table === table)!, { userId: p.id, emails: [p.email.toLowerCase()], orgIds, erasedOrgIds: [p.personalOrgId] })!;
        const { rows } = await client.query(`EXPLAIN (COSTS OFF) SELECT 1 FROM ${table} x WHERE ${where.sql}`, where.values);
        const plan = rows.map((r: Record<string, string>) => r['QUERY PLAN']).join('\n');
        expect([table, plan]).not.toEqual([table, expect.stringMatching(/Seq Scan/)]);
        // a digest (of any organization) by the digests' partial index
        if (table === 'core.email_deliveries') expect(plan).toContain('email_deliveries_digest_mail_idx');
      }
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }

    // their export (before the erasure) holds the notice and the e-mail to them in the organization they left
    const started = await t.http.post('/v1/me/data-export').set(p.auth).expect(202);
    await t.app.get(OutboxRelay).drain();
    const status = (await t.http.get(`/v1/me/data-exports/${started.body.id}`).set(p.auth).expect(200)).body;
    expect(status).toMatchObject({ status: 'ready' });
    const zip = await t.http.get(status.downloadUrl).buffer(true)
      .parse((res, cb) => { const chunks: Buffer[] = []; res.on('data', (c: Buffer) => chunks.push(c)); res.on('end', () => cb(null, Buffer.concat(chunks))); })
      .expect(200);
    const files = await unzip(zip.body as Buffer);
    const exported = (name: string) => (JSON.parse(files[name]) as { id: string }[]).map((r) => r.id);
    expect(exported('core.notifications.json')).toContain(noticeToThem.id);
    expect(exported('core.email_deliveries.json')).toContain(mailToThem.id);

    await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(200);

    /** Of these rows' ids, per table, those still there. */
    const remaining = async (sets: Record<string, string>[]) => {
      const out: Record<string, string[]> = {};
      for (const table of TRANSPORT) {
        const ids = sets.map((s) => s[table]);
        out[table] = (await q(`SELECT id::text FROM ${table} WHERE id::text = ANY($1)`, [ids])).rows.map((r) => r.id as string).sort();
      }
      return out;
    };
    const none = Object.fromEntries(TRANSPORT.map((table) => [table, []]));
    // every one naming them in the organization they left (by address and by id), the one that invited them, their personal one
    expect(await remaining(Object.values(theirs))).toEqual(none);
    // the owner's rows in the same organizations are untouched
    const kept = Object.fromEntries(TRANSPORT.map((table) => [table, [others.left[table], others.inviting[table]].sort()]));
    expect(await remaining(Object.values(others))).toEqual(kept);
    // the stranger's rows naming them in their payload are its record; an e-mail to their address is gone there too
    expect(await remaining([strangers])).toEqual(Object.fromEntries(TRANSPORT.map((table) => [table, [strangers[table]]])));
    expect((await q('SELECT count(*)::int AS n FROM core.email_deliveries WHERE id = ANY($1::uuid[])', [[toThem.id, mailToThem.id]])).rows).toEqual([{ n: 0 }]);
    expect((await q('SELECT count(*)::int AS n FROM core.notifications WHERE id = $1', [noticeToThem.id])).rows).toEqual([{ n: 0 }]);
  });

  it('erases a digest e-mail naming them that is stored under an organization they never knew (a digest gathers its recipient\'s notices of every organization)', async () => {
    // Alice administers A and B with organization digests on; the owner invites someone to A, then the person to B
    const owner = await registerUser(t, 'digest-owner');
    const alice = await registerUser(t, 'digest-alice');
    const p = await registerUser(t, 'digest-person');
    await verifyEmailOf(t, p);
    const a = await createOrg(t, owner, 'Digest A Ltd');
    const b = await createOrg(t, owner, 'Digest B Ltd');
    await addMember(t, a, alice, 'admin');
    await addMember(t, b, alice, 'admin');
    await t.http.patch('/v1/me/notification-preferences').set(alice.auth)
      .send({ items: [{ category: 'organization', channel: 'email', enabled: true, digest: true }] }).expect(200);
    const drain = async () => { for (let i = 0; i < 20; i++) if ((await t.app.get(OutboxRelay).drain()) === 0) return; };
    await drain();
    const someone = uniqueEmail('digest-someone');
    await t.http.post(`/v1/orgs/${a}/invitations`).set(owner.auth).send({ email: someone, role: 'viewer' }).expect(201);
    await drain();
    clock.advance(1000);
    await t.http.post(`/v1/orgs/${b}/invitations`).set(owner.auth).send({ email: p.email, role: 'viewer' }).expect(201);
    await drain();

    // the hour's digest: one e-mail to Alice, stored under A (its first notice's), naming the person (B's notice)
    await t.app.get(EmailDeliveryService).flushDigests(new Date(clock.now() + 3_600_000));
    await drain();
    const digests = (await t.db.admin.query(`SELECT id, org_id, data::text AS data FROM core.email_deliveries WHERE user_id = $1 AND template = 'digest'`, [alice.id])).rows;
    expect(digests).toEqual([{ id: expect.any(String), org_id: a, data: expect.stringContaining(p.email) }]);
    expect(digests[0].data).toContain(someone);

    await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(200);

    // the digest naming them is gone (A is no organization of theirs); B's notice to Alice naming them too; A's stays
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.email_deliveries WHERE id = $1', [digests[0].id])).rows).toEqual([{ n: 0 }]);
    const notices = (await t.db.admin.query('SELECT org_id, body FROM core.notifications WHERE user_id = $1 AND org_id = ANY($2::uuid[]) ORDER BY org_id', [alice.id, [a, b]])).rows;
    expect(notices.map((n) => n.org_id)).toEqual([a]);
    expect(notices[0].body).toContain(someone);
  });

  it('looks in an organization whose membership was deleted outside the API (no audit entry about it) where they acted', async () => {
    const owner = await registerUser(t, 'acted-owner');
    const p = await registerUser(t, 'acted-person');
    await verifyEmailOf(t, p);
    const c = await createOrg(t, owner, 'Acted In Ltd');
    await addMember(t, c, p, 'admin');
    // they act there (an audited invitation), then their membership goes by hand: no entry about it
    await t.http.post(`/v1/orgs/${c}/invitations`).set(p.auth).send({ email: uniqueEmail('acted-invitee'), role: 'viewer' }).expect(201);
    await t.db.admin.query('DELETE FROM core.memberships WHERE org_id = $1 AND user_id = $2', [c, p.id]);
    const [job] = (await t.db.admin.query(`INSERT INTO core.outbox (org_id, topic, payload, processed_at) VALUES ($1, 'test.job', $2, now()) RETURNING id`,
      [c, JSON.stringify({ email: p.email })])).rows;

    await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(200);

    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.outbox WHERE org_id = $1 AND id = $2', [c, job.id])).rows).toEqual([{ n: 0 }]);
  });
});
