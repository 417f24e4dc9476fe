import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { PAYABLES_EVENT_TYPES } from '../../src/modules/payables/payables.events.js';
import { addMember, onPlan, orgWithRoles, registerUser, type RoleUsers, type TestUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { createVendor, payablesUrl } from './payables-support.js';

/**
 * A quarter of payables in EUR, the figures computed by hand:
 *  Jan  2 capital in                          Dr Cash 50,000.00                     Cr Share capital 50,000.00
 *  Jan  5 bill B1 (admin): equipment 10 x 1,100.00 + VAT 20 % 2,200.00 = 13,200.00 > 10,000 → two approvers;
 *         the admin's own approval is refused, the owner approves (1 of 2), a second admin approves → posted
 *                                              Dr Equipment 11,000 + Input VAT 2,200  Cr AP 13,200      due Feb 4
 *  Jan 10 bill B2 (accountant): rent 500.00 ≤ 1,000 → no approval, posted at submission   Dr Rent 500  Cr AP 500  due Feb 9
 *  Jan 12 expense claim (member): travel 84.50 → one bookkeeper approves   Dr Travel 84.50  Cr AP 84.50 (employee)
 *  Jan 15 bill B3 in USD: rent USD 1,000 at 0.90 = 900.00 → posted at submission  Dr Rent 900  Cr AP 900  due Feb 14
 *  Jan 20 payment P1 to B1 6,000.00 (part)    Dr AP 6,000   Cr Cash 6,000
 *  Jan 25 reimbursement of the claim 84.50    Dr AP 84.50   Cr Cash 84.50
 *  Feb  1 payment P3 of B3 USD 1,000 at 0.95 = 950.00: realized FX loss 50.00
 *                                              Dr AP 900 (USD 1,000 at 0.90) + FX loss 50   Cr Cash 950 (USD 1,000 at 0.95)
 *  Feb 10 payment P2 to B1 7,200.00 (rest)    Dr AP 7,200   Cr Cash 7,200
 * Trial balance Jan 31: Cash 43,915.50 | Input VAT 2,200 | Equipment 11,000 | Rent 1,400 | Travel 84.50 = 58,600
 *                       AP 8,600 | Share capital 50,000 = 58,600
 * Trial balance Mar 15: Cash 35,765.50 | Input VAT 2,200 | Equipment 11,000 | Rent 1,400 | FX loss 50 | Travel 84.50 = 50,500
 *                       AP 500 | Share capital 50,000 = 50,500
 * P&L January: expenses 1,484.50, net -1,484.50. Balance sheet Jan 31: assets 57,115.50 = liabilities 8,600 + equity 50,000 - 1,484.50.
 * P&L Jan 1 - Mar 15: expenses 1,534.50 (rent 1,400 + FX loss 50 + travel 84.50). Balance sheet Mar 15: assets 48,965.50 = 500 + 50,000 - 1,534.50.
 * AP aging Jan 31: all current: B1 7,200 + B2 500 + B3 900 = 8,600 = AP. Mar 15: B2 500, 34 days past due (31-60) = AP 500.
 */
describe('payables: a worked quarter', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let admin2: TestUser;
  let acc: Record<string, string>;
  let vat: string;
  let vendor: string;
  const url = (p: string) => payablesUrl(orgId, p);

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Payables Ltd'));
    admin2 = await registerUser(t, 'admin2');
    await addMember(t, orgId, admin2, 'admin');
    await onPlan(t, orgId, 'professional');
    acc = await startBooks(t, orgId, users.owner);
    const travel = await t.http.post(ledgerUrl(orgId, 'accounts')).set(users.owner.auth).send({ code: '5700', name: 'Travel', type: 'expense', parentId: acc['5000'] }).expect(201);
    acc['5700'] = travel.body.id;
    vat = (await t.http.post(ledgerUrl(orgId, 'tax-codes')).set(users.owner.auth)
      .send({ code: 'VAT20', name: 'VAT 20 %', rate: '20', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201)).body.id;
    await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(users.owner.auth)
      .send({ rates: [{ currency: 'USD', date: '2026-01-15', rate: '0.90' }, { currency: 'USD', date: '2026-02-01', rate: '0.95' }] }).expect(201);
    await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.owner.auth)
      .send({ date: '2026-01-02', memo: 'Capital', lines: [{ accountId: acc['1100'], debit: '50000' }, { accountId: acc['3100'], credit: '50000' }] }).expect(201);
    vendor = await createVendor(t, orgId, users.accountant, { name: 'Acme Supplies', contactPerson: 'Jane Doe', phone: '+49 30 1' });
  });
  afterAll(() => t.close());

  async function entryLines(entryId: string) {
    const e = await t.http.get(ledgerUrl(orgId, `journal-entries/${entryId}`)).set(users.owner.auth).expect(200);
    return e.body.lines.map((l: any) => [l.accountCode, l.currency, l.debit, l.credit, l.baseDebit, l.baseCredit]);
  }
  const tbOf = async (asOf: string) => {
    const tb = await t.http.get(ledgerUrl(orgId, `reports/trial-balance?asOf=${asOf}`)).set(users.owner.auth).expect(200);
    return { rows: Object.fromEntries(tb.body.rows.map((r: any) => [r.code, [r.debit, r.credit]])), totalDebit: tb.body.totalDebit, totalCredit: tb.body.totalCredit };
  };

  it('runs bills through approval, payments and a reimbursement, and the books, statements and aging match the hand figures', async () => {
    // ---- B1: above the two-approver threshold
    const b1 = await t.http.post(url('bills')).set(users.admin.auth).send({
      vendorId: vendor, billNumber: 'A-100', billDate: '2026-01-05', memo: 'Laptops', total: '13200.00',
      lines: [{ accountId: acc['1500'], description: 'Laptop', quantity: '10', unitPrice: '1100.00', taxCodeId: vat }],
    }).expect(201);
    expect(b1.body).toMatchObject({ status: 'draft', subtotal: '11000.00', taxTotal: '2200.00', total: '13200.00', openAmount: '13200.00', dueDate: '2026-02-04', vendorId: vendor });
    const id1 = b1.body.id;
    const submitted = await t.http.post(url(`bills/${id1}/submit`)).set(users.admin.auth).expect(200);
    expect(submitted.body).toMatchObject({ status: 'submitted', approvalsRequired: 2, approverRoles: ['owner', 'admin'], approvalsGiven: 0 });
    const own = await t.http.post(url(`bills/${id1}/approve`)).set(users.admin.auth).send({}).expect(403);
    expect(own.body.error.code).toBe('payables.own_bill');
    const byAccountant = await t.http.post(url(`bills/${id1}/approve`)).set(users.accountant.auth).send({}).expect(403);
    expect(byAccountant.body.error.code).toBe('payables.role_not_allowed');
    const first = await t.http.post(url(`bills/${id1}/approve`)).set(users.owner.auth).send({ comment: 'checked' }).expect(200);
    expect(first.body).toMatchObject({ status: 'submitted', approvalsGiven: 1, journalEntryId: null });
    const twice = await t.http.post(url(`bills/${id1}/approve`)).set(users.owner.auth).send({}).expect(409);
    expect(twice.body.error.code).toBe('payables.already_approved');
    const final = await t.http.post(url(`bills/${id1}/approve`)).set(admin2.auth).send({}).expect(200);
    expect(final.body).toMatchObject({ status: 'posted', approvalsGiven: 2, baseTotal: '13200.00', rate: '1.0000000000' });
    expect(final.body.decisions.map((d: any) => [d.decision, d.actorId])).toEqual([
      ['submit', users.admin.id], ['approve', users.owner.id], ['approve', admin2.id]]);
    expect(await entryLines(final.body.journalEntryId)).toEqual([
      ['1500', 'EUR', '11000.00', '0.00', '11000.00', '0.00'], ['1300', 'EUR', '2200.00', '0.00', '2200.00', '0.00'], ['2100', 'EUR', '0.00', '13200.00', '0.00', '13200.00']]);
    // the journal names the vendor by id only: no contact data in the lines
    const { rows: cp } = await t.db.admin.query(`SELECT DISTINCT counterparty_type, counterparty_id, description FROM finance.journal_lines WHERE entry_id = $1`, [final.body.journalEntryId]);
    expect(cp.every((r) => r.counterparty_type === 'vendor' && r.counterparty_id === vendor && !/Jane|\+49/.test(r.description ?? ''))).toBe(true);
    // a posted bill is no longer editable
    await t.http.patch(url(`bills/${id1}`)).set(users.admin.auth).send({ billDate: '2026-01-05', lines: [{ accountId: acc['1500'], unitPrice: '1' }] }).expect(409);

    // ---- B2: small, posted at submission
    const b2 = await t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId: vendor, billDate: '2026-01-10', lines: [{ accountId: acc['5200'], unitPrice: '500.00' }] }).expect(201);
    const b2Posted = await t.http.post(url(`bills/${b2.body.id}/submit`)).set(users.accountant.auth).expect(200);
    expect(b2Posted.body).toMatchObject({ status: 'posted', approvalsRequired: 0, dueDate: '2026-02-09' });

    // ---- expense claim of the member
    const claim = await t.http.post(url('expense-claims')).set(users.member.auth).send({
      claimDate: '2026-01-12', currency: 'EUR', memo: 'Client visit', lines: [{ accountId: acc['5700'], amount: '84.50', currency: 'EUR', date: '2026-01-11', receiptRef: 'R-1' }],
    }).expect(201);
    expect(claim.body).toMatchObject({ kind: 'expense_claim', claimantId: users.member.id, total: '84.50', status: 'draft' });
    const cs = await t.http.post(url(`expense-claims/${claim.body.id}/submit`)).set(users.member.auth).expect(200);
    expect(cs.body).toMatchObject({ status: 'submitted', approvalsRequired: 1 });
    await t.http.post(url(`expense-claims/${claim.body.id}/approve`)).set(users.member.auth).send({}).expect(403);
    const ca = await t.http.post(url(`expense-claims/${claim.body.id}/approve`)).set(users.accountant.auth).send({}).expect(200);
    expect(ca.body.status).toBe('posted');
    expect(await entryLines(ca.body.journalEntryId)).toEqual([['5700', 'EUR', '84.50', '0.00', '84.50', '0.00'], ['2100', 'EUR', '0.00', '84.50', '0.00', '84.50']]);

    // ---- B3 in USD at 0.90
    const b3 = await t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId: vendor, billDate: '2026-01-15', currency: 'USD', lines: [{ accountId: acc['5200'], unitPrice: '1000.00' }] }).expect(201);
    const b3Posted = await t.http.post(url(`bills/${b3.body.id}/submit`)).set(users.accountant.auth).expect(200);
    expect(b3Posted.body).toMatchObject({ status: 'posted', baseTotal: '900.00', rate: '0.9000000000' });

    // ---- payments
    const p1 = await t.http.post(url('payments')).set(users.accountant.auth).send({
      vendorId: vendor, paymentDate: '2026-01-20', amount: '6000.00', bankAccountId: acc['1100'], reference: 'TRX-1', allocations: [{ billId: id1, amount: '6000.00' }],
    }).expect(201);
    expect(p1.body).toMatchObject({ amount: '6000.00', unallocated: '0.00', baseAmount: '6000.00' });
    expect((await t.http.get(url(`bills/${id1}`)).set(users.owner.auth).expect(200)).body).toMatchObject({ status: 'partially_paid', openAmount: '7200.00' });
    const reimb = await t.http.post(url('payments')).set(users.accountant.auth).send({
      claimantId: users.member.id, paymentDate: '2026-01-25', amount: '84.50', bankAccountId: acc['1100'], allocations: [{ billId: claim.body.id, amount: '84.50' }],
    }).expect(201);
    expect(reimb.body.claimantId).toBe(users.member.id);
    expect((await t.http.get(url(`expense-claims/${claim.body.id}`)).set(users.member.auth).expect(200)).body).toMatchObject({ status: 'paid', openAmount: '0.00' });
    const p3 = await t.http.post(url('payments')).set(users.accountant.auth).send({
      vendorId: vendor, paymentDate: '2026-02-01', amount: '1000.00', currency: 'USD', bankAccountId: acc['1100'], allocations: [{ billId: b3.body.id, amount: '1000.00' }],
    }).expect(201);
    expect(p3.body).toMatchObject({ baseAmount: '950.00', rate: '0.9500000000' });
    expect(p3.body.allocations[0]).toMatchObject({ billBaseAmount: '900.00', paymentBaseAmount: '950.00', fxDifference: '50.00' });
    expect(await entryLines(p3.body.journalEntryId)).toEqual([
      ['2100', 'USD', '1000.00', '0.00', '900.00', '0.00'], ['5500', 'EUR', '50.00', '0.00', '50.00', '0.00'], ['1100', 'USD', '0.00', '1000.00', '0.00', '950.00']]);
    await t.http.post(url('payments')).set(users.accountant.auth).send({
      vendorId: vendor, paymentDate: '2026-02-10', amount: '7200.00', bankAccountId: acc['1100'], allocations: [{ billId: id1, amount: '7200.00' }],
    }).expect(201);
    expect((await t.http.get(url(`bills/${id1}`)).set(users.owner.auth).expect(200)).body).toMatchObject({ status: 'paid', openAmount: '0.00' });

    // ---- trial balance, P&L, balance sheet
    const jan = await tbOf('2026-01-31');
    expect(jan.rows).toEqual({
      1100: ['43915.50', '0.00'], 1300: ['2200.00', '0.00'], 1500: ['11000.00', '0.00'], 2100: ['0.00', '8600.00'], 3100: ['0.00', '50000.00'],
      5200: ['1400.00', '0.00'], 5700: ['84.50', '0.00'],
    });
    expect([jan.totalDebit, jan.totalCredit]).toEqual(['58600.00', '58600.00']);
    const mar = await tbOf('2026-03-15');
    expect(mar.rows).toEqual({
      1100: ['35765.50', '0.00'], 1300: ['2200.00', '0.00'], 1500: ['11000.00', '0.00'], 2100: ['0.00', '500.00'], 3100: ['0.00', '50000.00'],
      5200: ['1400.00', '0.00'], 5500: ['50.00', '0.00'], 5700: ['84.50', '0.00'],
    });
    expect([mar.totalDebit, mar.totalCredit]).toEqual(['50500.00', '50500.00']);
    const pl = await t.http.get(ledgerUrl(orgId, 'reports/profit-and-loss?from=2026-01-01&to=2026-01-31')).set(users.owner.auth).expect(200);
    expect(pl.body).toMatchObject({ totalRevenue: '0.00', totalExpenses: '1484.50', netIncome: '-1484.50' });
    const bs = await t.http.get(ledgerUrl(orgId, 'reports/balance-sheet?asOf=2026-01-31')).set(users.owner.auth).expect(200);
    expect(bs.body).toMatchObject({ totalAssets: '57115.50', totalLiabilities: '8600.00', totalEquity: '50000.00', currentEarnings: '-1484.50' });
    const plQ = await t.http.get(ledgerUrl(orgId, 'reports/profit-and-loss?from=2026-01-01&to=2026-03-15')).set(users.owner.auth).expect(200);
    expect(plQ.body).toMatchObject({ totalRevenue: '0.00', totalExpenses: '1534.50', netIncome: '-1534.50' });
    const bsQ = await t.http.get(ledgerUrl(orgId, 'reports/balance-sheet?asOf=2026-03-15')).set(users.owner.auth).expect(200);
    expect(bsQ.body).toMatchObject({ totalAssets: '48965.50', totalLiabilities: '500.00', totalEquity: '50000.00', currentEarnings: '-1534.50' });

    // ---- AP aging at two dates (= the AP balance)
    const agingJan = await t.http.get(url('aging?asOf=2026-01-31')).set(users.viewer.auth).expect(200);
    expect(agingJan.body).toMatchObject({
      asOf: '2026-01-31', baseCurrency: 'EUR', buckets: ['current', '1-30', '31-60', '61-90', '>90'],
      totals: { current: '8600.00', '1-30': '0.00', '31-60': '0.00', '61-90': '0.00', '>90': '0.00' }, total: '8600.00', controlAccountBalance: '8600.00',
    });
    expect(agingJan.body.rows).toEqual([expect.objectContaining({ partyType: 'vendor', partyId: vendor, partyName: 'Acme Supplies', total: '8600.00' })]);
    const agingMar = await t.http.get(url('aging?asOf=2026-03-15')).set(users.viewer.auth).expect(200);
    expect(agingMar.body).toMatchObject({ totals: { current: '0.00', '1-30': '0.00', '31-60': '500.00', '61-90': '0.00', '>90': '0.00' }, total: '500.00', controlAccountBalance: '500.00' });
    const custom = await t.http.get(url('aging?asOf=2026-02-20&buckets=15,30,60')).set(users.owner.auth).expect(200);
    // Feb 20: B1 paid; B2 500 due Feb 9 (11 days: 1-15); B3 paid
    expect(custom.body).toMatchObject({ buckets: ['current', '1-15', '16-30', '31-60', '>60'], totals: { current: '0.00', '1-15': '500.00', '16-30': '0.00', '31-60': '0.00', '>60': '0.00' }, controlAccountBalance: '500.00' });
    const csv = await t.http.get(url('aging?asOf=2026-01-31&format=csv')).set(users.owner.auth).expect(200);
    expect(csv.headers['content-type']).toContain('text/csv');
    expect(csv.text.split('\r\n')[0]).toBe('party_type,party_id,party_name,current,1-30,31-60,61-90,>90,total');
    expect(csv.text).toContain(',Total,8600.00,0.00,0.00,0.00,0.00,8600.00');

    // ---- events and audit, written in the business transactions
    const { rows: events } = await t.db.admin.query(`SELECT payload->>'type' AS type, count(*)::int AS n FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event' GROUP BY 1 ORDER BY 1`, [orgId]);
    expect(Object.fromEntries(events.map((e) => [e.type, e.n]))).toEqual({ 'bill.approved': 4, 'bill.paid': 3, 'bill.submitted': 3, 'expense_claim.submitted': 1, 'journal_entry.posted': 9 }); // the ledger's own event per posting
    // every payload (and every declared example) validates against its declared schema
    const ajv = new Ajv2020({ strict: false, validateFormats: false });
    const { rows: payloads } = await t.db.admin.query(`SELECT payload FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event'`, [orgId]);
    for (const type of PAYABLES_EVENT_TYPES) {
      const validate = ajv.compile(type.payloadSchema);
      expect([type.type, validate(type.example)]).toEqual([type.type, true]);
      for (const p of payloads.filter((x) => x.payload.type === type.type)) expect([type.type, validate(p.payload.payload), validate.errors]).toEqual([type.type, true, null]);
    }
    const { rows: audit } = await t.db.admin.query(`SELECT action, count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'payables.%' GROUP BY 1 ORDER BY 1`, [orgId]);
    expect(Object.fromEntries(audit.map((a) => [a.action, a.n]))).toMatchObject({ 'payables.bill_approved': 2, 'payables.bill_submitted': 3, 'payables.payment_created': 4, 'payables.expense_claim_approved': 1 });

    // ---- the semantic view (today is after every due date: only B2 is open)
    const open = await t.db.as({ sub: users.viewer.id, role: 'authenticated', org_id: orgId }, 'authenticated', 'SELECT party_name, total::text, open_amount::text, open_base_amount::text, bucket FROM semantic.v_ap_open');
    expect(open).toEqual([{ party_name: 'Acme Supplies', total: '500.0000', open_amount: '500.0000', open_base_amount: '500.0000', bucket: expect.any(String) }]);
    // an analyst's database login mapped to the organization reads the same row; a member of another organization none
    const login = `omnizen_t_ap_analyst_${randomBytes(4).toString('hex')}`;
    await t.db.admin.query(`CREATE ROLE ${login} LOGIN PASSWORD 'analyst-test' IN ROLE omnizen_analyst`);
    try {
      await t.db.admin.query(`INSERT INTO core.analyst_logins (login, org_id) VALUES ($1, $2)`, [login, orgId]);
      const dbUrl = new URL(t.db.url);
      dbUrl.username = login;
      dbUrl.password = 'analyst-test';
      const analyst = new pg.Client({ connectionString: dbUrl.toString() });
      await analyst.connect();
      try {
        const { rows } = await analyst.query('SELECT party_name, open_amount::text, days_past_due > 0 AS overdue FROM semantic.v_ap_open');
        expect(rows).toEqual([{ party_name: 'Acme Supplies', open_amount: '500.0000', overdue: true }]);
      } finally {
        await analyst.end();
      }
    } finally {
      await t.db.admin.query(`DELETE FROM core.analyst_logins WHERE login = $1`, [login]);
      await t.db.admin.query(`DROP ROLE ${login}`);
    }
    const stranger = await registerUser(t, 'stranger');
    expect(await t.db.as({ sub: stranger.id, role: 'authenticated', org_id: orgId }, 'authenticated', 'SELECT * FROM semantic.v_ap_open')).toEqual([]);
  });
});
