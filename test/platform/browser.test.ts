import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';

const APP = 'https://app.example.test';

describe('browser callers: CORS, security headers, the docs', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ CORS_ORIGINS: `${APP}, http://localhost:5173` });
  });
  afterAll(() => t.close());

  it('answers a preflight from an allowed origin, credentials included', async () => {
    const res = await t.http.options('/v1/orgs').set('Origin', APP).set('Access-Control-Request-Method', 'POST')
      .set('Access-Control-Request-Headers', 'authorization,content-type').expect(204);
    expect(res.headers['access-control-allow-origin']).toBe(APP);
    expect(res.headers['access-control-allow-credentials']).toBe('true');
    expect(res.headers['access-control-allow-methods']).toContain('PATCH');
    expect(res.headers['access-control-allow-headers']).toMatch(/authorization/i);
    const get = await t.http.get('/health').set('Origin', 'http://localhost:5173').expect(200);
    expect(get.headers['access-control-allow-origin']).toBe('http://localhost:5173');
    expect(get.headers['access-control-expose-headers']).toContain('x-request-id');
  });

  it('lets a page of an allowed origin read the headers the API sets on purpose: cursor, file name, rate limit, retry', async () => {
    const res = await t.http.get('/health').set('Origin', APP).expect(200);
    expect(res.headers['access-control-allow-origin']).toBe(APP);
    const exposed = String(res.headers['access-control-expose-headers']).toLowerCase().split(/\s*,\s*/);
    expect(exposed).toEqual(expect.arrayContaining([
      'x-request-id', 'x-next-cursor', 'content-disposition', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'retry-after',
    ]));
    // also on an error answer (a 4xx of the error filter), where Retry-After and the request id matter most
    const err = await t.http.get('/v1/no-such-route').set('Origin', APP).expect(404);
    expect(String(err.headers['access-control-expose-headers']).toLowerCase()).toContain('retry-after');
    expect(err.body.error.code).toBeDefined();
  });

  it('gives an origin not on the list no Access-Control-Allow-Origin', async () => {
    const res = await t.http.options('/v1/orgs').set('Origin', 'https://evil.example.test').set('Access-Control-Request-Method', 'POST');
    expect(res.status).toBeLessThan(500);
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    const get = await t.http.get('/health').set('Origin', 'https://evil.example.test').expect(200);
    expect(get.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('sends security headers (helmet) on API answers and errors', async () => {
    for (const res of [await t.http.get('/health').expect(200), await t.http.get('/v1/no-such-route').expect(404)]) {
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['strict-transport-security']).toMatch(/max-age=/);
      expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
      expect(res.headers['content-security-policy']).toContain("default-src 'self'");
      expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(res.headers['content-security-policy']).not.toContain('upgrade-insecure-requests');
    }
  });

  it('keeps /docs working under the CSP: the page, its scripts from this server, authorization kept across reloads', async () => {
    const page = await t.http.get('/docs').redirects(1).expect(200);
    const csp = page.headers['content-security-policy'];
    expect(csp).toContain("script-src 'self'");
    const scripts = [...page.text.matchAll(/<script[^>]*src="([^"]+)"/g)].map((m) => m[1]);
    expect(scripts.length).toBeGreaterThan(0);
    // no inline script (the CSP would block it): every script is a file this server serves
    expect(page.text.replace(/<script[^>]*src="[^"]+"[^>]*>\s*<\/script>/g, '')).not.toMatch(/<script/);
    for (const src of scripts) await t.http.get(new URL(src, 'http://x/docs').pathname).expect(200);
    const init = await t.http.get('/docs/swagger-ui-init.js').expect(200);
    expect(init.text).toContain('"persistAuthorization": true');
  });
});

describe('API_DOCS=false', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ API_DOCS: 'false' });
  });
  afterAll(() => t.close());

  it('serves neither /docs nor /docs-json', async () => {
    const res = await t.http.get('/docs').expect(404);
    expect(res.body.error.code).toBe('not_found');
    await t.http.get('/docs-json').expect(404);
    await t.http.get('/health').expect(200);
  });
});
