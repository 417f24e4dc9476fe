import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { orgWithRoles, type RoleUsers } from '../support/factories.js';
import { startBooks } from './ledger-support.js';

/**
 * The journal's CHECK constraints on what a caller passes through (source, memo, source reference, idempotency
 * key, a line's description, counterparty type and id) were dropped by migration 20270101000100: the posting
 * function refuses the same before writing anything, whoever calls it.
 */
describe('ledger: the posting function refuses what the journal\'s CHECK constraints refused', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  const cashRent = () => [{ accountId: acc['5200'], debit: '10' }, { accountId: acc['1100'], credit: '10' }];
  const direct = (entry: Record<string, unknown>) => t.db.asApi({ sub: users.owner.id, role: 'authenticated', org_id: orgId }, 'authenticated',
    `SELECT * FROM finance.post_journal_entry($1::jsonb)`, [JSON.stringify({ date: '2026-02-01', lines: cashRent(), ...entry })]);
  const firstLine = (extra: Record<string, unknown>) => ({ lines: cashRent().map((l, i) => (i ? l : { ...l, ...extra })) });
  const entries = async () => (await t.db.admin.query('SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1', [orgId])).rows[0].n;

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Checks Ltd'));
    acc = await startBooks(t, orgId, users.owner);
  });
  afterAll(() => t.close());

  it('refuses each with ledger.invalid_entry and writes nothing', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ memo: 'm'.repeat(1001) }, /memo has at most 1000 characters/],
      [{ sourceRef: 'r'.repeat(201) }, /sourceRef has at most 200 characters/],
      [{ idempotencyKey: 'k'.repeat(201) }, /idempotencyKey has at most 200 characters/],
      [{ source: 'import' }, /source must be one of/],
      [firstLine({ description: 'd'.repeat(501) }), /line 1: description has at most 500 characters/],
      [firstLine({ counterpartyType: 'friend', counterpartyId: 'F-1' }), /line 1: counterpartyType must be one of/],
      [firstLine({ counterpartyType: 'customer', counterpartyId: 'c'.repeat(201) }), /line 1: counterpartyId has at most 200 characters/],
    ];
    for (const [entry, message] of cases) {
      await expect(direct(entry)).rejects.toMatchObject({ code: '22023', hint: 'ledger.invalid_entry', message: expect.stringMatching(message) });
    }
    expect(await entries()).toBe(0);
  });

  it('posts at the limits', async () => {
    const [row] = await direct({ memo: 'm'.repeat(1000), sourceRef: 'r'.repeat(200), idempotencyKey: 'k'.repeat(200),
      ...firstLine({ description: 'd'.repeat(500), counterpartyType: 'vendor', counterpartyId: 'v'.repeat(200) }) });
    expect(row.entry).toMatchObject({ memo: 'm'.repeat(1000), sourceRef: 'r'.repeat(200), idempotencyKey: 'k'.repeat(200) });
    expect(row.entry.lines[0]).toMatchObject({ description: 'd'.repeat(500), counterpartyType: 'vendor', counterpartyId: 'v'.repeat(200) });
    expect(await entries()).toBe(1);
  });
});
