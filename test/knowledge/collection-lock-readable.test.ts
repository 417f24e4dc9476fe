import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import pg from 'pg';
import { knowledgeRepository } from '../../src/modules/knowledge/knowledge.repository.js';
import { pauseNext, releaseAll } from '../auth/lock-order.js';
import { onEnterprisePlan, orgWithRoles, type OrgWithRoles } from '../support/factories.js';
import { startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

type Role = 'owner' | 'admin' | 'accountant' | 'member' | 'viewer';
const ROLES: Role[] = ['owner', 'admin', 'accountant', 'member', 'viewer'];

/**
 * ai.lock_knowledge_collection (20270208100100), the FOR KEY SHARE lock a new document or version takes first, is
 * SECURITY DEFINER: it locked any collection of the request's organization, so a member locked (and learnt of) a
 * restricted collection they cannot read, holding off its deletion. Now (20270209040200) it locks only a collection the
 * caller may add documents to (readable by their role, and not a viewer's), and answers false otherwise, as for one that
 * is not there: the 404 a read answers.
 */
describe('knowledge: the collection lock of a write takes only collections the caller may write in', () => {
  let t: KnowledgeApp;
  let org: OrgWithRoles;
  let other: OrgWithRoles;
  /** read by owner, admin and accountants only */
  let board: string;
  /** read by members and viewers too */
  let team: string;
  let elsewhere: string;

  const url = (p: string) => `/v1/orgs/${org.orgId}/knowledge/${p}`;
  const claims = (role: Role) => ({ sub: org.users[role].id, role: 'authenticated', org_id: org.orgId });
  /** the lock's answer, and whether the caller reads the collection, in one transaction opened as the API opens one */
  const lockAndRead = async (role: Role, id: string) => (await t.db.asApi(claims(role), 'authenticated',
    `SELECT ai.lock_knowledge_collection($1) AS locked, EXISTS (SELECT 1 FROM ai.knowledge_collections WHERE id = $1) AS readable`, [id]))[0];
  /** whether the owner connection can take the collection's row FOR UPDATE now (a deletion's lock), or a lock holds it */
  const freeToDelete = async (id: string) => t.db.admin.query('SELECT 1 FROM ai.knowledge_collections WHERE id = $1 FOR UPDATE NOWAIT', [id])
    .then(() => true, (e: { code?: string }) => {
      if (e.code === '55P03') return false;
      throw e;
    });
  const stored = async () => (await t.db.admin.query(
    `SELECT (SELECT count(*) FROM ai.knowledge_documents WHERE org_id = $1)::int AS documents,
            (SELECT documents FROM ai.knowledge_usage_counters WHERE org_id = $1)::int AS counted,
            (SELECT count(*) FROM core.audit_logs WHERE org_id = $1 AND action = 'knowledge.document_created')::int AS audited`,
    [org.orgId])).rows[0];

  beforeAll(async () => {
    t = await startKnowledgeApp();
    org = await orgWithRoles(t, 'Locked Ltd');
    other = await orgWithRoles(t, 'Other Ltd');
    await onEnterprisePlan(t, org.orgId);
    const create = async (o: OrgWithRoles, name: string, readRoles: string[]) => (await t.http.post(`/v1/orgs/${o.orgId}/knowledge/collections`)
      .set(o.users.owner.auth).send({ name, readRoles }).expect(201)).body.id as string;
    board = await create(org, 'Board', ['accountant']);
    team = await create(org, 'Team', ['member', 'viewer']);
    elsewhere = await create(other, 'Elsewhere', ['member']);
  });
  afterEach(() => {
    releaseAll();
    jest.restoreAllMocks();
  });
  afterAll(() => t?.close());

  it('locks, role by role, exactly the collections the caller reads, a viewer none, another organization\'s none', async () => {
    const answers: Record<string, { locked: boolean; readable: boolean }> = {};
    for (const role of ROLES) {
      for (const [name, id] of [['board', board], ['team', team], ['elsewhere', elsewhere]]) answers[`${role} ${name}`] = await lockAndRead(role, id);
    }
    // the lock follows the read policy (and the documents' write policy: no viewer)
    for (const [key, a] of Object.entries(answers)) expect([key, a.locked]).toEqual([key, a.readable && !key.startsWith('viewer')]);
    expect(Object.entries(answers).filter(([, a]) => a.locked).map(([k]) => k).sort()).toEqual(
      ['accountant board', 'admin board', 'admin team', 'member team', 'owner board', 'owner team']);
    expect(answers['member board']).toEqual({ locked: false, readable: false });
    expect(answers['viewer team']).toEqual({ locked: false, readable: true });
  });

  it('holds no lock on a restricted collection for a member, so its deletion does not wait; a readable one stays locked', async () => {
    const c = new pg.Client({ connectionString: t.db.apiUrl });
    await c.connect();
    try {
      await c.query('BEGIN');
      await c.query('SELECT 1 FROM public.begin_request($1, $2)', [JSON.stringify(claims('member')), 'authenticated']);
      expect((await c.query('SELECT ai.lock_knowledge_collection($1) AS locked', [board])).rows).toEqual([{ locked: false }]);
      expect(await freeToDelete(board)).toBe(true);
      // what the callers need still holds: a collection the member writes in is locked until the transaction ends
      expect((await c.query('SELECT ai.lock_knowledge_collection($1) AS locked', [team])).rows).toEqual([{ locked: true }]);
      expect(await freeToDelete(team)).toBe(false);
      await c.query('ROLLBACK');
      expect(await freeToDelete(team)).toBe(true);
    } finally {
      await c.end();
    }
  });

  /**
   * A note to a collection the member read a moment before, its read_roles changed meanwhile (the member no longer reads
   * it): the lock answers false, and the note the 404 a read of the collection now answers; nothing stored.
   */
  it('answers the read\'s 404 when the collection became unreadable between the read and the lock, storing nothing', async () => {
    const before = await stored();
    const paused = pauseNext(knowledgeRepository, 'shareCollection');
    const noting = t.http.post(url('documents')).set(org.users.member.auth).send({ collectionId: team, title: 'Late', text: 'Too late.' }).then((r) => r);
    await paused.reached;
    await t.http.patch(url(`collections/${team}`)).set(org.users.owner.auth).send({ readRoles: ['viewer'] }).expect(200);
    const locked = jest.spyOn(knowledgeRepository, 'shareCollection');
    paused.release();
    const res = await noting;
    const read = await t.http.get(url(`collections/${team}`)).set(org.users.member.auth);
    expect([res.status, res.body.error]).toEqual([404, read.body.error]);
    expect(res.body.error.code).toBe('knowledge_collection.not_found');
    await expect(locked.mock.results[0]?.value).resolves.toBe(false);
    expect(await stored()).toEqual(before);
    await t.http.patch(url(`collections/${team}`)).set(org.users.owner.auth).send({ readRoles: ['member', 'viewer'] }).expect(200);
  });
});
