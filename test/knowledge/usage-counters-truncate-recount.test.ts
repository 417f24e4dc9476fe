import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { knowledgeRepository } from '../../src/modules/knowledge/knowledge.repository.js';
import { pauseNext, releaseAll, waitsForLockOrAnswers } from '../auth/lock-order.js';
import { onPlan, orgWithRoles, type OrgWithRoles } from '../support/factories.js';
import { startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

/**
 * ai.knowledge_usage_counters (20270208140100) is kept by INSERT and DELETE statement triggers, which a TRUNCATE does
 * not fire: a truncated knowledge base stayed counted, and the plan limits refused writes it had room for. Nor does a
 * load with triggers off (session_replication_role = replica). Now an AFTER TRUNCATE trigger zeroes what was truncated
 * (20270209040100), and ai.recount_knowledge_usage(org) recounts one organization, for the migration owner only, writers
 * going on; both audit each organization whose counts they change (principal system, before and after). There is no
 * all-organizations form (its one transaction held every organization's counter row, blocking every knowledge write,
 * until it had counted them all): docs/knowledge.md recounts them one transaction each. An organization deleted while
 * it is recounted is named (P0002), not a foreign key failure; so is a soft-deleted one (deleted_at set: was recounted).
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
  /** the usage audit rows of an organization written since the test began */
  let auditMark = 0;
  const usageAudits = async (o: OrgWithRoles | string) => (await t.db.admin.query(
    `SELECT action, principal_type AS "principalType", actor_id AS "actorId", before, after FROM core.audit_logs
     WHERE org_id = $1 AND id > $2 AND action LIKE 'knowledge.usage_%' ORDER BY id`, [typeof o === 'string' ? o : o.orgId, auditMark])).rows;
  const audited = (action: string, before: { documents: number; textBytes: number } | null, after: { documents: number; textBytes: number }) =>
    ({ action, principalType: 'system', actorId: null, before, after });
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
    auditMark = Number((await t.db.admin.query('SELECT coalesce(max(id), 0) AS n FROM core.audit_logs')).rows[0].n);
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
    // one audit row per organization: both counts zeroed (the versions went with the documents)
    expect(await usageAudits(org)).toEqual([audited('knowledge.usage_truncated', { documents: 2, textBytes: 150 }, { documents: 0, textBytes: 0 })]);
    expect(await usageAudits(other)).toEqual([audited('knowledge.usage_truncated', { documents: 1, textBytes: 70 }, { documents: 0, textBytes: 0 })]);

    // the rows count on from there; a TRUNCATE of nothing counted changes nothing, audits nothing
    await t.db.admin.query('TRUNCATE ai.knowledge_documents CASCADE');
    await note(org, c, 'After', 'd'.repeat(30));
    await expectKept(org, { documents: 1, bytes: 30 });
    expect(await entitlements(org)).toEqual({ documents: 1, bytes: 30 });
    expect(await usageAudits(org)).toHaveLength(1);
    expect(await usageAudits(other)).toHaveLength(1);
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
    // each change audited: the text bytes, then the documents
    expect(await usageAudits(org)).toEqual([
      audited('knowledge.usage_truncated', { documents: 1, textBytes: 40 }, { documents: 1, textBytes: 0 }),
      audited('knowledge.usage_truncated', { documents: 1, textBytes: 0 }, { documents: 0, textBytes: 0 }),
    ]);
    expect(await usageAudits(other)).toEqual([
      audited('knowledge.usage_truncated', { documents: 1, textBytes: 20 }, { documents: 1, textBytes: 0 }),
      audited('knowledge.usage_truncated', { documents: 1, textBytes: 0 }, { documents: 0, textBytes: 0 }),
    ]);
  });

  it('recounts one organization after writes with triggers off, answers what its row said before, and audits a change', async () => {
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

    // one organization: its row only, the change audited with before and after
    expect(await recount(org.orgId)).toEqual([{ orgId: org.orgId, documents: 1, bytes: 25, documentsWere: 2, bytesWere: 85 }]);
    await expectKept(org, { documents: 1, bytes: 25 });
    expect(await entitlements(org)).toEqual({ documents: 1, bytes: 25 });
    expect((await usage(other)).kept).toBeNull();
    expect(await usageAudits(org)).toEqual([audited('knowledge.usage_recounted', { documents: 2, textBytes: 85 }, { documents: 1, textBytes: 25 })]);
    expect(await usageAudits(other)).toEqual([]);

    // the other one's row is back (it had none: before is null); recounting a right row again changes nothing, audits nothing
    expect(await recount(other.orgId)).toEqual([{ orgId: other.orgId, documents: 1, bytes: 10, documentsWere: null, bytesWere: null }]);
    expect(await recount(org.orgId)).toEqual([{ orgId: org.orgId, documents: 1, bytes: 25, documentsWere: 1, bytesWere: 25 }]);
    await expectKept(other, { documents: 1, bytes: 10 });
    expect(await entitlements(other)).toEqual({ documents: 1, bytes: 10 });
    expect(await usageAudits(other)).toEqual([audited('knowledge.usage_recounted', null, { documents: 1, textBytes: 10 })]);
    expect(await usageAudits(org)).toHaveLength(1);

    // an organization with nothing stored: a zero row, no change to audit; one that does not exist: an error naming it
    const empty = await orgWithRoles(t, 'Empty Ltd');
    expect(await recount(empty.orgId)).toEqual([{ orgId: empty.orgId, documents: 0, bytes: 0, documentsWere: null, bytesWere: null }]);
    expect(await usageAudits(empty.orgId)).toEqual([]);
    await expect(recount('00000000-0000-4000-8000-000000000000'))
      .rejects.toMatchObject({ code: 'P0002', message: 'no organization 00000000-0000-4000-8000-000000000000' });
    // one organization per call: no all-organizations form, and a null one is refused
    await expect(t.db.admin.query('SELECT * FROM ai.recount_knowledge_usage()')).rejects.toMatchObject({ code: '42883' });
    await expect(recount(null)).rejects.toMatchObject({ code: '22004' });
    // counted per statement, so READ COMMITTED only
    await expect(inTransaction([['SET TRANSACTION ISOLATION LEVEL REPEATABLE READ'], ['SELECT * FROM ai.recount_knowledge_usage($1)', [org.orgId]]]))
      .rejects.toMatchObject({ code: '55000' });
  });

  it('is the migration owner\'s alone: no API role, runtime login or REST caller may execute it', async () => {
    const claims = { sub: org.users.owner.id, role: 'authenticated', org_id: org.orgId };
    await expect(t.db.asApi(claims, 'authenticated', 'SELECT * FROM ai.recount_knowledge_usage($1)', [org.orgId])).rejects.toMatchObject({ code: '42501' });
    for (const role of ['authenticated', 'service_role', 'anon']) {
      await expect(t.db.as(role === 'anon' ? null : claims, role, `SELECT * FROM ai.recount_knowledge_usage('${org.orgId}')`)).rejects.toMatchObject({ code: '42501' });
    }
    const { rows } = await t.db.admin.query(`
      SELECT p.oid::regprocedure::text AS signature, p.pronargdefaults::int AS defaults, p.prosecdef AS definer, p.proconfig AS config,
             EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0) OR p.proacl IS NULL AS public,
             ARRAY(SELECT r FROM unnest(ARRAY['anon', 'authenticated', 'service_role', 'omnizen_api']) r
                   WHERE has_function_privilege(r, p.oid, 'EXECUTE')) AS callers
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'ai' AND p.proname = 'recount_knowledge_usage'`);
    // one form (one organization), no default argument
    expect(rows).toEqual([{ signature: 'ai.recount_knowledge_usage(uuid)', defaults: 0, definer: true, config: ['search_path=""'], public: false, callers: [] }]);
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

  it('holds only its organization\'s row: another organization writes while it is recounted', async () => {
    const theirs = await collection(other, 'Theirs');
    const r = await t.db.admin.connect();
    try {
      await r.query('BEGIN');
      await r.query('SELECT * FROM ai.recount_knowledge_usage($1)', [org.orgId]);
      // the recount's transaction still open: the other organization's write does not wait for it
      const noting = t.http.post(url(other, 'documents')).set(other.users.member.auth).send({ collectionId: theirs, title: 'Meanwhile', text: 'm'.repeat(12) }).then((x) => x);
      expect(await waitsForLockOrAnswers(t.db.admin, noting)).toBe('answered');
      expect((await noting).status).toBe(201);
      await r.query('COMMIT');
    } finally {
      r.release();
    }
    await expectKept(other, { documents: 1, bytes: 12 });
  });

  it('names an organization deleted while it is recounted (no foreign key failure), and its deletion waits for a recount under way; names a soft-deleted one', async () => {
    const bare = async (name: string) => (await t.db.admin.query(`INSERT INTO core.organizations (name, owner_user_id) VALUES ($1, $2) RETURNING id`,
      [name, org.users.owner.id])).rows[0].id as string;
    // deleted (not yet committed) when the recount starts: the recount waits for it, then names it
    const gone = await bare('Deleted meanwhile');
    const d = await t.db.admin.connect();
    try {
      await d.query('BEGIN');
      expect((await d.query('DELETE FROM core.organizations WHERE id = $1', [gone])).rowCount).toBe(1);
      const recounting = recount(gone);
      expect(await waitsForLockOrAnswers(t.db.admin, recounting)).toBe('waiting');
      await d.query('COMMIT');
      await expect(recounting).rejects.toMatchObject({ code: 'P0002', message: `no organization ${gone}` });
    } finally {
      d.release();
    }
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM ai.knowledge_usage_counters WHERE org_id = $1', [gone])).rows[0].n).toBe(0);

    // recounted (not yet committed) when the deletion comes: the deletion waits, then takes the counter row along
    const kept = await bare('Recounted first');
    const r = await t.db.admin.connect();
    try {
      await r.query('BEGIN');
      await r.query('SELECT * FROM ai.recount_knowledge_usage($1)', [kept]);
      const deleting = t.db.admin.query('DELETE FROM core.organizations WHERE id = $1', [kept]);
      expect(await waitsForLockOrAnswers(t.db.admin, deleting)).toBe('waiting');
      await r.query('COMMIT');
      expect((await deleting).rowCount).toBe(1);
    } finally {
      r.release();
    }
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM ai.knowledge_usage_counters WHERE org_id = $1', [kept])).rows[0].n).toBe(0);

    // soft-deleted (deleted_at set, as the API deletes an organization): named the same, no counter row written for it
    const { orgId: softDeleted, users } = await orgWithRoles(t, 'Soft Deleted Ltd');
    await t.http.delete(`/v1/orgs/${softDeleted}`).set(users.owner.auth).expect(204);
    expect((await t.db.admin.query('SELECT deleted_at IS NOT NULL AS deleted FROM core.organizations WHERE id = $1', [softDeleted])).rows).toEqual([{ deleted: true }]);
    await expect(recount(softDeleted)).rejects.toMatchObject({ code: 'P0002', message: `no organization ${softDeleted}` });
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM ai.knowledge_usage_counters WHERE org_id = $1', [softDeleted])).rows[0].n).toBe(0);
  });
});
