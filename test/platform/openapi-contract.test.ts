import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { OpenAPIObject } from '@nestjs/swagger';
import { createTestApp, type TestApp } from '../support/app.js';
import { ResponseContract } from '../support/contract.js';

const VERB_ON_RESOURCE = /^(get|list|create|update|delete|set|post|reverse|revalue|start|archive|close|reopen|import|calculate|accept|revoke|leave|remove|change|rename|register|logIn|logOut|refresh|exchange|receive|check|verify|send|link|redeem|submit|approve|reject|comment|allocate|rotate|ping|replay|run|cancel|query|upload|search|reindex|restore|mark|reset|confirm|request|erase|refund|void)[A-Z]?[A-Za-z]*$/;

describe('the OpenAPI document as a contract', () => {
  let t: TestApp;
  let doc: OpenAPIObject;
  beforeAll(async () => {
    t = await createTestApp();
    doc = (await t.http.get('/docs-json').expect(200)).body;
  });
  afterAll(() => t.close());

  const operations = () =>
    Object.entries(doc.paths).flatMap(([path, item]) =>
      (['get', 'put', 'post', 'patch', 'delete'] as const).filter((m) => item[m]).map((m) => ({ path, method: m, op: item[m]! })));

  it('names every operation with a unique verb on a resource', () => {
    const ids = operations().map((o) => o.op.operationId!);
    expect(ids.filter((id) => !VERB_ON_RESOURCE.test(id))).toEqual([]);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(expect.arrayContaining(['listOrganizations', 'postJournalEntry', 'getTrialBalance']));
  });

  // getMetrics: no user token; the server's METRICS_TOKEN instead (checked by the handler)
  it('declares security: [] on exactly the public operations, and a bearer token on the others', () => {
    const open = operations().filter((o) => o.op.security?.length === 0).map((o) => o.op.operationId).sort();
    expect(open).toEqual(['checkLiveness', 'checkReadiness', 'confirmEmailChange', 'exchangeToken', 'getDataExportArchive', 'getMetrics', 'getPublicProviderAvailability', 'getPublicProviderProfile', 'listWebhookEventTypes', 'logIn', 'receiveStripeWebhook', 'redeemAppToken', 'refreshTokens', 'register', 'requestPasswordReset', 'resetPassword']);
    expect(operations().filter((o) => o.op.security?.length !== 0 && !o.op.security?.some((s) => 'bearer' in s))).toEqual([]);
    expect(doc.servers).toEqual([expect.objectContaining({ url: '/' })]);
  });

  it('types every property: no bare object in place of a nullable string or date, arrays of their items', () => {
    const bare: string[] = [];
    for (const [name, schema] of Object.entries(doc.components!.schemas!)) {
      for (const [prop, p] of Object.entries((schema as any).properties ?? {}) as [string, any][]) {
        if (p.type === 'object' && !p.properties && !p.additionalProperties && !p.allOf) bare.push(`${name}.${prop}`);
        if (p.type === 'array' && !p.items) bare.push(`${name}.${prop}`);
      }
    }
    expect(bare).toEqual([]);
    const user = doc.components!.schemas!.UserDto as any;
    expect(user.properties.name).toMatchObject({ type: 'string', nullable: true });
    expect(user.required).toContain('name');
    expect((doc.components!.schemas!.WorkingHoursDto as any).properties.days.items).toMatchObject({ type: 'integer', minimum: 1, maximum: 7 });
  });

  it('describes every schema', () => {
    const undescribed = Object.entries(doc.components!.schemas!).filter(([, s]) => !(s as { description?: string }).description).map(([name]) => name);
    expect(undescribed).toEqual([]);
  });

  it('describes every property of every schema', () => {
    const undescribed = Object.entries(doc.components!.schemas!).flatMap(([name, s]) =>
      Object.entries((s as { properties?: Record<string, { description?: string }> }).properties ?? {})
        .filter(([, p]) => !p.description).map(([prop]) => `${name}.${prop}`));
    expect(undescribed).toEqual([]);
  });

  it('gives the main operations examples, and every example matches its schema', () => {
    const contract = new ResponseContract(doc);
    const examples: { where: string; schema: object; value: unknown }[] = [];
    for (const { op } of operations()) {
      const body = (op.requestBody as any)?.content?.['application/json'];
      for (const [name, ex] of Object.entries<any>(body?.examples ?? {})) examples.push({ where: `${op.operationId} body ${name}`, schema: body.schema, value: ex.value });
      for (const [status, res] of Object.entries<any>(op.responses)) {
        const media = res.content?.['application/json'];
        if (media?.example !== undefined) examples.push({ where: `${op.operationId} ${status}`, schema: media.schema, value: media.example });
      }
    }
    const where = examples.map((e) => e.where);
    expect(where).toEqual(expect.arrayContaining(['register 202', 'logIn 200', 'createOrganization 201', 'postJournalEntry body capital', 'postJournalEntry 201', 'getTrialBalance 200']));
    expect(examples.map((e) => [e.where, contract.problems(e.schema, e.value)]).filter(([, p]) => p)).toEqual([]);
  });

  it('documents the generic error statuses on every operation', () => {
    for (const { op, path } of operations()) {
      expect({ path, has414: '414' in op.responses }).toEqual({ path, has414: true });
      if (op.security?.length) expect({ path, has401: '401' in op.responses }).toEqual({ path, has401: true });
      if (op.requestBody) expect({ path, statuses: ['400', '413', '415'].every((s) => s in op.responses) }).toEqual({ path, statuses: true });
    }
  });

  // the database's refusals are generic codes (mapDatabaseError): a deadlock answered 409 conflict.retry on
  // DELETE /webhooks/endpoints/{id}, whose document listed no 409, so a generated client had no type for it
  it('documents the statuses of the database\'s generic refusals: 403, 409 and 422 on every write, 422 on a read with input', () => {
    const generic = new Map((doc as { 'x-generic-error-codes'?: { code: string; status: number }[] })['x-generic-error-codes']!.map((c) => [c.code, String(c.status)]));
    expect(['forbidden', 'conflict.unique', 'conflict.reference', 'conflict.retry', 'invalid', 'rejected'].map((c) => generic.get(c)))
      .toEqual(['403', '409', '409', '409', '422', '422']);
    const missing = operations().flatMap(({ path, method, op }) => {
      const input = (op.parameters ?? []).some((p) => 'in' in p && (p.in === 'query' || (p.in === 'path' && p.name !== 'orgId')));
      const want = method !== 'get' ? ['403', '409', '422'] : input ? ['422'] : [];
      return want.filter((s) => !(s in op.responses)).map((s) => `${method} ${path} ${s}`);
    });
    expect(missing).toEqual([]);
  });

  // a generic "the plan does not include this, or a plan limit is reached" left a frontend unable to tell a read-only
  // subscription from a missing feature: each 402 names exactly the 402 codes of the operation's x-error-codes
  it('names in each 402 response exactly the 402 codes of its x-error-codes, and when each is answered', () => {
    type Coded = { code: string; status: number };
    const codesOf = (op: object): Coded[] => ((op as { 'x-error-codes'?: Coded[] })['x-error-codes'] ?? []);
    const known = new Set([...operations().flatMap(({ op }) => codesOf(op)), ...codesOf({ 'x-error-codes': (doc as { 'x-generic-error-codes'?: Coded[] })['x-generic-error-codes'] })].map((c) => c.code));
    const names = (text: string, code: string) => new RegExp(`(^|[^\\w.])${code.replace(/\./g, '\\.')}($|[^\\w.])`).test(text);
    const wrong: unknown[] = [];
    for (const { path, method, op } of operations()) {
      const codes = codesOf(op).filter((c) => c.status === 402).map((c) => c.code).sort();
      const description = (op.responses['402'] as { description?: string } | undefined)?.description;
      if (!codes.length && description === undefined) continue;
      const named = [...known].filter((code) => names(description ?? '', code)).sort();
      if (!codes.length || named.join() !== codes.join()) wrong.push({ operation: `${method.toUpperCase()} ${path}`, codes, named });
    }
    expect(wrong).toEqual([]);
    const describe402 = (id: string) => (operations().find((o) => o.op.operationId === id)!.op.responses['402'] as { description: string }).description;
    // a write that only needs a subscription that allows writing: read-only, nothing about features
    expect(describe402('createAiBudget')).toMatch(/^402 billing\.subscription_inactive: the organization's omnizen subscription .* is read-only: the trial ended, .*\.$/);
    expect(describe402('createAgentTrigger')).toContain("402 billing.feature_not_in_plan: the organization's omnizen plan does not include ai_automation");
    expect(describe402('createAgent')).toContain("402 billing.limit_reached: the omnizen plan's ai_agents limit is reached");
    // open to API keys: the key's plan check (api_access), checked on every keyed request
    expect(describe402('setFxRate')).toContain('full_accounting (details: app, feature, plan, upgradeTo = the cheapest plan that does; GET /v1/billing/apps lists each plan\'s features); or with an API key, when the organization\'s plan does not include API access (api_access)');
    // declared by the handler beyond its route's requirement (a line in a foreign currency needs full_accounting)
    expect(describe402('postJournalEntry')).toContain('; or checked by the operation itself: the plan does not include the feature');
    expect(describe402('getOrganization')).toMatch(/^402 billing\.feature_not_in_plan: with an API key, .*"API keys need a plan with API access"\)\.$/);
  });

  // orgId was declared with a format and no type ({"format":"uuid"}): the SDK read it as unknown on every organization route
  it('types every parameter', () => {
    const untyped = operations().flatMap(({ path, method, op }) => (op.parameters ?? [])
      .filter((p) => 'in' in p && !(p.schema && ('$ref' in p.schema || typeof p.schema.type === 'string')))
      .map((p) => `${method} ${path} ${(p as { in: string }).in} ${(p as { name: string }).name}`));
    expect(untyped).toEqual([]);
    const orgId = operations().find((o) => o.op.operationId === 'listAccounts')!.op.parameters!.find((p) => 'name' in p && p.name === 'orgId') as { schema: object };
    expect(orgId.schema).toEqual({ type: 'string', format: 'uuid' });
  });

  // a query flag validated as 'true' or 'false' (@IsIn) was documented as any string
  it('lists the values of every include* query flag', () => {
    const flags = operations().flatMap(({ path, op }) => (op.parameters ?? [])
      .filter((p) => 'in' in p && p.in === 'query' && /^include[A-Z]/.test(p.name))
      .map((p) => ({ where: `${path} ${(p as { name: string }).name}`, values: ((p as { schema?: { enum?: string[] } }).schema?.enum ?? []).slice().sort() })));
    expect(flags.map((f) => f.where)).toContain('/v1/orgs/{orgId}/ledger/accounts includeArchived');
    expect(flags.filter((f) => f.values.join() !== 'false,true')).toEqual([]);
  });

  // @ApiProduces gave every response of an operation its types: errors (always JSON) documented as CSV, PDF or an event
  // stream, and the CSV as the JSON DTO
  it('documents errors as JSON only, and a CSV, PDF, ZIP or event stream only on the success that serves it', () => {
    const nonJsonErrors = operations().flatMap(({ path, method, op }) => Object.entries(op.responses)
      .filter(([status]) => Number(status) >= 300)
      .flatMap(([status, r]) => Object.keys((r as { content?: object }).content ?? {}).filter((m) => m !== 'application/json').map((m) => `${method} ${path} ${status} ${m}`)));
    expect(nonJsonErrors).toEqual([]);
    const byId = (id: string) => operations().find((o) => o.op.operationId === id)!.op;
    const ok = (id: string, status = '200') => byId(id).responses[status] as { content: Record<string, { schema: any }>; headers?: Record<string, { schema: object }> };
    const csv = ['getGeneralLedger', 'getTrialBalance', 'getProfitAndLoss', 'getBalanceSheet', 'getVatReport', 'getArAging', 'getApAging'];
    const served = operations().flatMap(({ op }) => Object.entries(op.responses).flatMap(([status, r]) =>
      Object.keys((r as { content?: object }).content ?? {}).filter((m) => m !== 'application/json').map((m) => `${op.operationId} ${status} ${m}`))).sort();
    expect(served).toEqual([...csv.map((id) => `${id} 200 text/csv`), 'getDataExportArchive 200 application/zip', 'getInvoicePdf 200 application/pdf', 'runAgent 200 text/event-stream',
      'getMetrics 200 text/plain', 'getNotificationStream 200 text/event-stream'].sort());
    for (const id of csv) {
      const res = ok(id);
      expect({ id, csv: res.content['text/csv'].schema.type, json: res.content['application/json'].schema.$ref }).toEqual({ id, csv: 'string', json: expect.stringMatching(/^#\/components\/schemas\/\w+Dto$/) });
    }
    // what a file answer and the CSV of a long general ledger set
    for (const id of [...csv, 'getInvoicePdf', 'getDataExportArchive']) expect({ id, disposition: ok(id).headers?.['Content-Disposition']?.schema }).toEqual({ id, disposition: { type: 'string' } });
    expect(ok('getGeneralLedger').headers?.['X-Next-Cursor']?.schema).toEqual({ type: 'string' });
    expect(ok('getTrialBalance').content['application/json']).toHaveProperty('example');
    expect(Object.keys(ok('runAgent', '202').content)).toEqual(['application/json']);
  });

  // concurrent identical reversals replay the one posted first (its idempotency key, reversal:<entryId>) with a 200
  it('documents the 200 of a replayed reversal beside the 201', () => {
    const op = operations().find((o) => o.op.operationId === 'reverseJournalEntry')!.op;
    for (const status of ['200', '201']) {
      expect((op.responses[status] as { content: Record<string, { schema: object }> }).content['application/json'].schema).toEqual({ $ref: '#/components/schemas/JournalEntryDto' });
    }
  });

  it("passes Redocly's recommended rules with no errors", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'omnizen-openapi-'));
    try {
      const file = join(dir, 'openapi.json');
      writeFileSync(file, JSON.stringify(doc));
      const { stdout } = await promisify(execFile)(process.execPath, ['node_modules/@redocly/cli/bin/cli.js', 'lint', file, '--format=json', '--config=redocly.yaml'], { maxBuffer: 16 * 1024 * 1024 })
        .catch((err: { stdout: string }) => ({ stdout: err.stdout }));
      const report = JSON.parse(stdout.slice(stdout.indexOf('{')));
      expect(report.problems.filter((p: { severity: string }) => p.severity === 'error').map((p: { message: string }) => p.message)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('the response check itself', () => {
    it('reports a body that does not match, an undocumented status, and an error outside the error shape', () => {
      const contract = new ResponseContract(doc);
      const json = 'application/json; charset=utf-8';
      expect(contract.check('GET', '/v1/orgs', 200, json, JSON.stringify([{ id: 'x' }]))).toMatch(/does not match the documented schema/);
      expect(contract.check('GET', '/v1/orgs', 418, json, '{}')).toMatch(/status 418 is not documented/);
      expect(contract.check('GET', undefined, 404, json, '{"statusCode":404}')).toMatch(/not in the error shape/);
      const org = { id: '6c1f2b1e-6f0e-4c55-9b87-2a4d8e1b7f3a', name: 'A', accountType: 'business', domain: null, ownerUserId: 'u', createdAt: new Date().toISOString(), updatedAt: new Date().toISOString() };
      expect(contract.check('GET', '/v1/orgs', 200, json, JSON.stringify([org]))).toBeUndefined();
      expect(contract.check('GET', '/v1/orgs', 200, json, JSON.stringify([{ ...org, domain: 7 }]))).toMatch(/domain/);
    });
  });
});
