import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { testKeys } from '../integrations/keys.js';
import { agentsUrl } from '../agents/agents-support.js';
import { payablesUrl } from '../payables/payables-support.js';
import { issueInvoice, rUrl, setupReceivables } from './receivables-support.js';

/**
 * The agents' list_open_invoices and list_open_bills tools (registered by the receivables and payables modules):
 * offered in the tool list, run with the claims of the run's user (a viewer of A sees A's open documents, never B's),
 * the figures those of semantic.v_ar_open / v_ap_open, filters and a wrong argument told to the model.
 */
describe('agent tools: list_open_invoices, list_open_bills', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  let ownerA: TestUser;
  let viewerA: TestUser;
  let ownerB: TestUser;
  let orgA: string;
  let orgB: string;
  let agentId: string;
  let customerA: string;
  let invoiceA: string;
  let vendorA: string;

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    t = await createTestApp({ AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-platform-key-0000', AI_MAX_RETRIES: '0', REDIS_URL: '', SECRETS_KEYS: testKeys('k1').env });
    ownerA = await registerUser(t, 'tools-owner-a');
    viewerA = await registerUser(t, 'tools-viewer-a');
    ownerB = await registerUser(t, 'tools-owner-b');
    orgA = await createOrg(t, ownerA, 'Tools A');
    orgB = await createOrg(t, ownerB, 'Tools B');
    await onPlan(t, orgA, 'professional');
    await onPlan(t, orgB, 'professional');
    await addMember(t, orgA, viewerA, 'viewer');
    const a = await setupReceivables(t, orgA, ownerA, 'EUR');
    customerA = a.customer;
    // A: an invoice of 1,200.00 (1,000 + VAT 20 %), 200.00 paid; a second customer's invoice of 50.00, not yet due
    const inv = await issueInvoice(t, orgA, ownerA, { customerId: a.customer, invoiceDate: '2026-01-10', dueDate: '2026-02-09',
      lines: [{ description: 'Consulting', quantity: '10', unitPrice: '100', taxCodeId: a.vat, revenueAccountId: a.acc['4100'] }] });
    invoiceA = inv.id;
    await t.http.post(rUrl(orgA, 'payments')).set(ownerA.auth).send({ customerId: a.customer, date: '2026-01-20', amount: '200.00', depositAccountId: a.acc['1100'],
      method: 'bank_transfer', allocations: [{ invoiceId: inv.id, amount: '200.00' }] }).expect(201);
    const other = (await t.http.post(rUrl(orgA, 'customers')).set(ownerA.auth).send({ name: 'Beta GmbH' }).expect(201)).body.id;
    await issueInvoice(t, orgA, ownerA, { customerId: other, invoiceDate: '2026-01-15', dueDate: '2099-12-31',
      lines: [{ description: 'Licence', quantity: '1', unitPrice: '50', revenueAccountId: a.acc['4100'] }] });
    // A: a vendor bill of 300.00 (under the approval threshold: posted at submission)
    vendorA = (await t.http.post(payablesUrl(orgA, 'vendors')).set(ownerA.auth).send({ name: 'Acme Supplies' }).expect(201)).body.id;
    const bill = await t.http.post(payablesUrl(orgA, 'bills')).set(ownerA.auth)
      .send({ vendorId: vendorA, billNumber: 'AS-77', billDate: '2026-01-05', dueDate: '2026-02-04', lines: [{ accountId: a.acc['5200'], unitPrice: '300.00' }] }).expect(201);
    await t.http.post(payablesUrl(orgA, `bills/${bill.body.id}/submit`)).set(ownerA.auth).expect(200);
    // B: its own open invoice and bill, which A's runs must never see
    const b = await setupReceivables(t, orgB, ownerB, 'EUR');
    await issueInvoice(t, orgB, ownerB, { customerId: b.customer, invoiceDate: '2026-01-10', lines: [{ description: 'B secret', quantity: '1', unitPrice: '9999', revenueAccountId: b.acc['4100'] }] });
    const vendorB = (await t.http.post(payablesUrl(orgB, 'vendors')).set(ownerB.auth).send({ name: 'B secret vendor' }).expect(201)).body.id;
    const billB = await t.http.post(payablesUrl(orgB, 'bills')).set(ownerB.auth).send({ vendorId: vendorB, billDate: '2026-01-05', lines: [{ accountId: b.acc['5200'], unitPrice: '777.00' }] }).expect(201);
    await t.http.post(payablesUrl(orgB, `bills/${billB.body.id}/submit`)).set(ownerB.auth).expect(200);

    const res = await t.http.post(agentsUrl(orgA)).set(ownerA.auth).send({
      name: 'Collector', type: 'accountant', instructions: 'Chase what is overdue.', modelId: 'gpt-4o', maxOutputTokens: 1000, maxSteps: 3,
      tools: ['list_open_invoices', 'list_open_bills'],
    }).expect(201);
    agentId = res.body.id;
  });
  afterAll(async () => {
    await t?.close();
    await llm?.close();
  });

  it('are in the registry with their argument schemas', async () => {
    const res = await t.http.get(`/v1/orgs/${orgA}/ai/tools`).set(viewerA.auth).expect(200);
    const names = res.body.map((x: { name: string }) => x.name);
    expect(names).toEqual(expect.arrayContaining(['list_open_invoices', 'list_open_bills']));
    const tool = res.body.find((x: { name: string }) => x.name === 'list_open_invoices');
    expect(Object.keys(tool.parameters.properties).sort()).toEqual(['customerId', 'limit', 'overdueOnly']);
  });

  it('run with the claims of the run\'s user: A\'s open invoices and bills with their figures, never B\'s', async () => {
    llm.enqueue(
      { kind: 'tool_calls', usage: { prompt: 10, completion: 10 }, calls: [
        { name: 'list_open_invoices', arguments: '{}' },
        { name: 'list_open_invoices', arguments: JSON.stringify({ customerId: customerA, overdueOnly: true, limit: 1 }) },
        { name: 'list_open_bills', arguments: JSON.stringify({ vendorId: vendorA }) },
        { name: 'list_open_invoices', arguments: JSON.stringify({ limit: 1000 }) },
        // the same vendor by its id in upper case (a uuid all the same)
        { name: 'list_open_bills', arguments: JSON.stringify({ vendorId: vendorA.toUpperCase() }) },
      ] },
      { kind: 'text', content: 'Alpha owes 1,000.00.', usage: { prompt: 10, completion: 5 } },
    );
    const res = await t.http.post(agentsUrl(orgA, `/${agentId}/runs`)).set(viewerA.auth).send({ messages: [{ role: 'user', content: 'Who owes us?' }] }).expect(200);
    expect(res.body.status).toBe('succeeded');
    const steps = res.body.trace.filter((s: any) => s.kind === 'tool_call');
    const all = steps[0].detail.result;
    expect(all.truncated).toBe(false);
    // the overdue one first (most days past due), then the one due in 2099
    expect(all.rows.map((r: any) => [r.customerName, r.total, r.openAmount, r.openAmountBase, r.baseCurrency, r.daysPastDue > 0])).toEqual([
      ['Alpha Ltd', '1200.0000', '1000.0000', '1000.00', 'EUR', true],
      ['Beta GmbH', '50.0000', '50.0000', '50.00', 'EUR', false],
    ]);
    expect(all.rows[0]).toMatchObject({ documentKind: 'invoice', documentId: invoiceA, dueDate: '2026-02-09', currency: 'EUR' });
    // the same rows as the view, read as the viewer in SQL
    const view = await t.db.as({ sub: viewerA.id, role: 'authenticated', org_id: orgA }, 'authenticated', 'SELECT document_id, open_amount::text, bucket FROM semantic.v_ar_open ORDER BY days_past_due DESC');
    expect(all.rows.map((r: any) => [r.documentId, r.openAmount, r.bucket])).toEqual(view.map((v: any) => [v.document_id, v.open_amount, v.bucket]));
    expect(steps[1].detail.result).toMatchObject({ truncated: false, rows: [{ documentId: invoiceA }] });
    expect(steps[1].detail.result.rows).toHaveLength(1);
    const bills = steps[2].detail.result;
    // the base amount in the base currency's minor units, as list_open_invoices answers openAmountBase
    expect(bills.rows.map((r: any) => [r.partyName, r.documentNumber, r.total, r.openAmount, r.openBaseAmount, r.bucket])).toEqual([['Acme Supplies', 'AS-77', '300.0000', '300.0000', '300.00', '>90']]);
    expect(steps[4].detail.result).toEqual(bills);
    expect(steps[3]).toMatchObject({ status: 'failed', errorClass: 'tool_error' });
    expect(steps[3].errorMessage).toMatch(/limit must be an integer from 1 to 200/);
    expect(JSON.stringify(res.body)).not.toMatch(/B secret|9999\.|777\./);
    expect(JSON.stringify(llm.requests)).not.toMatch(/B secret|9999\.|777\./);
  });
});
