import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { tableContents } from '../support/database.js';
import { startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

/**
 * The uploads given a multipart body busboy cannot read, sent as raw bytes: no boundary, a boundary the body lacks, a
 * body cut short, bytes that are no multipart at all. Busboy's errors carry no code and were rethrown: a 500. Each is a
 * 400 knowledge.invalid_field naming the problem, and writes nothing (every table, as before). A body of a media type
 * no operation takes, or JSON, is a 415 that names multipart/form-data on these two operations, not application/json.
 */
describe('knowledge: an upload whose multipart body cannot be read', () => {
  let t: KnowledgeApp;
  let owner: TestUser;
  let orgId: string;
  let collectionId: string;
  let documentId: string;
  let port: number;
  const url = (p: string) => `/v1/orgs/${orgId}/knowledge/${p}`;

  /** One request with exactly these bytes as its body, over a connection of its own. */
  const raw = (path: string, headers: Record<string, string>, bytes: Buffer): Promise<{ status: number; body: any }> =>
    new Promise((done, fail) => {
      const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path, agent: false,
        headers: { ...owner.auth, ...headers, 'Content-Length': bytes.length } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          let body: unknown;
          try { body = JSON.parse(text); } catch { body = text; }
          done({ status: res.statusCode!, body });
        });
      });
      req.on('error', fail);
      req.end(bytes);
    });

  const boundary = 'rmBoundary42';
  const form = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nTravel v2\r\n`
    + `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="travel.txt"\r\nContent-Type: text/plain\r\n\r\n`
    + `Travel is reimbursed within ten days of the trip, with receipts.\r\n--${boundary}--\r\n`);
  const multipart = (b = boundary) => ({ 'Content-Type': `multipart/form-data; boundary=${b}` });

  beforeAll(async () => {
    t = await startKnowledgeApp('default', { RATE_LIMITS_ENABLED: 'false' });
    owner = await registerUser(t, 'multipart-owner');
    orgId = await createOrg(t, owner, 'Multipart Ltd');
    await onEnterprisePlan(t, orgId);
    collectionId = (await t.http.post(url('collections')).set(owner.auth).send({ name: 'Handbook' }).expect(201)).body.id;
    documentId = (await t.http.post(url('documents')).set(owner.auth).send({ collectionId, title: 'Travel', text: 'Travel is reimbursed within thirty days.' }).expect(201)).body.id;
    await t.ingest();
    const server = t.app.getHttpServer();
    if (!server.listening) await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => t?.close());

  it('answers 400 knowledge.invalid_field naming the problem (it was a 500), and writes nothing', async () => {
    const upload = url(`collections/${collectionId}/documents`);
    const version = url(`documents/${documentId}/versions`);
    const before = await tableContents(t.db.admin);
    const answers = [
      await raw(upload, { 'Content-Type': 'multipart/form-data' }, form),
      await raw(upload, multipart('notInTheBody'), form),
      await raw(upload, multipart(), form.subarray(0, 60)),
      await raw(upload, multipart(), form.subarray(0, form.length - 20)),
      await raw(upload, multipart(), Buffer.from('hello world')),
      await raw(upload, multipart(), gzipSync(form)),
      await raw(version, { 'Content-Type': 'multipart/form-data' }, form),
      await raw(version, multipart(), form.subarray(0, 150)),
    ];
    const unreadable = (problem: string) => [400, { code: 'knowledge.invalid_field', message: `the multipart body could not be read: ${problem}` }];
    expect(answers.map((r) => [r.status, r.body?.error])).toEqual([
      unreadable('Multipart: Boundary not found'),
      unreadable('Unexpected end of multipart data'),
      unreadable('Unexpected end of multipart data'),
      unreadable('Unexpected end of multipart data'),
      unreadable('Unexpected end of multipart data'),
      unreadable('Unexpected end of multipart data'),
      unreadable('Multipart: Boundary not found'),
      unreadable('Unexpected end of multipart data'),
    ]);
    const after = await tableContents(t.db.admin);
    expect(Object.keys(after).filter((k) => after[k] !== before[k])).toEqual([]);
    // the same body, whole, is taken
    const taken = await raw(version, multipart(), form);
    expect([taken.status, taken.body?.latestVersion ?? taken.body?.error]).toEqual([201, 2]);
  });

  it('answers a body of another media type with a 415 that names multipart/form-data', async () => {
    const before = await tableContents(t.db.admin);
    const answers = [
      await raw(url(`collections/${collectionId}/documents`), { 'Content-Type': 'application/xml' }, Buffer.from('<file/>')),
      await raw(url(`documents/${documentId}/versions`), { 'Content-Type': 'text/plain' }, Buffer.from('Travel is reimbursed.')),
      await raw(url(`documents/${documentId}/versions`), { 'Content-Type': 'a/b/c' }, Buffer.from('Travel is reimbursed.')),
    ];
    expect(answers.map((r) => [r.status, r.body?.error])).toEqual(Array(3).fill([415, {
      code: 'unsupported_media_type', message: 'send the body as multipart/form-data' }]));
    const after = await tableContents(t.db.admin);
    expect(Object.keys(after).filter((k) => after[k] !== before[k])).toEqual([]);
  });

  it('answers a JSON body with the same 415 (it was a 400 knowledge.file_missing); an empty one is no body, and writes nothing', async () => {
    const before = await tableContents(t.db.admin);
    const json = { 'Content-Type': 'application/json' };
    const answers = [
      await raw(url(`collections/${collectionId}/documents`), json, Buffer.from(JSON.stringify({ title: 'Travel', file: 'Travel is reimbursed.' }))),
      await raw(url(`documents/${documentId}/versions`), { 'Content-Type': 'application/json; charset=utf-8' }, Buffer.from('{"file":"x"}')),
      // not JSON at all: refused for its type before it is parsed
      await raw(url(`documents/${documentId}/versions`), json, Buffer.from('{not json')),
      await raw(url(`collections/${collectionId}/documents`), json, Buffer.alloc(0)),
    ];
    expect(answers.map((r) => [r.status, r.body?.error])).toEqual([
      ...Array(3).fill([415, { code: 'unsupported_media_type', message: 'send the body as multipart/form-data' }]),
      [400, { code: 'knowledge.file_missing', message: 'send the file as multipart/form-data with a part named "file"' }],
    ]);
    const after = await tableContents(t.db.admin);
    expect(Object.keys(after).filter((k) => after[k] !== before[k])).toEqual([]);
  });
});
