import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createOmniZenClient, memoryTokenStore, type Schemas } from '../../clients/typescript/src/index.js';
import { createOpenApiDocument } from '../../src/platform/http/openapi.js';
import { documentText, schemaText, SDK_DIR } from '../../scripts/sdk.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { uniqueEmail, verifyEmailOf } from '../support/factories.js';

describe('the TypeScript SDK (clients/typescript)', () => {
  let t: TestApp;
  let baseUrl: string;
  const clock = new ManualClock();
  beforeAll(async () => {
    t = await createTestApp({}, { clock });
    await t.app.listen(0, '127.0.0.1');
    baseUrl = `http://127.0.0.1:${(t.app.getHttpServer().address() as AddressInfo).port}`;
  });
  afterAll(() => t.close());

  it('is what `npm run sdk` generates from the current document (regenerate and commit when this fails)', async () => {
    const doc = createOpenApiDocument(t.app);
    expect(readFileSync(join(SDK_DIR, 'openapi.json'), 'utf8')).toBe(documentText(doc));
    expect(readFileSync(join(SDK_DIR, 'src', 'schema.ts'), 'utf8')).toBe(await schemaText(doc));
  });

  it('runs a real flow, typed end to end: register, log in, create an organization, start the books, post an entry, read the trial balance', async () => {
    const api = createOmniZenClient({ baseUrl });
    const email = uniqueEmail('sdk');
    const registered = await api.POST('/v1/auth/register', { body: { email, password: 'correct horse battery staple', name: 'SDK User' } });
    expect(registered.response.status).toBe(202);
    expect(registered.data).toEqual({ status: 'check_email', message: expect.any(String) });
    const login = await api.POST('/v1/auth/login', { body: { email, password: 'correct horse battery staple' } });
    const user: Schemas['UserDto'] = login.data!.user;
    expect(user).toMatchObject({ email, name: 'SDK User' });
    await verifyEmailOf(t, user); // setup only, as the mailed link would: a business organization needs it

    const org = await api.POST('/v1/orgs', { body: { name: 'SDK Trading' } });
    const orgId = org.data!.id;
    const params = { path: { orgId } };
    expect((await api.POST('/v1/orgs/{orgId}/ledger/books', { params, body: { baseCurrency: 'EUR', fiscalYearStart: '2026-01-01' } })).response.status).toBe(201);
    const accounts = (await api.GET('/v1/orgs/{orgId}/ledger/accounts', { params })).data!;
    const code = (c: string) => accounts.find((a) => a.code === c)!.id;
    const entry = await api.POST('/v1/orgs/{orgId}/ledger/journal-entries', {
      params,
      body: { date: '2026-01-02', memo: 'Capital in', lines: [{ accountId: code('1100'), debit: '10000.00' }, { accountId: code('3100'), credit: '10000.00' }] },
    });
    expect(entry.response.status).toBe(201);
    const tb = await api.GET('/v1/orgs/{orgId}/ledger/reports/trial-balance', { params: { path: { orgId }, query: { asOf: '2026-01-31' } } });
    expect(tb.data).toMatchObject({ balanced: true, baseCurrency: 'EUR' });
    expect(Number(tb.data!.totalDebit)).toBe(10000);

    // errors come back typed in the error shape
    const missing = await api.GET('/v1/orgs/{orgId}', { params: { path: { orgId: '00000000-0000-4000-8000-000000000000' } } });
    expect(missing.error?.error.code).toBe('organization.not_found');
  });

  it('refreshes an expired access token once and repeats the call; a refused refresh clears the tokens', async () => {
    const tokens = memoryTokenStore();
    const api = createOmniZenClient({ baseUrl, tokens });
    const email = uniqueEmail('refresh');
    await api.POST('/v1/auth/register', { body: { email, password: 'correct horse battery staple' } });
    expect(tokens.get()).toBeUndefined(); // registering signs nobody in
    await api.POST('/v1/auth/login', { body: { email, password: 'correct horse battery staple' } });
    const first = tokens.get()!;
    tokens.set({ ...first, accessToken: 'expired.or.invalid' });
    const orgs = await api.GET('/v1/orgs');
    expect(orgs.response.status).toBe(200);
    expect(orgs.data!.length).toBe(1);
    expect(tokens.get()!.refreshToken).not.toBe(first.refreshToken);

    clock.advance((t.config.auth.refreshGraceSeconds + 1) * 1000); // past the grace window for parallel tabs
    tokens.set({ accessToken: 'expired.or.invalid', refreshToken: first.refreshToken }); // already used: refused
    const refused = await api.GET('/v1/orgs');
    expect(refused.response.status).toBe(401);
    expect(tokens.get()).toBeUndefined();
  });
});
