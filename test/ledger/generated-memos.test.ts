import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { createVendor, payablesUrl } from '../payables/payables-support.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/**
 * The memos the API builds around a client's memo (Reversal of <memo>, Bill <number>: <memo>, Expense claim: <memo>)
 * went over the 1,000 characters an entry's memo has when the client's memo was near that limit, and the posting
 * failed with an undocumented 422 ledger.invalid_entry. The client's part is now cut to fit, ending with an ellipsis;
 * characters are counted as PostgreSQL counts them (an emoji is one) and never split.
 */
describe('ledger: memos built from a client\'s memo fit the memo limit', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  /** 1,000 characters (code points), the last 14 of them emoji (two UTF-16 units each) */
  const longMemo = 'a'.repeat(986) + '😀'.repeat(14);
  const stored = async (entryId: string) => (await t.db.admin.query(
    `SELECT memo, char_length(memo) AS length FROM finance.journal_entries WHERE org_id = $1 AND id = $2`, [orgId, entryId])).rows[0];

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Long Memos Ltd'));
    await onPlan(t, orgId, 'professional');
    acc = await startBooks(t, orgId, users.owner);
  });
  afterAll(() => t.close());

  it('reverses an entry whose memo has 1,000 characters: Reversal of <memo cut>…, 1,000 characters', async () => {
    const posted = await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.owner.auth)
      .send({ date: '2026-01-05', memo: longMemo, lines: [{ accountId: acc['1100'], debit: '10.00' }, { accountId: acc['3100'], credit: '10.00' }] }).expect(201);
    const reversal = await t.http.post(ledgerUrl(orgId, `journal-entries/${posted.body.id}/reverse`)).set(users.owner.auth).send({}).expect(201);
    const expected = `Reversal of ${'a'.repeat(986)}😀…`;
    expect(reversal.body).toMatchObject({ reversesEntryId: posted.body.id, memo: expected });
    expect(await stored(reversal.body.id)).toEqual({ memo: expected, length: 1000 });
  });

  it('keeps a memo that just fits whole: Reversal of <988 characters> is 1,000 characters, not cut', async () => {
    const memo = 'b'.repeat(988);
    const posted = await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.owner.auth)
      .send({ date: '2026-01-05', memo, lines: [{ accountId: acc['1100'], debit: '10.00' }, { accountId: acc['3100'], credit: '10.00' }] }).expect(201);
    const reversal = await t.http.post(ledgerUrl(orgId, `journal-entries/${posted.body.id}/reverse`)).set(users.owner.auth).send({}).expect(201);
    expect(await stored(reversal.body.id)).toEqual({ memo: `Reversal of ${memo}`, length: 1000 });
  });

  it('posts a bill whose memo has 1,000 characters: Bill <number>: <memo cut>…', async () => {
    const vendor = await createVendor(t, orgId, users.accountant);
    const bill = await t.http.post(payablesUrl(orgId, 'bills')).set(users.accountant.auth).send({
      vendorId: vendor, billNumber: 'INV-4711', billDate: '2026-01-10', memo: longMemo, lines: [{ accountId: acc['5200'], unitPrice: '500.00' }] }).expect(201);
    const posted = await t.http.post(payablesUrl(orgId, `bills/${bill.body.id}/submit`)).set(users.accountant.auth).expect(200);
    expect(posted.body).toMatchObject({ status: 'posted', memo: longMemo });
    const expected = `Bill INV-4711: ${'a'.repeat(984)}…`;
    expect(await stored(posted.body.journalEntryId)).toEqual({ memo: expected, length: 1000 });
    const { rows } = await t.db.admin.query(`SELECT status, memo FROM finance.bills WHERE org_id = $1 AND id = $2`, [orgId, bill.body.id]);
    expect(rows).toEqual([{ status: 'posted', memo: longMemo }]);
  });

  it('posts an expense claim whose memo has 1,000 characters: Expense claim: <memo cut>…', async () => {
    const claim = await t.http.post(payablesUrl(orgId, 'expense-claims')).set(users.member.auth).send({
      claimDate: '2026-01-12', currency: 'EUR', memo: longMemo, lines: [{ accountId: acc['5200'], amount: '84.50', currency: 'EUR', date: '2026-01-11' }] }).expect(201);
    await t.http.post(payablesUrl(orgId, `expense-claims/${claim.body.id}/submit`)).set(users.member.auth).expect(200);
    const approved = await t.http.post(payablesUrl(orgId, `expense-claims/${claim.body.id}/approve`)).set(users.accountant.auth).send({}).expect(200);
    expect(approved.body).toMatchObject({ status: 'posted', memo: longMemo });
    const expected = `Expense claim: ${'a'.repeat(984)}…`;
    expect(await stored(approved.body.journalEntryId)).toEqual({ memo: expected, length: 1000 });
  });
});
