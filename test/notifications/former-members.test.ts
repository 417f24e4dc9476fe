import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { startSmtpDouble, type SmtpDouble } from '../support/doubles/smtp-double.js';
import { DOMAIN_EVENT_TOPIC } from '../../src/platform/events/events.js';
import { EmailDeliveryService } from '../../src/modules/notifications/email-delivery.service.js';
import { NotificationStream } from '../../src/modules/notifications/notification-stream.js';
import { settle } from './notifications-support.js';

/**
 * h18: an organization's notices reach its current members only (core.notifications' restrictive policy, the digest),
 * while the notices addressed to a person (their removal) stay theirs; security e-mail is never a digest; the stream's
 * token expiry is measured by the injected clock.
 */
describe('notifications: former members, security mail, the stream\'s clock', () => {
  let t: TestApp;
  let smtp: SmtpDouble;
  const clock = new ManualClock();
  let owner: TestUser;
  let leaver: TestUser;
  let stayer: TestUser;
  let orgId: string;

  beforeAll(async () => {
    smtp = await startSmtpDouble();
    t = await createTestApp({ ...smtp.env, REDIS_URL: undefined }, { clock });
    owner = await registerUser(t, 'owner');
    leaver = await registerUser(t, 'leaver');
    stayer = await registerUser(t, 'stayer');
    orgId = await createOrg(t, owner, 'Secretive Co');
    await onEnterprisePlan(t, orgId);
    await addMember(t, orgId, leaver, 'admin');
    await addMember(t, orgId, stayer, 'admin');
    await settle(t);
    await t.app.listen(0, '127.0.0.1');
  });
  afterAll(async () => {
    await t.close();
    await smtp.close();
  });

  const mailsTo = (email: string) => smtp.messages.filter((m) => m.to.includes(email));
  /** A member.invited event, as the invitations module emits it (routed to owners and admins). */
  const invite = async (email: string) => {
    const payload = JSON.stringify({ type: 'member.invited', version: 1, occurredAt: new Date().toISOString(), payload: { email, role: 'admin', invitedBy: owner.id } });
    await t.db.admin.query('INSERT INTO core.outbox (org_id, topic, payload) SELECT $1, $2, $3::jsonb', [orgId, DOMAIN_EVENT_TOPIC, payload]);
    await settle(t);
  };
  const inbox = async (user: TestUser, query = '') => (await t.http.get(`/v1/me/notifications${query}`).set(user.auth).expect(200)).body.items as { id: string; eventType: string; title: string }[];
  const openStream = async (user: TestUser) => {
    const { port } = t.app.getHttpServer().address() as AddressInfo;
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/v1/me/notifications/stream', headers: { ...user.auth, Accept: 'text/event-stream' } }, resolve);
      req.on('error', reject);
      req.end();
    });
    expect(response.statusCode).toBe(200);
    let received = '';
    response.on('data', (chunk: Buffer) => { received += chunk.toString('utf8'); });
    return {
      response,
      get received() { return received; },
      /** resolves with the data of the first notification event whose title contains `text` */
      notice: (text: string) => new Promise<{ title: string }>((resolve) => {
        const check = () => {
          const found = [...received.matchAll(/event: notification\nid: [0-9a-f-]{36}\ndata: (.*)\n/g)].map((m) => JSON.parse(m[1]) as { title: string }).find((n) => n.title.includes(text));
          if (found) resolve(found);
        };
        check();
        response.on('data', check);
      }),
      ended: new Promise<'ended'>((resolve) => response.on('end', () => resolve('ended'))),
    };
  };

  it('a removed member no longer lists, counts, marks or gets by digest the organization\'s notices; their removal notice stays theirs', async () => {
    for (const user of [leaver, stayer]) {
      await t.http.patch('/v1/me/notification-preferences').set(user.auth)
        .send({ items: [{ category: 'organization', channel: 'email', enabled: true, digest: true }] }).expect(200);
    }
    await invite('ceo-candidate@example.com');
    const title = 'ceo-candidate@example.com was invited to Secretive Co';
    const [notice] = (await inbox(leaver, `?orgId=${orgId}`)).filter((n) => n.title === title);
    expect(notice).toBeDefined();
    expect((await inbox(stayer, `?orgId=${orgId}`)).map((n) => n.title)).toContain(title);
    const pending = (await t.db.admin.query(`SELECT user_id FROM core.email_deliveries WHERE org_id = $1 AND status = 'digest_pending' ORDER BY user_id`, [orgId])).rows;
    expect(pending.map((r) => r.user_id).sort()).toEqual([leaver.id, stayer.id].sort());

    // the owner removes the admin (member.removed: a notice addressed to them in person)
    await t.http.delete(`/v1/orgs/${orgId}/members/${leaver.id}`).set(owner.auth).expect(204);
    await settle(t);

    // the organization's notice is gone from every view of theirs; their removal notice is there
    expect((await inbox(leaver, `?orgId=${orgId}`)).map((n) => n.title)).toEqual(['You no longer belong to Secretive Co']);
    expect((await inbox(leaver)).map((n) => n.title)).not.toContain(title);
    expect((await t.http.get('/v1/me/notifications/unread-count').set(leaver.auth).expect(200)).body).toEqual({ unread: 1, byCategory: [{ category: 'organization', count: 1 }] });
    const read = await t.http.post(`/v1/me/notifications/${notice.id}/read`).set(leaver.auth).expect(404);
    expect(read.body.error.code).toBe('notification.not_found');
    await t.http.post(`/v1/me/notifications/${notice.id}/archive`).set(leaver.auth).expect(404);
    const all = await t.http.post('/v1/me/notifications/read-all').set(leaver.auth).send({ orgId }).expect(200);
    expect(all.body).toEqual({ marked: 1 }); // the removal notice only
    const [row] = (await t.db.admin.query('SELECT read_at, archived_at FROM core.notifications WHERE id = $1', [notice.id])).rows;
    expect(row).toEqual({ read_at: null, archived_at: null });

    // a member still sees and marks it
    const [kept] = (await inbox(stayer, `?orgId=${orgId}`)).filter((n) => n.title === title);
    await t.http.post(`/v1/me/notifications/${kept.id}/read`).set(stayer.auth).expect(200);

    // the hour's digest: the member gets the invitation; the former member gets their removal, not the invitation
    const later = new Date(clock.now() + 3_600_000);
    const digests = t.app.get(EmailDeliveryService);
    await digests.flushDigests(later);
    await settle(t);
    const stayerMails = mailsTo(stayer.email).filter((m) => m.text.includes(title));
    expect(stayerMails).toHaveLength(1);
    const leaverMails = mailsTo(leaver.email);
    expect(leaverMails.map((m) => m.text).join('\n')).toContain('You no longer belong to Secretive Co');
    expect(leaverMails.map((m) => m.text).join('\n')).not.toContain('ceo-candidate');
    const states = (await t.db.admin.query(
      `SELECT data->>'eventType' AS type, status, smtp_response FROM core.email_deliveries WHERE org_id = $1 AND user_id = $2 AND template = 'notice' ORDER BY 1`,
      [orgId, leaver.id])).rows;
    expect(states).toEqual([
      { type: 'member.invited', status: 'not_sent', smtp_response: 'not sent: the recipient no longer belongs to the organization' },
      { type: 'member.removed', status: 'digested', smtp_response: null },
    ]);
  });

  it('the membership policy reads the memberships once per transaction, not once per notice, and only for the claims it read them for', async () => {
    // many notices of the organization for a member (the policy's function was called for each one)
    const many = 2_000;
    await t.db.admin.query(
      `INSERT INTO core.notifications (org_id, user_id, event_id, event_type, category, title, body)
       SELECT $1, $2, 900000000 + g, 'member.invited', 'organization', 'bulk ' || g, 'bulk' FROM generate_series(1, $3::int) g`,
      [orgId, stayer.id, many]);
    // function call counts for the runtime login's sessions (SET track_functions is for superusers)
    await t.db.admin.query(`ALTER DATABASE "${t.db.name}" SET track_functions = 'all'`);
    const expected = async (user: TestUser) => (await t.db.admin.query(
      `SELECT count(*)::int AS n FROM core.notifications n
       WHERE n.user_id = $1 AND (n.to_person OR n.org_id IN (SELECT m.org_id FROM core.memberships m WHERE m.user_id = $1))`, [user.id])).rows[0].n as number;
    const api = new pg.Client({ connectionString: t.db.apiUrl });
    await api.connect();
    try {
      const calls = async () => (await api.query(
        `SELECT coalesce(sum(pg_stat_get_xact_function_calls(p.oid)), 0)::int AS n FROM pg_proc p
         WHERE p.pronamespace = 'core'::regnamespace AND p.proname IN ('member_org_ids', 'member_org_ids_checked')`)).rows[0].n as number;
      const count = async () => (await api.query('SELECT count(*)::int AS n FROM core.notifications')).rows[0].n as number;
      const as = (user: TestUser) => api.query(`SELECT public.begin_request($1, 'authenticated')`, [JSON.stringify({ sub: user.id, role: 'authenticated' })]);
      await api.query('BEGIN');
      await as(stayer);
      expect(await calls()).toBe(0);
      expect(await count()).toBe(await expected(stayer));
      expect(await count()).toBeGreaterThan(many);
      expect(await calls()).toBe(1); // one lookup for both statements, not one per row
      // other claims in the same transaction: their own lookup, not the first user's organizations
      await api.query('RESET ROLE');
      await as(leaver);
      expect(await count()).toBe(await expected(leaver));
      expect(await calls()).toBe(2);
      await api.query('COMMIT');
    } finally {
      await api.end();
      await t.db.admin.query(`ALTER DATABASE "${t.db.name}" RESET track_functions`);
      await t.db.admin.query(`DELETE FROM core.notifications WHERE event_id > 900000000`);
    }
  });

  it('webhook_endpoint.disabled: a version 1 event (no urlOrigin) still makes a readable notice, without its URL', async () => {
    const endpointId = '3d6f0a2b-1c4e-4f8a-9b7d-2e5c8a1f0b3d';
    const emit = async (version: number, data: Record<string, unknown>) => {
      const payload = JSON.stringify({ type: 'webhook_endpoint.disabled', version, occurredAt: new Date().toISOString(), payload: data });
      await t.db.admin.query('INSERT INTO core.outbox (org_id, topic, payload) SELECT $1, $2, $3::jsonb', [orgId, DOMAIN_EVENT_TOPIC, payload]);
      await settle(t);
    };
    const bodies = async () => (await t.db.admin.query(
      `SELECT body FROM core.notifications WHERE org_id = $1 AND user_id = $2 AND event_type = 'webhook_endpoint.disabled' ORDER BY event_id`, [orgId, stayer.id])).rows.map((r) => r.body as string);
    await emit(1, { endpointId, url: 'https://hooks.example.com/services/T000/B000/secret-token', reason: 'failing' });
    expect(await bodies()).toEqual([`The endpoint ${endpointId} was disabled: failing.`]);
    await emit(2, { endpointId, urlOrigin: 'https://hooks.example.com', reason: 'gone' });
    expect(await bodies()).toEqual([`The endpoint ${endpointId} was disabled: failing.`, `The endpoint https://hooks.example.com (${endpointId}) was disabled: gone.`]);
    const listed = (await inbox(stayer, `?orgId=${orgId}`)).filter((n) => n.eventType === 'webhook_endpoint.disabled');
    expect(listed).toHaveLength(2);
  });

  it('an open stream of a former member does not get the organization\'s new notices; a member\'s does', async () => {
    const leaverStream = await openStream(leaver);
    const stayerStream = await openStream(stayer);
    try {
      await invite('cfo-candidate@example.com');
      expect((await stayerStream.notice('cfo-candidate@example.com')).title).toBe('cfo-candidate@example.com was invited to Secretive Co');
      // a marker pushed to the former member after it: the stream is ordered, so what came before it is all it got
      await t.app.get(NotificationStream).publish(leaver.id, { id: '00000000-0000-4000-8000-000000000001', title: 'marker' } as never);
      await leaverStream.notice('marker');
      expect(leaverStream.received).not.toContain('cfo-candidate');
      expect((await inbox(leaver, `?orgId=${orgId}`)).map((n) => n.title)).toEqual(['You no longer belong to Secretive Co']);
    } finally {
      leaverStream.response.destroy();
      stayerStream.response.destroy();
    }
  });

  it('security e-mail is never a digest: the preference is refused, and a digest stored before is ignored', async () => {
    const refused = await t.http.patch('/v1/me/notification-preferences').set(stayer.auth)
      .send({ items: [{ category: 'security', channel: 'email', enabled: true, digest: true }] }).expect(422);
    expect(refused.body.error).toEqual({ code: 'notification.security_immediate', message: 'security e-mails are sent at once: the security category has no digest' });
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM core.notification_preferences WHERE user_id = $1 AND category = 'security'`, [stayer.id])).rows[0].n).toBe(0);
    const doc = (await t.http.get('/docs-json').expect(200)).body;
    expect(doc.paths['/v1/me/notification-preferences'].patch['x-error-codes']).toEqual(expect.arrayContaining([expect.objectContaining({ code: 'notification.security_immediate', status: 422 })]));

    // a security digest stored before the rule: shown as immediate, and a sign-in alert is mailed at once
    await t.db.admin.query(`INSERT INTO core.notification_preferences (user_id, category, channel, enabled, digest) VALUES ($1, 'security', 'email', true, true)`, [stayer.id]);
    const prefs = (await t.http.get('/v1/me/notification-preferences').set(stayer.auth).expect(200)).body.items;
    expect(prefs).toContainEqual({ category: 'security', channel: 'email', enabled: true, digest: false });
    const before = mailsTo(stayer.email).length;
    const payload = JSON.stringify({
      type: 'session.started_from_unknown_device', version: 1, occurredAt: new Date().toISOString(),
      payload: { userId: stayer.id, userAgent: 'curl/8', ipPrefix: '203.0.113.0/24', signedInAt: new Date().toISOString() },
    });
    await t.db.admin.query('INSERT INTO core.outbox (org_id, topic, payload) SELECT $1, $2, $3::jsonb', [stayer.personalOrgId, DOMAIN_EVENT_TOPIC, payload]);
    await settle(t);
    expect(mailsTo(stayer.email).slice(before).map((m) => m.subject)).toEqual(['New sign-in from an unknown device']);
    const rows = (await t.db.admin.query(`SELECT status, digest_id FROM core.email_deliveries WHERE user_id = $1 AND data->>'eventType' = 'session.started_from_unknown_device'`, [stayer.id])).rows;
    expect(rows).toEqual([{ status: 'sent', digest_id: null }]);
  });

  // last: it moves the file's clock past every token's expiry
  it('ends the stream when its token has expired by the injected clock', async () => {
    const { exp } = jwt.decode(stayer.token) as { exp: number };
    clock.advance(exp * 1000 - clock.now() + 60_000);
    const stream = await openStream(stayer);
    try {
      // pushed once the stream is open: a stream that did not end at once (the token expired before it opened, by
      // the injected clock) would carry it; one that did has no subscriber left to take it
      await t.app.get(NotificationStream).publish(stayer.id, { id: '00000000-0000-4000-8000-000000000002', title: 'late marker' } as never);
      expect(await Promise.race([stream.ended, stream.notice('late marker').then(() => 'delivered')])).toBe('ended');
      expect(stream.received).not.toContain('event: notification');
    } finally {
      stream.response.destroy();
    }
  });
});
