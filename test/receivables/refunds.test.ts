import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { openTenantTransaction } from '../support/database.js';
import { createOrg, onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { until } from '../support/throwaway-servers.js';
import { ledgerUrl } from '../ledger/ledger-support.js';
import { createVendor, payablesUrl } from '../payables/payables-support.js';
import { expectOpenAmountsKept, issueInvoice, rUrl, setupReceivables } from './receivables-support.js';

/**
 * Refunds of credit, figures by hand (base EUR):
 *  AR: invoice 100.00; payment 150.00 allocated 100.00 → customer credit 50.00. A refund of 70.00 is a 409 (nothing
 *      written); a refund of 30.00 on Feb 10: Dr AR 30.00 / Cr Bank 30.00 → credit 20.00 = AR aging total -20.00 = AR balance.
 *      USD payment 100.00 at 0.90 (base 90.00), all credit; refunded on Mar 1 at 0.95: Dr AR 90.00 (the credit's base),
 *      Cr Bank 95.00, Dr realized FX loss 5.00.
 *  AP: vendor payment 100.00 without allocation (credit with the vendor); the vendor pays back 40.00 on Feb 12:
 *      Dr Bank 40.00 / Cr AP 40.00 → credit 60.00 = AP aging total -60.00 = AP control balance; 61.00 more is a 409.
 *  A payment settles documents of its own currency only: a USD payment allocated to a EUR invoice or bill is a 422
 *  naming both currencies, nothing written (record the payment in the document's currency at the rate received
 *  instead: the realized FX difference is posted then).
 */
describe('refunds of customer and vendor credit; a payment in another currency than its documents', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let customer: string;

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Refunds Ltd'));
    await onPlan(t, orgId, 'professional');
    ({ acc, customer } = await setupReceivables(t, orgId, users.owner, 'EUR'));
    await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(users.owner.auth)
      .send({ rates: [{ currency: 'USD', date: '2026-02-01', rate: '0.90' }, { currency: 'USD', date: '2026-03-01', rate: '0.95' }] }).expect(201);
  });
  afterAll(() => t.close());

  const entryLines = async (entryId: string) => (await t.db.admin.query(
    `SELECT a.code, l.debit::text, l.credit::text, l.base_debit::text, l.base_credit::text FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id
     WHERE l.entry_id = $1 ORDER BY l.line_no`, [entryId])).rows.map((r) => [r.code, r.base_debit, r.base_credit]);
  const count = async (table: string) => (await t.db.admin.query(`SELECT count(*)::int AS n FROM ${table} WHERE org_id = $1`, [orgId])).rows[0].n;

  it('refunds customer credit: AR debit, bank credit, event and audit; never more than the credit', async () => {
    const inv = await issueInvoice(t, orgId, users.accountant, { customerId: customer, invoiceDate: '2026-02-01', lines: [{ description: 'Work', quantity: '1', unitPrice: '100', revenueAccountId: acc['4100'] }] });
    const pay = (await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth).send({ customerId: customer, date: '2026-02-05', amount: '150.00', depositAccountId: acc['1100'],
      method: 'bank_transfer', allocations: [{ invoiceId: inv.id, amount: '100.00' }] }).expect(201)).body;
    expect(pay.unallocated).toBe('50.00');

    const entries = await count('finance.journal_entries');
    const tooMuch = await t.http.post(rUrl(orgId, `payments/${pay.id}/refunds`)).set(users.accountant.auth).send({ date: '2026-02-10', amount: '70.00' }).expect(409);
    expect(tooMuch.body.error).toMatchObject({ code: 'receivables.exceeds_credit', details: { credit: '50.00' } });
    expect(await count('finance.journal_entries')).toBe(entries);
    expect(await count('finance.customer_refunds')).toBe(0);
    await t.http.post(rUrl(orgId, `payments/${pay.id}/refunds`)).set(users.viewer.auth).send({ date: '2026-02-10', amount: '10.00' }).expect(403);

    const res = await t.http.post(rUrl(orgId, `payments/${pay.id}/refunds`)).set(users.accountant.auth).send({ date: '2026-02-10', amount: '30.00', reference: 'R-1' }).expect(201);
    expect(res.body).toMatchObject({ id: pay.id, unallocated: '20.00' });
    expect(res.body.refunds).toEqual([expect.objectContaining({ date: '2026-02-10', amount: '30.00', accountId: acc['1100'], realizedFx: '0.00', reference: 'R-1' })]);
    expect(await entryLines(res.body.refunds[0].entryId)).toEqual([['1200', '30.0000', '0.0000'], ['1100', '0.0000', '30.0000']]);
    const { rows: events } = await t.db.admin.query(`SELECT payload FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'payment.refunded'`, [orgId]);
    expect(events.map((e) => e.payload.payload)).toEqual([{ refundId: res.body.refunds[0].id, paymentId: pay.id, customerId: customer, refundDate: '2026-02-10', currency: 'EUR', amount: '30.00', entryId: res.body.refunds[0].entryId }]);
    const { rows: audit } = await t.db.admin.query(`SELECT actor_id, entity_id FROM core.audit_logs WHERE org_id = $1 AND action = 'receivables.credit_refunded'`, [orgId]);
    expect(audit).toEqual([{ actor_id: users.accountant.id, entity_id: pay.id }]);

    // the credit left is what the aging and the control account say, before and after the refund's date
    for (const [asOf, total] of [['2026-02-09', '-50.00'], ['2026-02-10', '-20.00']]) {
      const aging = (await t.http.get(rUrl(orgId, `aging?asOf=${asOf}`)).set(users.viewer.auth).expect(200)).body;
      const balance = (await t.http.get(ledgerUrl(orgId, `accounts/${acc['1200']}/balance?asOf=${asOf}`)).set(users.viewer.auth).expect(200)).body;
      expect([aging.total, balance.baseBalance]).toEqual([total, total]);
    }
    // the payment's rows stay as they were: the refund cannot be changed by the API role
    await expect(t.db.as({ sub: users.owner.id, role: 'authenticated', org_id: orgId }, 'authenticated', `UPDATE finance.customer_refunds SET amount = 1`)).rejects.toThrow();
  });

  it('refunds foreign-currency credit at the refund date\'s rate: the difference is realized FX', async () => {
    const pay = (await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth)
      .send({ customerId: customer, date: '2026-02-15', amount: '100.00', currency: 'USD', depositAccountId: acc['1100'], method: 'bank_transfer' }).expect(201)).body;
    const res = await t.http.post(rUrl(orgId, `payments/${pay.id}/refunds`)).set(users.accountant.auth).send({ date: '2026-03-01', amount: '100.00' }).expect(201);
    expect(res.body.unallocated).toBe('0.00');
    expect(res.body.refunds[0]).toMatchObject({ rate: '0.9500000000', realizedFx: '-5.00' });
    const lines = await entryLines(res.body.refunds[0].entryId);
    expect(lines.slice(0, 2)).toEqual([['1200', '90.0000', '0.0000'], ['1100', '0.0000', '95.0000']]);
    expect(lines[2][1]).toBe('5.0000');
  });

  it('records credit a vendor pays back: bank debit, AP credit; aging = control balance; never more than the credit', async () => {
    const vendor = await createVendor(t, orgId, users.accountant, { name: 'Refunding Vendor' });
    const pay = (await t.http.post(payablesUrl(orgId, 'payments')).set(users.accountant.auth)
      .send({ vendorId: vendor, paymentDate: '2026-02-11', amount: '100.00', bankAccountId: acc['1100'] }).expect(201)).body;
    expect(pay.unallocated).toBe('100.00');
    const res = await t.http.post(payablesUrl(orgId, `payments/${pay.id}/refunds`)).set(users.accountant.auth).send({ date: '2026-02-12', amount: '40.00' }).expect(201);
    expect(res.body).toMatchObject({ unallocated: '60.00', refunds: [expect.objectContaining({ date: '2026-02-12', amount: '40.00', paymentBaseAmount: '40.00', bankAccountId: acc['1100'] })] });
    expect(await entryLines(res.body.refunds[0].journalEntryId)).toEqual([['1100', '40.0000', '0.0000'], ['2100', '0.0000', '40.0000']]);
    const aging = (await t.http.get(payablesUrl(orgId, 'aging?asOf=2026-02-12')).set(users.viewer.auth).expect(200)).body;
    expect([aging.rows.find((r: any) => r.partyId === vendor).total, aging.total, aging.controlAccountBalance]).toEqual(['-60.00', '-60.00', '-60.00']);
    const refunds = await count('finance.bill_payment_refunds');
    const over = await t.http.post(payablesUrl(orgId, `payments/${pay.id}/refunds`)).set(users.accountant.auth).send({ date: '2026-02-12', amount: '61.00' }).expect(409);
    expect(over.body.error).toMatchObject({ code: 'payables.exceeds_credit', details: { left: '60.00' } });
    expect(await count('finance.bill_payment_refunds')).toBe(refunds);
    const { rows: events } = await t.db.admin.query(`SELECT payload->'payload'->>'amount' AS amount FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'bill_payment.refunded'`, [orgId]);
    expect(events).toEqual([{ amount: '40.00' }]);
  });

  it('refuses a payment in another currency than the invoice or bill it settles: a documented 422, nothing written', async () => {
    const inv = await issueInvoice(t, orgId, users.accountant, { customerId: customer, invoiceDate: '2026-02-20', lines: [{ description: 'EUR work', quantity: '1', unitPrice: '80', revenueAccountId: acc['4100'] }] });
    const [payments, entries] = [await count('finance.customer_payments'), await count('finance.journal_entries')];
    const ar = await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth).send({ customerId: customer, date: '2026-03-01', amount: '80.00', currency: 'USD',
      depositAccountId: acc['1100'], method: 'bank_transfer', allocations: [{ invoiceId: inv.id, amount: '80.00' }] }).expect(422);
    expect(ar.body.error.code).toBe('receivables.currency_mismatch');
    expect(ar.body.error.message).toMatch(/EUR.*USD/);
    expect([await count('finance.customer_payments'), await count('finance.journal_entries')]).toEqual([payments, entries]);

    const vendor = await createVendor(t, orgId, users.accountant, { name: 'EUR Vendor' });
    const bill = await t.http.post(payablesUrl(orgId, 'bills')).set(users.accountant.auth).send({ vendorId: vendor, billDate: '2026-02-20', lines: [{ accountId: acc['5200'], unitPrice: '80.00' }] }).expect(201);
    await t.http.post(payablesUrl(orgId, `bills/${bill.body.id}/submit`)).set(users.accountant.auth).expect(200);
    const before = [await count('finance.bill_payments'), await count('finance.journal_entries')];
    const ap = await t.http.post(payablesUrl(orgId, 'payments')).set(users.accountant.auth).send({ vendorId: vendor, paymentDate: '2026-03-01', amount: '80.00', currency: 'USD',
      bankAccountId: acc['1100'], allocations: [{ billId: bill.body.id, amount: '80.00' }] }).expect(422);
    expect(ap.body.error.code).toBe('payables.currency_mismatch');
    expect([await count('finance.bill_payments'), await count('finance.journal_entries')]).toEqual(before);
  });

  it('the database refuses refunds beyond what the allocations leave of a payment, whoever writes them: rows of one statement together, two writers in flight', async () => {
    // an organization of its own: the refund committed directly here has no journal entry of its own (the last test checks the open amounts of the first organization)
    const other = await createOrg(t, users.owner, 'AR Backstop Ltd');
    const o = await setupReceivables(t, other, users.owner, 'EUR');
    const inv = await issueInvoice(t, other, users.owner, { customerId: o.customer, invoiceDate: '2026-04-01', lines: [{ description: 'Work', quantity: '1', unitPrice: '100', revenueAccountId: o.acc['4100'] }] });
    // the API path goes through the checks: 60.00 allocated with the payment, 10.00 refunded; 30.00 left
    const pay = (await t.http.post(rUrl(other, 'payments')).set(users.owner.auth).send({ customerId: o.customer, date: '2026-04-02', amount: '100.00', depositAccountId: o.acc['1100'],
      method: 'bank_transfer', allocations: [{ invoiceId: inv.id, amount: '60.00' }] }).expect(201)).body.id as string;
    await t.http.post(rUrl(other, `payments/${pay}/refunds`)).set(users.owner.auth).send({ date: '2026-04-02', amount: '10.00' }).expect(201);

    const refund = (...a: string[]) => `INSERT INTO finance.customer_refunds (org_id, payment_id, customer_id, refund_date, amount, currency, rate, source_base, account_id, method, entry_id)
      SELECT p.org_id, p.id, p.customer_id, '2026-04-03', a, p.currency, 1, a, p.deposit_account_id, 'cash', p.entry_id
      FROM finance.customer_payments p, unnest('{${a.join(',')}}'::numeric[]) a WHERE p.org_id = '${other}' AND p.id = '${pay}'`;
    const allocate = (amount: string) => `INSERT INTO finance.receivable_allocations (org_id, invoice_id, payment_id, allocation_date, amount, invoice_base, source_base)
      VALUES ('${other}', '${inv.id}', '${pay}', '2026-04-03', ${amount}, ${amount}, ${amount})`;
    const overCredit = { code: '23514', hint: 'receivables.exceeds_credit', message: expect.stringContaining(`refunds of payment ${pay}`) };
    // a refund is in its payment's currency and to its payment's customer (the service writes the payment's own)
    const beta = (await t.http.post(rUrl(other, 'customers')).set(users.owner.auth).send({ name: 'Beta Ltd', email: 'ap@beta.example', paymentTermsDays: 30 }).expect(201)).body.id as string;
    const unlike = (customerId: string, currency: string) => refund('1').replace('p.customer_id,', `${customerId},`).replace('p.currency,', `${currency},`);
    const clients: pg.Client[] = [];
    const tx = () => openTenantTransaction(t.db.apiUrl, { sub: users.owner.id, org_id: other }, clients);
    try {
      for (const [first, then, error] of [
        [null, refund('20', '20'), overCredit], // one statement: 40.00 of the 30.00 left
        [allocate('30'), refund('0.01'), overCredit], // the allocations count for a refund
        [refund('30'), allocate('0.01'), { code: '23514', hint: 'receivables.exceeds_payment' }], // and the refunds for an allocation
        [null, unlike('p.customer_id', `'USD'`), { code: '23514', hint: 'receivables.currency_mismatch', message: expect.stringContaining(`refund of payment ${pay} is in USD, the payment in EUR`) }],
        [null, unlike(`'${beta}'`, 'p.currency'), { code: '23514', hint: 'receivables.wrong_customer', message: expect.stringContaining(`names customer ${beta}`) }],
      ] as const) {
        const { c } = await tx();
        if (first) await c.query(first);
        await expect(c.query(then)).rejects.toMatchObject(error);
        await c.query('ROLLBACK');
      }
      // two writers in flight: the second waits for the first, then counts what it committed
      const a = await tx();
      const b = await tx();
      await a.c.query(refund('30'));
      const waiting = b.c.query(refund('30')).then(() => 'inserted', (e) => e);
      await until('the second refund waits for the first', async () => (await t.db.admin.query(`SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1`, [b.pid])).rows[0]?.wait_event_type === 'Lock');
      await a.c.query('COMMIT');
      expect(await waiting).toMatchObject(overCredit);
      await b.c.query('ROLLBACK');
    } finally {
      for (const c of clients) await c.end();
    }
    const refunds = async () => (await t.db.admin.query(`SELECT amount::text FROM finance.customer_refunds WHERE org_id = $1 ORDER BY refund_date`, [other])).rows.map((r) => r.amount);
    expect(await refunds()).toEqual(['10.0000', '30.0000']);
    // the service's own check answers first on the API path
    const more = await t.http.post(rUrl(other, `payments/${pay}/refunds`)).set(users.owner.auth).send({ date: '2026-04-03', amount: '0.01' }).expect(409);
    expect(more.body.error).toMatchObject({ code: 'receivables.exceeds_credit', details: { credit: '0.00' } });
    expect(await refunds()).toEqual(['10.0000', '30.0000']);
  });

  it('keeps the open amount of every payment and invoice as refunds are written; the aging from them equals the settlements\' sums at every date', async () => {
    await expectOpenAmountsKept(t, orgId);
  });
});
