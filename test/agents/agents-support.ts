import { Decimal } from '../../src/platform/decimal.js';
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

/**
 * The input a call billed without usage from its provider is charged (an answer without it, an attempt cut by a cancel,
 * the timeout or the shutdown): its o200k_base count at the model's margin, as reserved (gpt-4o's: 1.1 x + 16).
 */
export const usagelessInput = (counted: number, margin: { factor: string; overhead: number } = { factor: '1.1', overhead: 16 }) =>
  new Decimal(counted).times(margin.factor).ceil().toNumber() + margin.overhead;
