import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import Ajv2020Module from 'ajv/dist/2020.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { InvoiceOverdueJob } from '../../src/modules/receivables/invoice-overdue.job.js';
import { RECEIVABLES_EVENT_TYPES } from '../../src/modules/receivables/receivables.events.js';
import { issueInvoice, rUrl, setupReceivables } from './receivables-support.js';

const Ajv2020 = ((Ajv2020Module as any).default ?? Ajv2020Module) as typeof import('ajv/dist/2020.js').default;

/**
 * invoice.overdue: the daily job notes each issued invoice past its due date with an amount open, once, audited, and
 * emits the event that notifies owners, admins and accountants. Customer terms: 30 days. Organization A:
 *   INV 1  Sep 1, due Oct 1, 100.00 open                → overdue on Nov 10
 *   INV 2  Sep 2, due Oct 2, 200.00 with 50.00 paid     → overdue on Nov 10, 150.00 due
 *   INV 3  Sep 3, due Oct 3, paid in full               → never
 *   INV 4  Sep 4, due Oct 4, voided                     → never
 *   INV 5  Oct 20, due Nov 19, 300.00 open              → not on Nov 10; overdue on Nov 20
 * Organization B has one overdue invoice: its event is B's alone.
 */
describe('receivables: invoice.overdue', () => {
  let t: TestApp;
  const clock = new ManualClock();
  let owner: TestUser;
  let accountant: TestUser;
  let viewer: TestUser;
  let ownerB: TestUser;
  let orgA: string;
  let orgB: string;
  const inv: Record<string, any> = {};

  /** The job's run on `date` (the clock moved there for the run only: tokens and the outbox keep real time). */
  const runOn = async (date: string) => {
    const offset = Date.parse(`${date}T12:00:00Z`) - clock.now();
    clock.advance(offset);
    try {
      return await t.app.get(InvoiceOverdueJob).runDaily();
    } finally {
      clock.advance(-offset);
    }
  };
  const events = async (orgId: string) => (await t.db.admin.query(
    `SELECT payload->'payload' AS p FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event' AND payload->>'type' = 'invoice.overdue' ORDER BY id`, [orgId])).rows.map((r) => r.p);

  beforeAll(async () => {
    t = await createTestApp({ REDIS_URL: '' }, { clock });
    owner = await registerUser(t, 'od-owner');
    accountant = await registerUser(t, 'od-accountant');
    viewer = await registerUser(t, 'od-viewer');
    ownerB = await registerUser(t, 'od-owner-b');
    orgA = await createOrg(t, owner, 'Overdue A');
    orgB = await createOrg(t, ownerB, 'Overdue B');
    await addMember(t, orgA, accountant, 'accountant');
    await addMember(t, orgA, viewer, 'viewer');
    for (const o of [orgA, orgB]) await onPlan(t, o, 'professional');
    const a = await setupReceivables(t, orgA, owner);
    const line = (amount: string) => [{ description: 'Consulting', quantity: '1', unitPrice: amount, revenueAccountId: a.acc['4100'] }];
    inv.one = await issueInvoice(t, orgA, owner, { customerId: a.customer, invoiceDate: '2026-09-01', lines: line('100.00') });
    inv.two = await issueInvoice(t, orgA, owner, { customerId: a.customer, invoiceDate: '2026-09-02', lines: line('200.00') });
    inv.three = await issueInvoice(t, orgA, owner, { customerId: a.customer, invoiceDate: '2026-09-03', lines: line('80.00') });
    inv.four = await issueInvoice(t, orgA, owner, { customerId: a.customer, invoiceDate: '2026-09-04', lines: line('70.00') });
    inv.five = await issueInvoice(t, orgA, owner, { customerId: a.customer, invoiceDate: '2026-10-20', lines: line('300.00') });
    const pay = (invoiceId: string, amount: string) => t.http.post(rUrl(orgA, 'payments')).set(owner.auth)
      .send({ customerId: a.customer, date: '2026-09-15', amount, depositAccountId: a.acc['1100'], method: 'bank_transfer', allocations: [{ invoiceId, amount }] }).expect(201);
    await pay(inv.two.id, '50.00');
    await pay(inv.three.id, '80.00');
    await t.http.post(rUrl(orgA, `invoices/${inv.four.id}/void`)).set(owner.auth).send({ date: '2026-09-05' }).expect(200);
    const b = await setupReceivables(t, orgB, ownerB);
    inv.b = await issueInvoice(t, orgB, ownerB, { customerId: b.customer, invoiceDate: '2026-09-01',
      lines: [{ description: 'B secret work', quantity: '1', unitPrice: '999.00', revenueAccountId: b.acc['4100'] }] });
  });
  afterAll(() => t.close());

  it('notes each overdue invoice with an amount open once, audited, with its event; B\'s only in B', async () => {
    const results = await runOn('2026-11-10');
    expect(results.filter((r) => r.orgId === orgA || r.orgId === orgB).sort((x, y) => x.orgId.localeCompare(y.orgId)))
      .toEqual([{ orgId: orgA, noted: 2 }, { orgId: orgB, noted: 1 }].sort((x, y) => x.orgId.localeCompare(y.orgId)));
    const a = await events(orgA);
    expect(a).toEqual([
      { invoiceId: inv.one.id, number: inv.one.number, customerId: inv.one.customerId, dueDate: '2026-10-01', currency: 'USD', total: '100.00', amountDue: '100.00' },
      { invoiceId: inv.two.id, number: inv.two.number, customerId: inv.two.customerId, dueDate: '2026-10-02', currency: 'USD', total: '200.00', amountDue: '150.00' },
    ]);
    const validate = new Ajv2020({ strict: false, validateFormats: false }).compile(RECEIVABLES_EVENT_TYPES.find((e) => e.type === 'invoice.overdue')!.payloadSchema);
    for (const p of a) expect([validate(p), validate.errors]).toEqual([true, null]);
    expect(JSON.stringify(a)).not.toContain(inv.b.id);
    expect((await events(orgB)).map((p) => p.invoiceId)).toEqual([inv.b.id]);
    const notices = await t.db.admin.query(`SELECT invoice_id, due_date::text, noted_on::text FROM finance.invoice_overdue_notices WHERE org_id = $1 ORDER BY due_date`, [orgA]);
    expect(notices.rows).toEqual([
      { invoice_id: inv.one.id, due_date: '2026-10-01', noted_on: '2026-11-10' },
      { invoice_id: inv.two.id, due_date: '2026-10-02', noted_on: '2026-11-10' },
    ]);
    const audit = await t.db.admin.query(`SELECT entity_id, actor_id, principal_type, after FROM core.audit_logs WHERE org_id = $1 AND action = 'receivables.invoice_overdue' ORDER BY id`, [orgA]);
    expect(audit.rows).toEqual([
      { entity_id: inv.one.id, actor_id: 'service:invoice-overdue', principal_type: 'service', after: { dueDate: '2026-10-01', amountDue: '100.00', notedOn: '2026-11-10' } },
      { entity_id: inv.two.id, actor_id: 'service:invoice-overdue', principal_type: 'service', after: { dueDate: '2026-10-02', amountDue: '150.00', notedOn: '2026-11-10' } },
    ]);
  });

  it('tells owners, admins and accountants, not viewers', async () => {
    await t.app.get(OutboxRelay).drain();
    const notices = await t.db.admin.query(`SELECT user_id, title, body FROM core.notifications WHERE org_id = $1 AND event_type = 'invoice.overdue' ORDER BY body, user_id`, [orgA]);
    const to = (u: TestUser) => notices.rows.filter((n) => n.user_id === u.id).map((n) => n.body);
    expect(to(owner)).toEqual([
      `Invoice ${inv.one.number} (100.00 USD open) was due on 2026-10-01.`,
      `Invoice ${inv.two.number} (150.00 USD open) was due on 2026-10-02.`,
    ]);
    expect(to(accountant)).toEqual(to(owner));
    expect(to(viewer)).toEqual([]);
    expect(notices.rows[0].title).toBe('An invoice of Overdue A is overdue');
  });

  it('never notes an invoice twice, and notes one when its due date passes', async () => {
    expect((await runOn('2026-11-10')).filter((r) => r.orgId === orgA)).toEqual([]);
    expect(await events(orgA)).toHaveLength(2);
    expect((await runOn('2026-11-20')).filter((r) => r.orgId === orgA)).toEqual([{ orgId: orgA, noted: 1 }]);
    expect((await events(orgA)).map((p) => [p.invoiceId, p.amountDue, p.dueDate])).toEqual([
      [inv.one.id, '100.00', '2026-10-01'], [inv.two.id, '150.00', '2026-10-02'], [inv.five.id, '300.00', '2026-11-19']]);
  });

  it('leaves a deleted organization\'s invoices alone (it is not even listed)', async () => {
    const ownerC = await registerUser(t, 'od-owner-c');
    const orgC = await createOrg(t, ownerC, 'Overdue C');
    await onPlan(t, orgC, 'professional');
    const c = await setupReceivables(t, orgC, ownerC);
    await issueInvoice(t, orgC, ownerC, { customerId: c.customer, invoiceDate: '2026-09-01', lines: [{ description: 'Work', quantity: '1', unitPrice: '10.00', revenueAccountId: c.acc['4100'] }] });
    await t.http.delete(`/v1/orgs/${orgC}`).set(ownerC.auth).expect(204);
    expect((await runOn('2026-11-30')).map((r) => r.orgId)).not.toContain(orgC);
    expect(await events(orgC)).toEqual([]);
  });

  it('lets no member note an invoice or remove a note: only the job, in the organization\'s transaction', async () => {
    const asOwner = { sub: owner.id, role: 'authenticated', org_id: orgA };
    await expect(t.db.as(asOwner, 'authenticated', `INSERT INTO finance.invoice_overdue_notices (org_id, invoice_id, due_date, noted_on) VALUES ('${orgA}', '${inv.three.id}', '2026-10-03', '2026-11-10')`))
      .rejects.toThrow(/row-level security/);
    await expect(t.db.as(asOwner, 'authenticated', `DELETE FROM finance.invoice_overdue_notices WHERE org_id = '${orgA}'`)).rejects.toThrow(/permission denied/);
    // a member reads their organization's notes only
    expect((await t.db.as(asOwner, 'authenticated', 'SELECT invoice_id FROM finance.invoice_overdue_notices')).map((r: any) => r.invoice_id).sort())
      .toEqual([inv.one.id, inv.two.id, inv.five.id].sort());
  });
});
