import { ApiKeyScopes } from '../../platform/auth/api-key-scopes.js';
import { Clock, today } from '../../platform/clock/clock.js';
import { BadRequestException, Body, Controller, createParamDecorator, type ExecutionContext, Get, HttpCode, Patch, Post, Query, Req, Res } from '@nestjs/common';
import { ApiBody, ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { JOURNAL_ENTRY_EXAMPLE, POST_JOURNAL_ENTRY_EXAMPLE, TRIAL_BALANCE_EXAMPLE } from './ledger.examples.js';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ADMIN_ROLES, BOOKKEEPER_ROLES } from '../../platform/auth/principal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { IdParam } from '../../platform/http/id-param.js';
import { IdempotencyKey } from '../../platform/http/idempotency-key.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import { ApiErrors, ApiOkJsonOrCsv } from '../../platform/http/openapi.js';
import { validationPipe } from '../../platform/http/validation.js';
import { DoesNotWrite, OrgRoute, RequireRole, RequiresFeature, Tx, WritesRequireSubscription } from '../../platform/http/tenant.js';
import { POSTING_ERRORS, REVERSAL_POSTING_ERRORS } from './ledger.errors.js';
import { sendCsv, toCsv, wantsCsv } from './csv.js';
import { JournalService } from './journal.service.js';
import { LedgerService } from './ledger.service.js';
import { ReportsService } from './reports.service.js';
import {
  AccountBalanceDto, AccountDto, AccountQuery, AsOfQuery, BalanceSheetDto, BalanceSheetQuery, type BatchItemDto, BatchJournalEntriesDto, BatchQuery, BatchResultDto,
  CalculateTaxDto, CashFlowDto, CreateAccountDto, CreateFiscalYearDto, DateRangeQuery, ProfitAndLossQuery, VatReportDto,
  CreateJournalEntryDto, CreateTaxCodeDto, CurrencyDto, FiscalPeriodDto, FiscalYearDto, FxRatePage, FxRateQuery, GeneralLedgerDto,
  GeneralLedgerQuery, ImportFxRatesDto, ImportResultDto, JournalEntryDto, JournalEntryPage, JournalEntryQuery, LedgerSettingsDto,
  ProfitAndLossDto, RangeQuery, RevaluationDto, RevaluationResultDto, ReverseEntryDto, SetFxRateDto, StartBooksDto, TaxCalculationDto,
  TaxCodeDto, TrialBalanceDto, UpdateAccountDto, UpdateLedgerSettingsDto, UpdateTaxCodeDto, YearEndResultDto, YearReopenResultDto,
} from './ledger.dto.js';

/** A statement's CSV row: section, code, name, depth, amount, and the comparative column's amount when there is one. */
const statementRow = (comparative: boolean) => (section: string, code: string, name: string, depth: number | string, amount: string, compared?: string) =>
  [section, code, name, depth, amount, ...(comparative ? [compared] : [])];

/** The request body as parsed, without the global validation pipe (which does not run for a custom parameter decorator). */
const RawBody = createParamDecorator((_: unknown, ctx: ExecutionContext): unknown => ctx.switchToHttp().getRequest<FastifyRequest>().body);

const batchValidation = validationPipe();

/** The { field, problems } list of the validation pipe's 400, or undefined for any other error. */
function validationProblems(err: unknown): { field: string; problems: string[] }[] | undefined {
  if (!(err instanceof BadRequestException)) return undefined;
  const body = err.getResponse() as { code?: string; details?: { field: string; problems: string[] }[] };
  return body.code === 'validation_failed' && Array.isArray(body.details) ? body.details : undefined;
}

/** A problem of one entry of the batch (entries.3.date, entries[3].memo), not of the request's own shape. */
const ENTRY_FIELD = /^entries(\.\d+|\[\d+\])([.[]|$)/;

/**
 * A batch's entries, validated as the global pipe validates a body, in one pass over the whole request. When that fails
 * in an independent batch only because of some entries (not the request's shape: entries missing, not an array, more than
 * 1,000, another field), each entry is validated on its own: an invalid one is rejected at its index with validation_failed
 * and its fields named entries[index]..., and its place in `entries` is left empty. All or nothing: the 400 stands.
 */
async function batchEntries(body: unknown, independent: boolean): Promise<{ entries: (CreateJournalEntryDto | undefined)[]; rejected: BatchItemDto[] }> {
  // the pipe deletes `constructor`/`prototype` keys of what it validates in place: the entries are validated one by one
  // from the body as it came, so an entry refused for such a key stays refused
  const sent = independent ? structuredClone(body) : undefined;
  try {
    const dto = (await batchValidation.transform(body, { type: 'body', metatype: BatchJournalEntriesDto })) as BatchJournalEntriesDto;
    return { entries: dto.entries, rejected: [] };
  } catch (err) {
    const problems = validationProblems(err);
    if (!independent || !problems?.length || !problems.every((p) => ENTRY_FIELD.test(p.field))) throw err;
  }
  const entries: (CreateJournalEntryDto | undefined)[] = [];
  const rejected: BatchItemDto[] = [];
  for (const [index, value] of (sent as { entries: unknown[] }).entries.entries()) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      // as the batch's validation said it (validated alone, an array was taken for an entry lacking every field)
      const problem = 'each element of entries must be a journal entry (an object)';
      entries.push(undefined);
      rejected.push({ index, status: 'rejected', error: { code: 'validation_failed', message: problem, details: [{ field: `entries[${index}]`, problems: [problem] }] } });
      continue;
    }
    try {
      entries.push((await batchValidation.transform(value, { type: 'body', metatype: CreateJournalEntryDto })) as CreateJournalEntryDto);
    } catch (err) {
      const problems = validationProblems(err);
      if (!problems) throw err;
      entries.push(undefined);
      const details = problems.map((p) => ({ field: `entries[${index}].${p.field.replace(/\.(\d+)(?=\.|$)/g, '[$1]')}`, problems: p.problems }));
      rejected.push({ index, status: 'rejected', error: { code: 'validation_failed', message: problems.map((p) => p.problems.join(', ')).join('; '), details } });
    }
  }
  return { entries, rejected };
}

/** Lines of a general ledger CSV without ?limit= (the file is built in memory: ~30 MB at this bound). */
const GL_CSV_MAX_LINES = 100_000;

@ApiTags('ledger')
@OrgRoute()
@WritesRequireSubscription('omnizen')
@ApiKeyScopes({ read: 'ledger:read', write: 'ledger:write' })
@Controller('v1/orgs/:orgId/ledger')
export class LedgerBooksController {
  constructor(private readonly ledger: LedgerService) {}

  @Post('books')
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'startBooks', summary: 'Start the books: base currency, standard chart of accounts, first fiscal year (owner, admin)' })
  @ApiCreatedResponse({ type: LedgerSettingsDto })
  @ApiErrors(400)
  @ApiErrorCodes('ledger.books_started', 'ledger.unknown_currency')
  startBooks(@Tx() tx: TenantTx, @Body() dto: StartBooksDto): Promise<LedgerSettingsDto> {
    return this.ledger.startBooks(tx, dto);
  }

  @Get('settings')
  @ApiOperation({ operationId: 'getLedgerSettings', summary: 'Ledger settings: base currency and the rounding, retained earnings and FX accounts' })
  @ApiOkResponse({ type: LedgerSettingsDto })
  @ApiErrorCodes('ledger.books_not_started')
  settings(@Tx() tx: TenantTx): Promise<LedgerSettingsDto> {
    return this.ledger.settings(tx);
  }

  @Patch('settings')
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'updateLedgerSettings', summary: 'Change the rounding, retained earnings and FX gain/loss accounts (owner, admin)' })
  @ApiOkResponse({ type: LedgerSettingsDto })
  @ApiErrors(400)
  @ApiErrorCodes('ledger.books_not_started', 'ledger.account_not_postable', 'ledger.fx_account_type', 'account.not_found')
  updateSettings(@Tx() tx: TenantTx, @Body() dto: UpdateLedgerSettingsDto): Promise<LedgerSettingsDto> {
    return this.ledger.updateSettings(tx, dto);
  }

  @Get('currencies')
  @ApiOperation({ operationId: 'listCurrencies', summary: 'Currencies and their minor units' })
  @ApiOkResponse({ type: [CurrencyDto] })
  currencies(@Tx() tx: TenantTx): Promise<CurrencyDto[]> {
    return this.ledger.currencies(tx);
  }
}

@ApiTags('ledger')
@OrgRoute()
@WritesRequireSubscription('omnizen')
@ApiKeyScopes({ read: 'ledger:read', write: 'ledger:write' })
@Controller('v1/orgs/:orgId/ledger/accounts')
export class AccountsController {
  constructor(
    private readonly ledger: LedgerService,
    private readonly reports: ReportsService,
  ) {}

  @Get()
  @ApiOperation({ operationId: 'listAccounts', summary: 'Chart of accounts' })
  @ApiOkResponse({ type: [AccountDto] })
  list(@Tx() tx: TenantTx, @Query() q: AccountQuery): Promise<AccountDto[]> {
    return this.ledger.listAccounts(tx, q.includeArchived === 'true');
  }

  @Post()
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'createAccount', summary: 'Create an account (owner, admin, accountant)' })
  @ApiCreatedResponse({ type: AccountDto })
  @ApiErrors(400, 409, 422)
  @ApiErrorCodes('ledger.books_not_started', 'ledger.unknown_currency', 'account.not_found', 'ledger.parent_not_group', 'ledger.parent_type_mismatch',
    'ledger.hierarchy_too_deep', 'ledger.account_code_taken')
  create(@Tx() tx: TenantTx, @Body() dto: CreateAccountDto): Promise<AccountDto> {
    return this.ledger.createAccount(tx, dto);
  }

  @Get(':accountId')
  @ApiOperation({ operationId: 'getAccount', summary: 'One account' })
  @ApiOkResponse({ type: AccountDto })
  get(@Tx() tx: TenantTx, @IdParam('accountId', 'account') id: string): Promise<AccountDto> {
    return this.ledger.getAccount(tx, id);
  }

  @Patch(':accountId')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'updateAccount', summary: 'Rename an account, move it in the hierarchy, or make it a group (owner, admin, accountant)' })
  @ApiOkResponse({ type: AccountDto })
  @ApiErrors(400, 422)
  @ApiErrorCodes('ledger.parent_not_group', 'ledger.parent_type_mismatch', 'ledger.parent_cycle', 'ledger.hierarchy_too_deep', 'ledger.account_has_postings',
    'ledger.account_has_children')
  update(@Tx() tx: TenantTx, @IdParam('accountId', 'account') id: string, @Body() dto: UpdateAccountDto): Promise<AccountDto> {
    return this.ledger.updateAccount(tx, id, dto);
  }

  @Post(':accountId/archive')
  @HttpCode(200)
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'archiveAccount', summary: 'Archive an account with a zero balance (accounts are never deleted)' })
  @ApiOkResponse({ type: AccountDto })
  @ApiErrorCodes('ledger.account_has_balance', 'ledger.account_has_children')
  archive(@Tx() tx: TenantTx, @IdParam('accountId', 'account') id: string): Promise<AccountDto> {
    return this.ledger.archiveAccount(tx, id);
  }

  @Get(':accountId/balance')
  @ApiOperation({ operationId: 'getAccountBalance', summary: 'Balance of an account as of a date, per currency and in the base currency' })
  @ApiOkResponse({ type: AccountBalanceDto })
  @ApiErrors(400)
  balance(@Tx() tx: TenantTx, @IdParam('accountId', 'account') id: string, @Query() q: AsOfQuery): Promise<AccountBalanceDto> {
    return this.reports.accountBalance(tx, id, q.asOf);
  }

  @Get(':accountId/ledger')
  @ApiOperation({ operationId: 'getGeneralLedger',
    summary: 'General ledger of an account: lines with the running balance (cursor pagination; CSV with ?format=csv)',
    description: 'Lines in date order; within a date, entries in posting order, each entry\'s lines together in their line order. '
      + `As CSV the whole range comes in one file (up to ${GL_CSV_MAX_LINES.toLocaleString('en')} lines unless ?limit= is given; beyond that the X-Next-Cursor header continues it).`,
  })
  @ApiOkJsonOrCsv(GeneralLedgerDto, { headers: { 'X-Next-Cursor': { description: 'With the CSV only, when the range holds more lines than it: pass it as ?cursor= for the rest', schema: { type: 'string' } } } })
  @ApiErrors(400)
  // the account is read first (404): accounts exist only once the books are started, so never books_not_started
  @ApiErrorCodes('ledger.range')
  async generalLedger(@Tx() tx: TenantTx, @IdParam('accountId', 'account') id: string, @Query() q: GeneralLedgerQuery, @Req() req: FastifyRequest, @Res({ passthrough: true }) res: FastifyReply): Promise<GeneralLedgerDto | string> {
    const csv = wantsCsv(req, q.format);
    // a spreadsheet cannot follow cursors: as CSV the range comes whole, up to a bound
    const gl = await this.reports.generalLedger(tx, id, csv ? { ...q, limit: q.limit ?? GL_CSV_MAX_LINES } : q);
    if (!csv) return gl;
    if (gl.nextCursor) res.header('X-Next-Cursor', gl.nextCursor);
    return sendCsv(res, `general-ledger-${id}.csv`, toCsv(
      ['date', 'entry_id', 'line_no', 'memo', 'description', 'currency', 'debit', 'credit', 'base_debit', 'base_credit', 'running_balance'],
      [['', '', '', 'opening balance', '', gl.baseCurrency, '', '', '', '', gl.openingBalance],
        ...gl.items.map((i) => [i.date, i.entryId, i.lineNo, i.memo, i.description, i.currency, i.debit, i.credit, i.baseDebit, i.baseCredit, i.runningBalance])],
    ));
  }
}

@ApiTags('ledger')
@OrgRoute()
@WritesRequireSubscription('omnizen')
@ApiKeyScopes({ read: 'ledger:read', write: 'ledger:write' })
@Controller('v1/orgs/:orgId/ledger')
export class RatesAndTaxController {
  constructor(private readonly ledger: LedgerService) {}

  @Get('fx-rates')
  @ApiOperation({ operationId: 'listFxRates', summary: 'FX rates by currency, newest first; filter by currency and date range; cursor pagination' })
  @ApiOkResponse({ type: FxRatePage })
  @ApiErrors(400)
  rates(@Tx() tx: TenantTx, @Query() q: FxRateQuery): Promise<FxRatePage> {
    return this.ledger.listRates(tx, q);
  }

  @Post('fx-rates')
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'setFxRate', summary: 'Set the rate of a currency on a date (replaces that day\'s rate)' })
  @ApiCreatedResponse({ type: ImportResultDto })
  @ApiErrors(400)
  @ApiErrorCodes('ledger.books_not_started', 'ledger.unknown_currency', 'ledger.rate_base_currency', 'ledger.rate_not_positive')
  async setRate(@Tx() tx: TenantTx, @Body() dto: SetFxRateDto): Promise<ImportResultDto> {
    return { imported: await this.ledger.setRates(tx, [dto], 'manual') };
  }

  @Post('fx-rates/import')
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'importFxRates', summary: 'Bulk import of FX rates (up to 5,000; all or nothing)' })
  @ApiCreatedResponse({ type: ImportResultDto })
  @ApiErrors(400)
  @ApiErrorCodes('ledger.books_not_started', 'ledger.unknown_currency', 'ledger.rate_base_currency', 'ledger.rate_not_positive', 'ledger.rate_duplicate')
  async importRates(@Tx() tx: TenantTx, @Body() dto: ImportFxRatesDto): Promise<ImportResultDto> {
    return { imported: await this.ledger.setRates(tx, dto.rates, 'import') };
  }

  @Get('tax-codes')
  @ApiOperation({ operationId: 'listTaxCodes', summary: 'Tax codes' })
  @ApiOkResponse({ type: [TaxCodeDto] })
  taxCodes(@Tx() tx: TenantTx): Promise<TaxCodeDto[]> {
    return this.ledger.listTaxCodes(tx);
  }

  @Post('tax-codes')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'createTaxCode', summary: 'Create a tax code (rate in percent, inclusive or exclusive, sales and purchase accounts)' })
  @ApiCreatedResponse({ type: TaxCodeDto })
  @ApiErrors(400, 409)
  @ApiErrorCodes('ledger.tax_rate', 'ledger.account_not_postable', 'ledger.control_account', 'account.not_found', 'ledger.tax_code_taken')
  createTaxCode(@Tx() tx: TenantTx, @Body() dto: CreateTaxCodeDto): Promise<TaxCodeDto> {
    return this.ledger.createTaxCode(tx, dto);
  }

  @Patch('tax-codes/:taxCodeId')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({
    operationId: 'updateTaxCode', summary: 'Rename a tax code, or change the accounts its tax posts to from now on (owner, admin, accountant)',
    description: 'The rate and whether amounts include the tax cannot change: create a new tax code for a new rate and archive this one.',
  })
  @ApiOkResponse({ type: TaxCodeDto })
  @ApiErrors(400)
  @ApiErrorCodes('ledger.account_not_postable', 'ledger.control_account', 'account.not_found')
  updateTaxCode(@Tx() tx: TenantTx, @IdParam('taxCodeId', 'tax_code') id: string, @Body() dto: UpdateTaxCodeDto): Promise<TaxCodeDto> {
    return this.ledger.updateTaxCode(tx, id, dto);
  }

  @Post('tax-codes/:taxCodeId/archive')
  @HttpCode(200)
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({
    operationId: 'archiveTaxCode', summary: 'Archive a tax code: new postings and invoices refuse it (tax codes are never deleted; owner, admin, accountant)',
    description: 'What was posted with it keeps it, and the VAT report still shows it. Archiving an archived code changes nothing.',
  })
  @ApiOkResponse({ type: TaxCodeDto })
  archiveTaxCode(@Tx() tx: TenantTx, @IdParam('taxCodeId', 'tax_code') id: string): Promise<TaxCodeDto> {
    return this.ledger.archiveTaxCode(tx, id);
  }

  @Post('tax-codes/:taxCodeId/calculate')
  @DoesNotWrite()
  @HttpCode(200)
  @ApiOperation({ operationId: 'calculateTax', summary: 'Net, tax and gross of an amount, rounded to the currency\'s minor unit (the calculation every caller uses)' })
  @ApiOkResponse({ type: TaxCalculationDto })
  @ApiErrors(400)
  @ApiErrorCodes('ledger.unknown_currency', 'ledger.invalid_amount')
  calculate(@Tx() tx: TenantTx, @IdParam('taxCodeId', 'tax_code') id: string, @Body() dto: CalculateTaxDto): Promise<TaxCalculationDto> {
    return this.ledger.calculateTax(tx, id, dto);
  }
}

@ApiTags('ledger')
@OrgRoute()
@WritesRequireSubscription('omnizen')
@ApiKeyScopes({ read: 'ledger:read', write: 'ledger:write' })
@Controller('v1/orgs/:orgId/ledger')
export class FiscalCalendarController {
  constructor(
    private readonly ledger: LedgerService,
    private readonly journal: JournalService,
  ) {}

  @Get('fiscal-years')
  @ApiOperation({ operationId: 'listFiscalYears', summary: 'Fiscal years with their periods' })
  @ApiOkResponse({ type: [FiscalYearDto] })
  years(@Tx() tx: TenantTx): Promise<FiscalYearDto[]> {
    return this.ledger.listYears(tx);
  }

  @Post('fiscal-years')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'createFiscalYear', summary: 'Create a fiscal year of 12 monthly periods' })
  @ApiCreatedResponse({ type: FiscalYearDto })
  @ApiErrors(400, 422)
  @ApiErrorCodes('ledger.books_not_started', 'ledger.fiscal_year_overlap', 'ledger.fiscal_year_before_closed_year', 'ledger.fiscal_year_before_opening_balance')
  createYear(@Tx() tx: TenantTx, @Body() dto: CreateFiscalYearDto): Promise<FiscalYearDto> {
    return this.ledger.createYear(tx, dto);
  }

  @Post('fiscal-years/:yearId/close')
  @HttpCode(200)
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'closeFiscalYear', summary: 'Year-end close: move the result to retained earnings and close every period (owner, admin)',
    description: 'Each revenue and expense balance of the year is moved whole to retained earnings in closing entries (source year_end, dated the year\'s last day; '
      + 'in parts of up to 498 lines, all in one transaction), then every period and the year close. Retained earnings takes the result in the base currency; '
      + 'a part whose lines are all in one foreign currency and net to zero in base gives retained earnings that currency\'s result at a base amount of 0.00 '
      + '(an entry of one currency balances in it), so a trial balance by currency shows it on retained earnings. Years close in order: '
      + 'a year with an earlier fiscal year still open is refused (422 ledger.earlier_year_open).' })
  @ApiOkResponse({ type: YearEndResultDto })
  // the settings are read first (books_not_started); the closing entry is dated the year's last day, whose period must be open
  // (period_closed); it credits or debits retained earnings in the base currency (archived: account_not_postable; an
  // account of another currency: currency_not_allowed) and moves each balance whole (beyond what a line stores: invalid_amount)
  // an earlier fiscal year still open must close first (earlier_year_open: its entries would change this year's closed figures)
  @ApiErrorCodes('ledger.year_closed', 'ledger.earlier_year_open', 'ledger.retained_earnings_missing', 'ledger.period_closed', 'ledger.account_not_postable',
    'ledger.currency_not_allowed', 'ledger.invalid_amount', 'ledger.books_not_started')
  closeYear(@Tx() tx: TenantTx, @IdParam('yearId', 'fiscal_year') id: string): Promise<YearEndResultDto> {
    return this.journal.closeYear(tx, id);
  }

  @Post('fiscal-years/:yearId/reopen')
  @HttpCode(200)
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'reopenFiscalYear', summary: 'Reopen the latest closed fiscal year: its periods open again and the closing entry is reversed (owner, admin; audited)' })
  @ApiOkResponse({ type: YearReopenResultDto })
  // the closing entry's reversal, dated in the year just opened again: only an archived retained earnings account refuses it.
  // Never already_reversed: only the closing entries not reversed yet are reversed (closingEntriesOf)
  @ApiErrorCodes('ledger.year_open', 'ledger.later_year_closed', 'ledger.account_not_postable')
  reopenYear(@Tx() tx: TenantTx, @IdParam('yearId', 'fiscal_year') id: string): Promise<YearReopenResultDto> {
    return this.journal.reopenYear(tx, id);
  }

  @Get('periods')
  @ApiOperation({ operationId: 'listPeriods', summary: 'Fiscal periods' })
  @ApiOkResponse({ type: [FiscalPeriodDto] })
  periods(@Tx() tx: TenantTx): Promise<FiscalPeriodDto[]> {
    return this.ledger.listPeriods(tx);
  }

  @Post('periods/:periodId/close')
  @HttpCode(200)
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'closePeriod', summary: 'Close a period: nothing more posts into it (owner, admin; audited)' })
  @ApiOkResponse({ type: FiscalPeriodDto })
  @ApiErrorCodes('ledger.period_status')
  closePeriod(@Tx() tx: TenantTx, @IdParam('periodId', 'fiscal_period') id: string): Promise<FiscalPeriodDto> {
    return this.ledger.setPeriodStatus(tx, id, 'closed');
  }

  @Post('periods/:periodId/reopen')
  @HttpCode(200)
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'reopenPeriod', summary: 'Reopen a period of an open fiscal year with no later fiscal year closed (owner, admin; audited)' })
  @ApiOkResponse({ type: FiscalPeriodDto })
  // a later fiscal year closed: an open year before it (left by an earlier release) takes no postings (20270210950100)
  @ApiErrorCodes('ledger.period_status', 'ledger.period_in_closed_year', 'ledger.later_year_closed')
  reopenPeriod(@Tx() tx: TenantTx, @IdParam('periodId', 'fiscal_period') id: string): Promise<FiscalPeriodDto> {
    return this.ledger.setPeriodStatus(tx, id, 'open');
  }
}

@ApiTags('ledger')
@OrgRoute()
@WritesRequireSubscription('omnizen')
@ApiKeyScopes({ read: 'ledger:read', write: 'ledger:write' })
@Controller('v1/orgs/:orgId/ledger')
export class JournalController {
  constructor(private readonly journal: JournalService) {}

  @Get('journal-entries')
  @ApiOperation({ operationId: 'listJournalEntries', summary: 'Journal entries, newest first; filter by date range, account, source, counterparty, amount (totalBase) and memo text (cursor pagination)' })
  @ApiOkResponse({ type: JournalEntryPage })
  @ApiErrors(400)
  @ApiErrorCodes('ledger.range')
  list(@Tx() tx: TenantTx, @Query() q: JournalEntryQuery): Promise<JournalEntryPage> {
    return this.journal.list(tx, q);
  }

  @Post('journal-entries')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'postJournalEntry', summary: 'Post a journal entry (owner, admin, accountant). 201 when posted; 200 with the first entry when the idempotency key repeats with the same payload' })
  @ApiBody({ type: CreateJournalEntryDto, examples: { capital: { summary: 'Share capital paid in', value: POST_JOURNAL_ENTRY_EXAMPLE } } })
  @ApiCreatedResponse({ type: JournalEntryDto, example: JOURNAL_ENTRY_EXAMPLE })
  @ApiOkResponse({ type: JournalEntryDto, description: 'Replay of an idempotency key: the entry posted first' })
  @ApiErrors(400)
  @ApiErrorCodes('ledger.line_side', 'ledger.idempotency_key', 'ledger.idempotency_key_reserved', 'ledger.tax_code_archived', 'billing.feature_not_in_plan', ...POSTING_ERRORS,
    'ledger.control_account', 'ledger.opening_balance_date', 'ledger.opening_balance_result_account', 'ledger.rate_out_of_range')
  async post(@Tx() tx: TenantTx, @Body() dto: CreateJournalEntryDto, @IdempotencyKey('The same key and request answer the entry posted first (200); another request with it is a 409 ledger.idempotency_conflict. Same as the body\'s idempotencyKey') key: string | undefined, @Res({ passthrough: true }) res: FastifyReply): Promise<JournalEntryDto> {
    const { entry, replayed } = await this.journal.create(tx, dto, key);
    res.status(replayed ? 200 : 201);
    return entry;
  }

  @Post('journal-entries/batch')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({
    operationId: 'postJournalEntriesBatch',
    summary: 'Post up to 1,000 journal entries in one request and one database call (owner, admin, accountant)',
    description: 'Each entry is posted by the same database function as a single posting (same rules, audit row per entry) and may carry its own idempotencyKey (a repeat with the same entry is `replayed`). '
      + 'mode=all_or_nothing (default): nothing is posted when one entry is rejected; the error is the own code of the rejected entry with the lowest index, '
      + 'with details.index naming it and the message starting with entries[index]; entries failing input validation (a date that is no calendar day, an amount '
      + 'with too many decimals, a malformed id, fewer than 2 lines) fail the request with 400 validation_failed naming entries.<index>.<field>. '
      + 'mode=independent: the valid entries post; rejected ones are listed by index with their code (status 201 either way), an entry failing input validation '
      + 'with code validation_failed and details naming its fields entries[index].<field>. The request\'s own shape (entries missing, not an array, empty, more than 1,000) '
      + 'is a 400 validation_failed in either mode. '
      + 'The body is limited to 1 MB like every request (413 payload_too_large): 1,000 entries of a few lines each fit.',
  })
  @ApiBody({ type: BatchJournalEntriesDto })
  @ApiCreatedResponse({ type: BatchResultDto })
  @ApiErrors(400)
  @ApiErrorCodes('ledger.line_side', 'ledger.idempotency_key_reserved', 'ledger.tax_code_archived', 'billing.feature_not_in_plan', ...POSTING_ERRORS,
    'ledger.control_account', 'ledger.opening_balance_date', 'ledger.opening_balance_result_account', 'ledger.rate_out_of_range')
  async createBatch(@Tx() tx: TenantTx, @RawBody() body: unknown, @Query() q: BatchQuery): Promise<BatchResultDto> {
    const mode = q.mode ?? 'all_or_nothing';
    const { entries, rejected } = await batchEntries(body, mode === 'independent');
    return this.journal.createBatch(tx, entries, mode, rejected);
  }

  @Get('journal-entries/:entryId')
  @ApiOperation({ operationId: 'getJournalEntry', summary: 'One journal entry with its lines' })
  @ApiOkResponse({ type: JournalEntryDto })
  get(@Tx() tx: TenantTx, @IdParam('entryId', 'journal_entry') id: string): Promise<JournalEntryDto> {
    return this.journal.get(tx, id);
  }

  @Post('journal-entries/:entryId/reverse')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({
    operationId: 'reverseJournalEntry', summary: 'Reverse a posted entry (the only correction: posted entries never change)',
    description: 'An entry a document posted (an invoice, a payment, an allocation, a bill, a year\'s closing entry) is corrected through the document '
      + '(void, credit note, reversed allocation, reopened year) and answers 422 `ledger.entry_of_document` here. '
      + 'An opening-balance entry (source opening_balance) is reversed on its own date (else 422 `ledger.opening_balance_date`): the way to correct it, and to create a fiscal year before it. '
      + '201 when reversed; 200 with the reversal a concurrent request committed while this one was posted, when it has the same date and memo (another: 409 `ledger.idempotency_conflict`).',
  })
  @ApiCreatedResponse({ type: JournalEntryDto })
  @ApiOkResponse({ type: JournalEntryDto, description: 'A concurrent request reversed the entry first, with the same date and memo: that reversal' })
  // ledger.idempotency_conflict: another reversal of the entry (another date or memo) committed while this one was posted
  @ApiErrorCodes('ledger.already_reversed', 'ledger.reversal_of_reversal', 'ledger.entry_of_document', ...REVERSAL_POSTING_ERRORS, 'ledger.idempotency_conflict',
    'ledger.opening_balance_date')
  async reverse(@Tx() tx: TenantTx, @IdParam('entryId', 'journal_entry') id: string, @Body() dto: ReverseEntryDto, @Res({ passthrough: true }) res: FastifyReply): Promise<JournalEntryDto> {
    const { entry, replayed } = await this.journal.reverseStandalone(tx, id, dto);
    res.status(replayed ? 200 : 201);
    return entry;
  }

  @Post('fx-revaluations')
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'revalueForeignCurrency', summary: 'Revalue open foreign-currency asset and liability balances at the rate of a date (posts unrealized FX gain/loss; autoReverse: its reversal on the first day of the next period)',
    description: 'The AR and AP control accounts are revalued per open item: each open invoice, bill and payment credit then carries its revalued base '
      + 'value (the AR and AP agings show it, and still equal the accounts), and a later allocation realizes only what the rate moved since; '
      + 'also when the items\' changes cancel on an account (an invoice and a payment credit revalued alike): that account\'s adjustment has a difference of 0 '
      + 'and its two lines in the entry cancel. '
      + 'Tax is owed in the base currency at the transaction\'s rate and is not revalued: tax lines post in the base currency, and the tax lines '
      + '(taxRole output_tax, input_tax) in a foreign currency (posted before, or a tax whose base amount rounds to 0.00) are left out of the balance revalued '
      + 'and keep their base value; the rest of such an account\'s balance (an earlier revaluation of it, a bank account a tax code names) is revalued as any other. '
      + 'Such a revaluation entry is not reversed on its own (ledger.entry_of_document); revalue again instead. '
      + 'An open item with a settlement (allocation, refund, reversal, void) dated after the date is not revalued: 422 ledger.revaluation_before_settlement '
      + '(the message names the item and the settlement date; revalue as of that date or later). With autoReverse, an item settled between the revaluation '
      + 'and its reversal settles what it carries as of its date, and what the reversal would take off the settled share is put back on the reversal date. '
      + 'A revaluation without autoReverse that would post, dated before the reversal of an earlier revaluation (autoReverse) dated on or before it, is refused: '
      + '422 ledger.revaluation_reversal_pending (it would be measured against a value that reversal takes off again; the message names both dates): '
      + 'revalue with autoReverse, or as of the reversal date or later.' })
  @ApiCreatedResponse({ type: RevaluationResultDto })
  @ApiErrors(400)
  // the client's date (its period, an FX rate on or before it); an account revalued as of a past date and archived since,
  // or an FX account of the settings archived or of another currency; a difference beyond what a line stores
  // (invalid_amount); the settings are read first (books_not_started). Never already_reversed: autoReverse reverses the
  // entries it just posted
  // an open item settled after the date (revaluation_before_settlement)
  @ApiErrorCodes('ledger.fx_accounts_missing', 'ledger.no_next_period', 'ledger.period_closed', 'ledger.no_fiscal_year',
    'ledger.account_not_postable', 'ledger.currency_not_allowed', 'ledger.rate_missing', 'ledger.invalid_amount', 'ledger.books_not_started',
    'ledger.revaluation_before_settlement', 'ledger.revaluation_reversal_pending')
  revalue(@Tx() tx: TenantTx, @Body() dto: RevaluationDto): Promise<RevaluationResultDto> {
    return this.journal.revalue(tx, dto.date, dto.autoReverse ?? false);
  }
}

@ApiTags('ledger')
@OrgRoute()
@WritesRequireSubscription('omnizen')
@ApiKeyScopes({ read: 'ledger:read', write: 'ledger:write' })
@Controller('v1/orgs/:orgId/ledger/reports')
export class ReportsController {
  constructor(private readonly reports: ReportsService, private readonly clock: Clock) {}

  @Get('trial-balance')
  @ApiOperation({ operationId: 'getTrialBalance', summary: 'Trial balance in the base currency as of a date (from balances; CSV with ?format=csv)' })
  @ApiOkJsonOrCsv(TrialBalanceDto, { example: TRIAL_BALANCE_EXAMPLE })
  @ApiErrors(400)
  @ApiErrorCodes('ledger.books_not_started')
  async trialBalance(@Tx() tx: TenantTx, @Query() q: AsOfQuery, @Req() req: FastifyRequest, @Res({ passthrough: true }) res: FastifyReply): Promise<TrialBalanceDto | string> {
    const tb = await this.reports.trialBalance(tx, q.asOf);
    if (!wantsCsv(req, q.format)) return tb;
    return sendCsv(res, `trial-balance-${q.asOf ?? 'current'}.csv`, toCsv(['code', 'name', 'type', 'debit', 'credit'],
      [...tb.rows.map((r) => [r.code, r.name, r.type, r.debit, r.credit]), ['', 'Total', '', tb.totalDebit, tb.totalCredit]]));
  }

  @Get('profit-and-loss')
  @ApiOperation({ operationId: 'getProfitAndLoss', summary: 'Profit and loss over a date range with hierarchy roll-ups; closing entries left out unless ?includeClosing=true; comparative column with ?compare= (CSV with ?format=csv)' })
  @ApiOkJsonOrCsv(ProfitAndLossDto)
  @ApiErrors(400)
  @ApiErrorCodes('ledger.range', 'ledger.books_not_started')
  async profitAndLoss(@Tx() tx: TenantTx, @Query() q: ProfitAndLossQuery, @Req() req: FastifyRequest, @Res({ passthrough: true }) res: FastifyReply): Promise<ProfitAndLossDto | string> {
    const pl = await this.reports.profitAndLoss(tx, q.from, q.to, { includeClosing: q.includeClosing === 'true', compare: q.compare });
    if (!wantsCsv(req, q.format)) return pl;
    const c = pl.comparative;
    const row = statementRow(!!c);
    return sendCsv(res, `profit-and-loss-${q.from}-${q.to}.csv`, toCsv(['section', 'code', 'name', 'depth', 'amount', ...(c ? [`amount_${c.from}_${c.to}`] : [])], [
      ...pl.revenue.map((r) => row('revenue', r.code, r.name, r.depth, r.amount, r.comparativeAmount)), row('revenue', '', 'Total revenue', '', pl.totalRevenue, c?.totalRevenue),
      ...pl.expenses.map((r) => row('expenses', r.code, r.name, r.depth, r.amount, r.comparativeAmount)), row('expenses', '', 'Total expenses', '', pl.totalExpenses, c?.totalExpenses),
      row('result', '', 'Net income', '', pl.netIncome, c?.netIncome),
    ]));
  }

  @Get('balance-sheet')
  @ApiOperation({
    operationId: 'getBalanceSheet',
    summary: 'Balance sheet as of a date; assets = liabilities + equity + current earnings is checked; comparative column with ?compare= (CSV with ?format=csv)',
    description: 'Without asOf the balance sheet is as of today (the current UTC day, as the aging\'s default), so entries dated after '
      + 'today are not in it; the trial balance and an account\'s balance without asOf count everything posted, entries dated later included.',
  })
  @ApiOkJsonOrCsv(BalanceSheetDto)
  @ApiErrors(400)
  @ApiErrorCodes('ledger.range', 'ledger.books_not_started')
  async balanceSheet(@Tx() tx: TenantTx, @Query() q: BalanceSheetQuery, @Req() req: FastifyRequest, @Res({ passthrough: true }) res: FastifyReply): Promise<BalanceSheetDto | string> {
    const asOf = q.asOf ?? today(this.clock);
    const bs = await this.reports.balanceSheet(tx, asOf, q.compare);
    if (!wantsCsv(req, q.format)) return bs;
    const c = bs.comparative;
    const row = statementRow(!!c);
    return sendCsv(res, `balance-sheet-${asOf}.csv`, toCsv(['section', 'code', 'name', 'depth', 'amount', ...(c ? [`amount_${c.asOf}`] : [])], [
      ...bs.assets.map((r) => row('assets', r.code, r.name, r.depth, r.amount, r.comparativeAmount)), row('assets', '', 'Total assets', '', bs.totalAssets, c?.totalAssets),
      ...bs.liabilities.map((r) => row('liabilities', r.code, r.name, r.depth, r.amount, r.comparativeAmount)), row('liabilities', '', 'Total liabilities', '', bs.totalLiabilities, c?.totalLiabilities),
      ...bs.equity.map((r) => row('equity', r.code, r.name, r.depth, r.amount, r.comparativeAmount)), row('equity', '', 'Total equity', '', bs.totalEquity, c?.totalEquity),
      row('equity', '', 'Current earnings', '', bs.currentEarnings, c?.currentEarnings),
    ]));
  }

  @Get('vat')
  @ApiOperation({ operationId: 'getVatReport', summary: 'VAT report per tax code over a date range: taxable sales and output tax, taxable purchases and input tax, net payable (CSV with ?format=csv)' })
  @ApiOkJsonOrCsv(VatReportDto)
  @ApiErrors(400)
  @ApiErrorCodes('ledger.range', 'ledger.books_not_started')
  async vat(@Tx() tx: TenantTx, @Query() q: RangeQuery, @Req() req: FastifyRequest, @Res({ passthrough: true }) res: FastifyReply): Promise<VatReportDto | string> {
    const vat = await this.reports.vatReport(tx, q.from, q.to);
    if (!wantsCsv(req, q.format)) return vat;
    return sendCsv(res, `vat-${q.from}-${q.to}.csv`, toCsv(['code', 'name', 'rate', 'taxable_sales', 'output_tax', 'taxable_purchases', 'input_tax', 'net'], [
      ...vat.rows.map((r) => [r.code, r.name, r.rate, r.taxableSales, r.outputTax, r.taxablePurchases, r.inputTax, r.net]),
      ['', 'Total', '', vat.totalTaxableSales, vat.totalOutputTax, vat.totalTaxablePurchases, vat.totalInputTax, vat.netPayable],
    ]));
  }

  @Get('cash-flow')
  @ApiOperation({
    operationId: 'getCashFlowStatement',
    summary: 'Cash-flow statement over a date range (indirect method; sections from the accounts\' cashFlowClass)',
    description: 'Investing and financing show the cash each entry paid or received for their accounts; the rest of those accounts\' '
      + 'lines moved no cash and is disclosed in nonCashInvestingAndFinancing (IAS 7.43). Per entry: cash received is the debits of its '
      + 'lines on cash accounts, cash paid their credits, each apart and never netted against the other (only what one cash account of the '
      + 'entry must have given another, the cash received beyond its other lines\' credits or paid beyond their debits, is no cash flow, '
      + 'IAS 7.9: it is taken off both). Cash received pays the entry\'s credit lines: its investing and '
      + 'financing credit lines first, at face value, pro rata when it is less than their total; the rest of it is operating. An investing '
      + 'credit line is a disposal: the entry\'s revenue and expense lines are its gain or loss, its proceeds its book value plus the gain '
      + '(or less the loss), the gain or loss shared pro rata over the investing credit lines only (a financing line has none: a loan drawn '
      + 'with a cash sale leaves the sale operating). Cash paid pays the entry\'s debit lines the same way: investing and financing debit '
      + 'lines first, pro rata when it is less, at face value less the entry\'s realized exchange gain (plus its loss: its lines on the '
      + 'settings\' fxGainAccountId and fxLossAccountId; a foreign-currency loan repaid is the cash paid, IAS 7.25; without such debit lines '
      + 'they are part of a disposal\'s gain or loss); the rest is operating (an expense paid with a purchase stays operating). What '
      + 'of an investing or financing line no cash paid is non-cash: disclosed in nonCashInvestingAndFinancing and counted in operating as a '
      + 'non-cash adjustment; but in an entry whose other lines are all on revenue and expense accounts (depreciation credited to accumulated '
      + 'depreciation classed investing, amortisation, an impairment) it is a non-cash expense or income, not a transaction: an operating row '
      + 'on the investing or financing account (+300.00 for depreciation of 300.00, the expense added back), nothing disclosed. Of a disposal\'s gain or loss, or a settlement\'s realized exchange gain or loss, the part realized in cash (as '
      + 'much of it as of the proceeds or of the payment) is taken out of operating, as a row on its revenue or expense account, a gain and a '
      + 'loss alike. Each part is rounded to the base currency\'s minor units, the line of the '
      + 'greatest account id taking the rest. Examples: equipment 10,000.00 paid 2,000.00 in cash and 8,000.00 by a loan: investing '
      + '-2,000.00, financing 0, 8,000.00 disclosed on both accounts; equipment 1,000.00 paid 200.00 in cash, the rest on supplier credit: '
      + 'investing -200.00, operating 0 (the payable\'s +800.00 offset by the disclosed -800.00); equipment carried at 1,000.00 sold for '
      + '1,200.00 and a loan of 500.00 drawn, 1,700.00 received in one entry: investing +1,200.00, financing +500.00, the gain\'s 200.00 '
      + 'taken out of operating (row -200.00 on the revenue account); a loan of 1,000.00 drawn and equipment of 400.00 paid in one entry: '
      + 'financing +1,000.00, investing -400.00; a loan of 500.00 repaid with 480.00 of cash and an exchange gain of 20.00: financing -480.00, '
      + 'the gain\'s 20.00 taken out of operating (row -20.00 on fxGainAccountId), nothing disclosed. '
      + 'Closing entries (source year_end) and opening-balance entries (source opening_balance: the balances brought from former books, and '
      + 'their reversal) moved no cash in the range: they are left out of every section and of nonCashInvestingAndFinancing; the cash of an '
      + 'opening-balance entry dated in the range is counted in openingCash (opening balances of cash 5,000.00, receivables 2,000.00 and '
      + 'equipment 3,000.00 against payables 1,000.00 and equity 9,000.00 on the first day: openingCash 5,000.00, no flows)',
  })
  @ApiOkResponse({ type: CashFlowDto })
  @ApiErrors(400)
  @ApiErrorCodes('ledger.range', 'ledger.books_not_started')
  cashFlow(@Tx() tx: TenantTx, @Query() q: DateRangeQuery): Promise<CashFlowDto> {
    return this.reports.cashFlow(tx, q.from, q.to);
  }
}
