import { expect } from '@jest/globals';
import type { TestApp } from '../support/app.js';
import type { TestUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';

export const rUrl = (orgId: string, path: string) => `/v1/orgs/${orgId}/receivables/${path}`;

/** Books in `base`, a deferred revenue account, receivables settings, a VAT 20 % code and one customer. */
export async function setupReceivables(t: TestApp, orgId: string, owner: TestUser, base = 'USD') {
  const acc = await startBooks(t, orgId, owner, base);
  const deferred = await t.http.post(ledgerUrl(orgId, 'accounts')).set(owner.auth).send({ code: '2400', name: 'Deferred revenue', type: 'liability', parentId: acc['2000'] }).expect(201);
  acc['2400'] = deferred.body.id;
  await t.http.put(rUrl(orgId, 'settings')).set(owner.auth).send({ arAccountId: acc['1200'], deferredRevenueAccountId: acc['2400'] }).expect(200);
  const vat = (await t.http.post(ledgerUrl(orgId, 'tax-codes')).set(owner.auth)
    .send({ code: 'VAT20', name: 'VAT 20 %', rate: '20', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201)).body.id as string;
  const customer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Alpha Ltd', email: 'ap@alpha.example', paymentTermsDays: 30 }).expect(201)).body.id as string;
  return { acc, vat, customer };
}

/** Creates and issues an invoice; answers the issued invoice. */
export async function issueInvoice(t: TestApp, orgId: string, user: TestUser, body: object) {
  const draft = await t.http.post(rUrl(orgId, 'invoices')).set(user.auth).send(body).expect(201);
  return (await t.http.post(rUrl(orgId, `invoices/${draft.body.id}/issue`)).set(user.auth).send({}).expect(200)).body;
}

/**
 * The open amounts the triggers keep (finance.receivable_open_amounts) are exactly what the documents and their
 * settlements say now (finance.receivable_open_amounts_source), and the aging read from them
 * (finance.ar_aging_index) answers at every date around the documents' and settlements' dates what the sums of the
 * settlements dated by then answer (the former as-of pass, written out here as the reference), each document with the
 * changes its FX revaluation rows (finance.fx_revaluation_items) dated by then made, nothing of an invoice voided by then.
 */
export async function expectOpenAmountsKept(t: TestApp, orgId: string) {
  const cols = `document_id, document_kind, customer_id, document_date::text, aged_from::text, base_amount::numeric(20, 4)::text AS base_amount, open_base::numeric(20, 4)::text AS open_base, settled_through::text, voided_on::text`;
  const stored = (await t.db.admin.query(`SELECT ${cols} FROM finance.receivable_open_amounts WHERE org_id = $1 ORDER BY document_id`, [orgId])).rows;
  const source = (await t.db.admin.query(`SELECT ${cols} FROM finance.receivable_open_amounts_source WHERE org_id = $1 ORDER BY document_id`, [orgId])).rows;
  expect(stored.length).toBeGreaterThan(0);
  expect(stored).toEqual(source);
  const { rows: dates } = await t.db.admin.query<{ d: string }>(`
    SELECT DISTINCT (x.d + k)::text AS d FROM (
      SELECT invoice_date AS d FROM finance.invoices WHERE org_id = $1 UNION SELECT due_date FROM finance.invoices WHERE org_id = $1
      UNION SELECT voided_on FROM finance.invoices WHERE org_id = $1 AND voided_on IS NOT NULL
      UNION SELECT payment_date FROM finance.customer_payments WHERE org_id = $1
      UNION SELECT allocation_date FROM finance.receivable_allocations WHERE org_id = $1
      UNION SELECT refund_date FROM finance.customer_refunds WHERE org_id = $1
      UNION SELECT revaluation_date FROM finance.fx_revaluation_items WHERE org_id = $1 AND subledger = 'receivables') x, generate_series(-1, 1) k ORDER BY 1`, [orgId]);
  const reference = `
    WITH settled AS (
      SELECT a.invoice_id, sum(a.invoice_base) AS base FROM finance.receivable_allocations a
      WHERE a.org_id = $1 AND a.allocation_date <= $2::date GROUP BY a.invoice_id),
    used AS (
      SELECT u.payment_id, sum(u.base) AS base FROM (
        SELECT a.payment_id, a.source_base AS base FROM finance.receivable_allocations a
        WHERE a.org_id = $1 AND a.allocation_date <= $2::date AND a.payment_id IS NOT NULL
        UNION ALL
        SELECT r.payment_id, r.source_base FROM finance.customer_refunds r WHERE r.org_id = $1 AND r.refund_date <= $2::date) u
      GROUP BY u.payment_id),
    revalued AS (
      SELECT x.document_id, sum(x.base_delta) AS base FROM finance.fx_revaluation_items x
      WHERE x.org_id = $1 AND x.subledger = 'receivables' AND x.revaluation_date <= $2::date GROUP BY x.document_id),
    items AS (
      SELECT i.customer_id, $2::date - i.due_date AS days, i.base_total - coalesce(s.base, 0) + coalesce(v.base, 0) AS base
      FROM finance.invoices i LEFT JOIN settled s ON s.invoice_id = i.id LEFT JOIN revalued v ON v.document_id = i.id
      WHERE i.org_id = $1 AND i.kind = 'invoice' AND i.status <> 'draft' AND i.invoice_date <= $2::date
        AND (i.voided_on IS NULL OR i.voided_on > $2::date)
      UNION ALL
      SELECT p.customer_id, $2::date - p.payment_date, coalesce(u.base, 0) - round(p.amount * p.rate, (
        SELECT c.minor_units FROM finance.settings st JOIN finance.currencies c ON c.code = st.base_currency WHERE st.org_id = $1)) + coalesce(v.base, 0)
      FROM finance.customer_payments p LEFT JOIN used u ON u.payment_id = p.id LEFT JOIN revalued v ON v.document_id = p.id
      WHERE p.org_id = $1 AND p.payment_date <= $2::date)
    SELECT it.customer_id, CASE WHEN it.days <= 0 THEN 0 ELSE width_bucket(it.days - 1, $3::int[]) + 1 END AS bucket_index, sum(it.base)::numeric(20, 4)::text AS amount
    FROM items it WHERE it.base <> 0 GROUP BY 1, 2 ORDER BY 1, 2`;
  const client = await t.db.admin.connect();
  try {
    await client.query(`SELECT set_config('request.jwt.claims', $1, false)`, [JSON.stringify({ org_id: orgId, role: 'service_role' })]);
    for (const { d } of dates) {
      for (const edges of ['{30,60,90}', '{15}']) {
        const got = (await client.query(`SELECT customer_id, bucket_index, amount::numeric(20, 4)::text AS amount FROM finance.ar_aging_index($1::date, $2::int[]) ORDER BY 1, 2`, [d, edges])).rows;
        const want = (await client.query(reference, [orgId, d, edges])).rows;
        expect({ asOf: d, edges, rows: got }).toEqual({ asOf: d, edges, rows: want });
      }
    }
  } finally {
    await client.query(`SELECT set_config('request.jwt.claims', '', false)`);
    client.release();
  }
}
