import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { advisoryLockWaiters } from '../support/database.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerUrl } from './ledger-support.js';
import { issueInvoice, rUrl, setupReceivables } from '../receivables/receivables-support.js';
import { createVendor, payablesUrl } from '../payables/payables-support.js';

const AR = (line: number, code: string) => `lines[${line}]: account ${code} is the AR control account of receivables: it is posted only through receivables' `
  + 'invoices, credit notes, customer payments, allocations and refunds, so that receivables and the ledger agree';
const AP = (line: number, code: string) => `lines[${line}]: account ${code} is the AP control account of payables: it is posted only through payables' `
  + 'bills, expense claims, bill payments, allocations and vendor refunds, so that payables and the ledger agree';

/**
 * The control accounts of receivables (AR, deferred revenue) and payables (AP) are posted only through their
 * documents: a manual journal entry on one (POST journal-entries, its batch route) is refused with
 * ledger.control_account, so that the AR and AP aging keep equal to the accounts. The documents, the revaluation and
 * the year-end close post through the service's own path and are not refused. The accounts are read from the settings
 * under the posting lock held shared, as the documents read them: a settings change in flight decides.
 */
describe('ledger: a manual journal entry posts to no control account of receivables or payables', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let customer: string;
  const clients: pg.Client[] = [];

  const post = (body: object, org = orgId, who = users) => t.http.post(ledgerUrl(org, 'journal-entries')).set(who.accountant.auth).send(body);
  const batch = (mode: string, entries: object[]) => t.http.post(ledgerUrl(orgId, `journal-entries/batch?mode=${mode}`)).set(users.accountant.auth).send({ entries });
  const entry = (date: string, memo: string, debit: string, credit: string, amount: string) =>
    ({ date, memo, lines: [{ accountId: debit, debit: amount }, { accountId: credit, credit: amount }] });
  /** What a posting writes: entries, lines, their audit rows and events. */
  const written = async (org = orgId) => (await t.db.admin.query(`SELECT
      (SELECT count(*) FROM finance.journal_entries WHERE org_id = $1)::int AS entries,
      (SELECT count(*) FROM finance.journal_lines WHERE org_id = $1)::int AS lines,
      (SELECT count(*) FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'ledger.%')::int AS audits,
      (SELECT count(*) FROM core.outbox WHERE org_id = $1)::int AS events`, [org])).rows[0];
  const balance = async (accountId: string, org = orgId) =>
    (await t.db.admin.query(`SELECT coalesce(sum(base_debit - base_credit), 0)::numeric(20, 2)::text AS b FROM finance.journal_lines WHERE org_id = $1 AND account_id = $2`, [org, accountId])).rows[0].b as string;

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Control Ltd'));
    await onPlan(t, orgId, 'professional');
    ({ acc, customer } = await setupReceivables(t, orgId, users.owner, 'EUR'));
    // payables posts to the default AP account (2100, no payables settings): a bill posted at submission
    const vendor = await createVendor(t, orgId, users.accountant);
    const bill = await t.http.post(payablesUrl(orgId, 'bills')).set(users.accountant.auth).send({ vendorId: vendor, billDate: '2026-03-01', lines: [{ accountId: acc['5200'], unitPrice: '300.00' }] }).expect(201);
    expect((await t.http.post(payablesUrl(orgId, `bills/${bill.body.id}/submit`)).set(users.accountant.auth).expect(200)).body.status).toBe('posted');
    await issueInvoice(t, orgId, users.owner, { customerId: customer, invoiceDate: '2026-03-02', lines: [{ description: 'Work', quantity: '1', unitPrice: '100.00', revenueAccountId: acc['4100'] }] });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    await t.close();
  });

  it('an entry on AR, AP or deferred revenue (or whose tax posts to one): 422 naming the line, the account and the module; nothing written; the aging still equals the account', async () => {
    // a tax code whose tax account is the AR account: a taxed line's tax line would post to it. The API refuses such a
    // code (test/ledger/vat-foreign-currency.test.ts); one made before it did, or whose account a settings change made
    // AR later, still exists (setup only)
    const odd = (await t.db.admin.query(`INSERT INTO finance.tax_codes (org_id, code, name, rate, sales_account_id, purchase_account_id)
      VALUES ($1, 'ODD', 'Odd', 10, $2, $3) RETURNING id`, [orgId, acc['1200'], acc['1300']])).rows[0].id as string;
    const before = await written();
    const ar = await post(entry('2026-03-05', 'AR by hand', acc['1200'], acc['4100'], '50.00')).expect(422);
    expect(ar.body.error).toEqual({ code: 'ledger.control_account', message: AR(0, '1200') });
    const ap = await post(entry('2026-03-05', 'AP by hand', acc['5200'], acc['2100'], '70.00')).set('Idempotency-Key', 'ap-by-hand').expect(422);
    expect(ap.body.error).toEqual({ code: 'ledger.control_account', message: AP(1, '2100') });
    const deferred = await post(entry('2026-03-05', 'deferred by hand', acc['1100'], acc['2400'], '10.00')).expect(422);
    expect(deferred.body.error).toEqual({
      code: 'ledger.control_account',
      message: 'lines[1]: account 2400 is the deferred revenue control account of receivables: it is posted only through receivables\' invoices, credit notes and '
        + 'revenue recognition, so that receivables and the ledger agree',
    });
    const taxed = await post({ date: '2026-03-05', lines: [{ accountId: acc['1100'], debit: '110.00' }, { accountId: acc['4100'], credit: '110.00', taxCodeId: odd }] }).expect(422);
    expect(taxed.body.error).toEqual({ code: 'ledger.control_account', message: AR(1, '1200').replace('lines[1]: account 1200 is', 'lines[1]: its tax posts to account 1200, which is') });
    expect(await written()).toEqual(before);

    // the aging and the control accounts still agree
    const arAging = (await t.http.get(rUrl(orgId, 'aging?asOf=2026-03-31')).set(users.owner.auth).expect(200)).body;
    expect([arAging.total, await balance(acc['1200'])]).toEqual(['100.00', '100.00']);
    const apAging = (await t.http.get(payablesUrl(orgId, 'aging?asOf=2026-03-31')).set(users.owner.auth).expect(200)).body;
    expect([apAging.total, apAging.controlAccountBalance]).toEqual(['300.00', '300.00']);
    // an entry on other accounts posts as before
    await post(entry('2026-03-05', 'capital', acc['1100'], acc['3100'], '1000.00')).expect(201);
  });

  it('a batch: independent rejects that entry by index and posts the others; all or nothing writes nothing', async () => {
    const entries = [entry('2026-03-06', 'rent', acc['5200'], acc['1100'], '20.00'), entry('2026-03-06', 'AP by hand', acc['5200'], acc['2100'], '70.00'),
      entry('2026-03-06', 'fees', acc['5400'], acc['1100'], '5.00')];
    const before = await written();
    const all = await batch('all_or_nothing', entries).expect(422);
    expect(all.body.error).toEqual({ code: 'ledger.control_account', message: `entries[1]: ${AP(1, '2100')}`, details: { index: 1 } });
    expect(await written()).toEqual(before);

    const independent = await batch('independent', entries).expect(201);
    expect(independent.body).toMatchObject({ mode: 'independent', posted: 2, replayed: 0, rejected: 1 });
    expect(independent.body.results.map((r: any) => [r.index, r.status, r.error ?? null])).toEqual([
      [0, 'posted', null], [1, 'rejected', { code: 'ledger.control_account', message: AP(1, '2100') }], [2, 'posted', null]]);
    const { rows } = await t.db.admin.query(`SELECT memo FROM finance.journal_entries WHERE org_id = $1 AND id = ANY($2::uuid[]) ORDER BY memo`,
      [orgId, independent.body.results.filter((r: any) => r.id).map((r: any) => r.id)]);
    expect(rows.map((r) => r.memo)).toEqual(['fees', 'rent']);
    expect(await balance(acc['2100'])).toBe('-300.00'); // the bill's only
  });

  it('the documents still post to their control accounts, and the revaluation revalues them', async () => {
    const dollars = (await t.http.post(rUrl(orgId, 'customers')).set(users.owner.auth).send({ name: 'Dollar Inc', defaultCurrency: 'USD' }).expect(201)).body.id;
    await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(users.owner.auth)
      .send({ rates: [{ currency: 'USD', date: '2026-04-01', rate: '0.90' }, { currency: 'USD', date: '2026-04-30', rate: '0.80' }] }).expect(201);
    const inv = await issueInvoice(t, orgId, users.owner, { customerId: dollars, invoiceDate: '2026-04-02', lines: [{ description: 'Work', quantity: '1', unitPrice: '100.00', revenueAccountId: acc['4100'] }] });
    const lines = (await t.http.get(ledgerUrl(orgId, `journal-entries/${inv.entryId}`)).set(users.owner.auth).expect(200)).body.lines;
    expect(lines.map((l: any) => [l.accountCode, l.currency, l.debit, l.credit])).toEqual([['1200', 'USD', '100.00', '0.00'], ['4100', 'USD', '0.00', '100.00']]);
    const pay = await t.http.post(rUrl(orgId, 'payments')).set(users.owner.auth).send({ customerId: customer, date: '2026-04-03', amount: '40.00', depositAccountId: acc['1100'], method: 'cash' }).expect(201);
    expect(pay.body.entryId).toEqual(expect.any(String));
    const revalued = await t.http.post(ledgerUrl(orgId, 'fx-revaluations')).set(users.accountant.auth).send({ date: '2026-04-30' }).expect(201);
    expect(revalued.body.entry.lines.map((l: any) => [l.accountCode, l.baseDebit, l.baseCredit])).toEqual([['1200', '0.00', '10.00'], ['5510', '10.00', '0.00']]);
  });

  it('an account that stops being a control account takes manual entries again, one that becomes it refuses them; a key posted before replays', async () => {
    const other = await orgWithRoles(t, 'Moving Control Ltd');
    await onPlan(t, other.orgId, 'professional');
    const { acc: a } = await setupReceivables(t, other.orgId, other.users.owner, 'EUR');
    const account = async (code: string, type: string, parent: string) =>
      (await t.http.post(ledgerUrl(other.orgId, 'accounts')).set(other.users.owner.auth).send({ code, name: `Account ${code}`, type, parentId: a[parent] }).expect(201)).body.id as string;
    const ar2 = await account('1210', 'asset', '1000');
    const ap2 = await account('2110', 'liability', '2000');
    const postOther = (body: object) => post(body, other.orgId, other.users);

    // before payables posts anything, the default AP account is an ordinary liability account
    const loan = await postOther(entry('2026-03-02', 'supplier loan', a['1100'], a['2100'], '25.00')).expect(201);
    await t.http.post(ledgerUrl(other.orgId, `journal-entries/${loan.body.id}/reverse`)).set(other.users.accountant.auth).send({}).expect(201);
    // a key posted on 1210 while it is no control account
    const keyed = entry('2026-03-02', 'keyed', ar2, a['4100'], '15.00');
    const first = await postOther(keyed).set('Idempotency-Key', 'before-the-change').expect(201);
    // an account carrying a balance becomes no control account (the aging could never explain it): reversed first
    const carrying = await t.http.put(rUrl(other.orgId, 'settings')).set(other.users.owner.auth).send({ arAccountId: ar2, deferredRevenueAccountId: a['2400'] }).expect(422);
    expect(carrying.body.error.code).toBe('receivables.account_carries_balance');
    await t.http.post(ledgerUrl(other.orgId, `journal-entries/${first.body.id}/reverse`)).set(other.users.accountant.auth).send({}).expect(201);

    await t.http.put(rUrl(other.orgId, 'settings')).set(other.users.owner.auth).send({ arAccountId: ar2, deferredRevenueAccountId: a['2400'] }).expect(200);
    await t.http.put(payablesUrl(other.orgId, 'settings')).set(other.users.owner.auth).send({ apAccountId: ap2, approvalRules: [{ above: '0', approvals: 0, roles: ['owner'] }] }).expect(200);
    const before = await written(other.orgId);
    expect((await postOther(entry('2026-03-03', 'new AR', ar2, a['4100'], '5.00')).expect(422)).body.error).toEqual({ code: 'ledger.control_account', message: AR(0, '1210') });
    expect((await postOther(entry('2026-03-03', 'new AP', a['5200'], ap2, '5.00')).expect(422)).body.error).toEqual({ code: 'ledger.control_account', message: AP(1, '2110') });
    expect(await written(other.orgId)).toEqual(before);
    // the retry of the entry posted before is its replay: the key answers first
    expect((await postOther(keyed).set('Idempotency-Key', 'before-the-change').expect(200)).body.id).toBe(first.body.id);
    // the old ones are ordinary accounts again
    await postOther(entry('2026-03-03', 'old AR', a['1200'], a['4100'], '5.00')).expect(201);
    await postOther(entry('2026-03-03', 'old AP', a['5200'], a['2100'], '5.00')).expect(201);
  });

  it('a settings change in flight decides: the manual entry waits for it and is checked against the accounts it commits', async () => {
    const other = await orgWithRoles(t, 'Control Race Ltd');
    await onPlan(t, other.orgId, 'professional');
    const { acc: a } = await setupReceivables(t, other.orgId, other.users.owner, 'EUR');
    const ar2 = (await t.http.post(ledgerUrl(other.orgId, 'accounts')).set(other.users.owner.auth).send({ code: '1210', name: 'AR 2', type: 'asset', parentId: a['1000'] }).expect(201)).body.id as string;
    const postOther = (body: object) => post(body, other.orgId, other.users).then((r) => r);
    /** A settings change that makes `arAccountId` the AR account: the posting lock exclusive, the row written, not committed. */
    const changeInFlight = async (arAccountId: string) => {
      const c = new pg.Client({ connectionString: t.db.url });
      await c.connect();
      clients.push(c);
      await c.query('BEGIN');
      await c.query(`SELECT core.xact_lock(('finance.posting:' || $1::uuid::text))`, [other.orgId]);
      await c.query(`UPDATE finance.receivables_settings SET ar_account_id = $2 WHERE org_id = $1`, [other.orgId, arAccountId]);
      return c;
    };

    // 1210 becomes the AR account while an entry on it is in flight: the entry waits, then is refused
    let change = await changeInFlight(ar2);
    const onNew = postOther(entry('2026-03-03', 'race', ar2, a['4100'], '5.00'));
    await advisoryLockWaiters(t.db.admin);
    await change.query('COMMIT');
    const refused = await onNew;
    expect([refused.status, refused.body.error]).toEqual([422, { code: 'ledger.control_account', message: AR(0, '1210') }]);
    expect(await balance(ar2, other.orgId)).toBe('0.00');

    // 1200 becomes the AR account again while an entry on 1210 is in flight: the entry waits, then posts
    change = await changeInFlight(a['1200']);
    const onOld = postOther(entry('2026-03-03', 'race again', ar2, a['4100'], '5.00'));
    await advisoryLockWaiters(t.db.admin);
    await change.query('COMMIT');
    expect((await onOld).status).toBe(201);
    expect(await balance(ar2, other.orgId)).toBe('5.00');
  });
});
