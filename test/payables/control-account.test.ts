import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { advisoryLockWaiters, openTenantTransaction, tableContents } from '../support/database.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerUrl } from '../ledger/ledger-support.js';
import { issueInvoice, rUrl, setupReceivables } from '../receivables/receivables-support.js';
import { createVendor, payablesUrl } from './payables-support.js';
import { until } from '../support/throwaway-servers.js';

/**
 * The AP and AR control accounts of the settings: every later payment, refund and FX result posts to them. Replaced
 * while the old one carries open items, those could never be settled there (it would keep their balance for ever).
 * So a replacement waits until the old account carries nothing. A flow holds the organization's posting lock shared
 * from its settings read to its commit, and a settings change takes it exclusively before it checks the old account:
 * so the change sees the postings of flows in flight, and a flow that starts during a change posts to the new account.
 */
describe('payables and receivables: a control account is replaced only while it carries nothing', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let customer: string;

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Control Account Ltd'));
    await onPlan(t, orgId, 'professional');
    ({ acc, customer } = await setupReceivables(t, orgId, users.owner, 'EUR'));
  });
  const clients: pg.Client[] = [];
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    await t.close();
  });

  const advisoryWait = () => advisoryLockWaiters(t.db.admin);
  const connect = async (url: string) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    clients.push(c);
    return c;
  };

  const account = async (code: string, type: string, parent: string) =>
    (await t.http.post(ledgerUrl(orgId, 'accounts')).set(users.owner.auth).send({ code, name: `Control ${code}`, type, parentId: acc[parent] }).expect(201)).body.id as string;

  it('AP: refused while a bill is open on the old account (409, settings unchanged); accepted once it is paid', async () => {
    const vendor = await createVendor(t, orgId, users.accountant);
    const ap2 = await account('2110', 'liability', '2000');
    const bill = await t.http.post(payablesUrl(orgId, 'bills')).set(users.accountant.auth)
      .send({ vendorId: vendor, billDate: '2026-03-01', lines: [{ accountId: acc['5200'], unitPrice: '100.00' }] }).expect(201);
    await t.http.post(payablesUrl(orgId, `bills/${bill.body.id}/submit`)).set(users.accountant.auth).expect(200);
    const rules = [{ above: '0', approvals: 0, roles: ['owner'] }];
    const refused = await t.http.put(payablesUrl(orgId, 'settings')).set(users.owner.auth).send({ apAccountId: ap2, approvalRules: rules }).expect(409);
    expect(refused.body.error.code).toBe('payables.control_account_in_use');
    expect(refused.body.error.message).toMatch(/-100\.00 EUR/);
    expect((await t.http.get(payablesUrl(orgId, 'settings')).set(users.owner.auth).expect(200)).body.apAccountId).toBe(acc['2100']);
    await t.http.post(payablesUrl(orgId, 'payments')).set(users.accountant.auth)
      .send({ vendorId: vendor, paymentDate: '2026-03-05', amount: '100.00', bankAccountId: acc['1100'], allocations: [{ billId: bill.body.id, amount: '100.00' }] }).expect(201);
    const moved = await t.http.put(payablesUrl(orgId, 'settings')).set(users.owner.auth).send({ apAccountId: ap2, approvalRules: rules }).expect(200);
    expect(moved.body.apAccountId).toBe(ap2);
  });

  it('AR: refused while an invoice is open on the old account (409, settings unchanged); accepted once it is paid', async () => {
    const ar2 = await account('1210', 'asset', '1000');
    const invoice = await issueInvoice(t, orgId, users.owner, { customerId: customer, invoiceDate: '2026-03-01',
      lines: [{ description: 'Work', quantity: '1', unitPrice: '50.00', revenueAccountId: acc['4100'] }] });
    const settings = { arAccountId: ar2, deferredRevenueAccountId: acc['2400'] };
    const refused = await t.http.put(rUrl(orgId, 'settings')).set(users.owner.auth).send(settings).expect(409);
    expect(refused.body.error.code).toBe('receivables.control_account_in_use');
    expect((await t.http.get(rUrl(orgId, 'settings')).set(users.owner.auth).expect(200)).body.arAccountId).toBe(acc['1200']);
    await t.http.post(rUrl(orgId, 'payments')).set(users.owner.auth)
      .send({ customerId: customer, date: '2026-03-10', amount: '50.00', depositAccountId: acc['1100'], method: 'bank_transfer', allocations: [{ invoiceId: invoice.id, amount: '50.00' }] }).expect(201);
    expect((await t.http.put(rUrl(orgId, 'settings')).set(users.owner.auth).send(settings).expect(200)).body.arAccountId).toBe(ar2);
    // the deferred revenue account likewise, while revenue waits in it to be recognized
    await issueInvoice(t, orgId, users.owner, { customerId: customer, invoiceDate: '2026-04-01',
      lines: [{ description: 'Support', quantity: '1', unitPrice: '120.00', revenueAccountId: acc['4100'], serviceStart: '2026-04-01', serviceEnd: '2027-03-31' }] });
    const deferred2 = await account('2410', 'liability', '2000');
    const moved = await t.http.put(rUrl(orgId, 'settings')).set(users.owner.auth).send({ arAccountId: ar2, deferredRevenueAccountId: deferred2 }).expect(409);
    expect(moved.body.error).toMatchObject({ code: 'receivables.control_account_in_use', message: expect.stringContaining('deferred revenue') });
    expect((await t.http.get(rUrl(orgId, 'settings')).set(users.owner.auth).expect(200)).body.deferredRevenueAccountId).toBe(acc['2400']);
  });

  it('no document takes a control account from the client, nor do the settings name another module\'s: 422 with the module\'s code, nothing written', async () => {
    const own = await orgWithRoles(t, 'Control Lines Ltd');
    await onPlan(t, own.orgId, 'professional');
    const { acc: a, customer: c } = await setupReceivables(t, own.orgId, own.users.owner, 'EUR');
    const { owner, accountant, member } = own.users;
    const rules = [{ above: '0', approvals: 0, roles: ['owner'] }];
    await t.http.put(payablesUrl(own.orgId, 'settings')).set(owner.auth).send({ apAccountId: a['2100'], approvalRules: rules }).expect(200);
    const vendor = await createVendor(t, own.orgId, accountant);
    const line = (accountId: string) => ({ accountId, unitPrice: '100.00' });
    const claimLine = (accountId: string) => ({ accountId, amount: '40.00', currency: 'EUR', date: '2026-03-03' });
    const bill = (await t.http.post(payablesUrl(own.orgId, 'bills')).set(accountant.auth).send({ vendorId: vendor, billDate: '2026-03-02', lines: [line(a['5200'])] }).expect(201)).body.id;
    const claim = (await t.http.post(payablesUrl(own.orgId, 'expense-claims')).set(member.auth).send({ claimDate: '2026-03-03', currency: 'EUR', lines: [claimLine(a['5200'])] }).expect(201)).body.id;
    const vendorCredit = (await t.http.post(payablesUrl(own.orgId, 'payments')).set(accountant.auth)
      .send({ vendorId: vendor, paymentDate: '2026-03-05', amount: '50.00', bankAccountId: a['1100'] }).expect(201)).body.id;
    const customerCredit = (await t.http.post(rUrl(own.orgId, 'payments')).set(accountant.auth)
      .send({ customerId: c, date: '2026-03-05', amount: '50.00', depositAccountId: a['1100'], method: 'bank_transfer' }).expect(201)).body.id;

    const tables = ['finance.bills', 'finance.bill_lines', 'finance.bill_payments', 'finance.bill_payment_refunds', 'finance.payables_settings', 'finance.invoices',
      'finance.customer_payments', 'finance.customer_refunds', 'finance.receivables_settings', 'finance.journal_entries', 'finance.journal_lines', 'core.audit_logs'];
    const footprint = async () => Promise.all(tables.map(async (table) => (await t.db.admin.query(
      `SELECT count(*)::text || ':' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') AS v FROM ${table} x WHERE x.org_id = $1`, [own.orgId])).rows[0].v as string));
    const before = await footprint();
    const ar = 'account 1200 is the AR control account of receivables';
    const refusals: [string, () => PromiseLike<{ status: number; body: any }>, number, string, string][] = [
      // a bill or claim line may be an asset, but not AR: the AR balance would carry a bill no aging knows
      ['createBill', () => t.http.post(payablesUrl(own.orgId, 'bills')).set(accountant.auth).send({ vendorId: vendor, billDate: '2026-03-02', lines: [line(a['5200']), line(a['1200'])] }),
        422, 'payables.control_account', `lines[1].accountId: ${ar}`],
      ['updateBill', () => t.http.patch(payablesUrl(own.orgId, `bills/${bill}`)).set(accountant.auth).send({ billDate: '2026-03-02', lines: [line(a['1200'])] }),
        422, 'payables.control_account', `lines[0].accountId: ${ar}`],
      ['createExpenseClaim', () => t.http.post(payablesUrl(own.orgId, 'expense-claims')).set(member.auth).send({ claimDate: '2026-03-03', currency: 'EUR', lines: [claimLine(a['1200'])] }),
        422, 'payables.control_account', `lines[0].accountId: ${ar}`],
      ['updateExpenseClaim', () => t.http.patch(payablesUrl(own.orgId, `expense-claims/${claim}`)).set(member.auth).send({ claimDate: '2026-03-03', currency: 'EUR', lines: [claimLine(a['1200'])] }),
        422, 'payables.control_account', `lines[0].accountId: ${ar}`],
      ['createBillPayment', () => t.http.post(payablesUrl(own.orgId, 'payments')).set(accountant.auth).send({ vendorId: vendor, paymentDate: '2026-03-05', amount: '10.00', bankAccountId: a['1200'] }),
        422, 'payables.control_account', `bankAccountId: ${ar}`],
      ['refundVendorCredit', () => t.http.post(payablesUrl(own.orgId, `payments/${vendorCredit}/refunds`)).set(accountant.auth).send({ amount: '10.00', date: '2026-03-06', bankAccountId: a['1200'] }),
        422, 'payables.control_account', `bankAccountId: ${ar}`],
      ['updatePayablesSettings', () => t.http.put(payablesUrl(own.orgId, 'settings')).set(owner.auth).send({ apAccountId: a['2400'], approvalRules: rules }),
        422, 'payables.control_account', 'apAccountId: account 2400 is the deferred revenue control account of receivables'],
      // a deposit or refund account is an asset that is no control account
      ['createPayment (AR)', () => t.http.post(rUrl(own.orgId, 'payments')).set(accountant.auth).send({ customerId: c, date: '2026-03-05', amount: '10.00', depositAccountId: a['1200'], method: 'bank_transfer' }),
        422, 'receivables.control_account', `depositAccountId: ${ar}`],
      ['createPayment (AP)', () => t.http.post(rUrl(own.orgId, 'payments')).set(accountant.auth).send({ customerId: c, date: '2026-03-05', amount: '10.00', depositAccountId: a['2100'], method: 'bank_transfer' }),
        422, 'receivables.account_not_postable', 'depositAccountId: account 2100 is a liability account, not an asset account'],
      ['refundCustomerCredit', () => t.http.post(rUrl(own.orgId, `payments/${customerCredit}/refunds`)).set(accountant.auth).send({ amount: '10.00', date: '2026-03-06', accountId: a['1200'] }),
        422, 'receivables.control_account', `accountId: ${ar}`],
      // a revenue line on revenue only
      ['createInvoice', () => t.http.post(rUrl(own.orgId, 'invoices')).set(accountant.auth)
        .send({ customerId: c, invoiceDate: '2026-03-02', lines: [{ description: 'Work', quantity: '1', unitPrice: '100.00', revenueAccountId: a['1200'] }] }),
      422, 'receivables.account_not_postable', 'lines[0].revenueAccountId: account 1200 is an asset account, not a revenue account'],
      // AR an asset, deferred revenue a liability that is not AP
      ['setReceivablesSettings (AR)', () => t.http.put(rUrl(own.orgId, 'settings')).set(owner.auth).send({ arAccountId: a['2100'], deferredRevenueAccountId: a['2400'] }),
        422, 'receivables.account_not_postable', 'arAccountId: account 2100 is a liability account, not an asset account'],
      ['setReceivablesSettings (deferred)', () => t.http.put(rUrl(own.orgId, 'settings')).set(owner.auth).send({ arAccountId: a['1200'], deferredRevenueAccountId: a['2100'] }),
        422, 'receivables.control_account', 'deferredRevenueAccountId: account 2100 is the AP control account of payables'],
    ];
    const answers = [];
    for (const [operation, send, , ,] of refusals) {
      const res = await send();
      answers.push([operation, res.status, res.body.error?.code, res.body.error?.message]);
    }
    expect(answers).toEqual(refusals.map(([operation, , status, code, message]) => [operation, status, code, expect.stringContaining(message)]));
    expect(await footprint()).toEqual(before);
  });

  it('the settings name no account a tax code posts its tax to (an archived code too): 422 with the module\'s code, settings unchanged, nothing audited', async () => {
    const own = await orgWithRoles(t, 'Control Tax Ltd');
    await onPlan(t, own.orgId, 'professional');
    const { acc: a } = await setupReceivables(t, own.orgId, own.users.owner, 'EUR'); // VAT20: sales 2200, purchase 1300
    const { owner } = own.users;
    const add = async (code: string, type: string, parent: string) =>
      (await t.http.post(ledgerUrl(own.orgId, 'accounts')).set(owner.auth).send({ code, name: `Account ${code}`, type, parentId: a[parent] }).expect(201)).body.id as string;
    const [ar2, ap2, ap3] = [await add('1210', 'asset', '1000'), await add('2110', 'liability', '2000'), await add('2120', 'liability', '2000')];
    // an archived code: a credit note of an invoice issued with it still posts its tax to its accounts
    const old = (await t.http.post(ledgerUrl(own.orgId, 'tax-codes')).set(owner.auth)
      .send({ code: 'OLD10', name: 'Old 10 %', rate: '10', salesAccountId: ap3, purchaseAccountId: ar2 }).expect(201)).body.id as string;
    await t.http.post(ledgerUrl(own.orgId, `tax-codes/${old}/archive`)).set(owner.auth).expect(200);
    const rules = [{ above: '0', approvals: 0, roles: ['owner'] }];
    const setAr = (arAccountId: string, deferredRevenueAccountId: string) => t.http.put(rUrl(own.orgId, 'settings')).set(owner.auth).send({ arAccountId, deferredRevenueAccountId });
    const setAp = (apAccountId: string) => t.http.put(payablesUrl(own.orgId, 'settings')).set(owner.auth).send({ apAccountId, approvalRules: rules });
    const written = () => tableContents(t.db.admin, { orgId: own.orgId, tables: ['finance.receivables_settings', 'finance.payables_settings', 'finance.tax_codes', 'core.audit_logs'] });
    const before = await written();
    const why = (module: string) => `a control account of ${module} would carry the code's tax, which no document of ${module} explains; give the tax code another account first`;
    const refusals: [string, () => PromiseLike<{ status: number; body: any }>, string, string][] = [
      ['AR', () => setAr(a['1300'], a['2400']), 'receivables.control_account', `arAccountId: account 1300 is the purchase account of tax code VAT20: ${why('receivables')}`],
      ['deferred revenue', () => setAr(a['1200'], a['2200']), 'receivables.control_account', `deferredRevenueAccountId: account 2200 is the sales account of tax code VAT20: ${why('receivables')}`],
      ['AR (archived code)', () => setAr(ar2, a['2400']), 'receivables.control_account', `arAccountId: account 1210 is the purchase account of tax code OLD10 (archived): ${why('receivables')}`],
      ['AP', () => setAp(a['2200']), 'payables.control_account', `apAccountId: account 2200 is the sales account of tax code VAT20: ${why('payables')}`],
      ['AP (archived code)', () => setAp(ap3), 'payables.control_account', `apAccountId: account 2120 is the sales account of tax code OLD10 (archived): ${why('payables')}`],
    ];
    const answers = [];
    for (const [what, send] of refusals) {
      const res = await send();
      answers.push([what, res.status, res.body.error]);
    }
    expect(answers).toEqual(refusals.map(([what, , code, message]) => [what, 422, { code, message }]));
    expect(await written()).toEqual(before);

    // accounts no tax code names pass (the module's own again, another one); once the code moves off, its old account does
    expect((await setAr(a['1200'], a['2400']).expect(200)).body).toMatchObject({ arAccountId: a['1200'], deferredRevenueAccountId: a['2400'] });
    expect((await setAp(ap2).expect(200)).body.apAccountId).toBe(ap2);
    await t.http.patch(ledgerUrl(own.orgId, `tax-codes/${old}`)).set(owner.auth).send({ purchaseAccountId: a['1300'] }).expect(200);
    expect((await setAr(ar2, a['2400']).expect(200)).body.arAccountId).toBe(ar2);
    const { rows } = await t.db.admin.query(`SELECT
        (SELECT ar_account_id FROM finance.receivables_settings WHERE org_id = $1) AS ar, (SELECT ap_account_id FROM finance.payables_settings WHERE org_id = $1) AS ap,
        (SELECT count(*) FROM core.audit_logs WHERE org_id = $1 AND action IN ('receivables.settings_updated', 'payables.settings_updated'))::int AS audited`, [own.orgId]);
    expect(rows).toEqual([{ ar: ar2, ap: ap2, audited: 4 }]); // setupReceivables' one and the three above
  });

  it('AR: a change waits for a posting in flight on the old account, then refuses; a flow that starts during a change posts to the new account', async () => {
    const own = await orgWithRoles(t, 'Control Race Ltd');
    await onPlan(t, own.orgId, 'professional');
    const { acc: a, customer: c } = await setupReceivables(t, own.orgId, own.users.owner, 'EUR');
    const ar2 = (await t.http.post(ledgerUrl(own.orgId, 'accounts')).set(own.users.owner.auth).send({ code: '1210', name: 'AR 2', type: 'asset', parentId: a['1000'] }).expect(201)).body.id as string;

    // a posting to the AR account in flight (as an invoice's issue holds it: the posting lock shared until commit)
    const { c: poster } = await openTenantTransaction(t.db.apiUrl, { sub: own.users.accountant.id, org_id: own.orgId }, clients);
    await poster.query(`SELECT finance.post_journal_entry($1::jsonb)`, [JSON.stringify({ date: '2026-03-02', memo: 'in flight',
      lines: [{ accountId: a['1200'], debit: '70' }, { accountId: a['4100'], credit: '70' }] })]);
    const change = t.http.put(rUrl(own.orgId, 'settings')).set(own.users.owner.auth).send({ arAccountId: ar2, deferredRevenueAccountId: a['2400'] }).then((r) => r);
    await advisoryWait(); // the change waits for the posting
    await poster.query('COMMIT');
    const refused = await change;
    expect(refused.status).toBe(409);
    expect(refused.body.error).toMatchObject({ code: 'receivables.control_account_in_use', message: expect.stringContaining('70.00 EUR') });
    expect((await t.http.get(rUrl(own.orgId, 'settings')).set(own.users.owner.auth).expect(200)).body.arAccountId).toBe(a['1200']);

    // a change in flight (the posting lock exclusive, the new account written, not yet committed): an invoice issued
    // meanwhile waits for it and posts its receivable to the new account, not to the one it would have read before
    const draft = await t.http.post(rUrl(own.orgId, 'invoices')).set(own.users.owner.auth)
      .send({ customerId: c, invoiceDate: '2026-03-03', lines: [{ description: 'Work', quantity: '1', unitPrice: '40.00', revenueAccountId: a['4100'] }] }).expect(201);
    const changer = await connect(t.db.url);
    await changer.query('BEGIN');
    await changer.query(`SELECT core.xact_lock(('finance.posting:' || $1::uuid::text))`, [own.orgId]);
    await changer.query(`UPDATE finance.receivables_settings SET ar_account_id = $2 WHERE org_id = $1`, [own.orgId, ar2]);
    const issuing = t.http.post(rUrl(own.orgId, `invoices/${draft.body.id}/issue`)).set(own.users.owner.auth).send({}).then((r) => r);
    await advisoryWait();
    await changer.query('COMMIT');
    const issued = await issuing;
    expect(issued.status).toBe(200);
    const { rows } = await t.db.admin.query(`SELECT l.account_id, l.debit::text FROM finance.journal_lines l
      JOIN finance.invoices i ON i.org_id = l.org_id AND i.entry_id = l.entry_id WHERE i.id = $1 AND l.debit > 0`, [draft.body.id]);
    expect(rows).toEqual([{ account_id: ar2, debit: '40.0000' }]);
  });

  /**
   * Without payables settings the default AP account (2100) is an ordinary liability account until payables first posts
   * to it (PayablesService.controlAccounts): a tax code or receivables' settings may name it meanwhile. That first posting
   * makes it AP, so it is refused while one does: the code's tax or the deferred revenue would sit on AP apart from
   * the aging. A submission that posts nothing (approval needed) is not.
   */
  describe('the first posting on the default AP account', () => {
    const refusal = (what: string) => ({ code: 'payables.control_account', message: `apAccountId (not set, the default): account 2100 is ${what}; `
      + 'payables\' first posting makes its default AP account 2100 a control account: set apAccountId in the payables settings to another account, or free 2100 first' });
    const byTaxCode = refusal('the purchase account of tax code IN10: a control account of payables would carry the code\'s tax, which no document of payables explains; '
      + 'give the tax code another account first');
    const byReceivables = refusal('the deferred revenue control account of receivables: it is posted only through receivables\' invoices, credit notes and revenue recognition, '
      + 'so that receivables and the ledger agree');
    /** What a posting of payables writes (org's rows). */
    const written = (org: string) => tableContents(t.db.admin, { orgId: org, tables: ['finance.journal_entries', 'finance.journal_lines', 'finance.bills', 'finance.bill_decisions',
      'finance.bill_payments', 'finance.bill_allocations', 'finance.payables_settings', 'finance.receivables_settings', 'finance.tax_codes', 'core.audit_logs', 'core.outbox'] });
    const aging = async (org: string, who: RoleUsers) => {
      const body = (await t.http.get(payablesUrl(org, 'aging?asOf=2026-03-31')).set(who.owner.auth).expect(200)).body;
      return [body.total, body.controlAccountBalance];
    };
    async function books(name: string) {
      const own = await orgWithRoles(t, name);
      await onPlan(t, own.orgId, 'professional');
      const { acc: a, vat } = await setupReceivables(t, own.orgId, own.users.owner, 'EUR');
      const vendor = await createVendor(t, own.orgId, own.users.accountant);
      const P = (path: string) => payablesUrl(own.orgId, path);
      const draft = async (unitPrice: string, taxCodeId?: string) => (await t.http.post(P('bills')).set(own.users.accountant.auth)
        .send({ vendorId: vendor, billDate: '2026-03-01', lines: [{ accountId: a['5200'], unitPrice, ...(taxCodeId ? { taxCodeId } : {}) }] }).expect(201)).body.id as string;
      return { ...own, a, vat, vendor, P, draft };
    }

    it('a tax code names it: a bill\'s submission and approval, a claim\'s approval and a payment are refused (422, nothing written); once the code moves off, they post and AP equals the aging', async () => {
      const { orgId: org, users: u, a, vendor, P, draft } = await books('Default AP Tax Ltd');
      // payables has posted nothing: 2100 is no control account yet, a tax code may name it
      const in10 = (await t.http.post(ledgerUrl(org, 'tax-codes')).set(u.owner.auth)
        .send({ code: 'IN10', name: 'Input 10 %', rate: '10', salesAccountId: a['2200'], purchaseAccountId: a['2100'] }).expect(201)).body.id as string;
      const small = await draft('100.00', in10); // needs no approval: posted at its submission
      const large = await draft('2000.00', in10); // needs one (default rules): posted at its approval
      expect((await t.http.post(P(`bills/${large}/submit`)).set(u.accountant.auth).expect(200)).body.status).toBe('submitted');
      // a claim always needs an approval: its submission posts nothing either
      const claim = (await t.http.post(P('expense-claims')).set(u.member.auth)
        .send({ claimDate: '2026-03-01', currency: 'EUR', lines: [{ accountId: a['5200'], amount: '42.50', currency: 'EUR', date: '2026-03-01' }] }).expect(201)).body.id as string;
      expect((await t.http.post(P(`expense-claims/${claim}/submit`)).set(u.member.auth).expect(200)).body.status).toBe('submitted');

      const before = await written(org);
      const answers = [];
      for (const send of [() => t.http.post(P(`bills/${small}/submit`)).set(u.accountant.auth),
        () => t.http.post(P(`bills/${large}/approve`)).set(u.owner.auth).send({}),
        () => t.http.post(P(`expense-claims/${claim}/approve`)).set(u.accountant.auth).send({}),
        () => t.http.post(P('payments')).set(u.accountant.auth).send({ vendorId: vendor, paymentDate: '2026-03-02', amount: '50.00', bankAccountId: a['1100'] })]) {
        const res = await send();
        answers.push([res.status, res.body.error]);
      }
      expect(answers).toEqual([[422, byTaxCode], [422, byTaxCode], [422, byTaxCode], [422, byTaxCode]]);
      expect(await written(org)).toEqual(before);
      expect(await aging(org, u)).toEqual(['0.00', '0.00']);

      // the tax code moved off 2100: the bills post, their tax on 1300, and the aging equals AP
      await t.http.patch(ledgerUrl(org, `tax-codes/${in10}`)).set(u.owner.auth).send({ purchaseAccountId: a['1300'] }).expect(200);
      expect((await t.http.post(P(`bills/${small}/submit`)).set(u.accountant.auth).expect(200)).body.status).toBe('posted');
      expect((await t.http.post(P(`bills/${large}/approve`)).set(u.owner.auth).send({}).expect(200)).body.status).toBe('posted');
      expect((await t.http.post(P(`expense-claims/${claim}/approve`)).set(u.accountant.auth).send({}).expect(200)).body.status).toBe('posted');
      expect(await aging(org, u)).toEqual(['2352.50', '2352.50']);
      const { rows } = await t.db.admin.query(`SELECT a.code, sum(l.base_debit - l.base_credit)::numeric(20, 2)::text AS balance FROM finance.journal_lines l
        JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id WHERE l.org_id = $1 GROUP BY a.code ORDER BY a.code`, [org]);
      expect(rows).toEqual([{ code: '1300', balance: '210.00' }, { code: '2100', balance: '-2352.50' }, { code: '5200', balance: '2142.50' }]);
      // and 2100 is AP now: a tax code naming it is refused (LedgerService.taxAccounts)
      expect((await t.http.patch(ledgerUrl(org, `tax-codes/${in10}`)).set(u.owner.auth).send({ purchaseAccountId: a['2100'] }).expect(422)).body.error.code).toBe('ledger.control_account');
    });

    it('receivables\' deferred revenue is it: the first bill is refused (422, nothing written); once receivables names another, it posts', async () => {
      const { orgId: org, users: u, a, P, draft } = await books('Default AP Deferred Ltd');
      // no control account of payables yet: receivables may name 2100
      await t.http.put(rUrl(org, 'settings')).set(u.owner.auth).send({ arAccountId: a['1200'], deferredRevenueAccountId: a['2100'] }).expect(200);
      const bill = await draft('100.00');
      const before = await written(org);
      const refused = await t.http.post(P(`bills/${bill}/submit`)).set(u.accountant.auth);
      expect([refused.status, refused.body.error]).toEqual([422, byReceivables]);
      expect(await written(org)).toEqual(before);

      await t.http.put(rUrl(org, 'settings')).set(u.owner.auth).send({ arAccountId: a['1200'], deferredRevenueAccountId: a['2400'] }).expect(200);
      expect((await t.http.post(P(`bills/${bill}/submit`)).set(u.accountant.auth).expect(200)).body.status).toBe('posted');
      expect(await aging(org, u)).toEqual(['100.00', '100.00']);
    });

    it('a tax code\'s change waits for the first posting in flight (the posting lock drained), then sees 2100 is AP: refused', async () => {
      const { orgId: org, users: u, a, vat, P, draft } = await books('Default AP Race Ltd');
      const bill = await draft('100.00', vat); // VAT20: its tax on 1300
      // the bill's posting paused after its check (the posting lock held shared): the row of its line's tax code locked,
      // so inserting the journal lines (their foreign key to it) waits
      const holder = await connect(t.db.url);
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM finance.tax_codes WHERE org_id = $1 AND id = $2 FOR UPDATE`, [org, vat]);
      const { rows: [{ pid }] } = await holder.query('SELECT pg_backend_pid() AS pid');
      const submitting = t.http.post(P(`bills/${bill}/submit`)).set(u.accountant.auth).then((r) => r);
      await until('the bill waits on the locked tax code', async () => (await t.db.admin.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND $1::int = ANY(pg_blocking_pids(pid))`, [pid])).rows[0].n > 0);
      const creating = t.http.post(ledgerUrl(org, 'tax-codes')).set(u.owner.auth)
        .send({ code: 'IN10', name: 'Input 10 %', rate: '10', salesAccountId: a['2200'], purchaseAccountId: a['2100'] }).then((r) => r);
      await advisoryWait(); // its check waits for the posting
      await holder.query('COMMIT');
      expect((await submitting).body.status).toBe('posted');
      const created = await creating;
      expect([created.status, created.body.error?.code]).toEqual([422, 'ledger.control_account']);
      expect(created.body.error.message).toMatch(/^purchaseAccountId: account 2100 is the AP control account of payables/);
      expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.tax_codes WHERE org_id = $1 AND code = 'IN10'`, [org])).rows[0].n).toBe(0);
      expect(await aging(org, u)).toEqual(['120.00', '120.00']);
    });
  });
});
