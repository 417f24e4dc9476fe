import { Injectable } from '@nestjs/common';
import { Decimal } from '../../platform/decimal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { LedgerErrors } from './ledger.errors.js';
import { addDays } from '../../platform/http/calendar-date.js';
import { decodeCursor, decodeKeyset, encodeCursor } from '../../platform/http/pagination.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { ledgerRepository as repo, type Totals } from './ledger.repository.js';
import { LedgerService } from './ledger.service.js';
import { D, fixed } from './money.js';
import type {
  AccountBalanceDto, AccountDto, BalanceSheetDto, CashFlowDto, CashFlowNonCashRowDto, CashFlowRowDto, GeneralLedgerDto, GeneralLedgerQuery, ProfitAndLossDto, StatementRowDto,
  TrialBalanceDto, VatReportDto, VatRowDto,
} from './ledger.dto.js';

type Compare = 'previous_period' | 'previous_year';

/**
 * The date `months` later (or earlier, when negative): the day kept, or the month's last day when that month has fewer
 * (2026-03-31 minus one month is 2026-02-28). Day shifts are addDays'.
 */
function addMonths(date: string, months: number): string {
  const [y, m, d] = date.split('-').map(Number);
  const first = utcDay(y, m - 1 + months, 1);
  const last = utcDay(first.getUTCFullYear(), first.getUTCMonth() + 1, 0).getUTCDate();
  return utcDay(first.getUTCFullYear(), first.getUTCMonth(), Math.min(d, last)).toISOString().slice(0, 10);
}
/** Date.UTC's day, but years 0-99 as written: Date.UTC reads them as 1900-1999 (0050 would become 1950). */
function utcDay(year: number, month: number, day: number): Date {
  const t = new Date(0);
  t.setUTCFullYear(year, month, day);
  return t;
}
const isMonthStart = (date: string) => date.endsWith('-01');
const isMonthEnd = (date: string) => addDays(date, 1).endsWith('-01');
const monthsBetween = (from: string, to: string) => (Number(to.slice(0, 4)) - Number(from.slice(0, 4))) * 12 + Number(to.slice(5, 7)) - Number(from.slice(5, 7)) + 1;
const daysBetween = (from: string, to: string) => Math.round((Date.parse(to) - Date.parse(from)) / 86_400_000) + 1;
/**
 * The same date a year earlier; a month end stays a month end. The day after is shifted, then one day taken off:
 * 2025-02-28 → 2024-02-29 (shifting the day itself would land on 2024-02-28), 2024-02-29 → 2023-02-28.
 */
const yearBefore = (date: string) => (isMonthEnd(date) ? addDays(addMonths(addDays(date, 1), -12), -1) : addMonths(date, -12));

/**
 * The comparative range of [from, to]: previous_year is the same dates a year earlier (a month end stays a
 * month end, at either end of the range: 2029-02-28..2029-02-28 → 2028-02-29..2028-02-29); previous_period is the range of the same length just before, by whole months when the range is
 * whole months (Q2 → Q1), else by days.
 */
export function comparativeRange(from: string, to: string, compare: Compare): { from: string; to: string } {
  // both ends by the same rule: a range from a month end (2029-02-28..) starts on the previous year's month end
  // (2028-02-29), as its end is mapped (a month start is no month end: 2028-03-01 → 2027-03-01)
  if (compare === 'previous_year') return { from: yearBefore(from), to: yearBefore(to) };
  if (isMonthStart(from) && isMonthEnd(to)) {
    const n = monthsBetween(from, to);
    return { from: addMonths(from, -n), to: addDays(from, -1) };
  }
  const n = daysBetween(from, to);
  return { from: addDays(from, -n), to: addDays(from, -1) };
}

/** The first day PostgreSQL's dates have (it has no year 0): nothing is posted before it. */
const FIRST_DAY = '0001-01-01';

/**
 * Refuses a comparative column that would start before FIRST_DAY (from 0001-03-01 a year back is no date of the ledger),
 * naming the parameter: 400 ledger.range, never a database cast error.
 */
function assertComparable(start: string, compare: Compare): void {
  // a year before 0001 is written 0000 (or -000001 by toISOString): both sort before FIRST_DAY
  if (start < FIRST_DAY) throw LedgerErrors.error('ledger.range', `compare=${compare} would start the comparative column before ${FIRST_DAY}, the first day of the ledger's calendar: choose a later from (asOf)`);
}

/** The comparative date of a balance sheet: the end of the previous month, or the same date a year earlier. */
export function comparativeDate(asOf: string, compare: Compare): string {
  if (compare === 'previous_year') return yearBefore(asOf);
  return addDays(`${asOf.slice(0, 8)}01`, -1);
}

/** a − b per key */
function minus(a: Map<string, Decimal>, b: Map<string, Decimal>): Map<string, Decimal> {
  const out = new Map(a);
  for (const [k, v] of b) out.set(k, (out.get(k) ?? D(0)).minus(v));
  return out;
}

/** Base-currency net (debit minus credit) per account. */
function baseNetByAccount(totals: Totals[]): Map<string, Decimal> {
  const m = new Map<string, Decimal>();
  for (const t of totals) m.set(t.account_id, (m.get(t.account_id) ?? D(0)).plus(t.base_debit).minus(t.base_credit));
  return m;
}

/**
 * Statement rows for the accounts of some types, each with its own amount plus its descendants'
 * (hierarchy roll-up), depth-first by code. `sign` turns debit-minus-credit into the type's natural sign.
 */
function rollUp(accounts: AccountDto[], net: Map<string, Decimal>, types: string[], sign: (type: string) => 1 | -1, mu: number, compared?: Map<string, Decimal>): { rows: StatementRowDto[]; total: Decimal; comparativeTotal: Decimal } {
  const mine = accounts.filter((a) => types.includes(a.type));
  const children = new Map<string | null, AccountDto[]>();
  for (const a of mine) {
    const parent = a.parentId && mine.some((p) => p.id === a.parentId) ? a.parentId : null;
    children.set(parent, [...(children.get(parent) ?? []), a]);
  }
  const rows: StatementRowDto[] = [];
  const visit = (a: AccountDto, depth: number): [Decimal, Decimal] => {
    const row: StatementRowDto = { accountId: a.id, code: a.code, name: a.name, type: a.type, depth, isGroup: a.isGroup, amount: '' };
    rows.push(row);
    let sum = (net.get(a.id) ?? D(0)).times(sign(a.type));
    let sumCompared = (compared?.get(a.id) ?? D(0)).times(sign(a.type));
    for (const c of (children.get(a.id) ?? []).sort((x, y) => x.code.localeCompare(y.code))) {
      const [own, other] = visit(c, depth + 1);
      sum = sum.plus(own);
      sumCompared = sumCompared.plus(other);
    }
    row.amount = fixed(sum, mu);
    if (compared) row.comparativeAmount = fixed(sumCompared, mu);
    return [sum, sumCompared];
  };
  let total = D(0);
  let comparativeTotal = D(0);
  for (const root of (children.get(null) ?? []).sort((x, y) => x.code.localeCompare(y.code))) {
    const [own, other] = visit(root, 0);
    total = total.plus(own);
    comparativeTotal = comparativeTotal.plus(other);
  }
  // archived accounts without an amount (in either column) are left out
  const shown = rows.filter((r) => !D(r.amount).isZero() || (r.comparativeAmount !== undefined && !D(r.comparativeAmount).isZero())
    || !accounts.find((a) => a.id === r.accountId)!.archivedAt);
  return { rows: shown, total, comparativeTotal };
}

/**
 * The cash-flow class of every account: its own, else the class of its nearest ancestor that has one (a bank account
 * added under a group classed cash is cash without a class of its own); null when none has one (the report then goes
 * by type). Resolved when the report runs rather than copied at creation, so moving an account or classing a group
 * takes effect at once, and accounts created before a group was classed follow it.
 */
function cashFlowClasses(accounts: AccountDto[]): Map<string, string | null> {
  const byId = new Map(accounts.map((a) => [a.id, a]));
  const out = new Map<string, string | null>();
  const resolve = (a: AccountDto, depth: number): string | null => {
    if (out.has(a.id)) return out.get(a.id)!;
    const parent = a.parentId ? byId.get(a.parentId) : undefined;
    // the chart is a tree of at most 32 levels (finance.check_account); the bound only guards the recursion
    const c = a.cashFlowClass ?? (parent && depth < 64 ? resolve(parent, depth + 1) : null);
    out.set(a.id, c);
    return c;
  };
  for (const a of accounts) resolve(a, 0);
  return out;
}

/**
 * A general-ledger cursor issued before 20270211000100 ordered a date's lines by their own seq: `{ d, s, r }`, s the
 * last line's seq (the new form has no `s`, so the two are told apart). It is not translated: the line's seq is in no
 * index any more, and the lines after a position of the old order are not the lines after any position of the new one
 * (a page would repeat or skip lines of that date, and `r`, the balance so far, would not be the balance of the lines
 * before it). It answers the documented 400 pagination.cursor, asking to start again; a client pages a general ledger
 * in one sitting, so only a listing in progress while the release went out meets it.
 */
function rejectOldLedgerCursor(cursor: string | undefined): void {
  const value = decodeCursor<unknown>(cursor);
  if (typeof value === 'object' && value !== null && 's' in value && !('e' in value)) {
    throw PlatformErrors.error('pagination.cursor', 'the cursor is from an earlier order of the general ledger (lines of an entry now together): start again without a cursor');
  }
}

/** Balances and statements; all read balances or per-period totals, never a full scan of journal lines. */
@Injectable()
export class ReportsService {
  constructor(private readonly ledger: LedgerService) {}

  private async context(tx: TenantTx) {
    const s = await this.ledger.settings(tx);
    return { settings: s, base: s.baseCurrency, mu: await this.ledger.currencyUnits(tx, s.baseCurrency), accounts: await this.ledger.listAccounts(tx, true) };
  }

  async accountBalance(tx: TenantTx, accountId: string, asOf?: string): Promise<AccountBalanceDto> {
    await this.ledger.getAccount(tx, accountId);
    const { base, mu } = await this.context(tx);
    const totals = asOf ? await repo.totals(tx.db, null, asOf, accountId) : await repo.runningTotals(tx.db, tx.orgId, accountId);
    const currencies = await Promise.all(totals.sort((a, b) => a.currency.localeCompare(b.currency)).map(async (t) => ({
      currency: t.currency,
      balance: fixed(D(t.debit).minus(t.credit), await this.ledger.currencyUnits(tx, t.currency)),
      baseBalance: fixed(D(t.base_debit).minus(t.base_credit), mu),
    })));
    const baseBalance = fixed(totals.reduce((s, t) => s.plus(t.base_debit).minus(t.base_credit), D(0)), mu);
    return { accountId, asOf: asOf ?? null, baseCurrency: base, baseBalance, currencies };
  }

  async trialBalance(tx: TenantTx, asOf?: string): Promise<TrialBalanceDto> {
    const s = await this.ledger.settings(tx);
    const mu = await this.ledger.currencyUnits(tx, s.baseCurrency);
    let dr = D(0);
    let cr = D(0);
    const rows = (await repo.trialBalance(tx.db, tx.orgId, asOf ?? null)).map((r) => {
      const n = D(r.net);
      if (n.gt(0)) dr = dr.plus(n);
      else cr = cr.minus(n);
      return { accountId: r.account_id, code: r.code, name: r.name, type: r.type, debit: fixed(n.gt(0) ? n : 0, mu), credit: fixed(n.lt(0) ? n.neg() : 0, mu) };
    });
    return { asOf: asOf ?? null, baseCurrency: s.baseCurrency, rows, totalDebit: fixed(dr, mu), totalCredit: fixed(cr, mu), balanced: dr.eq(cr) };
  }

  /** Base net per account over [from, to]; closing entries (source year_end) left out unless `includeClosing`. */
  private async rangeNet(tx: TenantTx, from: string | null, to: string | null, includeClosing: boolean): Promise<Map<string, Decimal>> {
    const net = baseNetByAccount(await repo.totals(tx.db, from, to));
    return includeClosing ? net : minus(net, baseNetByAccount(await repo.yearEndTotals(tx.db, tx.orgId, from, to)));
  }

  /**
   * Revenue and expenses over a range. The closing entry of a year moves its result to retained earnings; left
   * out here by default, so a closed year's P&L shows its real result (`includeClosing` shows the closed books).
   */
  async profitAndLoss(tx: TenantTx, from: string, to: string, opts: { includeClosing?: boolean; compare?: Compare } = {}): Promise<ProfitAndLossDto> {
    if (from > to) throw LedgerErrors.error('ledger.range', 'from must not be after to');
    const includeClosing = opts.includeClosing ?? false;
    const { base, mu, accounts } = await this.context(tx);
    const net = await this.rangeNet(tx, from, to, includeClosing);
    const other = opts.compare ? comparativeRange(from, to, opts.compare) : undefined;
    if (other) assertComparable(other.from, opts.compare!);
    const compared = other ? await this.rangeNet(tx, other.from, other.to, includeClosing) : undefined;
    const revenue = rollUp(accounts, net, ['revenue'], () => -1, mu, compared);
    const expenses = rollUp(accounts, net, ['expense'], () => 1, mu, compared);
    return {
      from, to, baseCurrency: base, revenue: revenue.rows, expenses: expenses.rows,
      totalRevenue: fixed(revenue.total, mu), totalExpenses: fixed(expenses.total, mu), netIncome: fixed(revenue.total.minus(expenses.total), mu),
      includeClosing,
      ...(other && {
        comparative: {
          ...other, totalRevenue: fixed(revenue.comparativeTotal, mu), totalExpenses: fixed(expenses.comparativeTotal, mu),
          netIncome: fixed(revenue.comparativeTotal.minus(expenses.comparativeTotal), mu),
        },
      }),
    };
  }

  /** assets = liabilities + equity + current earnings (revenue minus expenses not yet closed), checked. */
  async balanceSheet(tx: TenantTx, asOf: string, compare?: Compare): Promise<BalanceSheetDto> {
    const { base, mu, accounts } = await this.context(tx);
    const net = baseNetByAccount(await repo.totals(tx.db, null, asOf));
    const otherDate = compare ? comparativeDate(asOf, compare) : undefined;
    if (otherDate) assertComparable(otherDate, compare!);
    const compared = otherDate ? baseNetByAccount(await repo.totals(tx.db, null, otherDate)) : undefined;
    const assets = rollUp(accounts, net, ['asset'], () => 1, mu, compared);
    const liabilities = rollUp(accounts, net, ['liability'], () => -1, mu, compared);
    const equity = rollUp(accounts, net, ['equity'], () => -1, mu, compared);
    const earningsOf = (n: Map<string, Decimal>) => accounts.filter((a) => a.type === 'revenue' || a.type === 'expense').reduce((s, a) => s.minus(n.get(a.id) ?? 0), D(0));
    const earnings = earningsOf(net);
    return {
      asOf, baseCurrency: base, assets: assets.rows, liabilities: liabilities.rows, equity: equity.rows,
      totalAssets: fixed(assets.total, mu), totalLiabilities: fixed(liabilities.total, mu), totalEquity: fixed(equity.total, mu),
      currentEarnings: fixed(earnings, mu), balanced: assets.total.eq(liabilities.total.plus(equity.total).plus(earnings)),
      ...(otherDate && compared && {
        comparative: {
          asOf: otherDate, totalAssets: fixed(assets.comparativeTotal, mu), totalLiabilities: fixed(liabilities.comparativeTotal, mu),
          totalEquity: fixed(equity.comparativeTotal, mu), currentEarnings: fixed(earningsOf(compared), mu),
        },
      }),
    };
  }

  /**
   * VAT per tax code over a range, in the base currency, from the lines that carry the code: sales (output) and
   * purchases (input), each as taxable base and tax; reversals count with their sign. net = output − input tax.
   */
  async vatReport(tx: TenantTx, from: string, to: string): Promise<VatReportDto> {
    if (from > to) throw LedgerErrors.error('ledger.range', 'from must not be after to');
    const { base, mu } = await this.context(tx);
    const codes = await this.ledger.listTaxCodes(tx);
    const sums = await repo.vatTotals(tx.db, tx.orgId, from, to);
    const get = (id: string, role: string) => {
      const r = sums.find((x) => x.tax_code_id === id && x.tax_role === role);
      if (!r) return D(0);
      // output lines are credits, input lines debits
      return role.startsWith('output') ? D(r.base_credit).minus(r.base_debit) : D(r.base_debit).minus(r.base_credit);
    };
    const total = { sales: D(0), output: D(0), purchases: D(0), input: D(0) };
    const rows: VatRowDto[] = codes.filter((c) => sums.some((x) => x.tax_code_id === c.id) || !c.archivedAt).map((c) => {
      const sales = get(c.id, 'output_base');
      const output = get(c.id, 'output_tax');
      const purchases = get(c.id, 'input_base');
      const input = get(c.id, 'input_tax');
      total.sales = total.sales.plus(sales);
      total.output = total.output.plus(output);
      total.purchases = total.purchases.plus(purchases);
      total.input = total.input.plus(input);
      return {
        taxCodeId: c.id, code: c.code, name: c.name, rate: c.rate, taxableSales: fixed(sales, mu), outputTax: fixed(output, mu),
        taxablePurchases: fixed(purchases, mu), inputTax: fixed(input, mu), net: fixed(output.minus(input), mu),
      };
    });
    return {
      from, to, baseCurrency: base, rows, totalTaxableSales: fixed(total.sales, mu), totalOutputTax: fixed(total.output, mu),
      totalTaxablePurchases: fixed(total.purchases, mu), totalInputTax: fixed(total.input, mu), netPayable: fixed(total.output.minus(total.input), mu),
    };
  }

  /**
   * Cash-flow statement, indirect method: net income of the range, then the change of every balance-sheet
   * account outside cash as its effect on cash, in the section of its classification (its own, else its nearest
   * classified ancestor's; unclassified asset and liability accounts are operating, equity financing). Closing
   * entries are left out (they move no cash), and so are opening-balance entries (source opening_balance: the balances
   * brought from former books, dated the first day of the first fiscal year), whose cash is counted in openingCash. Revaluations (and their reversals) moved no cash either: net income holds
   * their unrealized gain or loss, the revalued accounts their change of base value. The unrealized gain or loss is added
   * back in operating as a non-cash item on its own line (`unrealizedExchangeDifferences`), that of cash accounts included;
   * a revalued account's change is left out of its row (a loan's row shows only its cash movements, a cash account has
   * none), and on foreign-currency cash it is reported as the effect of exchange rates on cash (IAS 7).
   * What moved no cash on investing and financing accounts (equipment bought on credit or with a loan; in an entry with
   * cash, what its cash did not pay: finance.cash_flow_split) is no investing or financing cash flow (IAS 7.43): it is left
   * out of those sections and disclosed in `nonCashInvestingAndFinancing`, whose total is counted in operating as a
   * non-cash adjustment, where it offsets the rest of those entries (their operating accounts: a payable's increase).
   * An entry whose other side is the income statement only (depreciation credited to accumulated depreciation classed
   * investing, amortisation, an impairment: ledgerRepository.cashFlowSplit's income_statement) is no transaction to
   * disclose but a non-cash expense or income: its part is an operating row on the investing or financing account, adding
   * the expense back (as the account's row would be were it unclassed). The part of a disposal's gain or loss realized
   * in cash is taken out of operating on its account's row, its cash being in the disposal's proceeds in investing; so is the realized exchange gain or loss of
   * an investing or financing line's settlement (a foreign-currency loan repaid), its cash being in the payment.
   * That split of each entry is defined once, in SQL (finance.cash_flow_split_between, read over the range: 20270210710100;
   * finance.cash_flow_split is it over open bounds), and semantic.v_cash_flow sums the same rows per month; the tests in
   * cash-flow-non-cash compare the two.
   * The sections and the exchange-rate effect add up to the change of the cash accounts, which is checked against their
   * balances (`balanced`). Reads of totals: the balances the day before from, the range's, and its closing and
   * opening-balance entries'.
   */
  async cashFlow(tx: TenantTx, from: string, to: string): Promise<CashFlowDto> {
    if (from > to) throw LedgerErrors.error('ledger.range', 'from must not be after to');
    const { base, mu, accounts } = await this.context(tx);
    const classOf = cashFlowClasses(accounts);
    const isIncome = (a: AccountDto) => a.type === 'revenue' || a.type === 'expense';
    const isCash = (a: AccountDto) => !isIncome(a) && classOf.get(a.id) === 'cash';
    const sectionOf = (a: AccountDto) => (classOf.get(a.id) ?? (a.type === 'equity' ? 'financing' : 'operating')) as 'operating' | 'investing' | 'financing';
    // revaluation revalues asset and liability accounts only
    const revaluable = accounts.filter((a) => a.type === 'asset' || a.type === 'liability').map((a) => a.id);
    // nothing is dated before the first day of the calendar (and the day before it is no date PostgreSQL takes)
    const before = from > FIRST_DAY ? baseNetByAccount(await repo.totals(tx.db, null, addDays(from, -1))) : new Map<string, Decimal>();
    // opening balances brought from former books (source opening_balance) are no cash flow: their cash is opening cash
    const opening = baseNetByAccount(await repo.openingBalanceTotals(tx.db, tx.orgId, from, to));
    const range = minus(baseNetByAccount(await repo.totals(tx.db, from, to)), opening);
    const movement = minus(range, baseNetByAccount(await repo.yearEndTotals(tx.db, tx.orgId, from, to)));
    const fx = new Map((await repo.baseOnlyTotals(tx.db, tx.orgId, from, to, base, revaluable)).map((r) => [r.account_id, D(r.base_net)]));
    // what of the investing and financing lines no cash paid, and the realized gains and losses, per account: the split of
    // each entry is defined once, in SQL (finance.cash_flow_split_between over the range; semantic.v_cash_flow reads it too)
    const split = { nonCash: new Map<string, Decimal>(), disclosed: new Map<string, Decimal>(), incomeStatement: new Map<string, Decimal>(), adjustments: new Map<string, Decimal>() };
    for (const r of await repo.cashFlowSplit(tx.db, tx.orgId, from, to)) {
      split.nonCash.set(r.account_id, D(r.non_cash));
      split.disclosed.set(r.account_id, D(r.disclosed).minus(r.income_statement));
      split.incomeStatement.set(r.account_id, D(r.income_statement));
      split.adjustments.set(r.account_id, D(r.adjustment));
    }
    const sections: Record<'operating' | 'investing' | 'financing', { rows: CashFlowRowDto[]; total: Decimal }> = {
      operating: { rows: [], total: D(0) }, investing: { rows: [], total: D(0) }, financing: { rows: [], total: D(0) },
    };
    const row = (a: AccountDto, amount: Decimal): CashFlowRowDto => ({ accountId: a.id, code: a.code, name: a.name, amount: fixed(amount, mu) });
    const disclosed: CashFlowNonCashRowDto[] = [];
    let netIncome = D(0);
    let fxEffect = D(0);
    let unrealized = D(0);
    let nonCashTotal = D(0);
    let openingCash = D(0);
    let cashMoved = D(0);
    for (const a of [...accounts].sort((x, y) => x.code.localeCompare(y.code))) {
      const m = movement.get(a.id) ?? D(0);
      if (isIncome(a)) {
        netIncome = netIncome.minus(m);
        // the part of a disposal's gain or loss realized in cash: its cash is in the proceeds, in investing
        const adjustment = split.adjustments.get(a.id) ?? D(0);
        if (!adjustment.isZero()) {
          sections.operating.rows.push(row(a, adjustment));
          sections.operating.total = sections.operating.total.plus(adjustment);
        }
        continue;
      }
      if (isCash(a)) {
        openingCash = openingCash.plus(before.get(a.id) ?? 0).plus(opening.get(a.id) ?? 0);
        // closing entries touch no cash account: the range's own movement (opening balances taken out) is the whole change
        cashMoved = cashMoved.plus(range.get(a.id) ?? 0);
        // a revaluation raised (or lowered) the account's base value and net income alike, without cash: the gain or loss
        // is added back with the other unrealized ones (no operating row on a cash account), the change is the effect of
        // exchange rates
        const diff = fx.get(a.id) ?? D(0);
        fxEffect = fxEffect.plus(diff);
        unrealized = unrealized.minus(diff);
        continue;
      }
      const section = sectionOf(a);
      // the revaluation of a loan or receivable is no cash flow of its section: the gain or loss it booked is added back
      const diff = fx.get(a.id) ?? D(0);
      unrealized = unrealized.minus(diff);
      // nor is an investing or financing account's part that moved no cash (finance.cash_flow_split): disclosed, and
      // adjusted in operating; a gain or loss it holds is adjusted there on its own account's row
      const shown = split.disclosed.get(a.id) ?? D(0);
      if (!shown.isZero()) {
        disclosed.push({ ...row(a, shown), section: section as 'investing' | 'financing' });
        nonCashTotal = nonCashTotal.plus(shown);
      }
      // a non-cash expense or income against it (depreciation): an operating adjustment, not a disclosed transaction
      const addedBack = split.incomeStatement.get(a.id) ?? D(0);
      if (!addedBack.isZero()) {
        sections.operating.rows.push(row(a, addedBack));
        sections.operating.total = sections.operating.total.plus(addedBack);
      }
      const cashMovement = m.minus(diff).plus(split.nonCash.get(a.id) ?? 0);
      if (cashMovement.isZero()) continue;
      // an asset growing (debit) took cash; a liability or equity growing (credit) brought cash
      sections[section].rows.push(row(a, cashMovement.neg()));
      sections[section].total = sections[section].total.minus(cashMovement);
    }
    const operatingTotal = sections.operating.total.plus(netIncome).plus(unrealized).plus(nonCashTotal);
    const netChange = operatingTotal.plus(sections.investing.total).plus(sections.financing.total).plus(fxEffect);
    const closingCash = openingCash.plus(cashMoved);
    return {
      from, to, baseCurrency: base, netIncome: fixed(netIncome, mu), unrealizedExchangeDifferences: fixed(unrealized, mu),
      operating: { rows: sections.operating.rows, total: fixed(operatingTotal, mu) },
      investing: { rows: sections.investing.rows, total: fixed(sections.investing.total, mu) },
      financing: { rows: sections.financing.rows, total: fixed(sections.financing.total, mu) },
      nonCashInvestingAndFinancing: { rows: disclosed, total: fixed(nonCashTotal, mu) },
      effectOfExchangeRatesOnCash: fixed(fxEffect, mu),
      netChange: fixed(netChange, mu), openingCash: fixed(openingCash, mu), closingCash: fixed(closingCash, mu),
      balanced: openingCash.plus(netChange).eq(closingCash),
    };
  }

  /**
   * An account's lines in date order, an entry's lines together and the entries of a date in posting order, with the
   * running base balance; the cursor carries the last line's (date, entry seq, line_no) and the balance so far.
   */
  async generalLedger(tx: TenantTx, accountId: string, q: GeneralLedgerQuery): Promise<GeneralLedgerDto> {
    await this.ledger.getAccount(tx, accountId);
    if (q.from && q.to && q.from > q.to) throw LedgerErrors.error('ledger.range', 'from must not be after to');
    const { base, mu } = await this.context(tx);
    const units = await this.ledger.minorUnits(tx);
    const limit = q.limit ?? 50;
    rejectOldLedgerCursor(q.cursor);
    const cursor = decodeKeyset(q.cursor, { d: 'date', e: 'integer', n: 'integer', r: 'decimal' });
    let running: Decimal;
    if (cursor) running = D(cursor.r);
    else if (q.from && q.from > FIRST_DAY) running = (await repo.totals(tx.db, null, addDays(q.from, -1), accountId)).reduce((s, t) => s.plus(t.base_debit).minus(t.base_credit), D(0));
    else running = D(0);
    const openingBalance = fixed(running, mu);
    const rows = await repo.generalLedger(tx.db, tx.orgId, accountId, q.from ?? null, q.to ?? null, cursor, limit);
    const items = rows.slice(0, limit).map((r) => {
      running = running.plus(r.base_debit).minus(r.base_credit);
      return {
        entryId: r.entry_id, lineNo: r.line_no, date: r.entry_date, memo: r.memo, description: r.description, currency: r.currency,
        debit: fixed(r.debit, units(r.currency)), credit: fixed(r.credit, units(r.currency)), baseDebit: fixed(r.base_debit, mu),
        baseCredit: fixed(r.base_credit, mu), runningBalance: fixed(running, mu),
        entrySeq: r.entry_seq,
      };
    });
    const last = items[items.length - 1];
    const nextCursor = rows.length > limit ? encodeCursor({ d: last.date, e: last.entrySeq, n: String(last.lineNo), r: running.toFixed() }) : undefined;
    return { accountId, baseCurrency: base, openingBalance, items: items.map(({ entrySeq: _entrySeq, ...i }) => i), nextCursor };
  }

  /**
   * A control account (AP, AR, deferred revenue) may be replaced in the settings only while it carries nothing: every
   * later settlement posts to the account of the settings, so open items left on the old one could never be settled
   * there. `error` makes the module's refusal from the message. The caller has drained the postings first
   * (LedgerService.drainPostings), so no posting that read the old account is still in flight.
   */
  async assertControlAccountClear(tx: TenantTx, accountId: string, what: string, error: (message: string) => Error): Promise<void> {
    const open = await this.carried(tx, accountId);
    if (open.length) {
      throw error(`the ${what} control account still carries ${open.join(', ')}: settle its open items (a manual journal entry on it: reverse it) before replacing it`);
    }
  }

  /**
   * What an account carries, per currency with a balance in it or in the base currency ("-100.00 EUR"; one whose own
   * balance is nil with its base balance: "0.00 USD (base -10.00 EUR)"); none: an empty list. A module's settings make an
   * account its control account only while it carries nothing: its subledger (the aging) starts empty and could never
   * explain a balance already there.
   */
  async carried(tx: TenantTx, accountId: string): Promise<string[]> {
    const b = await this.accountBalance(tx, accountId);
    return b.currencies.filter((c) => !D(c.balance).isZero() || !D(c.baseBalance).isZero())
      .map((c) => `${c.balance} ${c.currency}${D(c.balance).isZero() ? ` (base ${c.baseBalance} ${b.baseCurrency})` : ''}`);
  }
}
