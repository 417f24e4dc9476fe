import type { TestApp } from '../support/app.js';
import type { TestUser } from '../support/factories.js';
import { startBooks } from '../ledger/ledger-support.js';

/** Starts the books and posts one entry of `amount` (cash at bank 1100 against share capital 3100), tagged with `memo`. */
export async function booksWithEntry(t: TestApp, orgId: string, owner: TestUser, amount: string, memo: string): Promise<Record<string, string>> {
  const accounts = await startBooks(t, orgId, owner);
  await t.http.post(`/v1/orgs/${orgId}/ledger/journal-entries`).set(owner.auth)
    .send({ date: '2026-01-02', memo, lines: [{ accountId: accounts['1100'], debit: amount }, { accountId: accounts['3100'], credit: amount }] })
    .expect(201);
  return accounts;
}

export const semanticUrl = (orgId: string) => `/v1/orgs/${orgId}/semantic/query`;
export const agentsUrl = (orgId: string, path = '') => `/v1/orgs/${orgId}/agents${path}`;
