import { randomBytes } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, beforeVerificationWasNeeded, createOrg, onPlan, registerUser, uniqueEmail, verifyEmailOf, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { startPostHogDouble, type PostHogDouble } from '../support/doubles/posthog-double.js';
import { agentsUrl } from '../agents/agents-support.js';
import { startHeldAnswerProxy, type HeldAnswerProxy } from '../agents/held-answer-proxy.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { PERSONAL_DATA_CATALOG } from '../../src/modules/privacy/personal-data.catalog.js';
import { locate } from '../../src/modules/privacy/erasure.repository.js';
import { findEverywhere } from './columns.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { emailSubject } from '../../src/modules/privacy/audit-sealing.js';
import { hashToken } from '../../src/modules/auth/token.service.js';
import { RunsService } from '../../src/modules/agents/runs.service.js';
import { AnalyticsMaintenanceJob } from '../../src/modules/analytics/analytics-maintenance.job.js';
import { PostHogForwarder } from '../../src/modules/analytics/posthog.forwarder.js';
import { testKeys } from '../integrations/keys.js';

const PASSWORD = 'correct horse battery';

/** A person with a name found nowhere else, so the scan can look for it. */
async function person(t: TestApp, prefix: string, email = uniqueEmail(prefix)): Promise<TestUser & { name: string }> {
  const name = `Zelda ${prefix} Quuxington ${randomBytes(4).toString('hex')}`;
  await t.http.post('/v1/auth/register').send({ email, password: PASSWORD, name }).expect(202);
  const res = await t.http.post('/v1/auth/login').send({ email, password: PASSWORD }).expect(200);
  return {
    id: res.body.user.id, email, name, token: res.body.accessToken, refreshToken: res.body.refreshToken,
    personalOrgId: res.body.personalOrgId, auth: { Authorization: `Bearer ${res.body.accessToken}` },
  };
}

/** Columns the catalog keeps under a legal basis (the audit trail's ip; its snapshots are crypto-shredded, not retained). */
const RETAINED = new Set(PERSONAL_DATA_CATALOG.flatMap((t) => Object.entries(t.columns).filter(([, tr]) => tr.kind === 'retain').map(([c]) => `${t.table}.${c}`)));

describe('DELETE /v1/me: erasure', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  /** in front of the double: a test holds an answer (the provider has answered, the run not yet heard it) */
  let proxy: HeldAnswerProxy;
  /** events are forwarded to a PostHog double: an erasure deletes their persons there */
  let posthog: PostHogDouble;
  const clock = new ManualClock();

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    proxy = await startHeldAnswerProxy(llm.url);
    posthog = await startPostHogDouble();
    // jobs run in drain(); agents call the LLM double; the secret box seals the PostHog deletion's distinct ids
    t = await createTestApp({
      AUTH_COOKIES: 'false', REDIS_URL: '', AI_BASE_URL: proxy.url, AI_API_KEY: 'sk-test-erasure-0000', SECRETS_KEYS: testKeys('k1').env, ...posthog.env,
    }, { clock });
  });
  afterAll(async () => {
    await proxy?.close(); // first: an answer a failed test still holds is let go, the app's request ends
    await t?.close();
    await llm?.close();
    await posthog?.close();
  });

  it('deletes their PostHog persons with their events once the erasure has committed: PostHog down delays it, the erasure completes', async () => {
    await t.app.get(AnalyticsMaintenanceJob).booted;
    const owner = await registerUser(t, 'ph-owner');
    const p = await verifyEmailOf(t, await person(t, 'posthog'));
    const email = p.email.toLowerCase();
    const orgId = await createOrg(t, owner, 'PostHog Kept Ltd');
    await onPlan(t, orgId, 'enterprise');
    await addMember(t, orgId, p, 'member');
    // events of their organization that name them, forwarded under ids that are not their user id: an anonymous visitor's
    // (their app), and the owner's app's user ids for them; one stored under the owner's own id (the owner's PostHog
    // person, which their erasure cannot delete), and another app user's that names them (crm-7: its person), stay there
    const send = (auth: Record<string, string>, events: object[]) => t.http.post(`/v1/orgs/${orgId}/analytics/events`).set(auth).send({ events }).expect(200);
    const forwardedBefore = posthog.events.length;
    await send(p.auth, [{ name: 'form.submitted', anonymousId: 'visitor-1', properties: { contact: p.email } }]);
    await send(owner.auth, [
      { name: 'crm.synced', userId: `mailto:${p.email}` },
      { name: 'crm.synced', userId: p.email.toUpperCase() },
      { name: 'member.looked_up', properties: { who: p.email } },
      { name: 'crm.synced', userId: 'crm-7', anonymousId: 'visitor-3', properties: { who: p.email } },
      { name: 'form.submitted', anonymousId: 'visitor-2', properties: { contact: 'someone.else@example.test' } },
    ]);
    await t.app.get(PostHogForwarder).flush();
    await posthog.received(forwardedBefore + 6);
    const forwardedAs = (name: string) => posthog.events.filter((e) => e.properties.org_id === orgId && e.event === name).map((e) => e.distinct_id).sort();
    expect([forwardedAs('form.submitted'), forwardedAs('crm.synced'), forwardedAs('member.looked_up')]).toEqual([
      [`org:${orgId}:anon:visitor-1`, `org:${orgId}:anon:visitor-2`].sort(),
      [`org:${orgId}:user:crm-7`, `org:${orgId}:user:mailto:${p.email}`, `org:${orgId}:user:${p.email.toUpperCase()}`].sort(),
      [owner.id],
    ]);
    posthog.refuseDeletions = true;
    await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(200);
    const job = async () => (await t.db.admin.query(`SELECT org_id, payload, processed_at IS NOT NULL AS done, attempts,
      extract(epoch FROM available_at - created_at)::int AS delay FROM core.outbox
      WHERE topic = 'analytics.posthog_erasure' AND org_id = $1`, [p.personalOrgId])).rows;
    // its distinct ids are sealed (the secret box): neither their id nor their address stands in the row
    const sealed = { $sealed: { ciphertext: expect.any(String), iv: expect.any(String), tag: expect.any(String), kid: 'k1' } };
    expect(await job()).toEqual([{ org_id: p.personalOrgId, payload: sealed, done: false, attempts: 0, delay: 3600 }]);
    const [{ payload: written }] = await job();
    expect([p.id, email, 'visitor-1'].filter((needle) => JSON.stringify(written).toLowerCase().includes(needle))).toEqual([]);
    // what the job names no longer stands in the database: the events keep none of those ids
    const { rows: left } = await t.db.admin.query(`SELECT user_id, anonymous_id FROM core.analytics_events WHERE org_id = $1 AND source = 'client' ORDER BY name, user_id, anonymous_id`, [orgId]);
    const pseudonym = left.find((r) => r.user_id?.startsWith('erased-'))?.user_id;
    expect(left).toEqual([
      { user_id: 'crm-7', anonymous_id: null }, { user_id: pseudonym, anonymous_id: null }, { user_id: pseudonym, anonymous_id: null },
      { user_id: null, anonymous_id: 'visitor-2' }, { user_id: null, anonymous_id: null }, { user_id: owner.id, anonymous_id: null },
    ]);
    // not before: PostHog deletes only the events it has by then (the erasure's own sign-in's are still on their way)
    await t.app.get(OutboxRelay).drain();
    expect(posthog.deletions.filter((d) => d.body.distinct_ids?.includes(p.id))).toEqual([]);
    await t.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE topic = 'analytics.posthog_erasure' AND processed_at IS NULL`);
    const erasure = await t.db.admin.query(`SELECT after->'posthogErasure' AS ph FROM core.audit_logs WHERE action = 'user.erased' AND entity_id = $1`, [p.id]);
    expect(erasure.rows).toEqual([{ ph: true }]);

    const mine = () => posthog.deletions.filter((d) => d.body.distinct_ids?.includes(p.id));
    await t.app.get(OutboxRelay).drain();
    // refused: the row keeps its sealed payload for the next try
    expect([mine().map((d) => d.answered), await job()]).toEqual([[503], [expect.objectContaining({ payload: written, done: false, attempts: 1 })]]);
    // their own id; the ids an app of their organizations may have sent for them (their user id, their proven address);
    // and those its events naming them were forwarded under, read before the erasure cleared them
    const [{ body: { distinct_ids: distinctIds = [] } }] = mine();
    expect(distinctIds.slice(0, 5)).toEqual([p.id, ...[p.personalOrgId, orgId].sort().flatMap((o) => [`org:${o}:user:${p.id}`, `org:${o}:user:${email}`])]);
    expect([...distinctIds.slice(5)].sort()).toEqual([`org:${orgId}:anon:visitor-1`, `org:${orgId}:user:mailto:${p.email}`, `org:${orgId}:user:${p.email.toUpperCase()}`].sort());
    // PostHog is back, the job's backoff has passed: tried again, done
    posthog.refuseDeletions = false;
    await t.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE topic = 'analytics.posthog_erasure' AND processed_at IS NULL`);
    await t.app.get(OutboxRelay).drain();
    expect(mine()).toEqual([503, 200].map((answered) => ({
      path: '/api/projects/4242/persons/bulk_delete/', authorization: 'Bearer phx_test_double', body: { distinct_ids: distinctIds, delete_events: true }, answered,
    })));
    // done: its payload emptied in the same statement, the sealed distinct ids gone too
    expect(await job()).toEqual([expect.objectContaining({ payload: {}, done: true, attempts: 2 })]);
  });

  it('needs re-authentication: a fresh access token is enough; a token older than 5 minutes without the password, or a wrong password, is refused and nothing changes', async () => {
    // a sign-in is recent on the app's clock (this file's, which moves on)
    const fresh = await person(t, 'fresh');
    await t.http.delete('/v1/me').set(fresh.auth).send({}).expect(200);
    const p = await person(t, 'reauth');
    clock.advance(301_000);
    const stale = await t.http.delete('/v1/me').set(p.auth).send({}).expect(403);
    expect(stale.body.error.code).toBe('privacy.recent_sign_in_required');
    const wrong = await t.http.delete('/v1/me').set(p.auth).send({ password: 'not the password' }).expect(403);
    expect(wrong.body.error.code).toBe('privacy.password_incorrect');
    const { rows } = await t.db.admin.query('SELECT email, name FROM core."User" WHERE id = $1', [p.id]);
    expect(rows).toEqual([{ email: p.email, name: p.name }]);
    const again = await t.http.delete('/v1/me').set(fresh.auth).send({});
    // the erased person's sessions are revoked: the auth guard refuses the token before the route runs
    expect([again.status, again.body.error?.message]).toEqual([401, 'the session of this access token has ended; log in again']);
  });

  it('refuses the only owner of an organization with other members (409 privacy.sole_owner), changing nothing', async () => {
    const p = await person(t, 'soleowner');
    const orgId = await createOrg(t, p, 'Sole Owner Ltd');
    const member = await registerUser(t, 'member');
    await addMember(t, orgId, member, 'member');
    const res = await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(409);
    expect(res.body.error).toMatchObject({ code: 'privacy.sole_owner', details: { organizationIds: [orgId] } });
    const { rows } = await t.db.admin.query('SELECT email FROM core."User" WHERE id = $1', [p.id]);
    expect(rows).toEqual([{ email: p.email }]);
    await t.http.get('/v1/orgs').set(p.auth).expect(200);
  });

  it('erases the rows that name the person\'s address as a whole, never another address that contains it', async () => {
    const p = await person(t, 'm');
    await verifyEmailOf(t, p); // a proven address: the rows naming it are theirs
    const longer = `to${p.email}`; // tom.…@example.test: another person's address ending in p's
    const other = await registerUser(t, 'bystander');
    const orgId = await createOrg(t, other, 'Bystander Ltd');
    // an organization that invited them: the erasure looks for the rows naming them in their organizations (and those that
    // invited them) only (test/privacy/erasure-organizations.test.ts)
    await t.http.post(`/v1/orgs/${orgId}/invitations`).set(other.auth).send({ email: p.email, role: 'viewer' }).expect(201);
    const q = (sql: string, params: unknown[]) => t.db.admin.query(sql, params);
    const [endpoint] = (await q(`INSERT INTO core.webhook_endpoints (org_id, url, secret) VALUES ($1, 'https://hooks.example.test/x', '{}') RETURNING id`, [orgId])).rows;
    const rows = async (address: string, tag: string) => ({
      notice: (await q(`INSERT INTO core.notifications (org_id, user_id, event_id, event_type, category, title, body)
        VALUES ($1, $2, (random() * 1e12)::bigint, 'member.invited', 'organization', 'Invited', $3) RETURNING id`, [orgId, other.id, `${address} was invited (${tag}).`])).rows[0].id,
      mail: (await q(`INSERT INTO core.email_deliveries (org_id, to_address, template, category, data, status)
        VALUES ($1, $2, 'invitation', 'organization', $3, 'queued') RETURNING id`, [orgId, address, JSON.stringify({ email: address, tag })])).rows[0].id,
      job: String((await q(`INSERT INTO core.outbox (org_id, topic, payload) VALUES ($1, 'test.job', $2) RETURNING id`, [orgId, JSON.stringify({ email: address, tag })])).rows[0].id),
      message: (await q(`INSERT INTO core.webhook_messages (org_id, endpoint_id, event_id, event_type, body, next_attempt_at)
        VALUES ($1, $2, (random() * 1e12)::bigint, 'member.invited', $3, now()) RETURNING id`, [orgId, endpoint.id, JSON.stringify({ data: { email: address.toUpperCase(), tag } })])).rows[0].id,
    });
    const theirs = await rows(p.email, 'theirs');
    const someoneElses = await rows(longer, 'someone else');
    await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(200);
    const left = async (table: string, ids: string[]) => (await q(`SELECT id::text FROM ${table} WHERE id::text = ANY($1)`, [ids])).rows.map((r) => r.id).sort();
    for (const [table, key] of [['core.notifications', 'notice'], ['core.email_deliveries', 'mail'], ['core.outbox', 'job'], ['core.webhook_messages', 'message']] as const) {
      // the rows naming p went (an address at a sentence's end, in capitals too); the ones naming the longer address stayed
      expect([table, await left(table, [theirs[key], someoneElses[key]])]).toEqual([table, [someoneElses[key]]]);
    }
  });

  it('erases the jobs, webhook messages (with their attempts) and e-mails about the person by user id (a sign-in from a new device with its user agent; not the events where they only acted), and their name in the invitation mails they sent, which still go to the invitee', async () => {
    const owner = await registerUser(t, 'idowner');
    const orgId = await createOrg(t, owner, 'Named By Id Ltd');
    const p = await person(t, 'byid'); // no proven address: found by their id alone
    await addMember(t, orgId, p, 'admin');
    const q = (sql: string, params: unknown[]) => t.db.admin.query(sql, params);
    // every event of their personal organization and of orgId is fanned out to a webhook endpoint
    for (const org of [p.personalOrgId, orgId]) await q(`INSERT INTO core.webhook_endpoints (org_id, url, secret) VALUES ($1, 'https://hooks.example.test/id', '{}')`, [org]);
    // a sign-in from a device never seen: session.started_from_unknown_device names them by id, with the user agent
    const agent = `ZeldaPhone/${randomBytes(4).toString('hex')}`;
    await t.http.post('/v1/auth/login').set('User-Agent', agent).send({ email: p.email, password: PASSWORD }).expect(200);
    // they invite someone (member.invited names them as invitedBy; the invitation mail by their name)
    const invitee = uniqueEmail('byid-invitee');
    // (made while their address was verified, as an invitation's sender needs; taken back: still no proven address)
    const invitationId = await beforeVerificationWasNeeded(t, p, async () =>
      (await t.http.post(`/v1/orgs/${orgId}/invitations`).set(p.auth).send({ email: invitee, role: 'viewer' }).expect(201)).body.id as string);
    // another person's job, named by their id: not the person's
    const ownersJob = String((await q(`INSERT INTO core.outbox (org_id, topic, payload) VALUES ($1, 'test.job', $2) RETURNING id`, [orgId, JSON.stringify({ userId: owner.id })])).rows[0].id);
    await t.app.get(OutboxRelay).drain();
    const [signIn] = (await q(`SELECT id, org_id, body::text AS body FROM core.webhook_messages WHERE event_type = 'session.started_from_unknown_device' AND body::text LIKE $1`, [`%${p.id}%`])).rows;
    expect([signIn.org_id, signIn.body.includes(agent)]).toEqual([p.personalOrgId, true]);
    await q(`INSERT INTO core.webhook_attempts (org_id, message_id, endpoint_id, attempted_at, succeeded, status_code, latency_ms)
      SELECT org_id, id, endpoint_id, now(), false, 500, 12 FROM core.webhook_messages WHERE id = $1`, [signIn.id]);
    const mail = async () => (await q(`SELECT to_address, status, data FROM core.email_deliveries WHERE template = 'invitation' AND data->>'invitationId' = $1`, [invitationId])).rows;
    const [sent] = await mail();
    expect(sent).toMatchObject({ to_address: invitee, data: { invitationId, inviterName: p.name, role: 'viewer', orgName: 'Named By Id Ltd' } });
    /** The transport rows (jobs, webhook messages and attempts, e-mails, notices) that hold a needle. */
    const naming = async (needle: string) => (await findEverywhere(t.db.admin, needle)).filter((f) => /^core\.(outbox|webhook_\w+|email_deliveries|notifications)\./.test(f));
    expect(await naming(p.id)).toEqual(expect.arrayContaining([expect.stringMatching(/^core\.outbox\.payload/), expect.stringMatching(/^core\.webhook_messages\.body/)]));
    expect(await naming(agent)).toEqual(expect.arrayContaining([expect.stringMatching(/^core\.outbox\.payload/), expect.stringMatching(/^core\.webhook_messages\.body/)]));
    expect((await q('SELECT count(*)::int AS n FROM core.webhook_attempts WHERE message_id = $1', [signIn.id])).rows).toEqual([{ n: 1 }]);

    await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(200);
    // what still names them is the organization's own event where they only acted (member.invited's invitedBy), kept as
    // the books keep created_by (the erasure's own job deleting their PostHog persons names them sealed); none about them
    // (their userId) is left
    expect(await naming(p.id)).toEqual(['core.outbox.payload (1 rows)', 'core.webhook_messages.body (1 rows)']);
    const kept = await q(`SELECT coalesce(payload->>'type', topic) AS type FROM core.outbox WHERE payload::text LIKE $1
      UNION ALL SELECT event_type FROM core.webhook_messages WHERE body::text LIKE $1 ORDER BY 1`, [`%${p.id}%`]);
    expect(kept.rows).toEqual([{ type: 'member.invited' }, { type: 'member.invited' }]);
    expect(await findEverywhere(t.db.admin, agent)).toEqual([]);
    expect((await q('SELECT count(*)::int AS n FROM core.webhook_attempts WHERE message_id = $1', [signIn.id])).rows).toEqual([{ n: 0 }]);
    // the invitee's mail stays, as it was, without the inviter's name
    expect(await mail()).toEqual([{ ...sent, data: { ...sent.data, inviterName: null } }]);
    expect((await findEverywhere(t.db.admin, p.name)).filter((f) => !RETAINED.has(f.replace(/ \(.*$/, '')))).toEqual([]);
    expect((await q('SELECT count(*)::int AS n FROM core.outbox WHERE id = $1', [ownersJob])).rows).toEqual([{ n: 1 }]);
    const erased = await q(`SELECT after->>'inviterNamesCleared' AS n FROM core.audit_logs WHERE action = 'user.erased' AND entity_id = $1`, [p.id]);
    expect(erased.rows).toEqual([{ n: '1' }]);
  });

  it('an invitation still pending at the inviter\'s erasure is revoked with their admin role (20270210560100): its queued mail goes out to no one, naming no one', async () => {
    const owner = await registerUser(t, 'qowner');
    const orgId = await createOrg(t, owner, 'Queued Mail Ltd');
    const p = await verifyEmailOf(t, await person(t, 'queued')); // an invitation's sender needs a verified e-mail
    await addMember(t, orgId, p, 'admin');
    await t.app.get(OutboxRelay).drain();
    const invitee = uniqueEmail('queued-invitee');
    const invitationId = (await t.http.post(`/v1/orgs/${orgId}/invitations`).set(p.auth).send({ email: invitee, role: 'viewer' }).expect(201)).body.id;
    await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(200);
    await t.app.get(OutboxRelay).drain(); // the invitation's job runs after the erasure
    const { rows } = await t.db.admin.query(`SELECT to_address, data FROM core.email_deliveries WHERE template = 'invitation' AND data->>'invitationId' = $1`, [invitationId]);
    expect(rows).toEqual([]);
    const revoked = await t.db.admin.query(
      `SELECT i.revoked_at IS NOT NULL AS revoked, a.after->>'reason' AS reason FROM core.invitations i
       JOIN core.audit_logs a ON a.org_id = i.org_id AND a.action = 'invitation.revoked' AND a.entity_id = i.id::text WHERE i.id = $1`, [invitationId]);
    expect(revoked.rows).toEqual([{ revoked: true, reason: 'inviter_erased' }]);
  });

  it('an address the person never proved is not theirs: erasing an unverified account or one with an unconfirmed e-mail change leaves another organization\'s invitation, its mails, jobs, notices and audit key alone', async () => {
    const owner = await registerUser(t, 'vowner');
    const orgV = await createOrg(t, owner, 'V Ltd');
    const invitee = uniqueEmail('invitee');
    await t.http.post(`/v1/orgs/${orgV}/invitations`).set(owner.auth).send({ email: invitee, role: 'viewer' }).expect(201);
    await t.app.get(OutboxRelay).drain();
    const q = (sql: string, params: unknown[]) => t.db.admin.query(sql, params);
    await q(`INSERT INTO core.notifications (org_id, user_id, event_id, event_type, category, title, body)
      VALUES ($1, $2, (random() * 1e12)::bigint, 'member.invited', 'organization', 'Invited', $3)`, [orgV, owner.id, `${invitee} was invited.`]);
    await q(`INSERT INTO core.outbox (org_id, topic, payload) VALUES ($1, 'test.job', $2)`, [orgV, JSON.stringify({ email: invitee })]);
    const state = async () => ({
      invitations: (await q('SELECT count(*)::int AS n FROM core.invitations WHERE org_id = $1 AND email = $2', [orgV, invitee])).rows[0].n,
      mails: (await q('SELECT count(*)::int AS n FROM core.email_deliveries WHERE org_id = $1 AND to_address = $2', [orgV, invitee])).rows[0].n,
      notices: (await q('SELECT count(*)::int AS n FROM core.notifications WHERE org_id = $1 AND body LIKE $2', [orgV, `${invitee}%`])).rows[0].n,
      jobs: (await q(`SELECT count(*)::int AS n FROM core.outbox WHERE org_id = $1 AND payload->>'email' = $2`, [orgV, invitee])).rows[0].n,
      keys: (await q('SELECT count(*)::int AS n FROM core.personal_data_keys WHERE subject = $1', [emailSubject(invitee)])).rows[0].n,
    });
    const before = await state();
    expect(before).toEqual({ invitations: 1, mails: 1, notices: expect.any(Number), jobs: expect.any(Number), keys: 1 });
    expect(Math.min(before.notices, before.jobs)).toBeGreaterThan(0); // ours, and the invitation's own
    const auditReads = async () => (await t.http.get(`/v1/orgs/${orgV}/audit-logs?action=invitation.created`).set(owner.auth).expect(200)).body.items[0].after.email;
    expect(await auditReads()).toBe(invitee);

    // (A) someone asks to move their account to the invitee's address (never confirmed), then erases themselves
    const mover = await person(t, 'mover');
    await t.http.post('/v1/auth/email-change').set(mover.auth).send({ newEmail: invitee, password: PASSWORD }).expect(202);
    await t.http.delete('/v1/me').set(mover.auth).send({ password: PASSWORD }).expect(200);
    expect(await state()).toEqual(before);
    // (B) someone registers the invitee's address (signing in needs no verification), then erases themselves
    const squatter = await person(t, 'squatter', invitee);
    await t.http.delete('/v1/me').set(squatter.auth).send({ password: PASSWORD }).expect(200);
    expect(await state()).toEqual(before);
    expect(await auditReads()).toBe(invitee);
    const erased = await q(`SELECT after->'rowsByTable'->>'core.invitations' AS invitations, after->>'keysShredded' AS keys FROM core.audit_logs
      WHERE action = 'user.erased' AND entity_id = $1`, [squatter.id]);
    expect(erased.rows).toEqual([{ invitations: '0', keys: '1' }]); // their own key (user:<id>) only

    // the address's owner, once they proved it, takes all of it with them
    const real = await person(t, 'real', invitee);
    await verifyEmailOf(t, real);
    await t.http.delete('/v1/me').set(real.auth).send({ password: PASSWORD }).expect(200);
    expect(await state()).toEqual({ invitations: 0, mails: 0, notices: 0, jobs: 0, keys: 0 });
    expect(await auditReads()).toBe('[erased]');
  });

  it('the old address of a confirmed e-mail change stays theirs when it was verified then: erasure takes the rows naming it; an unverified old address is not counted', async () => {
    const other = await registerUser(t, 'bystander-ec');
    const orgId = await createOrg(t, other, 'Changed Addresses Ltd');
    const q = (sql: string, params: unknown[]) => t.db.admin.query(sql, params);
    /** A mail to the address and a notice naming it, in another person's organization. */
    const rowsNaming = async (address: string) => [
      (await q(`INSERT INTO core.email_deliveries (org_id, to_address, template, category, data, status)
        VALUES ($1, $2, 'invitation', 'organization', $3, 'queued') RETURNING id`, [orgId, address, JSON.stringify({ email: address })])).rows[0].id,
      (await q(`INSERT INTO core.notifications (org_id, user_id, event_id, event_type, category, title, body)
        VALUES ($1, $2, (random() * 1e12)::bigint, 'member.invited', 'organization', 'Invited', $3) RETURNING id`, [orgId, other.id, `${address} was invited.`])).rows[0].id,
    ] as string[];
    const left = async (ids: string[]) => (await q(`SELECT id::text FROM core.email_deliveries WHERE id::text = ANY($1)
      UNION ALL SELECT id::text FROM core.notifications WHERE id::text = ANY($1)`, [ids])).rows.map((r) => r.id).sort();
    /** Moves the account to a new address through the API, the link's token set here (no mail job runs in this file). */
    const changeEmail = async (p: TestUser) => {
      const newEmail = uniqueEmail('moved');
      await t.http.post('/v1/auth/email-change').set(p.auth).send({ newEmail, password: PASSWORD }).expect(202);
      const token = randomBytes(32).toString('base64url');
      await q('UPDATE core.email_change_requests SET token_hash = $2 WHERE user_id = $1 AND confirmed_at IS NULL', [p.id, hashToken(token)]);
      expect((await t.http.post('/v1/auth/email-change/confirm').send({ token }).expect(200)).body).toEqual({ email: newEmail });
      return newEmail;
    };

    const verified = await verifyEmailOf(t, await person(t, 'ec-verified'));
    const unverified = await person(t, 'ec-unverified');
    // members of it: the erasure looks for the notices naming them in their organizations only (an e-mail to their address, anywhere)
    for (const u of [verified, unverified]) await addMember(t, orgId, u, 'member');
    const verifiedRows = await rowsNaming(verified.email);
    const unverifiedRows = await rowsNaming(unverified.email);
    await changeEmail(verified);
    await changeEmail(unverified);
    const recorded = await q(`SELECT user_id, lower(old_email) AS old_email, old_email_verified FROM core.email_change_requests
      WHERE user_id = ANY($1) AND confirmed_at IS NOT NULL ORDER BY old_email_verified`, [[verified.id, unverified.id]]);
    expect(recorded.rows).toEqual([
      { user_id: unverified.id, old_email: unverified.email.toLowerCase(), old_email_verified: false },
      { user_id: verified.id, old_email: verified.email.toLowerCase(), old_email_verified: true },
    ]);

    await t.http.delete('/v1/me').set(verified.auth).send({ password: PASSWORD }).expect(200);
    expect(await left(verifiedRows)).toEqual([]);
    await t.http.delete('/v1/me').set(unverified.auth).send({ password: PASSWORD }).expect(200);
    expect(await left(unverifiedRows)).toEqual([...unverifiedRows].sort());
  });

  it('cancels their AI runs still running (theirs, and another member\'s naming them), audited as a cancel: a call answered meanwhile adds its cost, not its content', async () => {
    const owner = await registerUser(t, 'runs-owner');
    const orgId = await createOrg(t, owner, 'Running Runs Ltd');
    await onPlan(t, orgId, 'professional');
    const p = await verifyEmailOf(t, await person(t, 'running'));
    await addMember(t, orgId, p, 'member');
    const agentId = (await t.http.post(agentsUrl(orgId)).set(owner.auth).send({ name: 'Holder', type: 'assistant', modelId: 'gpt-4o-mini' }).expect(201)).body.id;
    const q = (sql: string, params: unknown[]) => t.db.admin.query(sql, params);
    /** An interactive run whose answer (naming p) the provider has given and the proxy holds; answers its id and release. */
    const heldRun = async (who: TestUser, prompt: string) => {
      llm.enqueue({ kind: 'text', content: `Noted for ${p.email}.`, usage: { prompt: 30, completion: 6 } });
      const hold = proxy.holdNext();
      const response = t.http.post(agentsUrl(orgId, `/${agentId}/runs`)).set(who.auth).send({ messages: [{ role: 'user', content: prompt }] }).then((r) => r);
      await hold.held;
      const { rows: [{ id }] } = await q(`SELECT id FROM ai.runs WHERE agent_id = $1 AND status = 'running' ORDER BY started_at DESC LIMIT 1`, [agentId]);
      return { id: id as string, release: hold.release, response };
    };
    const own = await heldRun(p, 'Summarize my month.');
    const others = await heldRun(owner, `Welcome ${p.email} to the team.`);
    // a failed run of theirs whose error (and its step's) quotes the input: an error message is content too
    const { rows: [{ id: failed }] } = await q(`INSERT INTO ai.runs (org_id, agent_id, model_id, started_by, trigger, input, started_at)
      VALUES ($1, $2, 'gpt-4o-mini', $3, 'interactive', $4, now()) RETURNING id`, [orgId, agentId, p.id, JSON.stringify({ messages: [{ role: 'user', content: 'Look up x' }] })]);
    await q(`INSERT INTO ai.run_steps (org_id, run_id, step_no, kind, name, status, error_class, error_message, started_at, ended_at, latency_ms, detail)
      VALUES ($1, $2, 1, 'tool_call', 'query_semantic', 'failed', 'tool_error', $3, now(), now(), 0, '{}')`, [orgId, failed, `invalid input syntax for type uuid: "${p.email}"`]);
    await q(`UPDATE ai.runs SET status = 'failed', stop_reason = 'error', error_class = 'tool_error', error_message = $2, finished_at = now() WHERE id = $1`,
      [failed, `the tool failed on "${p.email}"`]);

    const erased = await Promise.resolve(t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD })).finally(() => [own, others].forEach((r) => r.release()));
    expect(erased.status).toBe(200);
    await Promise.all([own.response, others.response]);
    const stored = async (id: string) => (await q(`SELECT r.status, r.error_class, r.input::text AS input, r.output, r.error_message, r.steps, r.cost > 0 AS charged,
      (SELECT json_agg(json_build_object('detail', s.detail, 'error', s.error_message) ORDER BY s.step_no) FROM ai.run_steps s WHERE s.org_id = r.org_id AND s.run_id = r.id) AS trace
      FROM ai.runs r WHERE r.id = $1`, [id])).rows[0];
    // cancelled by the erasure; no content, nor the cancel's message (an error message goes with the erasure)
    const cancelled = { status: 'cancelled', error_class: 'cancelled', input: '{}', output: null, error_message: null };
    // the starter's own execution cannot write as them any more (their sessions and membership ended: 401): its answered
    // call is stored as the runs' service, with its cost, without the answer, as the owner's below
    expect(await stored(own.id)).toEqual({ ...cancelled, steps: 1, charged: true, trace: [{ detail: {}, error: null }] });
    // the owner's run naming them: its answered call is stored with its cost, without the answer
    expect(await stored(others.id)).toEqual({ ...cancelled, steps: 1, charged: true, trace: [{ detail: {}, error: null }] });
    expect(await stored(failed)).toMatchObject({ status: 'failed', error_class: 'tool_error', input: '{}', error_message: null, trace: [{ detail: {}, error: null }] });
    expect((await findEverywhere(t.db.admin, p.email)).filter((f) => f.startsWith('ai.'))).toEqual([]);
    // each cancel audited as the API's is (the erased person its actor), the erasure with the count
    const audits = await q(`SELECT entity_id, actor_id, before, after->>'status' AS status FROM core.audit_logs WHERE org_id = $1 AND action = 'ai.run_cancelled' ORDER BY entity_id`, [orgId]);
    expect(audits.rows).toEqual([own.id, others.id].sort().map((id) => ({ entity_id: id, actor_id: p.id, before: { status: 'running' }, status: 'cancelled' })));
    const erasure = await q(`SELECT after->>'runsCancelled' AS n FROM core.audit_logs WHERE action = 'user.erased' AND entity_id = $1`, [p.id]);
    expect([erasure.rows, erased.body.userId]).toEqual([[{ n: '2' }], p.id]);
  });

  it('emits no run event into an organization the erasure deletes: its runs are cancelled and audited, none owes an event to the sweep; a kept organization gets its event', async () => {
    const owner = await registerUser(t, 'kept-owner');
    const p = await verifyEmailOf(t, await person(t, 'solo-runs'));
    const solo = await createOrg(t, p, 'Solo Runs Ltd');
    const kept = await createOrg(t, owner, 'Kept Runs Ltd');
    await addMember(t, kept, p, 'member');
    const q = (sql: string, params: unknown[]) => t.db.admin.query(sql, params);
    /** A run of p's still running in `orgId`; `callUntil`: an LLM call of it in flight (in another process) until then. */
    const running = async (orgId: string, callUntil: Date | null = null, startedBy: string | null = p.id) => {
      const agentId = (await q(`INSERT INTO ai.agents (org_id, name, type, model_id, created_by) VALUES ($1, 'Runner ' || gen_random_uuid(), 'assistant', 'gpt-4o-mini', $2) RETURNING id`, [orgId, p.id])).rows[0].id;
      const { rows: [{ id }] } = await q(`INSERT INTO ai.runs (org_id, agent_id, model_id, started_by, trigger, input, started_at, call_in_flight_until)
        VALUES ($1, $2, 'gpt-4o-mini', $3, 'interactive', '{"messages":[]}', now(), $4) RETURNING id`, [orgId, agentId, startedBy, callUntil]);
      return id as string;
    };
    const soloRun = await running(solo);
    const soloMidCall = await running(solo, new Date(clock.now() + 600_000));
    const keptRun = await running(kept);
    // a run of the organization that goes that names nobody, started by one of its API keys: its deletion stops it too
    const keyRun = await running(solo, new Date(clock.now() + 600_000), null);
    // a finished one of its API keys whose retrieval step quotes the knowledge base that goes with the organization
    const keyDone = await running(solo, null, null);
    await q(`INSERT INTO ai.run_steps (org_id, run_id, step_no, kind, name, status, started_at, ended_at, latency_ms, detail)
      VALUES ($1, $2, 1, 'retrieval', 'knowledge_search', 'succeeded', now(), now(), 0, $3)`,
    [solo, keyDone, JSON.stringify({ results: [{ title: 'Solo payroll notes', text: 'Salary of the founder: 4200' }] })]);
    await q(`UPDATE ai.runs SET status = 'succeeded', stop_reason = 'answer', output = 'The founder earns 4200.', finished_at = now() WHERE id = $1`, [keyDone]);

    await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(200);
    // every run of the organization that goes loses its content, whoever started it; the running key run's too
    const content = await q(`SELECT r.id, r.input::text AS input, r.output, (SELECT json_agg(s.detail) FROM ai.run_steps s WHERE s.org_id = r.org_id AND s.run_id = r.id) AS details
      FROM ai.runs r WHERE r.id = ANY($1::uuid[]) ORDER BY r.id`, [[keyRun, keyDone]]);
    expect(content.rows).toEqual([{ id: keyRun, input: '{}', output: null, details: null }, { id: keyDone, input: '{}', output: null, details: [{}] }]
      .sort((a, b) => a.id.localeCompare(b.id)));
    const runIds = [soloRun, soloMidCall, keptRun, keyRun];
    const runs = await q(`SELECT id, org_id, status, call_in_flight_until IS NOT NULL AS owes_event FROM ai.runs WHERE id = ANY($1::uuid[]) ORDER BY id`, [runIds]);
    expect(runs.rows).toEqual([
      { id: soloRun, org_id: solo, status: 'cancelled', owes_event: false },
      { id: soloMidCall, org_id: solo, status: 'cancelled', owes_event: false },
      { id: keptRun, org_id: kept, status: 'cancelled', owes_event: false },
      { id: keyRun, org_id: solo, status: 'cancelled', owes_event: false },
    ].sort((a, b) => a.id.localeCompare(b.id)));
    // each cancel audited where its run is (the deleted organization's log stays, as its books do); those of the
    // organization that goes, the person's too, as its deletion audits them
    const audits = await q(`SELECT org_id, entity_id, after->>'reason' AS reason FROM core.audit_logs WHERE action = 'ai.run_cancelled' AND entity_id = ANY($1::text[]) ORDER BY entity_id`, [runIds]);
    expect(audits.rows).toEqual([{ org_id: solo, entity_id: soloRun, reason: 'organization_deleted' }, { org_id: solo, entity_id: soloMidCall, reason: 'organization_deleted' },
      { org_id: kept, entity_id: keptRun, reason: null }, { org_id: solo, entity_id: keyRun, reason: 'organization_deleted' }]
      .sort((a, b) => a.entity_id.localeCompare(b.entity_id)));
    const counted = await q(`SELECT after->>'runsCancelled' AS n FROM core.audit_logs WHERE action = 'user.erased' AND entity_id = $1`, [p.id]);
    expect(counted.rows).toEqual([{ n: '4' }]);
    // the sweep of owed events (past every mark) finds none of them
    const swept = await t.app.get(RunsService).emitOwedCancelEvents(new Date(clock.now() + 86_400_000));
    expect(swept.filter((id) => [soloMidCall, keyRun].includes(id))).toEqual([]);
    const events = await q(`SELECT org_id, payload->>'type' AS type, payload->'payload'->>'runId' AS run_id FROM core.outbox
      WHERE org_id = ANY($1::uuid[]) AND payload->>'type' IN ('agent.run.failed', 'organization.deleted') ORDER BY 2, 1`, [[solo, kept]]);
    expect(events.rows).toEqual([{ org_id: kept, type: 'agent.run.failed', run_id: keptRun }, { org_id: solo, type: 'organization.deleted', run_id: null }]);
  });

  it('looks for the runs naming the person in their organizations only, by index: those they left and those that invited them included', async () => {
    const owner = await registerUser(t, 'orgs-owner');
    const p = await verifyEmailOf(t, await person(t, 'orgs'));
    const q = (sql: string, params: unknown[]) => t.db.admin.query(sql, params);
    /** A finished run of `orgId` naming p's address, started by `by` (an agent of its own). */
    const runNaming = async (orgId: string, by: TestUser) => {
      const agentId = (await q(`INSERT INTO ai.agents (org_id, name, type, model_id, created_by) VALUES ($1, 'Scribe', 'assistant', 'gpt-4o-mini', $2) RETURNING id`, [orgId, owner.id])).rows[0].id;
      const { rows: [{ id }] } = await q(`INSERT INTO ai.runs (org_id, agent_id, model_id, started_by, trigger, input, started_at)
        VALUES ($1, $2, 'gpt-4o-mini', $3, 'interactive', $4, now()) RETURNING id`, [orgId, agentId, by.id, JSON.stringify({ messages: [{ role: 'user', content: `Mail ${p.email}` }] })]);
      await q(`UPDATE ai.runs SET status = 'succeeded', stop_reason = 'answer', output = 'done', finished_at = now() WHERE id = $1`, [id]);
      return id as string;
    };
    // an organization they left (its run started by them), one that invited them, one they never knew
    const left = await createOrg(t, owner, 'Left Ltd');
    await addMember(t, left, p, 'member');
    const leftRun = await runNaming(left, p);
    await t.http.delete(`/v1/orgs/${left}/members/me`).set(p.auth).expect(204);
    const inviting = await createOrg(t, owner, 'Inviting Ltd');
    await t.http.post(`/v1/orgs/${inviting}/invitations`).set(owner.auth).send({ email: p.email, role: 'viewer' }).expect(201);
    const invitedRun = await runNaming(inviting, owner);
    const stranger = await createOrg(t, owner, 'Stranger Ltd');
    const strangerRun = await runNaming(stranger, owner);

    // the erasure's statement over the runs (as the catalog builds it), planned with sequential scans priced out: the
    // organizations bound it to an index, not every organization's runs
    const runs = PERSONAL_DATA_CATALOG.find((x) => x.table === 'ai.runs')!;
    const where = locate(runs, { userId: p.id, emails: [p.email], orgIds: [left, inviting, p.personalOrgId], erasedOrgIds: [p.personalOrgId] })!;
    const client = await t.db.admin.connect();
    try {
      await client.query('BEGIN');
      await client.query('SET LOCAL enable_seqscan = off');
      const { rows } = await client.query(`EXPLAIN (COSTS OFF) SELECT x.id FROM ai.runs x WHERE ${where.sql}`, where.values);
      const plan = rows.map((r: Record<string, string>) => r['QUERY PLAN']).join('\n');
      expect(plan).not.toMatch(/Seq Scan/);
      expect(plan).toMatch(/Index Scan.* on runs_agent_idx/);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }

    await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(200);
    const inputs = await q(`SELECT id, input::text AS input FROM ai.runs WHERE id = ANY($1::uuid[])`, [[leftRun, invitedRun, strangerRun]]);
    const erasedOnes = inputs.rows.filter((r) => r.input === '{}').map((r) => r.id).sort();
    // a run of an organization they never belonged to nor were invited to is that organization's record: kept
    expect(erasedOnes).toEqual([leftRun, invitedRun].sort());
  });

  it('a service key cannot erase anybody', async () => {
    const res = await t.http.delete('/v1/me').set({ Authorization: `Bearer ${serviceKey(t)}` }).send({ password: PASSWORD });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('privacy.user_required');
  });

  it('erases every declared personal field: the scan of every text and JSON column finds neither e-mail nor name; the books of the organization they belonged to are unchanged; the audit log still reads', async () => {
    const owner = await registerUser(t, 'acmeowner');
    const acme = await createOrg(t, owner, 'Acme');
    const acc = await startBooks(t, acme, owner);
    // an invitation to their address before they had an account: its e-mail's delivery row names no user
    const pEmail = uniqueEmail('erased');
    const early = await createOrg(t, owner, 'Early');
    await t.http.post(`/v1/orgs/${early}/invitations`).set(owner.auth).send({ email: pEmail, role: 'viewer' }).expect(201);
    await t.app.get(OutboxRelay).drain();
    const earlyMails = await t.db.admin.query('SELECT user_id FROM core.email_deliveries WHERE to_address = $1', [pEmail]);
    expect(earlyMails.rows).toEqual([{ user_id: null }]);
    const p = await person(t, 'erased', pEmail);
    await verifyEmailOf(t, p); // a proven address: what names it goes too
    const bystander = await person(t, 'bystander');
    await addMember(t, acme, p, 'accountant');
    await addMember(t, acme, bystander, 'viewer');
    // a journal entry the person posted, an invitation to their e-mail, a solo business organization of theirs
    await t.http.post(ledgerUrl(acme, 'journal-entries')).set(p.auth).send({ date: '2026-03-01', memo: 'Office rent', lines: [
      { accountId: acc['5200'], debit: '500.00' }, { accountId: acc['1100'], credit: '500.00' }] }).expect(201);
    // Other runs an agent on member.invited: the event's payload (the invitee's e-mail) is pasted into the run's input,
    // and the model's answer (its output, its step's detail) repeats it
    const other = await createOrg(t, owner, 'Other');
    await onPlan(t, other, 'professional');
    const agentId = (await t.http.post(agentsUrl(other)).set(owner.auth).send({ name: 'Greeter', type: 'accountant', modelId: 'gpt-4o-mini' }).expect(201)).body.id;
    await t.http.post(agentsUrl(other, `/${agentId}/triggers`)).set(owner.auth).send({ kind: 'event', eventType: 'member.invited', prompt: 'Greet the invitee.' }).expect(201);
    llm.enqueue({ kind: 'text', content: `Welcome aboard, ${p.email}!`, usage: { prompt: 40, completion: 8 } });
    await t.http.post(`/v1/orgs/${other}/invitations`).set(owner.auth).send({ email: p.email, role: 'viewer' }).expect(201);
    await t.app.get(OutboxRelay).drain(); // the event starts the run
    await t.app.get(OutboxRelay).drain(); // the run's job calls the model
    const runs = async () => (await t.db.admin.query(`SELECT r.status, r.input::text AS input, r.output, r.cost::text AS cost, r.steps,
      (SELECT json_agg(s.detail::text) FROM ai.run_steps s WHERE s.org_id = r.org_id AND s.run_id = r.id) AS details
      FROM ai.runs r WHERE r.org_id = $1`, [other])).rows;
    const [run] = await runs();
    expect(run).toMatchObject({ status: 'succeeded', output: `Welcome aboard, ${p.email}!`, steps: 1 });
    expect([run.input, run.details[0]].map((v: string) => v.includes(p.email))).toEqual([true, true]);
    // their provider page (a WhatsApp number, a slug) and their personal organization renamed: both audited
    const phone = `+9715${String(randomBytes(4).readUInt32BE() % 1e8).padStart(8, '0')}`;
    const slug = `zelda-${randomBytes(4).toString('hex')}`;
    await t.http.patch('/v1/me/provider').set(p.auth)
      .send({ publicSlug: slug, settings: { whatsapp: { enabled: true, phoneE164: phone, messageTemplate: 'Book {date} at {time}?' } } }).expect(200);
    await t.http.patch(`/v1/orgs/${p.personalOrgId}`).set(p.auth).send({ name: `${p.name} Consulting` }).expect(200);
    const solo = await createOrg(t, p, 'Solo Trading');
    const second = await t.http.post('/v1/auth/login').send({ email: p.email, password: PASSWORD }).expect(200);

    const reports = async () => Promise.all(['reports/trial-balance', 'reports/profit-and-loss?from=2026-01-01&to=2026-12-31', 'reports/balance-sheet?asOf=2026-12-31',
      'journal-entries'].map(async (path) => (await t.http.get(ledgerUrl(acme, path)).set(owner.auth).expect(200)).body));
    const before = await reports();
    const auditBefore = (await t.http.get(`/v1/orgs/${acme}/audit-logs`).set(owner.auth).expect(200)).body;
    // the invitation to their e-mail is audited in Other: the API reads the e-mail, the row holds it sealed
    const invitationAudit = async () => (await t.http.get(`/v1/orgs/${other}/audit-logs?action=invitation.created`).set(owner.auth).expect(200)).body.items[0];
    expect(await invitationAudit()).toMatchObject({ after: { email: p.email, role: 'viewer' } });
    const rawAudit = async () => (await t.db.admin.query(`SELECT id, before, after FROM core.audit_logs WHERE org_id = ANY($1::uuid[]) ORDER BY id`, [[other, acme, p.personalOrgId]])).rows;
    const rawBefore = await rawAudit();
    for (const needle of [p.email, p.name, phone, slug]) expect([needle, JSON.stringify(rawBefore).includes(needle)]).toEqual([needle, false]);

    clock.advance(600_000); // the token is old: the password re-authenticates
    const res = await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(200);
    expect(res.body).toMatchObject({ userId: p.id, leftOrganizationIds: [acme], sessionsRevoked: 2 });
    expect([...res.body.deletedOrganizationIds].sort()).toEqual([p.personalOrgId, solo].sort());

    // the user row stays, without personal data; signing in and both sessions' tokens are refused
    const user = await t.db.admin.query('SELECT email, name, image FROM core."User" WHERE id = $1', [p.id]);
    expect(user.rows).toEqual([{ email: `erased+${p.id}@invalid`, name: null, image: null }]);
    await t.http.post('/v1/auth/login').send({ email: p.email, password: PASSWORD }).expect(401);
    await t.http.get('/v1/orgs').set(p.auth).expect(401);
    await t.http.post('/v1/auth/refresh').send({ refreshToken: second.body.refreshToken }).expect(401);
    const memberships = await t.db.admin.query('SELECT org_id FROM core.memberships m JOIN core.organizations o ON o.id = m.org_id WHERE m.user_id = $1 AND o.deleted_at IS NULL', [p.id]);
    expect(memberships.rows).toEqual([]);
    const orgs = await t.db.admin.query('SELECT id, name, deleted_at IS NOT NULL AS deleted FROM core.organizations WHERE id = ANY($1::uuid[]) ORDER BY name', [[p.personalOrgId, solo]]);
    expect(orgs.rows).toEqual(expect.arrayContaining([{ id: p.personalOrgId, name: 'Erased personal organization', deleted: true }, { id: solo, name: 'Solo Trading', deleted: true }]));

    // the scan: every text and JSON column of every table in our schemas. Their PostHog deletion's job names the ids their
    // events were forwarded under, their address in `org:<orgId>:user:<e-mail>` among them, sealed (docs/privacy.md)
    for (const needle of [p.email, p.name, phone, slug]) {
      const found = await findEverywhere(t.db.admin, needle);
      expect(found.filter((f) => !RETAINED.has(f.replace(/ \(.*$/, '')))).toEqual([]);
    }
    const posthogJobs = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.outbox WHERE topic = 'analytics.posthog_erasure' AND org_id = $1 AND payload ? '$sealed'`, [p.personalOrgId]);
    expect(posthogJobs.rows).toEqual([{ n: 1 }]);
    // nothing of the bystander was touched
    expect(await findEverywhere(t.db.admin, bystander.email)).toEqual(expect.arrayContaining([expect.stringMatching(/^core."User".email/)]));

    // the run naming them keeps its status, cost and step; its content is gone
    expect(await runs()).toEqual([{ ...run, input: '{}', output: null, details: ['{}'] }]);

    // the books they belonged to are unchanged, the entry they posted keeps its author id
    expect(await reports()).toEqual(before);
    const entries = await t.db.admin.query('SELECT created_by FROM finance.journal_entries WHERE org_id = $1', [acme]);
    expect(entries.rows).toEqual([{ created_by: p.id }]);

    // crypto-shredding: no audit row was updated, and the sealed e-mail now reads as erased
    expect((await rawAudit()).slice(0, rawBefore.length)).toEqual(rawBefore);
    expect(await invitationAudit()).toMatchObject({ after: { email: '[erased]', role: 'viewer' } });
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM core.personal_data_keys WHERE subject = $1`, [`user:${p.id}`])).rows).toEqual([{ n: 0 }]);

    // the audit log still reads; the erasure is audited with ids and counts only
    const auditAfter = (await t.http.get(`/v1/orgs/${acme}/audit-logs`).set(owner.auth).expect(200)).body;
    expect(auditAfter.items.slice(-auditBefore.items.length)).toEqual(auditBefore.items);
    expect(auditAfter.items[0]).toMatchObject({ action: 'membership.erased', entityId: p.id });
    const erased = await t.db.admin.query(`SELECT after, ip FROM core.audit_logs WHERE action IN ('user.erased', 'membership.erased') AND entity_id = $1`, [p.id]);
    expect(erased.rows.map((r) => r.ip)).toEqual([null, null]);
    expect(JSON.stringify(erased.rows[0].after)).not.toMatch(new RegExp(`${p.email}|${p.name}`));

    // a second erasure finds nobody
    await t.http.delete('/v1/me').set(bystander.auth).send({ password: PASSWORD }).expect(200);
  });
});

/** The Supabase service-role key: role service_role, signed with the project's JWT secret. */
function serviceKey(t: TestApp): string {
  return jwt.sign({ role: 'service_role', iss: 'supabase' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 600 });
}

describe('DELETE /v1/me: a refresh is no sign-in', () => {
  // its own app and clock, which only this test moves (with Date): it holds whichever test of the file ran before
  let t: TestApp;
  const clock = new ManualClock();

  beforeAll(async () => {
    t = await createTestApp({ AUTH_COOKIES: 'false', REDIS_URL: '' }, { clock });
  });
  afterAll(() => t.close());

  it('a refresh is no sign-in: a token refreshed after the window, without the password, is refused and nothing changes', async () => {
    // the app's clock must be the wall clock (this app's, which no other test moves): else a check on the token's iat would refuse too
    expect(Math.abs(clock.now() - Date.now())).toBeLessThan(1000);
    const p = await person(t, 'refreshed');
    // 301 s pass for the whole process (the app's clock, and Date, which a token's iat is read from), timers run as ever
    jest.useFakeTimers({ now: Date.now() + 301_000, advanceTimers: true, doNotFake: ['hrtime', 'nextTick', 'performance', 'queueMicrotask',
      'setImmediate', 'clearImmediate', 'setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] });
    try {
      const refreshed = await t.http.post('/v1/auth/refresh').send({ refreshToken: p.refreshToken }).expect(200);
      const res = await t.http.delete('/v1/me').set({ Authorization: `Bearer ${refreshed.body.accessToken}` }).send({}).expect(403);
      expect(res.body.error.code).toBe('privacy.recent_sign_in_required');
      const { rows } = await t.db.admin.query('SELECT email, name FROM core."User" WHERE id = $1', [p.id]);
      expect(rows).toEqual([{ email: p.email, name: p.name }]);
      expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.sessions WHERE user_id = $1 AND revoked_at IS NULL', [p.id])).rows).toEqual([{ n: 1 }]);
      // signing in again re-authenticates
      const again = await t.http.post('/v1/auth/login').send({ email: p.email, password: PASSWORD }).expect(200);
      await t.http.delete('/v1/me').set({ Authorization: `Bearer ${again.body.accessToken}` }).send({}).expect(200);
    } finally {
      jest.useRealTimers();
    }
  });
});
