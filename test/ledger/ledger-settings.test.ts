import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, orgWithRoles, registerUser, type RoleUsers } from '../support/factories.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/** PATCH /ledger/settings: the ledger's system accounts (rounding, retained earnings, FX), which postings then use. */
describe('ledger: changing the system accounts', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let otherAcc: Record<string, string>;
  const patch = (body: object, who = users.admin) => t.http.patch(ledgerUrl(orgId, 'settings')).set(who.auth).send(body);
  const row = async () => (await t.db.admin.query(
    `SELECT rounding_account_id, retained_earnings_account_id, fx_gain_account_id, fx_loss_account_id FROM finance.settings WHERE org_id = $1`, [orgId])).rows[0];
  const audits = async () => (await t.db.admin.query(
    `SELECT actor_id, before, after FROM core.audit_logs WHERE org_id = $1 AND action = 'ledger.settings_updated' ORDER BY id`, [orgId])).rows;

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Settings Ltd'));
    await onPlan(t, orgId, 'professional'); // multi-currency entries (the rounding line below)
    acc = await startBooks(t, orgId, users.owner);
    const other = await registerUser(t, 'other-owner');
    const otherOrg = await createOrg(t, other, 'Other Ltd');
    otherAcc = await startBooks(t, otherOrg, other);
  });
  afterAll(() => t.close());

  it('an admin moves the rounding account: the answer, the row and the audit say so, and the next rounding line goes there', async () => {
    const before = (await t.http.get(ledgerUrl(orgId, 'settings')).set(users.viewer.auth).expect(200)).body;
    expect(before).toMatchObject({ baseCurrency: 'EUR', roundingAccountId: acc['5600'], retainedEarningsAccountId: acc['3200'], fxGainAccountId: acc['4300'] });

    const res = await patch({ roundingAccountId: acc['5400'] }).expect(200);
    // only the field sent changed
    expect(res.body).toEqual({ ...before, roundingAccountId: acc['5400'] });
    expect((await t.http.get(ledgerUrl(orgId, 'settings')).set(users.viewer.auth).expect(200)).body).toEqual(res.body);
    expect(await row()).toEqual({ rounding_account_id: acc['5400'], retained_earnings_account_id: acc['3200'], fx_gain_account_id: acc['4300'], fx_loss_account_id: acc['5500'] });
    expect(await audits()).toEqual([{ actor_id: users.admin.id, before: expect.objectContaining({ roundingAccountId: acc['5600'] }), after: expect.objectContaining({ roundingAccountId: acc['5400'] }) }]);

    // two lines of USD 0.50 at 0.333 are 0.17 each in EUR; USD 1.00 is 0.33: 0.01 of rounding, now to 5400
    const entry = await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.accountant.auth).send({ date: '2026-02-02', lines: [
      { accountId: acc['1200'], debit: '0.50', currency: 'USD', rate: '0.333' }, { accountId: acc['1200'], debit: '0.50', currency: 'USD', rate: '0.333' },
      { accountId: acc['4100'], credit: '1.00', currency: 'USD', rate: '0.333' }] }).expect(201);
    expect(entry.body.lines.filter((l: { isRounding: boolean }) => l.isRounding).map((l: { accountCode: string; baseCredit: string }) => [l.accountCode, l.baseCredit])).toEqual([['5400', '0.01']]);
    const { rows } = await t.db.admin.query(`SELECT account_id, base_credit::text FROM finance.journal_lines WHERE org_id = $1 AND entry_id = $2 AND account_id IN ($3, $4)`,
      [orgId, entry.body.id, acc['5400'], acc['5600']]);
    expect(rows).toEqual([{ account_id: acc['5400'], base_credit: '0.0100' }]);
  });

  it('refuses a group account, an unknown one, another organization\'s, a malformed id, an unknown field and a non-admin; nothing changes', async () => {
    const settingsBefore = await row();
    const auditBefore = (await audits()).length;

    // a valid field next to a refused one: no half write
    const group = await patch({ retainedEarningsAccountId: acc['3100'], fxGainAccountId: acc['4000'] }).expect(422);
    expect(group.body.error).toMatchObject({ code: 'ledger.account_not_postable', message: expect.stringContaining('4000') });
    const unknown = randomUUID();
    const missing = await patch({ fxLossAccountId: unknown }).expect(404);
    expect(missing.body.error).toMatchObject({ code: 'account.not_found', message: expect.stringContaining(unknown) });
    // the other organization's account does not exist here (row-level security)
    const foreign = await patch({ roundingAccountId: otherAcc['5600'] }).expect(404);
    expect(foreign.body.error.code).toBe('account.not_found');
    const malformed = await patch({ roundingAccountId: 'not-a-uuid' }).expect(400);
    expect(JSON.stringify(malformed.body.error)).toContain('roundingAccountId');
    const extra = await patch({ roundingAccountId: acc['5400'], baseCurrency: 'USD' }).expect(400);
    expect(JSON.stringify(extra.body.error)).toContain('baseCurrency');
    for (const who of [users.accountant, users.member, users.viewer]) {
      expect((await patch({ roundingAccountId: acc['5300'] }, who).expect(403)).body.error.code).toBe('forbidden.role');
    }

    expect(await row()).toEqual(settingsBefore);
    expect(await audits()).toHaveLength(auditBefore);
  });

  it('refuses an FX gain or loss account, realized or unrealized, that is not a revenue or expense account: 422 ledger.fx_account_type naming the field and the account; nothing changes', async () => {
    const settings = async () => (await t.db.admin.query(`SELECT * FROM finance.settings WHERE org_id = $1`, [orgId])).rows[0];
    const before = await settings();
    const auditBefore = (await audits()).length;
    const refusals = [['fxUnrealizedGainAccountId', '1200', 'asset'], ['fxUnrealizedLossAccountId', '2100', 'liability'],
      ['fxUnrealizedGainAccountId', '3200', 'equity'], ['fxGainAccountId', '1100', 'asset'], ['fxLossAccountId', '2300', 'liability']];
    for (const [field, code, type] of refusals) {
      // next to a valid field: no half write
      const res = await patch({ roundingAccountId: acc['5300'], [field]: acc[code] }).expect(422);
      expect(res.body).toEqual({ error: { code: 'ledger.fx_account_type', message: expect.stringContaining(`${field}: account ${code} is a ${type} account`) }, requestId: expect.any(String) });
    }
    expect(await settings()).toEqual(before);
    expect(await audits()).toHaveLength(auditBefore);

    // one income or expense account for both sides is accepted (the standard chart's are 4310 and 5510)
    const ok = await patch({ fxUnrealizedGainAccountId: acc['5510'], fxUnrealizedLossAccountId: acc['5510'] }).expect(200);
    expect(ok.body).toMatchObject({ fxUnrealizedGainAccountId: acc['5510'], fxUnrealizedLossAccountId: acc['5510'] });
    expect(await settings()).toMatchObject({ fx_unrealized_gain_account_id: acc['5510'], fx_unrealized_loss_account_id: acc['5510'] });
  });
});
