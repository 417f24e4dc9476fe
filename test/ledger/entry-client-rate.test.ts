import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { professionalBooks } from './ledger-support.js';

/**
 * A manual journal entry's line in a foreign currency may give its rate, as a payment does: more than 20 % off the rate
 * table's latest rate on or before the entry date (USD 0.90 from 2026-02-01; base EUR) is a 422 ledger.rate_out_of_range
 * naming the line, both rates, the table rate's date and the tolerance, nothing posted (single entry and batch alike);
 * with rateOverride: true it posts, and an audit row ledger.entry_rate_override names the line. Within 20 % it posts as
 * sent; without a table rate of the date (January) the rate is taken as sent.
 */
describe('a manual entry\'s client rate against the rate table', () => {
  let t: TestApp;
  let books: Awaited<ReturnType<typeof professionalBooks>>;

  beforeAll(async () => {
    t = await createTestApp();
    books = await professionalBooks(t, 'Entry Rates Ltd');
    await t.http.post(books.url('fx-rates/import')).set(books.users.owner.auth).send({ rates: [{ currency: 'USD', date: '2026-02-01', rate: '0.90' }] }).expect(201);
  });
  afterAll(() => t.close());

  const entry = (date: string, rate: string, extra: object = {}) => ({
    date, memo: 'USD cash from the owner', ...extra,
    lines: [{ accountId: books.a['1100'], debit: '100.00', currency: 'USD', rate }, { accountId: books.a['3100'], credit: '100.00', currency: 'USD', rate }],
  });
  const entries = async () => (await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1`, [books.orgId])).rows[0].n;
  const outOfRange = {
    code: 'ledger.rate_out_of_range',
    message: 'lines[0].rate: the rate 90000 for USD deviates from the rate table\'s 0.9 (effective 2026-02-01) by more than 20%; check it, or send rateOverride: true to post at it anyway',
    details: { rate: '90000', tableRate: '0.9', tableDate: '2026-02-01', tolerance: '20%' },
  };

  it('refuses a rate far from the table\'s, single and in a batch; posts one with rateOverride and audits it', async () => {
    const n = await entries();
    const single = await t.http.post(books.url('journal-entries')).set(books.users.accountant.auth).send(entry('2026-02-10', '90000')).expect(422);
    expect(single.body.error).toEqual(outOfRange);
    const batch = await t.http.post(books.url('journal-entries/batch')).set(books.users.accountant.auth).send({ entries: [entry('2026-02-10', '0.9'), entry('2026-02-10', '90000')] }).expect(422);
    expect(batch.body.error).toEqual({ ...outOfRange, message: `entries[1]: ${outOfRange.message}`, details: { index: 1 } });
    expect(await entries()).toBe(n);

    const near = await t.http.post(books.url('journal-entries')).set(books.users.accountant.auth).send(entry('2026-02-10', '1.05')).expect(201);
    const january = await t.http.post(books.url('journal-entries')).set(books.users.accountant.auth).send(entry('2026-01-20', '90000')).expect(201);
    const overridden = await t.http.post(books.url('journal-entries')).set(books.users.accountant.auth).send(entry('2026-02-10', '90000', { rateOverride: true })).expect(201);
    expect(overridden.body.lines[0]).toMatchObject({ rate: '90000.0000000000' });
    const { rows } = await t.db.admin.query(`SELECT entity_id, after FROM core.audit_logs WHERE org_id = $1 AND action = 'ledger.entry_rate_override'`, [books.orgId]);
    expect(rows).toEqual([{ entity_id: overridden.body.id, after: { rateOverride: true, lines: [0, 1].map((line) => ({ line, rate: '90000', tableRate: '0.9', tableDate: '2026-02-01', tolerance: '20%' })) } }]);
    expect(await entries()).toBe(n + 3);
    expect([near.body.id, january.body.id]).toEqual([expect.any(String), expect.any(String)]);
  });
});
