import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, orgWithRoles, registerUser as registerUnverified, verifyEmailOf, type TestUser, onEnterprisePlan } from '../support/factories.js';
import { JobRegistry } from '../../src/platform/queue/jobs.js';
import { InvitationPurge } from '../../src/modules/organizations/invitation-purge.service.js';
import { MAIL_WITHHELD } from '../../src/modules/organizations/invitations.service.js';
import { notificationRepository } from '../../src/modules/notifications/notification.repository.js';

/** Invitees here accept with the admin's token, which needs a verified e-mail (see the test of that rule below). */
const registerUser = async (t: TestApp, prefix: string) => verifyEmailOf(t, await registerUnverified(t, prefix));

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

describe('invitations', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Inviting Co');
    await onEnterprisePlan(t, orgId);
  });
  afterAll(() => t.close());

  const invite = (email: string, role = 'member', who: TestUser = owner, org = orgId) =>
    t.http.post(`/v1/orgs/${org}/invitations`).set(who.auth).send({ email, role });
  const accept = (who: TestUser, token: string, org = orgId) => t.http.post('/v1/invitations/accept').set(who.auth).send({ orgId: org, token });

  it('creates an invitation whose token is shown once and stored only as its SHA-256; audited; job without the token', async () => {
    const grace = await registerUser(t, 'grace');
    const res = await invite(grace.email.toUpperCase(), 'accountant').expect(201);
    expect(res.body).toMatchObject({ orgId, email: grace.email, role: 'accountant', status: 'pending', invitedBy: owner.id, token: expect.any(String), mail: 'queued' });
    const token: string = res.body.token;
    expect(token.length).toBeGreaterThanOrEqual(40);
    const ttlDays = (Date.parse(res.body.expiresAt) - Date.parse(res.body.createdAt)) / 86_400_000;
    expect(ttlDays).toBeCloseTo(t.config.invitationTtlDays, 3);

    const row = (await t.db.admin.query('SELECT * FROM core.invitations WHERE org_id = $1 AND id = $2', [orgId, res.body.id])).rows[0];
    expect(row.token_hash).toBe(sha256(token));
    expect(JSON.stringify(row)).not.toContain(token);

    const list = await t.http.get(`/v1/orgs/${orgId}/invitations`).set(owner.auth).expect(200);
    expect(JSON.stringify(list.body)).not.toContain(token);
    expect(list.body.items[0]).not.toHaveProperty('token');

    const audit = (await t.db.admin.query(`SELECT * FROM core.audit_logs WHERE org_id = $1 AND action = 'invitation.created'`, [orgId])).rows;
    expect(audit).toHaveLength(1);
    expect(JSON.stringify(audit)).not.toContain(token);
    expect(JSON.stringify(audit)).not.toContain(row.token_hash);

    const jobs = (await t.db.admin.query(`SELECT payload FROM core.outbox WHERE org_id = $1 AND topic = 'invitation.created'`, [orgId])).rows;
    expect(jobs).toEqual([{ payload: expect.objectContaining({ invitationId: res.body.id, email: grace.email, role: 'accountant' }) }]);
    expect(JSON.stringify(jobs)).not.toContain(token);
    expect(JSON.stringify(jobs)).not.toContain(row.token_hash);

    // the registered handler queues the invitation e-mail (notifications): no token in the delivery, the job or a log line
    const log = jest.spyOn(Logger.prototype, 'log');
    try {
      await t.app.get(JobRegistry).run({ id: '1', orgId, topic: 'invitation.created', payload: jobs[0].payload });
      const deliveries = (await t.db.admin.query(`SELECT to_address, template, status, data FROM core.email_deliveries WHERE org_id = $1`, [orgId])).rows;
      expect(deliveries).toEqual([expect.objectContaining({ to_address: grace.email, template: 'invitation', status: 'queued' })]);
      expect(deliveries[0].data).toMatchObject({ invitationId: res.body.id, role: 'accountant' });
      expect(JSON.stringify(deliveries)).not.toContain(token);
      const lines = log.mock.calls.map((c) => JSON.stringify(c));
      expect(lines.join('\n')).not.toContain(token);
    } finally {
      log.mockRestore();
    }
  });

  it('refuses the admin\'s token to an account whose e-mail is not verified (403 invitation.email_unverified), until it is', async () => {
    const una = await registerUnverified(t, 'una');
    const org = await createOrg(t, owner, 'Verifying Co');
    await onEnterprisePlan(t, org);
    const { body } = await invite(una.email, 'member', owner, org).expect(201);
    const refused = await accept(una, body.token, org).expect(403);
    expect(refused.body.error.code).toBe('invitation.email_unverified');
    expect((await t.db.admin.query('SELECT accepted_at FROM core.invitations WHERE id = $1', [body.id])).rows).toEqual([{ accepted_at: null }]);
    await verifyEmailOf(t, una);
    await accept(una, body.token, org).expect(200);
  });

  it('lets the invitee with the matching email accept once; the membership has the invited role', async () => {
    const ada = await registerUser(t, 'ada');
    const { body } = await invite(ada.email, 'viewer').expect(201);
    const res = await accept(ada, body.token).expect(200);
    expect(res.body).toEqual({ orgId, userId: ada.id, role: 'viewer' });
    await t.http.get(`/v1/orgs/${orgId}`).set(ada.auth).expect(200);
    const again = await accept(ada, body.token).expect(404);
    expect(again.body.error.code).toBe('invitation.not_found');
    const audit = (await t.db.admin.query(`SELECT actor_id, entity_id FROM core.audit_logs WHERE org_id = $1 AND action = 'invitation.accepted'`, [orgId])).rows;
    expect(audit).toEqual([{ actor_id: ada.id, entity_id: ada.id }]);
    const status = await t.http.get(`/v1/orgs/${orgId}/invitations?status=accepted`).set(owner.auth).expect(200);
    expect(status.body.items.map((i: any) => i.id)).toContain(body.id);
  });

  it('refuses another email (403), an unknown token (404), a member (409), an expired or revoked invitation (404)', async () => {
    const bob = await registerUser(t, 'bob');
    const eve = await registerUser(t, 'eve');
    const { body } = await invite(bob.email).expect(201);
    const wrong = await accept(eve, body.token).expect(403);
    expect(wrong.body.error.code).toBe('invitation.email_mismatch');
    await accept(bob, 'x'.repeat(43)).expect(404);
    await accept(bob, body.token, bob.personalOrgId).expect(404);

    await addMember(t, orgId, bob, 'member');
    const member = await accept(bob, body.token).expect(409);
    expect(member.body.error.code).toBe('invitation.already_member');
    // nothing half-written: the invitation is still pending
    expect((await t.db.admin.query('SELECT accepted_at FROM core.invitations WHERE id = $1', [body.id])).rows[0].accepted_at).toBeNull();

    const carol = await registerUser(t, 'carol');
    const expired = await invite(carol.email).expect(201);
    await t.db.admin.query(`UPDATE core.invitations SET expires_at = now() - interval '1 minute' WHERE id = $1`, [expired.body.id]);
    await accept(carol, expired.body.token).expect(404);
    const list = await t.http.get(`/v1/orgs/${orgId}/invitations?status=expired`).set(owner.auth).expect(200);
    expect(list.body.items.map((i: any) => i.id)).toEqual([expired.body.id]);

    // an expired invitation does not block a new one to the same address
    const renewed = await invite(carol.email).expect(201);
    const replaced = await t.db.admin.query(`SELECT entity_id FROM core.audit_logs WHERE org_id = $1 AND action = 'invitation.expired_replaced'`, [orgId]);
    expect(replaced.rows).toEqual([{ entity_id: expired.body.id }]);
    await t.http.delete(`/v1/orgs/${orgId}/invitations/${renewed.body.id}`).set(owner.auth).expect(204);
    await accept(carol, renewed.body.token).expect(404);
    const twice = await t.http.delete(`/v1/orgs/${orgId}/invitations/${renewed.body.id}`).set(owner.auth).expect(409);
    expect(twice.body.error.code).toBe('invitation.not_pending');
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'invitation.revoked'`, [orgId])).rows[0].n).toBe(1);
  });

  it('refuses to revoke an expired invitation: 409 invitation.not_pending saying it expired, no audit row, still expired', async () => {
    const frank = await registerUser(t, 'frank');
    const { body } = await invite(frank.email).expect(201);
    const expiresAt = (await t.db.admin.query(
      `UPDATE core.invitations SET expires_at = now() - interval '1 minute' WHERE id = $1 RETURNING expires_at`, [body.id])).rows[0].expires_at as Date;
    const res = await t.http.delete(`/v1/orgs/${orgId}/invitations/${body.id}`).set(owner.auth).expect(409);
    expect(res.body.error).toMatchObject({
      code: 'invitation.not_pending',
      message: `invitation ${body.id} expired at ${expiresAt.toISOString()}: it can no longer be accepted, so there is nothing to revoke`,
    });
    const { rows } = await t.db.admin.query('SELECT revoked_at, accepted_at FROM core.invitations WHERE id = $1', [body.id]);
    expect(rows).toEqual([{ revoked_at: null, accepted_at: null }]);
    const audit = await t.db.admin.query(`SELECT action FROM core.audit_logs WHERE org_id = $1 AND entity_id = $2 ORDER BY id`, [orgId, body.id]);
    expect(audit.rows).toEqual([{ action: 'invitation.created' }]);
    const read = await t.http.get(`/v1/orgs/${orgId}/invitations?status=expired`).set(owner.auth).expect(200);
    expect(read.body.items.find((i: any) => i.id === body.id)).toMatchObject({ status: 'expired', revokedAt: null });
  });

  it('rejects a second pending invitation, a member, bad input, and invitations to a personal organization', async () => {
    const dan = await registerUser(t, 'dan');
    await invite(dan.email).expect(201);
    const dup = await invite(dan.email).expect(409);
    expect(dup.body.error.code).toBe('invitation.pending_exists');
    const member = await invite(owner.email).expect(409);
    expect(member.body.error.code).toBe('invitation.already_member');
    const bad = await invite('not-an-email', 'owner').expect(400);
    expect(bad.body.error.details.map((d: any) => d.field).sort()).toEqual(['email', 'role']);
    const personal = await invite(dan.email, 'member', owner, owner.personalOrgId).expect(422);
    expect(personal.body.error.code).toBe('invitation.personal_organization');
  });

  describe('invitation e-mails per hour', () => {
    const refusal = (per: 'address' | 'organization', limit: number) => ({
      code: 'invitation.mail_limited',
      message: expect.stringMatching(new RegExp(`^at most ${limit} invitations ${per === 'address' ? 'to this address from this organization' : 'from this organization'} per hour; try again in \\d+ seconds$`)),
      details: { per, limit, retryAfterSeconds: expect.any(Number) },
    });
    const newOrg = async (name: string, who: TestUser = owner) => {
      const org = await createOrg(t, who, name);
      await onEnterprisePlan(t, org);
      return org;
    };
    const mailbox = (local: string) => `'^' || $1 || '(\\+[^@]*)?@example\\.test$'`.replace(/\$1/g, `'${local}'`);
    /**
     * The invitations to the mailbox of `local`@example.test (any "+tag"), their jobs that mail it (one e-mail each; the
     * others record it not_sent), their e-mails recorded not_sent past the cap, and their audit rows.
     */
    const sent = async (local: string) => (await t.db.admin.query(`SELECT
        (SELECT count(*)::int FROM core.invitations WHERE email ~ (${mailbox(local)})) AS invitations,
        (SELECT count(*)::int FROM core.outbox WHERE topic = 'invitation.created' AND payload->>'email' ~ (${mailbox(local)})
          AND payload->'mailWithheld' IS NULL) AS mails,
        (SELECT count(*)::int FROM core.email_deliveries WHERE template = 'invitation' AND to_address ~ (${mailbox(local)})
          AND status = 'not_sent' AND smtp_response = $1) AS withheld,
        (SELECT count(*)::int FROM core.audit_logs a JOIN core.invitations i ON i.id::text = a.entity_id
          WHERE a.action = 'invitation.created' AND i.email ~ (${mailbox(local)})) AS audited`, [MAIL_WITHHELD])).rows[0];
    /** Runs the invitation jobs of `local`'s mailbox not run yet, as the outbox would. */
    const runJobs = async (local: string) => {
      const { rows } = await t.db.admin.query(`SELECT id::text, org_id, payload FROM core.outbox
        WHERE topic = 'invitation.created' AND payload->>'email' ~ (${mailbox(local)}) ORDER BY id`);
      for (const job of rows) await t.app.get(JobRegistry).run({ id: job.id, orgId: job.org_id, topic: 'invitation.created', payload: job.payload });
    };

    it('another organization exhausting an address\'s hour (invite, revoke, invite again, "+tags") does not refuse this one\'s invitation: 201, made but not mailed (not_sent, with why), its token in the response', async () => {
      const attacker = await registerUser(t, 'attacker');
      const attackerOrg = await newOrg('Free Inviter', attacker);
      const victimOrg = await newOrg('Hiring Co');
      const local = `hire.${Date.now()}`;
      const hire = `${local}@example.test`;
      for (let round = 0; round < 3; round++) {
        const { body } = await invite(`${local}+x${round}@example.test`, 'member', attacker, attackerOrg).expect(201);
        await runJobs(local); // mailed before it is revoked (a job runs once: the earlier ones do nothing again)
        await t.http.delete(`/v1/orgs/${attackerOrg}/invitations/${body.id}`).set(attacker.auth).expect(204);
      }
      expect(await sent(local)).toEqual({ invitations: 3, mails: 3, withheld: 0, audited: 3 });

      const made = await invite(hire, 'member', owner, victimOrg).expect(201);
      // what the admin needs to share the link: the organization and the token, and that it is theirs to share
      expect(made.body).toMatchObject({ orgId: victimOrg, email: hire, status: 'pending', token: expect.any(String), mail: 'withheld' });
      // its e-mail is recorded not_sent in one write (never queued first: no state a sender could pick up)
      const changed = jest.spyOn(notificationRepository, 'setDelivery');
      try {
        await runJobs(local);
        expect(changed).not.toHaveBeenCalled();
      } finally {
        changed.mockRestore();
      }
      expect(await sent(local)).toEqual({ invitations: 4, mails: 3, withheld: 1, audited: 4 });
      expect((await t.db.admin.query(`SELECT org_id, status, smtp_response, data->>'invitationId' AS invitation FROM core.email_deliveries
        WHERE template = 'invitation' AND to_address = $1`, [hire])).rows)
        .toEqual([{ org_id: victimOrg, status: 'not_sent', smtp_response: MAIL_WITHHELD, invitation: made.body.id }]);
      // no job sends it later: nothing queued to the mailbox beyond the attacker's 3 e-mails
      expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM core.email_deliveries WHERE template = 'invitation'
        AND to_address ~ (${mailbox(local)}) AND status <> 'not_sent'`)).rows).toEqual([{ n: 3 }]);
      // the invitee accepts with the token the admin shares
      const invitee = await verifyEmailOf(t, await registerUnverified(t, 'hire', undefined, hire));
      expect((await accept(invitee, made.body.token, victimOrg).expect(200)).body).toEqual({ orgId: victimOrg, userId: invitee.id, role: 'member' });
    });

    it('counts a gmail.com or googlemail.com address without the dots of its local part (the address is kept as given): 429 from one organization, withheld across them', async () => {
      const local = `ada.love.${Date.now()}`;
      const folded = local.replace(/\./g, '');
      const org = await newOrg('Gmail Inviter');
      const spellings = [`${local}@gmail.com`, `${folded}@googlemail.com`, `${folded.slice(0, 3)}.${folded.slice(3)}+hr@gmail.com`];
      for (const email of spellings) expect((await invite(email, 'member', owner, org).expect(201)).body).toMatchObject({ email, mail: 'queued' });
      expect((await invite(`${folded}@gmail.com`, 'member', owner, org).expect(429)).body.error).toEqual(refusal('address', 3));
      // another organization's invitation is made, its e-mail withheld; another domain's same local part is another mailbox
      const other = await newOrg('Second Gmail Inviter');
      expect((await invite(`${folded}@gmail.com`, 'member', owner, other).expect(201)).body).toMatchObject({ email: `${folded}@gmail.com`, mail: 'withheld' });
      expect((await invite(`${folded}@example.test`, 'member', owner, org).expect(201)).body.mail).toBe('queued');
      expect((await t.db.admin.query(`SELECT email FROM core.invitations WHERE org_id = ANY($1) ORDER BY created_at`, [[org, other]])).rows.map((r) => r.email))
        .toEqual([...spellings, `${folded}@gmail.com`, `${folded}@example.test`]);
    });

    it('at most 3 an hour to one address from one organization, revoked ones and "+tags" counted: then 429 invitation.mail_limited, nothing written; one more once the oldest is an hour old', async () => {
      const local = `target.${Date.now()}`;
      const target = `${local}@example.test`;
      const org = await newOrg('Repeat Inviter');
      // invite, revoke, invite again: each round mailed the address once more
      for (let round = 0; round < 2; round++) {
        const { body } = await invite(target, 'member', owner, org).expect(201);
        await t.http.delete(`/v1/orgs/${org}/invitations/${body.id}`).set(owner.auth).expect(204);
      }
      await invite(`${local}+other@example.test`, 'member', owner, org).expect(201);
      expect(await sent(local)).toEqual({ invitations: 3, mails: 3, withheld: 0, audited: 3 });
      for (const email of [target, target.toUpperCase(), `${local}+again@example.test`]) {
        const refused = await invite(email, 'member', owner, org).expect(429);
        expect(refused.body.error).toEqual(refusal('address', 3));
        expect(refused.body.error.details.retryAfterSeconds).toBeGreaterThan(3500);
        expect(refused.body.error.details.retryAfterSeconds).toBeLessThanOrEqual(3600);
        expect(refused.headers['retry-after']).toBe(String(refused.body.error.details.retryAfterSeconds));
      }
      expect(await sent(local)).toEqual({ invitations: 3, mails: 3, withheld: 0, audited: 3 });
      // another address is not held up
      await invite(`bystander.${Date.now()}@example.test`, 'member', owner, org).expect(201);

      // the oldest leaves the hour: one more, and only one
      await t.db.admin.query(`UPDATE core.invitations SET created_at = created_at - interval '1 hour'
        WHERE id = (SELECT id FROM core.invitations WHERE email = $1 ORDER BY created_at LIMIT 1)`, [target]);
      await invite(target, 'member', owner, org).expect(201);
      expect((await invite(`${local}+later@example.test`, 'member', owner, org).expect(429)).body.error).toEqual(refusal('address', 3));
      expect(await sent(local)).toEqual({ invitations: 4, mails: 4, withheld: 0, audited: 4 });
    });

    it('at most 50 an hour from one organization, revoked ones counted: then 429 invitation.mail_limited, nothing written', async () => {
      const org = await newOrg('Bulk Inviter');
      // 50 made (and revoked: no seat held) within the hour
      await t.db.admin.query(`INSERT INTO core.invitations (org_id, email, role, token_hash, expires_at, revoked_at, created_at)
        SELECT $1, 'bulk' || g || '.' || $2 || '@example.test', 'member', md5(random()::text), now() + interval '7 days', now(), now() - make_interval(mins => 50 - g)
        FROM generate_series(1, 50) g`, [org, Date.now()]);
      const local = `fresh.${Date.now()}`;
      const refused = await invite(`${local}@example.test`, 'member', owner, org).expect(429);
      expect(refused.body.error).toEqual(refusal('organization', 50));
      // the oldest was made 49 minutes ago: it leaves the hour in about 11
      expect(refused.body.error.details.retryAfterSeconds).toBeGreaterThan(600);
      expect(refused.body.error.details.retryAfterSeconds).toBeLessThanOrEqual(660);
      expect(refused.headers['retry-after']).toBe(String(refused.body.error.details.retryAfterSeconds));
      expect(await sent(local)).toEqual({ invitations: 0, mails: 0, withheld: 0, audited: 0 });
      // another organization is not held up
      await invite(`${local}@example.test`).expect(201);
      await t.db.admin.query(`UPDATE core.invitations SET created_at = created_at - interval '11 minutes' WHERE org_id = $1 AND email LIKE 'bulk1.%'`, [org]);
      await invite(`${local}+second@example.test`, 'member', owner, org).expect(201);
      expect(await sent(local)).toEqual({ invitations: 2, mails: 2, withheld: 0, audited: 2 });
    });

    it('concurrent invitations to one address count one after the other: from several organizations all made, 3 mailed; from one, 3 made, the rest 429', async () => {
      const orgs = await Promise.all([1, 2, 3, 4, 5].map((i) => newOrg(`Racing Inviter ${i}`)));
      const local = `raced.${Date.now()}`;
      const answers = await Promise.all(orgs.map((org) => invite(`${local}@example.test`, 'member', owner, org)));
      expect(answers.map((r) => r.status)).toEqual([201, 201, 201, 201, 201]);
      await runJobs(local);
      expect(await sent(local)).toEqual({ invitations: 5, mails: 3, withheld: 2, audited: 5 });

      const one = await newOrg('Racing Repeater');
      const again = `raced.again.${Date.now()}`;
      const repeated = await Promise.all([1, 2, 3, 4, 5].map((i) => invite(`${again}+${i}@example.test`, 'member', owner, one)));
      expect(repeated.map((r) => r.status).sort()).toEqual([201, 201, 201, 429, 429]);
      for (const r of repeated.filter((a) => a.status === 429)) expect(r.body.error).toEqual(refusal('address', 3));
      expect(await sent(again)).toEqual({ invitations: 3, mails: 3, withheld: 0, audited: 3 });
    });
  });

  it('lists newest first with a status filter and cursor pagination', async () => {
    const org = await createOrg(t, owner, 'Paging Co');
    await onEnterprisePlan(t, org);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await invite(`page${i}.${Date.now()}@example.test`, 'member', owner, org).expect(201)).body.id);
    await t.http.delete(`/v1/orgs/${org}/invitations/${ids[0]}`).set(owner.auth).expect(204);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const res = await t.http.get(`/v1/orgs/${org}/invitations`).query({ limit: 2, status: 'pending', ...(cursor ? { cursor } : {}) }).set(owner.auth).expect(200);
      expect(res.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...res.body.items.map((i: any) => i.id));
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual(ids.slice(1).reverse());
    await t.http.get(`/v1/orgs/${org}/invitations?status=maybe`).set(owner.auth).expect(400);
  });

  it('is for admins: other roles get 403; another organization 404; anonymous 401', async () => {
    const { orgId: rolesOrg, users } = await orgWithRoles(t, 'Roles Co');
    await onEnterprisePlan(t, rolesOrg);
    await verifyEmailOf(t, users.admin); // an invitation's sender needs a verified e-mail
    const pending = await invite(`someone.${Date.now()}@example.test`, 'member', users.admin, rolesOrg).expect(201);
    for (const who of [users.accountant, users.member, users.viewer]) {
      await invite(`x.${Date.now()}@example.test`, 'member', who, rolesOrg).expect(403);
      await t.http.get(`/v1/orgs/${rolesOrg}/invitations`).set(who.auth).expect(403);
      await t.http.delete(`/v1/orgs/${rolesOrg}/invitations/${pending.body.id}`).set(who.auth).expect(403);
    }
    // owner of another organization
    await invite(`y.${Date.now()}@example.test`, 'member', owner, rolesOrg).expect(404);
    await t.http.get(`/v1/orgs/${rolesOrg}/invitations`).set(owner.auth).expect(404);
    await t.http.delete(`/v1/orgs/${rolesOrg}/invitations/${pending.body.id}`).set(owner.auth).expect(404);
    // an id of another organization through your own organization
    await t.http.delete(`/v1/orgs/${orgId}/invitations/${pending.body.id}`).set(owner.auth).expect(404);
    expect((await t.db.admin.query('SELECT revoked_at FROM core.invitations WHERE id = $1', [pending.body.id])).rows[0].revoked_at).toBeNull();
    await t.http.get(`/v1/orgs/${rolesOrg}/invitations`).expect(401);
    await t.http.post('/v1/invitations/accept').send({ orgId: rolesOrg, token: pending.body.token }).expect(401);
  });

  it('purges invitations expired beyond the retention (privileged jobs.purge), keeps recent ones, audits per organization', async () => {
    const org = await createOrg(t, owner, 'Purge Co');
    await onEnterprisePlan(t, org);
    const old = (await invite(`old.${Date.now()}@example.test`, 'member', owner, org).expect(201)).body;
    const recent = (await invite(`recent.${Date.now()}@example.test`, 'member', owner, org).expect(201)).body;
    const live = (await invite(`live.${Date.now()}@example.test`, 'member', owner, org).expect(201)).body;
    await t.db.admin.query(`UPDATE core.invitations SET expires_at = now() - interval '31 days' WHERE id = $1`, [old.id]);
    await t.db.admin.query(`UPDATE core.invitations SET expires_at = now() - interval '1 day' WHERE id = $1`, [recent.id]);
    const purged = await t.app.get(InvitationPurge).purgeExpired();
    expect(purged).toBe(1);
    const left = (await t.db.admin.query('SELECT id FROM core.invitations WHERE org_id = $1 ORDER BY created_at', [org])).rows.map((r) => r.id);
    expect(left).toEqual([recent.id, live.id]);
    const audit = (await t.db.admin.query(`SELECT principal_type, after FROM core.audit_logs WHERE org_id = $1 AND action = 'invitation.purged'`, [org])).rows;
    expect(audit).toEqual([{ principal_type: 'system', after: { count: 1, retentionDays: 30 } }]);
    expect(await t.app.get(InvitationPurge).purgeExpired()).toBe(0);
  });

  it('ends with its sender\'s admin role: a removed, demoted or departed admin\'s pending invitations are revoked (accepting answers 404), audited; an owner made admin keeps theirs', async () => {
    const org = await createOrg(t, owner, 'Inviter Role Co');
    await onEnterprisePlan(t, org);
    const [removed, demoted, departed, second] = await Promise.all(['removed', 'demoted', 'departed', 'second'].map((p) => registerUser(t, p)));
    for (const a of [removed, demoted, departed]) await addMember(t, org, a, 'admin');
    await addMember(t, org, second, 'owner');
    const invitees = await Promise.all(['alt-removed', 'alt-demoted', 'alt-departed', 'alt-owner'].map((p) => registerUser(t, p)));
    const [fromRemoved, fromDemoted, fromDeparted, fromOwner] = await Promise.all([removed, demoted, departed, second]
      .map(async (who, i) => (await invite(invitees[i].email, 'admin', who, org).expect(201)).body));

    await t.http.delete(`/v1/orgs/${org}/members/${removed.id}`).set(owner.auth).expect(204);
    await t.http.patch(`/v1/orgs/${org}/members/${demoted.id}`).set(owner.auth).send({ role: 'viewer' }).expect(200);
    await t.http.delete(`/v1/orgs/${org}/members/me`).set(departed.auth).expect(204);
    await t.http.patch(`/v1/orgs/${org}/members/${second.id}`).set(owner.auth).send({ role: 'admin' }).expect(200);

    for (const [i, inv] of [fromRemoved, fromDemoted, fromDeparted].entries()) {
      const res = await accept(invitees[i], inv.token, org).expect(404);
      expect(res.body.error.code).toBe('invitation.not_found');
    }
    await accept(invitees[3], fromOwner.token, org).expect(200);
    const { rows } = await t.db.admin.query(
      `SELECT i.id, i.revoked_at IS NOT NULL AS revoked, a.actor_id, a.principal_type, a.after
       FROM core.invitations i LEFT JOIN core.audit_logs a ON a.org_id = i.org_id AND a.action = 'invitation.revoked' AND a.entity_id = i.id::text
       WHERE i.org_id = $1 ORDER BY i.created_at, i.id`, [org]);
    const revoked = (inv: { id: string; expiresAt: string; createdAt: string }, by: TestUser, actor: TestUser, reason: string) => ({
      id: inv.id, revoked: true, actor_id: actor.id, principal_type: 'user',
      after: {
        id: inv.id, orgId: org, role: 'admin', status: 'revoked', invitedBy: by.id, expiresAt: inv.expiresAt, acceptedAt: null,
        acceptedBy: null, revokedAt: expect.any(String), createdAt: inv.createdAt, reason,
      },
    });
    expect(rows.sort((a, b) => a.id.localeCompare(b.id))).toEqual([
      revoked(fromRemoved, removed, owner, 'inviter_removed'),
      revoked(fromDemoted, demoted, owner, 'inviter_demoted'),
      revoked(fromDeparted, departed, departed, 'inviter_left'),
      { id: fromOwner.id, revoked: false, actor_id: null, principal_type: null, after: null },
    ].sort((a, b) => a.id.localeCompare(b.id)));
  });

  it('is refused (404, as a revoked one) when its sender is no longer owner or admin, as one sent while the sender\'s demotion committed stays pending; one a service sent (no sender) is accepted', async () => {
    const sender = await registerUser(t, 'now-viewer');
    await addMember(t, orgId, sender, 'viewer');
    const [raced, fromService] = await Promise.all(['raced', 'from-service'].map((p) => registerUser(t, p)));
    const [racedInv, serviceInv] = await Promise.all([raced, fromService].map(async (who) => (await invite(who.email, 'admin').expect(201)).body));
    // the race's outcome: pending, sent by a member who is a viewer now (the trigger of the demotion did not see it)
    await t.db.admin.query('UPDATE core.invitations SET invited_by = $2 WHERE id = $1', [racedInv.id, sender.id]);
    await t.db.admin.query('UPDATE core.invitations SET invited_by = NULL WHERE id = $1', [serviceInv.id]);
    expect((await accept(raced, racedInv.token).expect(404)).body.error.code).toBe('invitation.not_found');
    expect((await accept(fromService, serviceInv.token).expect(200)).body).toEqual({ orgId, userId: fromService.id, role: 'admin' });
    const { rows } = await t.db.admin.query(
      'SELECT i.id, i.accepted_at IS NOT NULL AS accepted, m.role FROM core.invitations i LEFT JOIN core.memberships m ON m.org_id = i.org_id AND m.user_id = i.accepted_by WHERE i.id = ANY($1::uuid[]) ORDER BY i.id',
      [[racedInv.id, serviceInv.id]]);
    expect(rows).toEqual([{ id: racedInv.id, accepted: false, role: null }, { id: serviceInv.id, accepted: true, role: 'admin' }].sort((a, b) => a.id.localeCompare(b.id)));
    const { rows: memberships } = await t.db.admin.query('SELECT 1 FROM core.memberships WHERE org_id = $1 AND user_id = $2', [orgId, raced.id]);
    expect(memberships).toHaveLength(0);
  });

  it('cannot be accepted once the organization is deleted', async () => {
    const doomedOrg = await createOrg(t, owner, 'Doomed Co');
    await onEnterprisePlan(t, doomedOrg);
    const guest = await registerUser(t, 'guest');
    const res = await invite(guest.email, 'member', owner, doomedOrg).expect(201);
    await t.http.delete(`/v1/orgs/${doomedOrg}`).set(owner.auth).expect(204);
    await accept(guest, res.body.token, doomedOrg).expect(404);
    const { rows } = await t.db.admin.query('SELECT 1 FROM core.memberships WHERE org_id = $1 AND user_id = $2', [doomedOrg, guest.id]);
    expect(rows).toHaveLength(0);
  });
});
