import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DatabaseService } from '../../src/platform/database/database.service.js';
import { KnowledgeService } from '../../src/modules/knowledge/knowledge.service.js';
import { onEnterprisePlan, orgWithRoles, type OrgWithRoles } from '../support/factories.js';
import { startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

/**
 * An upload takes as long as its client takes to send it: no transaction, and no connection of the API's pool, waits
 * on the body meanwhile (twenty slow uploads would otherwise hold the whole pool and every organization would wait).
 */
describe('knowledge: a slow upload holds no database connection while its body arrives', () => {
  let t: KnowledgeApp;
  let org: OrgWithRoles;
  let collection: string;

  beforeAll(async () => {
    t = await startKnowledgeApp();
    org = await orgWithRoles(t, 'Slow Upload Ltd');
    await onEnterprisePlan(t, org.orgId);
    collection = (await t.http.post(`/v1/orgs/${org.orgId}/knowledge/collections`).set(org.users.owner.auth).send({ name: 'Handbook' }).expect(201)).body.id;
  });
  afterAll(() => t.close());

  it('sends half the body, finds the pool idle, then sends the rest: the document is created', async () => {
    await t.app.listen(0, '127.0.0.1');
    const { port } = t.app.getHttpServer().address() as AddressInfo;
    const boundary = 'omnizen-stall-boundary';
    const head = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.txt"\r\nContent-Type: text/plain\r\n\r\n`;
    const text = 'Expenses above 500 need a receipt and the approval of a manager. '.repeat(200);
    const tail = `\r\n--${boundary}--\r\n`;
    const body = Buffer.from(head + text + tail);
    // resolves once the route has looked at the collection: from then on it reads the body
    const knowledge = t.app.get(KnowledgeService);
    const getCollection = knowledge.getCollection.bind(knowledge);
    let checked!: () => void;
    const collectionChecked = new Promise<void>((resolve) => { checked = resolve; });
    const spy = jest.spyOn(knowledge, 'getCollection').mockImplementation(async (...args: Parameters<KnowledgeService['getCollection']>) => {
      const found = await getCollection(...args);
      checked();
      return found;
    });
    let req!: ClientRequest;
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      req = httpRequest({
        host: '127.0.0.1', port, method: 'POST', path: `/v1/orgs/${org.orgId}/knowledge/collections/${collection}/documents`,
        headers: { ...org.users.owner.auth, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(body.length) },
      }, (res: IncomingMessage) => {
        let data = '';
        res.on('data', (c: Buffer) => { data += c.toString('utf8'); });
        res.on('end', () => resolve({ status: res.statusCode!, body: data }));
      });
      req.on('error', reject);
      req.write(body.subarray(0, head.length + 1000));
    });
    try {
      await collectionChecked;
      // the body is half sent: the checks' transactions have committed and no connection of the pool is taken
      const pool = t.app.get(DatabaseService);
      while (pool.poolStats().inUse > 0) await new Promise((r) => setImmediate(r));
      const { rows: idleInTx } = await t.db.admin.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND usename <> current_user AND state LIKE 'idle in transaction%'`);
      expect(idleInTx[0].n).toBe(0);
    } finally {
      spy.mockRestore();
    }
    req.end(body.subarray(head.length + 1000));
    const res = await answer;
    expect(res.status).toBe(201);
    const doc = JSON.parse(res.body);
    expect(doc).toMatchObject({ collectionId: collection, title: 'slow.txt' });
    const { rows } = await t.db.admin.query('SELECT count(*)::int AS n FROM ai.knowledge_documents WHERE org_id = $1 AND id = $2', [org.orgId, doc.id]);
    expect(rows[0].n).toBe(1);
  });
});
