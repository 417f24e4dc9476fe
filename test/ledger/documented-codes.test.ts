import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { tableContents } from '../support/database.js';
import { until } from '../support/throwaway-servers.js';
import { createOrg, onPlan, orgWithRoles, registerUser, type RoleUsers, type TestUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

// Every error code the ledger's operations document, produced over HTTP where no other test produces it: the status, the
// code, the message naming the problem, and nothing written (the organization's rows, audit and outbox included, are as
// before). One organization per state: books started (EUR, the standard chart), books not started, books without a
// chart (no rounding, retained earnings or FX accounts), and one whose balances are too large to move.

/** The tables a refused ledger request could write, per organization. */
const TABLES = ['finance.settings', 'finance.accounts', 'finance.fiscal_years', 'finance.fiscal_periods', 'finance.fx_rates', 'finance.tax_codes',
  'finance.journal_entries', 'finance.journal_lines', 'finance.fx_revaluation_items', 'core.audit_logs', 'core.outbox'];

describe('ledger: the documented error codes of its operations, produced', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  /** an organization whose books are not started */
  let bare: string;
  let bareOwner: TestUser;
  /** books started without a chart: no rounding, retained earnings nor FX accounts in the settings */
  let plain: string;
  let plainOwner: TestUser;
  const plainAcc: Record<string, string> = {};

  /** Count and content of every table a refused request could write, for one organization. */
  const footprint = (org: string) => tableContents(t.db.admin, { tables: TABLES, orgId: org });
  /** Sends `request`, expects `status` and the error `code` with a message matching `message`, and that nothing was written. */
  async function refused(org: string, request: () => Promise<{ status: number; body: any }>, status: number, code: string, message: string | RegExp) {
    const before = await footprint(org);
    const res = await request();
    expect({ status: res.status, code: res.body.error?.code }).toEqual({ status, code });
    expect(res.body.error.message).toEqual(typeof message === 'string' ? expect.stringContaining(message) : expect.stringMatching(message));
    expect(await footprint(org)).toEqual(before);
    return res.body.error;
  }
  const as = (who: TestUser) => ({
    get: (org: string, path: string) => t.http.get(ledgerUrl(org, path)).set(who.auth),
    post: (org: string, path: string, body: object = {}) => t.http.post(ledgerUrl(org, path)).set(who.auth).send(body),
    patch: (org: string, path: string, body: object) => t.http.patch(ledgerUrl(org, path)).set(who.auth).send(body),
  });
  const owner = () => as(users.owner);
  const entry = (date: string, lines: object[]) => owner().post(orgId, 'journal-entries', { date, lines });
  const newAccount = async (org: string, who: TestUser, body: object) => (await as(who).post(org, 'accounts', { name: 'Account', ...body }).expect(201)).body.id as string;
  const periodOf = async (org: string, who: TestUser, date: string) =>
    ((await as(who).get(org, 'periods').expect(200)).body as { id: string; startDate: string; endDate: string }[]).find((p) => p.startDate <= date && p.endDate >= date)!.id;
  /** A batch of one entry (all or nothing): its refusal is the request's, at index 0. */
  const batchOf = (org: string, who: TestUser, e: object) => () => as(who).post(org, 'journal-entries/batch', { entries: [e] });

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Documented Codes Ltd'));
    await onPlan(t, orgId, 'professional');
    acc = await startBooks(t, orgId, users.owner);
    bareOwner = await registerUser(t, 'bare-owner');
    bare = await createOrg(t, bareOwner, 'No Books Yet Ltd');
    await onPlan(t, bare, 'professional');
    plainOwner = await registerUser(t, 'plain-owner');
    plain = await createOrg(t, plainOwner, 'No Chart Ltd');
    await onPlan(t, plain, 'professional');
    await as(plainOwner).post(plain, 'books', { baseCurrency: 'EUR', fiscalYearStart: '2026-01-01', template: 'none' }).expect(201);
    for (const [code, type] of [['1000', 'asset'], ['3000', 'equity'], ['4000', 'revenue'], ['5000', 'expense']]) {
      plainAcc[code] = await newAccount(plain, plainOwner, { code, type });
    }
  });
  afterAll(() => t.close());

  it('documents none of the codes its operations cannot answer', async () => {
    const doc = (await t.http.get('/docs-json').expect(200)).body;
    const codes = (path: string, method: string) => (doc.paths[`/v1/orgs/{orgId}/ledger/${path}`][method]['x-error-codes'] as { code: string }[]).map((c) => c.code);
    // an account exists only once the books are started (the account is read first: 404)
    expect(codes('accounts/{accountId}/ledger', 'get')).not.toContain('ledger.books_not_started');
    // a reopening reverses the closing entries not reversed yet; a revaluation reverses only the entries it just posted
    expect(codes('fiscal-years/{yearId}/reopen', 'post')).not.toContain('ledger.already_reversed');
    expect(codes('fx-revaluations', 'post')).not.toContain('ledger.already_reversed');
  });

  // ------------------------------------------------------------------ books not started
  it('before the books are started, every operation that needs them is 422 ledger.books_not_started; nothing is written', async () => {
    const b = as(bareOwner);
    const notStarted = /books of this organization are not started|books are not started/;
    const requests: [string, () => Promise<{ status: number; body: any }>][] = [
      ['getLedgerSettings', () => b.get(bare, 'settings')],
      ['updateLedgerSettings', () => b.patch(bare, 'settings', { roundingAccountId: randomUUID() })],
      ['createAccount', () => b.post(bare, 'accounts', { code: '1000', name: 'Assets', type: 'asset' })],
      ['createFiscalYear', () => b.post(bare, 'fiscal-years', { startDate: '2027-01-01' })],
      ['closeFiscalYear', () => b.post(bare, `fiscal-years/${randomUUID()}/close`)],
      ['setFxRate', () => b.post(bare, 'fx-rates', { currency: 'USD', date: '2026-03-01', rate: '0.9' })],
      ['importFxRates', () => b.post(bare, 'fx-rates/import', { rates: [{ currency: 'USD', date: '2026-03-01', rate: '0.9' }] })],
      ['revalueForeignCurrency', () => b.post(bare, 'fx-revaluations', { date: '2026-03-31' })],
      ['postJournalEntriesBatch', batchOf(bare, bareOwner, { date: '2026-03-01', lines: [{ accountId: randomUUID(), debit: '1.00' }, { accountId: randomUUID(), credit: '1.00' }] })],
      ['getTrialBalance', () => b.get(bare, 'reports/trial-balance')],
      ['getBalanceSheet', () => b.get(bare, 'reports/balance-sheet?asOf=2026-03-31')],
      ['getProfitAndLoss', () => b.get(bare, 'reports/profit-and-loss?from=2026-01-01&to=2026-03-31')],
      ['getCashFlowStatement', () => b.get(bare, 'reports/cash-flow?from=2026-01-01&to=2026-03-31')],
      ['getVatReport', () => b.get(bare, 'reports/vat?from=2026-01-01&to=2026-03-31')],
    ];
    for (const [operation, request] of requests) {
      const error = await refused(bare, request, 422, 'ledger.books_not_started', notStarted).catch((err) => {
        throw new Error(`${operation}: ${err.message}`);
      });
      if (operation === 'postJournalEntriesBatch') expect(error).toMatchObject({ message: expect.stringMatching(/^entries\[0\]: /), details: { index: 0 } });
    }
  });

  it('starting the books in a currency the ledger does not know is 422 ledger.unknown_currency; the books stay unstarted', async () => {
    await refused(bare, () => as(bareOwner).post(bare, 'books', { baseCurrency: 'QQQ', fiscalYearStart: '2026-01-01' }), 422, 'ledger.unknown_currency', 'currency QQQ is not known');
  });

  // ------------------------------------------------------------------ reports
  it('a range whose from is after its to is 400 ledger.range on the general ledger, the profit and loss and the cash flow', async () => {
    for (const path of [`accounts/${acc['1100']}/ledger?from=2026-03-31&to=2026-03-01`, 'reports/profit-and-loss?from=2026-03-31&to=2026-03-01',
      'reports/cash-flow?from=2026-03-31&to=2026-03-01']) {
      await refused(orgId, () => as(users.viewer).get(orgId, path), 400, 'ledger.range', 'from must not be after to');
    }
  });

  it('the first years of the calendar: year 0050 a year back is 0049 (not 1949); a comparative before 0001-01-01 is 400 ledger.range naming compare; from 0001-01-01 has nothing before it', async () => {
    const pl = await as(users.viewer).get(orgId, 'reports/profit-and-loss?from=0050-03-01&to=0050-03-31&compare=previous_year').expect(200);
    expect(pl.body.comparative).toEqual({ from: '0049-03-01', to: '0049-03-31', totalRevenue: '0.00', totalExpenses: '0.00', netIncome: '0.00' });
    await refused(orgId, () => as(users.viewer).get(orgId, 'reports/profit-and-loss?from=0001-03-01&to=0001-03-31&compare=previous_year'), 400, 'ledger.range',
      'compare=previous_year would start the comparative column before 0001-01-01');
    await refused(orgId, () => as(users.viewer).get(orgId, 'reports/balance-sheet?asOf=0001-01-15&compare=previous_period'), 400, 'ledger.range',
      'compare=previous_period would start the comparative column before 0001-01-01');
    const cf = await as(users.viewer).get(orgId, 'reports/cash-flow?from=0001-01-01&to=2099-12-31').expect(200);
    const { rows: [cash] } = await t.db.admin.query(`SELECT coalesce(sum(l.base_debit - l.base_credit), 0)::numeric(20, 2)::text AS balance FROM finance.journal_lines l
      WHERE l.org_id = $1 AND l.account_id = $2`, [orgId, acc['1100']]);
    expect(cf.body).toMatchObject({ openingCash: '0.00', closingCash: cash.balance, netChange: cash.balance, balanced: true });
    const gl = await as(users.viewer).get(orgId, `accounts/${acc['1100']}/ledger?from=0001-01-01`).expect(200);
    expect(gl.body.openingBalance).toBe('0.00');
  });

  // ------------------------------------------------------------------ chart of accounts
  it('an account in an unknown currency is 422 ledger.unknown_currency; archiving a group with active children is 422 ledger.account_has_children', async () => {
    await refused(orgId, () => as(users.accountant).post(orgId, 'accounts', { code: '1199', name: 'Quux cash', type: 'asset', parentId: acc['1000'], currency: 'QQQ' }),
      422, 'ledger.unknown_currency', 'currency QQQ is not known');
    await refused(orgId, () => as(users.accountant).post(orgId, `accounts/${acc['1000']}/archive`), 422, 'ledger.account_has_children', 'account 1000 has active child accounts');
  });

  it('moving an account under the 32nd level of the hierarchy is 422 ledger.hierarchy_too_deep; the account stays where it was', async () => {
    const groups: string[] = [acc['1000']];
    for (let i = 1; i <= 32; i++) groups.push(await newAccount(orgId, users.accountant, { code: `18${String(i).padStart(2, '0')}`, type: 'asset', parentId: groups[i - 1], isGroup: true }));
    const leaf = await newAccount(orgId, users.accountant, { code: '1899', type: 'asset', parentId: acc['1000'] });
    await refused(orgId, () => as(users.accountant).patch(orgId, `accounts/${leaf}`, { parentId: groups[32] }), 422, 'ledger.hierarchy_too_deep', 'account hierarchy is deeper than 32 levels');
    expect((await owner().get(orgId, `accounts/${leaf}`).expect(200)).body.parentId).toBe(acc['1000']);
  });

  // ------------------------------------------------------------------ tax codes
  it('tax codes: a rate above 100 is 400 ledger.tax_rate, a group account 422 ledger.account_not_postable, an unknown account 404, an unknown currency 422', async () => {
    const body = { code: 'HIGH', name: 'High', rate: '20', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] };
    await refused(orgId, () => as(users.accountant).post(orgId, 'tax-codes', { ...body, rate: '150' }), 400, 'ledger.tax_rate', 'rate is a percent between 0 and 100');
    await refused(orgId, () => as(users.accountant).post(orgId, 'tax-codes', { ...body, salesAccountId: acc['2000'] }), 422, 'ledger.account_not_postable', 'account 2000 is a group or archived account');
    const vat = (await as(users.accountant).post(orgId, 'tax-codes', { ...body, code: 'VAT20' }).expect(201)).body.id;
    const missing = randomUUID();
    await refused(orgId, () => as(users.accountant).patch(orgId, `tax-codes/${vat}`, { salesAccountId: missing }), 404, 'account.not_found', missing);
    await refused(orgId, () => as(users.viewer).post(orgId, `tax-codes/${vat}/calculate`, { amount: '10.00', currency: 'QQQ' }), 422, 'ledger.unknown_currency', 'currency QQQ is not known');
  });

  // ------------------------------------------------------------------ FX rates
  it('FX rates: an unknown currency is 422 ledger.unknown_currency, a rate of 0 400 ledger.rate_not_positive; nothing is set', async () => {
    const a = as(users.accountant);
    await refused(orgId, () => a.post(orgId, 'fx-rates', { currency: 'QQQ', date: '2026-03-01', rate: '0.9' }), 422, 'ledger.unknown_currency', 'currency QQQ is not known');
    await refused(orgId, () => a.post(orgId, 'fx-rates', { currency: 'USD', date: '2026-03-01', rate: '0' }), 400, 'ledger.rate_not_positive', 'rate for USD on 2026-03-01 must be positive');
  });

  it('FX rate import: unknown currency, the base currency, a rate of 0, a currency and date twice: each refuses the whole import', async () => {
    const a = as(users.accountant);
    const usd = { currency: 'USD', date: '2026-03-02', rate: '0.91' };
    const imported = (rates: object[]) => () => a.post(orgId, 'fx-rates/import', { rates });
    await refused(orgId, imported([usd, { currency: 'QQQ', date: '2026-03-02', rate: '1.5' }]), 422, 'ledger.unknown_currency', 'currency QQQ is not known');
    await refused(orgId, imported([usd, { currency: 'EUR', date: '2026-03-02', rate: '1' }]), 400, 'ledger.rate_base_currency', 'EUR is the base currency; its rate is always 1');
    await refused(orgId, imported([usd, { currency: 'GBP', date: '2026-03-02', rate: '0' }]), 400, 'ledger.rate_not_positive', 'rate for GBP on 2026-03-02 must be positive');
    await refused(orgId, imported([usd, { ...usd, rate: '0.92' }]), 400, 'ledger.rate_duplicate', 'rate for USD on 2026-03-02 appears twice');
    // an array in the place of a rate: 400 naming its index (class-validator took it for a further list of rates)
    const nested = await refused(orgId, imported([usd, [usd]]), 400, 'validation_failed', 'each element of rates must be an FX rate (an object)');
    expect(nested.details).toEqual([{ field: 'rates.1', problems: ['each element of rates must be an FX rate (an object)'] }]);
  });

  // ------------------------------------------------------------------ journal entries
  it('journal entry: the header and body keys differing is 400 ledger.idempotency_key; an unknown currency and a base-currency rate other than 1 are refused', async () => {
    const lines = [{ accountId: acc['1100'], debit: '5.00' }, { accountId: acc['3100'], credit: '5.00' }];
    await refused(orgId, () => t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.accountant.auth).set('Idempotency-Key', 'key-one')
      .send({ date: '2026-03-03', idempotencyKey: 'key-two', lines }), 400, 'ledger.idempotency_key', 'the Idempotency-Key header and idempotencyKey differ');
    await refused(orgId, () => entry('2026-03-03', lines.map((l) => ({ ...l, currency: 'QQQ', rate: '1.5' }))), 422, 'ledger.unknown_currency', 'QQQ');
    await refused(orgId, () => entry('2026-03-03', lines.map((l) => ({ ...l, rate: '2' }))), 422, 'ledger.invalid_rate', 'EUR');
  });

  it('journal entry and batch: a rounding difference without a rounding account is 422 ledger.rounding_account_missing', async () => {
    const lines = [{ accountId: plainAcc['1000'], debit: '1.00', currency: 'USD', rate: '0.333' },
      { accountId: plainAcc['3000'], credit: '0.50', currency: 'USD', rate: '0.333' }, { accountId: plainAcc['3000'], credit: '0.50', currency: 'USD', rate: '0.333' }];
    await refused(plain, () => as(plainOwner).post(plain, 'journal-entries', { date: '2026-03-04', lines }), 422, 'ledger.rounding_account_missing', /rounding/);
    await refused(plain, batchOf(plain, plainOwner, { date: '2026-03-04', lines }), 422, 'ledger.rounding_account_missing', /^entries\[0\]: .*rounding/);
  });

  it('batch (all or nothing): each posting rule refuses the request with its code, naming entries[0]; nothing is posted', async () => {
    const a = users.accountant;
    const archivedTax = (await as(a).post(orgId, 'tax-codes', { code: 'OLD5', name: 'Old', rate: '5', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201)).body.id;
    await as(a).post(orgId, `tax-codes/${archivedTax}/archive`).expect(200);
    const liveTax = (await as(a).post(orgId, 'tax-codes', { code: 'LIVE10', name: 'Live', rate: '10', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201)).body.id;
    const usdOnly = await newAccount(orgId, a, { code: '1198', type: 'asset', parentId: acc['1000'], currency: 'USD' });
    const cash = (amount: string, extra: object = {}) => [{ accountId: acc['5200'], debit: amount, ...extra }, { accountId: acc['1100'], credit: amount, ...extra }];
    const closed = await periodOf(orgId, users.owner, '2026-11-10');
    await owner().post(orgId, `periods/${closed}/close`).expect(200);
    const cases: [string, object, string | RegExp][] = [
      ['ledger.tax_code_archived', { date: '2026-03-05', lines: [{ accountId: acc['5200'], debit: '10.00', taxCodeId: archivedTax }, { accountId: acc['1100'], credit: '10.50' }] }, 'tax code OLD5 is archived'],
      ['ledger.period_closed', { date: '2026-11-10', lines: cash('1.00') }, '2026-11-01 to 2026-11-30 is closed'],
      ['ledger.no_fiscal_year', { date: '2031-01-15', lines: cash('1.00') }, 'no fiscal period covers 2031-01-15'],
      ['ledger.account_not_postable', { date: '2026-03-05', lines: [{ accountId: acc['5000'], debit: '1.00' }, { accountId: acc['1100'], credit: '1.00' }] }, 'account 5000 is a group account'],
      ['ledger.unknown_account', { date: '2026-03-05', lines: [{ accountId: '00000000-0000-4000-8000-000000000000', debit: '1.00' }, { accountId: acc['1100'], credit: '1.00' }] }, 'does not exist in this organization'],
      ['ledger.currency_not_allowed', { date: '2026-03-05', lines: [{ accountId: usdOnly, debit: '1.00' }, { accountId: acc['3100'], credit: '1.00' }] }, '1198'],
      ['ledger.unknown_currency', { date: '2026-03-05', lines: cash('1.00', { currency: 'QQQ', rate: '1.5' }) }, 'QQQ'],
      ['ledger.rate_missing', { date: '2026-03-05', lines: cash('1.00', { currency: 'CHF' }) }, 'no CHF rate on or before 2026-03-05'],
      ['ledger.invalid_rate', { date: '2026-03-05', lines: cash('1.00', { rate: '2' }) }, 'EUR'],
      ['ledger.invalid_amount', { date: '2026-03-05', lines: cash('10.001') }, 'EUR amounts have at most 2 decimals'],
      // 250 taxed lines are 500 posted lines once split into net and tax: one more than an entry takes
      ['ledger.invalid_entry', { date: '2026-03-05', lines: [...Array.from({ length: 249 }, () => ({ accountId: acc['5200'], debit: '1.00', taxCodeId: liveTax })),
        { accountId: acc['1100'], credit: '273.90', taxCodeId: liveTax }] }, 'an entry has at most 499 lines'],
    ];
    try {
      for (const [code, e, message] of cases) {
        const error = await refused(orgId, batchOf(orgId, a, e), 422, code, message).catch((err) => {
          throw new Error(`${code}: ${err.message}`);
        });
        expect(error).toMatchObject({ message: expect.stringMatching(/^entries\[0\]: /), details: { index: 0 } });
      }
    } finally {
      await owner().post(orgId, `periods/${closed}/reopen`).expect(200);
    }
  });

  // ------------------------------------------------------------------ reversals
  it('reversal: of a reversal is 422 ledger.reversal_of_reversal; dated where no fiscal year is 422 ledger.no_fiscal_year; to an archived account 422 ledger.account_not_postable', async () => {
    const a = as(users.accountant);
    const first = (await entry('2026-03-06', [{ accountId: acc['1100'], debit: '7.00' }, { accountId: acc['3100'], credit: '7.00' }]).expect(201)).body.id;
    const reversal = (await a.post(orgId, `journal-entries/${first}/reverse`).expect(201)).body.id;
    await refused(orgId, () => a.post(orgId, `journal-entries/${reversal}/reverse`), 422, 'ledger.reversal_of_reversal', 'a reversal cannot be reversed');
    const second = (await entry('2026-03-07', [{ accountId: acc['1100'], debit: '8.00' }, { accountId: acc['3100'], credit: '8.00' }]).expect(201)).body.id;
    await refused(orgId, () => a.post(orgId, `journal-entries/${second}/reverse`, { date: '2031-01-15' }), 422, 'ledger.no_fiscal_year', 'no fiscal period covers 2031-01-15');
    // an asset account posted to and emptied by a later entry (not a reversal), then archived: the first entry's reversal posts to it
    const petty = await newAccount(orgId, users.accountant, { code: '1197', type: 'asset', parentId: acc['1000'] });
    const third = (await entry('2026-03-08', [{ accountId: petty, debit: '9.00' }, { accountId: acc['3100'], credit: '9.00' }]).expect(201)).body.id;
    await entry('2026-03-09', [{ accountId: acc['3100'], debit: '9.00' }, { accountId: petty, credit: '9.00' }]).expect(201);
    await a.post(orgId, `accounts/${petty}/archive`).expect(200);
    await refused(orgId, () => a.post(orgId, `journal-entries/${third}/reverse`), 422, 'ledger.account_not_postable', 'account 1197 is archived');
    expect((await owner().get(orgId, `journal-entries/${third}`).expect(200)).body.reversedByEntryId).toBeNull();
  });

  it('two reversals of one entry (other memos) in flight together: one posts, the other is 409 ledger.idempotency_conflict or ledger.already_reversed', async () => {
    const original = (await entry('2026-03-11', [{ accountId: acc['1100'], debit: '6.00' }, { accountId: acc['3100'], credit: '6.00' }]).expect(201)).body.id;
    const before = await footprint(orgId);
    // the organization's posting lock held: both requests read the entry unreversed, then wait to post
    const holder = await t.db.admin.connect();
    const waiting = async () => Number((await t.db.admin.query(`SELECT count(*) AS n FROM pg_stat_activity
      WHERE datname = current_database() AND usename = 'omnizen_api' AND wait_event_type = 'Lock' AND wait_event IN ('transactionid', 'tuple')`)).rows[0].n);
    let answers: { status: number; body: any }[];
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT core.xact_lock(('finance.posting:' || $1::uuid::text))`, [orgId]);
      // then() sends each request now (a supertest request is sent once awaited)
      const requests = ['first', 'second'].map((memo) => as(users.accountant).post(orgId, `journal-entries/${original}/reverse`, { memo: `Reversal, ${memo}` }).then((r) => r));
      await until('both reversals wait for the posting lock', async () => (await waiting()) === 2);
      await holder.query('COMMIT');
      answers = await Promise.all(requests);
    } finally {
      holder.release();
    }
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 409]);
    const refusal = answers.find((r) => r.status === 409)!;
    // which of the two documented 409s depends on whether the second request's posting statement began before the first
    // committed (both hold the posting lock shared: the reversal key's unique index refuses it) or after (the posting
    // function reads the entry reversed): both are the operation's, and either way nothing of it is written
    expect([
      { code: 'ledger.idempotency_conflict', message: `idempotency key "reversal:${original}" was already used for a different entry` },
      { code: 'ledger.already_reversed', message: `journal entry ${original} is already reversed` },
    ]).toContainEqual(refusal.body.error);
    // one reversal, whose audit row and event: nothing of the refused one
    const posted = answers.find((r) => r.status === 201)!.body;
    const { rows } = await t.db.admin.query('SELECT id, memo FROM finance.journal_entries WHERE org_id = $1 AND reverses_entry_id = $2', [orgId, original]);
    expect(rows).toEqual([{ id: posted.id, memo: posted.memo }]);
    const after = await footprint(orgId);
    expect(Number(after['finance.journal_entries'].split(':')[0])).toBe(Number(before['finance.journal_entries'].split(':')[0]) + 1);
    expect(Number(after['core.audit_logs'].split(':')[0])).toBe(Number(before['core.audit_logs'].split(':')[0]) + 1);
  });

  // ------------------------------------------------------------------ fiscal years and periods
  it('fiscal years: closed twice is 409 ledger.year_closed; its period reopened 422 ledger.period_in_closed_year; an open period reopened 409 ledger.period_status', async () => {
    // FY2023: the earliest year of the tests below (a fiscal year cannot be created before a closed one)
    const year = (await owner().post(orgId, 'fiscal-years', { startDate: '2023-01-01' }).expect(201)).body;
    await owner().post(orgId, `fiscal-years/${year.id}/close`).expect(200);
    await refused(orgId, () => owner().post(orgId, `fiscal-years/${year.id}/close`), 409, 'ledger.year_closed', 'fiscal year 2023-01-01 to 2023-12-31 is already closed');
    await refused(orgId, () => owner().post(orgId, `periods/${year.periods[3].id}/reopen`), 422, 'ledger.period_in_closed_year', 'the fiscal year of this period is closed');
    const open = await periodOf(orgId, users.owner, '2026-05-05');
    await refused(orgId, () => owner().post(orgId, `periods/${open}/reopen`), 409, 'ledger.period_status', 'the period 2026-05-01 to 2026-05-31 is already open');
  });

  it('year-end close: its last period closed is 422 ledger.period_closed; no retained earnings account 422 ledger.retained_earnings_missing', async () => {
    const year = (await owner().post(orgId, 'fiscal-years', { startDate: '2024-01-01' }).expect(201)).body;
    const december = year.periods[year.periods.length - 1].id;
    await owner().post(orgId, `periods/${december}/close`).expect(200);
    await refused(orgId, () => owner().post(orgId, `fiscal-years/${year.id}/close`), 422, 'ledger.period_closed', 'reopen the last period (2024-12-01 to 2024-12-31)');
    // years close in order: FY2024 closes before the later years of the tests below
    await owner().post(orgId, `periods/${december}/reopen`).expect(200);
    await owner().post(orgId, `fiscal-years/${year.id}/close`).expect(200);
    const plainYear = (await as(plainOwner).get(plain, 'fiscal-years').expect(200)).body[0].id;
    await refused(plain, () => as(plainOwner).post(plain, `fiscal-years/${plainYear}/close`), 422, 'ledger.retained_earnings_missing', 'configure retainedEarningsAccountId');
  });

  it('year-end close into a retained earnings account of another currency is 422 ledger.currency_not_allowed; the year stays open', async () => {
    const year = (await owner().post(orgId, 'fiscal-years', { startDate: '2025-01-01' }).expect(201)).body;
    await entry('2025-05-01', [{ accountId: acc['1100'], debit: '10.00' }, { accountId: acc['4100'], credit: '10.00' }]).expect(201);
    const settings = (await owner().get(orgId, 'settings').expect(200)).body;
    const usdEquity = await newAccount(orgId, users.owner, { code: '3299', type: 'equity', parentId: acc['3000'], currency: 'USD' });
    await owner().patch(orgId, 'settings', { retainedEarningsAccountId: usdEquity }).expect(200);
    try {
      await refused(orgId, () => owner().post(orgId, `fiscal-years/${year.id}/close`), 422, 'ledger.currency_not_allowed', '3299');
    } finally {
      await owner().patch(orgId, 'settings', { retainedEarningsAccountId: settings.retainedEarningsAccountId }).expect(200);
    }
    expect((await t.db.admin.query('SELECT status FROM finance.fiscal_years WHERE org_id = $1 AND id = $2', [orgId, year.id])).rows[0].status).toBe('open');
  });

  it('reopening a year whose retained earnings account was emptied in a later year and archived is 422 ledger.account_not_postable; the year stays closed', async () => {
    // FY2025, the latest year closed (reopening needs no later year closed; closing needs every earlier one closed), with
    // its 10.00 of revenue from the test above, and FY2026 after it
    const year = (await owner().get(orgId, 'fiscal-years').expect(200)).body.find((y: any) => y.startDate === '2025-01-01');
    await entry('2025-05-02', [{ accountId: acc['1100'], debit: '20.00' }, { accountId: acc['4100'], credit: '20.00' }]).expect(201);
    // a retained earnings account of its own: the standard one carries other years' results
    const settings = (await owner().get(orgId, 'settings').expect(200)).body;
    const earnings = await newAccount(orgId, users.owner, { code: '3298', type: 'equity', parentId: acc['3000'] });
    await owner().patch(orgId, 'settings', { retainedEarningsAccountId: earnings }).expect(200);
    try {
      await owner().post(orgId, `fiscal-years/${year.id}/close`).expect(200);
      // the result moved on to share capital in 2026: the account is zero, and archived
      await entry('2026-03-10', [{ accountId: earnings, debit: '30.00' }, { accountId: acc['3100'], credit: '30.00' }]).expect(201);
      await owner().post(orgId, `accounts/${earnings}/archive`).expect(200);
    } finally {
      await owner().patch(orgId, 'settings', { retainedEarningsAccountId: settings.retainedEarningsAccountId }).expect(200);
    }
    await refused(orgId, () => owner().post(orgId, `fiscal-years/${year.id}/reopen`), 422, 'ledger.account_not_postable', 'account 3298 is archived');
    expect((await t.db.admin.query('SELECT status FROM finance.fiscal_years WHERE org_id = $1 AND id = $2', [orgId, year.id])).rows[0].status).toBe('closed');
  });

  // ------------------------------------------------------------------ FX revaluation
  it('revaluation: no FX accounts is 422 ledger.fx_accounts_missing', async () => {
    await refused(plain, () => as(plainOwner).post(plain, 'fx-revaluations', { date: '2026-03-31' }), 422, 'ledger.fx_accounts_missing', 'configure fxUnrealizedGainAccountId');
  });

  it('revaluation: a closed period, no fiscal year, an archived or a foreign FX gain account: each refuses it, nothing is posted', async () => {
    // a USD balance carried at 0.9, and a rate of 1.0 from 2026-02-01: a gain to post
    await entry('2026-02-02', [{ accountId: acc['1100'], debit: '100.00', currency: 'USD', rate: '0.9' }, { accountId: acc['3100'], credit: '90.00' }]).expect(201);
    await as(users.accountant).post(orgId, 'fx-rates', { currency: 'USD', date: '2026-02-01', rate: '1.0' }).expect(201);
    await as(users.accountant).post(orgId, 'fx-rates', { currency: 'CHF', date: '2026-02-01', rate: '1.05' }).expect(201);
    const revalue = (date: string) => () => as(users.accountant).post(orgId, 'fx-revaluations', { date });
    const october = await periodOf(orgId, users.owner, '2026-10-15');
    await owner().post(orgId, `periods/${october}/close`).expect(200);
    try {
      await refused(orgId, revalue('2026-10-15'), 422, 'ledger.period_closed', '2026-10-01 to 2026-10-31 is closed');
    } finally {
      await owner().post(orgId, `periods/${october}/reopen`).expect(200);
    }
    await refused(orgId, revalue('2031-01-15'), 422, 'ledger.no_fiscal_year', 'no fiscal period covers 2031-01-15');
    const settings = (await owner().get(orgId, 'settings').expect(200)).body;
    const archivedGain = await newAccount(orgId, users.owner, { code: '4990', type: 'revenue', parentId: acc['4000'] });
    const usdGain = await newAccount(orgId, users.owner, { code: '4991', type: 'revenue', parentId: acc['4000'], currency: 'USD' });
    try {
      await owner().patch(orgId, 'settings', { fxUnrealizedGainAccountId: archivedGain }).expect(200);
      await owner().post(orgId, `accounts/${archivedGain}/archive`).expect(200);
      await refused(orgId, revalue('2026-03-31'), 422, 'ledger.account_not_postable', 'account 4990 is archived');
      await owner().patch(orgId, 'settings', { fxUnrealizedGainAccountId: usdGain }).expect(200);
      await refused(orgId, revalue('2026-03-31'), 422, 'ledger.currency_not_allowed', '4991');
    } finally {
      await owner().patch(orgId, 'settings', { fxUnrealizedGainAccountId: settings.fxUnrealizedGainAccountId }).expect(200);
    }
  });

  it('amounts beyond what a line stores: the year-end close and the revaluation are 422 ledger.invalid_amount; nothing is posted', async () => {
    const bigOwner = await registerUser(t, 'big-owner');
    const big = await createOrg(t, bigOwner, 'Big Numbers Ltd');
    await onPlan(t, big, 'professional');
    const bigAcc = await startBooks(t, big, bigOwner);
    const b = as(bigOwner);
    // two revenue accounts of base 9,999,999,999,999 × 999 each: the closing entry's retained earnings line would carry both
    const sales2 = await newAccount(big, bigOwner, { code: '4190', type: 'revenue', parentId: bigAcc['4000'] });
    const bank2 = await newAccount(big, bigOwner, { code: '1190', type: 'asset', parentId: bigAcc['1000'] });
    for (const [bank, sales] of [[bigAcc['1100'], bigAcc['4100']], [bank2, sales2]]) {
      await b.post(big, 'journal-entries', { date: '2026-04-01', lines: [{ accountId: bank, debit: '9999999999999', currency: 'USD', rate: '999' },
        { accountId: sales, credit: '9999999999999', currency: 'USD', rate: '999' }] }).expect(201);
    }
    const year = (await b.get(big, 'fiscal-years').expect(200)).body[0].id;
    await refused(big, () => b.post(big, `fiscal-years/${year}/close`), 422, 'ledger.invalid_amount', /./);
    await b.post(big, 'fx-rates', { currency: 'USD', date: '2026-04-02', rate: '999999999999' }).expect(201);
    await refused(big, () => b.post(big, 'fx-revaluations', { date: '2026-04-30' }), 422, 'ledger.invalid_amount', /./);
  });
});
