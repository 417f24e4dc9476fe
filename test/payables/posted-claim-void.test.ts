import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Decimal } from 'decimal.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { tableContents } from '../support/database.js';
import { ManualClock } from '../support/clock.js';
import { onPlan, orgWithRoles, type RoleUsers, type TestUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { payablesUrl } from './payables-support.js';

/**
 * A posted (approved) expense claim is voided like a posted bill: by an owner, admin or accountant, never by its
 * claimant, when nothing is reimbursed on it (net of reversals), by the reversal of its entry dated in an open period
 * and not before the claim. EUR books, the application clock on 2026-03-10; January 2026 is closed in beforeAll,
 * after a January claim was posted in it.
 */
describe('payables: voiding a posted expense claim', () => {
  const clock = new ManualClock();
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let januaryClaim: string;
  const url = (p: string) => payablesUrl(orgId, p);

  /** A claim of `claimant`, submitted and approved by `approver` (posted at its claim date). */
  async function postedClaim(claimant: TestUser, amount: string, claimDate = '2026-02-03', approver: TestUser = users.accountant): Promise<any> {
    const c = (await t.http.post(url('expense-claims')).set(claimant.auth)
      .send({ claimDate, currency: 'EUR', lines: [{ accountId: acc['5200'], amount, currency: 'EUR', date: claimDate }] }).expect(201)).body;
    await t.http.post(url(`expense-claims/${c.id}/submit`)).set(claimant.auth).expect(200);
    const posted = (await t.http.post(url(`expense-claims/${c.id}/approve`)).set(approver.auth).send({}).expect(200)).body;
    expect(posted).toMatchObject({ status: 'posted', journalEntryId: expect.any(String) });
    return posted;
  }
  /** Every payables row, entry and audit row of the organization, by content: a refusal changes none of them. */
  const state = () => tableContents(t.db.admin, { tables: ['finance.bills', 'finance.bill_allocations', 'finance.journal_entries', 'finance.journal_lines', 'core.audit_logs', 'core.outbox'], orgId: orgId });
  const claimRow = async (id: string) => (await t.db.admin.query(`SELECT status, voided_on::text AS voided_on, void_entry_id FROM finance.bills WHERE org_id = $1 AND id = $2`, [orgId, id])).rows[0];
  /** The AP aging total is the AP control account's balance (credit positive in the aging, debit minus credit in the ledger). */
  async function expectAgingIsApBalance(asOf: string): Promise<void> {
    const a = (await t.http.get(url(`aging?asOf=${asOf}`)).set(users.owner.auth).expect(200)).body;
    const balance = (await t.http.get(ledgerUrl(orgId, `accounts/${acc['2100']}/balance?asOf=${asOf}`)).set(users.owner.auth).expect(200)).body;
    expect({ asOf, offBalance: new Decimal(a.total).plus(balance.baseBalance).toFixed(2) }).toEqual({ asOf, offBalance: '0.00' });
  }

  beforeAll(async () => {
    clock.advance(Date.parse('2026-03-10T12:00:00Z') - clock.now());
    t = await createTestApp({}, { clock });
    ({ orgId, users } = await orgWithRoles(t, 'Claims Void Ltd'));
    await onPlan(t, orgId, 'professional');
    acc = await startBooks(t, orgId, users.owner);
    januaryClaim = (await postedClaim(users.member, '25.00', '2026-01-12')).id;
    const periods = (await t.http.get(ledgerUrl(orgId, 'periods')).set(users.owner.auth).expect(200)).body;
    await t.http.post(ledgerUrl(orgId, `periods/${periods.find((p: any) => p.startDate === '2026-01-01').id}/close`)).set(users.owner.auth).expect(200);
  });
  afterAll(() => t.close());

  it('an accountant voids a posted claim nothing is reimbursed on: its entry reversed (today), the ledger back to before, status voided, audited, bill.voided', async () => {
    const posted = await postedClaim(users.member, '120.00');
    // the ledger sends whoever tries to reverse the entry there to the claim
    const viaLedger = await t.http.post(ledgerUrl(orgId, `journal-entries/${posted.journalEntryId}/reverse`)).set(users.accountant.auth).send({}).expect(422);
    expect(viaLedger.body.error).toMatchObject({ code: 'ledger.entry_of_document', message: expect.stringContaining(`(void the claim: POST payables/expense-claims/${posted.id}/void`) });

    const voided = (await t.http.post(url(`expense-claims/${posted.id}/void`)).set(users.accountant.auth).send({ reason: 'claimed twice' }).expect(200)).body;
    expect(voided).toMatchObject({ id: posted.id, kind: 'expense_claim', status: 'voided', openAmount: '0.00', journalEntryId: posted.journalEntryId, voidedOn: '2026-03-10', voidEntryId: expect.any(String) });
    expect(await claimRow(posted.id)).toEqual({ status: 'voided', voided_on: '2026-03-10', void_entry_id: voided.voidEntryId });
    const { rows: [entry] } = await t.db.admin.query(`SELECT entry_date::text AS date, reverses_entry_id, memo FROM finance.journal_entries WHERE org_id = $1 AND id = $2`, [orgId, voided.voidEntryId]);
    expect(entry).toEqual({ date: '2026-03-10', reverses_entry_id: posted.journalEntryId, memo: `Void of expense claim ${posted.id}` });
    // the claim's entry and its reversal net to nothing on the expense and the AP account, and for the claimant
    const { rows: lines } = await t.db.admin.query(`SELECT a.code, l.counterparty_id, sum(l.base_debit - l.base_credit)::text AS net, count(*)::int AS n
      FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id
      WHERE l.org_id = $1 AND l.entry_id = ANY($2::uuid[]) GROUP BY a.code, l.counterparty_id ORDER BY a.code`, [orgId, [posted.journalEntryId, voided.voidEntryId]]);
    expect(lines).toEqual([{ code: '2100', counterparty_id: users.member.id, net: '0.0000', n: 2 }, { code: '5200', counterparty_id: users.member.id, net: '0.0000', n: 2 }]);
    // owed to the claimant the day before, no more from the void date on; the aging is the AP balance both days
    const memberOwed = async (asOf: string) => (await t.http.get(url(`aging?asOf=${asOf}`)).set(users.owner.auth).expect(200)).body.rows
      .find((r: any) => r.partyType === 'employee' && r.partyId === users.member.id)?.total ?? '0.00';
    expect([await memberOwed('2026-03-09'), await memberOwed('2026-03-10')]).toEqual(['145.00', '25.00']);
    await expectAgingIsApBalance('2026-03-09');
    await expectAgingIsApBalance('2026-03-10');

    const audit = await t.db.admin.query(`SELECT before->>'status' AS b, after->>'status' AS a, after->>'reason' AS reason, after->>'voidEntryId' AS e, actor_id
      FROM core.audit_logs WHERE org_id = $1 AND entity_id = $2 AND action = 'payables.expense_claim_voided'`, [orgId, posted.id]);
    expect(audit.rows).toEqual([{ b: 'posted', a: 'voided', reason: 'claimed twice', e: voided.voidEntryId, actor_id: users.accountant.id }]);
    const events = await t.db.admin.query(`SELECT payload->'payload' AS p FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'bill.voided' AND payload->'payload'->>'billId' = $2`, [orgId, posted.id]);
    expect(events.rows.map((r) => r.p)).toEqual([{
      billId: posted.id, kind: 'expense_claim', partyType: 'employee', partyId: users.member.id, currency: 'EUR', total: '120.00',
      reason: 'claimed twice', voidedBy: users.accountant.id, voidedOn: '2026-03-10', reversalEntryId: voided.voidEntryId,
    }]);
    // once: not voided again, not reimbursed
    const again = await t.http.post(url(`expense-claims/${posted.id}/void`)).set(users.owner.auth).send({}).expect(409);
    expect(again.body.error).toEqual({ code: 'payables.not_editable', message: `expense_claim ${posted.id} is voided: only a draft, rejected or posted one can be voided` });
    const pay = await t.http.post(url('payments')).set(users.accountant.auth)
      .send({ claimantId: users.member.id, paymentDate: '2026-03-10', amount: '120.00', bankAccountId: acc['1100'], allocations: [{ billId: posted.id, amount: '120.00' }] }).expect(409);
    expect(pay.body.error.code).toBe('payables.not_open');
  });

  it('a reimbursed claim is 409 payables.has_allocations, nothing written; once the reimbursement is reversed it is voided, not before that reversal', async () => {
    const posted = await postedClaim(users.member, '60.00');
    const paid = (await t.http.post(url('payments')).set(users.accountant.auth)
      .send({ claimantId: users.member.id, paymentDate: '2026-02-20', amount: '60.00', bankAccountId: acc['1100'], allocations: [{ billId: posted.id, amount: '60.00' }] }).expect(201)).body;
    const before = await state();
    const refused = await t.http.post(url(`expense-claims/${posted.id}/void`)).set(users.owner.auth).send({ reason: 'wrong' }).expect(409);
    expect(refused.body.error).toEqual({ code: 'payables.has_allocations', message: `expense claim ${posted.id} has EUR 60.00 reimbursed: reverse its allocations first, then void it` });
    expect(await state()).toEqual(before);
    expect(await claimRow(posted.id)).toEqual({ status: 'posted', voided_on: null, void_entry_id: null });

    await t.http.post(url(`allocations/${paid.allocations[0].id}/reverse`)).set(users.accountant.auth).send({ date: '2026-02-25' }).expect(201);
    const early = await t.http.post(url(`expense-claims/${posted.id}/void`)).set(users.owner.auth).send({ date: '2026-02-24' }).expect(400);
    expect(early.body.error).toMatchObject({ code: 'validation_failed', message: `date must not be before 2026-02-25, the date of the last allocation or reversal of expense claim ${posted.id}` });
    const voided = (await t.http.post(url(`expense-claims/${posted.id}/void`)).set(users.owner.auth).send({ date: '2026-02-25' }).expect(200)).body;
    expect(voided).toMatchObject({ status: 'voided', voidedOn: '2026-02-25', openAmount: '0.00' });
    expect(await claimRow(posted.id)).toEqual({ status: 'voided', voided_on: '2026-02-25', void_entry_id: voided.voidEntryId });
    await expectAgingIsApBalance('2026-02-25');
  });

  it('its claimant may not void a posted claim (403 payables.own_bill), whatever their role; nothing written', async () => {
    const members = await postedClaim(users.member, '30.00');
    // an accountant's own claim, approved by the owner
    const accountants = await postedClaim(users.accountant, '40.00', '2026-02-03', users.owner);
    const before = await state();
    const byMember = await t.http.post(url(`expense-claims/${members.id}/void`)).set(users.member.auth).send({ reason: 'mine' }).expect(403);
    expect(byMember.body.error).toEqual({ code: 'payables.own_bill', message: `you claimed expense claim ${members.id}: another owner, admin or accountant must void it once posted` });
    const byAccountant = await t.http.post(url(`expense-claims/${accountants.id}/void`)).set(users.accountant.auth).send({ reason: 'mine' }).expect(403);
    expect(byAccountant.body.error).toEqual({ code: 'payables.own_bill', message: `you claimed expense claim ${accountants.id}: another owner, admin or accountant must void it once posted` });
    expect(await state()).toEqual(before);
    // another bookkeeper may
    await t.http.post(url(`expense-claims/${accountants.id}/void`)).set(users.admin.auth).send({ reason: 'not business' }).expect(200);
    expect((await claimRow(accountants.id)).status).toBe('voided');
  });

  it('a void dated in a closed period (422 ledger.period_closed) or before the claim date (400) is refused, nothing written; dated today it is voided', async () => {
    const before = await state();
    const closed = await t.http.post(url(`expense-claims/${januaryClaim}/void`)).set(users.owner.auth).send({ date: '2026-01-31' }).expect(422);
    expect(closed.body.error).toMatchObject({ code: 'ledger.period_closed', message: expect.stringContaining('2026-01-01 to 2026-01-31 is closed') });
    const early = await t.http.post(url(`expense-claims/${januaryClaim}/void`)).set(users.owner.auth).send({ date: '2026-01-11' }).expect(400);
    expect(early.body.error).toEqual({ code: 'validation_failed', message: 'date must not be before the claim date 2026-01-12' });
    expect(await state()).toEqual(before);
    expect(await claimRow(januaryClaim)).toEqual({ status: 'posted', voided_on: null, void_entry_id: null });
    // the claim stays in closed January; its reversal goes to the open day of the void
    const voided = (await t.http.post(url(`expense-claims/${januaryClaim}/void`)).set(users.owner.auth).send({}).expect(200)).body;
    expect(voided).toMatchObject({ status: 'voided', voidedOn: '2026-03-10' });
  });
});
