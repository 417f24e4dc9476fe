import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Response } from 'supertest';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles } from '../support/factories.js';
import { startBooks } from '../ledger/ledger-support.js';
import { createVendor, payablesUrl } from './payables-support.js';

/**
 * PayablesService.planPosting runs a submit's or an approval's plan (lock the document, read, decide whether it posts)
 * under the posting lock, before payables' first posting inside a savepoint it may roll back to and make again. The
 * plan is to write nothing: a refusal it makes leaves every table of the organization as it was (rows and their
 * contents), a plan kept (the request posts nothing) leaves only the request's own rows, and a plan undone and made
 * again (the first posting, drained) leaves them once.
 */
describe('payables: planPosting writes nothing', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  /** Every table with an org_id, the organization's rows of it: how many, and a digest of their contents. */
  async function tables(orgId: string): Promise<Record<string, { rows: number; digest: string }>> {
    const { rows: names } = await t.db.admin.query<{ name: string }>(`
      SELECT format('%I.%I', n.nspname, c.relname) AS name
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped
       WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       ORDER BY 1`);
    const out: Record<string, { rows: number; digest: string }> = {};
    for (const { name } of names) {
      const { rows: [r] } = await t.db.admin.query<{ rows: number; digest: string }>(
        `SELECT count(*)::int AS rows, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS digest FROM ${name} x WHERE x.org_id = $1`, [orgId]);
      out[name] = r;
    }
    return out;
  }

  /** The tables whose row count changed from `before` to `after`, by how much. */
  const grown = (before: Awaited<ReturnType<typeof tables>>, after: Awaited<ReturnType<typeof tables>>) =>
    Object.fromEntries(Object.keys(after).filter((k) => after[k].rows !== before[k]?.rows).map((k) => [k, after[k].rows - (before[k]?.rows ?? 0)]));

  const answer = (r: Response) => [r.status, r.body.status ?? r.body.error?.code, r.body.error?.message];

  it('refused in the plan (in its savepoint, and after the first posting without one) it leaves every table as it was; kept or made again, only the request\'s rows once', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Plan Writes Nothing Ltd');
    await onPlan(t, orgId, 'professional');
    const acc = await startBooks(t, orgId, users.owner, 'EUR');
    const url = (p: string) => payablesUrl(orgId, p);
    const vendorId = await createVendor(t, orgId, users.accountant);
    const bill = async (amount: string) => (await t.http.post(url('bills')).set(users.accountant.auth)
      .send({ vendorId, billDate: '2026-03-02', lines: [{ accountId: acc['5200'], unitPrice: amount }] }).expect(201)).body.id as string;
    const draft = await bill('5000.00');
    const forApproval = await bill('5000.00'); // one approval above 1,000: its submit posts nothing (the plan kept)
    const postsAtSubmit = await bill('500.00'); // none below: its submit is payables' first posting (the plan made again)
    const pending = async () => (await t.db.asApi({ sub: users.accountant.id, org_id: orgId }, 'authenticated',
      'SELECT finance.payables_first_posting_pending() AS p', []))[0].p;

    // kept: the plan posts nothing, so it is released, not undone
    let before = await tables(orgId);
    expect(answer(await t.http.post(url(`bills/${forApproval}/submit`)).set(users.accountant.auth))).toEqual([200, 'submitted', undefined]);
    const kept = grown(before, await tables(orgId));

    const refusals = async () => {
      const answers = [
        answer(await t.http.post(url(`bills/${draft}/approve`)).set(users.owner.auth).send({})),
        answer(await t.http.post(url(`bills/${forApproval}/submit`)).set(users.accountant.auth)),
        answer(await t.http.post(url(`bills/${forApproval}/approve`)).set(users.accountant.auth).send({})),
      ];
      return { answers, unchanged: (await tables(orgId)) };
    };
    const refused = [
      [409, 'payables.not_submitted', `bill ${draft} is draft: only a submitted one can be approved`],
      [409, 'payables.not_editable', `bill ${forApproval} is submitted: only a draft or rejected one can be submitted`],
      [403, 'payables.own_bill', `you created bill ${forApproval}: another approver must approve it`],
    ];

    // refused before payables' first posting: each plan ran in the savepoint
    expect(await pending()).toBe(true);
    before = await tables(orgId);
    let r = await refusals();
    expect(r.answers).toEqual(refused);
    expect(r.unchanged).toEqual(before);

    // made again: the plan posts and is the first posting, so it is undone and made again under the drained lock
    before = await tables(orgId);
    expect(answer(await t.http.post(url(`bills/${postsAtSubmit}/submit`)).set(users.accountant.auth))).toEqual([200, 'posted', undefined]);
    const madeAgain = grown(before, await tables(orgId));
    expect(await pending()).toBe(false);

    // refused after it: no savepoint, the same refusals, the same nothing written
    before = await tables(orgId);
    r = await refusals();
    expect(r.answers).toEqual(refused);
    expect(r.unchanged).toEqual(before);

    // the request's own rows, once: a submit decision, its event and audit row (and for the posting, its entry)
    expect(kept).toEqual({ 'core.audit_logs': 1, 'core.outbox': 1, 'finance.bill_decisions': 1 });
    const decisions = (await t.db.admin.query(`SELECT bill_id, decision FROM finance.bill_decisions WHERE org_id = $1 ORDER BY bill_id, decision`, [orgId])).rows;
    expect(decisions).toEqual([forApproval, postsAtSubmit].sort().map((id) => ({ bill_id: id, decision: 'submit' })));
    expect(madeAgain['finance.bill_decisions']).toBe(1);
    expect(madeAgain['finance.journal_entries']).toBe(1);
  });
});
