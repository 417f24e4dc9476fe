import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { onEnterprisePlan, orgWithRoles, type OrgWithRoles, type TestUser } from '../support/factories.js';
import { startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

/**
 * The policies of documents, versions and chunks compare each row's collection with ai.readable_collections(), which
 * was meant to be inlined and run once per statement but was called for every row (PostgreSQL inlines no function
 * with a subquery): 1,001 calls to count 1,000 documents. It now reads the collections once per statement (for the
 * API's verified claims), and a statement after a change of the collections, or a write to them inside the statement,
 * reads them again.
 */
describe('knowledge: the readable collections are read once per statement, and follow changes in the transaction', () => {
  let t: KnowledgeApp;
  let org: OrgWithRoles;
  let shared: string;
  let restricted: string;
  const many = 1_000;

  beforeAll(async () => {
    t = await startKnowledgeApp();
    org = await orgWithRoles(t, 'Policies Ltd');
    await onEnterprisePlan(t, org.orgId);
    const collection = async (name: string, readRoles: string[]) => (await t.http.post(`/v1/orgs/${org.orgId}/knowledge/collections`)
      .set(org.users.owner.auth).send({ name, readRoles }).expect(201)).body.id as string;
    shared = await collection('Shared', ['member']);
    restricted = await collection('Restricted', []);
    await t.db.admin.query(
      `INSERT INTO ai.knowledge_documents (org_id, collection_id, title, source)
       SELECT $1, CASE WHEN g <= $4 THEN $2::uuid ELSE $3::uuid END, 'bulk ' || g, 'note' FROM generate_series(1, $4 + 5) g`,
      [org.orgId, shared, restricted, many]);
    // function call counts for the runtime login's sessions (SET track_functions is for superusers)
    await t.db.admin.query(`ALTER DATABASE "${t.db.name}" SET track_functions = 'all'`);
  });
  afterAll(async () => {
    await t?.db.admin.query(`ALTER DATABASE "${t.db.name}" RESET track_functions`);
    await t?.close();
  });

  it('counts 1,000 readable documents with one lookup of the collections per statement, and each statement reads them afresh', async () => {
    const api = new pg.Client({ connectionString: t.db.apiUrl });
    await api.connect();
    try {
      const calls = async () => (await api.query(
        `SELECT coalesce(sum(pg_stat_get_xact_function_calls(p.oid)), 0)::int AS n FROM pg_proc p
         WHERE p.pronamespace = 'ai'::regnamespace AND p.proname IN ('readable_collections', 'readable_collections_checked')`)).rows[0].n as number;
      const count = async () => (await api.query('SELECT count(*)::int AS n FROM ai.knowledge_documents')).rows[0].n as number;
      const as = async (user: TestUser) => {
        await api.query('RESET ROLE');
        await api.query(`SELECT public.begin_request($1, 'authenticated')`, [JSON.stringify({ sub: user.id, role: 'authenticated', org_id: org.orgId })]);
      };
      await api.query('BEGIN');
      await as(org.users.member);
      expect(await calls()).toBe(0);
      expect(await count()).toBe(many); // the shared collection's, not the restricted one's
      expect(await calls()).toBe(1); // one lookup for 1,000 rows, not one per row
      expect(await count()).toBe(many);
      expect(await calls()).toBe(2); // the next statement looks again (a change committed meanwhile counts)

      // other claims in the same transaction: their own lookup, not the member's collections
      await as(org.users.owner);
      expect(await count()).toBe(many + 5);
      expect(await calls()).toBe(3);

      // a collection created earlier in the transaction is readable by the next statement
      const { rows: [{ id: created }] } = await api.query(
        `INSERT INTO ai.knowledge_collections (org_id, name, read_roles) VALUES ($1, 'Created in the transaction', '{}') RETURNING id`, [org.orgId]);
      await api.query(`INSERT INTO ai.knowledge_documents (org_id, collection_id, title, source) VALUES ($1, $2, 'new', 'note')`, [org.orgId, created]);
      expect(await count()).toBe(many + 6);

      // read roles changed earlier in the transaction count from the next statement on
      await as(org.users.member);
      expect(await count()).toBe(many);
      await as(org.users.owner);
      await api.query(`UPDATE ai.knowledge_collections SET read_roles = '{member}' WHERE id = $1`, [restricted]);
      await as(org.users.member);
      expect(await count()).toBe(many + 5);
      await api.query('ROLLBACK');
    } finally {
      await api.end();
    }
  });

  it('a statement that writes a collection, then a document in it, sees the collection it wrote (the write forgets the lookup of the statement)', async () => {
    const api = new pg.Client({ connectionString: t.db.apiUrl });
    await api.connect();
    try {
      await api.query('BEGIN');
      await api.query(`SELECT public.begin_request($1, 'authenticated')`, [JSON.stringify({ sub: org.users.owner.id, role: 'authenticated', org_id: org.orgId })]);
      // one client statement: its first read records the readable collections, then a new one is created and written to
      await api.query(`DO $$
        DECLARE c uuid; n int;
        BEGIN
          SELECT count(*) INTO n FROM ai.knowledge_documents;
          INSERT INTO ai.knowledge_collections (org_id, name, read_roles) VALUES (public.auth_org_id(), 'Created in one statement', '{}') RETURNING id INTO c;
          INSERT INTO ai.knowledge_documents (org_id, collection_id, title, source) VALUES (public.auth_org_id(), c, 'in one statement', 'note');
        END $$`);
      await api.query('COMMIT');
    } finally {
      await api.end();
    }
    const { rows } = await t.db.admin.query(
      `SELECT c.name FROM ai.knowledge_documents d JOIN ai.knowledge_collections c ON c.org_id = d.org_id AND c.id = d.collection_id
       WHERE d.org_id = $1 AND d.title = 'in one statement'`, [org.orgId]);
    expect(rows).toEqual([{ name: 'Created in one statement' }]);
  });
});
