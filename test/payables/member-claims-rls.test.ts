import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, onPlan, orgWithRoles, registerUser, type RoleUsers, type TestUser } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';
import { testKeys } from '../integrations/keys.js';
import { agentsUrl, semanticUrl } from '../agents/agents-support.js';
import { startBooks } from '../ledger/ledger-support.js';
import { createVendor, payablesUrl } from './payables-support.js';

/**
 * Below the API too, a member reads only their own expense claims (20270206000100): another member's claim, its lines,
 * its decisions (comments, approval notes), its reimbursement with the allocations and the refund are no rows for
 * them in finance.* (Supabase's REST path, the API's own transactions) nor in semantic.v_ap_open (POST
 * .../semantic/query, the agents' query_semantic and list_open_bills tools). Vendors' bills and payments stay visible
 * to them; owners, admins, accountants, viewers and service keys see every claim. The routes behave as before
 * (member-visibility.test.ts). Member B's claim of 123.45 (Feb 5) is approved and reimbursed 150.00 (100.00 allocated,
 * 20.00 paid back by B); member A's of 80.00 is reimbursed 30.00; a vendor bill of 200.00 is paid 50.00.
 */
describe('payables: a member reads other members\' expense claims nowhere below the API', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  let orgId: string;
  let users: RoleUsers;
  let memberA: TestUser;
  let memberB: TestUser;
  let acc: Record<string, string>;
  let vendorBill: string;
  let claimA: string;
  let claimB: string;
  let vendorPayment: string;
  let paymentA: string;
  let paymentB: string;
  const url = (p: string) => payablesUrl(orgId, p);
  const sorted = (ids: string[]) => [...ids].sort();

  async function approvedClaim(who: TestUser, date: string, amount: string, memo: string, description: string): Promise<string> {
    const claim = (await t.http.post(url('expense-claims')).set(who.auth).send({
      claimDate: date, currency: 'EUR', memo, lines: [{ accountId: acc['5200'], amount, currency: 'EUR', date, description, receiptRef: `${description} receipt` }],
    }).expect(201)).body;
    await t.http.post(url(`expense-claims/${claim.id}/submit`)).set(who.auth).expect(200);
    await t.http.post(url(`expense-claims/${claim.id}/approve`)).set(users.accountant.auth).send({ comment: `approved: ${description}` }).expect(200);
    return claim.id;
  }
  const pay = async (body: object): Promise<string> =>
    (await t.http.post(url('payments')).set(users.accountant.auth).send({ bankAccountId: acc['1100'], ...body }).expect(201)).body.id;

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    t = await createTestApp({ AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-platform-key-0000', AI_MAX_RETRIES: '0', REDIS_URL: '', SECRETS_KEYS: testKeys('k1').env });
    ({ orgId, users } = await orgWithRoles(t, 'Claims RLS Ltd'));
    memberA = users.member;
    memberB = await registerUser(t, 'member-b');
    await addMember(t, orgId, memberB, 'member');
    await onPlan(t, orgId, 'professional');
    acc = await startBooks(t, orgId, users.owner);
    const vendorId = await createVendor(t, orgId, users.accountant, { name: 'Acme Supplies', paymentTermsDays: 30 });
    vendorBill = (await t.http.post(url('bills')).set(users.accountant.auth).send({
      vendorId, billNumber: 'V-1', billDate: '2026-02-01', total: '200.00', lines: [{ accountId: acc['5200'], description: 'Rent', quantity: '1', unitPrice: '200.00' }],
    }).expect(201)).body.id;
    expect((await t.http.post(url(`bills/${vendorBill}/submit`)).set(users.accountant.auth).expect(200)).body.status).toBe('posted');
    claimB = await approvedClaim(memberB, '2026-02-05', '123.45', 'B private memo', 'B secret clinic visit');
    claimA = await approvedClaim(memberA, '2026-02-06', '80.00', 'A memo', 'A taxi');
    vendorPayment = await pay({ vendorId, paymentDate: '2026-02-07', amount: '50.00', allocations: [{ billId: vendorBill, amount: '50.00' }] });
    paymentB = await pay({ claimantId: memberB.id, paymentDate: '2026-02-07', amount: '150.00', reference: 'B-REIMB', allocations: [{ billId: claimB, amount: '100.00' }] });
    await t.http.post(url(`payments/${paymentB}/refunds`)).set(users.accountant.auth).send({ amount: '20.00', date: '2026-02-08', reference: 'B-BACK' }).expect(201);
    paymentA = await pay({ claimantId: memberA.id, paymentDate: '2026-02-07', amount: '30.00', allocations: [{ billId: claimA, amount: '30.00' }] });
  });
  afterAll(async () => {
    await t?.close();
    await llm?.close();
  });

  /** What a caller reads of the payables tables, by id. */
  async function visible(read: (sql: string) => Promise<any[]>) {
    const ids = async (sql: string) => sorted((await read(sql)).map((r) => r.id));
    return {
      bills: await ids('SELECT id FROM finance.bills'),
      lines: await ids('SELECT DISTINCT bill_id AS id FROM finance.bill_lines'),
      decisions: await ids('SELECT DISTINCT bill_id AS id FROM finance.bill_decisions'),
      payments: await ids('SELECT id FROM finance.bill_payments'),
      allocations: await ids('SELECT DISTINCT payment_id AS id FROM finance.bill_allocations'),
      refunds: await ids('SELECT DISTINCT payment_id AS id FROM finance.bill_payment_refunds'),
      open: await ids('SELECT bill_id AS id FROM semantic.v_ap_open'),
    };
  }
  const claims = (who: TestUser, role = 'authenticated') => ({ sub: who.id, role, org_id: orgId });
  const everything = () => ({
    bills: sorted([vendorBill, claimA, claimB]), lines: sorted([vendorBill, claimA, claimB]), decisions: sorted([vendorBill, claimA, claimB]),
    payments: sorted([vendorPayment, paymentA, paymentB]), allocations: sorted([vendorPayment, paymentA, paymentB]), refunds: [paymentB],
    open: sorted([vendorBill, claimA, claimB]),
  });
  const ownOf = (own: string, ownPayment: string) => ({
    bills: sorted([vendorBill, own]), lines: sorted([vendorBill, own]), decisions: sorted([vendorBill, own]),
    payments: sorted([vendorPayment, ownPayment]), allocations: sorted([vendorPayment, ownPayment]), refunds: ownPayment === paymentB ? [paymentB] : [],
    open: sorted([vendorBill, own]),
  });

  it('shows a member over Supabase\'s REST path and in the API\'s transactions vendors\' documents and their own claim only', async () => {
    // the rows are all there
    const { rows: [count] } = await t.db.admin.query(`SELECT (SELECT count(*) FROM finance.bills WHERE org_id = $1)::int AS bills,
      (SELECT count(*) FROM finance.bill_payment_refunds WHERE org_id = $1)::int AS refunds,
      (SELECT count(*) FROM finance.bill_decisions WHERE org_id = $1 AND bill_id = $2 AND comment = 'approved: B secret clinic visit')::int AS notes`, [orgId, claimB]);
    expect(count).toEqual({ bills: 3, refunds: 1, notes: 1 });

    expect(await visible((sql) => t.db.as(claims(memberA), 'authenticated', sql))).toEqual(ownOf(claimA, paymentA));
    expect(await visible((sql) => t.db.asApi(claims(memberA), 'authenticated', sql))).toEqual(ownOf(claimA, paymentA));
    expect(await visible((sql) => t.db.as(claims(memberB), 'authenticated', sql))).toEqual(ownOf(claimB, paymentB));
    // nothing of B's claim in what A reads, whole rows included
    const rows = [
      ...await t.db.as(claims(memberA), 'authenticated', 'SELECT * FROM finance.bills'),
      ...await t.db.as(claims(memberA), 'authenticated', 'SELECT * FROM finance.bill_lines'),
      ...await t.db.as(claims(memberA), 'authenticated', 'SELECT * FROM finance.bill_decisions'),
      ...await t.db.as(claims(memberA), 'authenticated', 'SELECT * FROM finance.bill_payments'),
      ...await t.db.as(claims(memberA), 'authenticated', 'SELECT * FROM semantic.v_ap_open'),
    ];
    expect(JSON.stringify(rows)).not.toMatch(new RegExp(`B secret|B private|B-REIMB|123\\.45|${memberB.id}`));
  });

  it('still shows owners, admins, accountants, viewers and service keys every claim, payment and refund', async () => {
    for (const who of [users.owner, users.admin, users.accountant, users.viewer]) {
      expect(await visible((sql) => t.db.as(claims(who), 'authenticated', sql))).toEqual(everything());
    }
    expect(await visible((sql) => t.db.asApi(claims(users.viewer), 'authenticated', sql))).toEqual(everything());
    expect(await visible((sql) => t.db.as({ role: 'service_role', org_id: orgId }, 'authenticated', sql))).toEqual(everything());
  });

  it('answers a member\'s semantic query over v_ap_open with vendors\' bills and their own claim only', async () => {
    const query = (who: TestUser, sql: string) => t.http.post(semanticUrl(orgId)).set(who.auth).send({ sql }).expect(200);
    const ids = async (who: TestUser) => sorted((await query(who, 'SELECT bill_id FROM semantic.v_ap_open')).body.rows.map((r: string[]) => r[0]));
    expect(await ids(memberA)).toEqual(sorted([vendorBill, claimA]));
    expect(await ids(memberB)).toEqual(sorted([vendorBill, claimB]));
    expect(await ids(users.viewer)).toEqual(sorted([vendorBill, claimA, claimB]));
    const party = await query(memberA, `SELECT count(*) AS n FROM semantic.v_ap_open WHERE party_id = '${memberB.id}'`);
    expect(party.body.rows).toEqual([[0]]);
    // the database holds B's open claim all the same (123.45 - 100.00)
    const { rows } = await t.db.admin.query(`SELECT b.total - coalesce(sum(a.amount), 0) AS open FROM finance.bills b
      LEFT JOIN finance.bill_allocations a ON a.org_id = b.org_id AND a.bill_id = b.id WHERE b.org_id = $1 AND b.id = $2 GROUP BY b.total`, [orgId, claimB]);
    expect(rows).toEqual([{ open: '23.4500' }]);
  });

  it('gives a member\'s agent run (query_semantic, list_open_bills) vendors\' bills and their own claim only', async () => {
    const agentId = (await t.http.post(agentsUrl(orgId)).set(users.owner.auth).send({
      name: 'AP helper', type: 'accountant', instructions: 'Answer about payables.', modelId: 'gpt-4o', maxOutputTokens: 1000, maxSteps: 3,
      tools: ['list_open_bills', 'query_semantic'],
    }).expect(201)).body.id;
    llm.enqueue(
      { kind: 'tool_calls', usage: { prompt: 10, completion: 10 }, calls: [
        { name: 'list_open_bills', arguments: '{}' },
        { name: 'query_semantic', arguments: JSON.stringify({ sql: 'SELECT bill_id, party_id, total FROM semantic.v_ap_open' }) },
      ] },
      { kind: 'text', content: 'Two open items.', usage: { prompt: 10, completion: 5 } },
    );
    const res = await t.http.post(agentsUrl(orgId, `/${agentId}/runs`)).set(memberA.auth).send({ messages: [{ role: 'user', content: 'What is open?' }] }).expect(200);
    expect(res.body.status).toBe('succeeded');
    const steps = res.body.trace.filter((s: any) => s.kind === 'tool_call');
    expect(sorted(steps[0].detail.result.rows.map((r: any) => r.billId))).toEqual(sorted([vendorBill, claimA]));
    expect(sorted(steps[1].detail.result.rows.map((r: string[]) => r[0]))).toEqual(sorted([vendorBill, claimA]));
    expect(JSON.stringify(res.body)).not.toContain(claimB);
    expect(JSON.stringify(llm.requests)).not.toMatch(new RegExp(`${claimB}|${memberB.id}|123\\.45`));
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM ai.run_steps WHERE org_id = $1 AND run_id = $2 AND kind = 'tool_call'`, [orgId, res.body.id]);
    expect(rows).toEqual([{ n: 2 }]);
  });

  it('keeps a member\'s own paths working: list, read, draft, edit, submit and void their claims, comment on a vendor bill, payments, aging', async () => {
    const list = (await t.http.get(url('expense-claims')).set(memberA.auth).expect(200)).body;
    expect(list.items.map((c: any) => c.id)).toEqual([claimA]);
    const own = (await t.http.get(url(`expense-claims/${claimA}`)).set(memberA.auth).expect(200)).body;
    expect({ lines: own.lines.map((l: any) => l.description), decisions: own.decisions.map((d: any) => d.decision), openAmount: own.openAmount })
      .toEqual({ lines: ['A taxi'], decisions: ['submit', 'approve'], openAmount: '50.00' });
    await t.http.get(url(`expense-claims/${claimB}`)).set(memberA.auth).expect(404);
    await t.http.post(url(`bills/${claimB}/comments`)).set(memberA.auth).send({ comment: 'peek' }).expect(404);
    const refused = await t.http.post(url(`expense-claims/${claimB}/comments`)).set(memberA.auth).send({ comment: 'peek' }).expect(404);
    expect(refused.body.error.code).toBe('expense_claim.not_found');
    const onOwn = (await t.http.post(url(`expense-claims/${claimA}/comments`)).set(memberA.auth).send({ comment: 'receipt attached' }).expect(200)).body;
    expect(onOwn.decisions.at(-1)).toMatchObject({ decision: 'comment', actorId: memberA.id, actorRole: 'member', comment: 'receipt attached' });
    const onB = (await t.http.post(url(`expense-claims/${claimB}/comments`)).set(users.accountant.auth).send({ comment: 'which trip?' }).expect(200)).body;
    expect(onB.decisions.at(-1)).toMatchObject({ decision: 'comment', actorId: users.accountant.id, comment: 'which trip?' });
    await t.http.post(url(`expense-claims/${vendorBill}/comments`)).set(users.accountant.auth).send({ comment: 'wrong kind' }).expect(404);
    const { rows: comments } = await t.db.admin.query(
      `SELECT bill_id, actor_id, comment FROM finance.bill_decisions WHERE org_id = $1 AND decision = 'comment' AND bill_id = ANY($2::uuid[]) ORDER BY created_at, id`, [orgId, [claimA, claimB]]);
    expect(comments).toEqual([{ bill_id: claimA, actor_id: memberA.id, comment: 'receipt attached' }, { bill_id: claimB, actor_id: users.accountant.id, comment: 'which trip?' }]);
    const { rows: audited } = await t.db.admin.query(`SELECT entity_id FROM core.audit_logs WHERE org_id = $1 AND action = 'payables.expense_claim_commented' ORDER BY id`, [orgId]);
    expect(audited.map((r: any) => r.entity_id)).toEqual([claimA, claimB]);

    const draft = (await t.http.post(url('expense-claims')).set(memberA.auth).send({
      claimDate: '2026-02-09', currency: 'EUR', lines: [{ accountId: acc['5200'], amount: '12.00', currency: 'EUR', date: '2026-02-09', description: 'A lunch' }],
    }).expect(201)).body;
    const edited = (await t.http.patch(url(`expense-claims/${draft.id}`)).set(memberA.auth).send({
      claimDate: '2026-02-09', currency: 'EUR', lines: [{ accountId: acc['5200'], amount: '14.00', currency: 'EUR', date: '2026-02-09', description: 'A lunch' }],
    }).expect(200)).body;
    expect(edited.total).toBe('14.00');
    expect((await t.http.post(url(`expense-claims/${draft.id}/submit`)).set(memberA.auth).expect(200)).body.status).toBe('submitted');
    await t.http.post(url(`expense-claims/${draft.id}/reject`)).set(users.accountant.auth).send({ reason: 'receipt missing' }).expect(200);
    const voided = (await t.http.post(url(`expense-claims/${draft.id}/void`)).set(memberA.auth).send({ reason: 'lost receipt' }).expect(200)).body;
    expect({ status: voided.status, decisions: voided.decisions.map((d: any) => d.decision) }).toEqual({ status: 'voided', decisions: ['edit', 'submit', 'reject'] });

    const commented = (await t.http.post(url(`bills/${vendorBill}/comments`)).set(memberA.auth).send({ comment: 'delivered?' }).expect(200)).body;
    expect(commented.decisions.at(-1)).toMatchObject({ decision: 'comment', actorId: memberA.id, comment: 'delivered?' });

    const payments = (await t.http.get(url('payments')).set(memberA.auth).expect(200)).body;
    expect(sorted(payments.items.map((p: any) => p.id))).toEqual(sorted([vendorPayment, paymentA]));
    const mine = (await t.http.get(url(`payments/${paymentB}`)).set(memberB.auth).expect(200)).body;
    expect({ allocations: mine.allocations.map((a: any) => [a.billId, a.amount]), refunds: mine.refunds.map((r: any) => r.amount), unallocated: mine.unallocated })
      .toEqual({ allocations: [[claimB, '100.00']], refunds: ['20.00'], unallocated: '30.00' });

    const aging = (await t.http.get(url('aging?asOf=2026-02-10')).set(memberA.auth).expect(200)).body;
    expect(sorted(aging.rows.map((r: any) => r.partyId))).not.toContain(memberB.id);
    expect(aging.total).toBe('200.00'); // vendor 150.00 + A's 50.00

    const { rows } = await t.db.admin.query(`SELECT status, claimant_id FROM finance.bills WHERE org_id = $1 AND id = $2`, [orgId, draft.id]);
    expect(rows).toEqual([{ status: 'voided', claimant_id: memberA.id }]);
  });
});
