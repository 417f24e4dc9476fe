import type { TestApp } from '../support/app.js';
import type { TestUser } from '../support/factories.js';

/** Starts the books (standard chart, EUR unless told) and returns the account ids by code. */
export async function startBooks(t: TestApp, orgId: string, owner: TestUser, baseCurrency = 'EUR', fiscalYearStart = '2026-01-01') {
  await t.http.post(`/v1/orgs/${orgId}/ledger/books`).set(owner.auth).send({ baseCurrency, fiscalYearStart }).expect(201);
  const res = await t.http.get(`/v1/orgs/${orgId}/ledger/accounts`).set(owner.auth).expect(200);
  return Object.fromEntries(res.body.map((a: any) => [a.code, a.id])) as Record<string, string>;
}

export function ledgerUrl(orgId: string, path: string): string {
  return `/v1/orgs/${orgId}/ledger/${path}`;
}
