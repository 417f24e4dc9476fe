import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { ledgerUrl } from '../ledger/ledger-support.js';
import { rUrl, setupReceivables } from '../receivables/receivables-support.js';
import { createVendor, payablesUrl } from '../payables/payables-support.js';
import { agentsUrl } from '../agents/agents-support.js';
import { API_KEY_SCOPE_NAMES } from '../../src/platform/auth/api-key-scopes.js';

/**
 * Every scope that opens writes, swept: with a key holding it, a write route of that scope answers 2xx and its rows
 * are in the database (the postings too: a single entry, a batch, an issued invoice, a vendor payment, each naming
 * the key as its author and in its audit row); with a key lacking it, 403 api_keys.scope_missing and nothing written.
 * The read scopes (org:read, ledger:read, ...) open no write route. The posting functions' REST path stays closed
 * to claims naming a key (test/security/rest-path-writes.test.ts covers every table).
 */
describe('API keys: one write route per scope', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  let owner: TestUser;
  let orgId: string;
  let acc: Record<string, string>;
  let customer: string;
  let vendor: string;
  let agent: string;

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    t = await createTestApp({ AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-platform-key-0000', REDIS_URL: '' });
    owner = await registerUser(t, 'keyed-writes');
    orgId = await createOrg(t, owner, 'Keyed Writes Ltd');
    await onEnterprisePlan(t, orgId);
    ({ acc, customer } = await setupReceivables(t, orgId, owner, 'EUR'));
    vendor = await createVendor(t, orgId, owner);
    agent = (await t.http.post(agentsUrl(orgId)).set(owner.auth).send({ name: 'Keyed', type: 'accountant', modelId: 'gpt-4o', maxSteps: 1, tools: [] }).expect(201)).body.id;
  });
  afterAll(async () => {
    await t?.close();
    await llm?.close();
  });

  const keyWith = async (scopes: string[]) => {
    const res = await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(owner.auth).send({ name: scopes.join(' '), scopes }).expect(201);
    return { id: res.body.id as string, secret: res.body.secret as string, auth: { Authorization: `Bearer ${res.body.secret}` } };
  };
  const count = async (sql: string, params: unknown[] = []) => (await t.db.admin.query(sql, [orgId, ...params])).rows[0].n as number;
  const rent = (amount: string) => [{ accountId: acc['5200'], debit: amount }, { accountId: acc['1100'], credit: amount }];

  /** One write per scope: `write(key)` sends it, `written()` counts its rows (the key's own, where rows name an author). */
  const writes: Record<string, { write: (auth: Record<string, string>) => Promise<{ status: number; body: any }>; written: (keyId: string) => Promise<number> }> = {
    'ledger:write': {
      write: (auth) => t.http.post(ledgerUrl(orgId, 'journal-entries')).set(auth).send({ date: '2026-02-01', memo: 'keyed rent', lines: rent('10.00') }),
      written: (keyId) => count(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1 AND memo = 'keyed rent' AND created_by = $2`, [`api_key:${keyId}`]),
    },
    'receivables:write': {
      write: (auth) => t.http.post(rUrl(orgId, 'customers')).set(auth).send({ name: 'Keyed Customer', email: 'ap@keyed.example' }),
      written: () => count(`SELECT count(*)::int AS n FROM finance.customers WHERE org_id = $1 AND name = 'Keyed Customer'`),
    },
    'payables:write': {
      write: (auth) => t.http.post(payablesUrl(orgId, 'vendors')).set(auth).send({ name: 'Keyed Vendor', email: 'ar@keyed.example' }),
      written: () => count(`SELECT count(*)::int AS n FROM finance.vendors WHERE org_id = $1 AND name = 'Keyed Vendor'`),
    },
    'analytics:write': {
      write: (auth) => t.http.post(`/v1/orgs/${orgId}/analytics/events`).set(auth).send({ events: [{ name: 'keyed.opened', userId: 'app-user-1' }] }),
      written: () => count(`SELECT count(*)::int AS n FROM core.analytics_events WHERE org_id = $1 AND name = 'keyed.opened'`),
    },
    'agents:run': {
      write: (auth) => t.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(auth).send({ messages: [{ role: 'user', content: 'hello' }] }),
      written: () => count(`SELECT count(*)::int AS n FROM ai.runs WHERE org_id = $1 AND agent_id = $2 AND status = 'succeeded'`, [agent]),
    },
  };

  it('covers every scope that is not a read scope (the :read ones open no write route)', () => {
    expect(API_KEY_SCOPE_NAMES.filter((s) => !s.endsWith(':read')).sort()).toEqual(Object.keys(writes).sort());
  });

  it.each(Object.keys(writes))('%s: a key holding it writes (2xx, the row stored); a key lacking it gets 403 and writes nothing', async (scope) => {
    const { write, written } = writes[scope];
    // every other scope, but not this one
    const lacking = await keyWith(API_KEY_SCOPE_NAMES.filter((s) => s !== scope));
    const refused = await write(lacking.auth);
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatchObject({ code: 'api_keys.scope_missing', details: { scope } });
    expect(await written(lacking.id)).toBe(0);

    const holding = await keyWith([scope]);
    const done = await write(holding.auth);
    expect([200, 201]).toContain(done.status);
    expect(await written(holding.id)).toBe(1);
  });

  it('ledger:write posts a single entry and a batch, each naming the key as author in the entry and its audit row', async () => {
    const key = await keyWith(['ledger:write']);
    const actor = `api_key:${key.id}`;
    const single = await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(key.auth).send({ date: '2026-02-02', memo: 'keyed single', lines: rent('20.00') }).expect(201);
    expect(single.body).toMatchObject({ memo: 'keyed single', totalBase: '20.00', createdBy: actor });
    const batch = await t.http.post(ledgerUrl(orgId, 'journal-entries/batch')).set(key.auth)
      .send({ entries: [{ date: '2026-02-03', memo: 'keyed batch', lines: rent('30.00') }, { date: '2026-02-04', memo: 'keyed batch', lines: rent('40.00') }] }).expect(201);
    expect(batch.body).toMatchObject({ posted: 2, rejected: 0 });
    const { rows } = await t.db.admin.query(`SELECT e.memo, e.total_base::text AS total, e.created_by, a.actor_id, a.principal_type, a.action
      FROM finance.journal_entries e JOIN core.audit_logs a ON a.org_id = e.org_id AND a.entity_type = 'journal_entry' AND a.entity_id = e.id::text
      WHERE e.org_id = $1 AND e.memo IN ('keyed single', 'keyed batch') ORDER BY e.entry_date`, [orgId]);
    expect(rows).toEqual(['20.0000', '30.0000', '40.0000'].map((total, i) => ({
      memo: i === 0 ? 'keyed single' : 'keyed batch', total, created_by: actor, actor_id: actor, principal_type: 'service', action: 'ledger.entry_posted',
    })));
  });

  it('receivables:write and payables:write post through the ledger too: an issued invoice and a vendor payment', async () => {
    const ar = await keyWith(['receivables:write', 'receivables:read']);
    const draft = await t.http.post(rUrl(orgId, 'invoices')).set(ar.auth)
      .send({ customerId: customer, invoiceDate: '2026-02-05', lines: [{ description: 'Keyed work', quantity: '1', unitPrice: '100.00', revenueAccountId: acc['4100'] }] });
    expect(draft.status).toBe(201);
    const issued = await t.http.post(rUrl(orgId, `invoices/${draft.body.id}/issue`)).set(ar.auth).send({}).expect(200);
    expect(issued.body.status).toBe('issued');
    const invoiceEntry = await t.db.admin.query(`SELECT e.created_by FROM finance.invoices i JOIN finance.journal_entries e ON e.org_id = i.org_id AND e.id = i.entry_id
      WHERE i.org_id = $1 AND i.id = $2`, [orgId, draft.body.id]);
    expect(invoiceEntry.rows).toEqual([{ created_by: `api_key:${ar.id}` }]);

    const ap = await keyWith(['payables:write']);
    const paid = await t.http.post(payablesUrl(orgId, 'payments')).set(ap.auth)
      .send({ vendorId: vendor, paymentDate: '2026-02-06', amount: '25.00', bankAccountId: acc['1100'] }).expect(201);
    const paymentEntry = await t.db.admin.query(`SELECT e.created_by, e.total_base::text AS total FROM finance.journal_entries e WHERE e.org_id = $1 AND e.id = $2`, [orgId, paid.body.journalEntryId]);
    expect(paymentEntry.rows).toEqual([{ created_by: `api_key:${ap.id}`, total: '25.0000' }]);
  });

  it('keeps the posting functions closed to a key\'s claims outside the API (the REST path): nothing is posted', async () => {
    const key = await keyWith(['ledger:write']);
    const claims = { role: 'authenticated', org_id: orgId, api_key_id: key.id, api_key_hash: createHash('sha256').update(key.secret).digest('hex') };
    const payload = JSON.stringify({ date: '2026-02-07', memo: 'rest path', lines: rent('1.00') });
    await expect(t.db.as(claims, 'authenticated', 'SELECT * FROM finance.post_journal_entry($1::jsonb)', [payload])).rejects.toMatchObject({ code: '42501' });
    await expect(t.db.as(claims, 'authenticated', 'SELECT finance.post_journal_entries($1::jsonb)', [`[${payload}]`])).rejects.toMatchObject({ code: '42501' });
    expect(await count(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1 AND memo = 'rest path'`)).toBe(0);
  });
});
