import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { rUrl } from '../receivables/receivables-support.js';
import { createVendor, payablesUrl } from './payables-support.js';

/**
 * An account becomes a subledger's control account (payables' AP; receivables' AR and deferred revenue) only while it
 * carries nothing: the aging starts empty and must equal the account, and once it is a control account no manual entry
 * may clear a balance left on it. So the settings naming an account that carries a balance, and payables' first posting
 * without settings (which makes the default account 2100 AP), are a 422 naming the account and what it carries;
 * nothing is written. An account whose entries net to nothing is taken (the promise is about the balance).
 */
describe('a control account starts with nothing', () => {
  let t: TestApp;
  const rules = [{ above: '0', approvals: 0, roles: ['owner'] }];

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  async function books(name: string): Promise<{ orgId: string; users: RoleUsers; acc: Record<string, string> }> {
    const { orgId, users } = await orgWithRoles(t, name);
    await onPlan(t, orgId, 'professional');
    const acc = await startBooks(t, orgId, users.owner, 'EUR');
    return { orgId, users, acc };
  }
  const entry = (orgId: string, who: RoleUsers['owner'], lines: object[]) => t.http.post(ledgerUrl(orgId, 'journal-entries')).set(who.auth).send({ date: '2026-03-01', lines });
  const footprint = async (orgId: string) => (await t.db.admin.query(`
    SELECT (SELECT count(*) FROM finance.payables_settings WHERE org_id = $1)::int AS "apSettings",
           (SELECT count(*) FROM finance.receivables_settings WHERE org_id = $1)::int AS "arSettings",
           (SELECT count(*) FROM finance.journal_entries WHERE org_id = $1 AND source <> 'manual')::int AS postings,
           (SELECT count(*) FROM finance.bills WHERE org_id = $1 AND journal_entry_id IS NOT NULL)::int AS "postedBills",
           (SELECT count(*) FROM finance.bill_payments WHERE org_id = $1)::int AS payments,
           (SELECT count(*) FROM finance.bill_decisions WHERE org_id = $1)::int AS decisions,
           (SELECT count(*) FROM core.audit_logs WHERE org_id = $1 AND action LIKE '%settings_updated')::int AS "settingsAudits"`, [orgId])).rows[0];

  it('payables\' first posting refuses a default AP account 2100 that carries a manual entry; cleared, the bill posts and the aging equals the account', async () => {
    const { orgId, users, acc } = await books('First Posting Ltd');
    await entry(orgId, users.owner, [{ accountId: acc['5200'], debit: '100.00' }, { accountId: acc['2100'], credit: '100.00' }]).expect(201);
    const vendorId = await createVendor(t, orgId, users.accountant);
    const bill = (await t.http.post(payablesUrl(orgId, 'bills')).set(users.accountant.auth)
      .send({ vendorId, billDate: '2026-03-02', lines: [{ accountId: acc['5200'], unitPrice: '50.00' }] }).expect(201)).body.id;
    // a bill above 1,000.00 (the default rules: one approval) and an expense claim post at their approval
    const big = (await t.http.post(payablesUrl(orgId, 'bills')).set(users.accountant.auth)
      .send({ vendorId, billDate: '2026-03-02', lines: [{ accountId: acc['5200'], unitPrice: '2000.00' }] }).expect(201)).body.id;
    expect((await t.http.post(payablesUrl(orgId, `bills/${big}/submit`)).set(users.accountant.auth).expect(200)).body.status).toBe('submitted');
    const claim = (await t.http.post(payablesUrl(orgId, 'expense-claims')).set(users.member.auth)
      .send({ claimDate: '2026-03-03', currency: 'EUR', lines: [{ accountId: acc['5200'], amount: '40.00', currency: 'EUR', date: '2026-03-03' }] }).expect(201)).body.id;
    expect((await t.http.post(payablesUrl(orgId, `expense-claims/${claim}/submit`)).set(users.member.auth).expect(200)).body.status).toBe('submitted');
    const before = await footprint(orgId);
    for (const approval of [
      t.http.post(payablesUrl(orgId, `bills/${big}/approve`)).set(users.owner.auth).send({}),
      t.http.post(payablesUrl(orgId, `expense-claims/${claim}/approve`)).set(users.accountant.auth).send({}),
    ]) {
      const res = await approval.expect(422);
      expect(res.body.error.code).toBe('payables.account_carries_balance');
    }

    const refused = await t.http.post(payablesUrl(orgId, `bills/${bill}/submit`)).set(users.accountant.auth).expect(422);
    expect(refused.body.error.code).toBe('payables.account_carries_balance');
    expect(refused.body.error.message).toMatch(/^apAccountId \(not set, the default\): account 2100 carries -100\.00 EUR that no bill, expense claim or payment explains; .*set apAccountId in the payables settings/);
    // a payment would be payables' first posting too
    const pay = await t.http.post(payablesUrl(orgId, 'payments')).set(users.accountant.auth)
      .send({ vendorId, paymentDate: '2026-03-05', amount: '10.00', bankAccountId: acc['1100'] }).expect(422);
    expect(pay.body.error.code).toBe('payables.account_carries_balance');
    expect(await footprint(orgId)).toEqual(before);
    expect((await t.http.get(payablesUrl(orgId, `bills/${bill}`)).set(users.accountant.auth).expect(200)).body).toMatchObject({ status: 'draft', journalEntryId: null });
    expect((await t.http.get(payablesUrl(orgId, `bills/${big}`)).set(users.accountant.auth).expect(200)).body).toMatchObject({ status: 'submitted', approvalsGiven: 0, journalEntryId: null });
    // 2100 is no control account yet: a manual entry may still clear it
    await entry(orgId, users.owner, [{ accountId: acc['2100'], debit: '100.00' }, { accountId: acc['5200'], credit: '100.00' }]).expect(201);
    expect((await t.http.post(payablesUrl(orgId, `bills/${bill}/submit`)).set(users.accountant.auth).expect(200)).body.status).toBe('posted');
    const aging = (await t.http.get(payablesUrl(orgId, 'aging?asOf=2026-03-31')).set(users.accountant.auth).expect(200)).body;
    expect(aging).toMatchObject({ total: '50.00', controlAccountBalance: '50.00' });
  });

  it('the payables settings refuse an AP account that carries a balance (422, settings unchanged); the default 2100 carrying one may be replaced before payables posted', async () => {
    const { orgId, users, acc } = await books('Loan AP Ltd');
    // a loan on 2300; an ordinary entry on 2100, which is no control account while payables has not posted
    await entry(orgId, users.owner, [{ accountId: acc['1100'], debit: '1000.00' }, { accountId: acc['2300'], credit: '1000.00' }]).expect(201);
    await entry(orgId, users.owner, [{ accountId: acc['5200'], debit: '100.00' }, { accountId: acc['2100'], credit: '100.00' }]).expect(201);
    const before = await footprint(orgId);
    for (const [code, carried] of [['2300', '-1000.00 EUR'], ['2100', '-100.00 EUR']]) {
      const res = await t.http.put(payablesUrl(orgId, 'settings')).set(users.owner.auth).send({ apAccountId: acc[code], approvalRules: rules }).expect(422);
      expect(res.body.error.code).toBe('payables.account_carries_balance');
      expect(res.body.error.message).toMatch(new RegExp(`^apAccountId: account ${code} carries ${carried} that no bill, expense claim or payment explains; `));
    }
    expect(await footprint(orgId)).toEqual(before);
    expect((await t.http.get(payablesUrl(orgId, 'settings')).set(users.owner.auth).expect(200)).body).toMatchObject({ apAccountId: acc['2100'], isDefault: true });

    // an account whose entries net to nothing is taken; 2100's balance does not hold it back (it was never AP)
    const ap = (await t.http.post(ledgerUrl(orgId, 'accounts')).set(users.owner.auth).send({ code: '2110', name: 'Trade creditors', type: 'liability', parentId: acc['2000'] }).expect(201)).body.id;
    await entry(orgId, users.owner, [{ accountId: acc['5200'], debit: '5.00' }, { accountId: ap, credit: '5.00' }]).expect(201);
    await entry(orgId, users.owner, [{ accountId: ap, debit: '5.00' }, { accountId: acc['5200'], credit: '5.00' }]).expect(201);
    expect((await t.http.put(payablesUrl(orgId, 'settings')).set(users.owner.auth).send({ apAccountId: ap, approvalRules: rules }).expect(200)).body).toMatchObject({ apAccountId: ap, isDefault: false });
    const vendorId = await createVendor(t, orgId, users.accountant);
    const bill = (await t.http.post(payablesUrl(orgId, 'bills')).set(users.accountant.auth)
      .send({ vendorId, billDate: '2026-03-02', lines: [{ accountId: acc['5200'], unitPrice: '300.00' }] }).expect(201)).body.id;
    await t.http.post(payablesUrl(orgId, `bills/${bill}/submit`)).set(users.accountant.auth).expect(200);
    const aging = (await t.http.get(payablesUrl(orgId, 'aging?asOf=2026-03-31')).set(users.accountant.auth).expect(200)).body;
    expect(aging).toMatchObject({ total: '300.00', controlAccountBalance: '300.00' });
    // naming its own AP account again (it carries the bill) is no adoption
    await t.http.put(payablesUrl(orgId, 'settings')).set(users.owner.auth).send({ apAccountId: ap.toUpperCase(), approvalRules: [{ above: '0', approvals: 0, roles: ['admin'] }] }).expect(200);
  });

  it('a currency whose own balance is nil but whose base balance is not is named with its base amount', async () => {
    const { orgId, users, acc } = await books('Nil Dollars Ltd');
    // 100.00 USD in at 0.9 and out at 1.0: nothing in USD is left on 2300, 10.00 EUR is
    await entry(orgId, users.owner, [{ accountId: acc['5200'], debit: '90.00' }, { accountId: acc['2300'], credit: '100.00', currency: 'USD', rate: '0.9' }]).expect(201);
    await entry(orgId, users.owner, [{ accountId: acc['2300'], debit: '100.00', currency: 'USD', rate: '1.0' }, { accountId: acc['5200'], credit: '100.00' }]).expect(201);
    const before = await footprint(orgId);
    const res = await t.http.put(payablesUrl(orgId, 'settings')).set(users.owner.auth).send({ apAccountId: acc['2300'], approvalRules: rules }).expect(422);
    expect(res.body.error.code).toBe('payables.account_carries_balance');
    expect(res.body.error.message).toMatch(/^apAccountId: account 2300 carries 0\.00 USD \(base 10\.00 EUR\) that no bill, expense claim or payment explains; /);
    expect(await footprint(orgId)).toEqual(before);
  });

  it('the receivables settings refuse an AR or deferred revenue account that carries a balance (422, no settings written)', async () => {
    const { orgId, users, acc } = await books('Opening AR Ltd');
    const deferred = (await t.http.post(ledgerUrl(orgId, 'accounts')).set(users.owner.auth).send({ code: '2400', name: 'Deferred revenue', type: 'liability', parentId: acc['2000'] }).expect(201)).body.id;
    await entry(orgId, users.owner, [{ accountId: acc['1200'], debit: '100.00' }, { accountId: acc['4100'], credit: '100.00' }]).expect(201);
    await entry(orgId, users.owner, [{ accountId: acc['1100'], debit: '40.00' }, { accountId: deferred, credit: '40.00' }]).expect(201);
    const before = await footprint(orgId);
    const ar = await t.http.put(rUrl(orgId, 'settings')).set(users.owner.auth).send({ arAccountId: acc['1200'] }).expect(422);
    expect(ar.body.error.code).toBe('receivables.account_carries_balance');
    expect(ar.body.error.message).toMatch(/^arAccountId: account 1200 carries 100\.00 EUR that no invoice, credit note or payment explains; /);
    const clean = (await t.http.post(ledgerUrl(orgId, 'accounts')).set(users.owner.auth).send({ code: '1210', name: 'Trade debtors', type: 'asset', parentId: acc['1000'] }).expect(201)).body.id;
    const def = await t.http.put(rUrl(orgId, 'settings')).set(users.owner.auth).send({ arAccountId: clean, deferredRevenueAccountId: deferred }).expect(422);
    expect(def.body.error.code).toBe('receivables.account_carries_balance');
    expect(def.body.error.message).toMatch(/^deferredRevenueAccountId: account 2400 carries -40\.00 EUR /);
    expect(await footprint(orgId)).toEqual(before);
    await t.http.get(rUrl(orgId, 'settings')).set(users.owner.auth).expect(422);
    // clean accounts are taken, and named again once they carry invoices
    expect((await t.http.put(rUrl(orgId, 'settings')).set(users.owner.auth).send({ arAccountId: clean }).expect(200)).body.arAccountId).toBe(clean);
    const customerId = (await t.http.post(rUrl(orgId, 'customers')).set(users.owner.auth).send({ name: 'Alpha Ltd' }).expect(201)).body.id;
    const draft = await t.http.post(rUrl(orgId, 'invoices')).set(users.owner.auth)
      .send({ customerId, invoiceDate: '2026-03-02', lines: [{ description: 'Work', quantity: '1', unitPrice: '70.00', revenueAccountId: acc['4100'] }] }).expect(201);
    await t.http.post(rUrl(orgId, `invoices/${draft.body.id}/issue`)).set(users.owner.auth).send({}).expect(200);
    expect((await t.http.put(rUrl(orgId, 'settings')).set(users.owner.auth).send({ arAccountId: clean.toUpperCase() }).expect(200)).body.arAccountId).toBe(clean);
  });
});
