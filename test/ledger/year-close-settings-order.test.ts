import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { ledgerRepository } from '../../src/modules/ledger/ledger.repository.js';
import { pauseNext, releaseAll, waitsForLockOrAnswers } from '../auth/lock-order.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/**
 * A fiscal year's close read the ledger settings (retained earnings) before it drained the postings, and a settings
 * change took no lock: a change committing while the close waited left the close posting to the account the settings
 * no longer named, and the change's audit `before` could be overwritten by another change. A settings change now drains
 * the postings as the close does, and the close reads the settings once its drain is held. The interleaving is forced:
 * the close pauses holding the drain, the change is seen waiting.
 */
describe('ledger: a settings change while a fiscal year closes', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterEach(() => {
    releaseAll();
    jest.restoreAllMocks();
  });
  afterAll(() => t?.close());

  it('waits for the close, which posts to the retained earnings account named when it began', async () => {
    const owner = await registerUser(t, 'owner');
    const orgId = await createOrg(t, owner, 'Settings During Close Ltd');
    const acc = await startBooks(t, orgId, owner);
    const id = (code: string) => acc[code];
    await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(owner.auth).send({
      date: '2026-03-02', memo: 'a sale', lines: [{ accountId: id('1100'), debit: '100.00' }, { accountId: id('4100'), credit: '100.00' }],
    }).expect(201);
    const [year] = (await t.http.get(ledgerUrl(orgId, 'fiscal-years')).set(owner.auth).expect(200)).body;

    const paused = pauseNext(ledgerRepository, 'closeYear'); // the year's row and the drain held, settings read
    const close = t.http.post(ledgerUrl(orgId, `fiscal-years/${year.id}/close`)).set(owner.auth).then((r) => r);
    await paused.reached;
    const change = t.http.patch(ledgerUrl(orgId, 'settings')).set(owner.auth).send({ retainedEarningsAccountId: id('3100') }).then((r) => r);
    expect(await waitsForLockOrAnswers(t.db.admin, change, paused)).toBe('waiting');
    paused.release();

    const [closed, changed] = [await close, await change];
    expect([closed.status, changed.status, changed.body.retainedEarningsAccountId]).toEqual([200, 200, id('3100')]);
    const { rows } = await t.db.admin.query(`
      SELECT a.code, l.credit::text AS credit FROM finance.journal_entries e
        JOIN finance.journal_lines l ON l.org_id = e.org_id AND l.entry_id = e.id
        JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id
       WHERE e.org_id = $1 AND e.source = 'year_end' AND a.type = 'equity'`, [orgId]);
    expect(rows).toEqual([{ code: '3200', credit: '100.0000' }]);
    const audit = (await t.db.admin.query(
      `SELECT before->>'retainedEarningsAccountId' AS before, after->>'retainedEarningsAccountId' AS after FROM core.audit_logs
        WHERE org_id = $1 AND action = 'ledger.settings_updated'`, [orgId])).rows;
    expect(audit).toEqual([{ before: id('3200'), after: id('3100') }]);
  });
});
