import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize, ArrayMinSize, IsBoolean, IsIn, IsOptional, IsString, IsUUID, Length, Matches, ValidateNested,
} from 'class-validator';
import { PageInfo } from '../../platform/http/openapi.js';
import { PageQuery } from '../../platform/http/pagination.js';

const DATE = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;
const AMOUNT = /^\d{1,14}(\.\d{1,4})?$/;
const RATE = /^\d{1,12}(\.\d{1,10})?$/;
const CURRENCY = /^[A-Z]{3}$/;
const dateMsg = (f: string) => ({ message: `${f} must be a date YYYY-MM-DD` });
const amountMsg = (f: string) => ({ message: `${f} must be a non-negative decimal string with at most 4 decimals, e.g. "120.50"` });
export const ACCOUNT_TYPES = ['asset', 'liability', 'equity', 'revenue', 'expense'] as const;
export const ENTRY_SOURCES = ['manual', 'invoice', 'bill', 'payment'] as const;
/** Sources of entries the ledger posts itself: 'system' (FX revaluation), 'year_end' (closing entries and their reversals). */
export const ALL_ENTRY_SOURCES = [...ENTRY_SOURCES, 'system', 'year_end'] as const;
export const CASH_FLOW_CLASSES = ['cash', 'operating', 'investing', 'financing'] as const;
const AMOUNT_DOC = 'Decimal string with exactly the currency\'s minor units';
const BASE_DOC = 'Decimal string with exactly the base currency\'s minor units';
const RATE_DOC = 'Base units per unit of currency, 10 decimals';

// ---------------------------------------------------------------- books and settings
export class StartBooksDto {
  @ApiProperty({ example: 'EUR', description: 'Base currency (ISO 4217)' }) @Matches(CURRENCY, { message: 'baseCurrency must be an ISO 4217 code like EUR' }) baseCurrency: string;
  @ApiProperty({ example: '2026-01-01', description: 'First day of the first fiscal year (12 monthly periods are created)' })
  @Matches(DATE, dateMsg('fiscalYearStart')) fiscalYearStart: string;
  @ApiPropertyOptional({ enum: ['standard', 'none'], default: 'standard', description: 'Chart of accounts template to install' })
  @IsOptional() @IsIn(['standard', 'none']) template?: 'standard' | 'none';
}

export class LedgerSettingsDto {
  @ApiProperty() baseCurrency: string;
  @ApiPropertyOptional({ format: 'uuid', nullable: true }) roundingAccountId: string | null;
  @ApiPropertyOptional({ format: 'uuid', nullable: true }) retainedEarningsAccountId: string | null;
  @ApiPropertyOptional({ format: 'uuid', nullable: true }) fxGainAccountId: string | null;
  @ApiPropertyOptional({ format: 'uuid', nullable: true }) fxLossAccountId: string | null;
  @ApiPropertyOptional({ format: 'uuid', nullable: true, description: 'Unrealized FX gains (revaluation); falls back to fxGainAccountId' }) fxUnrealizedGainAccountId: string | null;
  @ApiPropertyOptional({ format: 'uuid', nullable: true, description: 'Unrealized FX losses (revaluation); falls back to fxLossAccountId' }) fxUnrealizedLossAccountId: string | null;
}

export class UpdateLedgerSettingsDto {
  @ApiPropertyOptional({ format: 'uuid' }) @IsOptional() @IsUUID() roundingAccountId?: string;
  @ApiPropertyOptional({ format: 'uuid' }) @IsOptional() @IsUUID() retainedEarningsAccountId?: string;
  @ApiPropertyOptional({ format: 'uuid' }) @IsOptional() @IsUUID() fxGainAccountId?: string;
  @ApiPropertyOptional({ format: 'uuid' }) @IsOptional() @IsUUID() fxLossAccountId?: string;
  @ApiPropertyOptional({ format: 'uuid' }) @IsOptional() @IsUUID() fxUnrealizedGainAccountId?: string;
  @ApiPropertyOptional({ format: 'uuid' }) @IsOptional() @IsUUID() fxUnrealizedLossAccountId?: string;
}

export class CurrencyDto {
  @ApiProperty() code: string;
  @ApiProperty() name: string;
  @ApiProperty() minorUnits: number;
}

// ---------------------------------------------------------------- accounts
export class AccountDto {
  @ApiProperty({ format: 'uuid' }) id: string;
  @ApiProperty() code: string;
  @ApiProperty() name: string;
  @ApiProperty({ enum: ACCOUNT_TYPES }) type: string;
  @ApiPropertyOptional({ format: 'uuid', nullable: true }) parentId: string | null;
  @ApiProperty({ description: 'Group accounts sum their children and cannot be posted to' }) isGroup: boolean;
  @ApiPropertyOptional({ nullable: true, description: 'Only lines in this currency may post to the account' }) currency: string | null;
  @ApiPropertyOptional({ enum: CASH_FLOW_CLASSES, nullable: true, description: 'Cash-flow statement section; null: by type (asset, liability → operating; equity → financing)' }) cashFlowClass: string | null;
  @ApiPropertyOptional({ nullable: true }) archivedAt: Date | null;
  @ApiProperty() createdAt: Date;
  @ApiProperty() updatedAt: Date;
}

export class CreateAccountDto {
  @ApiProperty({ example: '1110' }) @Matches(/^[A-Za-z0-9][A-Za-z0-9.-]{0,31}$/, { message: 'code must be 1-32 letters, digits, dots or dashes' }) code: string;
  @ApiProperty({ example: 'Petty cash' }) @IsString() @Length(1, 200) name: string;
  @ApiProperty({ enum: ACCOUNT_TYPES }) @IsIn(ACCOUNT_TYPES) type: string;
  @ApiPropertyOptional({ format: 'uuid' }) @IsOptional() @IsUUID() parentId?: string;
  @ApiPropertyOptional({ default: false }) @IsOptional() @IsBoolean() isGroup?: boolean;
  @ApiPropertyOptional({ example: 'USD' }) @IsOptional() @Matches(CURRENCY, { message: 'currency must be an ISO 4217 code' }) currency?: string;
  @ApiPropertyOptional({ enum: CASH_FLOW_CLASSES }) @IsOptional() @IsIn(CASH_FLOW_CLASSES) cashFlowClass?: string;
}

export class UpdateAccountDto {
  @ApiPropertyOptional() @IsOptional() @IsString() @Length(1, 200) name?: string;
  @ApiPropertyOptional({ format: 'uuid', nullable: true }) @IsOptional() @IsUUID() parentId?: string;
  @ApiPropertyOptional() @IsOptional() @IsBoolean() isGroup?: boolean;
  @ApiPropertyOptional({ enum: CASH_FLOW_CLASSES }) @IsOptional() @IsIn(CASH_FLOW_CLASSES) cashFlowClass?: string;
}

export class AccountQuery {
  @ApiPropertyOptional({ description: 'Include archived accounts' }) @IsOptional() @IsIn(['true', 'false']) includeArchived?: string;
}

export class CurrencyBalanceDto {
  @ApiProperty() currency: string;
  @ApiProperty({ example: '100.00', description: 'Debit minus credit in the currency' }) balance: string;
  @ApiProperty({ example: '110.00', description: 'Debit minus credit in the base currency' }) baseBalance: string;
}

export class AccountBalanceDto {
  @ApiProperty({ format: 'uuid' }) accountId: string;
  @ApiPropertyOptional({ nullable: true }) asOf: string | null;
  @ApiProperty() baseCurrency: string;
  @ApiProperty({ description: 'Debit minus credit in the base currency' }) baseBalance: string;
  @ApiProperty({ type: [CurrencyBalanceDto] }) currencies: CurrencyBalanceDto[];
}

export class AsOfQuery {
  @ApiPropertyOptional({ example: '2026-01-31', description: 'Balance at the end of this day (default: everything posted)' })
  @IsOptional() @Matches(DATE, dateMsg('asOf')) asOf?: string;
  @ApiPropertyOptional({ enum: ['json', 'csv'] }) @IsOptional() @IsIn(['json', 'csv']) format?: string;
}

export class DateRangeQuery {
  @ApiProperty({ example: '2026-01-01' }) @Matches(DATE, dateMsg('from')) from: string;
  @ApiProperty({ example: '2026-01-31' }) @Matches(DATE, dateMsg('to')) to: string;
}

export class RangeQuery extends DateRangeQuery {
  @ApiPropertyOptional({ enum: ['json', 'csv'] }) @IsOptional() @IsIn(['json', 'csv']) format?: string;
}

export const COMPARE = ['previous_period', 'previous_year'] as const;

export class ProfitAndLossQuery extends RangeQuery {
  @ApiPropertyOptional({ enum: ['true', 'false'], default: 'false', description: 'Count closing entries (source year_end); by default a closed year shows its real result' })
  @IsOptional() @IsIn(['true', 'false']) includeClosing?: string;
  @ApiPropertyOptional({ enum: COMPARE, description: 'Comparative column: the range of the same length just before (whole months shift by months), or the same range a year earlier' })
  @IsOptional() @IsIn(COMPARE) compare?: (typeof COMPARE)[number];
}

export class BalanceSheetQuery extends AsOfQuery {
  @ApiPropertyOptional({ enum: COMPARE, description: 'Comparative column: as of the end of the previous month, or a year earlier' })
  @IsOptional() @IsIn(COMPARE) compare?: (typeof COMPARE)[number];
}

export class GeneralLedgerQuery extends PageQuery {
  @ApiPropertyOptional({ example: '2026-01-01' }) @IsOptional() @Matches(DATE, dateMsg('from')) from?: string;
  @ApiPropertyOptional({ example: '2026-01-31' }) @IsOptional() @Matches(DATE, dateMsg('to')) to?: string;
  @ApiPropertyOptional({ enum: ['json', 'csv'] }) @IsOptional() @IsIn(['json', 'csv']) format?: string;
}

export class GeneralLedgerLineDto {
  @ApiProperty({ format: 'uuid' }) entryId: string;
  @ApiProperty() lineNo: number;
  @ApiProperty() date: string;
  @ApiProperty() memo: string;
  @ApiPropertyOptional({ nullable: true }) description: string | null;
  @ApiProperty() currency: string;
  @ApiProperty() debit: string;
  @ApiProperty() credit: string;
  @ApiProperty() baseDebit: string;
  @ApiProperty() baseCredit: string;
  @ApiProperty({ description: 'Base-currency balance (debit minus credit) after this line' }) runningBalance: string;
}

export class GeneralLedgerDto extends PageInfo {
  @ApiProperty({ format: 'uuid' }) accountId: string;
  @ApiProperty() baseCurrency: string;
  @ApiProperty({ description: 'Balance before the first line of this page' }) openingBalance: string;
  @ApiProperty({ type: [GeneralLedgerLineDto] }) items: GeneralLedgerLineDto[];
}

// ---------------------------------------------------------------- FX rates
export class FxRateDto {
  @ApiProperty({ example: 'USD' }) currency: string;
  @ApiProperty({ example: '2026-01-31' }) date: string;
  @ApiProperty({ example: '0.9200000000', description: 'Units of the base currency for one unit of currency' }) rate: string;
  @ApiProperty({ enum: ['manual', 'import'] }) source: string;
}

export class SetFxRateDto {
  @ApiProperty({ example: 'USD' }) @Matches(CURRENCY, { message: 'currency must be an ISO 4217 code' }) currency: string;
  @ApiProperty({ example: '2026-01-31' }) @Matches(DATE, dateMsg('date')) date: string;
  @ApiProperty({ example: '0.92' }) @Matches(RATE, { message: 'rate must be a positive decimal string with at most 10 decimals' }) rate: string;
}

export class ImportFxRatesDto {
  @ApiProperty({ type: [SetFxRateDto] })
  @ArrayMinSize(1) @ArrayMaxSize(5000) @ValidateNested({ each: true }) @Type(() => SetFxRateDto)
  rates: SetFxRateDto[];
}

export class FxRateQuery extends PageQuery {
  @ApiPropertyOptional({ example: 'USD' }) @IsOptional() @Matches(CURRENCY, { message: 'currency must be an ISO 4217 code' }) currency?: string;
  @ApiPropertyOptional({ description: 'rates dated on or after this day' }) @IsOptional() @Matches(DATE, dateMsg('from')) from?: string;
  @ApiPropertyOptional({ description: 'rates dated on or before this day' }) @IsOptional() @Matches(DATE, dateMsg('to')) to?: string;
}

export class FxRatePage extends PageInfo {
  @ApiProperty({ type: [FxRateDto] }) items: FxRateDto[];
}

export class ImportResultDto {
  @ApiProperty() imported: number;
}

// ---------------------------------------------------------------- tax codes
export class TaxCodeDto {
  @ApiProperty({ format: 'uuid' }) id: string;
  @ApiProperty() code: string;
  @ApiProperty() name: string;
  @ApiProperty({ example: '20.0000', description: 'Percent' }) rate: string;
  @ApiProperty() inclusive: boolean;
  @ApiProperty({ format: 'uuid', description: 'Output tax on sales (credit lines)' }) salesAccountId: string;
  @ApiProperty({ format: 'uuid', description: 'Input tax on purchases (debit lines)' }) purchaseAccountId: string;
  @ApiPropertyOptional({ nullable: true }) archivedAt: Date | null;
}

export class CreateTaxCodeDto {
  @ApiProperty({ example: 'VAT20' }) @Matches(/^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/, { message: 'code must be 1-32 letters, digits, dots, dashes or underscores' }) code: string;
  @ApiProperty({ example: 'VAT 20 %' }) @IsString() @Length(1, 200) name: string;
  @ApiProperty({ example: '20', description: 'Percent, 0 to 100' }) @Matches(/^\d{1,3}(\.\d{1,4})?$/, { message: 'rate must be a percent like "20" or "7.5"' }) rate: string;
  @ApiPropertyOptional({ default: false, description: 'Amounts already include the tax' }) @IsOptional() @IsBoolean() inclusive?: boolean;
  @ApiProperty({ format: 'uuid' }) @IsUUID() salesAccountId: string;
  @ApiProperty({ format: 'uuid' }) @IsUUID() purchaseAccountId: string;
}

export class CalculateTaxDto {
  @ApiProperty({ example: '100.00', description: 'Net for an exclusive code, gross for an inclusive one' }) @Matches(AMOUNT, amountMsg('amount')) amount: string;
  @ApiPropertyOptional({ example: 'EUR', description: 'Defaults to the base currency' }) @IsOptional() @Matches(CURRENCY, { message: 'currency must be an ISO 4217 code' }) currency?: string;
}

export class TaxCalculationDto {
  @ApiProperty() currency: string;
  @ApiProperty() net: string;
  @ApiProperty() tax: string;
  @ApiProperty() gross: string;
}

// ---------------------------------------------------------------- fiscal calendar
export class FiscalPeriodDto {
  @ApiProperty({ format: 'uuid' }) id: string;
  @ApiProperty({ format: 'uuid' }) fiscalYearId: string;
  @ApiProperty() periodNo: number;
  @ApiProperty() startDate: string;
  @ApiProperty() endDate: string;
  @ApiProperty({ enum: ['open', 'closed'] }) status: string;
  @ApiPropertyOptional({ nullable: true }) closedAt: Date | null;
}

export class FiscalYearDto {
  @ApiProperty({ format: 'uuid' }) id: string;
  @ApiProperty() name: string;
  @ApiProperty() startDate: string;
  @ApiProperty() endDate: string;
  @ApiProperty({ enum: ['open', 'closed'] }) status: string;
  @ApiPropertyOptional({ format: 'uuid', nullable: true }) closingEntryId: string | null;
  @ApiPropertyOptional({ nullable: true }) closedAt: Date | null;
  @ApiProperty({ type: [FiscalPeriodDto] }) periods: FiscalPeriodDto[];
}

export class CreateFiscalYearDto {
  @ApiProperty({ example: '2027-01-01', description: 'First day; the year has 12 monthly periods' }) @Matches(DATE, dateMsg('startDate')) startDate: string;
  @ApiPropertyOptional({ example: 'FY2027' }) @IsOptional() @IsString() @Length(1, 100) name?: string;
}

// ---------------------------------------------------------------- journal entries
export class JournalLineInputDto {
  @ApiProperty({ format: 'uuid' }) @IsUUID() accountId: string;
  @ApiPropertyOptional({ example: '100.00' }) @IsOptional() @Matches(AMOUNT, amountMsg('debit')) debit?: string;
  @ApiPropertyOptional({ example: '100.00' }) @IsOptional() @Matches(AMOUNT, amountMsg('credit')) credit?: string;
  @ApiPropertyOptional({ example: 'USD', description: 'Transaction currency; defaults to the base currency' })
  @IsOptional() @Matches(CURRENCY, { message: 'currency must be an ISO 4217 code' }) currency?: string;
  @ApiPropertyOptional({ example: '0.92', description: 'Base units per unit of currency; defaults to the rate effective on the entry date' })
  @IsOptional() @Matches(RATE, { message: 'rate must be a positive decimal string with at most 10 decimals' }) rate?: string;
  @ApiPropertyOptional({ format: 'uuid', description: 'Adds the tax line: output tax for a credit line, input tax for a debit line' })
  @IsOptional() @IsUUID() taxCodeId?: string;
  @ApiPropertyOptional() @IsOptional() @IsString() @Length(0, 500) description?: string;
  @ApiPropertyOptional({ format: 'uuid' }) @IsOptional() @IsUUID() workspaceId?: string;
  @ApiPropertyOptional({ enum: ['customer', 'vendor', 'employee', 'other'] }) @IsOptional() @IsIn(['customer', 'vendor', 'employee', 'other']) counterpartyType?: string;
  @ApiPropertyOptional() @IsOptional() @IsString() @Length(1, 200) counterpartyId?: string;
}

export class CreateJournalEntryDto {
  @ApiProperty({ example: '2026-01-15' }) @Matches(DATE, dateMsg('date')) date: string;
  @ApiPropertyOptional({ example: 'Office rent January' }) @IsOptional() @IsString() @Length(0, 1000) memo?: string;
  @ApiPropertyOptional({ enum: ENTRY_SOURCES, default: 'manual' }) @IsOptional() @IsIn(ENTRY_SOURCES) source?: string;
  @ApiPropertyOptional({ description: 'Id of the source document (invoice, bill, payment)' }) @IsOptional() @IsString() @Length(1, 200) sourceRef?: string;
  @ApiPropertyOptional({ description: 'Same key and payload returns the first entry; same key, other payload is a 409. The Idempotency-Key header works too.' })
  @IsOptional() @IsString() @Length(1, 200) idempotencyKey?: string;
  @ApiProperty({ type: [JournalLineInputDto] })
  @ArrayMinSize(2, { message: 'lines must have at least 2 lines' }) @ArrayMaxSize(400) @ValidateNested({ each: true }) @Type(() => JournalLineInputDto)
  lines: JournalLineInputDto[];
}

export class ReverseEntryDto {
  @ApiPropertyOptional({ example: '2026-02-01', description: 'Date of the reversal (default: the original date)' }) @IsOptional() @Matches(DATE, dateMsg('date')) date?: string;
  @ApiPropertyOptional() @IsOptional() @IsString() @Length(0, 1000) memo?: string;
}

export class JournalLineDto {
  @ApiProperty() lineNo: number;
  @ApiProperty({ format: 'uuid' }) accountId: string;
  @ApiProperty() accountCode: string;
  @ApiProperty() currency: string;
  @ApiProperty({ example: '33.33', description: AMOUNT_DOC }) debit: string;
  @ApiProperty({ example: '0.00', description: AMOUNT_DOC }) credit: string;
  @ApiProperty({ example: '1.0000000000', description: RATE_DOC }) rate: string;
  @ApiProperty({ example: '33.33', description: BASE_DOC }) baseDebit: string;
  @ApiProperty({ example: '0.00', description: BASE_DOC }) baseCredit: string;
  @ApiPropertyOptional({ format: 'uuid', nullable: true, description: 'Tax code of a taxed sale or purchase line' }) taxCodeId: string | null;
  @ApiPropertyOptional({ enum: ['output_base', 'output_tax', 'input_base', 'input_tax'], nullable: true }) taxRole: string | null;
  @ApiPropertyOptional({ nullable: true }) description: string | null;
  @ApiPropertyOptional({ nullable: true }) workspaceId: string | null;
  @ApiPropertyOptional({ nullable: true }) counterpartyType: string | null;
  @ApiPropertyOptional({ nullable: true }) counterpartyId: string | null;
  @ApiProperty({ description: 'Added by the database for a rounding difference' }) isRounding: boolean;
}

export class JournalEntryDto {
  @ApiProperty({ format: 'uuid' }) id: string;
  @ApiProperty() date: string;
  @ApiProperty() memo: string;
  @ApiProperty({ enum: ALL_ENTRY_SOURCES, description: 'year_end: a closing entry (or its reversal when the year reopened)' }) source: string;
  @ApiPropertyOptional({ nullable: true }) sourceRef: string | null;
  @ApiPropertyOptional({ format: 'uuid', nullable: true }) reversesEntryId: string | null;
  @ApiPropertyOptional({ format: 'uuid', nullable: true }) reversedByEntryId: string | null;
  @ApiPropertyOptional({ nullable: true }) idempotencyKey: string | null;
  @ApiProperty() baseCurrency: string;
  @ApiProperty({ description: `Sum of base debits (= base credits). ${BASE_DOC}` }) totalBase: string;
  @ApiPropertyOptional({ nullable: true }) createdBy: string | null;
  @ApiProperty() createdAt: Date;
  @ApiProperty({ type: [JournalLineDto] }) lines: JournalLineDto[];
}

export class JournalEntryPage extends PageInfo {
  @ApiProperty({ type: [JournalEntryDto] }) items: JournalEntryDto[];
}

export class JournalEntryQuery extends PageQuery {
  @ApiPropertyOptional() @IsOptional() @Matches(DATE, dateMsg('from')) from?: string;
  @ApiPropertyOptional() @IsOptional() @Matches(DATE, dateMsg('to')) to?: string;
  @ApiPropertyOptional({ format: 'uuid', description: 'Entries with a line on this account' }) @IsOptional() @IsUUID() accountId?: string;
  @ApiPropertyOptional({ enum: ALL_ENTRY_SOURCES }) @IsOptional() @IsIn(ALL_ENTRY_SOURCES) source?: string;
  @ApiPropertyOptional({ enum: ['customer', 'vendor', 'employee', 'other'], description: 'Entries with a line for this kind of counterparty' })
  @IsOptional() @IsIn(['customer', 'vendor', 'employee', 'other']) counterpartyType?: string;
  @ApiPropertyOptional({ description: 'Entries with a line for this counterparty' }) @IsOptional() @IsString() @Length(1, 200) counterpartyId?: string;
  @ApiPropertyOptional({ example: '100.00', description: 'totalBase at least this' }) @IsOptional() @Matches(AMOUNT, amountMsg('minAmount')) minAmount?: string;
  @ApiPropertyOptional({ example: '5000.00', description: 'totalBase at most this' }) @IsOptional() @Matches(AMOUNT, amountMsg('maxAmount')) maxAmount?: string;
  @ApiPropertyOptional({ description: 'Memo contains this text (case-insensitive)' }) @IsOptional() @IsString() @Length(1, 200) memo?: string;
}

export class BatchJournalEntriesDto {
  @ApiProperty({ type: [CreateJournalEntryDto], description: '1 to 1,000 entries, each with its own idempotencyKey (optional)' })
  @ArrayMinSize(1) @ArrayMaxSize(1000) @ValidateNested({ each: true }) @Type(() => CreateJournalEntryDto)
  entries: CreateJournalEntryDto[];
}

export class BatchQuery {
  @ApiPropertyOptional({ enum: ['all_or_nothing', 'independent'], default: 'all_or_nothing', description: 'independent: post the valid entries and report the rejected ones' })
  @IsOptional() @IsIn(['all_or_nothing', 'independent']) mode?: 'all_or_nothing' | 'independent';
}

export class BatchItemErrorDto {
  @ApiProperty({ example: 'ledger.unbalanced' }) code: string;
  @ApiProperty() message: string;
}

export class BatchItemDto {
  @ApiProperty({ description: 'Position in entries' }) index: number;
  @ApiProperty({ enum: ['posted', 'replayed', 'rejected'], description: 'replayed: the idempotency key was seen with the same entry' }) status: string;
  @ApiPropertyOptional({ format: 'uuid' }) id?: string;
  @ApiPropertyOptional({ type: BatchItemErrorDto }) error?: BatchItemErrorDto;
}

export class BatchResultDto {
  @ApiProperty({ enum: ['all_or_nothing', 'independent'] }) mode: string;
  @ApiProperty() posted: number;
  @ApiProperty() replayed: number;
  @ApiProperty() rejected: number;
  @ApiProperty({ type: [BatchItemDto] }) results: BatchItemDto[];
}

export class RevaluationDto {
  @ApiProperty({ example: '2026-01-31', description: 'Revalue open foreign-currency balances at the rate effective on this date' })
  @Matches(DATE, dateMsg('date')) date: string;
  @ApiPropertyOptional({ default: false, description: 'Also post the reversal, dated the first day of the next period' }) @IsOptional() @IsBoolean() autoReverse?: boolean;
}

export class RevaluationLineDto {
  @ApiProperty({ format: 'uuid' }) accountId: string;
  @ApiProperty() currency: string;
  @ApiProperty({ example: '1000.00', description: AMOUNT_DOC }) balance: string;
  @ApiProperty({ example: '0.9500000000', description: RATE_DOC }) rate: string;
  @ApiProperty({ description: BASE_DOC }) baseBefore: string;
  @ApiProperty({ description: BASE_DOC }) baseAfter: string;
  @ApiProperty({ description: BASE_DOC }) difference: string;
}

export class RevaluationResultDto {
  @ApiProperty({ type: [RevaluationLineDto] }) adjustments: RevaluationLineDto[];
  @ApiPropertyOptional({ type: JournalEntryDto, nullable: true }) entry: JournalEntryDto | null;
  @ApiPropertyOptional({ type: JournalEntryDto, nullable: true, description: 'With autoReverse: the reversal, dated the first day of the next period' }) reversal: JournalEntryDto | null;
}

export class YearEndResultDto {
  @ApiProperty({ type: FiscalYearDto }) fiscalYear: FiscalYearDto;
  @ApiPropertyOptional({ type: JournalEntryDto, nullable: true, description: 'Moves the year\'s result to retained earnings' }) closingEntry: JournalEntryDto | null;
}

export class YearReopenResultDto {
  @ApiProperty({ type: FiscalYearDto }) fiscalYear: FiscalYearDto;
  @ApiPropertyOptional({ type: JournalEntryDto, nullable: true, description: 'Reverses the closing entry: the year\'s result is back on its revenue and expense accounts' }) reversalEntry: JournalEntryDto | null;
}

// ---------------------------------------------------------------- statements
export class TrialBalanceRowDto {
  @ApiProperty({ format: 'uuid' }) accountId: string;
  @ApiProperty() code: string;
  @ApiProperty() name: string;
  @ApiProperty({ enum: ACCOUNT_TYPES }) type: string;
  @ApiProperty() debit: string;
  @ApiProperty() credit: string;
}

export class TrialBalanceDto {
  @ApiPropertyOptional({ nullable: true }) asOf: string | null;
  @ApiProperty() baseCurrency: string;
  @ApiProperty({ type: [TrialBalanceRowDto] }) rows: TrialBalanceRowDto[];
  @ApiProperty() totalDebit: string;
  @ApiProperty() totalCredit: string;
  @ApiProperty() balanced: boolean;
}

export class StatementRowDto {
  @ApiProperty({ format: 'uuid' }) accountId: string;
  @ApiProperty() code: string;
  @ApiProperty() name: string;
  @ApiProperty({ enum: ACCOUNT_TYPES }) type: string;
  @ApiProperty({ description: '0 for a top-level account' }) depth: number;
  @ApiProperty() isGroup: boolean;
  @ApiProperty({ description: 'Own amount plus all descendants, in the natural sign of the type' }) amount: string;
  @ApiPropertyOptional({ description: 'The same in the comparative column (with ?compare=)' }) comparativeAmount?: string;
}

export class PeriodTotalsDto {
  @ApiProperty() from: string;
  @ApiProperty() to: string;
  @ApiProperty() totalRevenue: string;
  @ApiProperty() totalExpenses: string;
  @ApiProperty() netIncome: string;
}

export class BalanceTotalsDto {
  @ApiProperty() asOf: string;
  @ApiProperty() totalAssets: string;
  @ApiProperty() totalLiabilities: string;
  @ApiProperty() totalEquity: string;
  @ApiProperty() currentEarnings: string;
}

export class ProfitAndLossDto {
  @ApiProperty() from: string;
  @ApiProperty() to: string;
  @ApiProperty() baseCurrency: string;
  @ApiProperty({ type: [StatementRowDto] }) revenue: StatementRowDto[];
  @ApiProperty({ type: [StatementRowDto] }) expenses: StatementRowDto[];
  @ApiProperty() totalRevenue: string;
  @ApiProperty() totalExpenses: string;
  @ApiProperty() netIncome: string;
  @ApiProperty({ description: 'Whether closing entries (source year_end) are counted' }) includeClosing: boolean;
  @ApiPropertyOptional({ type: PeriodTotalsDto, description: 'The comparative column\'s range and totals (with ?compare=)' }) comparative?: PeriodTotalsDto;
}

export class BalanceSheetDto {
  @ApiProperty() asOf: string;
  @ApiProperty() baseCurrency: string;
  @ApiProperty({ type: [StatementRowDto] }) assets: StatementRowDto[];
  @ApiProperty({ type: [StatementRowDto] }) liabilities: StatementRowDto[];
  @ApiProperty({ type: [StatementRowDto] }) equity: StatementRowDto[];
  @ApiProperty() totalAssets: string;
  @ApiProperty() totalLiabilities: string;
  @ApiProperty() totalEquity: string;
  @ApiProperty({ description: 'Revenue minus expenses not yet closed to retained earnings' }) currentEarnings: string;
  @ApiProperty({ description: 'assets = liabilities + equity + current earnings' }) balanced: boolean;
  @ApiPropertyOptional({ type: BalanceTotalsDto, description: 'The comparative column\'s date and totals (with ?compare=)' }) comparative?: BalanceTotalsDto;
}

// ---------------------------------------------------------------- VAT report
export class VatRowDto {
  @ApiProperty({ format: 'uuid' }) taxCodeId: string;
  @ApiProperty() code: string;
  @ApiProperty() name: string;
  @ApiProperty({ example: '20.0000', description: 'Percent' }) rate: string;
  @ApiProperty({ description: 'Net sales taxed with this code (base currency)' }) taxableSales: string;
  @ApiProperty({ description: 'Tax on those sales, owed' }) outputTax: string;
  @ApiProperty({ description: 'Net purchases taxed with this code' }) taxablePurchases: string;
  @ApiProperty({ description: 'Tax on those purchases, deductible' }) inputTax: string;
  @ApiProperty({ description: 'outputTax - inputTax: payable when positive, refundable when negative' }) net: string;
}

export class VatReportDto {
  @ApiProperty() from: string;
  @ApiProperty() to: string;
  @ApiProperty() baseCurrency: string;
  @ApiProperty({ type: [VatRowDto] }) rows: VatRowDto[];
  @ApiProperty() totalTaxableSales: string;
  @ApiProperty() totalOutputTax: string;
  @ApiProperty() totalTaxablePurchases: string;
  @ApiProperty() totalInputTax: string;
  @ApiProperty({ description: 'Net payable (negative: refundable)' }) netPayable: string;
}

// ---------------------------------------------------------------- cash-flow statement
export class CashFlowRowDto {
  @ApiProperty({ format: 'uuid' }) accountId: string;
  @ApiProperty() code: string;
  @ApiProperty() name: string;
  @ApiProperty({ description: 'Effect on cash: a decrease of an asset or an increase of a liability or equity is positive' }) amount: string;
}

export class CashFlowSectionDto {
  @ApiProperty({ type: [CashFlowRowDto] }) rows: CashFlowRowDto[];
  @ApiProperty() total: string;
}

export class CashFlowDto {
  @ApiProperty() from: string;
  @ApiProperty() to: string;
  @ApiProperty() baseCurrency: string;
  @ApiProperty({ description: 'Net income of the range (closing entries excluded)' }) netIncome: string;
  @ApiProperty({ type: CashFlowSectionDto, description: 'Working-capital changes; total includes net income' }) operating: CashFlowSectionDto;
  @ApiProperty({ type: CashFlowSectionDto }) investing: CashFlowSectionDto;
  @ApiProperty({ type: CashFlowSectionDto }) financing: CashFlowSectionDto;
  @ApiProperty({ description: 'operating + investing + financing' }) netChange: string;
  @ApiProperty({ description: 'Cash accounts (cashFlowClass cash) the day before from' }) openingCash: string;
  @ApiProperty() closingCash: string;
  @ApiProperty({ description: 'openingCash + netChange = closingCash' }) balanced: boolean;
}
