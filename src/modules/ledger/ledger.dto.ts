import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import {
  ArrayMaxSize, ArrayMinSize, IsBoolean, IsIn, IsOptional, IsString, IsUUID, Length, Matches, ValidateBy,
} from 'class-validator';
import { CalendarDate } from '../../platform/http/calendar-date.js';
import { Amount, Currency, Percent, Rate } from '../../platform/http/money.js';
import { NestedList } from '../../platform/http/nested-list.js';
import { RATE_OVERRIDE_DOC } from './client-rate.js';
import { PageInfo } from '../../platform/http/openapi.js';
import { PageQuery } from '../../platform/http/pagination.js';

export const ACCOUNT_TYPES = ['asset', 'liability', 'equity', 'revenue', 'expense'] as const;
/**
 * Sources a client may set. opening_balance: the balances brought from former books, dated the first day of the first
 * fiscal year; the cash-flow statement counts its cash as opening cash and shows no flows of it (as it leaves closing
 * entries, year_end, out); every other report counts it as any entry.
 */
export const ENTRY_SOURCES = ['manual', 'invoice', 'bill', 'payment', 'opening_balance'] as const;
/** Sources of entries the ledger posts itself: 'system' (FX revaluation), 'year_end' (closing entries and their reversals). */
export const ALL_ENTRY_SOURCES = [...ENTRY_SOURCES, 'system', 'year_end'] as const;
export const CASH_FLOW_CLASSES = ['cash', 'operating', 'investing', 'financing'] as const;
const AMOUNT_DOC = 'Decimal string with exactly the currency\'s minor units';
const BASE_DOC = 'Decimal string with exactly the base currency\'s minor units';
const RATE_DOC = 'Base units per unit of currency, 10 decimals';

/** The last first day of a fiscal year: its 12 months end on 9999-12-31, the last day the API's dates can name. */
const LAST_YEAR_START = '9999-01-01';
/** A fiscal year's first day whose year ends by 9999-12-31 (a later start ended in year 10000, which no date of the API names). */
const YearEndsByYear9999 = (field: string): PropertyDecorator => ValidateBy({
  name: 'yearEndsByYear9999',
  validator: {
    validate: (v: unknown) => typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(v) || v <= LAST_YEAR_START,
    defaultMessage: () => `${field} must be ${LAST_YEAR_START} or earlier: the fiscal year's 12 months would end after 9999-12-31`,
  },
});

// ---------------------------------------------------------------- books and settings
@ApiSchema({ description: 'The base currency, the first fiscal year and the chart of accounts to start the ledger with' })
export class StartBooksDto {
  @ApiProperty({ example: 'EUR', description: 'Base currency (ISO 4217)' }) @Currency('baseCurrency') baseCurrency: string;
  @ApiProperty({ example: '2026-01-01', description: 'First day of the first fiscal year (12 monthly periods are created); 9999-01-01 at the latest (the year ends by 9999-12-31)' })
  @CalendarDate('fiscalYearStart') @YearEndsByYear9999('fiscalYearStart') fiscalYearStart: string;
  @ApiPropertyOptional({ enum: ['standard', 'none'], default: 'standard', description: 'Chart of accounts template to install' })
  @IsOptional() @IsIn(['standard', 'none']) template?: 'standard' | 'none';
}

@ApiSchema({ description: "The ledger's base currency and the accounts it posts rounding, year-end and FX results to" })
export class LedgerSettingsDto {
  @ApiProperty({ description: 'Base currency of the books (ISO 4217); set when the books are started' }) baseCurrency: string;
  @ApiProperty({ description: 'Account that takes rounding differences of an entry; null when not set', type: String, nullable: true, format: 'uuid' }) roundingAccountId: string | null;
  @ApiProperty({ description: 'Account the year-end close moves the year\'s result to, and that takes an opening-balance entry\'s rounding difference (when it is a postable equity account); null when not set', type: String, nullable: true, format: 'uuid' }) retainedEarningsAccountId: string | null;
  @ApiProperty({ description: 'Account for FX gains; null when not set', type: String, nullable: true, format: 'uuid' }) fxGainAccountId: string | null;
  @ApiProperty({ description: 'Account for FX losses; null when not set', type: String, nullable: true, format: 'uuid' }) fxLossAccountId: string | null;
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'Unrealized FX gains (revaluation); falls back to fxGainAccountId' }) fxUnrealizedGainAccountId: string | null;
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'Unrealized FX losses (revaluation); falls back to fxLossAccountId' }) fxUnrealizedLossAccountId: string | null;
}

@ApiSchema({ description: "Changes to the ledger's system accounts; fields left out keep their value" })
export class UpdateLedgerSettingsDto {
  @ApiPropertyOptional({ description: 'Account that takes rounding differences of an entry', format: 'uuid' }) @IsOptional() @IsUUID() roundingAccountId?: string;
  @ApiPropertyOptional({ description: 'Account the year-end close moves the year\'s result to, and that takes an opening-balance entry\'s rounding difference (when it is a postable equity account)', format: 'uuid' }) @IsOptional() @IsUUID() retainedEarningsAccountId?: string;
  @ApiPropertyOptional({ description: 'Account for FX gains: a revenue or expense account', format: 'uuid' }) @IsOptional() @IsUUID() fxGainAccountId?: string;
  @ApiPropertyOptional({ description: 'Account for FX losses: a revenue or expense account', format: 'uuid' }) @IsOptional() @IsUUID() fxLossAccountId?: string;
  @ApiPropertyOptional({ description: 'Account for unrealized FX gains (revaluation): a revenue or expense account', format: 'uuid' }) @IsOptional() @IsUUID() fxUnrealizedGainAccountId?: string;
  @ApiPropertyOptional({ description: 'Account for unrealized FX losses (revaluation): a revenue or expense account', format: 'uuid' }) @IsOptional() @IsUUID() fxUnrealizedLossAccountId?: string;
}

@ApiSchema({ description: 'An ISO 4217 currency and its minor units' })
export class CurrencyDto {
  @ApiProperty({ description: 'ISO 4217 currency code' }) code: string;
  @ApiProperty({ description: 'Name of the currency' }) name: string;
  @ApiProperty({ description: 'Number of decimals amounts in the currency have (e.g. 2 for EUR, 0 for JPY)' }) minorUnits: number;
}

// ---------------------------------------------------------------- accounts
@ApiSchema({ description: 'An account of the chart of accounts' })
export class AccountDto {
  @ApiProperty({ description: 'The account id', format: 'uuid' }) id: string;
  @ApiProperty({ description: 'Account code, unique in the chart' }) code: string;
  @ApiProperty({ description: 'Name of the account' }) name: string;
  @ApiProperty({ description: 'asset, liability, equity, revenue or expense', enum: ACCOUNT_TYPES }) type: string;
  @ApiProperty({ description: 'The parent group account; null for a top-level account', type: String, nullable: true, format: 'uuid' }) parentId: string | null;
  @ApiProperty({ description: 'Group accounts sum their children and cannot be posted to' }) isGroup: boolean;
  @ApiProperty({ type: String, nullable: true, description: 'Only lines in this currency may post to the account' }) currency: string | null;
  @ApiProperty({ type: String, enum: [...CASH_FLOW_CLASSES, null], nullable: true, description: 'Cash-flow statement section; null: the class of the nearest ancestor group that has one, else by type (asset, liability → operating; equity → financing)' }) cashFlowClass: string | null;
  @ApiProperty({ description: 'When the account was archived; null while active', type: Date, nullable: true }) archivedAt: Date | null;
  @ApiProperty({ description: 'When the account was created' }) createdAt: Date;
  @ApiProperty({ description: 'When the account was last changed' }) updatedAt: Date;
}

@ApiSchema({ description: 'A new account of the chart of accounts' })
export class CreateAccountDto {
  @ApiProperty({ description: 'Account code, unique in the chart: 1-32 letters, digits, dots or dashes', example: '1110' }) @Matches(/^[A-Za-z0-9][A-Za-z0-9.-]{0,31}$/, { message: 'code must be 1-32 letters, digits, dots or dashes' }) code: string;
  @ApiProperty({ description: 'Name of the account', example: 'Petty cash' }) @IsString() @Length(1, 200) name: string;
  @ApiProperty({ description: 'asset, liability, equity, revenue or expense', enum: ACCOUNT_TYPES }) @IsIn(ACCOUNT_TYPES) type: string;
  @ApiPropertyOptional({ description: 'A group account to put it under; absent: top level', format: 'uuid' }) @IsOptional() @IsUUID() parentId?: string;
  @ApiPropertyOptional({ description: 'true for a group account: sums its children, cannot be posted to', default: false }) @IsOptional() @IsBoolean() isGroup?: boolean;
  @ApiPropertyOptional({ description: 'Only lines in this currency may post to the account; absent: any currency', example: 'USD' }) @IsOptional() @Currency('currency') currency?: string;
  @ApiPropertyOptional({ description: 'Cash-flow statement section; absent: the class of the nearest ancestor group that has one (a bank account under a group classed cash is cash), else by type', enum: CASH_FLOW_CLASSES }) @IsOptional() @IsIn(CASH_FLOW_CLASSES) cashFlowClass?: string;
}

@ApiSchema({ description: 'Changes to an account; fields left out keep their value' })
export class UpdateAccountDto {
  @ApiPropertyOptional({ description: 'New name of the account' }) @IsOptional() @IsString() @Length(1, 200) name?: string;
  @ApiPropertyOptional({ description: 'A group account to move it under', format: 'uuid', nullable: true }) @IsOptional() @IsUUID() parentId?: string;
  @ApiPropertyOptional({ description: 'true for a group account: sums its children, cannot be posted to' }) @IsOptional() @IsBoolean() isGroup?: boolean;
  @ApiPropertyOptional({ description: 'Cash-flow statement section', enum: CASH_FLOW_CLASSES }) @IsOptional() @IsIn(CASH_FLOW_CLASSES) cashFlowClass?: string;
}

export class AccountQuery {
  @ApiPropertyOptional({ enum: ['true', 'false'], description: 'Include archived accounts' }) @IsOptional() @IsIn(['true', 'false']) includeArchived?: string;
}

@ApiSchema({ description: "An account's balance in one transaction currency and in the base currency" })
export class CurrencyBalanceDto {
  @ApiProperty({ description: 'The transaction currency (ISO 4217)' }) currency: string;
  @ApiProperty({ example: '100.00', description: 'Debit minus credit in the currency' }) balance: string;
  @ApiProperty({ example: '110.00', description: 'Debit minus credit in the base currency' }) baseBalance: string;
}

@ApiSchema({ description: "An account's balance at a date, per currency and in total" })
export class AccountBalanceDto {
  @ApiProperty({ description: 'The account', format: 'uuid' }) accountId: string;
  @ApiProperty({ description: 'The day the balance is at the end of, YYYY-MM-DD; null: everything posted', type: String, nullable: true }) asOf: string | null;
  @ApiProperty({ description: 'Base currency of the books' }) baseCurrency: string;
  @ApiProperty({ description: 'Debit minus credit in the base currency' }) baseBalance: string;
  @ApiProperty({ description: 'The balance per transaction currency', type: [CurrencyBalanceDto] }) currencies: CurrencyBalanceDto[];
}

export class AsOfQuery {
  @ApiPropertyOptional({ example: '2026-01-31', description: 'Balance at the end of this day (default: everything posted, entries dated after today included)' })
  @IsOptional() @CalendarDate('asOf') asOf?: string;
  @ApiPropertyOptional({ enum: ['json', 'csv'] }) @IsOptional() @IsIn(['json', 'csv']) format?: string;
}

export class DateRangeQuery {
  @ApiProperty({ example: '2026-01-01' }) @CalendarDate('from') from: string;
  @ApiProperty({ example: '2026-01-31' }) @CalendarDate('to') to: string;
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

/**
 * Not AsOfQuery: the balance sheet needs a date (the balances and the current earnings are those of the entries dated up
 * to that day; current earnings: all revenue and expenses not yet closed to retained earnings, an earlier fiscal year
 * not closed yet included, not only the year of that date), so without asOf it is today's, which a trial balance or an
 * account balance without asOf is not (they count everything posted).
 */
export class BalanceSheetQuery {
  @ApiPropertyOptional({
    example: '2026-01-31',
    description: 'Balance sheet at the end of this day (default: today, the current UTC day, as other reports\' "today" (the aging); '
      + 'entries dated after it are not counted, whereas the trial balance and an account\'s balance without asOf count everything posted)',
  })
  @IsOptional() @CalendarDate('asOf') asOf?: string;
  @ApiPropertyOptional({ enum: ['json', 'csv'] }) @IsOptional() @IsIn(['json', 'csv']) format?: string;
  @ApiPropertyOptional({ enum: COMPARE, description: 'Comparative column: as of the end of the previous month, or a year earlier' })
  @IsOptional() @IsIn(COMPARE) compare?: (typeof COMPARE)[number];
}

export class GeneralLedgerQuery extends PageQuery {
  @ApiPropertyOptional({ example: '2026-01-01' }) @IsOptional() @CalendarDate('from') from?: string;
  @ApiPropertyOptional({ example: '2026-01-31' }) @IsOptional() @CalendarDate('to') to?: string;
  @ApiPropertyOptional({ enum: ['json', 'csv'] }) @IsOptional() @IsIn(['json', 'csv']) format?: string;
}

@ApiSchema({ description: 'One posted line of an account, with the running balance' })
export class GeneralLedgerLineDto {
  @ApiProperty({ description: 'The journal entry of the line', format: 'uuid' }) entryId: string;
  @ApiProperty({ description: 'Number of the line within its entry' }) lineNo: number;
  @ApiProperty({ description: 'Date of the entry, YYYY-MM-DD' }) date: string;
  @ApiProperty({ description: 'Memo of the entry; empty when none' }) memo: string;
  @ApiProperty({ description: 'Description of the line; null when none', type: String, nullable: true }) description: string | null;
  @ApiProperty({ description: 'Transaction currency of the line' }) currency: string;
  @ApiProperty({ description: 'Debit in the transaction currency (decimal string)' }) debit: string;
  @ApiProperty({ description: 'Credit in the transaction currency (decimal string)' }) credit: string;
  @ApiProperty({ description: 'Debit in the base currency (decimal string)' }) baseDebit: string;
  @ApiProperty({ description: 'Credit in the base currency (decimal string)' }) baseCredit: string;
  @ApiProperty({ description: 'Base-currency balance (debit minus credit) after this line' }) runningBalance: string;
}

@ApiSchema({ description: 'The posted lines of one account over a date range, with opening and closing balances' })
export class GeneralLedgerDto extends PageInfo {
  @ApiProperty({ description: 'The account', format: 'uuid' }) accountId: string;
  @ApiProperty({ description: 'Base currency of the books' }) baseCurrency: string;
  @ApiProperty({ description: 'Balance before the first line of this page' }) openingBalance: string;
  @ApiProperty({ description: 'The posted lines of this page, oldest first', type: [GeneralLedgerLineDto] }) items: GeneralLedgerLineDto[];
}

// ---------------------------------------------------------------- FX rates
@ApiSchema({ description: 'An exchange rate: base units per unit of a currency, effective from a date' })
export class FxRateDto {
  @ApiProperty({ description: 'The currency the rate is for (ISO 4217)', example: 'USD' }) currency: string;
  @ApiProperty({ description: 'The day the rate is effective from, YYYY-MM-DD', example: '2026-01-31' }) date: string;
  @ApiProperty({ example: '0.9200000000', description: 'Units of the base currency for one unit of currency' }) rate: string;
  @ApiProperty({ description: 'manual: set one at a time; import: set by a bulk import', enum: ['manual', 'import'] }) source: string;
}

@ApiSchema({ description: 'An exchange rate to set for a currency and date' })
export class SetFxRateDto {
  @ApiProperty({ description: 'The currency the rate is for (ISO 4217)', example: 'USD' }) @Currency('currency') currency: string;
  @ApiProperty({ description: 'The day the rate is effective from, YYYY-MM-DD', example: '2026-01-31' }) @CalendarDate('date') date: string;
  @ApiProperty({ description: 'Units of the base currency for one unit of currency; at most 10 decimals', example: '0.92' }) @Rate('rate') rate: string;
}

@ApiSchema({ description: 'Exchange rates to set, all or none' })
export class ImportFxRatesDto {
  @ApiProperty({ description: '1 to 5,000 rates; a rate for an existing currency and date replaces it', type: [SetFxRateDto] })
  @ArrayMinSize(1) @ArrayMaxSize(5000) @NestedList(() => SetFxRateDto, 'an FX rate')
  rates: SetFxRateDto[];
}

export class FxRateQuery extends PageQuery {
  @ApiPropertyOptional({ example: 'USD' }) @IsOptional() @Currency('currency') currency?: string;
  @ApiPropertyOptional({ description: 'rates dated on or after this day' }) @IsOptional() @CalendarDate('from') from?: string;
  @ApiPropertyOptional({ description: 'rates dated on or before this day' }) @IsOptional() @CalendarDate('to') to?: string;
}

@ApiSchema({ description: 'A page of exchange rates' })
export class FxRatePage extends PageInfo {
  @ApiProperty({ description: 'The rates on this page', type: [FxRateDto] }) items: FxRateDto[];
}

@ApiSchema({ description: 'How many exchange rates an import wrote' })
export class ImportResultDto {
  @ApiProperty({ description: 'Number of rates written' }) imported: number;
}

// ---------------------------------------------------------------- tax codes
@ApiSchema({ description: 'A tax code: its rate and the accounts its output and input tax post to' })
export class TaxCodeDto {
  @ApiProperty({ description: 'The tax code id', format: 'uuid' }) id: string;
  @ApiProperty({ description: 'Short code of the tax code, unique in the organization' }) code: string;
  @ApiProperty({ description: 'Name of the tax code' }) name: string;
  @ApiProperty({ example: '20.0000', description: 'Percent' }) rate: string;
  @ApiProperty({ description: 'true: amounts posted with it already include the tax' }) inclusive: boolean;
  @ApiProperty({ format: 'uuid', description: 'Output tax on sales (credit lines)' }) salesAccountId: string;
  @ApiProperty({ format: 'uuid', description: 'Input tax on purchases (debit lines)' }) purchaseAccountId: string;
  @ApiProperty({ description: 'When the tax code was archived; null while active', type: Date, nullable: true }) archivedAt: Date | null;
}

@ApiSchema({ description: 'A new tax code' })
export class CreateTaxCodeDto {
  @ApiProperty({ description: 'Short code, unique in the organization: 1-32 letters, digits, dots, dashes or underscores', example: 'VAT20' }) @Matches(/^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/, { message: 'code must be 1-32 letters, digits, dots, dashes or underscores' }) code: string;
  @ApiProperty({ description: 'Name of the tax code', example: 'VAT 20 %' }) @IsString() @Length(1, 200) name: string;
  @ApiProperty({ example: '20', description: 'Percent, 0 to 100' }) @Percent('rate') rate: string;
  @ApiPropertyOptional({ default: false, description: 'Amounts already include the tax' }) @IsOptional() @IsBoolean() inclusive?: boolean;
  @ApiProperty({ description: 'Account output tax on sales (credit lines) posts to', format: 'uuid' }) @IsUUID() salesAccountId: string;
  @ApiProperty({ description: 'Account input tax on purchases (debit lines) posts to', format: 'uuid' }) @IsUUID() purchaseAccountId: string;
}

@ApiSchema({
  description: 'Changes to a tax code: its name and the accounts its tax posts to from now on. Its rate and whether amounts include '
    + 'the tax never change: a new rate is a new tax code (archive the old one), so the lines posted with a code keep its rate.',
})
export class UpdateTaxCodeDto {
  @ApiPropertyOptional({ description: 'New name of the tax code', example: 'VAT 20 % (standard)' }) @IsOptional() @IsString() @Length(1, 200) name?: string;
  @ApiPropertyOptional({ description: 'Account output tax on sales posts to from now on', format: 'uuid' }) @IsOptional() @IsUUID() salesAccountId?: string;
  @ApiPropertyOptional({ description: 'Account input tax on purchases posts to from now on', format: 'uuid' }) @IsOptional() @IsUUID() purchaseAccountId?: string;
}

@ApiSchema({ description: 'An amount to calculate the tax of' })
export class CalculateTaxDto {
  @ApiProperty({ example: '100.00', description: 'Net for an exclusive code, gross for an inclusive one; at most the currency\'s minor units (422 ledger.invalid_amount), as in a posting' }) @Amount('amount') amount: string;
  @ApiPropertyOptional({ example: 'EUR', description: 'Defaults to the base currency' }) @IsOptional() @Currency('currency') currency?: string;
}

@ApiSchema({ description: 'The net, tax and gross of an amount under a tax code' })
export class TaxCalculationDto {
  @ApiProperty({ description: 'Currency of the amounts' }) currency: string;
  @ApiProperty({ description: 'Amount without tax (decimal string)' }) net: string;
  @ApiProperty({ description: 'The tax (decimal string)' }) tax: string;
  @ApiProperty({ description: 'Amount with tax: net plus tax (decimal string)' }) gross: string;
}

// ---------------------------------------------------------------- fiscal calendar
@ApiSchema({ description: 'A fiscal period (a month of a fiscal year), open or closed' })
export class FiscalPeriodDto {
  @ApiProperty({ description: 'The period id', format: 'uuid' }) id: string;
  @ApiProperty({ description: 'The fiscal year of the period', format: 'uuid' }) fiscalYearId: string;
  @ApiProperty({ description: 'Number of the period within its year, from 1' }) periodNo: number;
  @ApiProperty({ description: 'First day of the period, YYYY-MM-DD' }) startDate: string;
  @ApiProperty({ description: 'Last day of the period, YYYY-MM-DD' }) endDate: string;
  @ApiProperty({ description: 'open: entries may be posted in it; closed: not', enum: ['open', 'closed'] }) status: string;
  @ApiProperty({ description: 'When the period was closed; null while open', type: Date, nullable: true }) closedAt: Date | null;
}

@ApiSchema({ description: 'A fiscal year, its periods, and its closing entry once closed' })
export class FiscalYearDto {
  @ApiProperty({ description: 'The fiscal year id', format: 'uuid' }) id: string;
  @ApiProperty({ description: 'Name of the fiscal year (e.g. FY2026)' }) name: string;
  @ApiProperty({ description: 'First day of the year, YYYY-MM-DD' }) startDate: string;
  @ApiProperty({ description: 'Last day of the year, YYYY-MM-DD' }) endDate: string;
  @ApiProperty({ description: 'open, or closed by the year-end close', enum: ['open', 'closed'] }) status: string;
  @ApiProperty({ description: 'The closing entry of the year-end close (the first one when the close needed several: more than 498 closing lines); null while open', type: String, nullable: true, format: 'uuid' }) closingEntryId: string | null;
  @ApiProperty({ description: 'When the year was closed; null while open', type: Date, nullable: true }) closedAt: Date | null;
  @ApiProperty({ description: 'The periods of the year, in order', type: [FiscalPeriodDto] }) periods: FiscalPeriodDto[];
}

@ApiSchema({ description: 'The next fiscal year to open' })
export class CreateFiscalYearDto {
  @ApiProperty({ example: '2027-01-01', description: 'First day; the year has 12 monthly periods. 9999-01-01 at the latest (the year ends by 9999-12-31); '
    + 'not before a closed fiscal year (422 ledger.fiscal_year_before_closed_year: its entries would change that year\'s closed figures), '
    + 'nor before an opening-balance entry that is not reversed (422 ledger.fiscal_year_before_opening_balance: reverse the opening-balance entries first, create the year, post them again dated its first day)' }) @CalendarDate('startDate') @YearEndsByYear9999('startDate') startDate: string;
  @ApiPropertyOptional({ description: 'Name of the year; default FY2027 for a calendar year, FY2027/28 otherwise', example: 'FY2027' }) @IsOptional() @IsString() @Length(1, 100) name?: string;
}

// ---------------------------------------------------------------- journal entries
@ApiSchema({ description: 'One line of a journal entry to post: a debit or a credit on an account' })
export class JournalLineInputDto {
  @ApiProperty({ description: 'The account to post to (not a group account)', format: 'uuid' }) @IsUUID() accountId: string;
  @ApiPropertyOptional({ description: 'Debit in the line\'s currency; give exactly one of debit or credit', example: '100.00' }) @IsOptional() @Amount('debit') debit?: string;
  @ApiPropertyOptional({ description: 'Credit in the line\'s currency; give exactly one of debit or credit', example: '100.00' }) @IsOptional() @Amount('credit') credit?: string;
  @ApiPropertyOptional({ example: 'USD', description: 'Transaction currency; defaults to the base currency' })
  @IsOptional() @Currency('currency') currency?: string;
  @ApiPropertyOptional({ example: '0.92', description: 'Base units per unit of currency; defaults to the rate effective on the entry date' })
  @IsOptional() @Rate('rate') rate?: string;
  @ApiPropertyOptional({ format: 'uuid', description: 'Adds the tax line on the same side: output tax for a sale, input tax for a purchase (see taxFlow); an id that names no tax code of the organization is 422 ledger.unknown_tax_code. '
    + 'The tax line is in the base currency (tax is owed in it, at the transaction\'s rate): on a line in another currency it is the tax\'s base amount at the line\'s rate '
    + '(rate 1; the tax in the line\'s currency and the rate in its description), so the tax accounts hold base amounts only, as the VAT report, and are not revalued; '
    + 'a tax whose base amount rounds to 0.00 stays in the line\'s currency (base 0.00). '
    + 'Such an entry in one currency otherwise must still balance in it (422 ledger.unbalanced)' })
  @IsOptional() @IsUUID() taxCodeId?: string;
  @ApiPropertyOptional({
    enum: ['output', 'input'],
    description: 'With taxCodeId: whether the line is a sale (output: the tax goes to the code\'s sales account and the VAT report\'s sales and output tax) or a purchase (input: the purchase account, purchases and input tax). '
      + 'Default, from the line\'s account: a revenue account is output and an expense account input, whichever the side, so a sales credit note (a debit of revenue) '
      + 'reduces sales and output tax and a purchase return (a credit of an expense) reduces purchases and input tax; on any other account (an asset, e.g. equipment sold '
      + 'or bought, a liability or equity) a credit is output, a debit input. Give it to override the default (e.g. input for goods returned to the supplier, a credit of inventory)',
    example: 'output',
  })
  @IsOptional() @IsIn(['output', 'input']) taxFlow?: 'output' | 'input';
  @ApiPropertyOptional({ description: 'Description of the line' }) @IsOptional() @IsString() @Length(0, 500) description?: string;
  @ApiPropertyOptional({ description: 'Workspace the line belongs to', format: 'uuid' }) @IsOptional() @IsUUID() workspaceId?: string;
  @ApiPropertyOptional({ description: 'Kind of counterparty of the line', enum: ['customer', 'vendor', 'employee', 'other'] }) @IsOptional() @IsIn(['customer', 'vendor', 'employee', 'other']) counterpartyType?: string;
  @ApiPropertyOptional({ description: 'Your id of the counterparty (customer, vendor, ...)' }) @IsOptional() @IsString() @Length(1, 200) counterpartyId?: string;
}

@ApiSchema({ description: 'A journal entry to post: its lines must balance in the base currency' })
export class CreateJournalEntryDto {
  @ApiProperty({ description: 'Date of the entry, YYYY-MM-DD; must fall in an open period', example: '2026-01-15' }) @CalendarDate('date') date: string;
  @ApiPropertyOptional({ description: 'Memo of the entry; empty when absent', example: 'Office rent January' }) @IsOptional() @IsString() @Length(0, 1000) memo?: string;
  @ApiPropertyOptional({
    description: 'Where the entry comes from. opening_balance: the opening balances of books moved here from elsewhere (the balance-sheet '
      + 'balances on the day the books start); allowed only dated the first day of the organization\'s first fiscal year (else 422 '
      + 'ledger.opening_balance_date), any number of such entries, with no line on a revenue or expense account (the former years\' results come '
      + 'in through retained earnings; else 422 ledger.opening_balance_result_account). A rounding difference of their base amounts (foreign-currency lines) '
      + 'goes to the retained earnings account of the settings, not the rounding account (an expense); when that is not set, or not a postable equity account '
      + 'in the base currency, the base amounts must balance (else 422 ledger.unbalanced). The cash-flow statement counts their cash in openingCash and shows '
      + 'no cash flows of them (as it leaves closing entries out); the trial balance, P&L and balance sheet count them as any entry',
    enum: ENTRY_SOURCES, default: 'manual',
  }) @IsOptional() @IsIn(ENTRY_SOURCES) source?: string;
  @ApiPropertyOptional({ description: 'Id of the source document (invoice, bill, payment)' }) @IsOptional() @IsString() @Length(1, 200) sourceRef?: string;
  @ApiPropertyOptional({ description: 'Same key and payload returns the first entry; same key, other payload is a 409. The Idempotency-Key header works too. '
    + 'Keys starting with reversal:, year-end:, invoice:, bill:, expense_claim: or revenue-recognition: are the API\'s own (400 ledger.idempotency_key_reserved).' })
  @IsOptional() @IsString() @Length(1, 200) idempotencyKey?: string;
  @ApiPropertyOptional({ description: `For the lines in a currency other than the base that give a rate: ${RATE_OVERRIDE_DOC}; for an entry the audit row is one of its own, `
    + 'ledger.entry_rate_override, naming each such line (after.lines)', example: false })
  @IsOptional() @IsBoolean() rateOverride?: boolean;
  @ApiProperty({ description: '2 to 400 lines; base debits must equal base credits. A line with a tax code posts as two (net and tax) when the tax is not zero: '
    + 'at most 499 lines once split (422 ledger.invalid_entry)', type: [JournalLineInputDto] })
  @ArrayMinSize(2, { message: 'lines must have at least 2 lines' }) @ArrayMaxSize(400) @NestedList(() => JournalLineInputDto, 'a journal line')
  lines: JournalLineInputDto[];
}

@ApiSchema({ description: 'When and why to reverse an entry' })
export class ReverseEntryDto {
  @ApiPropertyOptional({ example: '2026-02-01', description: 'Date of the reversal (default: the original date)' }) @IsOptional() @CalendarDate('date') date?: string;
  @ApiPropertyOptional({ description: 'Memo of the reversal; default: Reversal of <original memo>, the original memo cut (ending with …) to fit 1,000 characters' }) @IsOptional() @IsString() @Length(0, 1000) memo?: string;
}

@ApiSchema({ description: 'One line of a journal entry, in its transaction currency and in the base currency' })
export class JournalLineDto {
  @ApiProperty({ description: 'Number of the line within the entry' }) lineNo: number;
  @ApiProperty({ description: 'The account posted to', format: 'uuid' }) accountId: string;
  @ApiProperty({ description: 'Code of the account posted to' }) accountCode: string;
  @ApiProperty({ description: 'Transaction currency of the line' }) currency: string;
  @ApiProperty({ example: '33.33', description: AMOUNT_DOC }) debit: string;
  @ApiProperty({ example: '0.00', description: AMOUNT_DOC }) credit: string;
  @ApiProperty({ example: '1.0000000000', description: RATE_DOC }) rate: string;
  @ApiProperty({ example: '33.33', description: BASE_DOC }) baseDebit: string;
  @ApiProperty({ example: '0.00', description: BASE_DOC }) baseCredit: string;
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'Tax code of a taxed sale or purchase line' }) taxCodeId: string | null;
  @ApiProperty({ type: String, enum: ['output_base', 'output_tax', 'input_base', 'input_tax', null], nullable: true, description: 'What the line is in the VAT report: the taxable base or the tax, of a sale (output) or a purchase (input). '
    + 'A tax line (output_tax, input_tax) is in the base currency, the tax of a foreign-currency line at that line\'s rate (an entry posted before this rule, and its reversal, may have it in the line\'s currency; so has a tax whose base amount rounds to 0.00)' }) taxRole: string | null;
  @ApiProperty({ description: 'Description of the line; null when none', type: String, nullable: true }) description: string | null;
  @ApiProperty({ description: 'Workspace of the line; null when none', type: String, nullable: true }) workspaceId: string | null;
  @ApiProperty({ description: 'Kind of counterparty (customer, vendor, employee, other); null when none', type: String, nullable: true }) counterpartyType: string | null;
  @ApiProperty({ description: 'Id of the counterparty; null when none', type: String, nullable: true }) counterpartyId: string | null;
  @ApiProperty({ description: 'Added by the database for a rounding difference' }) isRounding: boolean;
}

@ApiSchema({ description: 'A posted journal entry: balanced lines, immutable once posted (corrected by a reversal)' })
export class JournalEntryDto {
  @ApiProperty({ description: 'The entry id', format: 'uuid' }) id: string;
  @ApiProperty({ description: 'Date of the entry, YYYY-MM-DD' }) date: string;
  @ApiProperty({ description: 'Memo of the entry; empty when none' }) memo: string;
  @ApiProperty({ enum: ALL_ENTRY_SOURCES, description: 'year_end: a closing entry (or its reversal when the year reopened); opening_balance: opening balances brought from former books (or their reversal), dated the first day of the first fiscal year; system: posted by the ledger (FX revaluation, revenue recognition)' }) source: string;
  @ApiProperty({ description: 'Id of the source document; null when none', type: String, nullable: true }) sourceRef: string | null;
  @ApiProperty({ description: 'The entry this one reverses; null when it is not a reversal', type: String, nullable: true, format: 'uuid' }) reversesEntryId: string | null;
  @ApiProperty({ description: 'The entry that reverses this one; null when not reversed', type: String, nullable: true, format: 'uuid' }) reversedByEntryId: string | null;
  @ApiProperty({ description: 'The idempotency key it was posted with; null when none', type: String, nullable: true }) idempotencyKey: string | null;
  @ApiProperty({ description: 'Base currency of the books when posted' }) baseCurrency: string;
  @ApiProperty({ description: `Sum of base debits (= base credits). ${BASE_DOC}` }) totalBase: string;
  @ApiProperty({ description: 'Who posted it: a user id, service:<name>, or api_key:<key id> for an API key; null when the token named none of them', type: String, nullable: true }) createdBy: string | null;
  @ApiProperty({ description: 'When the entry was posted' }) createdAt: Date;
  @ApiProperty({ description: 'The lines of the entry, by lineNo', type: [JournalLineDto] }) lines: JournalLineDto[];
}

@ApiSchema({ description: 'A page of journal entries, newest first' })
export class JournalEntryPage extends PageInfo {
  @ApiProperty({ description: 'The entries on this page, newest first', type: [JournalEntryDto] }) items: JournalEntryDto[];
}

export class JournalEntryQuery extends PageQuery {
  @ApiPropertyOptional() @IsOptional() @CalendarDate('from') from?: string;
  @ApiPropertyOptional() @IsOptional() @CalendarDate('to') to?: string;
  @ApiPropertyOptional({ format: 'uuid', description: 'Entries with a line on this account (any line: with counterpartyType or counterpartyId, each filter is matched on its own, not necessarily on the same line)' }) @IsOptional() @IsUUID() accountId?: string;
  @ApiPropertyOptional({ enum: ALL_ENTRY_SOURCES }) @IsOptional() @IsIn(ALL_ENTRY_SOURCES) source?: string;
  @ApiPropertyOptional({ enum: ['customer', 'vendor', 'employee', 'other'], description: 'Entries with a line for this kind of counterparty (with counterpartyId: one line for both)' })
  @IsOptional() @IsIn(['customer', 'vendor', 'employee', 'other']) counterpartyType?: string;
  @ApiPropertyOptional({ description: 'Entries with a line for this counterparty (with counterpartyType: one line for both; with accountId, that line need not be on the account)' }) @IsOptional() @IsString() @Length(1, 200) counterpartyId?: string;
  @ApiPropertyOptional({ example: '100.00', description: 'The entry\'s totalBase (the sum of its base debits, the whole entry: not one line\'s amount) at least this' }) @IsOptional() @Amount('minAmount') minAmount?: string;
  @ApiPropertyOptional({ example: '5000.00', description: 'The entry\'s totalBase (the sum of its base debits, the whole entry: not one line\'s amount) at most this' }) @IsOptional() @Amount('maxAmount') maxAmount?: string;
  @ApiPropertyOptional({ description: 'Memo contains this text (case-insensitive)' }) @IsOptional() @IsString() @Length(1, 200) memo?: string;
}

@ApiSchema({ description: 'Up to 1,000 journal entries to post in one request' })
export class BatchJournalEntriesDto {
  @ApiProperty({ type: [CreateJournalEntryDto], description: '1 to 1,000 entries, each with its own idempotencyKey (optional)' })
  @ArrayMinSize(1) @ArrayMaxSize(1000) @NestedList(() => CreateJournalEntryDto, 'a journal entry')
  entries: CreateJournalEntryDto[];
}

export class BatchQuery {
  @ApiPropertyOptional({ enum: ['all_or_nothing', 'independent'], default: 'all_or_nothing', description: 'independent: post the valid entries and report the rejected ones (those failing input validation too)' })
  @IsOptional() @IsIn(['all_or_nothing', 'independent']) mode?: 'all_or_nothing' | 'independent';
}

@ApiSchema({ description: 'A field of a batch entry that failed validation, and its problems' })
export class BatchFieldProblemDto {
  @ApiProperty({ description: 'The field, named from the request\'s body', example: 'entries[1].date' }) field: string;
  @ApiProperty({ description: 'What is wrong with it', type: [String] }) problems: string[];
}

@ApiSchema({ description: 'Why one entry of a batch was rejected: its error code and message' })
export class BatchItemErrorDto {
  @ApiProperty({ description: 'Stable error code, as in ErrorDetail.code; validation_failed for an entry that failed input validation', example: 'ledger.unbalanced' }) code: string;
  @ApiProperty({ description: 'Human-readable explanation' }) message: string;
  @ApiPropertyOptional({ description: 'validation_failed: one { field, problems } per invalid field of the entry', type: [BatchFieldProblemDto] }) details?: BatchFieldProblemDto[];
}

@ApiSchema({ description: 'The outcome of one entry of a batch, by its index in the request' })
export class BatchItemDto {
  @ApiProperty({ description: 'Position in entries' }) index: number;
  @ApiProperty({ enum: ['posted', 'replayed', 'rejected'], description: 'replayed: the idempotency key was seen with the same entry' }) status: string;
  @ApiPropertyOptional({ description: 'The posted (or replayed) entry; absent when rejected', format: 'uuid' }) id?: string;
  @ApiPropertyOptional({ description: 'Why the entry was rejected; absent unless rejected', type: BatchItemErrorDto }) error?: BatchItemErrorDto;
}

@ApiSchema({ description: 'What a batch posting did: the entries posted or replayed, and (mode independent) the ones rejected' })
export class BatchResultDto {
  @ApiProperty({ description: 'The mode the batch ran in', enum: ['all_or_nothing', 'independent'] }) mode: string;
  @ApiProperty({ description: 'Number of entries posted' }) posted: number;
  @ApiProperty({ description: 'Number of entries already posted with the same idempotency key' }) replayed: number;
  @ApiProperty({ description: 'Number of entries rejected (0 in all_or_nothing mode)' }) rejected: number;
  @ApiProperty({ description: 'One result per entry, in request order', type: [BatchItemDto] }) results: BatchItemDto[];
}

@ApiSchema({ description: 'The date to revalue foreign-currency balances at' })
export class RevaluationDto {
  @ApiProperty({ example: '2026-01-31', description: 'Revalue open foreign-currency balances at the rate effective on this date' })
  @CalendarDate('date') date: string;
  @ApiPropertyOptional({ default: false, description: 'Also post the reversal, dated the first day of the next period. The open receivables and payables '
    + 'are then carried at their own rates again from that day, and a later payment realizes its whole difference to the document rate: '
    + 'EUR 1,000 invoiced at 1.10, revalued at 1.15 (+50.00 unrealized, reversed the next day) and paid at 1.20 realizes 100.00; without '
    + 'autoReverse it realizes 50.00, the rest being the revaluation\'s. Either way the gain over the invoice\'s life is 100.00' })
  @IsOptional() @IsBoolean() autoReverse?: boolean;
}

@ApiSchema({ description: "The revaluation of one account's balance in one currency" })
export class RevaluationLineDto {
  @ApiProperty({ description: 'The account revalued. The AR and AP control accounts are revalued per open invoice, bill or payment credit '
    + '(each valued at the rate and rounded on its own, as its aging row shows it): their balance and base amounts here are the sums over those '
    + 'items, and each item carries its new base value from the date on, so the aging equals the account', format: 'uuid' }) accountId: string;
  @ApiProperty({ description: 'The foreign currency of the balance' }) currency: string;
  @ApiProperty({ example: '1000.00', description: AMOUNT_DOC }) balance: string;
  @ApiProperty({ example: '0.9500000000', description: RATE_DOC }) rate: string;
  @ApiProperty({ description: BASE_DOC }) baseBefore: string;
  @ApiProperty({ description: BASE_DOC }) baseAfter: string;
  @ApiProperty({ description: BASE_DOC }) difference: string;
}

@ApiSchema({ description: 'The adjustments of a revaluation, and the entry that posted them (none when nothing changed)' })
export class RevaluationResultDto {
  @ApiProperty({ description: 'One adjustment per account and currency whose base value changed; for the AR and AP control accounts, per account and currency whose open items\' base values changed, '
    + 'also when their changes cancel (difference 0: each item carries its new value all the same, on a pair of control account lines that cancel)', type: [RevaluationLineDto] }) adjustments: RevaluationLineDto[];
  @ApiProperty({ description: 'The revaluation entry (the first of entries); null when nothing changed', type: JournalEntryDto, nullable: true }) entry: JournalEntryDto | null;
  @ApiProperty({ type: JournalEntryDto, nullable: true, description: 'With autoReverse: the reversal of entry, dated the first day of the next period' }) reversal: JournalEntryDto | null;
  @ApiProperty({ type: [JournalEntryDto], description: 'Every revaluation entry, in order: one, or several when there are more than 249 adjustments (an entry has at most 499 lines), each balanced by its own adjustments; empty when nothing changed' }) entries: JournalEntryDto[];
  @ApiProperty({ type: [JournalEntryDto], description: 'With autoReverse: the reversal of each of entries, in the same order; empty otherwise' }) reversals: JournalEntryDto[];
}

@ApiSchema({ description: 'The closed fiscal year and the entry that moved its result to retained earnings' })
export class YearEndResultDto {
  @ApiProperty({ description: 'The fiscal year, now closed', type: FiscalYearDto }) fiscalYear: FiscalYearDto;
  @ApiProperty({ type: JournalEntryDto, nullable: true, description: 'Moves the year\'s result to retained earnings (the first of closingEntries)' }) closingEntry: JournalEntryDto | null;
  @ApiProperty({ type: [JournalEntryDto], description: 'Every closing entry, in order: one, or several when the year has more than 498 closing lines (an entry has at most 499), each moving its part of the result to retained earnings; empty when the year had no revenue or expenses' }) closingEntries: JournalEntryDto[];
}

@ApiSchema({ description: 'The reopened fiscal year and the entry that reversed its closing entry' })
export class YearReopenResultDto {
  @ApiProperty({ description: 'The fiscal year, now open again', type: FiscalYearDto }) fiscalYear: FiscalYearDto;
  @ApiProperty({ type: JournalEntryDto, nullable: true, description: 'Reverses the closing entry: the year\'s result is back on its revenue and expense accounts (the first of reversalEntries)' }) reversalEntry: JournalEntryDto | null;
  @ApiProperty({ type: [JournalEntryDto], description: 'The reversal of each closing entry, in order (several when the close posted several)' }) reversalEntries: JournalEntryDto[];
}

// ---------------------------------------------------------------- statements
@ApiSchema({ description: "One account's debit or credit balance in the trial balance" })
export class TrialBalanceRowDto {
  @ApiProperty({ description: 'The account', format: 'uuid' }) accountId: string;
  @ApiProperty({ description: 'Account code' }) code: string;
  @ApiProperty({ description: 'Account name' }) name: string;
  @ApiProperty({ description: 'Account type', enum: ACCOUNT_TYPES }) type: string;
  @ApiProperty({ description: 'Debit balance in the base currency; 0 when the balance is a credit' }) debit: string;
  @ApiProperty({ description: 'Credit balance in the base currency; 0 when the balance is a debit' }) credit: string;
}

@ApiSchema({ description: "Every account's balance at a date; total debits equal total credits" })
export class TrialBalanceDto {
  @ApiProperty({ description: 'The day the balances are at the end of, YYYY-MM-DD; null: everything posted', type: String, nullable: true }) asOf: string | null;
  @ApiProperty({ description: 'Base currency of the books' }) baseCurrency: string;
  @ApiProperty({ description: 'One row per account with a non-zero balance, by code', type: [TrialBalanceRowDto] }) rows: TrialBalanceRowDto[];
  @ApiProperty({ description: 'Sum of the debit column' }) totalDebit: string;
  @ApiProperty({ description: 'Sum of the credit column' }) totalCredit: string;
  @ApiProperty({ description: 'Whether totalDebit equals totalCredit' }) balanced: boolean;
}

@ApiSchema({ description: 'One line of a financial statement: an account or a group and its amount' })
export class StatementRowDto {
  @ApiProperty({ description: 'The account or group account', format: 'uuid' }) accountId: string;
  @ApiProperty({ description: 'Account code' }) code: string;
  @ApiProperty({ description: 'Account name' }) name: string;
  @ApiProperty({ description: 'Account type', enum: ACCOUNT_TYPES }) type: string;
  @ApiProperty({ description: '0 for a top-level account' }) depth: number;
  @ApiProperty({ description: 'Whether the row is a group account (its amount includes its children)' }) isGroup: boolean;
  @ApiProperty({ description: 'Own amount plus all descendants, in the natural sign of the type' }) amount: string;
  @ApiPropertyOptional({ description: 'The same in the comparative column (with ?compare=)' }) comparativeAmount?: string;
}

@ApiSchema({ description: 'Revenue, expenses and net income of the comparative period' })
export class PeriodTotalsDto {
  @ApiProperty({ description: 'First day of the comparative range, YYYY-MM-DD' }) from: string;
  @ApiProperty({ description: 'Last day of the comparative range, YYYY-MM-DD' }) to: string;
  @ApiProperty({ description: 'Total revenue of the range' }) totalRevenue: string;
  @ApiProperty({ description: 'Total expenses of the range' }) totalExpenses: string;
  @ApiProperty({ description: 'totalRevenue minus totalExpenses' }) netIncome: string;
}

@ApiSchema({ description: 'Assets, liabilities and equity totals of the comparative date' })
export class BalanceTotalsDto {
  @ApiProperty({ description: 'The comparative date, YYYY-MM-DD' }) asOf: string;
  @ApiProperty({ description: 'Total assets at that date' }) totalAssets: string;
  @ApiProperty({ description: 'Total liabilities at that date' }) totalLiabilities: string;
  @ApiProperty({ description: 'Total equity at that date' }) totalEquity: string;
  @ApiProperty({ description: 'Revenue minus expenses posted up to that date and not yet closed to retained earnings (of every fiscal year not closed yet)' }) currentEarnings: string;
}

@ApiSchema({ description: 'Revenue, expenses and the net result over a date range' })
export class ProfitAndLossDto {
  @ApiProperty({ description: 'First day of the range, YYYY-MM-DD' }) from: string;
  @ApiProperty({ description: 'Last day of the range, YYYY-MM-DD' }) to: string;
  @ApiProperty({ description: 'Base currency of the amounts' }) baseCurrency: string;
  @ApiProperty({ description: 'Revenue accounts and groups: active ones always, archived ones only with an amount', type: [StatementRowDto] }) revenue: StatementRowDto[];
  @ApiProperty({ description: 'Expense accounts and groups: active ones always, archived ones only with an amount', type: [StatementRowDto] }) expenses: StatementRowDto[];
  @ApiProperty({ description: 'Total revenue (base currency)' }) totalRevenue: string;
  @ApiProperty({ description: 'Total expenses (base currency)' }) totalExpenses: string;
  @ApiProperty({ description: 'totalRevenue minus totalExpenses; negative is a loss' }) netIncome: string;
  @ApiProperty({ description: 'Whether closing entries (source year_end) are counted' }) includeClosing: boolean;
  @ApiPropertyOptional({ type: PeriodTotalsDto, description: 'The comparative column\'s range and totals (with ?compare=)' }) comparative?: PeriodTotalsDto;
}

@ApiSchema({ description: 'Assets, liabilities and equity at a date' })
export class BalanceSheetDto {
  @ApiProperty({ description: 'The day the balance sheet is at the end of, YYYY-MM-DD (today, UTC, when the request named none)' }) asOf: string;
  @ApiProperty({ description: 'Base currency of the amounts' }) baseCurrency: string;
  @ApiProperty({ description: 'Asset accounts and groups: active ones always, archived ones only with an amount', type: [StatementRowDto] }) assets: StatementRowDto[];
  @ApiProperty({ description: 'Liability accounts and groups: active ones always, archived ones only with an amount', type: [StatementRowDto] }) liabilities: StatementRowDto[];
  @ApiProperty({ description: 'Equity accounts and groups: active ones always, archived ones only with an amount', type: [StatementRowDto] }) equity: StatementRowDto[];
  @ApiProperty({ description: 'Total assets (base currency)' }) totalAssets: string;
  @ApiProperty({ description: 'Total liabilities (base currency)' }) totalLiabilities: string;
  @ApiProperty({ description: 'Total equity, without current earnings (base currency)' }) totalEquity: string;
  @ApiProperty({
    description: 'Revenue minus expenses posted up to asOf and not yet closed to retained earnings: of every fiscal year not closed yet (an '
      + 'earlier year before its close included), not only of the year of asOf',
  }) currentEarnings: string;
  @ApiProperty({ description: 'assets = liabilities + equity + current earnings' }) balanced: boolean;
  @ApiPropertyOptional({ type: BalanceTotalsDto, description: 'The comparative column\'s date and totals (with ?compare=)' }) comparative?: BalanceTotalsDto;
}

// ---------------------------------------------------------------- VAT report
@ApiSchema({ description: 'One tax code in the VAT report: taxable sales and output tax, taxable purchases and input tax, net payable' })
export class VatRowDto {
  @ApiProperty({ description: 'The tax code', format: 'uuid' }) taxCodeId: string;
  @ApiProperty({ description: 'Code of the tax code' }) code: string;
  @ApiProperty({ description: 'Name of the tax code' }) name: string;
  @ApiProperty({ example: '20.0000', description: 'Percent' }) rate: string;
  @ApiProperty({ description: 'Net sales taxed with this code (base currency)' }) taxableSales: string;
  @ApiProperty({ description: 'Tax on those sales, owed' }) outputTax: string;
  @ApiProperty({ description: 'Net purchases taxed with this code' }) taxablePurchases: string;
  @ApiProperty({ description: 'Tax on those purchases, deductible' }) inputTax: string;
  @ApiProperty({ description: 'outputTax - inputTax: payable when positive, refundable when negative' }) net: string;
}

@ApiSchema({ description: 'The VAT report over a date range, per tax code, with totals' })
export class VatReportDto {
  @ApiProperty({ description: 'First day of the range, YYYY-MM-DD' }) from: string;
  @ApiProperty({ description: 'Last day of the range, YYYY-MM-DD' }) to: string;
  @ApiProperty({ description: 'Base currency of the amounts' }) baseCurrency: string;
  @ApiProperty({ description: 'One row per active tax code, and per archived one used in the range', type: [VatRowDto] }) rows: VatRowDto[];
  @ApiProperty({ description: 'Sum of taxableSales' }) totalTaxableSales: string;
  @ApiProperty({ description: 'Sum of outputTax' }) totalOutputTax: string;
  @ApiProperty({ description: 'Sum of taxablePurchases' }) totalTaxablePurchases: string;
  @ApiProperty({ description: 'Sum of inputTax' }) totalInputTax: string;
  @ApiProperty({ description: 'Net payable (negative: refundable)' }) netPayable: string;
}

// ---------------------------------------------------------------- cash-flow statement
@ApiSchema({ description: 'The contribution of one account to a section of the cash-flow statement' })
export class CashFlowRowDto {
  @ApiProperty({ description: 'The account', format: 'uuid' }) accountId: string;
  @ApiProperty({ description: 'Account code' }) code: string;
  @ApiProperty({ description: 'Account name' }) name: string;
  @ApiProperty({
    description: 'Effect on cash: a decrease of an asset or an increase of a liability or equity is positive. No cash account has a row (the '
      + 'unrealized exchange differences of foreign-currency cash are in unrealizedExchangeDifferences and effectOfExchangeRatesOnCash). In '
      + 'operating, a row on an investing or financing account is a non-cash expense or income booked against it (depreciation credited to '
      + 'accumulated depreciation classed investing: positive, the expense added back); a row on a revenue or expense account is the part of '
      + 'its gain or loss realized in cash, taken out',
  }) amount: string;
}

@ApiSchema({ description: 'A section of the cash-flow statement (operating, investing, financing) with its total' })
export class CashFlowSectionDto {
  @ApiProperty({ description: 'The accounts that contributed to the section', type: [CashFlowRowDto] }) rows: CashFlowRowDto[];
  @ApiProperty({ description: 'Sum of the section (base currency)' }) total: string;
}

@ApiSchema({ description: 'The part of one investing or financing account\'s lines in the range that moved no cash (IAS 7.43)' })
export class CashFlowNonCashRowDto {
  @ApiProperty({ description: 'The account', format: 'uuid' }) accountId: string;
  @ApiProperty({ description: 'Account code', example: '1500' }) code: string;
  @ApiProperty({ description: 'Account name', example: 'Equipment' }) name: string;
  @ApiProperty({ enum: ['investing', 'financing'], description: 'The section the account is classed in (its own class, else its nearest classified ancestor\'s; equity by default financing)' })
  section: 'investing' | 'financing';
  @ApiProperty({
    example: '-5000.00',
    description: 'What these lines would have shown in the section, with its sign (an asset acquired negative, a loan taken on positive); '
      + 'left out of the section because no cash moved',
  }) amount: string;
}

@ApiSchema({ description: 'Investing and financing transactions that moved no cash (IAS 7.43), disclosed outside the sections' })
export class CashFlowNonCashDto {
  @ApiProperty({
    type: [CashFlowNonCashRowDto],
    example: [
      { accountId: '9b0c8a4e-1f1e-4c36-9a55-2b6f4f2f7a10', code: '1500', name: 'Equipment', section: 'investing', amount: '-5000.00' },
      { accountId: '3d4b2c1a-7e8f-4a9b-8c0d-1e2f3a4b5c6d', code: '2300', name: 'Loans', section: 'financing', amount: '4000.00' },
    ],
    description: 'Per investing or financing account, the part of its lines in the range that moved no cash: all of them in an entry '
      + 'without cash (no amount on a cash account, or only amounts moved between cash accounts), and in an entry with cash what its cash did not pay (the '
      + 'operation\'s description has the rule): equipment bought on credit or with a loan (also when part is paid in cash), a share issue for '
      + 'a contribution in kind. Closing entries and revaluations are not included (they have their own handling), nor entries whose other '
      + 'side is only revenue and expense accounts (depreciation, amortisation, an impairment booked against an account classed investing '
      + 'or financing: a non-cash expense or income, an operating row on that account), nor the part of a disposal\'s gain or loss realized in cash (taken out of operating on its '
      + 'own row; a disposal sold partly on credit shows its proceeds not received in cash, less the part of its gain not realized). The example: '
      + 'equipment of 5,000.00 bought with a loan of 4,000.00 and 1,000.00 on credit from the supplier (accounts payable, operating)',
  }) rows: CashFlowNonCashRowDto[];
  @ApiProperty({
    example: '-1000.00',
    description: 'Sum of the rows. Counted in operating.total as a non-cash adjustment: it offsets the rest of those entries, on operating '
      + 'accounts (in the example the payable\'s increase, +1,000.00 in operating), so the entries move no cash in any section',
  }) total: string;
}

@ApiSchema({ description: 'The cash-flow statement over a date range (indirect method): opening cash plus the change is closing cash' })
export class CashFlowDto {
  @ApiProperty({ description: 'First day of the range, YYYY-MM-DD' }) from: string;
  @ApiProperty({ description: 'Last day of the range, YYYY-MM-DD' }) to: string;
  @ApiProperty({ description: 'Base currency of the amounts' }) baseCurrency: string;
  @ApiProperty({ description: 'Net income of the range (closing entries excluded)' }) netIncome: string;
  @ApiProperty({
    example: '400.00',
    description: 'Non-cash adjustment in operating: the unrealized exchange gains and losses that FX revaluations (and their reversals) in the range '
      + 'booked on foreign-currency accounts, cash included, added back (a loss positive, a gain negative). '
      + 'Those accounts\' rows leave their revaluations out (a loan\'s row in financing is its cash movements only): a USD 10,000 loan drawn at 1.10 and '
      + 'revalued at 1.15 is +11,000.00 in financing, and the unrealized loss of 500.00 in net income is +500.00 here. On cash accounts '
      + '(which have no row) the change of base value is reported as effectOfExchangeRatesOnCash: USD 1,000 of cash carried at 0.90 and '
      + 'revalued at 0.80 is +100.00 here (the loss added back) and -100.00 there. Included in operating.total',
  }) unrealizedExchangeDifferences: string;
  @ApiProperty({
    type: CashFlowSectionDto,
    description: 'Working-capital changes (without their revaluations), non-cash expenses and income booked against investing and financing '
      + 'accounts (depreciation: a row on the accumulated depreciation account, the expense added back), and the part of the gains and '
      + 'losses booked with a disposal, or the realized exchange gain or loss booked with an investing or financing line\'s settlement '
      + '(a foreign-currency loan repaid), realized in cash, taken out (a row on their revenue or expense account: a gain negative); '
      + 'total = netIncome + unrealizedExchangeDifferences + nonCashInvestingAndFinancing.total + the rows',
  }) operating: CashFlowSectionDto;
  @ApiProperty({
    description: 'Changes of accounts classed investing, without their revaluations: only the cash their entries paid or received for them '
      + '(a disposal\'s proceeds including its gain; the rest is in nonCashInvestingAndFinancing)',
    type: CashFlowSectionDto,
  }) investing: CashFlowSectionDto;
  @ApiProperty({
    description: 'Changes of accounts classed financing (equity by default), without their revaluations: only the cash their entries paid or '
      + 'received for them (a loan repaid with an exchange gain or loss: the cash paid; the rest is in nonCashInvestingAndFinancing)',
    type: CashFlowSectionDto,
  }) financing: CashFlowSectionDto;
  @ApiProperty({
    type: CashFlowNonCashDto,
    description: 'Non-cash investing and financing transactions (IAS 7.43): left out of the investing and financing sections and disclosed '
      + 'here; their total is a non-cash adjustment in operating. Equipment bought on credit shows neither an investing outflow nor an '
      + 'operating inflow; equipment bought with a loan neither an investing outflow nor a financing inflow. In an entry with cash only what '
      + 'the cash paid counts in the sections (equipment of 5,000.00 paid 1,000.00 in cash and 4,000.00 by a loan in one entry is -1,000.00 '
      + 'investing, and -4,000.00 on the equipment and +4,000.00 on the loan here)',
  }) nonCashInvestingAndFinancing: CashFlowNonCashDto;
  @ApiProperty({
    example: '50.00',
    description: 'Effect of exchange-rate changes on cash held in foreign currencies (IAS 7): the change of the cash accounts\' base value '
      + 'that moved no currency (FX revaluations and their reversals in the range: +50.00 when USD 1,000 carried at 1.10 is revalued at 1.15). '
      + 'Not a cash flow: net income holds it as an unrealized exchange gain or loss, added back in unrealizedExchangeDifferences',
  }) effectOfExchangeRatesOnCash: string;
  @ApiProperty({ description: 'operating + investing + financing + effectOfExchangeRatesOnCash' }) netChange: string;
  @ApiProperty({ description: 'Cash accounts (cashFlowClass cash, own or inherited from a group) the day before from' }) openingCash: string;
  @ApiProperty({ description: 'Cash accounts at the end of to (their balances as of that day)' }) closingCash: string;
  @ApiProperty({ description: 'openingCash + netChange = closingCash: the sections and the exchange-rate effect account for the whole change of the cash accounts' }) balanced: boolean;
}
