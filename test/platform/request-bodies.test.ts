import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type IncomingHttpHeaders, request as httpRequest } from 'node:http';
import { gzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import type { OpenAPIObject } from '@nestjs/swagger';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';

// Request bodies and URLs at the HTTP layer, sent as raw bytes: a JSON body must be UTF-8 (not decoded leniently into
// U+FFFD), no form or text body reaches a DTO, JSON other than an object is not taken for {}, a long query string is a
// 414, and whatever a write answers for a body it has no use for is in the document (the test app's contract check turns
// an undocumented answer into a 500 contract.response_mismatch).

interface Raw { status: number; body: any; text: string; headers: IncomingHttpHeaders }

describe('request bodies and URLs at the HTTP layer', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  let port: number;

  beforeAll(async () => {
    t = await createTestApp({ RATE_LIMITS_ENABLED: 'false' });
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Bytes Ltd');
    const server = t.app.getHttpServer();
    if (!server.listening) await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    const violations = [...t.contract.violations];
    t.contract.violations.length = 0;
    await t.close();
    expect(violations).toEqual([]);
  });

  /** One request with exactly these bytes as its body (and these headers), over a connection of its own. */
  const raw = (method: string, path: string, headers: Record<string, string | number>, bytes?: Buffer): Promise<Raw> =>
    new Promise((done, fail) => {
      const req = httpRequest({ host: '127.0.0.1', port, method, path, agent: false,
        // with a Transfer-Encoding, Node's client sends the bytes chunked (one chunk, then 0\r\n\r\n)
        headers: { ...headers, ...(bytes && !('Transfer-Encoding' in headers) ? { 'Content-Length': bytes.length } : {}) } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          let body: unknown;
          try { body = JSON.parse(text); } catch { body = undefined; }
          done({ status: res.statusCode!, body, text, headers: res.headers });
        });
      });
      req.on('error', fail);
      req.end(bytes);
    });
  const org = async () => (await t.db.admin.query(
    `SELECT name, updated_at AS "updatedAt", (SELECT count(*)::int FROM core.audit_logs a WHERE a.org_id = o.id) AS audits
       FROM core.organizations o WHERE id = $1`, [orgId])).rows[0];
  const json = (s: string, ...bytes: (string | number[])[]) => Buffer.concat([Buffer.from(s), ...bytes.map((b) => (typeof b === 'string' ? Buffer.from(b) : Buffer.from(b)))]);

  it('refuses a JSON body that is not UTF-8 (400 naming the byte) or declares another charset (415), and writes nothing', async () => {
    const before = await org();
    const patch = (bytes: Buffer, type = 'application/json') => raw('PATCH', `/v1/orgs/${orgId}`, { ...owner.auth, 'Content-Type': type }, bytes);
    // the UTF-8 of a lone surrogate (CESU-8), a byte UTF-8 never has, an overlong "/"
    for (const [bytes, at] of [[json('{"name":"A', [0xed, 0xa0, 0x80], 'B"}'), 10], [json('{"name":"A', [0xff], 'B"}'), 10], [json('{"name":"', [0xc0, 0xaf], '"}'), 9]] as [Buffer, number][]) {
      const res = await patch(bytes);
      expect({ status: res.status, error: res.body?.error }).toEqual({ status: 400, error: { code: 'bad_request.json', message: `the request body is not valid UTF-8 (byte ${at}): JSON is sent in UTF-8` } });
    }
    for (const type of ['application/json; charset=latin1', 'application/json;charset="ISO-8859-1"', 'application/json; charset=utf-16',
      'application/json; charset="latin\\1"', 'application/json; charset=us-ascii7']) {
      const res = await patch(json('{"name":"Jos', [0xe9], '"}'), type);
      expect({ type, status: res.status, code: res.body?.error?.code, message: res.body?.error?.message })
        .toEqual({ type, status: 415, code: 'unsupported_media_type', message: expect.stringMatching(/UTF-8.*charset/) });
    }
    expect(await org()).toEqual(before);
    // UTF-8, however the charset is spelt, is taken: a quoted pair, US-ASCII (a subset of UTF-8), an empty charset (none),
    // a parameter quoting ";charset=" before the real one
    for (const type of ['application/json; charset=UTF-8', 'application/json; charset="utf-8"', 'application/json;charset=utf8',
      'application/json; charset="utf\\-8"', 'application/json; charset=US-ASCII', 'application/json; charset=', 'application/json; charset=""',
      'application/json; profile="a;charset=latin1"; charset=utf-8']) {
      const res = await patch(json('{"name":"Jos', [0xc3, 0xa9], '"}'), type);
      expect({ type, status: res.status, name: res.body?.name }).toEqual({ type, status: 200, name: 'José' });
    }
    expect((await org()).name).toBe('José');
  });

  it('refuses a form or text/plain body with 415 on every write, and writes nothing', async () => {
    const orgs = async () => (await t.db.admin.query('SELECT count(*)::int AS n FROM core.organizations WHERE owner_user_id = $1', [owner.id])).rows[0].n;
    const before = { orgs: await orgs(), org: await org() };
    const form = { ...owner.auth, 'Content-Type': 'application/x-www-form-urlencoded' };
    const answers = [
      await raw('POST', '/v1/orgs', form, Buffer.from('name=Form%20Org')),
      await raw('PATCH', `/v1/orgs/${orgId}`, form, Buffer.from('name=Renamed%20By%20Form')),
      await raw('POST', '/v1/orgs', { ...owner.auth, 'Content-Type': 'text/plain' }, Buffer.from('{"name":"Text Org"}')),
      await raw('PATCH', `/v1/orgs/${orgId}`, { ...owner.auth, 'Content-Type': 'text/plain; charset=utf-8' }, Buffer.from('{"name":"Text"}')),
    ];
    expect(answers.map((r) => [r.status, r.body?.error])).toEqual(Array(4).fill([415, { code: 'unsupported_media_type', message: 'send the body as application/json' }]));
    expect({ orgs: await orgs(), org: await org() }).toEqual(before);
  });

  it('takes an empty form or text/plain body as no body (curl -d \'\', fetch with body \'\'): the route runs as without one', async () => {
    const orgs = async () => (await t.db.admin.query('SELECT count(*)::int AS n FROM core.organizations WHERE owner_user_id = $1', [owner.id])).rows[0].n;
    const before = { orgs: await orgs(), org: await org() };
    const empty = (method: string, path: string, type: string) => raw(method, path, { ...owner.auth, 'Content-Type': type }, Buffer.alloc(0));
    // the name is required: the DTO's 400, not the media type's 415
    for (const type of ['application/x-www-form-urlencoded', 'text/plain; charset=utf-8']) {
      const res = await empty('POST', '/v1/orgs', type);
      expect({ type, status: res.status, code: res.body?.error?.code, fields: res.body?.error?.details?.map((d: { field: string }) => d.field) })
        .toEqual({ type, status: 400, code: 'validation_failed', fields: ['name'] });
    }
    expect(await orgs()).toBe(before.orgs);
    // every field optional: runs, and changes nothing
    for (const type of ['application/x-www-form-urlencoded', 'text/plain']) {
      const res = await empty('PATCH', `/v1/orgs/${orgId}`, type);
      expect({ type, status: res.status, name: res.body?.name }).toEqual({ type, status: 200, name: before.org.name });
    }
    expect((await org()).name).toBe(before.org.name);
  });

  it('refuses a multipart body with 415 where the operation is not an upload (it ran as no body), and writes nothing', async () => {
    const boundary = 'h7bBoundary';
    const form = (fields: Record<string, string>) => Buffer.from(Object.entries(fields)
      .map(([k, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`).join('') + `--${boundary}--\r\n`);
    const multipart = (auth: Record<string, string>) => ({ ...auth, 'Content-Type': `multipart/form-data; boundary=${boundary}` });
    const before = await org();
    const person = await registerUser(t, 'multipart-eraser');
    const answers = [
      await raw('PATCH', `/v1/orgs/${orgId}`, multipart(owner.auth), form({ name: 'Pwned' })),
      await raw('POST', '/v1/orgs', multipart(owner.auth), form({ name: 'Multipart Org' })),
      await raw('DELETE', '/v1/me', multipart(person.auth), form({})),
      await raw('POST', '/v1/auth/login', multipart({}), form({ email: person.email, password: 'x' })),
    ];
    expect(answers.map((r) => [r.status, r.body?.error])).toEqual(Array(4).fill([415, {
      code: 'unsupported_media_type', message: 'send the body as application/json: only the file uploads take multipart/form-data' }]));
    expect(await org()).toEqual(before);
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.organizations WHERE owner_user_id = $1 AND name = $2', [owner.id, 'Multipart Org'])).rows[0].n).toBe(0);
    expect((await t.db.admin.query('SELECT email FROM core."User" WHERE id = $1', [person.id])).rows[0].email).toBe(person.email);
    // a read is not refused for a Content-Type it does not read a body of
    const read = await raw('GET', `/v1/orgs/${orgId}`, multipart(owner.auth));
    expect([read.status, read.body?.name]).toEqual([200, before.name]);
  });

  it('refuses JSON other than an object where the body is a DTO (null was taken for {}), and still runs without a body', async () => {
    const before = await org();
    for (const [text, sent] of [['null', 'null'], ['5', 'a number'], ['"x"', 'a string'], ['[]', 'an array'], ['[{"name":"A"}]', 'an array']]) {
      const res = await raw('PATCH', `/v1/orgs/${orgId}`, { ...owner.auth, 'Content-Type': 'application/json' }, Buffer.from(text));
      expect({ text, status: res.status, error: res.body?.error }).toEqual({ text, status: 400, error: {
        code: 'validation_failed', message: `the body must be a JSON object, not ${sent}`, details: [{ field: 'body', problems: [`the body must be a JSON object, not ${sent}`] }] } });
    }
    expect(await org()).toEqual(before);
    // DELETE /v1/me with null ran the erasure
    const person = await registerUser(t, 'eraser');
    const erase = await raw('DELETE', '/v1/me', { ...person.auth, 'Content-Type': 'application/json' }, Buffer.from('null'));
    expect({ status: erase.status, code: erase.body?.error?.code }).toEqual({ status: 400, code: 'validation_failed' });
    expect((await t.db.admin.query('SELECT email FROM core."User" WHERE id = $1', [person.id])).rows[0].email).toBe(person.email);
    // no body at all: the DTO's fields are all optional, and the document says the body may be left out
    const none = await raw('PATCH', `/v1/orgs/${orgId}`, owner.auth);
    expect({ status: none.status, name: none.body?.name }).toEqual({ status: 200, name: before.name });
  });

  it('documents 400, 413 and 415 on every write, with a body of its own or none, and 431 on every operation', async () => {
    // bodyless writes read a body sent to them: an empty JSON one is a 400, another media type a 415 (both were undocumented)
    const emptyJson = { ...owner.auth, 'Content-Type': 'application/json' };
    const verification = await raw('POST', '/v1/auth/email-verification', emptyJson, Buffer.alloc(0));
    const dataExport = await raw('POST', '/v1/me/data-export', emptyJson, Buffer.alloc(0));
    const archive = await raw('POST', `/v1/orgs/${orgId}/ledger/accounts/00000000-0000-4000-8000-000000000000/archive`,
      { ...owner.auth, 'Content-Type': 'application/vnd.api+json' }, Buffer.from('{}'));
    expect([verification, dataExport, archive].map((r) => [r.status, r.body?.error?.code]))
      .toEqual([[400, 'bad_request.json'], [400, 'bad_request.json'], [415, 'unsupported_media_type']]);
    const doc: OpenAPIObject = (await t.http.get('/docs-json').expect(200)).body;
    const missing: string[] = [];
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item as Record<string, { responses: Record<string, unknown> }>)) {
        const want = method === 'get' ? ['414', '431'] : ['400', '413', '414', '415', '431'];
        for (const status of want) if (!(status in op.responses)) missing.push(`${method} ${path} ${status}`);
      }
    }
    expect(missing).toEqual([]);
    expect(doc.paths['/v1/orgs/{orgId}'].patch!.requestBody).toMatchObject({ required: false });
    expect(doc.paths['/v1/orgs'].post!.requestBody).toMatchObject({ required: true });
  });

  it('refuses a body sent with a Content-Encoding (415, Accept-Encoding: identity) or a transfer coding other than chunked (400), and writes nothing: both close the connection', async () => {
    const before = await org();
    const plain = Buffer.from('{"name":"Renamed"}');
    const patch = (headers: Record<string, string>, bytes: Buffer | undefined = plain) =>
      raw('PATCH', `/v1/orgs/${orgId}`, { ...owner.auth, 'Content-Type': 'application/json', ...headers }, bytes);
    // a proxy or WAF that honours the coding sees another body than the one the API would store
    const coded = [
      [{ 'Content-Encoding': 'gzip' }, plain, 'gzip'],
      [{ 'Content-Encoding': 'deflate, br' }, plain, 'deflate, br'],
      [{ 'Content-Encoding': 'identity, GZip' }, plain, 'gzip'],
      [{ 'Content-Encoding': 'gzip' }, gzipSync(plain), 'gzip'],
      [{ 'Content-Encoding': 'gzip', 'Transfer-Encoding': 'chunked' }, plain, 'gzip'],
    ] as const;
    for (const [headers, bytes, named] of coded) {
      const res = await patch(headers, bytes);
      expect({ headers, status: res.status, error: res.body?.error, acceptEncoding: res.headers['accept-encoding'], connection: res.headers.connection }).toEqual({ headers, status: 415, error: {
        code: 'unsupported_media_type', message: `the body is sent with Content-Encoding ${named}: send it uncompressed (no Content-Encoding, or identity)` },
      acceptEncoding: 'identity', connection: 'close' });
      // refused after the onRequest hooks: the answer has the security headers and the request id
      expect([res.headers['x-content-type-options'], res.headers['x-request-id']]).toEqual(['nosniff', res.body.requestId]);
    }
    // Node's parser takes the chunking off and leaves gzip to the application
    for (const te of ['gzip, chunked', 'deflate,chunked']) {
      const res = await patch({ 'Transfer-Encoding': te });
      // a 400, not a 501: a client's mistake must not raise the server-error alert nor report to Sentry (review rq)
      expect({ te, status: res.status, error: res.body?.error, connection: res.headers.connection }).toEqual({ te, status: 400, connection: 'close', error: {
        code: 'unsupported_transfer_coding', message: `the Transfer-Encoding ${te.split(',')[0]} is not supported: send the body with Content-Length, or chunked only` } });
    }
    // Stripe never compresses: its raw route too
    const stripe = await raw('POST', '/v1/billing/stripe/webhook', { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip', 'Stripe-Signature': 't=1,v1=00' }, gzipSync('{"id":"evt_1"}'));
    expect([stripe.status, stripe.body?.error?.code]).toEqual([415, 'unsupported_media_type']);
    expect(await org()).toEqual(before);
    // a request with no body is not refused for its header, nor a read (whose body is not read), nor identity
    const bodiless = await raw('PATCH', `/v1/orgs/${orgId}`, { ...owner.auth, 'Content-Encoding': 'gzip' });
    const bodilessZero = await patch({ 'Content-Encoding': 'gzip' }, Buffer.alloc(0));
    const read = await raw('GET', `/v1/orgs/${orgId}`, { ...owner.auth, 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' }, gzipSync(plain));
    expect([bodiless, read].map((r) => [r.status, r.body?.name])).toEqual([[200, before.name], [200, before.name]]);
    expect([bodilessZero.status, bodilessZero.body?.error?.code]).toEqual([400, 'bad_request.json']);
    const identity = await patch({ 'Content-Encoding': 'identity', 'Transfer-Encoding': 'chunked' });
    expect([identity.status, identity.body?.name]).toEqual([200, 'Renamed']);
    expect((await org()).name).toBe('Renamed');
  });

  it('takes a zero-length body as no body however it is framed (chunked) and whatever its type; another type with bytes is a 415', async () => {
    const before = await org();
    const answers = [
      await raw('PATCH', `/v1/orgs/${orgId}`, { ...owner.auth, 'Transfer-Encoding': 'chunked' }, Buffer.alloc(0)),
      await raw('PATCH', `/v1/orgs/${orgId}`, { ...owner.auth, 'Content-Type': 'application/xml' }, Buffer.alloc(0)),
      await raw('PATCH', `/v1/orgs/${orgId}`, { ...owner.auth, 'Content-Type': 'application/octet-stream', 'Transfer-Encoding': 'chunked' }, Buffer.alloc(0)),
    ];
    expect(answers.map((r) => [r.status, r.body?.name])).toEqual(Array(3).fill([200, before.name]));
    // DELETE /v1/me without a body erases the person (a sign-in within 5 minutes): an empty chunked body is no body
    const person = await registerUser(t, 'chunked-eraser');
    const erase = await raw('DELETE', '/v1/me', { ...person.auth, 'Transfer-Encoding': 'chunked' }, Buffer.alloc(0));
    expect(erase.status).toBe(200);
    expect((await t.db.admin.query('SELECT email FROM core."User" WHERE id = $1', [person.id])).rows[0].email).not.toBe(person.email);
    // (a PATCH without a body runs, as with Content-Length: 0: the name is kept)
    expect((await org()).name).toBe(before.name);
    // bytes of a type no operation takes, or of none, are a 415; an empty application/json body stays a 400
    const unchanged = await org();
    const refused = [
      await raw('PATCH', `/v1/orgs/${orgId}`, { ...owner.auth, 'Content-Type': 'application/xml' }, Buffer.from('<name>X</name>')),
      await raw('PATCH', `/v1/orgs/${orgId}`, { ...owner.auth, 'Transfer-Encoding': 'chunked' }, Buffer.from('{"name":"X"}')),
    ];
    expect(refused.map((r) => [r.status, r.body?.error])).toEqual(Array(2).fill([415, { code: 'unsupported_media_type', message: 'send the body as application/json' }]));
    const emptyJson = await raw('PATCH', `/v1/orgs/${orgId}`, { ...owner.auth, 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }, Buffer.alloc(0));
    expect([emptyJson.status, emptyJson.body?.error?.code]).toEqual([400, 'bad_request.json']);
    expect(await org()).toEqual(unchanged);
  });

  it('answers a query string over the header limit with 414 uri_too_long naming the URL; large headers stay a 431', async () => {
    for (const length of [20_000, 1_000_000]) {
      const res = await raw('GET', `/v1/orgs/${orgId}/audit-logs?action=${'x'.repeat(length)}`, owner.auth);
      expect({ length, status: res.status, error: res.body?.error }).toEqual({ length, status: 414, error: {
        code: 'uri_too_long', message: 'the URL (path and query string) is longer than the API accepts: with the headers, at most 16 KB' } });
      expect(res.text).not.toContain('xxxxxxxx');
    }
    const headers = await raw('GET', '/v1/orgs', { ...owner.auth, 'x-padding': 'x'.repeat(20_000) });
    expect([headers.status, headers.body?.error?.code]).toEqual([431, 'headers_too_large']);
    // the Stripe webhook still gets its raw bytes: an unsigned event is refused by the signature check, not the parser
    const stripe = await raw('POST', '/v1/billing/stripe/webhook', { 'Content-Type': 'application/json; charset=utf-8', 'Stripe-Signature': 't=1,v1=00' }, Buffer.from('{"id":"evt_1"}'));
    expect(['billing.webhook_signature', 'billing.stripe_not_configured']).toContain(stripe.body?.error?.code);
  });
});
