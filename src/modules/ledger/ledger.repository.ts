import type { Decimal } from 'decimal.js';
import { sql, type Selectable } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { translateDatabaseError } from '../../platform/errors/database-errors.js';
import { DOMAIN_EVENT_TOPIC } from '../../platform/events/events.js';
import { prepare, qb, type DB } from '../../platform/database/query-builder.js';
import { locks, lockId } from '../../platform/database/locks.js';
import type {
  AccountDto, CurrencyDto, FiscalPeriodDto, FiscalYearDto, FxRateDto, JournalEntryDto, JournalLineDto, LedgerSettingsDto, TaxCodeDto,
} from './ledger.dto.js';
import { LedgerErrors } from './ledger.errors.js';

// The only place with ledger SQL: typed Kysely queries; raw SQL (with typed rows) for the calls of the posting and
// totals functions and the set-based reports. Numerics and dates are read as text: money never passes through a float.

/**
 * The source_ref of the entries that take off, on the date of an autoReverse reversal, what the reversal would take off
 * an item that a settlement (or a void) dated before it no longer carries (JournalService.settlePendingReversals).
 */
export const FX_SETTLED_SHARE_REF = 'fx-revaluation:settled-share';

/**
 * The source_ref of the entries that move, on the date of a settlement between a revaluation and its autoReverse
 * reversal, the settled share's revaluation result from the unrealized to the realized FX accounts (or back, for the
 * reversal of such a settlement): JournalService.settlePendingReversals.
 */
export const FX_REALIZED_SHARE_REF = 'fx-revaluation:realized-share';

const txt = (col: string) => sql<string>`${sql.ref(col)}::text`;

/** Where a general-ledger page ends: the last line's entry_date, its entry's seq and its line_no. */
export type GeneralLedgerPosition = { d: string; e: string; n: string };

type AccountRow = Selectable<DB['finance.accounts']>;
type TaxCodeRow = Omit<Selectable<DB['finance.tax_codes']>, 'rate' | 'org_id' | 'created_at' | 'updated_at'> & { rate: string };
type PeriodRow = Pick<Selectable<DB['finance.fiscal_periods']>, 'id' | 'fiscal_year_id' | 'period_no' | 'status' | 'closed_at'> & { start_date: string; end_date: string };
type LineRow = Pick<Selectable<DB['finance.journal_lines']>, 'entry_id' | 'line_no' | 'account_id' | 'currency' | 'description' | 'workspace_id'
  | 'counterparty_type' | 'counterparty_id' | 'is_rounding' | 'tax_code_id' | 'tax_role'>
  & { account_code: string; debit: string; credit: string; rate: string; base_debit: string; base_credit: string };

const toAccount = (r: AccountRow): AccountDto => ({
  id: r.id, code: r.code, name: r.name, type: r.type, parentId: r.parent_id, isGroup: r.is_group, currency: r.currency,
  cashFlowClass: r.cash_flow_class, archivedAt: r.archived_at, createdAt: r.created_at, updatedAt: r.updated_at,
});
const toSettings = (r: Selectable<DB['finance.settings']>): LedgerSettingsDto => ({
  baseCurrency: r.base_currency, roundingAccountId: r.rounding_account_id, retainedEarningsAccountId: r.retained_earnings_account_id,
  fxGainAccountId: r.fx_gain_account_id, fxLossAccountId: r.fx_loss_account_id,
  fxUnrealizedGainAccountId: r.fx_unrealized_gain_account_id, fxUnrealizedLossAccountId: r.fx_unrealized_loss_account_id,
});
const toTaxCode = (r: TaxCodeRow): TaxCodeDto => ({
  id: r.id, code: r.code, name: r.name, rate: r.rate, inclusive: r.inclusive, salesAccountId: r.sales_account_id,
  purchaseAccountId: r.purchase_account_id, archivedAt: r.archived_at,
});
const toPeriod = (r: PeriodRow): FiscalPeriodDto => ({
  id: r.id, fiscalYearId: r.fiscal_year_id, periodNo: r.period_no, startDate: r.start_date, endDate: r.end_date, status: r.status, closedAt: r.closed_at,
});
const toLine = (r: LineRow): JournalLineDto => ({
  lineNo: r.line_no, accountId: r.account_id, accountCode: r.account_code, currency: r.currency, debit: r.debit, credit: r.credit,
  rate: r.rate, baseDebit: r.base_debit, baseCredit: r.base_credit, description: r.description, workspaceId: r.workspace_id,
  counterpartyType: r.counterparty_type, counterpartyId: r.counterparty_id, isRounding: r.is_rounding,
  taxCodeId: r.tax_code_id ?? null, taxRole: r.tax_role ?? null,
});

const PERIOD_COLS = ['id', 'fiscal_year_id', 'period_no', txt('start_date').as('start_date'), txt('end_date').as('end_date'), 'status', 'closed_at'] as const;
const TAX_CODE_COLS = ['id', 'code', 'name', txt('rate').as('rate'), 'inclusive', 'sales_account_id', 'purchase_account_id', 'archived_at'] as const;
const periods = qb.selectFrom('finance.fiscal_periods');

// read by every posting and most ledger requests: compiled once
const settingsOf = prepare((p: { orgId: string }) => qb.selectFrom('finance.settings').selectAll().where('org_id', '=', p.orgId));
const accountOf = prepare((p: { orgId: string; id: string }) => qb.selectFrom('finance.accounts').selectAll().where('org_id', '=', p.orgId).where('id', '=', p.id));

/** What the posting function writes into the posting's audit row besides the actor (taken from the claims). */
export interface PostingAudit {
  action: 'ledger.entry_posted' | 'ledger.entry_reversed' | 'ledger.fx_revaluation_posted' | 'ledger.year_end_entry_posted';
  requestId?: string;
  ip?: string;
}

export interface EntryFilter {
  from?: string;
  to?: string;
  accountId?: string;
  source?: string;
  counterpartyType?: string;
  counterpartyId?: string;
  minAmount?: string;
  maxAmount?: string;
  memo?: string;
}

export interface BatchRow {
  index: number;
  status: 'posted' | 'replayed' | 'rejected';
  id?: string;
  error?: { code: string; message: string };
}

export interface Totals {
  account_id: string;
  currency: string;
  debit: string;
  credit: string;
  base_debit: string;
  base_credit: string;
}

export const ledgerRepository = {
  // ---------------------------------------------------------------- settings and currencies
  async currencies(db: Db): Promise<CurrencyDto[]> {
    const rows = await db.run(qb.selectFrom('finance.currencies').select(['code', 'name', 'minor_units as minorUnits']).orderBy('code'));
    return rows;
  },

  async minorUnits(db: Db, currency: string): Promise<number | undefined> {
    const [row] = await db.run(qb.selectFrom('finance.currencies').select('minor_units').where('code', '=', currency));
    return row?.minor_units;
  },

  async settings(db: Db, orgId: string): Promise<LedgerSettingsDto | undefined> {
    const [row] = await db.run(settingsOf({ orgId }));
    return row && toSettings(row);
  },

  async createSettings(db: Db, orgId: string, baseCurrency: string): Promise<void> {
    await db.run(qb.insertInto('finance.settings').values({ org_id: orgId, base_currency: baseCurrency }));
  },

  async updateSettings(db: Db, orgId: string, p: Partial<LedgerSettingsDto>): Promise<LedgerSettingsDto> {
    // absent (or null) leaves an account as it is: Kysely leaves undefined values out of SET
    const [row] = await db.run(qb.updateTable('finance.settings').set({
      rounding_account_id: p.roundingAccountId ?? undefined,
      retained_earnings_account_id: p.retainedEarningsAccountId ?? undefined,
      fx_gain_account_id: p.fxGainAccountId ?? undefined,
      fx_loss_account_id: p.fxLossAccountId ?? undefined,
      fx_unrealized_gain_account_id: p.fxUnrealizedGainAccountId ?? undefined,
      fx_unrealized_loss_account_id: p.fxUnrealizedLossAccountId ?? undefined,
      updated_at: sql<Date>`now()`,
    }).where('org_id', '=', orgId).returningAll());
    return toSettings(row);
  },

  // ---------------------------------------------------------------- accounts
  async listAccounts(db: Db, orgId: string, includeArchived: boolean): Promise<AccountDto[]> {
    let query = qb.selectFrom('finance.accounts').selectAll().where('org_id', '=', orgId);
    if (!includeArchived) query = query.where('archived_at', 'is', null);
    return (await db.run(query.orderBy('code'))).map(toAccount);
  },

  /** The types of these accounts of the organization, by id (lower case); an id that names none is left out. */
  async accountTypes(db: Db, orgId: string, ids: string[]): Promise<Map<string, string>> {
    const rows = await db.run(qb.selectFrom('finance.accounts').select(['id', 'type']).where('org_id', '=', orgId).where(sql<boolean>`id = any(${ids}::uuid[])`));
    return new Map(rows.map((r) => [r.id, r.type]));
  },

  async getAccount(db: Db, orgId: string, id: string): Promise<AccountDto | undefined> {
    const [row] = await db.run(accountOf({ orgId, id }));
    return row && toAccount(row);
  },

  async createAccount(db: Db, orgId: string, a: { code: string; name: string; type: string; parentId?: string | null; isGroup?: boolean; currency?: string | null; cashFlowClass?: string | null }): Promise<AccountDto> {
    const [row] = await translateDatabaseError(db.run(qb.insertInto('finance.accounts').values({
      org_id: orgId, code: a.code, name: a.name, type: a.type, parent_id: a.parentId ?? null, is_group: a.isGroup ?? false,
      currency: a.currency ?? null, cash_flow_class: a.cashFlowClass ?? null,
    }).returningAll()), {
      '23505': (e) => (e.constraint === 'accounts_org_id_code_key' ? LedgerErrors.error('ledger.account_code_taken', `account code ${a.code} is already used in this chart of accounts`) : undefined),
    });
    return toAccount(row);
  },

  async updateAccount(db: Db, orgId: string, id: string, p: { name?: string; parentId?: string | null; isGroup?: boolean; cashFlowClass?: string }): Promise<AccountDto | undefined> {
    // absent leaves a column as it is (null too, except for parentId: null detaches the account)
    const set = {
      name: p.name ?? undefined, parent_id: p.parentId, is_group: p.isGroup ?? undefined, cash_flow_class: p.cashFlowClass ?? undefined,
    };
    if (Object.values(set).every((v) => v === undefined)) return this.getAccount(db, orgId, id);
    const [row] = await db.run(qb.updateTable('finance.accounts').set(set).where('org_id', '=', orgId).where('id', '=', id).returningAll());
    return row && toAccount(row);
  },

  async archiveAccount(db: Db, orgId: string, id: string): Promise<AccountDto | undefined> {
    const [row] = await db.run(qb.updateTable('finance.accounts').set({ archived_at: sql<Date>`coalesce(archived_at, now())` })
      .where('org_id', '=', orgId).where('id', '=', id).returningAll());
    return row && toAccount(row);
  },

  async hasChildren(db: Db, orgId: string, id: string): Promise<boolean> {
    const rows = await db.run(qb.selectFrom('finance.accounts').select('id')
      .where('org_id', '=', orgId).where('parent_id', '=', id).where('archived_at', 'is', null).limit(1));
    return rows.length > 0;
  },

  // ---------------------------------------------------------------- balances and totals
  /** Everything posted: running balances (sums of the slots), no journal line is read. */
  async runningTotals(db: Db, orgId: string, accountId?: string): Promise<Totals[]> {
    return db.$queryRaw<Totals[]>`
      SELECT account_id, currency, sum(debit)::text AS debit, sum(credit)::text AS credit,
             sum(base_debit)::text AS base_debit, sum(base_credit)::text AS base_credit
      FROM finance.account_balances
      WHERE org_id = ${orgId}::uuid AND (${accountId ?? null}::uuid IS NULL OR account_id = ${accountId ?? null}::uuid)
      GROUP BY account_id, currency`;
  },

  /** Base-currency net per account (debit minus credit), non-zero only, with the account: one query. */
  async trialBalance(db: Db, orgId: string, asOf: string | null): Promise<{ account_id: string; code: string; name: string; type: string; net: string }[]> {
    return db.$queryRaw`
      WITH t AS (
        SELECT account_id, sum(base_debit) - sum(base_credit) AS net FROM finance.account_balances
        WHERE ${asOf}::date IS NULL AND org_id = ${orgId}::uuid GROUP BY account_id
        UNION ALL
        SELECT account_id, sum(base_debit) - sum(base_credit) FROM finance.account_totals(NULL, ${asOf}::date)
        WHERE ${asOf}::date IS NOT NULL GROUP BY account_id)
      SELECT a.id AS account_id, a.code, a.name, a.type, t.net::text AS net
      FROM t JOIN finance.accounts a ON a.org_id = ${orgId}::uuid AND a.id = t.account_id
      WHERE t.net <> 0 ORDER BY a.code`;
  },

  /** Sums over a date range from per-period totals (plus the lines of the periods cut by the range ends). */
  async totals(db: Db, from: string | null, to: string | null, accountId?: string): Promise<Totals[]> {
    return db.$queryRaw<Totals[]>`
      SELECT account_id, currency, debit::text, credit::text, base_debit::text, base_credit::text
      FROM finance.account_totals(${from}::date, ${to}::date, ${accountId ?? null}::uuid)`;
  },

  /**
   * Sums per account and currency of the tax lines (output_tax, input_tax) in another currency than the base currency
   * dated up to `to`: the tax of a foreign-currency line posted before tax lines were in the base currency (and those
   * entries' reversals). They keep their transaction-rate base value: the revaluation leaves them out of the balances it
   * values (as far as they are still in it: JournalService's unsettledTax). Filtered on tax_code_id (a tax line has a
   * tax code), read by the organization's date index.
   */
  async foreignTaxTotals(db: Db, orgId: string, to: string, baseCurrency: string): Promise<Totals[]> {
    return db.$queryRaw<Totals[]>`
      SELECT l.account_id, l.currency, sum(l.debit)::text AS debit, sum(l.credit)::text AS credit,
             sum(l.base_debit)::text AS base_debit, sum(l.base_credit)::text AS base_credit
      FROM finance.journal_lines l
      WHERE l.org_id = ${orgId}::uuid AND l.tax_code_id IS NOT NULL AND l.entry_date <= ${to}::date
        AND l.tax_role IN ('output_tax', 'input_tax') AND l.currency <> ${baseCurrency}
      GROUP BY l.account_id, l.currency`;
  },

  /** Sums of the closing entries (source year_end: year-end closes and their reversals) dated in [from, to]. */
  async yearEndTotals(db: Db, orgId: string, from: string | null, to: string | null): Promise<Totals[]> {
    return db.$queryRaw<Totals[]>`
      SELECT l.account_id, l.currency, sum(l.debit)::text AS debit, sum(l.credit)::text AS credit,
             sum(l.base_debit)::text AS base_debit, sum(l.base_credit)::text AS base_credit
      FROM finance.journal_entries e
      JOIN finance.journal_lines l ON l.org_id = e.org_id AND l.entry_id = e.id
      WHERE e.org_id = ${orgId}::uuid AND e.source = 'year_end'
        AND (${from}::date IS NULL OR e.entry_date >= ${from}::date) AND (${to}::date IS NULL OR e.entry_date <= ${to}::date)
      GROUP BY l.account_id, l.currency`;
  },

  /**
   * Sums of the opening-balance entries (source opening_balance: balances brought from former books, and their
   * reversals) dated in [from, to], read by journal_entries_opening_balance_idx.
   */
  async openingBalanceTotals(db: Db, orgId: string, from: string, to: string): Promise<Totals[]> {
    return db.$queryRaw<Totals[]>`
      SELECT l.account_id, l.currency, sum(l.debit)::text AS debit, sum(l.credit)::text AS credit,
             sum(l.base_debit)::text AS base_debit, sum(l.base_credit)::text AS base_credit
      FROM finance.journal_entries e
      JOIN finance.journal_lines l ON l.org_id = e.org_id AND l.entry_id = e.id
      WHERE e.org_id = ${orgId}::uuid AND e.source = 'opening_balance' AND e.entry_date BETWEEN ${from}::date AND ${to}::date
      GROUP BY l.account_id, l.currency`;
  },

  /**
   * Base net (debit − credit) per account of the lines in [from, to] that carry no amount in their own (foreign)
   * currency, for the given accounts: what changed their base value without moving any currency (FX revaluations and
   * their reversals). Read from journal_lines_base_only_idx, which holds only such lines.
   */
  async baseOnlyTotals(db: Db, orgId: string, from: string, to: string, baseCurrency: string, accountIds: string[]): Promise<{ account_id: string; base_net: string }[]> {
    if (!accountIds.length) return [];
    return db.$queryRaw`
      SELECT l.account_id, (sum(l.base_debit) - sum(l.base_credit))::text AS base_net
      FROM finance.journal_lines l
      WHERE l.org_id = ${orgId}::uuid AND l.account_id = ANY(${accountIds}::uuid[]) AND l.debit = 0 AND l.credit = 0
        AND l.entry_date BETWEEN ${from}::date AND ${to}::date AND l.currency <> ${baseCurrency}
      GROUP BY l.account_id`;
  },

  /**
   * The cash-flow report's split of the entries in [from, to] with an investing or financing line
   * (finance.cash_flow_split_between, the one definition of the rule: finance.cash_flow_split, which semantic.v_cash_flow
   * reads, is it over open bounds), summed per account, credit-positive: what of the investing and financing lines no
   * cash paid (`non_cash`), the same with the realized gains and losses (`disclosed`), and the operating adjustment of
   * revenue and expense accounts (`adjustment`). Closing entries (source year_end) and opening-balance entries (source
   * opening_balance) are left out, as the report leaves them out. The range reaches both the entries to split (the investing and financing accounts' index) and their lines:
   * a month reads that month's lines only (the view filtered on entry_date found the entries over the whole organization).
   * `income_statement` is the part of `disclosed` from entries whose other side is the income statement only: lines on
   * investing or financing accounts of one of the two sections and on revenue and expense accounts, nothing else (no cash,
   * no operating balance-sheet account). Depreciation, amortisation, an impairment or a write-off: a non-cash expense or
   * income, an operating adjustment under the indirect method rather than a non-cash transaction (IAS 7.43). The split
   * has a row for each investing, financing, revenue and expense account of an entry, so an entry is such when it has as
   * many rows as its lines have accounts.
   */
  async cashFlowSplit(db: Db, orgId: string, from: string, to: string): Promise<{ account_id: string; non_cash: string; disclosed: string; income_statement: string; adjustment: string }[]> {
    return db.$queryRaw`
      WITH s AS (
        SELECT s.entry_id, s.account_id, s.kind, s.non_cash, s.disclosed, s.adjustment
        FROM finance.cash_flow_split_between(${from}::date, ${to}::date) s
        WHERE s.org_id = ${orgId}::uuid
          AND s.entry_id NOT IN (
            SELECT e.id FROM finance.journal_entries e
            WHERE e.org_id = ${orgId}::uuid AND e.source IN ('year_end', 'opening_balance') AND e.entry_date BETWEEN ${from}::date AND ${to}::date)),
      income_statement AS (
        SELECT s.entry_id FROM s GROUP BY s.entry_id
        -- the lines counted only for the entries that can be such (CASE: evaluated in that order)
        HAVING CASE WHEN bool_or(s.kind IN ('income', 'fx')) AND NOT (bool_or(s.kind = 'investing') AND bool_or(s.kind = 'financing'))
          THEN count(*) = (SELECT count(DISTINCT l.account_id) FROM finance.journal_lines l
            WHERE l.org_id = ${orgId}::uuid AND l.entry_id = s.entry_id AND l.entry_date BETWEEN ${from}::date AND ${to}::date)
          ELSE false END)
      SELECT s.account_id, sum(s.non_cash)::text AS non_cash, sum(s.disclosed)::text AS disclosed,
        sum(CASE WHEN s.entry_id IN (SELECT i.entry_id FROM income_statement i) THEN s.disclosed ELSE 0 END)::numeric(20, 4)::text AS income_statement,
        sum(s.adjustment)::text AS adjustment
      FROM s GROUP BY s.account_id`;
  },

  /** Base-currency sums of the taxed lines in [from, to] per tax code and role (output/input, base/tax). */
  async vatTotals(db: Db, orgId: string, from: string, to: string): Promise<{ tax_code_id: string; tax_role: string; base_debit: string; base_credit: string }[]> {
    return db.$queryRaw`
      SELECT l.tax_code_id, l.tax_role, sum(l.base_debit)::text AS base_debit, sum(l.base_credit)::text AS base_credit
      FROM finance.journal_lines l
      WHERE l.org_id = ${orgId}::uuid AND l.tax_code_id IS NOT NULL AND l.entry_date BETWEEN ${from}::date AND ${to}::date
      GROUP BY l.tax_code_id, l.tax_role`;
  },

  /**
   * One page of an account's lines in (entry_date, entry seq, line_no) order: an entry's lines together, the entries of
   * a date in posting order. journal_lines_account_idx is that order (20270211000100): a page reads its rows from the
   * cursor on and stops, whatever a date holds. Only the bounds given are in the statement (a text per combination,
   * planned with its values): an `$n IS NULL OR ...` bound is no index condition in a generic plan (which a named
   * statement may keep after five executions), and such a plan could read every line before the cursor.
   */
  async generalLedger(db: Db, orgId: string, accountId: string, from: string | null, to: string | null,
    after: GeneralLedgerPosition | undefined, limit: number) {
    return db.run(qb.selectFrom('finance.journal_lines as l')
      .innerJoin('finance.journal_entries as e', (j) => j.onRef('e.org_id', '=', 'l.org_id').onRef('e.id', '=', 'l.entry_id'))
      .select(['l.entry_id', 'l.line_no', txt('l.entry_date').as('entry_date'), txt('l.entry_seq').as('entry_seq'), 'e.memo',
        'l.description', 'l.currency', txt('l.debit').as('debit'), txt('l.credit').as('credit'),
        txt('l.base_debit').as('base_debit'), txt('l.base_credit').as('base_credit')])
      .where('l.org_id', '=', orgId).where('l.account_id', '=', accountId)
      .$if(from !== null, (b) => b.where('l.entry_date', '>=', sql<Date>`${from}::date`))
      .$if(to !== null, (b) => b.where('l.entry_date', '<=', sql<Date>`${to}::date`))
      // line_no is a smallint: the cursor's number compared as a bigint (a forged one larger than a smallint is no error)
      .$if(after !== undefined, (b) => b.where(sql<boolean>`(l.entry_date, l.entry_seq, l.line_no) > (${after!.d}::date, ${after!.e}::bigint, ${after!.n}::bigint)`))
      .orderBy('l.entry_date').orderBy('l.entry_seq').orderBy('l.line_no')
      .limit(limit + 1));
  },

  // ---------------------------------------------------------------- FX rates
  /** Upserts the rates; answers how many were written and the rates they replaced as they were (for the audit). */
  async setRates(db: Db, orgId: string, rates: { currency: string; date: string; rate: string }[], source: 'manual' | 'import'):
    Promise<{ written: number; replaced: { currency: string; date: string; rate: string; source: string }[] }> {
    // every part of the statement reads the snapshot taken before the upsert: `old` sees the rates it replaces
    const [row] = await db.$queryRaw<{ written: number; replaced: { currency: string; date: string; rate: string; source: string }[] }[]>`
      WITH x AS (
        SELECT * FROM jsonb_to_recordset(${JSON.stringify(rates.map((r) => ({ currency: r.currency, rate_date: r.date, rate: r.rate })))}::jsonb)
          AS x(currency text, rate_date date, rate numeric)),
      old AS (
        SELECT f.currency, f.rate_date::text AS date, f.rate::text AS rate, f.source FROM finance.fx_rates f
        JOIN x ON f.org_id = ${orgId}::uuid AND f.currency = x.currency AND f.rate_date = x.rate_date),
      up AS (
        INSERT INTO finance.fx_rates (org_id, currency, rate_date, rate, source)
        SELECT ${orgId}::uuid, x.currency, x.rate_date, x.rate, ${source} FROM x
        ON CONFLICT (org_id, currency, rate_date) DO UPDATE SET rate = excluded.rate, source = excluded.source, updated_at = now()
        RETURNING 1)
      SELECT (SELECT count(*) FROM up)::int AS written,
             coalesce((SELECT jsonb_agg(old ORDER BY old.currency, old.date) FROM old), '[]'::jsonb) AS replaced`;
    return row;
  },

  /** By currency, newest first; `after` is the last (currency, date) of the previous page. */
  async listRates(db: Db, orgId: string, q: { currency?: string; from?: string; to?: string; after?: { c: string; d: string }; limit: number }): Promise<FxRateDto[]> {
    return db.$queryRaw<FxRateDto[]>`
      SELECT currency, rate_date::text AS date, rate::text AS rate, source FROM finance.fx_rates
      WHERE org_id = ${orgId}::uuid
        AND (${q.currency ?? null}::text IS NULL OR currency = ${q.currency ?? null})
        AND (${q.from ?? null}::date IS NULL OR rate_date >= ${q.from ?? null}::date)
        AND (${q.to ?? null}::date IS NULL OR rate_date <= ${q.to ?? null}::date)
        AND (${q.after?.c ?? null}::text IS NULL OR currency > ${q.after?.c ?? null}
             OR (currency = ${q.after?.c ?? null} AND rate_date < ${q.after?.d ?? null}::date))
      ORDER BY currency, rate_date DESC LIMIT ${q.limit + 1}`;
  },

  async effectiveRate(db: Db, currency: string, date: string): Promise<string | null> {
    const [row] = await db.$queryRaw<{ rate: string | null }[]>`SELECT finance.effective_rate(${currency}, ${date}::date)::text AS rate`;
    return row.rate;
  },

  /** The rate table's latest rate of `currency` on or before `date`, with the day it is effective from; undefined when none. */
  async tableRateOn(db: Db, orgId: string, currency: string, date: string): Promise<{ rate: string; date: string } | undefined> {
    const [row] = await db.$queryRaw<{ rate: string; date: string }[]>`
      SELECT rate::text AS rate, rate_date::text AS date FROM finance.fx_rates
      WHERE org_id = ${orgId}::uuid AND currency = ${currency} AND rate_date <= ${date}::date
      ORDER BY rate_date DESC LIMIT 1`;
    return row;
  },

  /**
   * The reversals dated after `date` of FX revaluations dated on or before it (an autoReverse reversal posted ahead for
   * the next period's first day), latest revaluation first: a revaluation as of `date` without autoReverse would be
   * measured against a value such a reversal undoes. A revaluation entry is the ledger's own (source system) without a
   * source reference or key (the compensations and realized shares have a reference, revenue recognition a key) and with
   * lines that move only a base value (no amount in their currency).
   */
  async revaluationReversalsAfter(db: Db, orgId: string, date: string): Promise<{ revaluationDate: string; reversalDate: string }[]> {
    return db.$queryRaw<{ revaluationDate: string; reversalDate: string }[]>`
      SELECT DISTINCT o.entry_date::text AS "revaluationDate", r.entry_date::text AS "reversalDate"
      FROM finance.journal_entries r
      JOIN finance.journal_entries o ON o.org_id = r.org_id AND o.id = r.reverses_entry_id
      WHERE r.org_id = ${orgId}::uuid AND r.entry_date > ${date}::date AND r.source = 'system'
        AND o.source = 'system' AND o.source_ref IS NULL AND o.idempotency_key IS NULL AND o.entry_date <= ${date}::date
        AND EXISTS (SELECT 1 FROM finance.journal_lines l WHERE l.org_id = o.org_id AND l.entry_id = o.id AND l.debit = 0 AND l.credit = 0)
      ORDER BY 1 DESC, 2`;
  },

  /**
   * A revaluation entry (or its reversal) that revalued open receivables or payables item by item: reversed alone, the
   * AR or AP account would leave the aging, which keeps the items' changes.
   */
  async revaluationEntryOwner(db: Db, orgId: string, entryId: string): Promise<string | undefined> {
    const [row] = await db.$queryRaw<{ date: string; realized: boolean }[]>`
      SELECT x.revaluation_date::text AS date, false AS realized FROM finance.fx_revaluation_items x
      JOIN finance.journal_entries e ON e.org_id = x.org_id AND e.id = x.entry_id AND e.source = 'system'
      WHERE x.org_id = ${orgId}::uuid AND x.entry_id = ${entryId}::uuid
      UNION ALL SELECT entry_date::text, true FROM finance.journal_entries WHERE org_id = ${orgId}::uuid AND id = ${entryId}::uuid AND source_ref = ${FX_REALIZED_SHARE_REF}
      LIMIT 1`;
    if (row?.realized) return `the settlement of a revalued receivable or payable dated ${row.date} (its revaluation result realized; correct the settlement instead)`;
    return row && `the FX revaluation of open receivables and payables as of ${row.date} (revalue again as of a later date instead)`;
  },

  /**
   * Per document, the latest date of a revaluation row that is in the books from its own date on: a revaluation, or what
   * a void took off; not the rows posted ahead for a later date (an autoReverse reversal, dated the next period's first
   * day, and what a settlement before it compensated of it: FX_SETTLED_SHARE_REF), nor what a credit note took off (a
   * settlement: the subledger orders settlements of a revalued item on its own).
   */
  async lastRevaluations(db: Db, orgId: string, documentIds: string[]): Promise<{ documentId: string; date: string }[]> {
    if (!documentIds.length) return [];
    return db.$queryRaw<{ documentId: string; date: string }[]>`
      SELECT x.document_id::text AS "documentId", max(x.revaluation_date)::text AS date
      FROM finance.fx_revaluation_items x JOIN finance.journal_entries e ON e.org_id = x.org_id AND e.id = x.entry_id
      WHERE x.org_id = ${orgId}::uuid AND x.document_id = any(${documentIds}::uuid[])
        AND e.reverses_entry_id IS NULL AND e.source_ref IS DISTINCT FROM ${FX_SETTLED_SHARE_REF} AND e.source = 'system'
      GROUP BY x.document_id`;
  },

  /**
   * Per document of `documentIds`, the dates after `date` of its revaluation rows (the reversals posted ahead of a
   * settlement dated `date`, and earlier settlements' compensations of them; not what a credit note took off, a
   * settlement of its own), in date order. One query for all the documents of a settlement.
   */
  async revaluationDatesAfter(db: Db, orgId: string, documentIds: string[], date: string): Promise<{ documentId: string; date: string }[]> {
    if (!documentIds.length) return [];
    return db.$queryRaw<{ documentId: string; date: string }[]>`
      SELECT DISTINCT x.document_id::text AS "documentId", x.revaluation_date::text AS date
      FROM finance.fx_revaluation_items x JOIN finance.journal_entries e ON e.org_id = x.org_id AND e.id = x.entry_id AND e.source = 'system'
      WHERE x.org_id = ${orgId}::uuid AND x.document_id = any(${documentIds}::uuid[]) AND x.revaluation_date > ${date}::date
      ORDER BY 2, 1`;
  },

  /**
   * Every revaluation row of `documentIds` dated up to `asOf` (revaluations, their reversals, the compensations of
   * reversals posted ahead, what a void or a credit note took off), in date and insertion order: each one's entry, date,
   * change (as the aging shows it) and the rate it left the item carried at; `reverses`, the entry a reversal's entry
   * reverses; `compensation`, a row of a settlement's compensation (FX_SETTLED_SHARE_REF); `credited`, a row of what a
   * credit note took off (its own entry, not the ledger's); `fxAccountId`, the unrealized FX account its pair of lines
   * moved (null: an older row its entry did not tell, migration 20270210250100). Their sum per document is what it
   * carries as of `asOf`.
   */
  async revaluationRowsOf(db: Db, orgId: string, documentIds: string[], asOf: string): Promise<{
    documentId: string; entryId: string; seq: string; date: string; delta: string; rate: string; reverses: string | null; compensation: boolean; credited: boolean; fxAccountId: string | null;
  }[]> {
    if (!documentIds.length) return [];
    return db.$queryRaw<{ documentId: string; entryId: string; seq: string; date: string; delta: string; rate: string; reverses: string | null; compensation: boolean; credited: boolean; fxAccountId: string | null }[]>`
      SELECT x.document_id::text AS "documentId", x.entry_id::text AS "entryId", x.seq::text AS seq, x.revaluation_date::text AS date, x.base_delta::text AS delta,
        x.rate::text AS rate, e.reverses_entry_id::text AS reverses, e.source_ref IS NOT DISTINCT FROM ${FX_SETTLED_SHARE_REF} AS compensation,
        e.source <> 'system' AS credited, x.fx_account_id::text AS "fxAccountId"
      FROM finance.fx_revaluation_items x JOIN finance.journal_entries e ON e.org_id = x.org_id AND e.id = x.entry_id
      WHERE x.org_id = ${orgId}::uuid AND x.document_id = any(${documentIds}::uuid[]) AND x.revaluation_date <= ${asOf}::date
      ORDER BY x.revaluation_date, x.seq`;
  },

  /**
   * For revaluation rows written before their FX account was stored (fx_revaluation_items.fx_account_id NULL, migration
   * 20270210250100, which filled in the rows whose entry tells it without doubt): the FX account each control account
   * and currency moved against in revaluation entries (or their reversals) `entryIds`: a revaluation posts per control
   * account and currency a pair of lines, the control line and then its unrealized FX account's line (whatever the
   * settings say by now); an entry changing items one by one (a compensation, what a void took off) a pair per item. Each pair with its control line's base change (debit
   * positive) and counterparty, in line order.
   *
   * Found by the entries' structure, not by the accounts' types (the settings may name an FX account of any postable
   * type, an equity reserve say): these entries are made of pairs only (lines 1-2, 3-4, ...; JournalService.revalue,
   * reverse and changeCarried; parts each start with a pair; a pair balances in the base currency, so no rounding line),
   * the control line in the item's currency first, the FX line in the base currency second. Each pair is checked for
   * that shape and balance, so lines an entry made otherwise puts side by side (migration 20270209020100's entries list
   * control lines, then FX lines; they concern voided documents only) are not read as a pair.
   */
  async revaluationFxAccounts(db: Db, orgId: string, entryIds: string[]): Promise<{
    entryId: string; accountId: string; currency: string; fxAccountId: string; control: string; counterpartyId: string | null;
  }[]> {
    if (!entryIds.length) return [];
    return db.$queryRaw<{ entryId: string; accountId: string; currency: string; fxAccountId: string; control: string; counterpartyId: string | null }[]>`
      SELECT c.entry_id::text AS "entryId", c.account_id::text AS "accountId", c.currency, f.account_id::text AS "fxAccountId",
        (c.base_debit - c.base_credit)::text AS control, c.counterparty_id::text AS "counterpartyId"
      FROM finance.journal_lines c
      JOIN finance.journal_entries e ON e.org_id = c.org_id AND e.id = c.entry_id
      JOIN finance.journal_lines f ON f.org_id = c.org_id AND f.entry_id = c.entry_id AND f.line_no = c.line_no + 1
      WHERE c.org_id = ${orgId}::uuid AND c.entry_id = any(${entryIds}::uuid[]) AND c.line_no % 2 = 1
        AND c.currency <> e.base_currency AND f.currency = e.base_currency AND NOT c.is_rounding AND NOT f.is_rounding
        AND c.base_debit - c.base_credit = f.base_credit - f.base_debit
      ORDER BY c.entry_id, c.line_no`;
  },

  /**
   * What a revaluation (or its reversal, `entryId`) changed of each open receivable or payable (finance.fx_revaluation_items),
   * each with the unrealized FX account its pair of lines moved against.
   */
  async insertRevaluationItems(db: Db, orgId: string, rows: {
    entryId: string; date: string; subledger: string; documentId: string; rate: string; delta: string; fxAccountId: string; createdBy: string | null;
  }[]): Promise<void> {
    if (!rows.length) return;
    await db.$executeRaw`
      INSERT INTO finance.fx_revaluation_items (org_id, entry_id, revaluation_date, subledger, document_id, rate, base_delta, fx_account_id, created_by)
      SELECT ${orgId}::uuid, r.entry_id, r.revaluation_date, r.subledger, r.document_id, r.rate, r.base_delta, r.fx_account_id, r.created_by
      FROM unnest(${rows.map((r) => r.entryId)}::uuid[], ${rows.map((r) => r.date)}::date[], ${rows.map((r) => r.subledger)}::text[],
        ${rows.map((r) => r.documentId)}::uuid[], ${rows.map((r) => r.rate)}::numeric[], ${rows.map((r) => r.delta)}::numeric[],
        ${rows.map((r) => r.fxAccountId)}::uuid[], ${rows.map((r) => r.createdBy)}::text[])
        AS r(entry_id, revaluation_date, subledger, document_id, rate, base_delta, fx_account_id, created_by)`;
  },

  // ---------------------------------------------------------------- tax codes
  async listTaxCodes(db: Db, orgId: string): Promise<TaxCodeDto[]> {
    const rows = await db.run(qb.selectFrom('finance.tax_codes').select(TAX_CODE_COLS).where('org_id', '=', orgId).orderBy('code'));
    return rows.map(toTaxCode);
  },

  async getTaxCode(db: Db, orgId: string, id: string): Promise<TaxCodeDto | undefined> {
    const [row] = await db.run(qb.selectFrom('finance.tax_codes').select(TAX_CODE_COLS).where('org_id', '=', orgId).where('id', '=', id));
    return row && toTaxCode(row);
  },

  /** The tax codes (archived ones too) whose sales or purchase account is one of `accountIds`, by code. */
  async taxCodesNaming(db: Db, orgId: string, accountIds: string[]): Promise<TaxCodeDto[]> {
    if (!accountIds.length) return [];
    const rows = await db.run(qb.selectFrom('finance.tax_codes').select(TAX_CODE_COLS).where('org_id', '=', orgId)
      .where((eb) => eb.or([eb('sales_account_id', 'in', accountIds), eb('purchase_account_id', 'in', accountIds)])).orderBy('code'));
    return rows.map(toTaxCode);
  },

  async createTaxCode(db: Db, orgId: string, t: { code: string; name: string; rate: string; inclusive?: boolean; salesAccountId: string; purchaseAccountId: string }): Promise<TaxCodeDto> {
    const [row] = await translateDatabaseError(db.run(qb.insertInto('finance.tax_codes').values({
      org_id: orgId, code: t.code, name: t.name, rate: sql<Decimal>`${t.rate}::numeric`, inclusive: t.inclusive ?? false,
      sales_account_id: t.salesAccountId, purchase_account_id: t.purchaseAccountId,
    }).returning(TAX_CODE_COLS)), {
      '23505': (e) => (e.constraint === 'tax_codes_org_id_code_key' ? LedgerErrors.error('ledger.tax_code_taken', `tax code ${t.code} is already used in this organization`) : undefined),
    });
    return toTaxCode(row);
  },

  /** Absent fields stay as they are. */
  async updateTaxCode(db: Db, orgId: string, id: string, t: { name?: string; salesAccountId?: string; purchaseAccountId?: string }): Promise<TaxCodeDto | undefined> {
    const set = { name: t.name, sales_account_id: t.salesAccountId, purchase_account_id: t.purchaseAccountId };
    if (Object.values(set).every((v) => v === undefined)) return this.getTaxCode(db, orgId, id);
    const [row] = await db.run(qb.updateTable('finance.tax_codes').set({ ...set, updated_at: sql<Date>`now()` })
      .where('org_id', '=', orgId).where('id', '=', id).returning(TAX_CODE_COLS));
    return row && toTaxCode(row);
  },

  async archiveTaxCode(db: Db, orgId: string, id: string): Promise<TaxCodeDto | undefined> {
    const [row] = await db.run(qb.updateTable('finance.tax_codes').set({ archived_at: sql<Date>`coalesce(archived_at, now())`, updated_at: sql<Date>`now()` })
      .where('org_id', '=', orgId).where('id', '=', id).returning(TAX_CODE_COLS));
    return row && toTaxCode(row);
  },

  // ---------------------------------------------------------------- fiscal calendar
  async createYear(db: Db, orgId: string, name: string, start: string): Promise<string> {
    const [row] = await db.run(qb.insertInto('finance.fiscal_years').values({
      org_id: orgId, name, start_date: sql<Date>`${start}::date`, end_date: sql<Date>`(${start}::date + interval '12 months' - interval '1 day')::date`,
    }).returning('id'));
    await db.$executeRaw`
      INSERT INTO finance.fiscal_periods (org_id, fiscal_year_id, period_no, start_date, end_date)
      SELECT ${orgId}::uuid, ${row.id}::uuid, m + 1, (${start}::date + make_interval(months => m))::date,
             (${start}::date + make_interval(months => m + 1) - interval '1 day')::date
      FROM generate_series(0, 11) m`;
    return row.id;
  },

  async listYears(db: Db, orgId: string): Promise<FiscalYearDto[]> {
    const years = await db.run(qb.selectFrom('finance.fiscal_years')
      .select(['id', 'name', txt('start_date').as('start_date'), txt('end_date').as('end_date'), 'status', 'closing_entry_id', 'closed_at'])
      .where('org_id', '=', orgId).orderBy('start_date'));
    const periods = await this.listPeriods(db, orgId);
    return years.map((y) => ({
      id: y.id, name: y.name, startDate: y.start_date, endDate: y.end_date, status: y.status, closingEntryId: y.closing_entry_id,
      closedAt: y.closed_at, periods: periods.filter((p) => p.fiscalYearId === y.id),
    }));
  },

  async listPeriods(db: Db, orgId: string): Promise<FiscalPeriodDto[]> {
    const rows = await db.run(periods.select(PERIOD_COLS).where('org_id', '=', orgId).orderBy('start_date'));
    return rows.map(toPeriod);
  },

  /** Locks the period against postings in flight (they hold FOR KEY SHARE on it) before its status changes. */
  async lockPeriod(db: Db, orgId: string, id: string): Promise<FiscalPeriodDto | undefined> {
    const [row] = await db.run(periods.select(PERIOD_COLS).where('org_id', '=', orgId).where('id', '=', id).forUpdate());
    return row && toPeriod(row);
  },

  async getPeriod(db: Db, orgId: string, id: string): Promise<FiscalPeriodDto | undefined> {
    const [row] = await db.run(periods.select(PERIOD_COLS).where('org_id', '=', orgId).where('id', '=', id));
    return row && toPeriod(row);
  },

  async setPeriodStatus(db: Db, orgId: string, id: string, status: 'open' | 'closed'): Promise<FiscalPeriodDto> {
    const [row] = await db.run(qb.updateTable('finance.fiscal_periods')
      .set({ status, closed_at: status === 'closed' ? sql<Date>`now()` : null, updated_at: sql<Date>`now()` })
      .where('org_id', '=', orgId).where('id', '=', id).returning(PERIOD_COLS));
    return toPeriod(row);
  },

  /**
   * "the closing entry of fiscal year <name>" when the entry is one (JournalEntryOwners): the year's closingEntryId, or
   * another entry of its close when the close needed several (keyed year-end:<year>:<n>, not reversed yet).
   */
  async closingEntryOwner(db: Db, orgId: string, entryId: string): Promise<string | undefined> {
    const [row] = await db.$queryRaw<{ name: string }[]>`
      SELECT y.name FROM finance.fiscal_years y
      WHERE y.org_id = ${orgId}::uuid AND (y.closing_entry_id = ${entryId}::uuid OR (y.status = 'closed' AND EXISTS (
        SELECT 1 FROM finance.journal_entries e
        WHERE e.org_id = y.org_id AND e.id = ${entryId}::uuid AND e.source = 'year_end' AND e.entry_date = y.end_date AND e.reverses_entry_id IS NULL
          AND (lower(e.idempotency_key) = 'year-end:' || y.id::text OR lower(e.idempotency_key) LIKE 'year-end:' || y.id::text || ':%')
          AND NOT EXISTS (SELECT 1 FROM finance.journal_entries r WHERE r.org_id = e.org_id AND r.reverses_entry_id = e.id))))
      LIMIT 1`;
    return row && `the closing entry of fiscal year ${row.name} (reopen the year instead)`;
  },

  /**
   * The entries of a closed year's close, in the order posted: its closingEntryId and, when the close needed several
   * entries (more balances than an entry takes), the others keyed year-end:<year>:<n> with it; those reversed by an
   * earlier reopening are left out.
   */
  async closingEntriesOf(db: Db, orgId: string, yearId: string, closingEntryId: string | null): Promise<string[]> {
    if (!closingEntryId) return [];
    const rows = await db.$queryRaw<{ id: string }[]>`
      SELECT e.id FROM finance.journal_entries e
      JOIN finance.fiscal_years y ON y.org_id = e.org_id AND y.id = ${yearId}::uuid
      WHERE e.org_id = ${orgId}::uuid AND e.source = 'year_end' AND e.entry_date = y.end_date AND e.reverses_entry_id IS NULL
        AND (e.id = ${closingEntryId}::uuid OR lower(e.idempotency_key) = 'year-end:' || y.id::text OR lower(e.idempotency_key) LIKE 'year-end:' || y.id::text || ':%')
        AND NOT EXISTS (SELECT 1 FROM finance.journal_entries r WHERE r.org_id = e.org_id AND r.reverses_entry_id = e.id)
      ORDER BY e.seq`;
    return rows.map((r) => r.id);
  },

  /**
   * Waits for the organization's postings in flight and holds new ones off until the transaction ends: the posting
   * lock exclusively (postings hold it shared; a period's status change takes it too, migration 20270101000100).
   */
  async drainPostings(db: Db, orgId: string): Promise<void> {
    await locks.exclusive(db, `finance.posting:${lockId(orgId)}`);
  },

  /**
   * Holds the organization's posting lock shared until the transaction ends, as a posting does: taken before a flow
   * reads the control accounts it will post to (receivables and payables settings), so that a settings change, which
   * drains postings before it checks the old account, sees this flow's posting or makes it read the new account.
   */
  async holdPostings(db: Db, orgId: string): Promise<void> {
    await locks.shared(db, `finance.posting:${lockId(orgId)}`);
  },

  async lockYear(db: Db, orgId: string, id: string) {
    const [row] = await db.run(qb.selectFrom('finance.fiscal_years')
      .select(['id', 'status', txt('start_date').as('start_date'), txt('end_date').as('end_date'), 'closing_entry_id'])
      .where('org_id', '=', orgId).where('id', '=', id).forUpdate());
    return row;
  },

  /** The fiscal years before year `yearId`, oldest first, locked FOR SHARE (their status as locked: a reopening in flight is waited for). */
  async lockEarlierYears(db: Db, orgId: string, yearId: string): Promise<{ status: string; start_date: string; end_date: string }[]> {
    return db.$queryRaw<{ status: string; start_date: string; end_date: string }[]>`
      SELECT e.status, e.start_date::text AS start_date, e.end_date::text AS end_date FROM finance.fiscal_years e
      WHERE e.org_id = ${orgId}::uuid AND e.start_date < (SELECT y.start_date FROM finance.fiscal_years y WHERE y.org_id = ${orgId}::uuid AND y.id = ${yearId}::uuid)
      ORDER BY e.start_date FOR SHARE OF e`;
  },

  /**
   * The latest closed fiscal year after `endDate`: the year ending then, or a period of it, cannot reopen under it. The
   * latest, as finance.check_period_reopen_order names it: the one to reopen first (JournalService.reopenYear refuses
   * any other).
   */
  async laterClosedYear(db: Db, orgId: string, endDate: string): Promise<{ start_date: string; end_date: string } | undefined> {
    const [row] = await db.run(qb.selectFrom('finance.fiscal_years').select([txt('start_date').as('start_date'), txt('end_date').as('end_date')])
      .where('org_id', '=', orgId).where('start_date', '>', sql<Date>`${endDate}::date`).where('status', '=', 'closed').orderBy('start_date', 'desc').limit(1));
    return row;
  },

  /**
   * How many year-end entries this year has had (each close after a reopen posts new ones). Keys compared in lower case:
   * a close asked for with the year's id in upper case was keyed with it.
   */
  async yearEndEntryCount(db: Db, orgId: string, yearId: string): Promise<number> {
    const id = yearId.toLowerCase();
    const [row] = await db.run(qb.selectFrom('finance.journal_entries').select(sql<number>`count(*)::int`.as('n'))
      .where('org_id', '=', orgId)
      .where((eb) => eb.or([eb(sql`lower(idempotency_key)`, '=', `year-end:${id}`), eb(sql`lower(idempotency_key)`, 'like', `year-end:${id}:%`)])));
    return row.n;
  },

  /** The year opens before its periods: a period does not open in a closed year (finance.check_period_reopen_order). */
  async reopenYear(db: Db, orgId: string, id: string): Promise<void> {
    await this.lockPeriodsOfYear(db, orgId, id);
    await db.run(qb.updateTable('finance.fiscal_years').set({ status: 'open', closed_at: null, closing_entry_id: null, updated_at: sql<Date>`now()` })
      .where('org_id', '=', orgId).where('id', '=', id));
    await db.run(qb.updateTable('finance.fiscal_periods').set({ status: 'open', closed_at: null, updated_at: sql<Date>`now()` })
      .where('org_id', '=', orgId).where('fiscal_year_id', '=', id));
  },

  async closeYear(db: Db, orgId: string, id: string, closingEntryId: string | null): Promise<void> {
    await this.lockPeriodsOfYear(db, orgId, id);
    await db.run(qb.updateTable('finance.fiscal_periods')
      .set({ status: 'closed', closed_at: sql<Date>`coalesce(closed_at, now())`, updated_at: sql<Date>`now()` })
      .where('org_id', '=', orgId).where('fiscal_year_id', '=', id));
    await db.run(qb.updateTable('finance.fiscal_years')
      .set({ status: 'closed', closed_at: sql<Date>`now()`, closing_entry_id: closingEntryId, updated_at: sql<Date>`now()` })
      .where('org_id', '=', orgId).where('id', '=', id));
  },

  /** The year's periods, locked in date order (the order postings lock them in: no deadlock). */
  async lockPeriodsOfYear(db: Db, orgId: string, yearId: string): Promise<void> {
    await db.run(periods.select('id').where('org_id', '=', orgId).where('fiscal_year_id', '=', yearId).orderBy('start_date').forUpdate());
  },

  // ---------------------------------------------------------------- journal entries
  /**
   * The one posting path: finance.post_journal_entry validates, locks balances in order, writes the entry,
   * its lines, the balances and the audit row (`audit`: action, request id, ip), and answers with the entry.
   */
  async post(db: Db, payload: unknown, audit: PostingAudit): Promise<{ entry: JournalEntryDto; replayed: boolean }> {
    const [row] = await db.$queryRaw<{ replayed: boolean; entry: JournalEntryDto }[]>`
      SELECT replayed, entry FROM finance.post_journal_entry(${JSON.stringify(payload)}::jsonb, ${JSON.stringify(audit)}::jsonb)`;
    return { entry: row.entry, replayed: row.replayed };
  },

  /**
   * The hash finance.post_journal_entry stored for an entry posted before request hashes (20270206001100): md5 of the
   * payload (without its key) as jsonb text, computed by PostgreSQL as the function computes it.
   */
  async legacyPayloadHash(db: Db, payload: object): Promise<string> {
    const [row] = await db.$queryRaw<{ h: string }[]>`SELECT md5(${JSON.stringify(payload)}::jsonb::text) AS h`;
    return row.h;
  },

  /** The entries posted with these idempotency keys: their ids and the hash of the request each was posted with. */
  async entriesByKey(db: Db, orgId: string, keys: string[]): Promise<{ id: string; idempotencyKey: string; requestHash: string }[]> {
    const rows = await db.run(qb.selectFrom('finance.journal_entries').select(['id', 'idempotency_key', 'request_hash'])
      .where('org_id', '=', orgId).where('idempotency_key', 'in', keys));
    return rows.map((r) => ({ id: r.id, idempotencyKey: r.idempotency_key!, requestHash: r.request_hash }));
  },

  async getEntries(db: Db, orgId: string, ids: string[]): Promise<JournalEntryDto[]> {
    if (!ids.length) return [];
    const entries = await db.run(qb.selectFrom('finance.journal_entries as e')
      .leftJoin('finance.journal_entries as r', (j) => j.onRef('r.org_id', '=', 'e.org_id').onRef('r.reverses_entry_id', '=', 'e.id'))
      .select([
        'e.id', txt('e.entry_date').as('entry_date'), 'e.memo', 'e.source', 'e.source_ref', 'e.reverses_entry_id', 'r.id as reversed_by',
        'e.idempotency_key', 'e.base_currency', txt('e.total_base').as('total_base'), 'e.created_by', 'e.created_at',
      ])
      .where('e.org_id', '=', orgId).where(sql<boolean>`e.id = any(${ids}::uuid[])`));
    const lines: LineRow[] = await db.run(qb.selectFrom('finance.journal_lines as l')
      .innerJoin('finance.accounts as a', (j) => j.onRef('a.org_id', '=', 'l.org_id').onRef('a.id', '=', 'l.account_id'))
      .select([
        'l.entry_id', 'l.line_no', 'l.account_id', 'a.code as account_code', 'l.currency', txt('l.debit').as('debit'), txt('l.credit').as('credit'),
        txt('l.rate').as('rate'), txt('l.base_debit').as('base_debit'), txt('l.base_credit').as('base_credit'), 'l.description',
        'l.workspace_id', 'l.counterparty_type', 'l.counterparty_id', 'l.is_rounding', 'l.tax_code_id', 'l.tax_role',
      ])
      .where('l.org_id', '=', orgId).where(sql<boolean>`l.entry_id = any(${ids}::uuid[])`)
      .orderBy('l.entry_id').orderBy('l.line_no'));
    const byId = new Map(entries.map((e) => [e.id, e]));
    return ids.filter((id) => byId.has(id)).map((id) => {
      const e = byId.get(id)!;
      return {
        id: e.id, date: e.entry_date, memo: e.memo, source: e.source, sourceRef: e.source_ref, reversesEntryId: e.reverses_entry_id,
        reversedByEntryId: e.reversed_by, idempotencyKey: e.idempotency_key, baseCurrency: e.base_currency, totalBase: e.total_base,
        createdBy: e.created_by, createdAt: e.created_at, lines: lines.filter((l) => l.entry_id === id).map(toLine),
      };
    });
  },

  /**
   * One page of entry ids, newest first ((entry_date, seq) keyset). Only the filters given are in the statement (a
   * text per combination, planned with its values). An account or counterparty filter reads the entries from that
   * account's or counterparty's lines in (date, entry seq) order (journal_lines_account_idx, whose prefix that is, and
   * journal_lines_counterparty_idx; migration 20270211000100) and stops at the page, instead of walking every entry of
   * the organization and probing its lines. Those lines' own entry_date and entry_seq (finance.write_entries copies
   * the entry's) are what is ordered and bounded on: compared with the entry's in the join, the date made the planner
   * expect one row and sort them all, and the entry's seq made a page inside a date of many entries read all of that
   * date. An entry with two such lines is listed once by its first (an anti-join on the entry's lines, not DISTINCT:
   * PostgreSQL 15 sorts a DISTINCT's whole input).
   * The memo filter stays a filter on the entries' walk: under row-level security PostgreSQL uses an index only for a
   * leakproof operator, ILIKE is not one (a pg_trgm index would not serve the API's role; migration 20270210990100).
   */
  async listEntryIds(db: Db, orgId: string, q: EntryFilter & { after?: { d: string; s: string }; limit: number }) {
    // the memo filter is a substring: LIKE's wildcards in the text are matched literally
    const memo = q.memo === undefined ? undefined : `%${q.memo.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    // each line filter on its own (documented so): the account and the counterparty may be on different lines of the entry
    const counterparty = q.counterpartyType !== undefined || q.counterpartyId !== undefined;
    // the lines that drive the walk: the account's, else the counterparty's (an id; a type alone is no narrow set)
    const drive = q.accountId !== undefined ? 'account' : q.counterpartyId !== undefined ? 'counterparty' : undefined;
    // the driving lines' copy of their entry's date and seq: their index continues the cursor inside a date
    const date = sql.ref(drive ? 'd.entry_date' : 'e.entry_date');
    const seq = sql.ref(drive ? 'd.entry_seq' : 'e.seq');
    const query = qb.selectFrom('finance.journal_entries as e')
      .select(['e.id', txt('e.entry_date').as('entry_date'), txt('e.seq').as('seq')])
      .where('e.org_id', '=', orgId)
      .$if(drive !== undefined, (b) => b
        .innerJoin('finance.journal_lines as d', (j) => j.onRef('d.org_id', '=', 'e.org_id').onRef('d.entry_id', '=', 'e.id'))
        .where('d.org_id', '=', orgId)
        .$if(drive === 'account', (c) => c.where('d.account_id', '=', q.accountId!))
        .$if(drive === 'counterparty', (c) => c.where('d.counterparty_id', '=', q.counterpartyId!)
          .$if(q.counterpartyType !== undefined, (t) => t.where('d.counterparty_type', '=', q.counterpartyType!)))
        // the entry's first matching line only
        .where(({ not, exists, selectFrom }) => not(exists(selectFrom('finance.journal_lines as x').select(sql`1`.as('one'))
          .whereRef('x.org_id', '=', 'd.org_id').whereRef('x.entry_id', '=', 'd.entry_id').whereRef('x.line_no', '<', 'd.line_no')
          .$if(drive === 'account', (c) => c.whereRef('x.account_id', '=', 'd.account_id'))
          .$if(drive === 'counterparty', (c) => c.whereRef('x.counterparty_id', '=', 'd.counterparty_id')
            .$if(q.counterpartyType !== undefined, (t) => t.whereRef('x.counterparty_type', '=', 'd.counterparty_type')))))))
      .$if(q.from !== undefined, (b) => b.where(date, '>=', sql<Date>`${q.from}::date`))
      .$if(q.to !== undefined, (b) => b.where(date, '<=', sql<Date>`${q.to}::date`))
      .$if(q.source !== undefined, (b) => b.where('e.source', '=', q.source!))
      .$if(q.minAmount !== undefined, (b) => b.where('e.total_base', '>=', sql<Decimal>`${q.minAmount}::numeric`))
      .$if(q.maxAmount !== undefined, (b) => b.where('e.total_base', '<=', sql<Decimal>`${q.maxAmount}::numeric`))
      .$if(memo !== undefined, (b) => b.where('e.memo', 'ilike', memo!))
      .$if(q.accountId !== undefined && drive !== 'account', (b) => b.where(({ exists, selectFrom }) => exists(
        selectFrom('finance.journal_lines as l').select(sql`1`.as('one'))
          .whereRef('l.org_id', '=', 'e.org_id').whereRef('l.entry_id', '=', 'e.id').where('l.account_id', '=', q.accountId!))))
      .$if(counterparty && drive !== 'counterparty', (b) => b.where(({ exists, selectFrom }) => exists(
        selectFrom('finance.journal_lines as l').select(sql`1`.as('one'))
          .whereRef('l.org_id', '=', 'e.org_id').whereRef('l.entry_id', '=', 'e.id')
          .$if(q.counterpartyType !== undefined, (c) => c.where('l.counterparty_type', '=', q.counterpartyType!))
          .$if(q.counterpartyId !== undefined, (c) => c.where('l.counterparty_id', '=', q.counterpartyId!)))))
      // the cursor's date also bounds the driving lines' index scan
      .$if(q.after !== undefined, (b) => b.where(date, '<=', sql<Date>`${q.after!.d}::date`)
        .where(sql<boolean>`(${date}, ${seq}) < (${q.after!.d}::date, ${q.after!.s}::bigint)`))
      .orderBy(date, 'desc').orderBy(seq, 'desc').limit(q.limit + 1);
    return db.run(query);
  },

  /**
   * Up to 1,000 entries in one call of finance.post_journal_entries (each posted by the single-entry function,
   * audited by it); `independent`: rejected entries are reported instead of aborting the call. The posted entries'
   * `journal_entry.posted` events are written by the same statement (POST_BATCH_SQL).
   */
  async postBatch(db: Db, orgId: string, entries: PostingPayloadLike[], audit: PostingAudit, independent: boolean): Promise<BatchRow[]> {
    const [row] = await db.$queryRawUnsafe<{ results: BatchRow[] }[]>(POST_BATCH_SQL, ...postBatchParams(orgId, entries, audit, independent));
    return row.results;
  },
};

/** What the batch statement reads of an entry besides posting it: the fields of its `journal_entry.posted` event. */
export interface PostingPayloadLike {
  date: string;
  memo?: string;
  source?: string;
  sourceRef?: string;
  reversesEntryId?: string;
}

/**
 * The statement of a batch posting: finance.post_journal_entries, and one `journal_entry.posted` outbox row per
 * posted entry (the payload postedEvent builds for a single posting: entryId, date, source, and memo, sourceRef,
 * reversesEntryId when set), in the order of the results. One statement: no second round trip while the batch holds
 * its balance rows locked, and the entries are not sent a second time for their events. bench/ledger.bench.ts's
 * floor sends this text with postBatchParams, so the floor and the route ask the database for the same work.
 */
export const POST_BATCH_SQL = `WITH posted AS MATERIALIZED (SELECT finance.post_journal_entries($1::jsonb, $2::jsonb, $3::boolean) AS results),
events AS (
  INSERT INTO core.outbox (org_id, topic, payload)
  SELECT $4::uuid, $5::text, jsonb_build_object('type', $6::text, 'version', 1, 'occurredAt', $7::text, 'payload',
           jsonb_build_object('entryId', r ->> 'id', 'date', e ->> 'date', 'source', coalesce(e ->> 'source', 'manual'))
           || jsonb_strip_nulls(jsonb_build_object('memo', nullif(e ->> 'memo', ''), 'sourceRef', e ->> 'sourceRef', 'reversesEntryId', e ->> 'reversesEntryId')))
  FROM posted, jsonb_array_elements(posted.results) WITH ORDINALITY AS x(r, n), LATERAL (SELECT $1::jsonb -> (r ->> 'index')::int AS e) entry
  WHERE r ->> 'status' = 'posted'
  ORDER BY n)
SELECT results FROM posted`;

/** The parameters of POST_BATCH_SQL. */
export function postBatchParams(orgId: string, entries: PostingPayloadLike[], audit: PostingAudit, independent: boolean, occurredAt = new Date()): unknown[] {
  return [JSON.stringify(entries), JSON.stringify(audit), independent, orgId, DOMAIN_EVENT_TOPIC, 'journal_entry.posted', occurredAt.toISOString()];
}
