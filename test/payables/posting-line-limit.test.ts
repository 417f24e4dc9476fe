import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { tableContents } from '../support/database.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { MAX_DOCUMENT_LINES } from '../../src/modules/payables/payables.dto.js';
import { createVendor, payablesUrl } from './payables-support.js';

/**
 * A bill posts one journal line per line, one more per taxed line and one to AP, and the ledger takes at most 499
 * lines per entry: a bill or claim is refused with more lines than fit when it is saved, so its approval never meets
 * ledger.invalid_entry. A bill at the maximum, every line taxed, posts; one line more is refused at save.
 */
describe('payables: documents within the posting line limit', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let vendor: string;
  let vat: string;
  const url = (p: string) => payablesUrl(orgId, p);
  const taxedLines = (n: number) => Array.from({ length: n }, (_, i) => ({ accountId: acc['5200'], description: `item ${i + 1}`, unitPrice: '1.00', taxCodeId: vat }));
  const state = () => tableContents(t.db.admin, { tables: ['finance.bills', 'finance.bill_lines', 'finance.bill_decisions', 'finance.journal_entries', 'core.audit_logs'], orgId: orgId });

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Many Lines Ltd'));
    await onPlan(t, orgId, 'professional');
    acc = await startBooks(t, orgId, users.owner);
    vendor = await createVendor(t, orgId, users.accountant);
    vat = (await t.http.post(ledgerUrl(orgId, 'tax-codes')).set(users.owner.auth)
      .send({ code: 'VAT20', name: 'VAT 20 %', rate: '20', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201)).body.id;
  });
  afterAll(() => t.close());

  it(`a bill of ${MAX_DOCUMENT_LINES} taxed lines posts (net and tax per line, one AP line, one balanced entry)`, async () => {
    const bill = (await t.http.post(url('bills')).set(users.accountant.auth)
      .send({ vendorId: vendor, billDate: '2026-03-02', lines: taxedLines(MAX_DOCUMENT_LINES) }).expect(201)).body;
    expect(bill).toMatchObject({ status: 'draft', subtotal: '200.00', taxTotal: '40.00', total: '240.00' });
    expect(bill.lines).toHaveLength(MAX_DOCUMENT_LINES);
    // 240.00: no approval needed under the default rules, so it posts at its submission
    const posted = (await t.http.post(url(`bills/${bill.id}/submit`)).set(users.accountant.auth).expect(200)).body;
    expect(posted).toMatchObject({ status: 'posted', journalEntryId: expect.any(String), openAmount: '240.00' });
    const { rows } = await t.db.admin.query(`SELECT a.code, count(*)::int AS n, sum(l.base_debit)::text AS debit, sum(l.base_credit)::text AS credit
      FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id WHERE l.org_id = $1 AND l.entry_id = $2 GROUP BY a.code ORDER BY a.code`,
    [orgId, posted.journalEntryId]);
    expect(rows).toEqual([
      { code: '1300', n: MAX_DOCUMENT_LINES, debit: '40.0000', credit: '0.0000' },
      { code: '2100', n: 1, debit: '0.0000', credit: '240.0000' },
      { code: '5200', n: MAX_DOCUMENT_LINES, debit: '200.0000', credit: '0.0000' },
    ]);
    expect((await t.db.admin.query(`SELECT status FROM finance.bills WHERE org_id = $1 AND id = $2`, [orgId, bill.id])).rows).toEqual([{ status: 'posted' }]);
  });

  it(`a bill or claim of ${MAX_DOCUMENT_LINES + 1} lines is refused when created or edited (400 naming the maximum); nothing written`, async () => {
    const draft = (await t.http.post(url('bills')).set(users.accountant.auth)
      .send({ vendorId: vendor, billDate: '2026-03-02', lines: taxedLines(1) }).expect(201)).body;
    const message = `lines must have at most ${MAX_DOCUMENT_LINES} lines (a bill or expense claim posts as one journal entry)`;
    const claimLines = Array.from({ length: MAX_DOCUMENT_LINES + 1 }, () => ({ accountId: acc['5200'], amount: '1.00', currency: 'EUR', date: '2026-03-02' }));
    const before = await state();
    for (const send of [
      () => t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId: vendor, billDate: '2026-03-02', lines: taxedLines(MAX_DOCUMENT_LINES + 1) }),
      () => t.http.patch(url(`bills/${draft.id}`)).set(users.accountant.auth).send({ billDate: '2026-03-02', lines: taxedLines(MAX_DOCUMENT_LINES + 1) }),
      () => t.http.post(url('expense-claims')).set(users.member.auth).send({ claimDate: '2026-03-02', currency: 'EUR', lines: claimLines }),
    ]) {
      const res = await send();
      expect({ status: res.status, code: res.body.error?.code }).toEqual({ status: 400, code: 'validation_failed' });
      expect(res.body.error.message).toContain(message);
    }
    expect(await state()).toEqual(before);
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.bill_lines WHERE org_id = $1 AND bill_id = $2`, [orgId, draft.id])).rows).toEqual([{ n: 1 }]);
  });
});
