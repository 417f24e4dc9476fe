import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Decimal } from 'decimal.js';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { openTenantTransaction } from '../support/database.js';
import { until } from '../support/throwaway-servers.js';
import { createOrg, onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { createVendor, payablesUrl } from './payables-support.js';
import { pauseNext, releaseAll } from '../auth/lock-order.js';
import { payablesRepository } from '../../src/modules/payables/payables.repository.js';

/**
 * What an allocation of a bill payment must be, and the codes the payment routes answer (each one declared on its
 * operation: the test app's response contract, checked at close, turns an undeclared code into a 500).
 *  Amounts: a 100.00 EUR bill and an unallocated 100.00 payment; 10.004 allocated (later or with the payment) is a
 *  400 naming the amount, nothing written.
 *  Dates: bill Jan 10, payment Feb 15 (no allocation). Allocated on Jan 20 (before the payment), a payment of Jan 5
 *  allocated to it (before the bill), or an allocation of Feb 20 reversed on Feb 18: each a 400, nothing written, and
 *  the AP aging total is the AP control balance at every date around them.
 */
describe('payables: allocation amounts and dates; declared error codes', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let vendor: string;
  const url = (p: string) => payablesUrl(orgId, p);
  const missing = '00000000-0000-4000-8000-000000000000';

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Allocation Checks Ltd'));
    await onPlan(t, orgId, 'professional');
    acc = await startBooks(t, orgId, users.owner);
    vendor = await createVendor(t, orgId, users.accountant);
  });
  afterAll(() => t.close());

  /** A 100.00 bill (rent, no tax), posted at submission (under the no-approval threshold). */
  async function postedBill(billDate: string): Promise<string> {
    const b = await t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId: vendor, billDate, lines: [{ accountId: acc['5200'], unitPrice: '100.00' }] }).expect(201);
    await t.http.post(url(`bills/${b.body.id}/submit`)).set(users.accountant.auth).expect(200);
    return b.body.id;
  }
  const payment = (paymentDate: string, extra: object = {}) => t.http.post(url('payments')).set(users.accountant.auth)
    .send({ vendorId: vendor, paymentDate, amount: '100.00', bankAccountId: acc['1100'], ...extra });
  /** payments / allocations / refunds / journal entries of the organization */
  async function written(): Promise<string> {
    const { rows } = await t.db.admin.query(`SELECT
      (SELECT count(*) FROM finance.bill_payments WHERE org_id = $1) || '/' || (SELECT count(*) FROM finance.bill_allocations WHERE org_id = $1) || '/' ||
      (SELECT count(*) FROM finance.bill_payment_refunds WHERE org_id = $1) || '/' || (SELECT count(*) FROM finance.journal_entries WHERE org_id = $1) AS v`, [orgId]);
    return rows[0].v as string;
  }
  async function expectAgingIsApBalance(dates: string[]): Promise<void> {
    for (const asOf of dates) {
      const aging = (await t.http.get(url(`aging?asOf=${asOf}`)).set(users.viewer.auth).expect(200)).body;
      const balance = (await t.http.get(ledgerUrl(orgId, `accounts/${acc['2100']}/balance?asOf=${asOf}`)).set(users.viewer.auth).expect(200)).body;
      // the account's balance is debit minus credit: with the aging total (credit positive) it makes zero
      expect({ asOf, total: aging.total, offBalance: new Decimal(aging.total).plus(balance.baseBalance).toFixed(2) })
        .toEqual({ asOf, total: aging.controlAccountBalance, offBalance: '0.00' });
    }
  }

  it('an allocation amount finer than the currency\'s minor units is a 400 naming it, later or with the payment; nothing is written', async () => {
    const bill = await postedBill('2026-01-10');
    const pay = (await payment('2026-02-15').expect(201)).body;
    const before = await written();

    const later = await t.http.post(url(`payments/${pay.id}/allocations`)).set(users.accountant.auth).send({ billId: bill, amount: '10.004' }).expect(400);
    expect(later.body.error).toEqual({ code: 'payables.invalid_amount', message: 'amount must be positive with at most 2 decimals for EUR (got 10.004)' });
    const withPayment = await payment('2026-02-15', { reference: 'P-FINE', allocations: [{ billId: bill, amount: '10.005' }] }).expect(400);
    expect(withPayment.body.error).toEqual({ code: 'payables.invalid_amount', message: 'allocations[0].amount must be positive with at most 2 decimals for EUR (got 10.005)' });

    expect(await written()).toBe(before);
    expect((await t.http.get(url(`payments/${pay.id}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ unallocated: '100.00', allocations: [] });
    expect((await t.http.get(url(`bills/${bill}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ status: 'posted', openAmount: '100.00' });
    // in the currency's units it is allocated
    const ok = await t.http.post(url(`payments/${pay.id}/allocations`)).set(users.accountant.auth).send({ billId: bill, amount: '10.00' }).expect(201);
    expect(ok.body).toMatchObject({ unallocated: '90.00', allocations: [expect.objectContaining({ billId: bill, amount: '10.00', date: '2026-02-15' })] });
  });

  it('an allocation before its payment or its bill, or a reversal before the allocation, is a 400; nothing is written; aging = AP', async () => {
    const bill = await postedBill('2026-01-10');
    const pay = (await payment('2026-02-15', { reference: 'P-DATES' }).expect(201)).body;
    const before = await written();

    const early = await t.http.post(url(`payments/${pay.id}/allocations`)).set(users.accountant.auth).send({ billId: bill, amount: '100.00', date: '2026-01-20' }).expect(400);
    expect(early.body.error).toEqual({ code: 'validation_failed', message: 'date must not be before the payment date 2026-02-15' });
    const beforeBill = await payment('2026-01-05', { reference: 'P-EARLY', allocations: [{ billId: bill, amount: '100.00' }] }).expect(400);
    expect(beforeBill.body.error).toEqual({ code: 'validation_failed', message: `allocations[0]: the allocation date 2026-01-05 is before the bill date 2026-01-10 of bill ${bill}` });
    expect(await written()).toBe(before);
    expect((await t.http.get(url(`bills/${bill}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ status: 'posted', openAmount: '100.00' });
    await expectAgingIsApBalance(['2026-01-04', '2026-01-05', '2026-01-20', '2026-01-31', '2026-02-15']);

    const allocated = await t.http.post(url(`payments/${pay.id}/allocations`)).set(users.accountant.auth).send({ billId: bill, amount: '100.00', date: '2026-02-20' }).expect(201);
    const allocationId = allocated.body.allocations[0].id;
    const afterAllocation = await written();
    const earlyReversal = await t.http.post(url(`allocations/${allocationId}/reverse`)).set(users.accountant.auth).send({ date: '2026-02-18' }).expect(400);
    expect(earlyReversal.body.error).toEqual({ code: 'validation_failed', message: 'date must not be before the allocation date 2026-02-20' });
    expect(await written()).toBe(afterAllocation);
    expect((await t.http.get(url(`bills/${bill}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ status: 'paid', openAmount: '0.00' });
    await expectAgingIsApBalance(['2026-02-18', '2026-02-19', '2026-02-20', '2026-02-28']);
  });

  it('answers only codes its operations declare: unknown bills and accounts are 404s, a missing AP account a 422', async () => {
    const bill = await postedBill('2026-01-10');
    const pay = (await payment('2026-02-15', { reference: 'P-CODES' }).expect(201)).body;
    const before = await written();

    const unknownBill = await payment('2026-02-15', { allocations: [{ billId: missing, amount: '10.00' }] }).expect(404);
    expect(unknownBill.body.error).toEqual({ code: 'bill.not_found', message: `bill ${missing} was not found` });
    const allocateUnknown = await t.http.post(url(`payments/${pay.id}/allocations`)).set(users.accountant.auth).send({ billId: missing, amount: '10.00' }).expect(404);
    expect(allocateUnknown.body.error).toEqual({ code: 'bill.not_found', message: `bill ${missing} was not found` });
    const unknownBank = await payment('2026-02-15', { bankAccountId: missing, allocations: [{ billId: bill, amount: '10.00' }] }).expect(404);
    expect(unknownBank.body.error).toEqual({ code: 'account.not_found', message: `account ${missing} was not found` });
    const refundToUnknown = await t.http.post(url(`payments/${pay.id}/refunds`)).set(users.accountant.auth).send({ amount: '10.00', date: '2026-02-20', bankAccountId: missing }).expect(404);
    expect(refundToUnknown.body.error).toEqual({ code: 'account.not_found', message: `account ${missing} was not found` });
    expect(await written()).toBe(before);

    const settingsBefore = (await t.http.get(url('settings')).set(users.viewer.auth).expect(200)).body;
    const unknownAp = await t.http.put(url('settings')).set(users.admin.auth).send({ apAccountId: missing, approvalRules: [{ above: '0', approvals: 0, roles: ['admin'] }] }).expect(404);
    expect(unknownAp.body.error).toEqual({ code: 'account.not_found', message: `account ${missing} was not found` });
    expect((await t.http.get(url('settings')).set(users.viewer.auth).expect(200)).body).toEqual(settingsBefore);
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM finance.payables_settings WHERE org_id = $1', [orgId])).rows[0].n).toBe(0);

    const ledgerBefore = (await t.http.get(ledgerUrl(orgId, 'settings')).set(users.viewer.auth).expect(200)).body;
    const unknownFx = await t.http.patch(ledgerUrl(orgId, 'settings')).set(users.owner.auth).send({ fxGainAccountId: missing }).expect(404);
    expect(unknownFx.body.error).toEqual({ code: 'account.not_found', message: `account ${missing} was not found` });
    expect((await t.http.get(ledgerUrl(orgId, 'settings')).set(users.viewer.auth).expect(200)).body).toEqual(ledgerBefore);
    // the ledger's other check of a postable account (the tax codes bills use) answers the same 404
    const taxCodes = async () => (await t.http.get(ledgerUrl(orgId, 'tax-codes')).set(users.viewer.auth).expect(200)).body;
    const taxCodesBefore = await taxCodes();
    const unknownTaxAccount = await t.http.post(ledgerUrl(orgId, 'tax-codes')).set(users.accountant.auth)
      .send({ code: 'VAT7', name: 'VAT 7 %', rate: '7', salesAccountId: missing, purchaseAccountId: acc['1300'] }).expect(404);
    expect(unknownTaxAccount.body.error).toEqual({ code: 'account.not_found', message: `account ${missing} was not found` });
    expect(await taxCodes()).toEqual(taxCodesBefore);

    // books without the standard chart: no accounts payable account (2100) and no payables settings naming one
    const bare = await createOrg(t, users.owner, 'Bare Chart Ltd');
    await onPlan(t, bare, 'professional');
    await t.http.post(ledgerUrl(bare, 'books')).set(users.owner.auth).send({ baseCurrency: 'EUR', fiscalYearStart: '2026-01-01', template: 'none' }).expect(201);
    const travel = (await t.http.post(ledgerUrl(bare, 'accounts')).set(users.owner.auth).send({ code: '6100', name: 'Travel', type: 'expense' }).expect(201)).body.id;
    const claim = (await t.http.post(payablesUrl(bare, 'expense-claims')).set(users.owner.auth)
      .send({ claimDate: '2026-02-04', currency: 'EUR', lines: [{ accountId: travel, amount: '12.50', currency: 'EUR', date: '2026-02-03' }] }).expect(201)).body;
    const submit = await t.http.post(payablesUrl(bare, `expense-claims/${claim.id}/submit`)).set(users.owner.auth).expect(422);
    expect(submit.body.error).toEqual({ code: 'payables.account_not_allowed', message: 'no accounts payable account: set apAccountId in the payables settings (no account 2100)' });
    expect((await t.http.get(payablesUrl(bare, `expense-claims/${claim.id}`)).set(users.owner.auth).expect(200)).body).toMatchObject({ status: 'draft', decisions: [] });
    const bareVendor = await createVendor(t, bare, users.owner);
    const bareBill = (await t.http.post(payablesUrl(bare, 'bills')).set(users.owner.auth).send({ vendorId: bareVendor, billDate: '2026-02-04', lines: [{ accountId: travel, unitPrice: '10.00' }] }).expect(201)).body;
    const submitBill = await t.http.post(payablesUrl(bare, `bills/${bareBill.id}/submit`)).set(users.owner.auth).expect(422);
    expect(submitBill.body.error).toEqual(submit.body.error);
    expect((await t.http.get(payablesUrl(bare, `bills/${bareBill.id}`)).set(users.owner.auth).expect(200)).body).toMatchObject({ status: 'draft', decisions: [], journalEntryId: null });
    const aging = await t.http.get(payablesUrl(bare, 'aging?asOf=2026-02-28')).set(users.owner.auth).expect(422);
    expect(aging.body.error).toEqual(submit.body.error);
    // the way out the message names: setting the AP account, after which the claim goes through
    const ap = (await t.http.post(ledgerUrl(bare, 'accounts')).set(users.owner.auth).send({ code: '2600', name: 'Payables', type: 'liability' }).expect(201)).body.id;
    await t.http.put(payablesUrl(bare, 'settings')).set(users.owner.auth).send({ apAccountId: ap, approvalRules: [{ above: '0', approvals: 1, roles: ['owner', 'admin'] }] }).expect(200);
    await t.http.post(payablesUrl(bare, `expense-claims/${claim.id}/submit`)).set(users.owner.auth).expect(200);
  });

  it('the database refuses allocations and refunds beyond a bill\'s total or a payment\'s amount (its refunds counted), whoever writes them: rows of one statement together, two writers in flight', async () => {
    // an organization of its own: the rows committed directly here carry no journal entry (the aging checks above read this one's)
    const other = await createOrg(t, users.owner, 'AP Backstop Ltd');
    await onPlan(t, other, 'professional');
    const o = await startBooks(t, other, users.owner);
    const v = await createVendor(t, other, users.owner);
    const bill = async () => {
      const b = await t.http.post(payablesUrl(other, 'bills')).set(users.owner.auth).send({ vendorId: v, billDate: '2026-03-01', lines: [{ accountId: o['5200'], unitPrice: '100.00' }] }).expect(201);
      await t.http.post(payablesUrl(other, `bills/${b.body.id}/submit`)).set(users.owner.auth).expect(200);
      return b.body.id as string;
    };
    const [b1, b2] = [await bill(), await bill()];
    // the API path goes through the checks: 50.00 allocated with the payment, 10.00 refunded; 40.00 left
    const pay = (await t.http.post(payablesUrl(other, 'payments')).set(users.owner.auth)
      .send({ vendorId: v, paymentDate: '2026-03-02', amount: '100.00', bankAccountId: o['1100'], allocations: [{ billId: b1, amount: '50.00' }] }).expect(201)).body.id as string;
    await t.http.post(payablesUrl(other, `payments/${pay}/refunds`)).set(users.owner.auth).send({ date: '2026-03-02', amount: '10.00' }).expect(201);

    const amounts = (a: string[]) => `unnest('{${a.join(',')}}'::numeric[]) a`;
    const allocate = (...a: string[]) => `INSERT INTO finance.bill_allocations (org_id, payment_id, bill_id, allocation_date, amount, bill_base_amount, payment_base_amount, created_by)
      SELECT '${other}', '${pay}', '${b2}', '2026-03-03', a, a, a, 'direct' FROM ${amounts(a)}`;
    const refund = (...a: string[]) => `INSERT INTO finance.bill_payment_refunds (org_id, payment_id, refund_date, amount, currency, rate, payment_base_amount, bank_account_id, journal_entry_id, created_by)
      SELECT p.org_id, p.id, '2026-03-03', a, p.currency, 1, a, p.bank_account_id, p.journal_entry_id, 'direct' FROM finance.bill_payments p, ${amounts(a)}
      WHERE p.org_id = '${other}' AND p.id = '${pay}'`;
    const overBill = { code: '23514', hint: 'payables.over_allocation', message: expect.stringContaining(`open amount of bill ${b2} below zero`) };
    const overPayment = { code: '23514', hint: 'payables.over_allocation', message: expect.stringContaining(`allocations of payment ${pay}`) };
    const overCredit = { code: '23514', hint: 'payables.exceeds_credit', message: expect.stringContaining(`refunds of payment ${pay}`) };
    // a refund is in its payment's currency (the service writes the payment's; the payment has no other party column)
    const inUsd = refund('1').replace('p.currency', `'USD'`);
    const otherCurrency = { code: '23514', hint: 'payables.currency_mismatch', message: expect.stringContaining(`refund of payment ${pay} is in USD, the payment in EUR`) };
    const clients: pg.Client[] = [];
    const tx = () => openTenantTransaction(t.db.apiUrl, { sub: users.owner.id, org_id: other }, clients);
    try {
      for (const [first, then, error] of [
        [null, allocate('60', '60'), overBill], // one statement: 120.00 of a 100.00 bill
        [null, allocate('25', '25'), overPayment], // one statement: 50.00 of the 40.00 left of the payment
        [null, refund('20', '30'), overCredit],
        [refund('40'), allocate('0.01'), overPayment], // the refund counts for an allocation
        [allocate('40'), refund('0.01'), overCredit], // the allocation counts for a refund
        [null, inUsd, otherCurrency],
      ] as const) {
        const { c } = await tx();
        if (first) await c.query(first);
        await expect(c.query(then)).rejects.toMatchObject(error);
        await c.query('ROLLBACK');
      }
      // two writers in flight: the refund waits for the allocation, then counts what it committed
      const a = await tx();
      const b = await tx();
      await a.c.query(allocate('40'));
      const waiting = b.c.query(refund('40')).then(() => 'inserted', (e) => e);
      await until('the refund waits for the allocation', async () => (await t.db.admin.query(`SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1`, [b.pid])).rows[0]?.wait_event_type === 'Lock');
      await a.c.query('COMMIT');
      expect(await waiting).toMatchObject(overCredit);
      await b.c.query('ROLLBACK');
    } finally {
      for (const c of clients) await c.end();
    }
    const used = async (table: string) => (await t.db.admin.query(`SELECT amount::text FROM finance.${table} WHERE org_id = $1 AND payment_id = $2 ORDER BY created_at, amount`, [other, pay])).rows.map((r) => r.amount);
    expect([await used('bill_allocations'), await used('bill_payment_refunds')]).toEqual([['50.0000', '40.0000'], ['10.0000']]);
    // the service's own check answers first on the API path
    const more = await t.http.post(payablesUrl(other, `payments/${pay}/refunds`)).set(users.owner.auth).send({ date: '2026-03-03', amount: '0.01' }).expect(409);
    expect(more.body.error).toMatchObject({ code: 'payables.exceeds_credit', details: { left: '0.00' } });
    expect(await used('bill_payment_refunds')).toEqual(['10.0000']);
  });

  it('a direct writer of an allocation waits for the service allocating the same payment, then counts what it committed: no deadlock (40P01)', async () => {
    // the service holds the payment's lock, paused before it locks the bill. The writer's row would have locked the bill
    // (its foreign key check) before its checks took the payment's lock: each waiting for the other, PostgreSQL cancelled the writer
    const bill = await postedBill('2026-03-01');
    const pay = (await payment('2026-03-02').expect(201)).body.id as string;
    const clients: pg.Client[] = [];
    try {
      const paused = pauseNext(payablesRepository, 'lockBill');
      const service = t.http.post(url(`payments/${pay}/allocations`)).set(users.accountant.auth).send({ billId: bill, amount: '60.00' }).then((r) => r);
      await paused.reached;
      const direct = await openTenantTransaction(t.db.apiUrl, { sub: users.owner.id, org_id: orgId }, clients);
      const written = direct.c.query(`INSERT INTO finance.bill_allocations (org_id, payment_id, bill_id, allocation_date, amount, bill_base_amount, payment_base_amount, created_by)
        VALUES ('${orgId}', '${pay}', '${bill}', '2026-03-02', 60, 60, 60, 'direct')`).then(() => 'inserted', (e) => e);
      await until('the direct writer waits for the payment', async () => (await t.db.admin.query(`SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1`, [direct.pid])).rows[0]?.wait_event_type === 'Lock');
      paused.release();
      expect((await service).status).toBe(201);
      expect(await written).toMatchObject({ code: '23514', hint: 'payables.over_allocation', message: expect.stringContaining(`open amount of bill ${bill}`) });
      await direct.c.query('ROLLBACK');
    } finally {
      releaseAll();
      for (const c of clients) await c.end();
    }
    const { rows } = await t.db.admin.query(`SELECT amount::text FROM finance.bill_allocations WHERE org_id = $1 AND payment_id = $2`, [orgId, pay]);
    expect(rows).toEqual([{ amount: '60.0000' }]);
  });
});
