import { defineErrorCodes } from '../../platform/errors/catalog.js';

/**
 * Every code the ledger answers with. The posting function raises its rules' codes in the HINT
 * (migration 20261204000100_ledger_accountants); the services throw them with `LedgerErrors.error(...)`.
 */
export const LedgerErrors = defineErrorCodes({
  'account.not_found': { status: 404, description: 'no account of this organization has this id' },
  'tax_code.not_found': { status: 404, description: 'no tax code of this organization has this id' },
  'fiscal_year.not_found': { status: 404, description: 'no fiscal year of this organization has this id' },
  'fiscal_period.not_found': { status: 404, description: 'no fiscal period of this organization has this id' },
  'journal_entry.not_found': { status: 404, description: 'no journal entry of this organization has this id' },
  // posting rules (the database's)
  'ledger.unbalanced': { status: 422, description: 'the entry does not balance (in its currency, or in the base currency beyond rounding)' },
  'ledger.period_closed': { status: 422, description: 'the fiscal period of the date is closed' },
  'ledger.no_fiscal_year': { status: 422, description: 'no fiscal period covers the date' },
  'ledger.account_not_postable': { status: 422, description: 'the account is a group account or archived (only the year-end close and a reopening\'s reversal post to an archived account)' },
  'ledger.unknown_account': { status: 422, description: 'the account does not exist in this organization' },
  'ledger.currency_not_allowed': { status: 422, description: 'the account only takes another currency' },
  'ledger.unknown_currency': { status: 422, description: 'the currency is not known' },
  'ledger.rate_missing': { status: 422, description: 'no FX rate on or before the date' },
  'ledger.invalid_rate': { status: 422, description: 'the rate is not positive, or not 1 for the base currency' },
  'ledger.rate_out_of_range': { status: 422, description: 'the rate the client sent deviates from the rate table\'s rate of the currency on or before the date by more than the tolerance (20 %): the message names both rates, the table rate\'s date and the tolerance (details: rate, tableRate, tableDate, tolerance). Send rateOverride: true to post at it anyway (recorded in the audit row)' },
  'ledger.invalid_amount': { status: 422, description: 'an amount has more decimals than its currency, both or no sides, is zero, or is too large to store' },
  'ledger.invalid_entry': { status: 422, description: 'the entry is malformed (fewer than 2 or more than 499 lines, no date or not a calendar date, unknown source)' },
  'ledger.unknown_tax_code': { status: 422, description: 'a line\'s taxCodeId names no tax code of this organization' },
  'ledger.unknown_workspace': { status: 422, description: 'a line\'s workspaceId names no workspace of this organization' },
  'ledger.unknown_entry': { status: 422, description: 'the entry to reverse does not exist' },
  'ledger.rounding_account_missing': { status: 422, description: 'a rounding difference needs a rounding account in the settings' },
  'ledger.books_not_started': { status: 422, description: 'the books are not started (POST /ledger/books)' },
  'ledger.idempotency_conflict': { status: 409, description: 'the idempotency key was used for a different entry' },
  'ledger.already_reversed': { status: 409, description: 'the entry is already reversed' },
  // input checked by the services
  'ledger.line_side': { status: 400, description: 'a line needs exactly one of debit or credit' },
  'ledger.idempotency_key': { status: 400, description: 'the Idempotency-Key header and idempotencyKey differ' },
  'ledger.idempotency_key_reserved': { status: 400, description: 'the idempotency key starts with a prefix of the entries the API posts itself (reversal:, year-end:, invoice:, bill:, expense_claim:, revenue-recognition:)' },
  'ledger.range': { status: 400, description: 'from is after to (minAmount above maxAmount), or a comparative column (?compare=) would start before 0001-01-01, the first day of the calendar' },
  'ledger.rate_base_currency': { status: 400, description: 'the base currency has no rate (always 1)' },
  'ledger.rate_not_positive': { status: 400, description: 'a rate must be positive' },
  'ledger.rate_duplicate': { status: 400, description: 'the same currency and date appear twice' },
  'ledger.tax_rate': { status: 400, description: 'a tax rate is a percent between 0 and 100' },
  // business rules of the services
  'ledger.tax_code_archived': { status: 422, description: 'the tax code is archived' },
  'ledger.opening_balance_date': { status: 422, description: 'an opening-balance entry (source opening_balance) is dated another day than the first day of the organization\'s first fiscal year (details.booksStart names it), or its reversal another day than the entry\'s own date (details.entryDate)' },
  'ledger.opening_balance_result_account': { status: 422, description: 'a line of an opening-balance entry (source opening_balance) posts to a revenue or expense account: opening balances bring the former years\' results through retained earnings; the message names the line and the account' },
  'ledger.reversal_of_reversal': { status: 422, description: 'a reversal cannot be reversed' },
  'ledger.entry_of_document': { status: 422, description: 'the entry belongs to a document (invoice, payment, allocation, bill, a year\'s closing entry): correct it through the document' },
  'ledger.control_account': { status: 422, description: 'a line of a manual entry posts to a control account of receivables or payables (AR, deferred revenue, AP of their settings): it is posted only through their documents; the message names the line, the account and the module. Also a tax code that names such an account as its sales or purchase account (the field, the account and the module)' },
  'ledger.fx_account_type': { status: 422, description: 'an FX gain or loss account of the settings (realized or unrealized) is not a revenue or expense account: the message names the field and the account' },
  'ledger.fx_accounts_missing': { status: 422, description: 'FX gain and loss accounts are not configured' },
  'ledger.retained_earnings_missing': { status: 422, description: 'the retained earnings account is not configured' },
  'ledger.later_year_closed': { status: 422, description: 'a later fiscal year is closed: reopen it first' },
  'ledger.earlier_year_open': { status: 422, description: 'an earlier fiscal year is open: close it first (its entries would change this year\'s closed figures)' },
  'ledger.period_in_closed_year': { status: 422, description: 'the period belongs to a closed fiscal year' },
  'ledger.account_has_balance': { status: 422, description: 'the account has a balance (a revenue or expense account: also within a fiscal year not closed)' },
  'ledger.account_has_children': { status: 422, description: 'the account has child accounts: it cannot be archived (active children) nor stop being a group' },
  'ledger.revaluation_before_settlement': { status: 422, description: 'an open receivable or payable the revaluation would revalue has a settlement (an allocation, a refund, a reversal, a void) dated after the revaluation date: it would change a value the item no longer carries; revalue as of that date or later' },
  'ledger.revaluation_reversal_pending': { status: 422, description: 'a revaluation without autoReverse that would post is dated before the reversal (autoReverse) of an earlier revaluation dated on or before it: it would be measured against a value that reversal takes off again, and the accounts would be carried at the wrong rate from the reversal on; the message names both dates: revalue with autoReverse, or as of the reversal date or later (details: revaluationDate, reversalDate)' },
  'ledger.no_next_period': { status: 422, description: 'no open fiscal period starts the day after the revaluation date\'s period (autoReverse): nothing is posted' },
  'ledger.books_started': { status: 409, description: 'the books are already started' },
  'ledger.year_closed': { status: 409, description: 'the fiscal year is already closed' },
  'ledger.year_open': { status: 409, description: 'the fiscal year is not closed' },
  'ledger.period_status': { status: 409, description: 'the period already has that status' },
  // chart and fiscal calendar (the database's rules: finance.check_account and finance.check_no_overlap name them in
  // the HINT, migration 20270206001200; the unique codes are mapped from their constraints in ledgerRepository)
  'ledger.parent_not_group': { status: 422, description: 'the parent account is not a group account' },
  'ledger.parent_type_mismatch': { status: 422, description: 'the parent account is of another type (asset, liability, equity, revenue, expense) than the account' },
  'ledger.parent_cycle': { status: 422, description: 'the parent is the account itself or one of its descendants' },
  'ledger.hierarchy_too_deep': { status: 422, description: 'the account would be more than 32 levels deep in the hierarchy' },
  'ledger.account_has_postings': { status: 422, description: 'the account has postings: it cannot become a group account (nor change its type)' },
  'ledger.fiscal_year_overlap': { status: 422, description: 'the fiscal year (or one of its periods) overlaps an existing fiscal year' },
  'ledger.fiscal_year_before_opening_balance': { status: 422, description: 'the fiscal year would start before an opening-balance entry (source opening_balance, not reversed), dated the first day of the first fiscal year: its balances would lie mid-books while the cash-flow statement counts them as opening cash; the message names the entry and its date. Reverse the opening-balance entries first (on their own date), create the year, then post them again dated its first day' },
  'ledger.fiscal_year_before_closed_year': { status: 422, description: 'the fiscal year would start before a closed fiscal year: its entries would change the closed year\'s figures (balance sheet, retained earnings); reopen the later closed years first' },
  'ledger.account_code_taken': { status: 409, description: 'another account of this organization has this code' },
  'ledger.tax_code_taken': { status: 409, description: 'another tax code of this organization has this code' },
});

/** The codes a posting can be rejected with (single entry, batch entry, reversal, revaluation, close). */
export const POSTING_ERRORS = [
  'ledger.unbalanced', 'ledger.period_closed', 'ledger.no_fiscal_year', 'ledger.account_not_postable', 'ledger.unknown_account',
  'ledger.currency_not_allowed', 'ledger.unknown_currency', 'ledger.rate_missing', 'ledger.invalid_rate', 'ledger.invalid_amount',
  'ledger.invalid_entry', 'ledger.unknown_tax_code', 'ledger.unknown_workspace', 'ledger.rounding_account_missing', 'ledger.books_not_started',
  'ledger.idempotency_conflict',
] as const;

// The postings the API builds itself (documents, reversals, the year-end close, revaluation) can be refused with only
// some of POSTING_ERRORS: the service computes both sides (never unbalanced), takes accounts, tax codes and currencies
// from rows that exist and are never deleted (never unknown_account, unknown_tax_code, unknown_currency), names no
// workspace (a reversal copies the lines' own, which their foreign key keeps), keys a document's entry by the
// document (never idempotency_conflict); an entry it built malformed (invalid_entry) or unbalanced is its own bug, not an
// answer to the client. What is left, per operation, is declared with these subsets plus the codes of that operation's
// own input and state (a rate the client sends, an FX rate missing, books not started, ...).

/**
 * A posting the service builds from a document and the settings: dated by the client (the period is closed, or no
 * fiscal period covers the date), to accounts archived or made a group since they were chosen, or that only take
 * another currency than the document's (the accounts' currency is not checked when they are chosen).
 */
export const DOCUMENT_POSTING_ERRORS = ['ledger.period_closed', 'ledger.no_fiscal_year', 'ledger.account_not_postable', 'ledger.currency_not_allowed'] as const;

/**
 * A reversal (an invoice's void, a reversed journal entry): every line's account and currency as in the entry
 * reversed, so only its date and an account archived since can refuse it.
 */
export const REVERSAL_POSTING_ERRORS = ['ledger.period_closed', 'ledger.no_fiscal_year', 'ledger.account_not_postable'] as const;
