import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createServer, request as httpRequest, type ClientRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { until } from '../support/throwaway-servers.js';
import { DatabaseService } from '../../src/platform/database/database.service.js';
import { KnowledgeService } from '../../src/modules/knowledge/knowledge.service.js';
import { onEnterprisePlan, orgWithRoles, type OrgWithRoles } from '../support/factories.js';
import { startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

/**
 * The embeddings endpoint the application calls in this file: it passes requests on to the embeddings double, and
 * holds the next one, once told to, until the test releases it (a slow provider without a clock).
 */
async function startHoldingProxy(target: () => string) {
  let hold: { arrived: () => void; released: Promise<void> } | undefined;
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', async () => {
      const held = hold;
      hold = undefined;
      if (held) {
        held.arrived();
        await held.released;
      }
      const answer = await fetch(`${target()}${req.url!.replace(/^\/v1/, '')}`, {
        method: req.method, body, headers: { authorization: String(req.headers.authorization), 'content-type': 'application/json' },
      });
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(await answer.text());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    /** holds the next request: `arrived` resolves when it is in, `release()` lets it through */
    holdNext() {
      let arrived!: () => void;
      let release!: () => void;
      const arrival = new Promise<void>((resolve) => { arrived = resolve; });
      hold = { arrived, released: new Promise<void>((resolve) => { release = resolve; }) };
      return { arrival, release };
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * An upload takes as long as its client takes to send it, and a search as long as the embedding provider takes to
 * embed its query: no transaction, and no connection of the API's pool, waits on either meanwhile (twenty slow uploads
 * or searches would otherwise hold the whole pool and every organization would wait).
 */
describe('knowledge: a slow upload or embedding provider holds no database connection meanwhile', () => {
  let t: KnowledgeApp;
  let org: OrgWithRoles;
  let collection: string;
  let proxy: Awaited<ReturnType<typeof startHoldingProxy>>;

  /** Backends of the API's login in this database inside a transaction, and connections the API's pool has taken. */
  const heldByTheApi = async () => {
    const { rows } = await t.db.admin.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND usename <> current_user AND state LIKE 'idle in transaction%'`);
    return { idleInTransaction: rows[0].n, poolInUse: t.app.get(DatabaseService).poolStats().inUse };
  };

  beforeAll(async () => {
    proxy = await startHoldingProxy(() => t.embeddings.url);
    t = await startKnowledgeApp('default', { AI_BASE_URL: proxy.url });
    org = await orgWithRoles(t, 'Slow Upload Ltd');
    await onEnterprisePlan(t, org.orgId);
    collection = (await t.http.post(`/v1/orgs/${org.orgId}/knowledge/collections`).set(org.users.owner.auth).send({ name: 'Handbook' }).expect(201)).body.id;
  });
  afterAll(async () => {
    await t.close();
    await proxy.close();
  });

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
      await until('no connection of the pool is taken', () => pool.poolStats().inUse === 0);
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

  it('a search whose query the provider is still embedding holds no transaction; once it answers, the search does', async () => {
    const note = (await t.http.post(`/v1/orgs/${org.orgId}/knowledge/documents`).set(org.users.owner.auth)
      .send({ collectionId: collection, title: 'Parking', text: 'Parking spaces are assigned by the office manager.' }).expect(201)).body;
    await t.ingest();
    const { arrival, release } = proxy.holdNext();
    const searching = t.http.post(`/v1/orgs/${org.orgId}/knowledge/search`).set(org.users.owner.auth).send({ query: 'parkng spaces', k: 3 }).then((r) => r);
    await arrival;
    // the provider has the query: what the call needed was read in a transaction that has committed, and the search's
    // own has not begun
    try {
      expect(await heldByTheApi()).toEqual({ idleInTransaction: 0, poolInUse: 0 });
    } finally {
      release();
    }
    const res = await searching;
    expect(res.status).toBe(200);
    expect(res.body.items[0]).toMatchObject({ documentId: note.id, documentTitle: 'Parking', vectorRank: 1 });
    expect(res.body.items[0].text).toContain('office manager');
  });
});
