import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { restGateway, type RestGateway } from '../support/rest-gateway.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { payablesUrl } from '../payables/payables-support.js';

/** A party's key subject names its organization (privacy/audit-sealing.ts partySubject), spelled out here. */
const partySubject = (party: 'vendor' | 'customer', orgId: string, id: string) => `${party}:${orgId}:${id}`;
const MIGRATION = new URL('../../prisma/migrations/20270205000510_party_keys_per_organization/migration.sql', import.meta.url);

/**
 * A vendor's or customer's audit key is its organization's (migration 20270205000510). Party ids are unique only within
 * an organization, yet the key was named by the id alone, and core.shred_party_key ran for any caller holding EXECUTE:
 * the owner of organization A, a viewer in organization B, put into A a vendor with the id of B's vendor and called
 * rpc/shred_party_key over Supabase's REST API; B's key went, and B's audit entries about its vendor read "[erased]".
 */
describe('a party\'s audit key belongs to its organization: another organization cannot shred it', () => {
  let t: TestApp;
  let gateway: RestGateway;
  let attacker: TestUser;
  let victim: TestUser;
  let orgA: string;
  let orgB: string;

  beforeAll(async () => {
    t = await createTestApp({ REDIS_URL: '', AUTH_COOKIES: 'false' });
    gateway = await restGateway(t.db);

    attacker = await registerUser(t, 'attacker');
    victim = await registerUser(t, 'victim');
    orgA = await createOrg(t, attacker, 'Attacker Ltd');
    orgB = await createOrg(t, victim, 'Victim GmbH');
    await onEnterprisePlan(t, orgA);
    await onEnterprisePlan(t, orgB);
    await addMember(t, orgB, attacker, 'viewer'); // sees B's vendor ids
  });
  afterAll(async () => {
    await gateway?.end();
    await t?.close();
  });

  const rest = (claims: Record<string, unknown>, sql: string, params: unknown[] = []) => gateway.rest('authenticated', claims, sql, params);

  const keyCount = async (subject: string) =>
    (await t.db.admin.query<{ n: number }>('SELECT count(*)::int AS n FROM core.personal_data_keys WHERE subject = $1', [subject])).rows[0].n;
  const vendorAudit = async (orgId: string, who: TestUser, action: string, vendorId: string) =>
    (await t.http.get(`/v1/orgs/${orgId}/audit-logs?action=${action}&entityId=${vendorId}`).set(who.auth).expect(200)).body.items
      .map((e: { after: Record<string, unknown> }) => ({ name: e.after.name, email: e.after.email }));

  /** B's natural-person vendor, created through the API (its creation audited, sealed with B's key for it). */
  async function victimVendor(name: string) {
    const email = `${name.toLowerCase().replace(/\W+/g, '.')}@example.test`;
    const vendor = (await t.http.post(payablesUrl(orgB, 'vendors')).set(victim.auth).send({ name, email }).expect(201)).body as { id: string };
    expect(await vendorAudit(orgB, victim, 'payables.vendor_created', vendor.id)).toEqual([{ name, email }]);
    return { ...vendor, name, email };
  }

  it('refuses rpc/shred_party_key over REST (42501), even to the owner of an organization holding a vendor with the same id: B\'s key and audit stay', async () => {
    const vera = await victimVendor('Vera Victimova');
    // A's vendor with B's vendor's id (what the REST insert did; ids are unique only within an organization)
    await t.db.admin.query(`INSERT INTO finance.vendors (org_id, id, name) VALUES ($1, $2, 'Copycat')`, [orgA, vera.id]);
    for (const claims of [
      { sub: attacker.id, email: attacker.email, aud: 'authenticated', org_id: orgA },
      { sub: attacker.id, email: attacker.email, aud: 'authenticated' },
    ]) {
      const shredded = await rest(claims, 'SELECT core.shred_party_key($1, $2::uuid) AS shredded', ['vendor', vera.id]).catch((err: { code?: string }) => err.code);
      expect(shredded).toBe('42501');
    }
    expect(await vendorAudit(orgB, victim, 'payables.vendor_created', vera.id)).toEqual([{ name: vera.name, email: vera.email }]);
    expect(await keyCount(partySubject('vendor', orgB, vera.id))).toBe(1);
  });

  it('A erasing its own vendor of the same id through the API shreds A\'s key only: B\'s audit still reads its vendor', async () => {
    const walt = await victimVendor('Walt Victimsson');
    await t.db.admin.query(`INSERT INTO finance.vendors (org_id, id, name) VALUES ($1, $2, 'Copycat')`, [orgA, walt.id]);
    // an audited change in A: A's entry about its vendor is sealed with A's own key for it
    await t.http.patch(payablesUrl(orgA, `vendors/${walt.id}`)).set(attacker.auth).send({ email: 'copycat@example.test' }).expect(200);
    expect((await vendorAudit(orgA, attacker, 'payables.vendor_updated', walt.id))[0]).toEqual({ name: 'Copycat', email: 'copycat@example.test' });

    const erased = await t.http.post(`/v1/orgs/${orgA}/privacy/vendors/${walt.id}/erasure`).set(attacker.auth).expect(200);
    expect(erased.body).toMatchObject({ party: 'vendor', partyId: walt.id, name: `Erased vendor ${walt.id.slice(0, 8)}` });

    expect(await vendorAudit(orgB, victim, 'payables.vendor_created', walt.id)).toEqual([{ name: walt.name, email: walt.email }]);
    expect((await vendorAudit(orgA, attacker, 'payables.vendor_updated', walt.id))[0]).toEqual({ name: '[erased]', email: '[erased]' });
    expect(await keyCount(partySubject('vendor', orgA, walt.id))).toBe(0);
    expect(await keyCount(partySubject('vendor', orgB, walt.id))).toBe(1);
    const kept = await t.db.admin.query('SELECT name, email FROM finance.vendors WHERE org_id = $1 AND id = $2', [orgB, walt.id]);
    expect(kept.rows).toEqual([{ name: walt.name, email: walt.email }]);
  });

  it('the migration names existing party keys by the organization whose audit entries they sealed (same key: the entries still open), and drops keys that sealed nothing', async () => {
    const xena = await victimVendor('Xena Legacy');
    expect(await keyCount(partySubject('vendor', orgB, xena.id))).toBe(1);
    const { rows: [key] } = await t.db.admin.query<{ id: string }>('SELECT id FROM core.personal_data_keys WHERE subject = $1', [partySubject('vendor', orgB, xena.id)]);
    const orphan = randomUUID();
    // the keys as the earlier migrations named them, under their check (NOT VALID: this file's other keys are named anew)
    await t.db.admin.query(`ALTER TABLE core.personal_data_keys DROP CONSTRAINT personal_data_keys_subject_check,
      ADD CONSTRAINT personal_data_keys_subject_check CHECK (subject ~ '^(user|email|vendor|customer):[A-Za-z0-9_-]{1,64}$') NOT VALID`);
    await t.db.admin.query('UPDATE core.personal_data_keys SET subject = $2 WHERE id = $1', [key.id, `vendor:${xena.id}`]);
    await t.db.admin.query(`INSERT INTO core.personal_data_keys (subject, wrapped) VALUES ($1, $2::jsonb)`,
      [`customer:${orphan}`, JSON.stringify({ unwrapped: randomBytes(32).toString('base64') })]);

    await t.db.admin.query(readFileSync(MIGRATION, 'utf8'));

    const { rows } = await t.db.admin.query('SELECT id, subject FROM core.personal_data_keys WHERE subject LIKE $1 OR subject LIKE $2 ORDER BY subject',
      [`%${xena.id}`, `%${orphan}`]);
    expect(rows).toEqual([{ id: key.id, subject: partySubject('vendor', orgB, xena.id) }]);
    expect(await vendorAudit(orgB, victim, 'payables.vendor_created', xena.id)).toEqual([{ name: xena.name, email: xena.email }]);
    await expect(t.db.admin.query(`INSERT INTO core.personal_data_keys (subject, wrapped) VALUES ($1, '{}')`, [`vendor:${randomUUID()}`]))
      .rejects.toMatchObject({ code: '23514' });
    // and B's erasure through the API still finds and shreds it
    await t.http.post(`/v1/orgs/${orgB}/privacy/vendors/${xena.id}/erasure`).set(victim.auth).expect(200);
    expect(await keyCount(partySubject('vendor', orgB, xena.id))).toBe(0);
    expect(await vendorAudit(orgB, victim, 'payables.vendor_created', xena.id)).toEqual([{ name: '[erased]', email: '[erased]' }]);
  });
});
