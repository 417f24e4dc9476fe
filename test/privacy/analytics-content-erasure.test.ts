import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, onEnterprisePlan, registerUser, verifyEmailOf } from '../support/factories.js';
import { AnalyticsMaintenanceJob } from '../../src/modules/analytics/analytics-maintenance.job.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { unzip } from '../support/zip.js';

const PASSWORD = 'correct horse battery';

describe('analytics events that name a person by content (an anonymous event with their e-mail): in their export, gone with their erasure', () => {
  let t: TestApp;
  const clock = new ManualClock();
  const dir = mkdtempSync(join(tmpdir(), 'omnizen-analytics-content-'));

  beforeAll(async () => {
    t = await createTestApp({ AUTH_COOKIES: 'false', DATA_EXPORT_DIR: dir, REDIS_URL: '' }, { clock });
    await t.app.get(AnalyticsMaintenanceJob).booted;
  });
  afterAll(async () => {
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('exports and erases the events of their organizations whose properties or ids name their proven address; another organization\'s stay', async () => {
    const owner = await registerUser(t, 'ac-owner');
    const p = await verifyEmailOf(t, await registerUser(t, 'ac-person', PASSWORD));
    const stranger = await registerUser(t, 'ac-stranger');
    const orgId = await createOrg(t, owner, 'Tracked Ltd');
    await onEnterprisePlan(t, orgId);
    await addMember(t, orgId, p, 'member');
    const elsewhere = await createOrg(t, stranger, 'Never Met Ltd');
    await onEnterprisePlan(t, elsewhere);
    const send = (org: string, auth: Record<string, string>, events: object[]) =>
      t.http.post(`/v1/orgs/${org}/analytics/events`).set(auth).send({ events }).expect(200);

    // the person's app sends an anonymous event (no user id stored) whose properties hold their address; and one of theirs
    expect((await send(orgId, p.auth, [
      { name: 'form.submitted', anonymousId: 'visitor-1', properties: { contact: p.email, plan: 'pro' } },
      { name: 'doc.opened', properties: { n: 1 } },
    ])).body).toEqual({ accepted: 2, rejected: [] });
    // the owner's events: one about the person (upper case), one under the person's address as the app's user id, one about nobody
    await send(orgId, owner.auth, [
      { name: 'member.looked_up', properties: { who: p.email.toUpperCase() } },
      { name: 'crm.synced', userId: p.email },
      { name: 'form.submitted', anonymousId: 'visitor-2', properties: { contact: 'someone.else@example.test' } },
    ]);
    // app user ids that contain the address (as the value scan matches it: whole, any case), and one naming a longer
    // address (not theirs) on an event whose properties name them
    await send(orgId, owner.auth, [
      { name: 'crm.synced', userId: `mailto:${p.email}` },
      { name: 'crm.synced', userId: `${p.email.toUpperCase()} ` },
      { name: 'crm.synced', userId: `hubspot:${p.email}` },
      { name: 'crm.partner', userId: `hubspot:${p.email}.au`, properties: { about: p.email } },
    ]);
    // an organization they never knew names their address: its record
    await send(elsewhere, stranger.auth, [{ name: 'lead.imported', anonymousId: 'lead-7', properties: { lead: p.email } }]);
    const stored = await t.db.admin.query(`SELECT user_id, anonymous_id FROM core.analytics_events WHERE org_id = $1 AND name = 'form.submitted' AND anonymous_id = 'visitor-1'`, [orgId]);
    expect(stored.rows).toEqual([{ user_id: null, anonymous_id: 'visitor-1' }]);

    // the export before the erasure: their events, and those of their organization that name them
    const started = await t.http.post('/v1/me/data-export').set(p.auth).expect(202);
    await t.app.get(OutboxRelay).drain();
    const status = (await t.http.get(`/v1/me/data-exports/${started.body.id}`).set(p.auth).expect(200)).body;
    expect(status.status).toBe('ready');
    const zip = await t.http.get(status.downloadUrl).buffer(true)
      .parse((res, cb) => { const chunks: Buffer[] = []; res.on('data', (c: Buffer) => chunks.push(c)); res.on('end', () => cb(null, Buffer.concat(chunks))); })
      .expect(200);
    const files = await unzip(zip.body as Buffer);
    const exported = (JSON.parse(files['core.analytics_events.json']) as Record<string, any>[]).filter((e) => e.org_id === orgId);
    expect(exported.map((e) => e.name).sort()).toEqual(['crm.partner', 'crm.synced', 'crm.synced', 'crm.synced', 'crm.synced', 'doc.opened', 'form.submitted', 'member.looked_up']);
    expect(exported.find((e) => e.name === 'form.submitted')).toMatchObject({ anonymous_id: 'visitor-1', user_id: null, properties: { contact: p.email, plan: 'pro' } });
    expect(files['core.analytics_events.json']).not.toContain('lead-7');
    expect(files['core.analytics_events.json']).not.toContain('visitor-2');

    await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(200);

    // no row of their organizations holds the address any more
    const naming = await t.db.admin.query(`SELECT org_id, name FROM core.analytics_events
      WHERE (properties::text || coalesce(user_id, '') || coalesce(anonymous_id, '')) ILIKE '%' || $1 || '%' ORDER BY name`, [p.email]);
    // (but as part of the longer address, another person's, which stays)
    expect(naming.rows).toEqual([{ org_id: orgId, name: 'crm.partner' }, { org_id: elsewhere, name: 'lead.imported' }]);
    const { rows } = await t.db.admin.query(`SELECT name, user_id, anonymous_id, properties FROM core.analytics_events
      WHERE org_id = $1 AND source = 'client' ORDER BY name, anonymous_id NULLS FIRST`, [orgId]);
    const pseudonym = rows.find((r) => r.name === 'doc.opened')!.user_id;
    expect(pseudonym).toMatch(/^erased-[0-9a-f-]{36}$/);
    expect(rows).toEqual([
      // the event keeps the other address's id; what named the person goes
      { name: 'crm.partner', user_id: `hubspot:${p.email}.au`, anonymous_id: null, properties: {} },
      // the app's ids for them were, or contained, their address: their pseudonym, as their own events
      ...Array(4).fill({ name: 'crm.synced', user_id: pseudonym, anonymous_id: null, properties: {} }),
      { name: 'doc.opened', user_id: pseudonym, anonymous_id: null, properties: {} },
      { name: 'form.submitted', user_id: null, anonymous_id: null, properties: {} },
      { name: 'form.submitted', user_id: null, anonymous_id: 'visitor-2', properties: { contact: 'someone.else@example.test' } },
      // the owner's event keeps its user: only what named the person goes
      { name: 'member.looked_up', user_id: owner.id, anonymous_id: null, properties: {} },
    ]);
  });
});
