import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type RoleUsers, type TestUser } from '../support/factories.js';
import { until } from '../support/throwaway-servers.js';
import { ledgerUrl } from '../ledger/ledger-support.js';
import { rUrl, setupReceivables } from './receivables-support.js';

/**
 * A customer's credit limit, checked when an invoice is issued (base EUR; the limit is in the base currency). What the
 * customer owes once issued: its open invoices less its customer credit, plus the invoice.
 *  - Limit 1,000.00: 600.00 issues (under), 400.00 issues (at: 1,000.00), 0.01 more is a 422 naming the limit and
 *    the resulting balance 1,000.01, nothing written. A payment of 300.00 left unallocated (customer credit) brings
 *    what it owes to 700.00: the 0.01 issues then.
 *  - Limit 100.00, invoice 150.00: an accountant asking for overrideCreditLimit is a 403 (nothing written), without it a
 *    422; an admin with it issues, the audit row carrying the limit and the balances it was overridden at. An API key
 *    with receivables:write asking for it is a 403 too (role service, but a credit decision is a person's).
 *  - No limit (null): unlimited.
 *  - Limit 1,000.00, two invoices of 600.00 issued at once, each under the limit alone: one is issued, the other a 422.
 *    Both are held at the series' counter row (locked by the test) until both are in flight, so without the customer's
 *    lock both would have read 0.00 owed and both been issued.
 */
describe('receivables: the credit limit at issue', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Credit Ltd'));
    await onPlan(t, orgId, 'professional');
    ({ acc } = await setupReceivables(t, orgId, users.owner, 'EUR'));
  });
  afterAll(() => t.close());

  const customer = async (name: string, creditLimit?: string) =>
    (await t.http.post(rUrl(orgId, 'customers')).set(users.owner.auth).send({ name, paymentTermsDays: 30, ...(creditLimit ? { creditLimit } : {}) }).expect(201)).body.id as string;
  const draft = async (customerId: string, unitPrice: string, series = 'INV') => (await t.http.post(rUrl(orgId, 'invoices')).set(users.accountant.auth)
    .send({ customerId, invoiceDate: '2026-03-02', series, lines: [{ description: 'Work', quantity: '1', unitPrice, revenueAccountId: acc['4100'] }] }).expect(201)).body.id as string;
  const issue = (id: string, who: TestUser, body: object = {}) => t.http.post(rUrl(orgId, `invoices/${id}/issue`)).set(who.auth).send(body);
  /** What an issue writes, for one invoice: its row, and the entries, events, audit rows and numbers of the organization. */
  const written = async (invoiceId: string) => (await t.db.admin.query(`SELECT
      (SELECT status || '/' || coalesce(number, '-') FROM finance.invoices WHERE id = $2) AS invoice,
      (SELECT count(*) FROM finance.journal_entries WHERE org_id = $1)::int AS entries,
      (SELECT count(*) FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'invoice.issued')::int AS events,
      (SELECT count(*) FROM core.audit_logs WHERE org_id = $1 AND action = 'receivables.invoice_issued')::int AS audits,
      (SELECT coalesce(sum(last_number), 0) FROM finance.document_numbers WHERE org_id = $1)::int AS numbers`, [orgId, invoiceId])).rows[0];
  const owed = async (customerId: string) => (await t.db.admin.query(
    `SELECT coalesce(sum(open_base), 0)::numeric(20, 2)::text AS owed FROM finance.receivable_open_amounts WHERE org_id = $1 AND customer_id = $2`, [orgId, customerId])).rows[0].owed;

  it('issues under and at the limit; above it is a 422 naming the limit and the resulting balance, nothing written; customer credit counts', async () => {
    const c = await customer('Limited Ltd', '1000.00');
    await issue(await draft(c, '600.00'), users.accountant).expect(200);
    await issue(await draft(c, '400.00'), users.accountant).expect(200);
    expect(await owed(c)).toBe('1000.00');

    const over = await draft(c, '0.01');
    const before = await written(over);
    const refused = await issue(over, users.accountant).expect(422);
    expect(refused.body.error).toEqual({
      code: 'receivables.credit_limit_exceeded',
      message: 'issuing this invoice (EUR 0.01) would take what customer Limited Ltd owes to EUR 1000.01, above its credit limit of EUR 1000.00 '
        + '(an owner or admin may issue it with overrideCreditLimit: true)',
      details: { creditLimit: '1000.00', balance: '1000.00', resultingBalance: '1000.01', invoiceAmount: '0.01', currency: 'EUR' },
    });
    expect(await written(over)).toEqual(before);
    expect(before.invoice).toBe('draft/-');

    // customer credit (a payment not allocated) lowers what it owes: 700.00 + 0.01 is within the limit
    await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth)
      .send({ customerId: c, date: '2026-03-03', amount: '300.00', depositAccountId: acc['1100'], method: 'bank_transfer' }).expect(201);
    expect(await owed(c)).toBe('700.00');
    expect((await issue(over, users.accountant).expect(200)).body).toMatchObject({ status: 'issued', total: '0.01' });
    expect(await owed(c)).toBe('700.01');
  });

  it('overrideCreditLimit: a 403 for an accountant, nothing written; an admin issues above the limit, recorded in the audit row', async () => {
    const c = await customer('Stretched Ltd', '100.00');
    const id = await draft(c, '150.00');
    const before = await written(id);
    const forbidden = await issue(id, users.accountant, { overrideCreditLimit: true }).expect(403);
    expect(forbidden.body.error).toEqual({ code: 'forbidden.role', message: 'overrideCreditLimit needs the role owner or admin; you are accountant' });
    expect(await written(id)).toEqual(before);
    expect((await issue(id, users.accountant).expect(422)).body.error.details).toMatchObject({ creditLimit: '100.00', resultingBalance: '150.00' });
    expect(await written(id)).toEqual(before);

    const issued = (await issue(id, users.admin, { overrideCreditLimit: true }).expect(200)).body;
    expect(issued).toMatchObject({ status: 'issued', total: '150.00', openAmount: '150.00' });
    const { rows: audit } = await t.db.admin.query(`SELECT actor_id, after FROM core.audit_logs WHERE org_id = $1 AND action = 'receivables.invoice_issued' AND entity_id = $2`, [orgId, id]);
    expect(audit).toEqual([{
      actor_id: users.admin.id,
      after: { status: 'issued', entryId: issued.entryId, rate: '1', number: issued.number, creditLimitOverride: { creditLimit: '100.00', balance: '0.00', resultingBalance: '150.00' } },
    }]);
    expect(await owed(c)).toBe('150.00');
  });

  it('overrideCreditLimit: a 403 for an API key with receivables:write, nothing written (a credit decision is made by a person)', async () => {
    const c = await customer('Keyed Ltd', '100.00');
    const id = await draft(c, '150.00');
    await onPlan(t, orgId, 'enterprise'); // API keys are an enterprise feature; nothing else here depends on the plan
    const key = (await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(users.owner.auth).send({ name: 'invoicing', scopes: ['receivables:write', 'receivables:read'] }).expect(201)).body;
    const keyAuth = { Authorization: `Bearer ${key.secret}` };
    const before = await written(id);
    const forbidden = await t.http.post(rUrl(orgId, `invoices/${id}/issue`)).set(keyAuth).send({ overrideCreditLimit: true }).expect(403);
    expect(forbidden.body.error).toEqual({
      code: 'forbidden.role', message: 'overrideCreditLimit needs a person with the role owner or admin: an API key or a service may not override a credit limit',
    });
    expect(await written(id)).toEqual(before);
    expect(before.invoice).toBe('draft/-');
    expect(await owed(c)).toBe('0.00');
    // without the override the key gets the 422 every caller gets above the limit
    expect((await t.http.post(rUrl(orgId, `invoices/${id}/issue`)).set(keyAuth).send({}).expect(422)).body.error.code).toBe('receivables.credit_limit_exceeded');
    const { rows: audit } = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'receivables.invoice_issued' AND entity_id = $2`, [orgId, id]);
    expect(audit).toEqual([{ n: 0 }]);
  });

  it('the limit values an invoice at the larger of the client\'s rate and the table\'s: a rate typed low does not take it under the limit', async () => {
    await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(users.owner.auth).send({ rates: [{ currency: 'USD', date: '2026-03-01', rate: '0.90' }] }).expect(201);
    const c = await customer('Dollar Ltd', '1000.00');
    const id = (await t.http.post(rUrl(orgId, 'invoices')).set(users.accountant.auth).send({ customerId: c, invoiceDate: '2026-03-02', currency: 'USD',
      lines: [{ description: 'Work', quantity: '1', unitPrice: '10000.00', revenueAccountId: acc['4100'] }] }).expect(201)).body.id as string;
    const before = await written(id);
    // USD 10,000.00 at "0.0001" is EUR 1.00, at the table's 0.90 EUR 9,000.00: above the limit, no override asked for
    // (rateOverride: a rate that far from the table's is else 422 ledger.rate_out_of_range before the limit is checked)
    const refused = await issue(id, users.accountant, { rate: '0.0001', rateOverride: true }).expect(422);
    expect(refused.body.error).toMatchObject({ code: 'receivables.credit_limit_exceeded',
      details: { creditLimit: '1000.00', balance: '0.00', resultingBalance: '9000.00', invoiceAmount: '9000.00', currency: 'EUR' } });
    expect(await written(id)).toEqual(before);
    expect(await owed(c)).toBe('0.00');
    // a client rate above the table's counts as given: USD 1,050.00 at 1.00 is EUR 1,050.00 (945.00 at 0.90)
    const dear = (await t.http.post(rUrl(orgId, 'invoices')).set(users.accountant.auth).send({ customerId: c, invoiceDate: '2026-03-02', currency: 'USD',
      lines: [{ description: 'Work', quantity: '1', unitPrice: '1050.00', revenueAccountId: acc['4100'] }] }).expect(201)).body.id as string;
    expect((await issue(dear, users.accountant, { rate: '1.00' }).expect(422)).body.error.details).toMatchObject({ invoiceAmount: '1050.00' });
    // within the limit at both, it posts at the client's rate
    expect((await issue(dear, users.accountant, { rate: '0.95' }).expect(200)).body).toMatchObject({ status: 'issued', rate: '0.9500000000' });
    expect(await owed(c)).toBe('997.50');
  });

  it('a customer without a limit (null) is unlimited', async () => {
    const c = await customer('Unlimited Ltd');
    expect((await t.http.get(rUrl(orgId, `customers/${c}`)).set(users.viewer.auth).expect(200)).body.creditLimit).toBeNull();
    await issue(await draft(c, '900000.00'), users.accountant).expect(200);
    await issue(await draft(c, '900000.00'), users.accountant).expect(200);
    expect(await owed(c)).toBe('1800000.00');
  });

  it('two issues each under the limit but over it together, at once: one is issued, the other a 422', async () => {
    const c = await customer('Racing Ltd', '1000.00');
    // the series' counter row exists (issued once for a customer without a limit), then is held by the test
    await issue(await draft(await customer('Series Opener Ltd'), '1.00', 'RACE'), users.accountant).expect(200);
    const [a, b] = [await draft(c, '600.00', 'RACE'), await draft(c, '600.00', 'RACE')];
    const holder = await t.db.admin.connect();
    let results: { status: number; body: any }[];
    try {
      const holderPid = (await holder.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      await holder.query('BEGIN');
      await holder.query(`SELECT last_number FROM finance.document_numbers WHERE org_id = $1 AND series = 'RACE-2026' FOR UPDATE`, [orgId]);
      const racing = [issue(a, users.accountant).then((r) => r), issue(b, users.accountant).then((r) => r)]; // then: sent now
      // both in flight and waiting on a lock: one past its check at the counter row, the other at the customer's lock
      // (without that lock: both past their checks)
      await until('both issues wait on a lock', async () => (await t.db.admin.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> $1`, [holderPid])).rows[0].n === 2);
      await holder.query('ROLLBACK');
      results = await Promise.all(racing);
    } finally {
      holder.release();
    }
    expect(results.map((r) => r.status).sort()).toEqual([200, 422]);
    const refused = results.find((r) => r.status === 422)!;
    expect(refused.body.error).toMatchObject({ code: 'receivables.credit_limit_exceeded', details: { creditLimit: '1000.00', balance: '600.00', resultingBalance: '1200.00' } });
    const { rows } = await t.db.admin.query(`SELECT status, count(*)::int AS n FROM finance.invoices WHERE org_id = $1 AND customer_id = $2 GROUP BY 1 ORDER BY 1`, [orgId, c]);
    expect(rows).toEqual([{ status: 'draft', n: 1 }, { status: 'issued', n: 1 }]);
    expect(await owed(c)).toBe('600.00');
  });
});
