import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { knowledgeRepository } from '../../src/modules/knowledge/knowledge.repository.js';
import { pauseNext, releaseAll, waitsForLockOrAnswers } from '../auth/lock-order.js';
import { onPlan, orgWithRoles, type OrgWithRoles } from '../support/factories.js';
import { startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

/**
 * ai.knowledge_usage_counters (20270208140100) is kept by INSERT and DELETE statement triggers, which a TRUNCATE does
 * not fire: a truncated knowledge base stayed counted, and the plan limits refused writes it had room for. Nor does a
 * load with triggers off (session_replication_role = replica). Now an AFTER TRUNCATE trigger zeroes what was truncated
 * (20270209040100), and ai.recount_knowledge_usage(org) recounts, for the migration owner only, writers going on.
 */
describe('knowledge: the usage counters after a TRUNCATE, and their recount', () => {
  let t: KnowledgeApp;
  let org: OrgWithRoles;
  let other: OrgWithRoles;

  const url = (o: OrgWithRoles, p: string) => `/v1/orgs/${o.orgId}/knowledge/${p}`;
  const collection = async (o: OrgWithRoles, name: string) => (await t.http.post(url(o, 'collections')).set(o.users.owner.auth)
    .send({ name, readRoles: ['member'] }).expect(201)).body.id as string;
  const note = async (o: OrgWithRoles, collectionId: string, title: string, text: string) =>
    (await t.http.post(url(o, 'documents')).set(o.users.member.auth).send({ collectionId, title, text }).expect(201)).body.id as string;
  /** the counter row and a recount of what is stored */
  const usage = async (o: OrgWithRoles) => (await t.db.admin.query(
    `SELECT (SELECT jsonb_build_object('documents', documents, 'bytes', text_bytes) FROM ai.knowledge_usage_counters WHERE org_id = $1) AS kept,
            jsonb_build_object('documents', (SELECT count(*) FROM ai.knowledge_documents WHERE org_id = $1),
                               'bytes', (SELECT coalesce(sum(octet_length(text)), 0) FROM ai.knowledge_versions WHERE org_id = $1)) AS counted`,
    [o.orgId])).rows[0] as { kept: { documents: number; bytes: number } | null; counted: { documents: number; bytes: number } };
  const expectKept = async (o: OrgWithRoles, expected: { documents: number; bytes: number }) => {
    const { kept, counted } = await usage(o);
    expect(counted).toEqual(expected);
    expect(kept).toEqual(counted);
  };
  /** what the plan limits read (ai.knowledge_usage(), through GET entitlements) */
  const entitlements = async (o: OrgWithRoles) => {
    const res = await t.http.get(`/v1/orgs/${o.orgId}/entitlements?app=omnizen`).set(o.users.member.auth).expect(200);
    const feature = (name: string) => res.body.features.find((f: { feature: string }) => f.feature === name).usage as number;
    return { documents: feature('knowledge_documents'), bytes: feature('knowledge_storage_bytes') };
  };
  /** statements on one owner connection, in one transaction */
  const inTransaction = async (statements: [string, unknown[]?][]) => {
    const c = await t.db.admin.connect();
    try {
      await c.query('BEGIN');
      for (const [sql, params] of statements) await c.query(sql, params);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK');
      throw err;
    } finally {
      c.release();
    }
  };
  const recount = async (orgId: string | null) => (await t.db.admin.query(
    `SELECT org_id AS "orgId", documents::int, text_bytes::int AS bytes, documents_were::int AS "documentsWere", text_bytes_were::int AS "bytesWere"
     FROM ai.recount_knowledge_usage($1)`, [orgId])).rows;

  beforeAll(async () => {
    t = await startKnowledgeApp();
    org = await orgWithRoles(t, 'Truncated Ltd');
    other = await orgWithRoles(t, 'Other Ltd');
    await onPlan(t, org.orgId, 'professional');
    await onPlan(t, other.orgId, 'professional');
  });
  // each test starts from an empty knowledge base, its counters right (no row yet, or zeros)
  beforeEach(async () => {
    await t.db.admin.query('DELETE FROM ai.knowledge_collections');
    for (const o of [org, other]) {
      const { kept, counted } = await usage(o);
      expect([kept ?? { documents: 0, bytes: 0 }, counted]).toEqual([{ documents: 0, bytes: 0 }, { documents: 0, bytes: 0 }]);
    }
  });
  afterEach(() => {
    releaseAll();
    jest.restoreAllMocks();
  });
  afterAll(() => t?.close());

  it('zeroes the counts of every organization when the documents are truncated (their versions by cascade), and counts on after', async () => {
    const c = await collection(org, 'Policies');
    await note(org, c, 'Leave', 'a'.repeat(100));
    await note(org, c, 'Travel', 'b'.repeat(50));
    await note(other, await collection(other, 'Elsewhere'), 'Theirs', 'c'.repeat(70));
    await expectKept(org, { documents: 2, bytes: 150 });
    await expectKept(other, { documents: 1, bytes: 70 });

    await t.db.admin.query('TRUNCATE ai.knowledge_documents CASCADE');
    await expectKept(org, { documents: 0, bytes: 0 });
    await expectKept(other, { documents: 0, bytes: 0 });
    expect(await entitlements(org)).toEqual({ documents: 0, bytes: 0 });

    // the rows count on from there
    await note(org, c, 'After', 'd'.repeat(30));
    await expectKept(org, { documents: 1, bytes: 30 });
    expect(await entitlements(org)).toEqual({ documents: 1, bytes: 30 });
  });

  it('zeroes the text bytes alone when only the versions are truncated, and both for a truncate of the collections (cascade)', async () => {
    const c = await collection(org, 'Handbook');
    await note(org, c, 'Welcome', 'w'.repeat(40));
    await note(other, await collection(other, 'Theirs'), 'Hello', 'h'.repeat(20));

    // the versions alone (nothing refers to them): the documents stay, counted
    await t.db.admin.query('TRUNCATE ai.knowledge_versions');
    await expectKept(org, { documents: 1, bytes: 0 });
    await expectKept(other, { documents: 1, bytes: 0 });

    await t.db.admin.query('TRUNCATE ai.knowledge_collections CASCADE');
    await expectKept(org, { documents: 0, bytes: 0 });
    await expectKept(other, { documents: 0, bytes: 0 });
    expect(await entitlements(other)).toEqual({ documents: 0, bytes: 0 });
  });

  it('recounts one organization, or every one, after writes with triggers off, and answers what the rows said before', async () => {
    const c = await collection(org, 'Loaded');
    await note(org, c, 'Kept', 'k'.repeat(25));
    const dropped = await note(org, c, 'Dropped', 'd'.repeat(60));
    await note(other, await collection(other, 'Theirs'), 'Theirs', 't'.repeat(10));
    // a load with triggers off: one document and its version deleted, the counter row not told
    await inTransaction([
      ['SET LOCAL session_replication_role = replica'],
      ['DELETE FROM ai.knowledge_versions WHERE org_id = $1 AND document_id = $2', [org.orgId, dropped]],
      ['DELETE FROM ai.knowledge_documents WHERE org_id = $1 AND id = $2', [org.orgId, dropped]],
    ]);
    // and the other organization's row lost (a restore of the counters without it)
    await t.db.admin.query('DELETE FROM ai.knowledge_usage_counters WHERE org_id = $1', [other.orgId]);
    expect(await usage(org)).toEqual({ kept: { documents: 2, bytes: 85 }, counted: { documents: 1, bytes: 25 } });
    expect(await entitlements(org)).toEqual({ documents: 2, bytes: 85 });
    expect(await usage(other)).toEqual({ kept: null, counted: { documents: 1, bytes: 10 } });

    // one organization: its row only
    expect(await recount(org.orgId)).toEqual([{ orgId: org.orgId, documents: 1, bytes: 25, documentsWere: 2, bytesWere: 85 }]);
    await expectKept(org, { documents: 1, bytes: 25 });
    expect(await entitlements(org)).toEqual({ documents: 1, bytes: 25 });
    expect((await usage(other)).kept).toBeNull();

    // every organization with a row or anything stored: the other one's row is back (it had none), this one's unchanged
    const all = await recount(null);
    expect(all.find((r) => r.orgId === other.orgId)).toEqual({ orgId: other.orgId, documents: 1, bytes: 10, documentsWere: null, bytesWere: null });
    expect(all.find((r) => r.orgId === org.orgId)).toEqual({ orgId: org.orgId, documents: 1, bytes: 25, documentsWere: 1, bytesWere: 25 });
    await expectKept(other, { documents: 1, bytes: 10 });
    expect(await entitlements(other)).toEqual({ documents: 1, bytes: 10 });

    // an organization with nothing stored: a zero row; one that does not exist: an error naming it
    const empty = await orgWithRoles(t, 'Empty Ltd');
    expect(await recount(empty.orgId)).toEqual([{ orgId: empty.orgId, documents: 0, bytes: 0, documentsWere: null, bytesWere: null }]);
    await expect(recount('00000000-0000-4000-8000-000000000000'))
      .rejects.toMatchObject({ code: 'P0002', message: 'no organization 00000000-0000-4000-8000-000000000000' });
    // counted per statement, so READ COMMITTED only
    await expect(inTransaction([['SET TRANSACTION ISOLATION LEVEL REPEATABLE READ'], ['SELECT * FROM ai.recount_knowledge_usage($1)', [org.orgId]]]))
      .rejects.toMatchObject({ code: '55000' });
  });

  it('is the migration owner\'s alone: no API role, runtime login or REST caller may execute it', async () => {
    const claims = { sub: org.users.owner.id, role: 'authenticated', org_id: org.orgId };
    await expect(t.db.asApi(claims, 'authenticated', 'SELECT * FROM ai.recount_knowledge_usage($1)', [org.orgId])).rejects.toMatchObject({ code: '42501' });
    for (const role of ['authenticated', 'service_role', 'anon']) {
      await expect(t.db.as(role === 'anon' ? null : claims, role, 'SELECT * FROM ai.recount_knowledge_usage()')).rejects.toMatchObject({ code: '42501' });
    }
    const { rows } = await t.db.admin.query(`
      SELECT p.prosecdef AS definer, p.proconfig AS config,
             EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0) OR p.proacl IS NULL AS public,
             ARRAY(SELECT r FROM unnest(ARRAY['anon', 'authenticated', 'service_role', 'omnizen_api']) r
                   WHERE has_function_privilege(r, p.oid, 'EXECUTE')) AS callers
      FROM pg_proc p WHERE p.oid = 'ai.recount_knowledge_usage(uuid)'::regprocedure`);
    expect(rows).toEqual([{ definer: true, config: ['search_path=""'], public: false, callers: [] }]);
  });

  /**
   * Writers go on during a recount: a write already counted in the row (a new document, its version paused) holds it, so
   * the recount waits for it and counts it; a write while a recount holds the row waits for it and is added after.
   */
  it('recounts right while writes go on, either way round', async () => {
    const c = await collection(org, 'Busy');
    await note(org, c, 'First', 'f'.repeat(20));

    const paused = pauseNext(knowledgeRepository, 'insertVersion');
    const uploading = t.http.post(url(org, 'documents')).set(org.users.member.auth).send({ collectionId: c, title: 'Second', text: 's'.repeat(35) }).then((r) => r);
    await paused.reached;
    const recounting = recount(org.orgId);
    expect(await waitsForLockOrAnswers(t.db.admin, recounting, paused)).toBe('waiting');
    paused.release();
    expect((await uploading).status).toBe(201);
    expect(await recounting).toEqual([{ orgId: org.orgId, documents: 2, bytes: 55, documentsWere: 2, bytesWere: 55 }]);
    await expectKept(org, { documents: 2, bytes: 55 });

    // the recount holds the row (its transaction open): a note's insert waits for it, then is counted on top
    const r = await t.db.admin.connect();
    try {
      await r.query('BEGIN');
      await r.query('SELECT * FROM ai.recount_knowledge_usage($1)', [org.orgId]);
      const noting = t.http.post(url(org, 'documents')).set(org.users.member.auth).send({ collectionId: c, title: 'Third', text: 't'.repeat(5) }).then((x) => x);
      expect(await waitsForLockOrAnswers(t.db.admin, noting)).toBe('waiting');
      await r.query('COMMIT');
      expect((await noting).status).toBe(201);
    } finally {
      r.release();
    }
    await expectKept(org, { documents: 3, bytes: 60 });
  });
});
