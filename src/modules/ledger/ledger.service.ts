import { Injectable } from '@nestjs/common';
import type { TenantTx } from '../../platform/database/database.service.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { translateDatabaseError } from '../../platform/errors/database-errors.js';
import { LedgerErrors } from './ledger.errors.js';
import { decodeKeyset, page } from '../../platform/http/pagination.js';
import { AuditService } from '../audit/audit.service.js';
import { emitEvent } from '../../platform/events/events.js';
import { ledgerRepository as repo, type Totals } from './ledger.repository.js';
import { ControlAccounts } from './control-accounts.js';
import { computeTax, D, fitsMinorUnits, type MinorUnits, type TaxResult } from './money.js';
import { STANDARD_CHART, STANDARD_ROLES } from './standard-chart.js';
import type {
  AccountDto, CalculateTaxDto, CreateAccountDto, CreateFiscalYearDto, CreateTaxCodeDto, CurrencyDto, FiscalPeriodDto, FiscalYearDto,
  FxRatePage, FxRateQuery, LedgerSettingsDto, SetFxRateDto, StartBooksDto, TaxCalculationDto, TaxCodeDto, UpdateAccountDto, UpdateLedgerSettingsDto, UpdateTaxCodeDto,
} from './ledger.dto.js';

/** The default name of the fiscal year starting on `start`: FY2026 for a calendar year, FY2026/27 otherwise. */
export function fiscalYearName(start: string): string {
  const year = Number(start.slice(0, 4));
  return start.slice(5) === '01-01' ? `FY${year}` : `FY${year}/${String(year + 1).slice(2)}`;
}

/** The replaced rates an import's audit row lists one by one (its count says how many there were in all). */
const FX_AUDIT_REPLACED_MAX = 100;

/**
 * The settings' FX gain and loss accounts, realized and unrealized: an exchange difference on a monetary item is profit
 * or loss (IAS 21.28), so a revenue or expense account. The revaluation and the cash-flow statement rely on it: net
 * income holds the unrealized result, which the statement adds back as a non-cash item.
 */
const FX_RESULT_ACCOUNTS: ReadonlySet<keyof UpdateLedgerSettingsDto> = new Set(['fxGainAccountId', 'fxLossAccountId', 'fxUnrealizedGainAccountId', 'fxUnrealizedLossAccountId']);

/** Books, chart of accounts, FX rates, tax codes and the fiscal calendar. */
@Injectable()
export class LedgerService {
  constructor(
    private readonly audit: AuditService,
    private readonly controls: ControlAccounts,
  ) {}

  // ---------------------------------------------------------------- books and settings
  async settings(tx: TenantTx): Promise<LedgerSettingsDto> {
    const s = await repo.settings(tx.db, tx.orgId);
    if (!s) throw LedgerErrors.error('ledger.books_not_started', 'the books of this organization are not started: POST /ledger/books first');
    return s;
  }

  /**
   * Before reading the accounts a posting will use from another module's settings (ledgerRepo.holdPostings), or, for a
   * manual journal entry, the control accounts it must not post to (ControlAccounts).
   */
  async holdPostings(tx: TenantTx): Promise<void> {
    await repo.holdPostings(tx.db, tx.orgId);
  }

  /**
   * First in a change of the control accounts of another module's settings: waits for the postings in flight (each
   * holds the lock shared from its settings read: holdPostings; a manual journal entry from its read of the control
   * accounts, so it posts to none the change makes one) and holds new ones off until the change commits. Taken
   * before anything holds the lock shared in this transaction (no upgrade, so two changes cannot deadlock).
   */
  async drainPostings(tx: TenantTx): Promise<void> {
    await repo.drainPostings(tx.db, tx.orgId);
  }

  async currencyUnits(tx: TenantTx, currency: string): Promise<number> {
    const mu = (await this.currencyTable(tx)).get(currency);
    if (mu === undefined) throw LedgerErrors.error('ledger.unknown_currency', `currency ${currency} is not known`);
    return mu;
  }

  /** The base currency's minor units; undefined while the books are not started (there is no base currency yet). */
  async baseCurrencyUnits(tx: TenantTx): Promise<number | undefined> {
    const s = await repo.settings(tx.db, tx.orgId);
    return s && this.currencyUnits(tx, s.baseCurrency);
  }

  /** Minor units by currency, for formatting (an unknown currency cannot be stored: the lines' foreign key). */
  async minorUnits(tx: TenantTx): Promise<MinorUnits> {
    const table = await this.currencyTable(tx);
    return (currency) => table.get(currency) ?? 4;
  }

  // finance.currencies is reference data that only migrations change: read once per process
  private currencies_?: Map<string, number>;
  private async currencyTable(tx: TenantTx): Promise<Map<string, number>> {
    this.currencies_ ??= new Map((await repo.currencies(tx.db)).map((c) => [c.code, c.minorUnits]));
    return this.currencies_;
  }

  currencies(tx: TenantTx): Promise<CurrencyDto[]> {
    return repo.currencies(tx.db);
  }

  /** Starts the books: base currency, the standard chart (optional) and the first fiscal year. */
  async startBooks(tx: TenantTx, dto: StartBooksDto): Promise<LedgerSettingsDto> {
    if (await repo.settings(tx.db, tx.orgId)) throw LedgerErrors.error('ledger.books_started', 'the books of this organization are already started');
    await this.currencyUnits(tx, dto.baseCurrency);
    // a concurrent start passed the check above too: its settings row, committed first, is the same refusal
    await translateDatabaseError(repo.createSettings(tx.db, tx.orgId, dto.baseCurrency), {
      '23505': (e) => (e.constraint === 'settings_pkey' ? LedgerErrors.error('ledger.books_started', 'the books of this organization are already started') : undefined),
    });
    let settings = (await repo.settings(tx.db, tx.orgId))!;
    if ((dto.template ?? 'standard') === 'standard') {
      const ids = new Map<string, string>();
      for (const a of STANDARD_CHART) {
        const created = await repo.createAccount(tx.db, tx.orgId, { code: a.code, name: a.name, type: a.type, isGroup: a.group, parentId: a.parent ? ids.get(a.parent) : null, cashFlowClass: a.cashFlow });
        ids.set(a.code, created.id);
      }
      settings = await repo.updateSettings(tx.db, tx.orgId, {
        roundingAccountId: ids.get(STANDARD_ROLES.rounding), retainedEarningsAccountId: ids.get(STANDARD_ROLES.retainedEarnings),
        fxGainAccountId: ids.get(STANDARD_ROLES.fxGain), fxLossAccountId: ids.get(STANDARD_ROLES.fxLoss),
        fxUnrealizedGainAccountId: ids.get(STANDARD_ROLES.fxUnrealizedGain), fxUnrealizedLossAccountId: ids.get(STANDARD_ROLES.fxUnrealizedLoss),
      });
    }
    const yearId = await repo.createYear(tx.db, tx.orgId, fiscalYearName(dto.fiscalYearStart), dto.fiscalYearStart);
    await this.audit.record(tx, { action: 'ledger.books_started', entityType: 'ledger', entityId: tx.orgId, after: { ...settings, template: dto.template ?? 'standard', fiscalYearId: yearId } });
    return settings;
  }

  async updateSettings(tx: TenantTx, dto: UpdateLedgerSettingsDto): Promise<LedgerSettingsDto> {
    // the accounts postings take from the settings change once none is in flight and none starts before this commits
    // (a year's close reads retained earnings after its own drain: never an account changed under it), and `before` is
    // the settings no other change can overwrite meanwhile
    await repo.drainPostings(tx.db, tx.orgId);
    const before = await this.settings(tx);
    for (const [field, id] of Object.entries(dto) as [keyof UpdateLedgerSettingsDto, string | undefined][]) {
      if (!id) continue;
      const a = await this.postableAccount(tx, id);
      if (FX_RESULT_ACCOUNTS.has(field) && a.type !== 'revenue' && a.type !== 'expense') {
        throw LedgerErrors.error('ledger.fx_account_type', `${field}: account ${a.code} is a ${a.type} account; an FX gain or loss account (realized or unrealized) is a revenue or expense account`);
      }
    }
    const after = await repo.updateSettings(tx.db, tx.orgId, dto);
    await this.audit.record(tx, { action: 'ledger.settings_updated', entityType: 'ledger', entityId: tx.orgId, before, after });
    return after;
  }

  // ---------------------------------------------------------------- accounts
  listAccounts(tx: TenantTx, includeArchived: boolean): Promise<AccountDto[]> {
    return repo.listAccounts(tx.db, tx.orgId, includeArchived);
  }

  async getAccount(tx: TenantTx, id: string): Promise<AccountDto> {
    const a = await repo.getAccount(tx.db, tx.orgId, id);
    if (!a) throw LedgerErrors.notFound('account', id);
    return a;
  }

  private async postableAccount(tx: TenantTx, id: string): Promise<AccountDto> {
    const a = await this.getAccount(tx, id);
    if (a.isGroup || a.archivedAt) throw LedgerErrors.error('ledger.account_not_postable', `account ${a.code} is a group or archived account`);
    return a;
  }

  async createAccount(tx: TenantTx, dto: CreateAccountDto): Promise<AccountDto> {
    await this.settings(tx);
    if (dto.currency) await this.currencyUnits(tx, dto.currency);
    if (dto.parentId) await this.getAccount(tx, dto.parentId);
    const a = await repo.createAccount(tx.db, tx.orgId, dto);
    await this.audit.record(tx, { action: 'ledger.account_created', entityType: 'account', entityId: a.id, after: a });
    return a;
  }

  async updateAccount(tx: TenantTx, id: string, dto: UpdateAccountDto): Promise<AccountDto> {
    // becoming a group is refused for an account with postings (finance.check_account): a posting in flight to it
    // commits first and is seen, and none starts before this change commits
    if (dto.isGroup) await repo.drainPostings(tx.db, tx.orgId);
    const before = await this.getAccount(tx, id);
    if (dto.parentId) await this.getAccount(tx, dto.parentId);
    const after = (await repo.updateAccount(tx.db, tx.orgId, id, dto))!;
    await this.audit.record(tx, { action: 'ledger.account_updated', entityType: 'account', entityId: id, before, after });
    return after;
  }

  /**
   * Accounts are archived, never deleted; only with a zero balance and no active children. A revenue or expense
   * account also needs a zero balance within every fiscal year not closed: the year-end close posts that balance
   * to the account, and a posting to an archived account is refused, so the year could never close.
   */
  async archiveAccount(tx: TenantTx, id: string): Promise<AccountDto> {
    // what needs no lock is refused before the organization's postings are held off
    const before = await this.getAccount(tx, id);
    if (await repo.hasChildren(tx.db, tx.orgId, id)) {
      throw LedgerErrors.error('ledger.account_has_children', `account ${before.code} has active child accounts`);
    }
    // the balance is read once no posting is in flight, and none starts (and reads the account as postable) before
    // the archive commits: otherwise a posting could land on the account after its zero balance was checked
    await repo.drainPostings(tx.db, tx.orgId);
    const hasBalance = (totals: Totals[]) => totals.some((t) => !D(t.debit).eq(t.credit) || !D(t.base_debit).eq(t.base_credit));
    if (hasBalance(await repo.runningTotals(tx.db, tx.orgId, id))) {
      throw LedgerErrors.error('ledger.account_has_balance', `account ${before.code} has a balance; move it before archiving`);
    }
    if (before.type === 'revenue' || before.type === 'expense') {
      for (const y of (await repo.listYears(tx.db, tx.orgId)).filter((x) => x.status !== 'closed')) {
        if (hasBalance(await repo.totals(tx.db, y.startDate, y.endDate, id))) {
          throw LedgerErrors.error('ledger.account_has_balance', `account ${before.code} has a balance in fiscal year ${y.name}, which is not closed: its year-end close posts to the account; archive it after closing the year`);
        }
      }
    }
    const after = (await repo.archiveAccount(tx.db, tx.orgId, id))!;
    await this.audit.record(tx, { action: 'ledger.account_archived', entityType: 'account', entityId: id, before, after });
    return after;
  }

  // ---------------------------------------------------------------- FX rates
  async setRates(tx: TenantTx, rates: SetFxRateDto[], source: 'manual' | 'import'): Promise<number> {
    const s = await this.settings(tx);
    const seen = new Set<string>();
    for (const r of rates) {
      await this.currencyUnits(tx, r.currency);
      if (r.currency === s.baseCurrency) throw LedgerErrors.error('ledger.rate_base_currency', `${r.currency} is the base currency; its rate is always 1`);
      if (D(r.rate).lte(0)) throw LedgerErrors.error('ledger.rate_not_positive', `rate for ${r.currency} on ${r.date} must be positive`);
      const k = `${r.currency}:${r.date}`;
      if (seen.has(k)) throw LedgerErrors.error('ledger.rate_duplicate', `rate for ${r.currency} on ${r.date} appears twice`);
      seen.add(k);
    }
    const { written, replaced } = await repo.setRates(tx.db, tx.orgId, rates, source);
    // the rates drive default posting rates and revaluations: what a change replaced is kept with it
    if (source === 'manual') {
      await this.audit.record(tx, {
        action: 'ledger.fx_rate_set', entityType: 'fx_rate', entityId: `${rates[0].currency}:${rates[0].date}`,
        before: replaced[0] ?? null, after: rates[0],
      });
    } else {
      const newRate = new Map(rates.map((r) => [`${r.currency}:${r.date}`, r.rate]));
      await this.audit.record(tx, {
        action: 'ledger.fx_rates_imported', entityType: 'fx_rate', entityId: null,
        after: {
          count: written, replacedCount: replaced.length,
          // the first ones in full (an import holds up to 5,000): currency, date, the rate before and after
          replaced: replaced.slice(0, FX_AUDIT_REPLACED_MAX).map((r) => ({ currency: r.currency, date: r.date, from: r.rate, to: newRate.get(`${r.currency}:${r.date}`) })),
        },
      });
    }
    return written;
  }

  async listRates(tx: TenantTx, q: FxRateQuery): Promise<FxRatePage> {
    const limit = q.limit ?? 50;
    const after = decodeKeyset(q.cursor, { c: 'currency', d: 'date' });
    const rows = await repo.listRates(tx.db, tx.orgId, { currency: q.currency, from: q.from, to: q.to, after, limit });
    return page(rows, limit, (r) => ({ c: r.currency, d: r.date }));
  }

  // ---------------------------------------------------------------- tax codes
  listTaxCodes(tx: TenantTx): Promise<TaxCodeDto[]> {
    return repo.listTaxCodes(tx.db, tx.orgId);
  }

  async getTaxCode(tx: TenantTx, id: string): Promise<TaxCodeDto> {
    const t = await repo.getTaxCode(tx.db, tx.orgId, id);
    if (!t) throw LedgerErrors.notFound('tax_code', id);
    return t;
  }

  async createTaxCode(tx: TenantTx, dto: CreateTaxCodeDto): Promise<TaxCodeDto> {
    if (D(dto.rate).gt(100)) throw LedgerErrors.error('ledger.tax_rate', 'rate is a percent between 0 and 100');
    await this.taxAccounts(tx, dto);
    const t = await repo.createTaxCode(tx.db, tx.orgId, dto);
    await this.audit.record(tx, { action: 'ledger.tax_code_created', entityType: 'tax_code', entityId: t.id, after: t });
    return t;
  }

  async updateTaxCode(tx: TenantTx, id: string, dto: UpdateTaxCodeDto): Promise<TaxCodeDto> {
    const before = await this.getTaxCode(tx, id);
    await this.taxAccounts(tx, dto);
    const after = (await repo.updateTaxCode(tx.db, tx.orgId, id, dto))!;
    await this.audit.record(tx, { action: 'ledger.tax_code_updated', entityType: 'tax_code', entityId: id, before, after });
    return after;
  }

  /**
   * The accounts a tax code's tax posts to: postable, and no control account of receivables or payables (a document's
   * tax line on AR or AP would put there an amount no open item explains: the aging and the account would part), read
   * after draining the postings, as a settings change does: payables' first posting, which makes its default account AP
   * and checks no tax code names it (PayablesService.postingAccount), commits before this check or sees this code.
   */
  private async taxAccounts(tx: TenantTx, dto: { salesAccountId?: string; purchaseAccountId?: string }): Promise<void> {
    const accounts: { id: string; code: string; field: string }[] = [];
    for (const field of ['salesAccountId', 'purchaseAccountId'] as const) {
      const id = dto[field];
      if (id) accounts.push({ id, code: (await this.postableAccount(tx, id)).code, field });
    }
    if (!accounts.length) return;
    await this.drainPostings(tx);
    await this.controls.refuse(tx, accounts, (message) => LedgerErrors.error('ledger.control_account', message));
  }

  /** Tax codes are archived, never deleted: postings and invoices refuse an archived code; the lines posted with it keep it. */
  async archiveTaxCode(tx: TenantTx, id: string): Promise<TaxCodeDto> {
    const before = await this.getTaxCode(tx, id);
    if (before.archivedAt) return before;
    const after = (await repo.archiveTaxCode(tx.db, tx.orgId, id))!;
    await this.audit.record(tx, { action: 'ledger.tax_code_archived', entityType: 'tax_code', entityId: id, before, after });
    return after;
  }

  async calculateTax(tx: TenantTx, id: string, dto: CalculateTaxDto): Promise<TaxCalculationDto> {
    const t = await this.getTaxCode(tx, id);
    const currency = dto.currency ?? (await this.settings(tx)).baseCurrency;
    return { currency, ...(await this.taxOf(tx, t, dto.amount, currency, 'amount')) };
  }

  /**
   * The tax of an amount in a currency, for the calculate endpoint and every taxed journal line alike. computeTax rounds
   * to the currency's minor units: an amount beyond them is refused (ledger.invalid_amount, as an untaxed line's is), not
   * rounded; `field` names the amount in the message (amount, lines[0]).
   */
  async taxOf(tx: TenantTx, t: TaxCodeDto, amount: string, currency: string, field: string): Promise<TaxResult> {
    const mu = await this.currencyUnits(tx, currency);
    if (!fitsMinorUnits(amount, mu)) throw LedgerErrors.error('ledger.invalid_amount', `${field}: ${currency} amounts have at most ${mu} decimals`);
    return computeTax(amount, t.rate, t.inclusive, mu);
  }

  // ---------------------------------------------------------------- fiscal calendar
  listYears(tx: TenantTx): Promise<FiscalYearDto[]> {
    return repo.listYears(tx.db, tx.orgId);
  }

  async getYear(tx: TenantTx, id: string): Promise<FiscalYearDto> {
    const y = (await repo.listYears(tx.db, tx.orgId)).find((x) => x.id === id);
    if (!y) throw LedgerErrors.notFound('fiscal_year', id);
    return y;
  }

  async createYear(tx: TenantTx, dto: CreateFiscalYearDto): Promise<FiscalYearDto> {
    await this.settings(tx);
    const id = await repo.createYear(tx.db, tx.orgId, dto.name ?? fiscalYearName(dto.startDate), dto.startDate);
    const y = await this.getYear(tx, id);
    await this.audit.record(tx, { action: 'ledger.fiscal_year_created', entityType: 'fiscal_year', entityId: id, after: { ...y, periods: undefined } });
    return y;
  }

  listPeriods(tx: TenantTx): Promise<FiscalPeriodDto[]> {
    return repo.listPeriods(tx.db, tx.orgId);
  }

  /**
   * Close or reopen a period (owner, admin). Closing waits for postings in flight into it. Locks in the order a year's
   * close and reopening take theirs (JournalService.closeYear, reopenYear): the year (a reopening reads its status), the
   * posting lock (drainPostings), then the period. Locking the period first, its update then waiting for the posting
   * lock (its trigger finance.drain_postings takes it) that a year's close held while it waited for that period,
   * deadlocked the two (409 conflict.retry). A period's year never changes: it is read before the locks.
   */
  async setPeriodStatus(tx: TenantTx, id: string, status: 'open' | 'closed'): Promise<FiscalPeriodDto> {
    const period = await repo.getPeriod(tx.db, tx.orgId, id);
    if (!period) throw LedgerErrors.notFound('fiscal_period', id);
    const forbidden = () => PlatformErrors.error('forbidden.role', 'closing or reopening a period needs the role owner or admin');
    if (status === 'open') {
      const year = await repo.lockYear(tx.db, tx.orgId, period.fiscalYearId);
      if (!year) throw forbidden();
      if (year.status === 'closed') throw LedgerErrors.error('ledger.period_in_closed_year', 'the fiscal year of this period is closed');
      // an open year before a closed one (left by an earlier release, 20270210950100): its entries would change the later
      // year's closed figures. The latest later closed year is named: the one to reopen first. Both checks are the rule
      // for any writer in finance.check_period_reopen_order
      const later = await repo.laterClosedYear(tx.db, tx.orgId, year.end_date);
      if (later) throw LedgerErrors.error('ledger.later_year_closed', `reopen the later fiscal year ${later.start_date} to ${later.end_date} first`);
    }
    await repo.drainPostings(tx.db, tx.orgId);
    const before = await repo.lockPeriod(tx.db, tx.orgId, id);
    if (!before) throw forbidden();
    if (before.status === status) throw LedgerErrors.error('ledger.period_status', `the period ${before.startDate} to ${before.endDate} is already ${status}`);
    const after = await repo.setPeriodStatus(tx.db, tx.orgId, id, status);
    await this.audit.record(tx, { action: status === 'closed' ? 'ledger.period_closed' : 'ledger.period_reopened', entityType: 'fiscal_period', entityId: id, before, after });
    await emitEvent(tx, status === 'closed' ? 'period.closed' : 'period.reopened', { periodId: id, fiscalYearId: after.fiscalYearId, startDate: after.startDate, endDate: after.endDate });
    return after;
  }
}
