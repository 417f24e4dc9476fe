import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { openTenantTransaction } from '../support/database.js';
import { until } from '../support/throwaway-servers.js';
import { partySubject, userSubject } from '../../src/modules/privacy/audit-sealing.js';
import { findEverywhere } from './columns.js';

/**
 * An erased party's data must not come back through a change that read it before the erasure committed: the update
 * locks the row before it reads its before (it then sees the erased row), and core.personal_data_key makes no key for a
 * subject whose erasure is recorded (a late writer's snapshot reads "[erased]", and no live key seals it).
 */
describe('a party erased while it is being updated: its data stays erased in the audit log', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  const clients: pg.Client[] = [];

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Erasure Races');
    await onEnterprisePlan(t, orgId);
  });
  afterAll(async () => {
    for (const c of clients) await c.end();
    await t.close();
  });

  /** Resolves once `n` backends of this database wait for a lock. */
  const lockWaiters = (n: number) => until(`${n} backend(s) wait for a lock`, async () => (await t.db.admin.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).rows[0].n >= n);
  const person = { name: 'Secret Person', email: 'secret.person@x.example', phone: '+44 20 7946 0000' };
  const parties = {
    customer: { url: () => `/v1/orgs/${orgId}/receivables/customers`, table: 'finance.customers', update: 'put', action: 'receivables.customer_updated' },
    vendor: { url: () => `/v1/orgs/${orgId}/payables/vendors`, table: 'finance.vendors', update: 'patch', action: 'payables.vendor_updated' },
  } as const;
  const keysOf = async (subject: string) => (await t.db.admin.query('SELECT id FROM core.personal_data_keys WHERE subject = $1', [subject])).rows;

  for (const party of ['customer', 'vendor'] as const) {
    const p = parties[party];
    const label = `Erased ${party}`;

    it(`${party}: an update waiting for the erasure audits the erased row, under no key`, async () => {
      const id = (await t.http.post(p.url()).set(owner.auth).send(person).expect(201)).body.id as string;
      // the row held so that the erasure queues first and the update second
      const holder = await t.db.admin.connect();
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM ${p.table} WHERE org_id = $1 AND id = $2 FOR UPDATE`, [orgId, id]);
      const erasing = t.http.post(`/v1/orgs/${orgId}/privacy/${party}s/${id}/erasure`).set(owner.auth).then((r) => r);
      await lockWaiters(1);
      const updating = t.http[p.update](`${p.url()}/${id}`).set(owner.auth).send({ paymentTermsDays: 45 }).then((r) => r);
      await lockWaiters(2);
      await holder.query('COMMIT');
      holder.release();
      const [erased, updated] = await Promise.all([erasing, updating]);

      expect(erased.status).toBe(200);
      expect(updated.status).toBe(200);
      const pseudonym = `${label} ${id.slice(0, 8)}`;
      expect(updated.body).toMatchObject({ id, name: pseudonym, email: null, phone: null, paymentTermsDays: 45 });
      expect((await t.db.admin.query(`SELECT name, email, phone, payment_terms_days FROM ${p.table} WHERE id = $1`, [id])).rows)
        .toEqual([{ name: pseudonym, email: null, phone: null, payment_terms_days: 45 }]);
      // the update's before is the erased row (no stale copy of the person), and nothing keeps it readable
      const entries = (await t.http.get(`/v1/orgs/${orgId}/audit-logs?entityType=${party}&entityId=${id}&action=${p.action}`).set(owner.auth).expect(200)).body.items;
      expect(entries).toHaveLength(1);
      expect(entries[0].before).toMatchObject({ name: '[erased]', email: null, phone: null, paymentTermsDays: 30 });
      expect(entries[0].after).toMatchObject({ name: '[erased]', email: null, phone: null, paymentTermsDays: 45 });
      expect(await keysOf(partySubject(party, orgId, id))).toEqual([]);
      for (const needle of Object.values(person)) expect(await findEverywhere(t.db.admin, needle)).toEqual([]);
    });

    it(`${party}: an update after the erasure makes no new key for it`, async () => {
      const id = (await t.http.post(p.url()).set(owner.auth).send({ ...person, name: `${person.name} ${party}` }).expect(201)).body.id as string;
      await t.http.post(`/v1/orgs/${orgId}/privacy/${party}s/${id}/erasure`).set(owner.auth).expect(200);
      await t.http[p.update](`${p.url()}/${id}`).set(owner.auth).send({ paymentTermsDays: 60 }).expect(200);
      expect(await keysOf(partySubject(party, orgId, id))).toEqual([]);
      const [entry] = (await t.http.get(`/v1/orgs/${orgId}/audit-logs?entityType=${party}&entityId=${id}&action=${p.action}`).set(owner.auth).expect(200)).body.items;
      expect(entry.after).toMatchObject({ name: '[erased]', paymentTermsDays: 60 });
      const stored = (await t.db.admin.query(`SELECT after FROM core.audit_logs WHERE org_id = $1 AND action = $2 AND entity_id = $3`, [orgId, p.action, id])).rows;
      expect(stored).toEqual([{ after: expect.objectContaining({ name: '[erased]' }) }]);
      expect(stored[0].after).not.toHaveProperty('$sealed');
    });
  }

  describe('core.personal_data_key refuses a subject whose erasure is recorded', () => {
    const wrapped = () => JSON.stringify({ unwrapped: randomBytes(32).toString('base64') });
    /** The function called in a request's transaction of `user` in the organization, as the audit writer calls it. */
    const keyInRequest = async (user: TestUser, org: string, subject: string) => {
      const { c } = await openTenantTransaction(t.db.apiUrl, { sub: user.id, org_id: org }, clients);
      try {
        return (await c.query('SELECT id FROM core.personal_data_key($1::uuid, $2, $3::jsonb)', [randomUUID(), subject, wrapped()])).rows;
      } finally {
        await c.query('COMMIT');
      }
    };

    it('a party erased (its party.erased entry): no key, and one made since is deleted; another party of the organization still gets one', async () => {
      const id = (await t.http.post(parties.vendor.url()).set(owner.auth).send({ name: 'Vera Keyless' }).expect(201)).body.id as string;
      const subject = partySubject('vendor', orgId, id);
      await t.http.post(`/v1/orgs/${orgId}/privacy/vendors/${id}/erasure`).set(owner.auth).expect(200);
      expect(await keyInRequest(owner, orgId, subject)).toEqual([]);
      expect(await keysOf(subject)).toEqual([]);
      // a key that a late writer made before this check existed
      await t.db.admin.query(`INSERT INTO core.personal_data_keys (id, subject, wrapped) VALUES ($1, $2, $3::jsonb)`, [randomUUID(), subject, wrapped()]);
      expect(await keyInRequest(owner, orgId, subject)).toEqual([]);
      expect(await keysOf(subject)).toEqual([]);

      const other = partySubject('vendor', orgId, (await t.http.post(parties.vendor.url()).set(owner.auth).send({ name: 'Otto Kept' }).expect(201)).body.id);
      expect(await keyInRequest(owner, orgId, other)).toEqual([{ id: expect.any(String) }]);
      expect(await keysOf(other)).toHaveLength(1);
    });

    it('a user erased (their pseudonymized e-mail): no key on the privileged path either; a user not erased still gets one', async () => {
      const gone = await registerUser(t, 'gone');
      await t.http.delete('/v1/me').set(gone.auth).send({ password: 'correct horse battery' }).expect(200);
      /** as the privileged paths call it (the erasure's own, a job's): as service_role */
      const asService = async (subject: string) => {
        const c = await t.db.admin.connect();
        try {
          await c.query('BEGIN');
          await c.query(`SELECT set_config('role', 'service_role', true)`);
          const { rows } = await c.query('SELECT id FROM core.personal_data_key($1::uuid, $2, $3::jsonb)', [randomUUID(), subject, wrapped()]);
          await c.query('COMMIT');
          return rows;
        } finally {
          c.release();
        }
      };
      expect(await asService(userSubject(gone.id))).toEqual([]);
      expect(await keyInRequest(owner, orgId, userSubject(gone.id))).toEqual([]);
      expect(await keysOf(userSubject(gone.id))).toEqual([]);
      const kept = await registerUser(t, 'kept');
      expect(await asService(userSubject(kept.id))).toEqual([{ id: expect.any(String) }]);
    });
  });
});
