import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { DomainEvents, DOMAIN_EVENT_TOPIC } from '../../src/platform/events/events.js';
import { EmailDeliveryService } from '../../src/modules/notifications/email-delivery.service.js';
import { settle } from './notifications-support.js';

describe('notifications: routing, inbox, preferences, digest, live stream', () => {
  let t: TestApp;
  let smtp: SmtpDouble;
  let owner: TestUser;
  let member: TestUser;
  let orgId: string;

  beforeAll(async () => {
    smtp = await startSmtpDouble();
    t = await createTestApp({ ...smtp.env, REDIS_URL: undefined });
    owner = await registerUser(t, 'owner');
    member = await registerUser(t, 'member');
    orgId = await createOrg(t, owner, 'Routing Co');
    await onEnterprisePlan(t, orgId);
    await addMember(t, orgId, member, 'member');
    await settle(t);
  });
  afterAll(async () => {
    await t.close();
    await smtp.close();
  });

  const mailsTo = (email: string) => smtp.messages.filter((m) => m.to.includes(email));
  const changeRole = (role: string) => t.http.patch(`/v1/orgs/${orgId}/members/${member.id}`).set(owner.auth).send({ role }).expect(200);
  const unreadRows = async (user: TestUser) => Number((await t.db.admin.query(
    'SELECT count(*) FROM core.notifications WHERE user_id = $1 AND read_at IS NULL AND archived_at IS NULL', [user.id])).rows[0].count);
  /** Domain events written straight to the outbox in one statement (the same second), as a module would emit them. */
  const emitMany = async (type: string, count: number, payload: (i: number) => Record<string, unknown>) => {
    const payloads = Array.from({ length: count }, (_, i) => JSON.stringify({ type, version: 1, occurredAt: new Date().toISOString(), payload: payload(i) }));
    await t.db.admin.query(`INSERT INTO core.outbox (org_id, topic, payload) SELECT $1, $2, p::jsonb FROM unnest($3::text[]) p`, [orgId, DOMAIN_EVENT_TOPIC, payloads]);
  };

  it('routes a role change to the person concerned (in-app and e-mail), by the routing table', async () => {
    const before = mailsTo(member.email).length;
    await changeRole('accountant');
    await settle(t);
    const mails = mailsTo(member.email).slice(before);
    expect(mails.map((m) => m.subject)).toEqual(['Your role in Routing Co changed']);
    expect(mails[0].text).toContain('Your role changed from member to accountant.');
    const inbox = await t.http.get('/v1/me/notifications').set(member.auth).expect(200);
    expect(inbox.body.items[0]).toMatchObject({ orgId, eventType: 'member.role_changed', category: 'organization', title: 'Your role in Routing Co changed', readAt: null });
    // the owner who changed it is not the person concerned
    const ownerInbox = await t.http.get('/v1/me/notifications').set(owner.auth).expect(200);
    expect(ownerInbox.body.items.filter((n: { eventType: string }) => n.eventType === 'member.role_changed')).toEqual([]);
    // routed once even when the event is delivered again
    const [event] = (await t.db.admin.query(`SELECT id, payload FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'member.role_changed' ORDER BY id DESC LIMIT 1`, [orgId])).rows;
    await t.app.get(DomainEvents).dispatch({ id: String(event.id), orgId, topic: DOMAIN_EVENT_TOPIC, payload: event.payload });
    await settle(t);
    expect(mailsTo(member.email).slice(before)).toHaveLength(1);
    expect((await t.db.admin.query(`SELECT count(*) FROM core.notifications WHERE event_id = $1`, [event.id])).rows[0].count).toBe('1');
  });

  it('respects preferences per category and channel; security cannot be switched off', async () => {
    const defaults = await t.http.get('/v1/me/notification-preferences').set(member.auth).expect(200);
    expect(defaults.body.items).toHaveLength(10);
    expect(defaults.body.items.every((p: { enabled: boolean; digest: boolean }) => p.enabled && !p.digest)).toBe(true);

    const off = await t.http.patch('/v1/me/notification-preferences').set(member.auth)
      .send({ items: [{ category: 'security', channel: 'email', enabled: false, digest: false }] }).expect(422);
    expect(off.body.error.code).toBe('notification.security_always_on');
    const badDigest = await t.http.patch('/v1/me/notification-preferences').set(member.auth)
      .send({ items: [{ category: 'finance', channel: 'in_app', enabled: true, digest: true }] }).expect(422);
    expect(badDigest.body.error.code).toBe('notification.digest_email_only');

    const res = await t.http.patch('/v1/me/notification-preferences').set(member.auth)
      .send({ items: [{ category: 'organization', channel: 'email', enabled: false, digest: false }] }).expect(200);
    expect(res.body.items).toContainEqual({ category: 'organization', channel: 'email', enabled: false, digest: false });
    expect(res.body.items).toContainEqual({ category: 'security', channel: 'email', enabled: true, digest: false });
    const stored = (await t.db.admin.query('SELECT category, channel, enabled FROM core.notification_preferences WHERE user_id = $1', [member.id])).rows;
    expect(stored).toEqual([{ category: 'organization', channel: 'email', enabled: false }]);

    const mailsBefore = mailsTo(member.email).length;
    const unreadBefore = await unreadRows(member);
    await changeRole('viewer');
    await settle(t);
    expect(mailsTo(member.email).length).toBe(mailsBefore); // e-mail off
    expect(await unreadRows(member)).toBe(unreadBefore + 1); // in-app still on

    await t.http.patch('/v1/me/notification-preferences').set(member.auth)
      .send({ items: [{ category: 'organization', channel: 'in_app', enabled: false, digest: false }] }).expect(200);
    await changeRole('member');
    await settle(t);
    expect(await unreadRows(member)).toBe(unreadBefore + 1);

    // security mail arrives whatever is stored (a row forced in behind the API is ignored too)
    await t.db.admin.query(`ALTER TABLE core.notification_preferences DROP CONSTRAINT notification_preferences_security_on`);
    try {
      await t.db.admin.query(`INSERT INTO core.notification_preferences (user_id, category, channel, enabled) VALUES ($1, 'security', 'email', false), ($1, 'security', 'in_app', false)`, [member.id]);
      await emitMany('session.started_from_unknown_device', 1, () => ({
        userId: member.id, sessionId: '0d4c6a3e-8f1b-4c2d-9e7a-5b6c7d8e9f01', userAgent: 'Test Agent', ipPrefix: '203.0.113.0/24', signedInAt: new Date().toISOString(), method: 'password',
      }));
      await settle(t);
      expect(mailsTo(member.email).filter((m) => m.subject === 'New sign-in from an unknown device')).toHaveLength(1);
    } finally {
      await t.db.admin.query(`DELETE FROM core.notification_preferences WHERE user_id = $1 AND category = 'security'`, [member.id]);
      await t.db.admin.query(`ALTER TABLE core.notification_preferences ADD CONSTRAINT notification_preferences_security_on CHECK (category <> 'security' OR enabled)`);
    }
    await t.http.patch('/v1/me/notification-preferences').set(member.auth).send({ items: [
      { category: 'organization', channel: 'in_app', enabled: true, digest: false }, { category: 'organization', channel: 'email', enabled: true, digest: false },
    ] }).expect(200);
  });

  it('sends exactly one digest for 100 events arriving in the same second, routed concurrently', async () => {
    await t.http.patch('/v1/me/notification-preferences').set(owner.auth)
      .send({ items: [{ category: 'finance', channel: 'email', enabled: true, digest: true }] }).expect(200);
    await settle(t);
    const before = mailsTo(owner.email).length;
    await emitMany('bill.submitted', 100, (i) => ({
      billId: `7d0f0a4e-3c55-4a49-9a0e-${String(i).padStart(12, '0')}`, kind: 'bill', partyType: 'vendor', partyId: 'paper-mill',
      currency: 'EUR', total: `${100 + i}.00`, approvalsRequired: 1, approverRoles: ['owner', 'admin'],
    }));
    const events = (await t.db.admin.query(`SELECT id, payload FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'bill.submitted' AND processed_at IS NULL`, [orgId])).rows;
    expect(events).toHaveLength(100);
    const domainEvents = t.app.get(DomainEvents);
    await Promise.all(events.map((e) => domainEvents.dispatch({ id: String(e.id), orgId, topic: DOMAIN_EVENT_TOPIC, payload: e.payload })));
    await settle(t); // the outbox runs them again: routed once each

    const digests = (await t.db.admin.query(`SELECT id, sent_at FROM core.email_digests WHERE user_id = $1 AND category = 'finance'`, [owner.id])).rows;
    expect(digests).toHaveLength(1);
    const pending = (await t.db.admin.query(`SELECT count(*) FROM core.email_deliveries WHERE user_id = $1 AND status = 'digest_pending'`, [owner.id])).rows[0].count;
    expect(pending).toBe('100');
    expect(mailsTo(owner.email).length).toBe(before); // nothing before the hour is over
    expect((await t.db.admin.query(`SELECT count(*) FROM core.notifications WHERE user_id = $1 AND event_type = 'bill.submitted'`, [owner.id])).rows[0].count).toBe('100');

    const digestService = t.app.get(EmailDeliveryService);
    const later = new Date(Date.now() + 3_600_000);
    await Promise.all([digestService.flushDigests(later), digestService.flushDigests(later)]);
    await settle(t);
    await digestService.flushDigests(later);
    await settle(t);
    const mails = mailsTo(owner.email).slice(before);
    expect(mails.map((m) => m.subject)).toEqual(['100 new finance notice(s) on OmniZen']);
    expect(mails[0].text).toContain('A bill awaits approval in Routing Co: A bill of 100.00 EUR awaits approval (1 approval(s) needed).');
    expect(mails[0].text).toContain('A bill of 199.00 EUR');
    // approvers only: the member (no approver role) got nothing
    expect((await t.db.admin.query(`SELECT count(*) FROM core.notifications WHERE user_id = $1 AND event_type = 'bill.submitted'`, [member.id])).rows[0].count).toBe('0');
    const states = (await t.db.admin.query(`SELECT status, count(*)::int AS n FROM core.email_deliveries WHERE user_id = $1 AND category = 'finance' GROUP BY status ORDER BY status`, [owner.id])).rows;
    expect(states).toEqual([{ status: 'digested', n: 100 }, { status: 'sent', n: 1 }]);
  });

  it('lists with cursors and filters; the unread count equals the unread rows, also under concurrent marking', async () => {
    const reader = await registerUser(t, 'reader');
    await addMember(t, orgId, reader, 'member');
    await emitMany('member.role_changed', 30, (i) => ({ userId: reader.id, previousRole: 'member', role: i % 2 ? 'viewer' : 'member', changedBy: owner.id }));
    await settle(t);

    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const res = await t.http.get('/v1/me/notifications').query({ limit: 7, ...(cursor ? { cursor } : {}) }).set(reader.auth).expect(200);
      seen.push(...res.body.items.map((n: { id: string }) => n.id));
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(seen).toHaveLength(30);
    expect(new Set(seen).size).toBe(30);
    const count = await t.http.get('/v1/me/notifications/unread-count').set(reader.auth).expect(200);
    expect(count.body).toEqual({ unread: 30, byCategory: [{ category: 'organization', count: 30 }] });
    expect((await t.http.get('/v1/me/notifications').query({ category: 'billing' }).set(reader.auth).expect(200)).body.items).toEqual([]);

    // someone else's notice is not found
    const notMine = await t.http.post(`/v1/me/notifications/${seen[0]}/read`).set(member.auth).expect(404);
    expect(notMine.body.error.code).toBe('notification.not_found');

    // 10 marked one by one, while the count is read, all at once
    const counts = await Promise.all([
      ...seen.slice(0, 10).map((id) => t.http.post(`/v1/me/notifications/${id}/read`).set(reader.auth).expect(200)),
      ...seen.slice(0, 10).map((id) => t.http.post(`/v1/me/notifications/${id}/read`).set(reader.auth).expect(200)),
      t.http.get('/v1/me/notifications/unread-count').set(reader.auth).expect(200),
    ]);
    expect(counts[counts.length - 1].body.unread).toBeGreaterThanOrEqual(20);
    const afterTen = await t.http.get('/v1/me/notifications/unread-count').set(reader.auth).expect(200);
    expect(afterTen.body.unread).toBe(20);
    expect(await unreadRows(reader)).toBe(20);
    const unreadList = await t.http.get('/v1/me/notifications').query({ unread: 'true', limit: 200 }).set(reader.auth).expect(200);
    expect(unreadList.body.items).toHaveLength(20);

    const archived = await t.http.post(`/v1/me/notifications/${seen[15]}/archive`).set(reader.auth).expect(200);
    expect(archived.body).toMatchObject({ id: seen[15], archivedAt: expect.any(String), readAt: expect.any(String) });
    expect((await t.http.get('/v1/me/notifications').query({ archived: 'true' }).set(reader.auth).expect(200)).body.items.map((n: { id: string }) => n.id)).toEqual([seen[15]]);
    expect(await unreadRows(reader)).toBe(19);

    // mark-all races single marks: every notice ends read exactly once, the count with the rows
    const raced = await Promise.all([
      t.http.post('/v1/me/notifications/read-all').set(reader.auth).send({}).expect(200),
      t.http.post('/v1/me/notifications/read-all').set(reader.auth).send({ orgId }).expect(200),
      ...seen.slice(10).map((id) => t.http.post(`/v1/me/notifications/${id}/read`).set(reader.auth).expect(200)),
    ]);
    expect(raced[0].body.marked + raced[1].body.marked).toBeLessThanOrEqual(19);
    const final = await t.http.get('/v1/me/notifications/unread-count').set(reader.auth).expect(200);
    expect(final.body).toEqual({ unread: 0, byCategory: [] });
    expect(await unreadRows(reader)).toBe(0);
  });

  it('a service-role key is 403 auth.user_required, a code the route declares (the contract check fails an undeclared one)', async () => {
    const key = jwt.sign({ role: 'service_role', iss: 'supabase' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 600 });
    const res = await t.http.get('/v1/me/notifications/stream').set({ Authorization: `Bearer ${key}` }).expect(403);
    expect(res.body.error).toEqual({ code: 'auth.user_required', message: 'this route acts for a signed-in user; a service key cannot call it' });
    const doc = await t.http.get('/docs-json').expect(200);
    expect(doc.body.paths['/v1/me/notifications/stream'].get['x-error-codes']).toEqual(expect.arrayContaining([expect.objectContaining({ code: 'auth.user_required', status: 403 })]));
  });

  it('pushes a new notice to an open server-sent event stream', async () => {
    await t.app.listen(0, '127.0.0.1');
    const { port } = t.app.getHttpServer().address() as AddressInfo;
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/v1/me/notifications/stream', headers: { ...member.auth, Accept: 'text/event-stream' } }, resolve);
      req.on('error', reject);
      req.end();
    });
    try {
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toContain('text/event-stream');
      // the stream writes its head to the raw response (no onSend): the coverage recorder saw its 200 all the same
      expect(t.contract.calls()).toContainEqual({ operation: 'GET /v1/me/notifications/stream', status: 200 });
      let received = '';
      const arrived = new Promise<string>((resolve) => {
        response.on('data', (chunk: Buffer) => {
          received += chunk.toString('utf8');
          const match = /event: notification\nid: ([0-9a-f-]{36})\ndata: (.*)\n/.exec(received);
          if (match) resolve(match[2]);
        });
      });
      await changeRole('admin');
      await settle(t);
      const data = JSON.parse(await arrived);
      expect(data).toMatchObject({ orgId, eventType: 'member.role_changed', title: 'Your role in Routing Co changed' });
      const [row] = (await t.db.admin.query('SELECT id FROM core.notifications WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1', [member.id])).rows;
      expect(data.id).toBe(row.id);
    } finally {
      response.destroy();
    }
  });
});
