import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Sleeper } from '../../src/platform/ai/llm-provider.js';
import { OpenAiCompatibleProvider, organizationEndpointFetch } from '../../src/platform/ai/openai-provider.js';
import { outboundFetch } from '../../src/platform/http/outbound.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { testKeys } from '../integrations/keys.js';
import { agentsUrl } from './agents-support.js';

/**
 * An organization's own provider endpoint (PUT /ai/provider-key baseUrl) is a URL a user chose: the API calls it
 * with the organization's key, so it must not reach the API's own network (server-side request forgery). With
 * private networks not allowed (the production default): an address literal that is not public is refused when
 * stored, and a name resolving to one is refused when connecting, for runs and embeddings alike. The platform's
 * own endpoint (AI_BASE_URL, here the double on 127.0.0.1) is the operator's and is not guarded.
 */
describe('the organization\'s provider endpoint when private networks are not allowed', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  let owner: TestUser;
  let orgId: string;
  let agentId: string;
  const slept: number[] = [];
  const keyUrl = () => `/v1/orgs/${orgId}/ai/provider-key`;
  const storedKeys = async () => (await t.db.admin.query('SELECT base_url, key_hint FROM ai.provider_keys WHERE org_id = $1', [orgId])).rows;
  const keyAudits = async () => (await t.db.admin.query(`SELECT action FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'ai.provider_key%'`, [orgId])).rows.map((r) => r.action);

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    t = await createTestApp({
      AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-platform-key-0000', AI_MAX_RETRIES: '2', REDIS_URL: '', SECRETS_KEYS: testKeys('k1').env,
      OUTBOUND_ALLOW_PRIVATE_NETWORKS: 'false',
    });
    (t.app.get(Sleeper) as Sleeper).sleep = async (ms: number) => {
      slept.push(ms);
    };
    owner = await registerUser(t, 'endpoint-owner');
    orgId = await createOrg(t, owner, 'Endpoint Ltd');
    await onPlan(t, orgId, 'professional');
    agentId = (await t.http.post(agentsUrl(orgId)).set(owner.auth).send({
      name: 'Helper', type: 'accountant', instructions: 'Be brief.', modelId: 'gpt-4o', maxOutputTokens: 1000, maxSteps: 2, tools: [],
    }).expect(201)).body.id;
  });
  afterAll(async () => {
    await t?.close();
    await llm?.close();
  });
  beforeEach(() => {
    llm.requests.length = 0;
    llm.clear();
    slept.length = 0;
  });

  it('refuses to store a base URL naming a non-public address, carrying credentials or not http(s): 400, nothing stored', async () => {
    for (const baseUrl of ['http://127.0.0.1:1234/v1', 'http://169.254.169.254/latest', 'http://[::1]:8080/v1', 'https://10.0.0.5/v1', 'http://[::ffff:127.0.0.1]/v1']) {
      const res = await t.http.put(keyUrl()).set(owner.auth).send({ apiKey: 'sk-org-own-key-1234', baseUrl }).expect(400);
      expect(res.body.error).toMatchObject({ code: 'ai.base_url_not_public', message: expect.stringMatching(/^baseUrl names .+, which is not a public address$/) });
      expect(res.body.error.message).toContain(new URL(baseUrl).hostname);
    }
    const withCredentials = await t.http.put(keyUrl()).set(owner.auth).send({ apiKey: 'sk-org-own-key-1234', baseUrl: 'https://user:secret@api.example.com/v1' }).expect(400);
    expect(withCredentials.body.error).toMatchObject({ code: 'ai.base_url_invalid', message: 'baseUrl must not carry credentials (the key goes in apiKey)' });
    const notHttp = await t.http.put(keyUrl()).set(owner.auth).send({ apiKey: 'sk-org-own-key-1234', baseUrl: 'file:///etc/passwd' }).expect(400);
    expect(notHttp.body.error.code).toBe('validation_failed');
    expect(await storedKeys()).toEqual([]);
    expect(await keyAudits()).toEqual([]);
    await t.http.get(keyUrl()).set(owner.auth).expect(404);
  });

  it('fails a run through a stored endpoint whose name resolves to a non-public address, without reaching it and without retrying', async () => {
    const baseUrl = llm.url.replace('127.0.0.1', 'localhost');
    // a name: resolved and checked when connecting, as it may resolve elsewhere by then
    await t.http.put(keyUrl()).set(owner.auth).send({ apiKey: 'sk-org-own-key-1234', baseUrl }).expect(200)
      .expect((r) => expect(r.body).toMatchObject({ keyHint: '1234', baseUrl }));
    expect(await storedKeys()).toEqual([{ base_url: baseUrl, key_hint: '1234' }]);
    try {
      const res = await t.http.post(agentsUrl(orgId, `/${agentId}/runs`)).set(owner.auth).send({ messages: [{ role: 'user', content: 'What is our cash?' }] }).expect(200);
      const refused = 'the provider endpoint localhost resolves to a non-public address: the connection was refused';
      expect(res.body).toMatchObject({ status: 'failed', errorClass: 'provider_error', errorMessage: refused });
      expect(res.body.trace).toEqual([expect.objectContaining({ kind: 'llm_call', status: 'failed', errorClass: 'provider_error', errorMessage: refused, attempts: 1 })]);
      const { rows } = await t.db.admin.query('SELECT status, error_class, error_message FROM ai.runs WHERE id = $1', [res.body.id]);
      expect(rows).toEqual([{ status: 'failed', error_class: 'provider_error', error_message: refused }]);
      expect(slept).toEqual([]); // not retried
      // an address literal stored before it was checked when stored is refused when connecting too
      await t.db.admin.query('UPDATE ai.provider_keys SET base_url = $2 WHERE org_id = $1', [orgId, llm.url]);
      const literal = await t.http.post(agentsUrl(orgId, `/${agentId}/runs`)).set(owner.auth).send({ messages: [{ role: 'user', content: 'And now?' }] }).expect(200);
      expect(literal.body).toMatchObject({ status: 'failed', errorClass: 'provider_error', errorMessage: 'the provider endpoint 127.0.0.1 is not a public address: the connection was refused' });
      expect(llm.requests).toEqual([]);
    } finally {
      await t.http.delete(keyUrl()).set(owner.auth).expect(204);
    }
  });

  it('still runs through the platform\'s own endpoint, which is the operator\'s choice (here on 127.0.0.1)', async () => {
    llm.enqueue({ kind: 'text', content: 'platform', usage: { prompt: 3, completion: 1 } });
    const res = await t.http.post(agentsUrl(orgId, `/${agentId}/runs`)).set(owner.auth).send({ messages: [{ role: 'user', content: 'Hello' }] }).expect(200);
    expect(res.body).toMatchObject({ status: 'succeeded', output: 'platform' });
    expect(llm.requests.map((r) => r.authorization)).toEqual(['Bearer sk-test-platform-key-0000']);
  });
});

describe('the fetch of an organization\'s endpoint', () => {
  let llm: OpenAiDouble;
  let redirector: Server;
  let redirectorUrl: string;
  beforeAll(async () => {
    llm = await startOpenAiDouble();
    redirector = createServer((req, res) => {
      res.writeHead(307, { location: `${llm.url}${req.url?.replace(/^\/v1/, '')}` });
      res.end();
    });
    await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
    redirectorUrl = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}/v1`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => redirector.close(() => resolve()));
    await llm.close();
  });

  it('does not follow a redirect: the key stays with the endpoint it was given to', async () => {
    const provider = new OpenAiCompatibleProvider({ baseUrl: redirectorUrl, apiKey: 'sk-redirected-0000', timeoutMs: 30_000, fetch: organizationEndpointFetch(true) });
    await expect(provider.chat({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }))
      .rejects.toMatchObject({ errorClass: 'provider_error', status: 307, message: 'the provider answered 307, a redirect: set the endpoint it leads to as the base URL' });
    expect(llm.requests).toEqual([]);
  });

  it('carries chat, streamed chat and embeddings through the guard\'s own HTTP client (undici with its own agent)', async () => {
    llm.requests.length = 0;
    // outboundFetch with agent options: the guard's client without its address check, so the double on 127.0.0.1 answers
    const provider = new OpenAiCompatibleProvider({ baseUrl: llm.url, apiKey: 'sk-guarded-0000', timeoutMs: 30_000, fetch: outboundFetch(true, { keepAliveTimeoutMs: 1_000 }) });
    llm.enqueue({ kind: 'text', content: 'plain answer', usage: { prompt: 4, completion: 2 } }, { kind: 'text', content: 'streamed answer', usage: { prompt: 4, completion: 2 } });
    expect(await provider.chat({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }))
      .toMatchObject({ content: 'plain answer', usage: { input: 4, output: 2, cachedInput: 0, cacheWrite: 0 } });
    const tokens: string[] = [];
    expect(await provider.chat({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream: true, onToken: (d) => tokens.push(d) }))
      .toMatchObject({ content: 'streamed answer', usage: { input: 4, output: 2 } });
    expect(tokens.join('')).toBe('streamed answer');
    const { vectors } = await provider.embed({ model: 'text-embedding-3-small', input: ['a', 'b'] });
    expect(vectors).toHaveLength(2);
    expect(llm.requests.map((r) => [r.path, r.authorization])).toEqual([
      ['/v1/chat/completions', 'Bearer sk-guarded-0000'], ['/v1/chat/completions', 'Bearer sk-guarded-0000'], ['/v1/embeddings', 'Bearer sk-guarded-0000'],
    ]);
  });
});
