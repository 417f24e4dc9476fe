import type { TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type TestUser } from '../support/factories.js';

/** Starts the books (standard chart, EUR unless told) and returns the account ids by code. */
export async function startBooks(t: TestApp, orgId: string, owner: TestUser, baseCurrency = 'EUR', fiscalYearStart = '2026-01-01') {
  await t.http.post(`/v1/orgs/${orgId}/ledger/books`).set(owner.auth).send({ baseCurrency, fiscalYearStart }).expect(201);
  const res = await t.http.get(`/v1/orgs/${orgId}/ledger/accounts`).set(owner.auth).expect(200);
  return Object.fromEntries(res.body.map((a: any) => [a.code, a.id])) as Record<string, string>;
}

export function ledgerUrl(orgId: string, path: string): string {
  return `/v1/orgs/${orgId}/ledger/${path}`;
}

/** An organization of its own with a user of each role, on the professional plan, its books started: account ids by code, its ledger's URLs. */
export async function professionalBooks(t: TestApp, name: string) {
  const { orgId, users } = await orgWithRoles(t, name);
  await onPlan(t, orgId, 'professional');
  const a = await startBooks(t, orgId, users.owner);
  return { orgId, users, a, url: (path: string) => ledgerUrl(orgId, path) };
}

/**
 * Where the running balances (finance.account_balances) or the per-period ones (finance.period_balances) differ from
 * the journal lines they sum up — debits, credits, base amounts and line counts — in one organization, or in all
 * without `orgId`. Empty when the books agree.
 */
export async function balanceDrift(t: TestApp, orgId?: string): Promise<{ what: string; org_id: string; account_id: string }[]> {
  const { rows } = await t.db.admin.query(`
    WITH lp AS (SELECT org_id, period_id, account_id, currency, sum(debit) d, sum(credit) c, sum(base_debit) bd, sum(base_credit) bc, count(*) n
                FROM finance.journal_lines WHERE $1::uuid IS NULL OR org_id = $1 GROUP BY 1, 2, 3, 4),
         la AS (SELECT org_id, account_id, currency, sum(d) d, sum(c) c, sum(bd) bd, sum(bc) bc, sum(n) n FROM lp GROUP BY 1, 2, 3),
         b AS (SELECT org_id, account_id, currency, sum(debit) d, sum(credit) c, sum(base_debit) bd, sum(base_credit) bc, sum(line_count) n
               FROM finance.account_balances WHERE $1::uuid IS NULL OR org_id = $1 GROUP BY 1, 2, 3),
         pb AS (SELECT org_id, period_id, account_id, currency, sum(debit) d, sum(credit) c, sum(base_debit) bd, sum(base_credit) bc, sum(line_count) n
                FROM finance.period_balances WHERE $1::uuid IS NULL OR org_id = $1 GROUP BY 1, 2, 3, 4)
    SELECT 'account' AS what, org_id, account_id FROM la FULL JOIN b USING (org_id, account_id, currency)
    WHERE (la.d, la.c, la.bd, la.bc, la.n) IS DISTINCT FROM (b.d, b.c, b.bd, b.bc, b.n)
    UNION ALL
    SELECT 'period', org_id, account_id FROM lp FULL JOIN pb USING (org_id, period_id, account_id, currency)
    WHERE (lp.d, lp.c, lp.bd, lp.bc, lp.n) IS DISTINCT FROM (pb.d, pb.c, pb.bd, pb.bc, pb.n)`, [orgId ?? null]);
  return rows;
}
