import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onEnterprisePlan, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { payablesUrl } from '../payables/payables-support.js';
import { findEverywhere } from './columns.js';
import { partySubject } from '../../src/modules/privacy/audit-sealing.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { testKeys } from '../integrations/keys.js';
import { agentsUrl } from '../agents/agents-support.js';
import { issueInvoice, setupReceivables } from '../receivables/receivables-support.js';
import { AuditService } from '../../src/modules/audit/audit.service.js';
import { DatabaseUnavailableError } from '../../src/platform/errors/database-errors.js';

describe('POST /v1/orgs/{orgId}/privacy/vendors/{vendorId}/erasure: a natural-person vendor', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  let acc: Record<string, string>;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Books Ltd');
    await onEnterprisePlan(t, orgId);
    acc = await startBooks(t, orgId, owner);
  });
  afterAll(() => t.close());

  it('blanks contact fields and pseudonymizes the name; the posted bill keeps amounts and number; the trial balance is unchanged; audited without personal data', async () => {
    const person = { name: 'Quentin Vendorsson', contactPerson: 'Quentin Vendorsson', email: 'quentin.vendorsson@example.test', phone: '+49 170 5551234',
      taxId: 'DE999888777', billingAddress: 'Privatweg 7, 10115 Berlin' };
    const vendor = (await t.http.post(payablesUrl(orgId, 'vendors')).set(owner.auth).send(person).expect(201)).body;
    const bill = (await t.http.post(payablesUrl(orgId, 'bills')).set(owner.auth)
      .send({ vendorId: vendor.id, billDate: '2026-02-10', lines: [{ accountId: acc['5200'], unitPrice: '250.00' }] }).expect(201)).body;
    await t.http.post(payablesUrl(orgId, `bills/${bill.id}/submit`)).set(owner.auth).expect(200);
    const tbBefore = (await t.http.get(ledgerUrl(orgId, 'reports/trial-balance')).set(owner.auth).expect(200)).body;
    const billBefore = (await t.http.get(payablesUrl(orgId, `bills/${bill.id}`)).set(owner.auth).expect(200)).body;

    const res = await t.http.post(`/v1/orgs/${orgId}/privacy/vendors/${vendor.id}/erasure`).set(owner.auth).expect(200);
    expect(res.body).toMatchObject({ party: 'vendor', partyId: vendor.id, name: `Erased vendor ${vendor.id.slice(0, 8)}` });

    const shown = (await t.http.get(payablesUrl(orgId, `vendors/${vendor.id}`)).set(owner.auth).expect(200)).body;
    expect(shown).toMatchObject({ name: `Erased vendor ${vendor.id.slice(0, 8)}`, contactPerson: null, email: null, phone: null, taxId: null, billingAddress: null });
    const billAfter = (await t.http.get(payablesUrl(orgId, `bills/${bill.id}`)).set(owner.auth).expect(200)).body;
    expect({ ...billAfter, vendor: undefined, vendorName: undefined }).toEqual({ ...billBefore, vendor: undefined, vendorName: undefined });
    expect((await t.http.get(ledgerUrl(orgId, 'reports/trial-balance')).set(owner.auth).expect(200)).body).toEqual(tbBefore);

    const audit = await t.db.admin.query(`SELECT after FROM core.audit_logs WHERE action = 'party.erased' AND entity_id = $1`, [vendor.id]);
    expect(audit.rows).toEqual([{ after: { party: 'vendor', erased: true } }]);
    // nowhere: the audit snapshots of its creation held it sealed with the vendor's key, which the erasure deleted
    for (const needle of [person.email, person.phone, person.billingAddress, person.name]) {
      expect(await findEverywhere(t.db.admin, needle)).toEqual([]);
    }
    const created = (await t.http.get(`/v1/orgs/${orgId}/audit-logs?action=payables.vendor_created&entityId=${vendor.id}`).set(owner.auth).expect(200)).body.items[0];
    expect(created.after).toMatchObject({ id: vendor.id, name: '[erased]', email: '[erased]', phone: '[erased]', billingAddress: '[erased]' });
  });

  it('erases a natural-person customer the same way (the catalog\'s customer party table)', async () => {
    const customer = (await t.http.post(`/v1/orgs/${orgId}/receivables/customers`).set(owner.auth)
      .send({ name: 'Ruth Customerova', contactPerson: 'Ruth Customerova', email: 'ruth.customerova@example.test', phone: '+420 777 123 456' }).expect(201)).body;
    const res = await t.http.post(`/v1/orgs/${orgId}/privacy/customers/${customer.id}/erasure`).set(owner.auth).expect(200);
    expect(res.body).toMatchObject({ party: 'customer', partyId: customer.id, name: `Erased customer ${customer.id.slice(0, 8)}` });
    const row = await t.db.admin.query('SELECT name, contact_person, email, phone FROM finance.customers WHERE id = $1', [customer.id]);
    expect(row.rows).toEqual([{ name: `Erased customer ${customer.id.slice(0, 8)}`, contact_person: null, email: null, phone: null }]);
    expect(await findEverywhere(t.db.admin, 'ruth.customerova@example.test')).toEqual([]);
  });

  it('a service key erases too, and its erasure deletes the party\'s key: the sealed snapshots read as erased', async () => {
    const vendor = (await t.http.post(payablesUrl(orgId, 'vendors')).set(owner.auth)
      .send({ name: 'Sven Servicemann', email: 'sven.servicemann@example.test' }).expect(201)).body;
    const keys = async () => (await t.db.admin.query('SELECT count(*)::int AS n FROM core.personal_data_keys WHERE subject = $1', [partySubject('vendor', orgId, vendor.id)])).rows[0].n;
    expect(await keys()).toBe(1);
    const service = jwt.sign({ role: 'service_role', iss: 'supabase', service: 'crm-sync' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 600 });
    const res = await t.http.post(`/v1/orgs/${orgId}/privacy/vendors/${vendor.id}/erasure`).set('Authorization', `Bearer ${service}`).expect(200);
    expect(res.body).toMatchObject({ party: 'vendor', partyId: vendor.id, name: `Erased vendor ${vendor.id.slice(0, 8)}` });
    expect(await keys()).toBe(0);
    const audit = await t.db.admin.query(`SELECT actor_id, after FROM core.audit_logs WHERE action = 'party.erased' AND entity_id = $1`, [vendor.id]);
    expect(audit.rows).toEqual([{ actor_id: 'service:crm-sync', after: { party: 'vendor', erased: true } }]);
    expect(await findEverywhere(t.db.admin, 'sven.servicemann@example.test')).toEqual([]);
  });

  it('a viewer cannot erase (403), another organization\'s vendor is not found (404), nor is a malformed id', async () => {
    const viewer = await registerUser(t, 'viewer');
    await addMember(t, orgId, viewer, 'viewer');
    const vendor = (await t.http.post(payablesUrl(orgId, 'vendors')).set(owner.auth).send({ name: 'Kept Vendor', email: 'kept@example.test' }).expect(201)).body;
    await t.http.post(`/v1/orgs/${orgId}/privacy/vendors/${vendor.id}/erasure`).set(viewer.auth).expect(403);
    const other = await registerUser(t, 'other');
    const otherOrg = await createOrg(t, other, 'Other Ltd');
    const res = await t.http.post(`/v1/orgs/${otherOrg}/privacy/vendors/${vendor.id}/erasure`).set(other.auth).expect(404);
    expect(res.body.error.code).toBe('privacy.party_not_found');
    await t.http.post(`/v1/orgs/${orgId}/privacy/vendors/not-a-uuid/erasure`).set(owner.auth).expect(404); // as every malformed id
    const kept = (await t.http.get(payablesUrl(orgId, `vendors/${vendor.id}`)).set(owner.auth).expect(200)).body;
    expect(kept).toMatchObject({ name: 'Kept Vendor', email: 'kept@example.test' });
  });
});

describe('a party\'s erasure and the AI runs that read it', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  beforeAll(async () => {
    llm = await startOpenAiDouble();
    t = await createTestApp({ AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-platform-key-0000', AI_MAX_RETRIES: '0', REDIS_URL: '', SECRETS_KEYS: testKeys('k1').env });
  });
  afterAll(async () => {
    await t?.close();
    await llm?.close();
  });

  it('the runs whose tool results named the customer lose their content (steps and answer); a run that did not name it keeps its own', async () => {
    const owner = await registerUser(t, 'party-runs');
    const orgId = await createOrg(t, owner, 'Runs Ltd');
    await onPlan(t, orgId, 'professional');
    const a = await setupReceivables(t, orgId, owner, 'EUR');
    await issueInvoice(t, orgId, owner, { customerId: a.customer, invoiceDate: '2026-01-10', dueDate: '2026-02-09',
      lines: [{ description: 'Consulting', quantity: '1', unitPrice: '100', revenueAccountId: a.acc['4100'] }] });
    const name = (await t.db.admin.query('SELECT name FROM finance.customers WHERE id = $1', [a.customer])).rows[0].name as string;
    const agent = (await t.http.post(agentsUrl(orgId)).set(owner.auth).send({
      name: 'Collector', type: 'accountant', instructions: 'Chase.', modelId: 'gpt-4o', maxOutputTokens: 1000, maxSteps: 3, tools: ['list_open_invoices'],
    }).expect(201)).body.id;
    llm.enqueue(
      { kind: 'tool_calls', usage: { prompt: 10, completion: 10 }, calls: [{ name: 'list_open_invoices', arguments: '{}' }] },
      { kind: 'text', content: `${name} owes 100.`, usage: { prompt: 10, completion: 5 } },
      { kind: 'text', content: 'Nothing to chase today.', usage: { prompt: 10, completion: 5 } },
    );
    const named = (await t.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(owner.auth).send({ messages: [{ role: 'user', content: 'Who owes us?' }] }).expect(200)).body.id;
    const other = (await t.http.post(agentsUrl(orgId, `/${agent}/runs`)).set(owner.auth).send({ messages: [{ role: 'user', content: 'Anything?' }] }).expect(200)).body.id;
    const naming = async () => (await t.db.admin.query(`SELECT 'step' AS what FROM ai.run_steps WHERE org_id = $1 AND strpos(detail::text, $2) > 0
      UNION ALL SELECT 'run' FROM ai.runs WHERE org_id = $1 AND strpos(coalesce(output, '') || input::text, $2) > 0 ORDER BY 1`, [orgId, name])).rows;
    expect(await naming()).toEqual(expect.arrayContaining([{ what: 'run' }, { what: 'step' }]));

    await t.http.post(`/v1/orgs/${orgId}/privacy/customers/${a.customer}/erasure`).set(owner.auth).expect(200);

    expect(await naming()).toEqual([]);
    const runs = await t.db.admin.query('SELECT id, input, output, status FROM ai.runs WHERE org_id = $1 ORDER BY started_at', [orgId]);
    expect(runs.rows).toEqual([
      { id: named, input: {}, output: null, status: 'succeeded' },
      { id: other, input: expect.objectContaining({ messages: [{ role: 'user', content: 'Anything?' }] }), output: 'Nothing to chase today.', status: 'succeeded' },
    ]);
    const steps = await t.db.admin.query(`SELECT run_id, count(*)::int AS n, count(*) FILTER (WHERE detail = '{}'::jsonb)::int AS blank
      FROM ai.run_steps WHERE org_id = $1 GROUP BY run_id`, [orgId]);
    // the named run's steps stay (their costs), every one blank; the other run's keep their detail
    const ofNamed = steps.rows.find((r) => r.run_id === named);
    expect(ofNamed).toEqual({ run_id: named, n: expect.any(Number), blank: ofNamed?.n });
    expect(ofNamed!.n).toBeGreaterThan(0);
    const ofOther = steps.rows.find((r) => r.run_id === other);
    expect(ofOther?.blank).toBe(0);
  });

  /** A run of the organization still running (its execution elsewhere), whose tool result named `text`. */
  const runningRun = async (orgId: string, startedBy: string, text: string) => {
    const q = (sql: string, params: unknown[]) => t.db.admin.query(sql, params);
    const agentId = (await q(`INSERT INTO ai.agents (org_id, name, type, model_id, created_by) VALUES ($1, 'Runner ' || gen_random_uuid(), 'assistant', 'gpt-4o-mini', $2) RETURNING id`,
      [orgId, startedBy])).rows[0].id;
    const { rows: [{ id }] } = await q(`INSERT INTO ai.runs (org_id, agent_id, model_id, started_by, trigger, input, started_at)
      VALUES ($1, $2, 'gpt-4o-mini', $3, 'interactive', $4, now()) RETURNING id`, [orgId, agentId, startedBy, JSON.stringify({ messages: [{ role: 'user', content: 'Who owes us?' }] })]);
    await q(`INSERT INTO ai.run_steps (org_id, run_id, step_no, kind, name, status, started_at, ended_at, latency_ms, detail)
      VALUES ($1, $2, 1, 'tool_call', 'list_open_invoices', 'succeeded', now(), now(), 0, $3)`, [orgId, id, JSON.stringify({ result: text })]);
    return id as string;
  };
  const stored = async (id: string) => (await t.db.admin.query(`SELECT r.status, r.input::text AS input, r.error_message,
    (SELECT json_agg(s.detail ORDER BY s.step_no) FROM ai.run_steps s WHERE s.org_id = r.org_id AND s.run_id = r.id) AS details
    FROM ai.runs r WHERE r.id = $1`, [id])).rows[0];

  it('a run still running that named the customer is cancelled before its content goes (audited and announced as a cancel; the erasure audits the count); another running run goes on', async () => {
    const owner = await registerUser(t, 'party-running');
    const orgId = await createOrg(t, owner, 'Running Party Ltd');
    await onPlan(t, orgId, 'professional');
    const customer = (await t.http.post(`/v1/orgs/${orgId}/receivables/customers`).set(owner.auth)
      .send({ name: 'Rita Runningova', email: 'rita.runningova@example.test' }).expect(201)).body;
    const naming = await runningRun(orgId, owner.id, `[{"customerId":"${customer.id}","name":"Rita Runningova"}]`);
    const other = await runningRun(orgId, owner.id, '[]');

    await t.http.post(`/v1/orgs/${orgId}/privacy/customers/${customer.id}/erasure`).set(owner.auth).expect(200);

    expect(await stored(naming)).toEqual({ status: 'cancelled', input: '{}', error_message: null, details: [{}] });
    expect(await stored(other)).toEqual({ status: 'running', input: expect.stringContaining('Who owes us?'), error_message: null, details: [{ result: '[]' }] });
    expect(await findEverywhere(t.db.admin, 'Rita Runningova')).toEqual([]);
    const audits = await t.db.admin.query(`SELECT action, entity_id, actor_id, after FROM core.audit_logs WHERE org_id = $1
      AND action IN ('ai.run_cancelled', 'party.erased', 'party.runs_erased') ORDER BY id`, [orgId]);
    expect(audits.rows).toEqual([
      { action: 'party.erased', entity_id: customer.id, actor_id: owner.id, after: { party: 'customer', erased: true } },
      { action: 'ai.run_cancelled', entity_id: naming, actor_id: owner.id, after: expect.objectContaining({ status: 'cancelled', errorClass: 'cancelled' }) },
      { action: 'party.runs_erased', entity_id: customer.id, actor_id: owner.id, after: { party: 'customer', runsBlanked: 1, runsCancelled: 1 } },
    ]);
    const events = await t.db.admin.query(`SELECT payload->'payload'->>'runId' AS run_id FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'agent.run.failed'`, [orgId]);
    expect(events.rows).toEqual([{ run_id: naming }]);
  });

  it('a party erasure that fails (rolled back) leaves the runs naming the party as they are: nothing blanked, nothing cancelled, nothing audited', async () => {
    const owner = await registerUser(t, 'party-fails');
    const orgId = await createOrg(t, owner, 'Failing Party Ltd');
    await onPlan(t, orgId, 'professional');
    const customer = (await t.http.post(`/v1/orgs/${orgId}/receivables/customers`).set(owner.auth)
      .send({ name: 'Fritz Failsworth', email: 'fritz.failsworth@example.test' }).expect(201)).body;
    const naming = await runningRun(orgId, owner.id, `[{"customerId":"${customer.id}","name":"Fritz Failsworth"}]`);
    const before = await stored(naming);
    const audit = t.app.get(AuditService);
    const record = audit.record.bind(audit);
    jest.spyOn(audit, 'record').mockImplementation(async (...args: Parameters<AuditService['record']>) => {
      if (args[1].action === 'party.erased') throw new DatabaseUnavailableError(new Error('connection lost (simulated)'));
      return record(...args);
    });
    try {
      await t.http.post(`/v1/orgs/${orgId}/privacy/customers/${customer.id}/erasure`).set(owner.auth).expect(503);
    } finally {
      jest.restoreAllMocks();
    }
    expect(await stored(naming)).toEqual({ ...before, status: 'running' });
    expect(before.details).toEqual([{ result: expect.stringContaining('Fritz Failsworth') }]);
    expect((await t.db.admin.query('SELECT name, email FROM finance.customers WHERE id = $1', [customer.id])).rows).toEqual([{ name: 'Fritz Failsworth', email: 'fritz.failsworth@example.test' }]);
    expect((await t.db.admin.query(`SELECT action FROM core.audit_logs WHERE org_id = $1 AND action IN ('ai.run_cancelled', 'party.erased', 'party.runs_erased')`, [orgId])).rows).toEqual([]);
  });
});
