import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Response } from 'supertest';
import { createTestApp, type TestApp } from '../support/app.js';
import { tableContents } from '../support/database.js';
import { onPlan, orgWithRoles, type RoleUsers, type TestUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { createVendor, payablesUrl } from './payables-support.js';

/**
 * The documented codes of the payables operations that post (submission, approval, void, payments, allocations,
 * refunds, reversals), each produced over HTTP: the status, the code, a message naming the problem, and nothing
 * written (the organization's payables rows, journal entries and audit rows are as before the request). One
 * organization with the standard chart (EUR, the default approval rules), and one started without a chart: no AP
 * account 2100, no rounding account, no FX result accounts.
 */
describe('payables: every documented posting code of the posting operations', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let vendor: string;
  let other: string;
  /** an asset account that only takes USD (the ledger refuses an EUR line on it) */
  let usdBank: string;
  let usdExpense: string;

  const state = (org = orgId) => tableContents(t.db.admin, { tables: ['finance.bills', 'finance.bill_lines', 'finance.bill_decisions', 'finance.bill_payments', 'finance.bill_allocations', 'finance.bill_payment_refunds',
      'finance.payables_settings', 'finance.journal_entries', 'core.audit_logs'], orgId: org });

  /** Sends the request and expects the refusal: status, code and a message containing `message`; nothing written. */
  async function refused(send: () => PromiseLike<Response>, status: number, code: string, message: string, org = orgId): Promise<void> {
    const before = await state(org);
    const res = await send();
    expect({ status: res.status, code: res.body.error?.code }).toEqual({ status, code });
    expect(res.body.error.message).toContain(message);
    expect(await state(org)).toEqual(before);
  }

  const url = (path: string, org = orgId) => payablesUrl(org, path);
  const newAccount = async (code: string, type: string, o: object = {}, org = orgId, owner: TestUser = users.owner) =>
    (await t.http.post(ledgerUrl(org, 'accounts')).set(owner.auth).send({ code, name: `Account ${code}`, type, ...o }).expect(201)).body.id as string;
  const archive = (accountId: string, org = orgId, owner: TestUser = users.owner) => t.http.post(ledgerUrl(org, `accounts/${accountId}/archive`)).set(owner.auth).expect(200);
  const draftBill = async (o: { accountId?: string; unitPrice?: string; [k: string]: unknown } = {}, org = orgId, who: TestUser = users.accountant, vendorId = vendor) => {
    const { accountId = acc['5200'], unitPrice = '50.00', ...rest } = o;
    return (await t.http.post(url('bills', org)).set(who.auth).send({ vendorId, billDate: '2026-03-02', lines: [{ accountId, unitPrice }], ...rest }).expect(201)).body.id as string;
  };
  const submitted = async (id: string, org = orgId, who: TestUser = users.accountant) => {
    await t.http.post(url(`bills/${id}/submit`, org)).set(who.auth).expect(200);
    return id;
  };
  /** A bill posted at its submission (the default rules need no approval up to 1,000.00). */
  const postedBill = async (o: Parameters<typeof draftBill>[0] = {}, vendorId = vendor) => {
    const id = await submitted(await draftBill(o, orgId, users.accountant, vendorId));
    expect((await t.http.get(url(`bills/${id}`)).set(users.accountant.auth).expect(200)).body.status).toBe('posted');
    return id;
  };
  const submittedClaim = async (o: { accountId?: string; amount?: string; currency?: string; claimDate?: string } = {}, org = orgId, member: TestUser = users.member) => {
    const { accountId = acc['5200'], amount = '40.00', currency = 'EUR', claimDate = '2026-03-03' } = o;
    const id = (await t.http.post(url('expense-claims', org)).set(member.auth)
      .send({ claimDate, currency, lines: [{ accountId, amount, currency, date: claimDate }] }).expect(201)).body.id as string;
    await t.http.post(url(`expense-claims/${id}/submit`, org)).set(member.auth).expect(200);
    return id;
  };
  const payment = async (body: object, org = orgId, who: TestUser = users.accountant) => (await t.http.post(url('payments', org)).set(who.auth)
    .send({ vendorId: vendor, paymentDate: '2026-03-20', amount: '100.00', bankAccountId: acc['1100'], ...body }).expect(201)).body;
  async function withClosedPeriod(date: string, fn: () => Promise<void>) {
    const periods = (await t.http.get(ledgerUrl(orgId, 'periods')).set(users.owner.auth).expect(200)).body as { id: string; startDate: string; endDate: string }[];
    const period = periods.find((p) => p.startDate <= date && p.endDate >= date)!;
    await t.http.post(ledgerUrl(orgId, `periods/${period.id}/close`)).set(users.owner.auth).send({}).expect(200);
    try {
      await fn();
    } finally {
      await t.http.post(ledgerUrl(orgId, `periods/${period.id}/reopen`)).set(users.owner.auth).send({}).expect(200);
    }
  }
  const TOO_LARGE = 'must be below 10000000000000000';
  /** A claim posted at its approval (one bookkeeper's approval up to 1,000.00). */
  const postedClaim = async (o: Parameters<typeof submittedClaim>[0] = {}, org = orgId, member: TestUser = users.member, approver: TestUser = users.accountant) => {
    const id = await submittedClaim(o, org, member);
    expect((await t.http.post(url(`expense-claims/${id}/approve`, org)).set(approver.auth).send({}).expect(200)).body.status).toBe('posted');
    return id;
  };
  let fxAccounts = 0;
  /**
   * Runs `fn` with the realized FX gain and loss accounts of the main organization both set to a new expense account,
   * archived once set (nothing posted to it) or taking USD only, then sets the standard ones (4300, 5500) back.
   */
  async function withFxAccount(kind: 'archived' | 'usd', fn: (code: string) => Promise<void>) {
    const code = String(5980 + fxAccounts++);
    const account = await newAccount(code, 'expense', kind === 'usd' ? { currency: 'USD' } : {});
    await t.http.patch(ledgerUrl(orgId, 'settings')).set(users.owner.auth).send({ fxGainAccountId: account, fxLossAccountId: account }).expect(200);
    if (kind === 'archived') await archive(account);
    try {
      await fn(code);
    } finally {
      await t.http.patch(ledgerUrl(orgId, 'settings')).set(users.owner.auth).send({ fxGainAccountId: acc['4300'], fxLossAccountId: acc['5500'] }).expect(200);
    }
  }

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Posting Refusals Ltd'));
    await onPlan(t, orgId, 'professional');
    acc = await startBooks(t, orgId, users.owner);
    vendor = await createVendor(t, orgId, users.accountant);
    other = await createVendor(t, orgId, users.accountant, { name: 'Other Supplies' });
    usdBank = await newAccount('1150', 'asset', { currency: 'USD' });
    usdExpense = await newAccount('5920', 'expense', { currency: 'USD' });
    // a CHF rate so large that a large claim's base amount cannot be stored
    await t.http.post(ledgerUrl(orgId, 'fx-rates')).set(users.owner.auth).send({ currency: 'CHF', date: '2026-01-01', rate: '1000' }).expect(201);
  });
  afterAll(() => t.close());

  // ------------------------------------------------------------------ submission (a bill needing no approval posts)
  it('submitBill: no fiscal year, an archived account, an account of another currency and no FX rate are refused; the bill stays a draft', async () => {
    const late = await draftBill({ billDate: '2031-03-01' });
    await refused(() => t.http.post(url(`bills/${late}/submit`)).set(users.accountant.auth), 422, 'ledger.no_fiscal_year', 'no fiscal period covers 2031-03-01');
    const archived = await newAccount('5910', 'expense');
    const onArchived = await draftBill({ accountId: archived });
    await archive(archived);
    await refused(() => t.http.post(url(`bills/${onArchived}/submit`)).set(users.accountant.auth), 422, 'ledger.account_not_postable', 'account 5910 is archived');
    const onUsd = await draftBill({ accountId: usdExpense });
    await refused(() => t.http.post(url(`bills/${onUsd}/submit`)).set(users.accountant.auth), 422, 'ledger.currency_not_allowed', 'account 5920 only takes USD, not EUR');
    const gbp = await draftBill({ currency: 'GBP', billDate: '2026-03-06' });
    await refused(() => t.http.post(url(`bills/${gbp}/submit`)).set(users.accountant.auth), 422, 'ledger.rate_missing', 'no GBP rate on or before 2026-03-06');
  });

  // ------------------------------------------------------------------ the final approval posts
  it('approveBill: a closed period, no fiscal year, an archived account, an account of another currency and a base too large are refused; the bill stays submitted', async () => {
    // 1,500.00: one approval by an owner or admin
    const big = (o: Parameters<typeof draftBill>[0] = {}) => draftBill({ unitPrice: '1500.00', ...o }).then((id) => submitted(id));
    const approve = (id: string, who: TestUser = users.owner) => () => t.http.post(url(`bills/${id}/approve`)).set(who.auth).send({});
    const june = await big({ billDate: '2026-06-10' });
    await withClosedPeriod('2026-06-10', () => refused(approve(june), 422, 'ledger.period_closed', 'the fiscal period 2026-06-01 to 2026-06-30 is closed'));
    await refused(approve(await big({ billDate: '2031-03-02' })), 422, 'ledger.no_fiscal_year', 'no fiscal period covers 2031-03-02');
    const archived = await newAccount('5930', 'expense');
    const onArchived = await big({ accountId: archived });
    await archive(archived);
    await refused(approve(onArchived), 422, 'ledger.account_not_postable', 'account 5930 is archived');
    await refused(approve(await big({ accountId: usdExpense })), 422, 'ledger.currency_not_allowed', 'account 5920 only takes USD, not EUR');
    // CHF 99,999,999,999,999 at the rate table's 1000 (a client's rate that large is refused on the draft: 400
    // payables.invalid_amount): two approvals (above 10,000.00); the second posts, and its base is too large
    const huge = await big({ currency: 'CHF', unitPrice: '99999999999999' });
    await approve(huge, users.admin)().expect(200);
    await refused(approve(huge), 422, 'ledger.invalid_amount', TOO_LARGE);
    expect((await t.http.get(url(`bills/${huge}`)).set(users.owner.auth).expect(200)).body).toMatchObject({ status: 'submitted', approvalsGiven: 1, journalEntryId: null });
  });

  it('approveExpenseClaim: no fiscal year, an account of another currency and a base too large are refused; the claim stays submitted', async () => {
    const approve = (id: string, who: TestUser = users.accountant) => () => t.http.post(url(`expense-claims/${id}/approve`)).set(who.auth).send({});
    await refused(approve(await submittedClaim({ claimDate: '2031-03-03' })), 422, 'ledger.no_fiscal_year', 'no fiscal period covers 2031-03-03');
    await refused(approve(await submittedClaim({ accountId: usdExpense })), 422, 'ledger.currency_not_allowed', 'account 5920 only takes USD, not EUR');
    // CHF 99,999,999,999,999 at the rate 1000 of the rate table: two approvals by owners or admins; the second posts
    const huge = await submittedClaim({ currency: 'CHF', amount: '99999999999999' });
    await approve(huge, users.admin)().expect(200);
    await refused(approve(huge, users.owner), 422, 'ledger.invalid_amount', TOO_LARGE);
  });

  // ------------------------------------------------------------------ a posted bill's void posts its reversal
  it('voidBill: a date no fiscal year covers, and an account archived since the bill posted, are refused; the bill stays posted', async () => {
    const bill = await postedBill({ billDate: '2026-03-07' });
    await refused(() => t.http.post(url(`bills/${bill}/void`)).set(users.accountant.auth).send({ date: '2031-03-04' }), 422, 'ledger.no_fiscal_year', 'no fiscal period covers 2031-03-04');
    // the bill's expense moved to another account by a journal entry: its account has no balance and is archived
    const moved = await newAccount('5950', 'expense');
    const onMoved = await postedBill({ billDate: '2026-03-08', accountId: moved });
    await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.owner.auth)
      .send({ date: '2026-03-08', lines: [{ accountId: acc['5200'], debit: '50.00' }, { accountId: moved, credit: '50.00' }] }).expect(201);
    await archive(moved);
    await refused(() => t.http.post(url(`bills/${onMoved}/void`)).set(users.accountant.auth).send({ date: '2026-03-09' }), 422, 'ledger.account_not_postable', 'account 5950 is archived');
    expect((await t.http.get(url(`bills/${onMoved}`)).set(users.accountant.auth).expect(200)).body).toMatchObject({ status: 'posted', voidEntryId: null });
  });

  it('voidExpenseClaim: a date no fiscal year covers, and an account archived since the claim posted, are refused; the claim stays posted', async () => {
    const voidClaim = (id: string, date: string) => () => t.http.post(url(`expense-claims/${id}/void`)).set(users.accountant.auth).send({ date, reason: 'claimed twice' });
    const claim = await postedClaim({ claimDate: '2026-03-12' });
    await refused(voidClaim(claim, '2031-03-08'), 422, 'ledger.no_fiscal_year', 'no fiscal period covers 2031-03-08');
    // the claim's expense moved to another account by a journal entry: its account has no balance and is archived
    const moved = await newAccount('5940', 'expense');
    const onMoved = await postedClaim({ claimDate: '2026-03-12', accountId: moved });
    await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.owner.auth)
      .send({ date: '2026-03-12', lines: [{ accountId: acc['5200'], debit: '40.00' }, { accountId: moved, credit: '40.00' }] }).expect(201);
    await archive(moved);
    await refused(voidClaim(onMoved, '2026-03-13'), 422, 'ledger.account_not_postable', 'account 5940 is archived');
    for (const id of [claim, onMoved]) {
      expect((await t.http.get(url(`expense-claims/${id}`)).set(users.accountant.auth).expect(200)).body).toMatchObject({ status: 'posted', voidEntryId: null });
    }
  });

  // ------------------------------------------------------------------ payments
  it('createBillPayment: no fiscal year, a bank account of another currency, an unknown currency and a base too large are refused; no payment', async () => {
    const pay = (o: object) => () => t.http.post(url('payments')).set(users.accountant.auth)
      .send({ vendorId: vendor, paymentDate: '2026-03-20', amount: '100.00', bankAccountId: acc['1100'], ...o });
    await refused(pay({ paymentDate: '2031-03-05' }), 422, 'ledger.no_fiscal_year', 'no fiscal period covers 2031-03-05');
    await refused(pay({ bankAccountId: usdBank }), 422, 'ledger.currency_not_allowed', 'account 1150 only takes USD, not EUR');
    await refused(pay({ currency: 'QQQ' }), 422, 'ledger.unknown_currency', 'currency QQQ is not known');
    await refused(pay({ currency: 'USD', rate: '1000', amount: '99999999999999' }), 422, 'ledger.invalid_amount', TOO_LARGE);
  });

  it('allocateBillPayment: a draft bill, another vendor s bill and a bill in another currency are refused; nothing is allocated', async () => {
    const p = await payment({ paymentDate: '2026-03-21' });
    const allocate = (billId: string) => () => t.http.post(url(`payments/${p.id}/allocations`)).set(users.accountant.auth).send({ billId, amount: '10.00' });
    const draft = await draftBill();
    await refused(allocate(draft), 409, 'payables.not_open', `billId: bill ${draft} is draft, not posted`);
    const theirs = await postedBill({}, other);
    await refused(allocate(theirs), 422, 'payables.wrong_party', `billId: bill ${theirs} belongs to another vendor than the payment`);
    const usd = await postedBill({ currency: 'USD', rate: '1' });
    await refused(allocate(usd), 422, 'payables.currency_mismatch', `billId: bill ${usd} is in USD, the payment in EUR`);
  });

  it('refundVendorCredit: a zero amount, a bank account that is not one, a closed period, no fiscal year, a bank account of another currency and a base too large are refused', async () => {
    const p = await payment({ paymentDate: '2026-03-22' });
    const refund = (o: object, id = p.id) => () => t.http.post(url(`payments/${id}/refunds`)).set(users.accountant.auth).send({ amount: '40.00', date: '2026-03-25', ...o });
    await refused(refund({ amount: '0' }), 400, 'payables.invalid_amount', 'amount must be positive with at most 2 decimals for EUR (got 0)');
    await refused(refund({ bankAccountId: acc['5200'] }), 422, 'payables.bank_account_not_allowed', 'bankAccountId: account 5200 is not an active, postable asset account');
    await withClosedPeriod('2026-07-10', () => refused(refund({ date: '2026-07-10' }), 422, 'ledger.period_closed', 'the fiscal period 2026-07-01 to 2026-07-31 is closed'));
    await refused(refund({ date: '2031-03-06' }), 422, 'ledger.no_fiscal_year', 'no fiscal period covers 2031-03-06');
    await refused(refund({ bankAccountId: usdBank }), 422, 'ledger.currency_not_allowed', 'account 1150 only takes USD, not EUR');
    // a USD credit of 99,999,999,999,999 (at 1) refunded at the client's rate 1000: the bank's base cannot be stored
    const large = await payment({ currency: 'USD', rate: '1', amount: '99999999999999', paymentDate: '2026-03-22' });
    await refused(refund({ amount: '99999999999999', rate: '1000' }, large.id), 422, 'ledger.invalid_amount', TOO_LARGE);
  });

  it('refundVendorCredit: no client rate and none in the table on the refund date is 422 ledger.rate_missing; a client rate of 0 is 422 ledger.invalid_rate', async () => {
    const refund = (id: string, o: object = {}) => () => t.http.post(url(`payments/${id}/refunds`)).set(users.accountant.auth).send({ amount: '40.00', date: '2026-03-25', ...o });
    // paid at the client's rate: the rate table has no GBP rate, so a refund without one finds none
    const gbp = await payment({ currency: 'GBP', rate: '1.15', paymentDate: '2026-03-22' });
    await refused(refund(gbp.id), 422, 'ledger.rate_missing', 'no GBP rate on or before 2026-03-25');
    const usd = await payment({ currency: 'USD', rate: '1', paymentDate: '2026-03-22' });
    await refused(refund(usd.id, { rate: '0' }), 422, 'ledger.invalid_rate', 'rate must be positive');
    for (const p of [gbp, usd]) expect((await t.http.get(url(`payments/${p.id}`)).set(users.accountant.auth).expect(200)).body.refunds).toEqual([]);
  });

  it('reverseBillAllocation: a date no fiscal year covers is refused; the allocation stays', async () => {
    const bill = await postedBill({ billDate: '2026-03-10' });
    const p = await payment({ paymentDate: '2026-03-23', amount: '50.00', allocations: [{ billId: bill, amount: '50.00' }] });
    await refused(() => t.http.post(url(`allocations/${p.allocations[0].id}/reverse`)).set(users.accountant.auth).send({ date: '2031-03-07' }),
      422, 'ledger.no_fiscal_year', 'no fiscal period covers 2031-03-07');
  });

  it('the realized FX result: an FX loss account of another currency, then an archived one, refuses allocations and refunds (not the reversal of an earlier allocation)', async () => {
    // USD bills at 1.0 and USD payments at 1.2: each settlement of a bill loses EUR 0.20 per dollar
    const [b1, b2] = [await postedBill({ currency: 'USD', rate: '1', unitPrice: '100.00', billDate: '2026-03-11' }), await postedBill({ currency: 'USD', rate: '1', unitPrice: '100.00', billDate: '2026-03-11' })];
    const settled = await payment({ currency: 'USD', rate: '1.2', paymentDate: '2026-03-24', allocations: [{ billId: b1, amount: '100.00' }] });
    const credit = await payment({ currency: 'USD', rate: '1.2', amount: '200.00', paymentDate: '2026-03-24' });
    const allocate = () => t.http.post(url(`payments/${credit.id}/allocations`)).set(users.accountant.auth).send({ billId: b2, amount: '100.00' });
    const refund = () => t.http.post(url(`payments/${credit.id}/refunds`)).set(users.accountant.auth).send({ amount: '50.00', rate: '1', date: '2026-03-26' });
    const reverse = () => t.http.post(url(`allocations/${settled.allocations[0].id}/reverse`)).set(users.accountant.auth).send({});
    const fxLoss = async (accountId: string) => t.http.patch(ledgerUrl(orgId, 'settings')).set(users.owner.auth).send({ fxLossAccountId: accountId }).expect(200);

    await fxLoss(await newAccount('5960', 'expense', { currency: 'USD' }));
    for (const send of [allocate, refund]) await refused(send, 422, 'ledger.currency_not_allowed', 'account 5960 only takes USD, not EUR');
    const archived = await newAccount('5970', 'expense');
    await fxLoss(archived);
    await archive(archived);
    for (const send of [allocate, refund]) await refused(send, 422, 'ledger.account_not_postable', 'account 5970 is archived');
    // a reversal posts its result back on the account the original result went to (read from the original's entry), not
    // on the settings' account of now: the settled allocation's loss of 20.00 comes back off 5500
    const reversed = (await reverse().expect(201)).body;
    const entryId = reversed.allocations.find((a: { reversesAllocationId: string | null }) => a.reversesAllocationId === settled.allocations[0].id).journalEntryId;
    const { rows } = await t.db.admin.query(`SELECT a.code, l.base_credit::numeric(20, 2)::text AS bc FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id
      WHERE l.org_id = $1 AND l.entry_id = $2 AND l.base_credit > 0 AND a.code <> '2100'`, [orgId, entryId]);
    expect(rows).toEqual([{ code: '5500', bc: '20.00' }]);
  });

  it('reverseBillAllocation: a result whose account its original entry does not tell goes to the settings\' FX account: of another currency, or archived, it is refused', async () => {
    // USD 100 at 0.9 and USD 100 at 1.1, one payment at 1.0 settles both: a loss of EUR 10 and a gain of EUR 10, no result line in its entry
    const [cheap, dear] = [await postedBill({ currency: 'USD', rate: '0.9', unitPrice: '100.00', billDate: '2026-03-12' }),
      await postedBill({ currency: 'USD', rate: '1.1', unitPrice: '100.00', billDate: '2026-03-12' })];
    const both = await payment({ currency: 'USD', rate: '1', amount: '200.00', paymentDate: '2026-03-27', allocations: [{ billId: cheap, amount: '100.00' }, { billId: dear, amount: '100.00' }] });
    const loss = both.allocations.find((a: { billId: string }) => a.billId === cheap);
    expect(loss.fxDifference).toBe('10.00');
    const reverse = () => t.http.post(url(`allocations/${loss.id}/reverse`)).set(users.accountant.auth).send({});
    await withFxAccount('usd', (code) => refused(reverse, 422, 'ledger.currency_not_allowed', `account ${code} only takes USD, not EUR`));
    await withFxAccount('archived', (code) => refused(reverse, 422, 'ledger.account_not_postable', `account ${code} is archived`));
    expect((await t.http.get(url(`payments/${both.id}`)).set(users.accountant.auth).expect(200)).body.allocations).toHaveLength(2);
  });

  // ------------------------------------------------------------------ an FX revaluation
  it('voidExpenseClaim dated before the claim\'s last FX revaluation is 422 payables.before_revaluation; the claim stays posted', async () => {
    // an organization of its own: a revaluation revalues every open foreign item of the organization
    const { orgId: org, users: u } = await orgWithRoles(t, 'Revalued Claims Ltd');
    await onPlan(t, org, 'professional');
    const chart = await startBooks(t, org, u.owner);
    await t.http.post(ledgerUrl(org, 'fx-rates/import')).set(u.owner.auth)
      .send({ rates: [{ currency: 'USD', date: '2026-03-01', rate: '0.9' }, { currency: 'USD', date: '2026-03-31', rate: '1.0' }] }).expect(201);
    const claim = await postedClaim({ currency: 'USD', accountId: chart['5200'] }, org, u.member, u.accountant);
    await t.http.post(ledgerUrl(org, 'fx-revaluations')).set(u.owner.auth).send({ date: '2026-03-31' }).expect(201);
    await refused(() => t.http.post(url(`expense-claims/${claim}/void`, org)).set(u.accountant.auth).send({ date: '2026-03-20' }), 422, 'payables.before_revaluation',
      `the void dated 2026-03-20 is before 2026-03-31, the date of the last FX revaluation of ${claim}: date it on or after 2026-03-31`, org);
    expect((await t.http.get(url(`expense-claims/${claim}`, org)).set(u.accountant.auth).expect(200)).body).toMatchObject({ status: 'posted', voidEntryId: null });
  });

  // ------------------------------------------------------------------ an organization started without a chart
  describe('books started without a chart: no AP account 2100, no rounding account, no FX result accounts', () => {
    let bare: string;
    let bareUsers: RoleUsers;
    let bank: string;
    let expense: string;
    let payee: string;
    const bareBill = async (o: { currency?: string; rate?: string; unitPrices?: string[] }) => {
      const { unitPrices = ['100.00'], ...rest } = o;
      return (await t.http.post(url('bills', bare)).set(bareUsers.accountant.auth)
        .send({ vendorId: payee, billDate: '2026-03-10', lines: unitPrices.map((unitPrice) => ({ accountId: expense, unitPrice })), ...rest }).expect(201)).body.id as string;
    };

    beforeAll(async () => {
      ({ orgId: bare, users: bareUsers } = await orgWithRoles(t, 'Bare Chart Ltd'));
      await onPlan(t, bare, 'professional');
      await t.http.post(ledgerUrl(bare, 'books')).set(bareUsers.owner.auth).send({ baseCurrency: 'EUR', fiscalYearStart: '2026-01-01', template: 'none' }).expect(201);
      bank = await newAccount('1000', 'asset', {}, bare, bareUsers.owner);
      expense = await newAccount('5000', 'expense', {}, bare, bareUsers.owner);
      payee = await createVendor(t, bare, bareUsers.accountant);
      await t.http.post(ledgerUrl(bare, 'fx-rates')).set(bareUsers.owner.auth).send({ currency: 'USD', date: '2026-01-01', rate: '0.5' }).expect(201);
    });

    it('no payables settings and no account 2100: reading the settings and paying a vendor are 422 payables.account_not_allowed', async () => {
      const noAp = 'no accounts payable account: set apAccountId in the payables settings (no account 2100)';
      await refused(() => t.http.get(url('settings', bare)).set(bareUsers.accountant.auth), 422, 'payables.account_not_allowed', noAp, bare);
      await refused(() => t.http.post(url('payments', bare)).set(bareUsers.accountant.auth).send({ vendorId: payee, paymentDate: '2026-03-20', amount: '10.00', bankAccountId: bank }),
        422, 'payables.account_not_allowed', noAp, bare);
      // the AP account; no approval up to 1,000.00, one above, none above 10^12 (rules the API accepts: such a bill posts at its submission)
      const ap = await newAccount('2000', 'liability', {}, bare, bareUsers.owner);
      await t.http.put(url('settings', bare)).set(bareUsers.owner.auth).send({ apAccountId: ap, approvalRules: [
        { above: '0', approvals: 0, roles: ['owner', 'admin', 'accountant'] }, { above: '1000', approvals: 1, roles: ['owner', 'admin'] },
        { above: '1000000000000', approvals: 0, roles: ['owner', 'admin', 'accountant'] }] }).expect(200);
    });

    it('no rounding account: a foreign document whose lines round apart from its total is 422 ledger.rounding_account_missing at submission and approval', async () => {
      const noRounding = 'from rounding and no rounding account is configured';
      // USD 0.01 + 0.01 at 0.5: each line is EUR 0.01, the total EUR 0.01
      const small = await bareBill({ currency: 'USD', rate: '0.5', unitPrices: ['0.01', '0.01'] });
      await refused(() => t.http.post(url(`bills/${small}/submit`, bare)).set(bareUsers.accountant.auth), 422, 'ledger.rounding_account_missing', noRounding, bare);
      // USD 2,000.01 + 0.01 at 0.5: EUR 1,000.01, one approval
      const big = await bareBill({ currency: 'USD', rate: '0.5', unitPrices: ['2000.01', '0.01'] });
      await submitted(big, bare, bareUsers.accountant);
      await refused(() => t.http.post(url(`bills/${big}/approve`, bare)).set(bareUsers.owner.auth).send({}), 422, 'ledger.rounding_account_missing', noRounding, bare);
      // a claim at the rate table's 0.5
      const claim = (await t.http.post(url('expense-claims', bare)).set(bareUsers.member.auth).send({ claimDate: '2026-03-10', currency: 'USD', lines: [
        { accountId: expense, amount: '0.01', currency: 'USD', date: '2026-03-10' }, { accountId: expense, amount: '0.01', currency: 'USD', date: '2026-03-10' }] }).expect(201)).body.id;
      await t.http.post(url(`expense-claims/${claim}/submit`, bare)).set(bareUsers.member.auth).expect(200);
      await refused(() => t.http.post(url(`expense-claims/${claim}/approve`, bare)).set(bareUsers.accountant.auth).send({}), 422, 'ledger.rounding_account_missing', noRounding, bare);
    });

    it('a bill posted at its submission whose base is too large to store is 422 ledger.invalid_amount', async () => {
      // at the rate table's 1000 (a client's rate that large is refused on the draft: 400 payables.invalid_amount)
      await t.http.post(ledgerUrl(bare, 'fx-rates')).set(bareUsers.owner.auth).send({ currency: 'CHF', date: '2026-01-01', rate: '1000' }).expect(201);
      const huge = await bareBill({ currency: 'CHF', unitPrices: ['99999999999999'] });
      await refused(() => t.http.post(url(`bills/${huge}/submit`, bare)).set(bareUsers.accountant.auth), 422, 'ledger.invalid_amount', TOO_LARGE, bare);
    });

    it('no FX result accounts: a realized FX result is 422 ledger.fx_accounts_missing on a payment, an allocation, a refund and a reversal', async () => {
      const noFx = 'configure fxGainAccountId and fxLossAccountId in the ledger settings first';
      const post = async (id: string) => submitted(id, bare, bareUsers.accountant);
      // USD 100 at 0.9 (EUR 90) and at 1.1 (EUR 110), paid at 1.0
      const [cheap, dear, third] = [await post(await bareBill({ currency: 'USD', rate: '0.9' })), await post(await bareBill({ currency: 'USD', rate: '1.1' })),
        await post(await bareBill({ currency: 'USD', rate: '0.9' }))];
      // rates far from the table's 0.5 (rateOverride: else 422 ledger.rate_out_of_range)
      const usd = { vendorId: payee, currency: 'USD', rate: '1', rateOverride: true, paymentDate: '2026-03-20', amount: '100.00', bankAccountId: bank };
      await refused(() => t.http.post(url('payments', bare)).set(bareUsers.accountant.auth).send({ ...usd, allocations: [{ billId: third, amount: '100.00' }] }),
        422, 'ledger.fx_accounts_missing', noFx, bare);
      const credit = await payment(usd, bare, bareUsers.accountant);
      await refused(() => t.http.post(url(`payments/${credit.id}/allocations`, bare)).set(bareUsers.accountant.auth).send({ billId: third, amount: '100.00' }),
        422, 'ledger.fx_accounts_missing', noFx, bare);
      await refused(() => t.http.post(url(`payments/${credit.id}/refunds`, bare)).set(bareUsers.accountant.auth).send({ amount: '50.00', rate: '0.8', rateOverride: true, date: '2026-03-21' }),
        422, 'ledger.fx_accounts_missing', noFx, bare);
      // a loss of EUR 10 on one bill and a gain of EUR 10 on the other: the payment posts no result, its allocations do
      const both = await payment({ ...usd, amount: '200.00', allocations: [{ billId: cheap, amount: '100.00' }, { billId: dear, amount: '100.00' }] }, bare, bareUsers.accountant);
      expect(both.allocations.map((a: { fxDifference: string }) => a.fxDifference).sort()).toEqual(['-10.00', '10.00']);
      await refused(() => t.http.post(url(`allocations/${both.allocations[0].id}/reverse`, bare)).set(bareUsers.accountant.auth).send({}),
        422, 'ledger.fx_accounts_missing', noFx, bare);
    });
  });
});
