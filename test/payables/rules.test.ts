import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, orgWithRoles, registerUser, type RoleUsers, type TestUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { openTenantTransaction } from '../support/database.js';
import { createVendor, payablesUrl } from './payables-support.js';

describe('payables: concurrency, immutability, bad input, roles and plans', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let vendor: string;
  let otherVendor: string;
  let other: TestUser;
  let otherOrg: string;
  let otherTax: string;
  const url = (p: string) => payablesUrl(orgId, p);

  /** A bill of `amount` (rent, no tax) posted at submission (at or under the no-approval threshold). */
  async function postedBill(amount: string, vendorId = vendor, billDate = '2026-02-02'): Promise<string> {
    const b = await t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId, billDate, lines: [{ accountId: acc['5200'], unitPrice: amount }] }).expect(201);
    await t.http.post(url(`bills/${b.body.id}/submit`)).set(users.accountant.auth).expect(200);
    return b.body.id;
  }
  async function counts() {
    const { rows } = await t.db.admin.query(`SELECT
      (SELECT count(*) FROM finance.bills WHERE org_id = $1) || '/' || (SELECT count(*) FROM finance.bill_lines WHERE org_id = $1) || '/' ||
      (SELECT count(*) FROM finance.bill_payments WHERE org_id = $1) || '/' || (SELECT count(*) FROM finance.bill_allocations WHERE org_id = $1) || '/' ||
      (SELECT count(*) FROM finance.journal_entries WHERE org_id = $1) || '/' || (SELECT count(*) FROM finance.bill_decisions WHERE org_id = $1) AS v`, [orgId]);
    return rows[0].v as string;
  }

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Rules Ltd'));
    await onPlan(t, orgId, 'professional');
    acc = await startBooks(t, orgId, users.owner);
    vendor = await createVendor(t, orgId, users.accountant, { name: 'Main Vendor' });
    otherVendor = await createVendor(t, orgId, users.accountant, { name: 'Other Vendor', email: 'x@other.example' });
    other = await registerUser(t, 'other-owner');
    otherOrg = await createOrg(t, other, 'Other Org');
    await onPlan(t, otherOrg, 'professional');
    const otherAcc = await startBooks(t, otherOrg, other);
    otherTax = (await t.http.post(ledgerUrl(otherOrg, 'tax-codes')).set(other.auth)
      .send({ code: 'VAT7', name: 'VAT 7 %', rate: '7', salesAccountId: otherAcc['2200'], purchaseAccountId: otherAcc['1300'] }).expect(201)).body.id;
  });
  afterAll(() => t.close());

  it('20 parallel payments each allocating the whole open amount of one bill: exactly one succeeds, the rest are 409', async () => {
    const bill = await postedBill('900.00');
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => t.http.post(url('payments')).set(users.accountant.auth).send({
      vendorId: vendor, paymentDate: '2026-02-05', amount: '900.00', bankAccountId: acc['1100'], reference: `P-${i}`, allocations: [{ billId: bill, amount: '900.00' }],
    })));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([201, ...Array(19).fill(409)]);
    expect(results.filter((r) => r.status === 409).every((r) => r.body.error.code === 'payables.over_allocation' && /open amount 0\.00/.test(r.body.error.message))).toBe(true);
    const { rows } = await t.db.admin.query(`SELECT (SELECT count(*)::int FROM finance.bill_allocations WHERE org_id = $1 AND bill_id = $2) AS allocations,
      (SELECT count(*)::int FROM finance.bill_payments p WHERE p.org_id = $1 AND p.reference LIKE 'P-%') AS payments`, [orgId, bill]);
    expect(rows[0]).toEqual({ allocations: 1, payments: 1 });
    expect((await t.http.get(url(`bills/${bill}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ status: 'paid', openAmount: '0.00' });
  });

  it('20 parallel allocations of one payment\'s credit to one bill: one succeeds; an un-allocation is a new reversing allocation', async () => {
    const bill = await postedBill('300.00');
    const pay = await t.http.post(url('payments')).set(users.accountant.auth).send({ vendorId: vendor, paymentDate: '2026-02-06', amount: '6000.00', bankAccountId: acc['1100'] }).expect(201);
    expect(pay.body.unallocated).toBe('6000.00');
    const results = await Promise.all(Array.from({ length: 20 }, () => t.http.post(url(`payments/${pay.body.id}/allocations`)).set(users.accountant.auth).send({ billId: bill, amount: '300.00' })));
    expect(results.map((r) => r.status).sort()).toEqual([201, ...Array(19).fill(409)]);
    const done = results.find((r) => r.status === 201)!.body;
    expect(done.unallocated).toBe('5700.00');
    const reversed = await t.http.post(url(`allocations/${done.allocations[0].id}/reverse`)).set(users.accountant.auth).send({}).expect(201);
    expect(reversed.body.unallocated).toBe('6000.00');
    expect(reversed.body.allocations.map((a: any) => a.amount)).toEqual(['300.00', '-300.00']);
    expect(reversed.body.allocations[0].reversedByAllocationId).toBe(reversed.body.allocations[1].id);
    expect((await t.http.get(url(`bills/${bill}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ status: 'posted', openAmount: '300.00' });
    const again = await t.http.post(url(`allocations/${done.allocations[0].id}/reverse`)).set(users.accountant.auth).send({}).expect(409);
    expect(again.body.error.code).toBe('payables.allocation_reversed');
  });

  it('ids in upper case are the same vendor and bill: a bill named twice in two spellings is a 400 payables.bill_repeated; the upper-case vendorId pays', async () => {
    const bill = await postedBill('100.00');
    const before = await counts();
    const twice = await t.http.post(url('payments')).set(users.accountant.auth).send({ vendorId: vendor, paymentDate: '2026-02-07', amount: '200.00', bankAccountId: acc['1100'],
      allocations: [{ billId: bill, amount: '100.00' }, { billId: bill.toUpperCase(), amount: '100.00' }] }).expect(400);
    expect(twice.body.error).toMatchObject({ code: 'payables.bill_repeated', message: expect.stringMatching(/a bill appears twice/) });
    expect(await counts()).toBe(before);
    expect((await t.http.get(url(`bills/${bill}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ status: 'posted', openAmount: '100.00' });
    const paid = await t.http.post(url('payments')).set(users.accountant.auth).send({ vendorId: vendor.toUpperCase(), paymentDate: '2026-02-07', amount: '100.00', bankAccountId: acc['1100'].toUpperCase(),
      allocations: [{ billId: bill.toUpperCase(), amount: '100.00' }] }).expect(201);
    expect(paid.body).toMatchObject({ vendorId: vendor, bankAccountId: acc['1100'], unallocated: '0.00', allocations: [expect.objectContaining({ billId: bill, amount: '100.00' })] });
    expect((await t.http.get(url(`bills/${bill.toUpperCase()}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ id: bill, status: 'paid', openAmount: '0.00' });
    // the database's own check answers the code of the routes (not a generic 422 invalid), whoever writes the row
    const { c } = await openTenantTransaction(t.db.apiUrl, { sub: users.accountant.id, org_id: orgId }, []);
    try {
      await expect(c.query(`INSERT INTO finance.bill_allocations (org_id, payment_id, bill_id, allocation_date, amount, bill_base_amount, payment_base_amount, created_by)
        VALUES ($1, $2, $3, '2026-02-07', 1, 1, 1, 'test')`, [orgId, paid.body.id, bill])).rejects.toMatchObject({ code: '23514', hint: 'payables.over_allocation' });
    } finally {
      await c.query('ROLLBACK');
      await c.end();
    }
  });

  it('a foreign credit allocated later posts its realized FX result; reversing the allocation reverses it; aging = AP throughout', async () => {
    await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(users.owner.auth)
      .send({ rates: [{ currency: 'USD', date: '2026-02-01', rate: '0.90' }, { currency: 'USD', date: '2026-02-15', rate: '0.95' }] }).expect(201);
    const b = await t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId: otherVendor, billDate: '2026-02-01', currency: 'USD', lines: [{ accountId: acc['5200'], unitPrice: '100.00' }] }).expect(201);
    await t.http.post(url(`bills/${b.body.id}/submit`)).set(users.accountant.auth).expect(200);
    const credit = await t.http.post(url('payments')).set(users.accountant.auth)
      .send({ vendorId: otherVendor, paymentDate: '2026-02-15', amount: '150.00', currency: 'USD', bankAccountId: acc['1100'] }).expect(201);
    expect(credit.body).toMatchObject({ baseAmount: '142.50', unallocated: '150.00' });
    const checkAging = async () => {
      const r = (await t.http.get(url('aging?asOf=2026-02-28')).set(users.viewer.auth).expect(200)).body;
      expect(r.total).toBe(r.controlAccountBalance);
      return r.rows.find((x: any) => x.partyId === otherVendor).total;
    };
    expect(await checkAging()).toBe('-52.50'); // bill 90.00 open, credit 142.50 unapplied (other bills of this vendor are settled or none)
    const alloc = await t.http.post(url(`payments/${credit.body.id}/allocations`)).set(users.accountant.auth).send({ billId: b.body.id, amount: '100.00', date: '2026-02-20' }).expect(201);
    const a = alloc.body.allocations[0];
    expect(a).toMatchObject({ billBaseAmount: '90.00', paymentBaseAmount: '95.00', fxDifference: '5.00', date: '2026-02-20' });
    const e = (await t.http.get(ledgerUrl(orgId, `journal-entries/${a.journalEntryId}`)).set(users.owner.auth).expect(200)).body;
    expect(e.lines.map((l: any) => [l.accountCode, l.currency, l.debit, l.credit, l.baseDebit, l.baseCredit])).toEqual([
      ['5500', 'EUR', '5.00', '0.00', '5.00', '0.00'], ['2100', 'USD', '0.00', '0.00', '0.00', '5.00']]);
    expect(await checkAging()).toBe('-47.50'); // the credit's 50 USD at 0.95
    const rev = await t.http.post(url(`allocations/${a.id}/reverse`)).set(users.accountant.auth).send({ date: '2026-02-21' }).expect(201);
    const r = rev.body.allocations[1];
    const re = (await t.http.get(ledgerUrl(orgId, `journal-entries/${r.journalEntryId}`)).set(users.owner.auth).expect(200)).body;
    expect(re.lines.map((l: any) => [l.accountCode, l.debit, l.credit, l.baseDebit, l.baseCredit])).toEqual([['2100', '0.00', '0.00', '5.00', '0.00'], ['5500', '0.00', '5.00', '0.00', '5.00']]);
    expect(await checkAging()).toBe('-52.50');
  });

  it('two approvers approving at once post the bill exactly once', async () => {
    const b = await t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId: vendor, billDate: '2026-02-03', lines: [{ accountId: acc['5200'], unitPrice: '2500.00' }] }).expect(201);
    await t.http.post(url(`bills/${b.body.id}/submit`)).set(users.accountant.auth).expect(200);
    const [x, y] = await Promise.all([users.owner, users.admin].map((u) => t.http.post(url(`bills/${b.body.id}/approve`)).set(u.auth).send({})));
    expect([x.status, y.status].sort()).toEqual([200, 409]);
    expect([x, y].find((r) => r.status === 409)!.body.error.code).toBe('payables.not_submitted');
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1 AND source_ref = $2`, [orgId, `bill:${b.body.id}`]);
    expect(rows[0].n).toBe(1);
  });

  it('a rejected bill goes back with its reason, is edited and submitted again; every decision is listed', async () => {
    const b = await t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId: vendor, billDate: '2026-02-03', lines: [{ accountId: acc['5200'], unitPrice: '1500.00' }] }).expect(201);
    await t.http.post(url(`bills/${b.body.id}/submit`)).set(users.accountant.auth).expect(200);
    await t.http.post(url(`bills/${b.body.id}/comments`)).set(users.member.auth).send({ comment: 'is this ours?' }).expect(200);
    const rejected = await t.http.post(url(`bills/${b.body.id}/reject`)).set(users.admin.auth).send({ reason: 'wrong amount' }).expect(200);
    expect(rejected.body).toMatchObject({ status: 'rejected', rejectionReason: 'wrong amount' });
    // no step skipped: a rejected bill cannot be approved
    await t.http.post(url(`bills/${b.body.id}/approve`)).set(users.owner.auth).send({}).expect(409);
    await t.http.patch(url(`bills/${b.body.id}`)).set(users.accountant.auth).send({ billDate: '2026-02-03', lines: [{ accountId: acc['5200'], unitPrice: '1400.00' }] }).expect(200);
    await t.http.post(url(`bills/${b.body.id}/submit`)).set(users.accountant.auth).expect(200);
    const ok = await t.http.post(url(`bills/${b.body.id}/approve`)).set(users.owner.auth).send({}).expect(200);
    expect(ok.body).toMatchObject({ status: 'posted', total: '1400.00' });
    expect(ok.body.decisions.map((d: any) => [d.decision, d.submissionNo, d.comment])).toEqual([
      ['submit', 1, null], ['comment', 1, 'is this ours?'], ['reject', 1, 'wrong amount'], ['edit', 1, null], ['submit', 2, null], ['approve', 2, null]]);
  });

  it('four eyes: whoever last edited or submitted someone else\'s bill cannot approve it either; nothing is written by the refusal', async () => {
    const state = async (id: string) => (await t.db.admin.query(`SELECT b.status, b.journal_entry_id,
      (SELECT count(*)::int FROM finance.bill_decisions d WHERE d.org_id = b.org_id AND d.bill_id = b.id AND d.decision = 'approve') AS approvals
      FROM finance.bills b WHERE b.org_id = $1 AND b.id = $2`, [orgId, id])).rows[0];
    // the admin rewrites the accountant's draft; the accountant submits it without looking
    const edited = await t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId: vendor, billDate: '2026-02-03', lines: [{ accountId: acc['5200'], unitPrice: '1500.00' }] }).expect(201);
    await t.http.patch(url(`bills/${edited.body.id}`)).set(users.admin.auth).send({ billDate: '2026-02-03', lines: [{ accountId: acc['5200'], unitPrice: '1900.00' }] }).expect(200);
    await t.http.post(url(`bills/${edited.body.id}/submit`)).set(users.accountant.auth).expect(200);
    const byEditor = await t.http.post(url(`bills/${edited.body.id}/approve`)).set(users.admin.auth).send({}).expect(403);
    expect(byEditor.body.error).toMatchObject({ code: 'payables.own_bill', message: `you last edited bill ${edited.body.id}: another approver must approve it` });
    expect(await state(edited.body.id)).toEqual({ status: 'submitted', journal_entry_id: null, approvals: 0 });
    const ok = await t.http.post(url(`bills/${edited.body.id}/approve`)).set(users.owner.auth).send({}).expect(200);
    expect(ok.body).toMatchObject({ status: 'posted', total: '1900.00' });
    expect(ok.body.decisions.map((d: any) => [d.decision, d.actorId])).toEqual([['edit', users.admin.id], ['submit', users.accountant.id], ['approve', users.owner.id]]);

    // the admin submits the accountant's draft
    const submitted = await t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId: vendor, billDate: '2026-02-03', lines: [{ accountId: acc['5200'], unitPrice: '1600.00' }] }).expect(201);
    await t.http.post(url(`bills/${submitted.body.id}/submit`)).set(users.admin.auth).expect(200);
    const bySubmitter = await t.http.post(url(`bills/${submitted.body.id}/approve`)).set(users.admin.auth).send({}).expect(403);
    expect(bySubmitter.body.error).toMatchObject({ code: 'payables.own_bill', message: `you submitted bill ${submitted.body.id}: another approver must approve it` });
    expect(await state(submitted.body.id)).toEqual({ status: 'submitted', journal_entry_id: null, approvals: 0 });
    await t.http.post(url(`bills/${submitted.body.id}/approve`)).set(users.owner.auth).send({}).expect(200);
  });

  it('the journal entry of a bill or a vendor payment is not reversed alone: 422 naming the document, nothing written', async () => {
    const bill = await postedBill('80.00');
    const b = (await t.http.get(url(`bills/${bill}`)).set(users.viewer.auth).expect(200)).body;
    const pay = await t.http.post(url('payments')).set(users.accountant.auth)
      .send({ vendorId: vendor, paymentDate: '2026-02-07', amount: '80.00', bankAccountId: acc['1100'], reference: 'OUT-9', allocations: [{ billId: bill, amount: '80.00' }] }).expect(201);
    const before = await counts();
    for (const [entryId, owner] of [[b.journalEntryId, `bill ${bill}`], [pay.body.journalEntryId, 'vendor payment OUT-9']]) {
      const res = await t.http.post(ledgerUrl(orgId, `journal-entries/${entryId}/reverse`)).set(users.accountant.auth).send({}).expect(422);
      expect([res.body.error.code, res.body.error.message]).toEqual(['ledger.entry_of_document', expect.stringContaining(`journal entry ${entryId} belongs to ${owner}`)]);
    }
    expect(await counts()).toBe(before);
  });

  it('posted bills, payments and allocations cannot be updated or deleted by any API role (SQL level)', async () => {
    const bill = await postedBill('120.00');
    await t.http.post(url('payments')).set(users.accountant.auth).send({ vendorId: vendor, paymentDate: '2026-02-07', amount: '20.00', bankAccountId: acc['1100'], allocations: [{ billId: bill, amount: '20.00' }] }).expect(201);
    const before = await counts();
    const { rows: [snap] } = await t.db.admin.query(`SELECT b::text AS b FROM finance.bills b WHERE org_id = $1 AND id = $2`, [orgId, bill]);
    for (const role of ['owner', 'admin', 'accountant', 'member', 'viewer'] as const) {
      const claims = { sub: users[role].id, role: 'authenticated', org_id: orgId };
      const attempt = async (sql: string) => {
        try {
          return { rows: await t.db.asApi(claims, 'authenticated', sql, [bill]) };
        } catch (err) {
          return { error: (err as Error).message };
        }
      };
      for (const sql of [`UPDATE finance.bills SET total = 1, memo = 'x' WHERE id = $1 RETURNING id`, `UPDATE finance.bills SET status = 'draft' WHERE id = $1 RETURNING id`,
        `DELETE FROM finance.bill_lines WHERE bill_id = $1 RETURNING bill_id`, `UPDATE finance.bill_lines SET net = 0 WHERE bill_id = $1 RETURNING bill_id`]) {
        const r = await attempt(sql);
        // refused (the trigger or a missing privilege), or invisible to the role's policy: never changed
        expect(r.error ?? (r.rows!.length === 0 ? 'no rows' : 'CHANGED')).toMatch(/cannot be changed|cannot change|permission denied|no rows/);
      }
      for (const sql of [`DELETE FROM finance.bills WHERE id = $1`, `UPDATE finance.bill_allocations SET amount = 1 WHERE bill_id = $1`,
        `DELETE FROM finance.bill_allocations WHERE bill_id = $1`, `UPDATE finance.bill_payments SET amount = 1 WHERE id IS NOT NULL AND $1::uuid IS NOT NULL`,
        `DELETE FROM finance.bill_payments WHERE $1::uuid IS NOT NULL`, `DELETE FROM finance.bill_decisions WHERE bill_id = $1`]) {
        expect((await attempt(sql)).error).toMatch(/permission denied/);
      }
    }
    // not even the owner connection (the migration role) changes them: the triggers
    await expect(t.db.admin.query(`UPDATE finance.bills SET memo = 'x' WHERE id = $1`, [bill])).rejects.toThrow(/cannot be changed/);
    await expect(t.db.admin.query(`DELETE FROM finance.bill_allocations WHERE bill_id = $1`, [bill])).rejects.toThrow(/append-only/);
    // nor TRUNCATE (it fires no row trigger): each table's own statement trigger refuses it (CASCADE: the tables that
    // reference it are emptied too, and the first named fires first)
    const c = await t.db.admin.connect();
    try {
      for (const table of ['finance.bill_payments', 'finance.bill_allocations', 'finance.bill_decisions', 'finance.bill_payment_refunds']) {
        await c.query('BEGIN');
        await expect(c.query(`TRUNCATE ${table} CASCADE`)).rejects.toThrow(`${table} is append-only: TRUNCATE is not allowed`);
        await c.query('ROLLBACK');
      }
    } finally {
      await c.query('ROLLBACK');
      c.release();
    }
    expect(await counts()).toBe(before);
    const { rows: [after] } = await t.db.admin.query(`SELECT b::text AS b FROM finance.bills b WHERE org_id = $1 AND id = $2`, [orgId, bill]);
    expect(after.b).toBe(snap.b);
  });

  it('bad input: each a 4xx naming the problem, and nothing written', async () => {
    const bill = await postedBill('100.00');
    const othersBill = await postedBill('100.00', otherVendor);
    const line = { accountId: acc['5200'], unitPrice: '10.00' };
    const before = await counts();
    const cases: [string, () => Promise<any>, number, RegExp][] = [
      ['unknown vendor', () => t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId: '00000000-0000-4000-8000-000000000000', billDate: '2026-02-02', lines: [line] }), 404, /vendor/],
      ['a line on a group account', () => t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId: vendor, billDate: '2026-02-02', lines: [{ ...line, accountId: acc['5000'] }] }), 422, /lines\[0\]\.accountId: account 5000 is a group account/],
      ['a revenue account', () => t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId: vendor, billDate: '2026-02-02', lines: [{ ...line, accountId: acc['4100'] }] }), 422, /not an expense or asset account/],
      ['a tax code of another organization', () => t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId: vendor, billDate: '2026-02-02', lines: [{ ...line, taxCodeId: otherTax }] }), 404, /tax_code/],
      ['a negative quantity', () => t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId: vendor, billDate: '2026-02-02', lines: [{ ...line, quantity: '-2' }] }), 400, /lines\[0\]\.quantity must be positive/],
      ['a client total that disagrees', () => t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId: vendor, billDate: '2026-02-02', total: '11.00', lines: [line] }), 400, /lines add up to 10\.00/],
      ['an allocation larger than the payment', () => t.http.post(url('payments')).set(users.accountant.auth).send({ vendorId: vendor, paymentDate: '2026-02-08', amount: '50.00', bankAccountId: acc['1100'], allocations: [{ billId: bill, amount: '60.00' }] }), 409, /more than the payment of 50\.00/],
      ['an allocation larger than the open amount', () => t.http.post(url('payments')).set(users.accountant.auth).send({ vendorId: vendor, paymentDate: '2026-02-08', amount: '500.00', bankAccountId: acc['1100'], allocations: [{ billId: bill, amount: '150.00' }] }), 409, /more than the open amount 100\.00/],
      ['an allocation to another vendor\'s bill', () => t.http.post(url('payments')).set(users.accountant.auth).send({ vendorId: vendor, paymentDate: '2026-02-08', amount: '50.00', bankAccountId: acc['1100'], allocations: [{ billId: othersBill, amount: '50.00' }] }), 422, /belongs to another vendor/],
      ['a bank account that is an expense', () => t.http.post(url('payments')).set(users.accountant.auth).send({ vendorId: vendor, paymentDate: '2026-02-08', amount: '50.00', bankAccountId: acc['5200'] }), 422, /bankAccountId/],
      ['a reimbursement to someone who never claimed', () => t.http.post(url('payments')).set(users.accountant.auth).send({ claimantId: users.viewer.id, paymentDate: '2026-02-08', amount: '5.00', bankAccountId: acc['1100'] }), 404, /claimant/],
      ['a viewer creating a bill', () => t.http.post(url('bills')).set(users.viewer.auth).send({ vendorId: vendor, billDate: '2026-02-02', lines: [line] }), 403, /role/],
      ['a member creating a bill', () => t.http.post(url('bills')).set(users.member.auth).send({ vendorId: vendor, billDate: '2026-02-02', lines: [line] }), 403, /role/],
    ];
    for (const [name, call, status, message] of cases) {
      const res = await call();
      expect([name, res.status, res.body.error?.message]).toEqual([name, status, expect.stringMatching(message)]);
    }
    expect(await counts()).toBe(before);

    // a date in a closed period: the bill stays a draft, the payment is not made
    const periods = (await t.http.get(ledgerUrl(orgId, 'periods')).set(users.owner.auth).expect(200)).body;
    const march = periods.find((p: any) => p.startDate === '2026-03-01');
    await t.http.post(ledgerUrl(orgId, `periods/${march.id}/close`)).set(users.owner.auth).expect(200);
    const draft = await t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId: vendor, billDate: '2026-03-05', lines: [line] }).expect(201);
    const closedBefore = await counts();
    const sub = await t.http.post(url(`bills/${draft.body.id}/submit`)).set(users.accountant.auth).expect(422);
    expect(sub.body.error).toMatchObject({ code: 'ledger.period_closed', message: expect.stringContaining('2026-03-01 to 2026-03-31 is closed') });
    const pay = await t.http.post(url('payments')).set(users.accountant.auth).send({ vendorId: vendor, paymentDate: '2026-03-10', amount: '100.00', bankAccountId: acc['1100'], allocations: [{ billId: bill, amount: '100.00' }] }).expect(422);
    expect(pay.body.error.code).toBe('ledger.period_closed');
    expect(await counts()).toBe(closedBefore);
    expect((await t.http.get(url(`bills/${draft.body.id}`)).set(users.viewer.auth).expect(200)).body.status).toBe('draft');
  });

  it('a date that is no day of the calendar (2026-02-30) is a 400 naming the field, in every body and query; nothing written', async () => {
    const bill = await postedBill('100.00');
    const payment = (await t.http.post(url('payments')).set(users.accountant.auth)
      .send({ vendorId: vendor, paymentDate: '2026-02-08', amount: '150.00', bankAccountId: acc['1100'], allocations: [{ billId: bill, amount: '100.00' }] }).expect(201)).body;
    const billBody = { vendorId: vendor, billDate: '2026-02-02', lines: [{ accountId: acc['5200'], unitPrice: '10.00' }] };
    const draft = (await t.http.post(url('bills')).set(users.accountant.auth).send(billBody).expect(201)).body;
    const before = await counts();
    const bad = '2026-02-30';
    const claimBody = { claimDate: '2026-02-02', currency: 'EUR', lines: [{ accountId: acc['5200'], amount: '10.00', currency: 'EUR', date: '2026-02-01' }] };
    const post = (path: string, body: object) => t.http.post(url(path)).set(users.accountant.auth).send(body);
    const cases: [string, () => Promise<any>][] = [
      ['billDate', () => post('bills', { ...billBody, billDate: bad })],
      ['dueDate', () => post('bills', { ...billBody, dueDate: bad })],
      ['billDate', () => t.http.patch(url(`bills/${draft.id}`)).set(users.accountant.auth).send({ billDate: bad, lines: billBody.lines })],
      ['claimDate', () => post('expense-claims', { ...claimBody, claimDate: bad })],
      ['date', () => post('expense-claims', { ...claimBody, lines: [{ ...claimBody.lines[0], date: bad }] })],
      ['paymentDate', () => post('payments', { vendorId: vendor, paymentDate: bad, amount: '5.00', bankAccountId: acc['1100'] })],
      ['date', () => post(`payments/${payment.id}/allocations`, { billId: bill, amount: '1.00', date: bad })],
      ['date', () => post(`payments/${payment.id}/refunds`, { amount: '1.00', date: bad })],
      ['date', () => post(`allocations/${payment.allocations[0].id}/reverse`, { date: bad })],
      ['asOf', () => t.http.get(url('aging')).set(users.accountant.auth).query({ asOf: bad })],
    ];
    const got: unknown[] = [];
    for (const [field, call] of cases) {
      const res = await call();
      got.push([field, res.status, res.body.error?.code, res.body.error?.message]);
    }
    expect(got).toEqual(cases.map(([field]) => [field, 400, 'validation_failed', `${field} must be a calendar date YYYY-MM-DD: ${bad} is no day of the calendar`]));
    expect(await counts()).toBe(before);
    expect((await t.http.get(url(`bills/${draft.id}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ status: 'draft', billDate: '2026-02-02' });
  });

  it('vendors: search by name or e-mail, cursor pages, archive instead of delete', async () => {
    for (const n of ['Zeta Parts', 'Alpha Tools', 'Beta Paper']) await createVendor(t, orgId, users.accountant, { name: n, email: `${n.split(' ')[0].toLowerCase()}@v.example` });
    const search = await t.http.get(url('vendors?search=TOOLS')).set(users.viewer.auth).expect(200);
    expect(search.body.items.map((v: any) => v.name)).toEqual(['Alpha Tools']);
    const byMail = await t.http.get(url('vendors?search=beta@v')).set(users.viewer.auth).expect(200);
    expect(byMail.body.items.map((v: any) => v.name)).toEqual(['Beta Paper']);
    const names: string[] = [];
    let cursor: string | undefined;
    do {
      const res = await t.http.get(url(`vendors?limit=2${cursor ? `&cursor=${cursor}` : ''}`)).set(users.viewer.auth).expect(200);
      names.push(...res.body.items.map((v: any) => v.name));
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(names).toEqual(['Alpha Tools', 'Beta Paper', 'Main Vendor', 'Other Vendor', 'Zeta Parts']);
    const zeta = (await t.http.get(url('vendors?search=zeta')).set(users.viewer.auth).expect(200)).body.items[0];
    const archived = await t.http.post(url(`vendors/${zeta.id}/archive`)).set(users.accountant.auth).expect(200);
    expect(archived.body.archivedAt).not.toBeNull();
    expect((await t.http.get(url('vendors?search=zeta')).set(users.viewer.auth).expect(200)).body.items).toEqual([]);
    const archivedBill = await t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId: zeta.id, billDate: '2026-02-02', lines: [{ accountId: acc['5200'], unitPrice: '1' }] }).expect(422);
    expect(archivedBill.body.error.code).toBe('payables.vendor_archived');
  });

  it('vendors: pages one at a time by the lower(name) PostgreSQL orders by, also where JavaScript lowers a name differently (İ, final Σ): each once, in order', async () => {
    // JavaScript lowers 'İ' to 'i' + U+0307 and a word-final 'Σ' to 'ς'; PostgreSQL to 'i' and 'σ'. A cursor built in
    // JavaScript skipped "Izmir Ltd" after "İstanbul Ticaret" and served "ΣΟΦΟΣ ΑΕ" again and again
    for (const name of ['İstanbul Ticaret', 'Izmir Ltd', 'ΣΟΦΟΣ ΑΕ', 'Σωκράτης ΟΕ']) await createVendor(t, orgId, users.accountant, { name });
    const { rows } = await t.db.admin.query<{ id: string; name: string; n: string }>(
      'SELECT id, name, lower(name) AS n FROM finance.vendors WHERE org_id = $1 AND archived_at IS NULL ORDER BY lower(name), id', [orgId]);
    for (const name of ['İstanbul Ticaret', 'ΣΟΦΟΣ ΑΕ']) expect(name.toLowerCase()).not.toBe(rows.find((r) => r.name === name)!.n);
    const seen: string[] = [];
    const cursors: unknown[] = [];
    let cursor: string | undefined;
    // bounded: a cursor that serves its own row again would page for ever
    for (let i = 0; i <= rows.length; i++) {
      const res = await t.http.get(url(`vendors?limit=1${cursor ? `&cursor=${cursor}` : ''}`)).set(users.viewer.auth).expect(200);
      seen.push(...res.body.items.map((v: { name: string }) => v.name));
      cursor = res.body.nextCursor;
      if (!cursor) break;
      cursors.push(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')));
    }
    expect(seen).toEqual(rows.map((r) => r.name));
    expect(seen).toEqual(expect.arrayContaining(['İstanbul Ticaret', 'Izmir Ltd', 'ΣΟΦΟΣ ΑΕ', 'Σωκράτης ΟΕ']));
    // each cursor is the position the ORDER BY gave its row
    expect(cursors).toEqual(rows.slice(0, -1).map((r) => ({ n: r.n, i: r.id })));
  });

  it('approval rules are data: a custom rule set changes what a bill needs', async () => {
    const res = await t.http.put(url('settings')).set(users.admin.auth).send({ apAccountId: acc['2100'], approvalRules: [{ above: '50.00', approvals: 1, roles: ['accountant'] }] }).expect(200);
    expect(res.body).toMatchObject({ isDefault: false, approvalRules: [{ above: '50.00', approvals: 1, roles: ['accountant'] }] });
    const b = await t.http.post(url('bills')).set(users.admin.auth).send({ vendorId: vendor, billDate: '2026-02-03', lines: [{ accountId: acc['5200'], unitPrice: '60.00' }] }).expect(201);
    const s = await t.http.post(url(`bills/${b.body.id}/submit`)).set(users.admin.auth).expect(200);
    expect(s.body).toMatchObject({ approvalsRequired: 1, approverRoles: ['accountant'] });
    await t.http.post(url(`bills/${b.body.id}/approve`)).set(users.owner.auth).send({}).expect(403);
    await t.http.post(url(`bills/${b.body.id}/approve`)).set(users.accountant.auth).send({}).expect(200);
    const bad = await t.http.put(url('settings')).set(users.admin.auth).send({ apAccountId: acc['2100'], approvalRules: [{ above: '1', approvals: 1, roles: ['member'] }] }).expect(400);
    expect(bad.body.error.code).toBe('validation_failed');
    await t.http.put(url('settings')).set(users.accountant.auth).send({ apAccountId: acc['2100'], approvalRules: [{ above: '1', approvals: 1, roles: ['admin'] }] }).expect(403);
  });

  it('a starter organization gets 402 naming full_accounting and the plan that has it; members may draft claims on a plan that has it', async () => {
    const starter = await createOrg(t, users.owner, 'Starter Payables');
    await startBooks(t, starter, users.owner);
    await onPlan(t, starter, 'starter');
    const res = await t.http.post(payablesUrl(starter, 'vendors')).set(users.owner.auth).send({ name: 'V' }).expect(402);
    expect(res.body.error).toMatchObject({ code: 'billing.feature_not_in_plan', details: { feature: 'full_accounting', upgradeTo: 'professional' } });
    const claim = await t.http.post(url('expense-claims')).set(users.member.auth)
      .send({ claimDate: '2026-02-04', currency: 'EUR', lines: [{ accountId: acc['5200'], amount: '9.99', currency: 'EUR', date: '2026-02-04' }] }).expect(201);
    // another member cannot submit it; a viewer cannot draft one
    const mine = await t.http.post(url(`expense-claims/${claim.body.id}/submit`)).set(users.member.auth).expect(200);
    expect(mine.body.status).toBe('submitted');
    // a member sees their own claims only
    const owners = await t.http.post(url('expense-claims')).set(users.owner.auth)
      .send({ claimDate: '2026-02-04', currency: 'EUR', lines: [{ accountId: acc['5200'], amount: '5.00', currency: 'EUR', date: '2026-02-04' }] }).expect(201);
    await t.http.get(url(`expense-claims/${owners.body.id}`)).set(users.member.auth).expect(404);
    expect((await t.http.get(url('expense-claims')).set(users.member.auth).expect(200)).body.items.map((c: any) => c.claimantId)).toEqual([users.member.id]);
    expect((await t.http.get(url('expense-claims')).set(users.viewer.auth).expect(200)).body.items).toHaveLength(2);
    await t.http.post(url('expense-claims')).set(users.viewer.auth).send({ claimDate: '2026-02-04', currency: 'EUR', lines: [{ accountId: acc['5200'], amount: '1', currency: 'EUR', date: '2026-02-04' }] }).expect(403);
  });

  it('a rejected expense claim is fixed by its claimant and submitted again; nobody else edits it, and a submitted one stays as it is', async () => {
    const line = (amount: string) => ({ accountId: acc['5200'], amount, currency: 'EUR', date: '2026-02-05', receiptRef: 'R-77' });
    const claim = await t.http.post(url('expense-claims')).set(users.member.auth)
      .send({ claimDate: '2026-02-05', currency: 'EUR', memo: 'Taxi', lines: [line('48.00')] }).expect(201);
    const id = claim.body.id;
    await t.http.post(url(`expense-claims/${id}/submit`)).set(users.member.auth).expect(200);
    const locked = await t.http.patch(url(`expense-claims/${id}`)).set(users.member.auth).send({ claimDate: '2026-02-05', currency: 'EUR', lines: [line('1.00')] }).expect(409);
    expect(locked.body.error).toMatchObject({ code: 'payables.not_editable', message: `expense claim ${id} is submitted: only a draft or rejected claim can be edited` });
    await t.http.post(url(`expense-claims/${id}/reject`)).set(users.accountant.auth).send({ reason: 'the receipt says 38.00' }).expect(200);

    // a bookkeeper may approve and reject it, not rewrite it
    const notOwn = await t.http.patch(url(`expense-claims/${id}`)).set(users.owner.auth).send({ claimDate: '2026-02-05', currency: 'EUR', lines: [line('1.00')] }).expect(403);
    expect(notOwn.body.error.code).toBe('payables.claim_not_own');
    const mismatch = await t.http.patch(url(`expense-claims/${id}`)).set(users.member.auth)
      .send({ claimDate: '2026-02-05', currency: 'EUR', lines: [line('38.00')], total: '48.00' }).expect(400);
    expect(mismatch.body.error.code).toBe('payables.total_mismatch');
    const fixed = await t.http.patch(url(`expense-claims/${id}`)).set(users.member.auth)
      .send({ claimDate: '2026-02-05', currency: 'EUR', memo: 'Taxi (receipt 38.00)', lines: [line('38.00')], total: '38.00' }).expect(200);
    expect(fixed.body).toMatchObject({ id, kind: 'expense_claim', status: 'rejected', memo: 'Taxi (receipt 38.00)', total: '38.00', lines: [expect.objectContaining({ gross: '38.00', receiptRef: 'R-77' })] });
    const resubmitted = await t.http.post(url(`expense-claims/${id}/submit`)).set(users.member.auth).expect(200);
    expect(resubmitted.body).toMatchObject({ status: 'submitted', total: '38.00' });
    const posted = await t.http.post(url(`expense-claims/${id}/approve`)).set(users.accountant.auth).send({}).expect(200);
    expect(posted.body).toMatchObject({ status: 'posted', total: '38.00' });
    const audit = await t.db.admin.query(`SELECT action, before->>'total' AS before, after->>'total' AS after FROM core.audit_logs
      WHERE org_id = $1 AND entity_id = $2 AND action = 'payables.expense_claim_updated'`, [orgId, id]);
    expect(audit.rows).toEqual([{ action: 'payables.expense_claim_updated', before: '48.00', after: '38.00' }]);
  });

  it('pages bills created within one millisecond without skipping any (cursors keep microseconds)', async () => {
    const v = await createVendor(t, orgId, users.accountant, { name: 'Millisecond Supplies' });
    const ids: string[] = [];
    for (const amount of ['1.00', '2.00', '3.00']) {
      ids.push((await t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId: v, billDate: '2026-02-02', lines: [{ accountId: acc['5200'], unitPrice: amount }] }).expect(201)).body.id);
    }
    // three creations in one millisecond, at different microseconds (newest first: ids[0], ids[1], ids[2])
    for (const [i, at] of ['2026-02-02T10:00:00.123789Z', '2026-02-02T10:00:00.123456Z', '2026-02-02T10:00:00.123001Z'].entries()) {
      await t.db.admin.query('UPDATE finance.bills SET created_at = $2 WHERE id = $1', [ids[i], at]);
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const res = await t.http.get(url(`bills?vendorId=${v}&limit=1${cursor ? `&cursor=${cursor}` : ''}`)).set(users.viewer.auth).expect(200);
      seen.push(...res.body.items.map((b: any) => b.id));
      cursor = res.body.nextCursor;
    } while (cursor && seen.length < 10);
    expect(seen).toEqual(ids);
  });

  it('a draft or rejected bill or claim is voided, not deleted: it stays with its history, immutable, out of the work lists; audited, with an event', async () => {
    const v = await createVendor(t, orgId, users.accountant, { name: 'Void Supplies' });
    const draft = (await t.http.post(url('bills')).set(users.owner.auth).send({ vendorId: v, billDate: '2026-02-02', lines: [{ accountId: acc['5200'], unitPrice: '2500.00' }] }).expect(201)).body;
    const sent = await t.http.post(url(`bills/${draft.id}/submit`)).set(users.owner.auth).expect(200);
    expect(sent.body.status).toBe('submitted');
    const submitted = await t.http.post(url(`bills/${draft.id}/void`)).set(users.accountant.auth).send({}).expect(409);
    expect(submitted.body.error).toMatchObject({ code: 'payables.not_editable', message: `bill ${draft.id} is submitted: only a draft, rejected or posted one can be voided (reject it first)` });
    // rejected by whoever the approval rules in force name
    const approver = users[sent.body.approverRoles[0] as keyof RoleUsers];
    await t.http.post(url(`bills/${draft.id}/reject`)).set(approver.auth).send({ reason: 'entered twice' }).expect(200);
    const before = await counts();
    const voided = await t.http.post(url(`bills/${draft.id}/void`)).set(users.accountant.auth).send({ reason: 'duplicate of INV-4711' }).expect(200);
    expect(voided.body).toMatchObject({ id: draft.id, status: 'voided', journalEntryId: null });
    expect(voided.body.decisions.map((d: any) => d.decision)).toEqual(['submit', 'reject']);
    expect(await counts()).toBe(before); // no row added or removed, nothing posted
    // never again: not edited, submitted, voided twice — and not by SQL either
    await t.http.patch(url(`bills/${draft.id}`)).set(users.accountant.auth).send({ billDate: '2026-02-03', lines: [{ accountId: acc['5200'], unitPrice: '1.00' }] }).expect(409);
    await t.http.post(url(`bills/${draft.id}/submit`)).set(users.accountant.auth).expect(409);
    await t.http.post(url(`bills/${draft.id}/void`)).set(users.accountant.auth).send({}).expect(409);
    await expect(t.db.asApi({ sub: users.owner.id, role: 'authenticated', org_id: orgId }, 'authenticated', `UPDATE finance.bills SET status = 'draft' WHERE id = $1`, [draft.id]))
      .rejects.toThrow(/is voided: it cannot be changed/);
    // out of the open work, in its own filter
    expect((await t.http.get(url(`bills?vendorId=${v}&status=rejected`)).set(users.viewer.auth).expect(200)).body.items).toEqual([]);
    expect((await t.http.get(url(`bills?vendorId=${v}&status=voided`)).set(users.viewer.auth).expect(200)).body.items.map((b: any) => b.id)).toEqual([draft.id]);
    const audit = await t.db.admin.query(`SELECT after->>'status' AS status, after->>'reason' AS reason FROM core.audit_logs WHERE org_id = $1 AND entity_id = $2 AND action = 'payables.bill_voided'`, [orgId, draft.id]);
    expect(audit.rows).toEqual([{ status: 'voided', reason: 'duplicate of INV-4711' }]);
    const events = await t.db.admin.query(`SELECT payload->'payload' AS p FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'bill.voided'`, [orgId]);
    expect(events.rows.map((r) => r.p)).toEqual([expect.objectContaining({ billId: draft.id, kind: 'bill', reason: 'duplicate of INV-4711', voidedBy: users.accountant.id })]);

    // a member withdraws their own claim; not someone else's
    const claim = (await t.http.post(url('expense-claims')).set(users.member.auth)
      .send({ claimDate: '2026-02-05', currency: 'EUR', lines: [{ accountId: acc['5200'], amount: '12.00', currency: 'EUR', date: '2026-02-05' }] }).expect(201)).body;
    const owners = (await t.http.post(url('expense-claims')).set(users.owner.auth)
      .send({ claimDate: '2026-02-05', currency: 'EUR', lines: [{ accountId: acc['5200'], amount: '7.00', currency: 'EUR', date: '2026-02-05' }] }).expect(201)).body;
    // another's claim is not even visible to a member (RLS)
    expect((await t.http.post(url(`expense-claims/${owners.id}/void`)).set(users.member.auth).send({}).expect(404)).body.error.code).toBe('expense_claim.not_found');
    expect((await t.http.post(url(`expense-claims/${claim.id}/void`)).set(users.member.auth).send({ reason: 'paid privately' }).expect(200)).body.status).toBe('voided');
  });
});
