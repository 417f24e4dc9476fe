import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Decimal } from 'decimal.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { ledgerUrl } from '../ledger/ledger-support.js';
import { setupReceivables } from '../receivables/receivables-support.js';
import { createVendor, payablesUrl } from './payables-support.js';

/**
 * The stored open amounts of payables (finance.payable_open_amounts, 20270209080100), as receivables' are tested
 * (test/receivables/rules.test.ts): after every kind of write (a bill and a claim posted, payments, allocations, their
 * reversal, a refund, a void, FX revaluation rows) the rows the triggers keep are exactly what the documents say now
 * (finance.payable_open_amounts_source), and finance.ap_aging read from them answers at every date around the documents'
 * dates what the former pass over every settlement answered (written out here as the reference); concurrent allocations
 * of one bill lose none of one another's amounts; no API role writes the table. Books in USD, EUR documents.
 */
describe('payables: stored open amounts', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
  });
  afterAll(() => t.close());

  async function books(name: string, rates: { date: string; rate: string }[]) {
    const orgId = await createOrg(t, owner, name);
    await onPlan(t, orgId, 'professional');
    const { acc } = await setupReceivables(t, orgId, owner, 'USD');
    await t.http.put(payablesUrl(orgId, 'settings')).set(owner.auth).send({ apAccountId: acc['2100'], approvalRules: [{ above: '0', approvals: 0, roles: ['owner'] }] }).expect(200);
    await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(owner.auth).send({ rates: rates.map((r) => ({ currency: 'EUR', ...r })) }).expect(201);
    const vendor = await createVendor(t, orgId, owner, { name: 'Euro Supplies', defaultCurrency: 'EUR' });
    const url = (p: string) => payablesUrl(orgId, p);
    const bill = async (billDate: string, amount: string, currency = 'EUR') => {
      const draft = (await t.http.post(url('bills')).set(owner.auth).send({ vendorId: vendor, billDate, currency, lines: [{ accountId: acc['5200'], unitPrice: amount }] }).expect(201)).body;
      const posted = (await t.http.post(url(`bills/${draft.id}/submit`)).set(owner.auth).send({}).expect(200)).body;
      expect(posted.status).toBe('posted');
      return posted;
    };
    return { orgId, acc, vendor, url, bill };
  }

  /** The aging total equals the AP control account's balance (credit positive in the aging). */
  async function expectAgingIsAp(orgId: string, ap: string, asOf: string) {
    const aging = (await t.http.get(payablesUrl(orgId, `aging?asOf=${asOf}`)).set(owner.auth).expect(200)).body;
    const balance = (await t.http.get(ledgerUrl(orgId, `accounts/${ap}/balance?asOf=${asOf}`)).set(owner.auth).expect(200)).body;
    expect({ asOf, offBalance: new Decimal(aging.total).plus(balance.baseBalance).toFixed(2) }).toEqual({ asOf, offBalance: '0.00' });
  }

  /** Stored rows = the source view; finance.ap_aging = the former pass over every settlement, at every date around the documents'. */
  async function expectPayableOpenAmountsKept(orgId: string) {
    const cols = `document_id, document_kind, vendor_id, document_date::text, aged_from::text, base_amount::numeric(20, 4)::text AS base_amount,
      open_base::numeric(20, 4)::text AS open_base, settled_through::text, voided_on::text`;
    const stored = (await t.db.admin.query(`SELECT ${cols} FROM finance.payable_open_amounts WHERE org_id = $1 ORDER BY document_id`, [orgId])).rows;
    const source = (await t.db.admin.query(`SELECT ${cols} FROM finance.payable_open_amounts_source WHERE org_id = $1 ORDER BY document_id`, [orgId])).rows;
    expect(stored.length).toBeGreaterThan(0);
    expect(stored).toEqual(source);
    const { rows: dates } = await t.db.admin.query<{ d: string }>(`
      SELECT DISTINCT (x.d + k)::text AS d FROM (
        SELECT bill_date AS d FROM finance.bills WHERE org_id = $1 UNION SELECT due_date FROM finance.bills WHERE org_id = $1
        UNION SELECT voided_on FROM finance.bills WHERE org_id = $1 AND voided_on IS NOT NULL
        UNION SELECT payment_date FROM finance.bill_payments WHERE org_id = $1
        UNION SELECT allocation_date FROM finance.bill_allocations WHERE org_id = $1
        UNION SELECT refund_date FROM finance.bill_payment_refunds WHERE org_id = $1
        UNION SELECT revaluation_date FROM finance.fx_revaluation_items WHERE org_id = $1 AND subledger = 'payables') x, generate_series(-1, 1) k ORDER BY 1`, [orgId]);
    // finance.ap_aging as 20270208010100 wrote it (every settlement summed per document)
    const reference = `
      WITH settled AS (
        SELECT a.bill_id, sum(a.bill_base_amount) AS base FROM finance.bill_allocations a
        WHERE a.org_id = $1 AND a.allocation_date <= $2::date GROUP BY a.bill_id),
      used AS (
        SELECT u.payment_id, sum(u.base) AS base FROM (
          SELECT a.payment_id, a.payment_base_amount AS base FROM finance.bill_allocations a WHERE a.org_id = $1 AND a.allocation_date <= $2::date
          UNION ALL
          SELECT r.payment_id, r.payment_base_amount FROM finance.bill_payment_refunds r WHERE r.org_id = $1 AND r.refund_date <= $2::date) u
        GROUP BY u.payment_id),
      revalued AS (
        SELECT x.document_id, sum(x.base_delta) AS base FROM finance.fx_revaluation_items x
        WHERE x.org_id = $1 AND x.subledger = 'payables' AND x.revaluation_date <= $2::date GROUP BY x.document_id),
      items AS (
        SELECT CASE WHEN b.kind = 'bill' THEN 'vendor' ELSE 'employee' END AS party_type, coalesce(b.vendor_id::text, b.claimant_id) AS party_id,
          finance.aging_bucket($2::date - b.due_date, $3::int[]) AS bucket, b.base_total - coalesce(s.base, 0) + coalesce(v.base, 0) AS base
        FROM finance.bills b LEFT JOIN settled s ON s.bill_id = b.id LEFT JOIN revalued v ON v.document_id = b.id
        WHERE b.org_id = $1 AND b.journal_entry_id IS NOT NULL AND b.bill_date <= $2::date AND (b.voided_on IS NULL OR b.voided_on > $2::date)
        UNION ALL
        SELECT CASE WHEN p.vendor_id IS NOT NULL THEN 'vendor' ELSE 'employee' END, coalesce(p.vendor_id::text, p.claimant_id), 'current',
          -(p.base_amount - coalesce(u.base, 0)) + coalesce(v.base, 0)
        FROM finance.bill_payments p LEFT JOIN used u ON u.payment_id = p.id LEFT JOIN revalued v ON v.document_id = p.id
        WHERE p.org_id = $1 AND p.payment_date <= $2::date)
      SELECT it.party_type, it.party_id, it.bucket, sum(it.base)::numeric(20, 4)::text AS amount FROM items it WHERE it.base <> 0 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`;
    const client = await t.db.admin.connect();
    try {
      await client.query(`SELECT set_config('request.jwt.claims', $1, false)`, [JSON.stringify({ org_id: orgId, role: 'service_role' })]);
      for (const { d } of dates) {
        for (const edges of ['{30,60,90}', '{15}']) {
          const got = (await client.query(`SELECT party_type, party_id, bucket, amount::numeric(20, 4)::text AS amount FROM finance.ap_aging($1::date, $2::int[]) ORDER BY 1, 2, 3`, [d, edges])).rows;
          const want = (await client.query(reference, [orgId, d, edges])).rows;
          expect({ asOf: d, edges, rows: got }).toEqual({ asOf: d, edges, rows: want });
        }
      }
    } finally {
      await client.query(`SELECT set_config('request.jwt.claims', '', false)`);
      client.release();
    }
  }

  const openRow = async (orgId: string, id: string) => (await t.db.admin.query(
    `SELECT open_base::numeric(20, 2)::text AS open_base, settled_through::text FROM finance.payable_open_amounts WHERE org_id = $1 AND document_id = $2`, [orgId, id])).rows[0];

  it('kept through posting, payments, allocations, a reversal, a refund, voids and FX revaluations; the aging from them is the former aging and the AP balance', async () => {
    const { orgId, acc, vendor, url, bill } = await books('AP open amounts', [
      { date: '2026-01-10', rate: '1.10' }, { date: '2026-01-31', rate: '1.15' }, { date: '2026-02-10', rate: '1.20' }, { date: '2026-02-28', rate: '1.25' }]);
    const b1 = await bill('2026-01-15', '1000.00');
    const b2 = await bill('2026-01-16', '300.00');
    const usd = await bill('2026-01-17', '80.00', 'USD');
    const member = await registerUser(t, 'member');
    await addMember(t, orgId, member, 'member');
    const claimDraft = (await t.http.post(url('expense-claims')).set(member.auth)
      .send({ claimDate: '2026-01-18', currency: 'EUR', lines: [{ accountId: acc['5200'], amount: '45.50', currency: 'EUR', date: '2026-01-18' }] }).expect(201)).body;
    await t.http.post(url(`expense-claims/${claimDraft.id}/submit`)).set(member.auth).expect(200);
    const claim = (await t.http.post(url(`expense-claims/${claimDraft.id}/approve`)).set(owner.auth).send({}).expect(200)).body;
    expect(claim.status).toBe('posted');
    const claim2Draft = (await t.http.post(url('expense-claims')).set(member.auth)
      .send({ claimDate: '2026-01-19', currency: 'EUR', lines: [{ accountId: acc['5200'], amount: '20.00', currency: 'EUR', date: '2026-01-19' }] }).expect(201)).body;
    await t.http.post(url(`expense-claims/${claim2Draft.id}/submit`)).set(member.auth).expect(200);
    const claim2 = (await t.http.post(url(`expense-claims/${claim2Draft.id}/approve`)).set(owner.auth).send({}).expect(200)).body;
    expect(claim2.status).toBe('posted');
    expect(await openRow(orgId, b1.id)).toEqual({ open_base: '1100.00', settled_through: null });
    expect(await openRow(orgId, claim.id)).toEqual({ open_base: '50.05', settled_through: null });

    // a payment allocated in part, a payment left as credit, a reimbursement of the claim in full
    const p1 = (await t.http.post(url('payments')).set(owner.auth).send({ vendorId: vendor, paymentDate: '2026-01-20', amount: '400.00', currency: 'EUR',
      bankAccountId: acc['1100'], allocations: [{ billId: b1.id, amount: '400.00' }] }).expect(201)).body;
    const credit = (await t.http.post(url('payments')).set(owner.auth).send({ vendorId: vendor, paymentDate: '2026-01-21', amount: '500.00', currency: 'EUR',
      bankAccountId: acc['1100'], allocations: [] }).expect(201)).body;
    await t.http.post(url('payments')).set(owner.auth).send({ claimantId: member.id, paymentDate: '2026-01-22', amount: '45.50', currency: 'EUR',
      bankAccountId: acc['1100'], allocations: [{ billId: claim.id, amount: '45.50' }] }).expect(201);
    await t.http.post(url('payments')).set(owner.auth).send({ vendorId: vendor, paymentDate: '2026-01-23', amount: '80.00', currency: 'USD',
      bankAccountId: acc['1100'], allocations: [{ billId: usd.id, amount: '30.00' }] }).expect(201);
    expect(await openRow(orgId, b1.id)).toEqual({ open_base: '660.00', settled_through: '2026-01-20' });
    expect(await openRow(orgId, credit.id)).toEqual({ open_base: '-550.00', settled_through: null });
    expect(await openRow(orgId, claim.id)).toEqual({ open_base: '0.00', settled_through: '2026-01-22' });
    await expectPayableOpenAmountsKept(orgId);

    // revalued at 1.15: every open EUR item moves (the bills up, the credit's debit up), the claim paid in full not
    await t.http.post(ledgerUrl(orgId, 'fx-revaluations')).set(owner.auth).send({ date: '2026-01-31', autoReverse: false }).expect(201);
    expect(await openRow(orgId, b1.id)).toEqual({ open_base: '690.00', settled_through: '2026-01-31' });
    expect(await openRow(orgId, credit.id)).toEqual({ open_base: '-575.00', settled_through: '2026-01-31' });
    expect(await openRow(orgId, claim.id)).toEqual({ open_base: '0.00', settled_through: '2026-01-22' });
    await expectPayableOpenAmountsKept(orgId);

    // the credit allocated to B2, B1's allocation reversed, part of the credit refunded, the second claim and B2 voided
    const allocated = (await t.http.post(url(`payments/${credit.id}/allocations`)).set(owner.auth).send({ billId: b2.id, amount: '100.00', date: '2026-02-10' }).expect(201)).body;
    expect(allocated.unallocated).toBe('400.00');
    await t.http.post(url(`allocations/${p1.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-02-11' }).expect(201);
    await t.http.post(url(`payments/${credit.id}/refunds`)).set(owner.auth).send({ amount: '150.00', date: '2026-02-12' }).expect(201);
    await t.http.post(url(`expense-claims/${claim2.id}/void`)).set(owner.auth).send({ date: '2026-02-13' }).expect(200);
    const b3 = await bill('2026-02-14', '70.00');
    await t.http.post(url(`bills/${b3.id}/void`)).set(owner.auth).send({ date: '2026-02-15' }).expect(200);
    expect(await openRow(orgId, claim2.id)).toEqual({ open_base: '0.00', settled_through: '2026-02-13' });
    expect(await openRow(orgId, b3.id)).toEqual({ open_base: '0.00', settled_through: '2026-02-15' });
    await expectPayableOpenAmountsKept(orgId);

    // revalued again at 1.25 with autoReverse (its reversal rows dated Mar 1): the open-items read finds the open ones (P1 has its
    // credit back from the reversal; the claims, B3 and the USD documents are not revalued)
    const reval = (await t.http.post(ledgerUrl(orgId, 'fx-revaluations')).set(owner.auth).send({ date: '2026-02-28', autoReverse: true }).expect(201)).body;
    const revalued = (await t.db.admin.query(`SELECT DISTINCT document_id::text AS id FROM finance.fx_revaluation_items WHERE org_id = $1 AND entry_id = $2 ORDER BY 1`,
      [orgId, reval.entry.id])).rows.map((r) => r.id);
    expect(revalued).toEqual([b1.id, b2.id, credit.id, p1.id].sort());
    await expectPayableOpenAmountsKept(orgId);
    for (const asOf of ['2026-01-20', '2026-01-31', '2026-02-11', '2026-02-15', '2026-02-28', '2026-03-01']) await expectAgingIsAp(orgId, acc['2100'], asOf);

    // read as the documents are: a member sees the vendors' rows and their own claims and reimbursement, another member
    // the vendors' only; a bookkeeper every row
    const other = await registerUser(t, 'member');
    await addMember(t, orgId, other, 'member');
    const { rows: all } = await t.db.admin.query(`SELECT document_id::text AS id, vendor_id IS NOT NULL AS vendors FROM finance.payable_open_amounts WHERE org_id = $1`, [orgId]);
    const readAs = async (user: TestUser) => {
      const client = await t.db.admin.connect();
      try {
        await client.query('BEGIN');
        await client.query(`SELECT set_config('request.jwt.claims', $1, true)`, [JSON.stringify({ sub: user.id, org_id: orgId, role: 'authenticated' })]);
        await client.query('SET LOCAL ROLE authenticated');
        return (await client.query(`SELECT document_id::text AS id FROM finance.payable_open_amounts ORDER BY 1`)).rows.map((r) => r.id);
      } finally {
        await client.query('ROLLBACK');
        client.release();
      }
    };
    const vendorsRows = all.filter((r) => r.vendors).map((r) => r.id).sort();
    expect(all.length).toBe(vendorsRows.length + 3);
    expect(await readAs(owner)).toEqual(all.map((r) => r.id).sort());
    expect(await readAs(member)).toEqual(all.map((r) => r.id).sort());
    expect(await readAs(other)).toEqual(vendorsRows);
  });

  it('keeps the open amount of one bill through concurrent allocations; no API role writes it', async () => {
    const { orgId, acc, vendor, url, bill } = await books('AP open amounts concurrent', [{ date: '2026-01-10', rate: '1.1234' }]);
    const b = await bill('2026-01-15', '1000.00');
    const payments = [];
    for (let i = 0; i < 8; i++) {
      payments.push((await t.http.post(url('payments')).set(owner.auth).send({ vendorId: vendor, paymentDate: '2026-01-20', amount: '100.00', currency: 'EUR',
        bankAccountId: acc['1100'], allocations: [] }).expect(201)).body);
    }
    const results = await Promise.all(payments.map((p) => t.http.post(url(`payments/${p.id}/allocations`)).set(owner.auth).send({ billId: b.id, amount: '100.00', date: '2026-01-25' })));
    expect(results.map((r) => r.status)).toEqual(payments.map(() => 201));
    expect(await openRow(orgId, b.id)).toEqual({ open_base: '224.68', settled_through: '2026-01-25' });
    await expectPayableOpenAmountsKept(orgId);
    await expectAgingIsAp(orgId, acc['2100'], '2026-01-25');

    for (const role of ['authenticated', 'service_role']) {
      const claims = JSON.stringify({ sub: owner.id, org_id: orgId, role });
      for (const stmt of [
        `UPDATE finance.payable_open_amounts SET open_base = 0 WHERE document_id = '${b.id}'`,
        `DELETE FROM finance.payable_open_amounts WHERE document_id = '${b.id}'`,
        `INSERT INTO finance.payable_open_amounts (org_id, document_id, document_kind, vendor_id, document_date, aged_from, base_amount, open_base)
         VALUES ('${orgId}', gen_random_uuid(), 'bill', '${vendor}', '2026-01-01', '2026-01-01', 1, 1)`,
        `SELECT finance.payable_open_amounts_refresh('${orgId}')`,
      ]) {
        const client = await t.db.admin.connect();
        try {
          await client.query('BEGIN');
          await client.query(`SELECT set_config('request.jwt.claims', $1, true)`, [claims]);
          await client.query(`SET LOCAL ROLE ${role}`);
          await expect(client.query(stmt)).rejects.toThrow(/permission denied/);
        } finally {
          await client.query('ROLLBACK');
          client.release();
        }
      }
    }
    expect(await openRow(orgId, b.id)).toEqual({ open_base: '224.68', settled_through: '2026-01-25' });
    // the migration's backfill (the owner's refresh of every organization) writes the same rows from the documents
    await t.db.admin.query(`DELETE FROM finance.payable_open_amounts WHERE org_id = $1`, [orgId]);
    await t.db.admin.query(`SELECT finance.payable_open_amounts_refresh(NULL)`);
    expect(await openRow(orgId, b.id)).toEqual({ open_base: '224.68', settled_through: '2026-01-25' });
    await expectPayableOpenAmountsKept(orgId);
  });

  it('a non-revalued allocation reversal reopens by the rounded difference of what is open, as on AR (not the original bases negated)', async () => {
    // EUR 100.00 at 1.123457 = USD 112.35; 33.33 settled Jan 20 (112.35 - 74.90 = 37.45), 33.33 Jan 21 (74.90 - 37.46 = 37.44):
    // reversing the first reopens 33.34 -> 66.67, 74.90 - 37.46 = 37.44 (negated original: 37.45, leaving 74.91 carried for 66.67)
    const { orgId, acc, vendor, url, bill } = await books('AP reversal rounding', [{ date: '2026-01-10', rate: '1.123457' }]);
    const b = await bill('2026-01-15', '100.00');
    const pay = (await t.http.post(url('payments')).set(owner.auth).send({ vendorId: vendor, paymentDate: '2026-01-20', amount: '100.00', currency: 'EUR',
      bankAccountId: acc['1100'], allocations: [{ billId: b.id, amount: '33.33' }] }).expect(201)).body;
    expect(pay.allocations[0]).toMatchObject({ billBaseAmount: '37.45', paymentBaseAmount: '37.45' });
    const second = (await t.http.post(url(`payments/${pay.id}/allocations`)).set(owner.auth).send({ billId: b.id, amount: '33.33', date: '2026-01-21' }).expect(201)).body;
    expect(second.allocations[1]).toMatchObject({ billBaseAmount: '37.44', paymentBaseAmount: '37.44' });
    const reversed = (await t.http.post(url(`allocations/${pay.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-01-22' }).expect(201)).body;
    const reversal = reversed.allocations.find((a: any) => a.reversesAllocationId === pay.allocations[0].id);
    expect(reversal).toMatchObject({ amount: '-33.33', billBaseAmount: '-37.44', paymentBaseAmount: '-37.44', fxDifference: '0.00' });
    // the bill carries its open 66.67 at its rate, the credit its unallocated 66.67 likewise
    expect(await openRow(orgId, b.id)).toEqual({ open_base: '74.90', settled_through: '2026-01-22' });
    expect(await openRow(orgId, pay.id)).toEqual({ open_base: '-74.90', settled_through: '2026-01-22' });
    const { rows: [{ n }] } = await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1 AND memo LIKE 'Reversal of allocation%'`, [orgId]);
    expect(n).toBe(0);
    // paid in full afterwards: the bill and the credit reach exactly 0 base
    await t.http.post(url(`payments/${pay.id}/allocations`)).set(owner.auth).send({ billId: b.id, amount: '66.67', date: '2026-01-23' }).expect(201);
    expect(await openRow(orgId, b.id)).toEqual({ open_base: '0.00', settled_through: '2026-01-23' });
    expect(await openRow(orgId, pay.id)).toEqual({ open_base: '0.00', settled_through: '2026-01-23' });
    await expectPayableOpenAmountsKept(orgId);
    for (const asOf of ['2026-01-20', '2026-01-21', '2026-01-22', '2026-01-23']) await expectAgingIsAp(orgId, acc['2100'], asOf);
  });
});
