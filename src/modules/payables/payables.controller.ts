import { ApiKeyScopes, ClosedToApiKeys } from '../../platform/auth/api-key-scopes.js';
import { Body, Controller, Get, HttpCode, Patch, Post, Put, Query, Req, Res } from '@nestjs/common';
import { ApiBody, ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ADMIN_ROLES, BOOKKEEPER_ROLES, type RequestRole } from '../../platform/auth/principal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import { IdParam } from '../../platform/http/id-param.js';
import { IdempotencyKey } from '../../platform/http/idempotency-key.js';
import { ApiErrors, ApiOkJsonOrCsv } from '../../platform/http/openapi.js';
import { OrgRoute, RequireRole, RequiresFeature, Tx, WritesRequireSubscription } from '../../platform/http/tenant.js';
import { DOCUMENT_POSTING_ERRORS, REVERSAL_POSTING_ERRORS } from '../ledger/ledger.errors.js';
import { sendCsv, toCsv, wantsCsv } from '../ledger/csv.js';
import { BillPaymentsService } from './bill-payments.service.js';
import { PayablesService } from './payables.service.js';
import {
  AgingQuery, AgingReportDto, BillDto, BillPage, BillPaymentDto, BillPaymentPage, BillQuery, CommentDto, CreateAllocationDto, CreateBillDto, RefundVendorCreditDto,
  CreateBillPaymentDto, CreateExpenseClaimDto, CreateVendorDto, UpdateExpenseClaimDto, VoidBillDto, DecisionDto, PayablesSettingsDto, PaymentQuery, RejectDto, ReverseAllocationDto,
  UpdateBillDto, UpdatePayablesSettingsDto, UpdateVendorDto, VendorDto, VendorPage, VendorQuery,
} from './payables.dto.js';

/** Members draft and submit their own expense claims and comment; viewers only read. A claim is the caller's own: no API key drafts, edits, submits or voids one (@ClosedToApiKeys). */
const CLAIMANT_ROLES: RequestRole[] = ['owner', 'admin', 'accountant', 'member'];
const COMMENTER_ROLES: RequestRole[] = [...BOOKKEEPER_ROLES, 'member'];
/** A bill's content (PayablesService.billContent): its vendor, lines with tax codes, dates and one currency (never payables.currency_mismatch). */
const BILL_CONTENT_ERRORS = ['payables.total_mismatch', 'payables.account_not_allowed', 'payables.control_account', 'payables.vendor_archived', 'payables.empty', 'payables.due_before_bill',
  'ledger.tax_code_archived', 'tax_code.not_found', 'ledger.unknown_currency', 'payables.invalid_amount'];
/**
 * A claim's content (claimContent): no vendor, tax code nor due date, lines in the claim's currency. It reads no ledger
 * settings, and its accounts exist only once the books are started (never ledger.books_not_started).
 */
const CLAIM_CONTENT_ERRORS = ['payables.total_mismatch', 'payables.account_not_allowed', 'payables.control_account', 'payables.empty', 'payables.currency_mismatch', 'ledger.unknown_currency'];
/**
 * An approval's checks. Its posting reads the AP account the submission read already (settings are never deleted, nor
 * is the standard account 2100, nor does its code change): never payables.account_not_allowed here.
 */
// Approving and rejecting are a person's decisions: closed to API keys (@ClosedToApiKeys, 403 api_keys.route_closed). A
// key's role ('service') is never among a rule's approver roles (APPROVER_ROLES), so a key met 403
// payables.role_not_allowed on routes documented open to payables:write; and a key approving would be its creator's
// approval under another name (the four-eyes check compares the people behind keys: ActingPeople).
const APPROVAL_ERRORS = ['payables.not_submitted', 'payables.own_bill', 'payables.role_not_allowed', 'payables.already_approved'];
// the posting codes each operation can answer (ledger.errors.ts: what a posting the service builds cannot be refused with)
/**
 * The final approval posts at the document's date and the FX rate of that date, which its submission found (rates are
 * never deleted, so never rate_missing here): its total's base too large to store (an FX rate the client set) is
 * invalid_amount; per-line rounding of a foreign document needs the rounding account.
 */
const APPROVAL_POSTING_ERRORS = [...DOCUMENT_POSTING_ERRORS, 'ledger.invalid_amount', 'ledger.rounding_account_missing',
  // payables' first posting without settings: its default AP account named by a tax code or receivables, or carrying a
  // balance already (postingAccount)
  'payables.control_account', 'payables.account_carries_balance'];
/** What a retry of a bill payment with an Idempotency-Key answers (the key is unique per organization among its bill payments). */
const PAYMENT_KEY = 'Retry-safe: the same key with the same request answers 201 with the payment recorded first (as it is now) and records nothing; '
  + 'with another request of the same kind, 409 payables.idempotency_conflict (keys are unique per organization within each kind of write). 1 to 200 characters';
const ALLOCATION_KEY = 'Retry-safe: the same key with the same request (payment and body) answers 201 with the payment (as it is now) and '
  + 'allocates nothing again; with another allocation or reversal, 409 payables.idempotency_conflict (keys are unique per organization within each kind of write). 1 to 200 characters';
const REVERSAL_KEY = 'Retry-safe: the same key with the same request (allocation and body) answers 201 with the payment (as it is now) and '
  + 'reverses nothing again (not 409 payables.allocation_reversed); with another reversal or allocation, 409 payables.idempotency_conflict (keys are unique per organization within each kind of write). 1 to 200 characters';
const REFUND_KEY = 'Retry-safe: the same key with the same request (payment and body) answers 201 with the payment (as it is now) and '
  + 'records nothing again; with another request of the same kind, 409 payables.idempotency_conflict (keys are unique per organization within each kind of write). 1 to 200 characters';

@ApiTags('payables')
@OrgRoute()
@WritesRequireSubscription('omnizen')
@ApiKeyScopes({ read: 'payables:read', write: 'payables:write' })
@Controller('v1/orgs/:orgId/payables')
export class PayablesController {
  constructor(
    private readonly payables: PayablesService,
    private readonly payments: BillPaymentsService,
  ) {}

  // ---------------------------------------------------------------- settings
  @Get('settings')
  @ApiOperation({ operationId: 'getPayablesSettings', summary: 'The AP control account and the approval rules (the defaults until changed)' })
  @ApiOkResponse({ type: PayablesSettingsDto })
  @ApiErrorCodes('ledger.books_not_started', 'payables.account_not_allowed')
  settings(@Tx() tx: TenantTx): Promise<PayablesSettingsDto> {
    return this.payables.settings(tx, { posting: false });
  }

  @Put('settings')
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'updatePayablesSettings', summary: 'Set the AP control account and the approval rules: thresholds in the base currency → approvers and roles (owner, admin)' })
  @ApiOkResponse({ type: PayablesSettingsDto })
  @ApiErrors(400)
  // the account it makes the AP control account carries nothing yet (payables.account_carries_balance)
  @ApiErrorCodes('payables.invalid_rules', 'payables.account_not_allowed', 'payables.control_account', 'payables.control_account_in_use', 'payables.account_carries_balance',
    'ledger.books_not_started', 'account.not_found')
  updateSettings(@Tx() tx: TenantTx, @Body() dto: UpdatePayablesSettingsDto): Promise<PayablesSettingsDto> {
    return this.payables.updateSettings(tx, dto);
  }

  // ---------------------------------------------------------------- vendors
  @Get('vendors')
  @ApiOperation({ operationId: 'listVendors', summary: 'Vendors by name; search by name or e-mail (cursor pagination)' })
  @ApiOkResponse({ type: VendorPage })
  @ApiErrors(400)
  @ApiErrorCodes('organization.not_found', 'pagination.cursor')
  listVendors(@Tx() tx: TenantTx, @Query() q: VendorQuery): Promise<VendorPage> {
    return this.payables.listVendors(tx, q);
  }

  @Post('vendors')
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'createVendor', summary: 'Create a vendor (owner, admin, accountant)' })
  @ApiCreatedResponse({ type: VendorDto })
  @ApiErrors(400)
  @ApiErrorCodes('ledger.unknown_currency')
  createVendor(@Tx() tx: TenantTx, @Body() dto: CreateVendorDto): Promise<VendorDto> {
    return this.payables.createVendor(tx, dto);
  }

  @Get('vendors/:vendorId')
  @ApiOperation({ operationId: 'getVendor', summary: 'One vendor' })
  @ApiOkResponse({ type: VendorDto })
  @ApiErrorCodes('organization.not_found', 'vendor.not_found')
  getVendor(@Tx() tx: TenantTx, @IdParam('vendorId', 'vendor') id: string): Promise<VendorDto> {
    return this.payables.getVendor(tx, id);
  }

  @Patch('vendors/:vendorId')
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'updateVendor', summary: 'Change a vendor (owner, admin, accountant)' })
  @ApiOkResponse({ type: VendorDto })
  @ApiErrors(400)
  @ApiErrorCodes('ledger.unknown_currency')
  updateVendor(@Tx() tx: TenantTx, @IdParam('vendorId', 'vendor') id: string, @Body() dto: UpdateVendorDto): Promise<VendorDto> {
    return this.payables.updateVendor(tx, id, dto);
  }

  @Post('vendors/:vendorId/archive')
  @HttpCode(200)
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'archiveVendor', summary: 'Archive a vendor (vendors are never deleted)' })
  @ApiOkResponse({ type: VendorDto })
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'billing.feature_not_in_plan', 'billing.subscription_inactive', 'vendor.not_found')
  archiveVendor(@Tx() tx: TenantTx, @IdParam('vendorId', 'vendor') id: string): Promise<VendorDto> {
    return this.payables.archiveVendor(tx, id);
  }

  // ---------------------------------------------------------------- bills
  @Get('bills')
  @ApiOperation({ operationId: 'listBills', summary: 'Vendor bills, newest first; filter by vendor and status (cursor pagination)' })
  @ApiOkResponse({ type: BillPage })
  @ApiErrors(400)
  @ApiErrorCodes('organization.not_found', 'pagination.cursor')
  listBills(@Tx() tx: TenantTx, @Query() q: BillQuery): Promise<BillPage> {
    return this.payables.listBills(tx, 'bill', q);
  }

  @Post('bills')
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'createBill', summary: 'Create a draft bill; totals and tax are computed by the server (owner, admin, accountant)' })
  @ApiCreatedResponse({ type: BillDto })
  @ApiErrors(400)
  @ApiErrorCodes(...BILL_CONTENT_ERRORS, 'ledger.books_not_started', 'vendor.not_found', 'payables.duplicate_bill_number')
  createBill(@Tx() tx: TenantTx, @Body() dto: CreateBillDto): Promise<BillDto> {
    return this.payables.createBill(tx, dto);
  }

  @Get('bills/:billId')
  @ApiOperation({ operationId: 'getBill', summary: 'One bill with its lines, decisions and open amount' })
  @ApiOkResponse({ type: BillDto })
  @ApiErrorCodes('organization.not_found', 'bill.not_found')
  getBill(@Tx() tx: TenantTx, @IdParam('billId', 'bill') id: string): Promise<BillDto> {
    return this.payables.getBill(tx, id, 'bill');
  }

  @Patch('bills/:billId')
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'updateBill', summary: 'Replace the content of a draft (or rejected) bill' })
  @ApiOkResponse({ type: BillDto })
  @ApiErrors(400)
  // a draft exists only once the books are started, and its vendor (never deleted) is the draft's own
  @ApiErrorCodes('payables.not_editable', ...BILL_CONTENT_ERRORS, 'payables.duplicate_bill_number')
  updateBill(@Tx() tx: TenantTx, @IdParam('billId', 'bill') id: string, @Body() dto: UpdateBillDto): Promise<BillDto> {
    return this.payables.updateBill(tx, id, dto);
  }

  @Post('bills/:billId/submit')
  @HttpCode(200)
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'submitBill', summary: 'Submit a bill for approval; a bill needing no approval under the rules is posted at once' })
  @ApiOkResponse({ type: BillDto })
  // a bill needing no approval posts here, at the FX rate its submission looks up (none: ledger.rate_missing); the AP
  // account is read here first (payables.account_not_allowed: none set and no standard one)
  @ApiErrorCodes('payables.not_editable', 'payables.account_not_allowed', ...APPROVAL_POSTING_ERRORS, 'ledger.rate_missing')
  submitBill(@Tx() tx: TenantTx, @IdParam('billId', 'bill') id: string): Promise<BillDto> {
    return this.payables.submit(tx, id, 'bill');
  }

  @Post('bills/:billId/approve')
  @HttpCode(200)
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ClosedToApiKeys()
  @ApiOperation({ operationId: 'approveBill', summary: 'Approve a submitted bill (never by whoever created, last edited or submitted it, themselves or through their API key; roles per the rule); the final approval posts it to the ledger' })
  @ApiOkResponse({ type: BillDto })
  @ApiErrors(400)
  @ApiErrorCodes(...APPROVAL_ERRORS, ...APPROVAL_POSTING_ERRORS)
  approveBill(@Tx() tx: TenantTx, @IdParam('billId', 'bill') id: string, @Body() dto: DecisionDto): Promise<BillDto> {
    return this.payables.approve(tx, id, 'bill', dto.comment);
  }

  @Post('bills/:billId/reject')
  @HttpCode(200)
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ClosedToApiKeys()
  @ApiOperation({ operationId: 'rejectBill', summary: 'Reject a submitted bill back to its author with a reason (editable and submittable again)' })
  @ApiOkResponse({ type: BillDto })
  @ApiErrors(400)
  @ApiErrorCodes('payables.not_submitted', 'payables.role_not_allowed')
  rejectBill(@Tx() tx: TenantTx, @IdParam('billId', 'bill') id: string, @Body() dto: RejectDto): Promise<BillDto> {
    return this.payables.reject(tx, id, 'bill', dto.reason);
  }

  @Post('bills/:billId/void')
  @HttpCode(200)
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({
    operationId: 'voidBill',
    summary: 'Void a draft or rejected bill that will never be posted, or cancel a posted bill nothing is allocated to (posts the reversal of its entry, dated `date`); '
      + 'it stays, immutable, with its history (owner, admin, accountant)',
  })
  @ApiOkResponse({ type: BillDto })
  @ApiErrors(400)
  // a posted bill: the reversal of its entry, dated by the client or today (its period closed or uncovered; an account archived since)
  // a bill FX revaluations revalued: what they added to AP (or took off) is taken off too (an entry of its own, against
  // the unrealized FX account); dated before its last revaluation: payables.before_revaluation
  // Never ledger.fx_accounts_missing: a revaluation needs the FX accounts, and the ledger settings never unset one (null leaves it as it is)
  @ApiErrorCodes('payables.not_editable', 'payables.has_allocations', 'payables.before_revaluation', ...REVERSAL_POSTING_ERRORS)
  voidBill(@Tx() tx: TenantTx, @IdParam('billId', 'bill') id: string, @Body() dto: VoidBillDto): Promise<BillDto> {
    return this.payables.void(tx, id, 'bill', { reason: dto.reason, date: dto.date });
  }

  @Post('bills/:billId/comments')
  @HttpCode(200)
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...COMMENTER_ROLES)
  @ApiOperation({ operationId: 'commentOnBill', summary: 'Comment on a bill (listed with its decisions; audited)' })
  @ApiOkResponse({ type: BillDto })
  @ApiErrors(400)
  // an API key comments too, as service:<name> (never auth.user_required)
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'billing.feature_not_in_plan', 'billing.subscription_inactive', 'bill.not_found')
  commentOnBill(@Tx() tx: TenantTx, @IdParam('billId', 'bill') id: string, @Body() dto: CommentDto): Promise<BillDto> {
    return this.payables.comment(tx, id, 'bill', dto.comment);
  }

  // ---------------------------------------------------------------- expense claims
  @Get('expense-claims')
  @ApiOperation({ operationId: 'listExpenseClaims', summary: 'Expense claims, newest first (a member sees their own; cursor pagination)' })
  @ApiOkResponse({ type: BillPage })
  @ApiErrors(400)
  @ApiErrorCodes('organization.not_found', 'pagination.cursor')
  listClaims(@Tx() tx: TenantTx, @Query() q: BillQuery): Promise<BillPage> {
    return this.payables.listBills(tx, 'expense_claim', q);
  }

  @Post('expense-claims')
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...CLAIMANT_ROLES)
  @ClosedToApiKeys()
  @ApiOperation({ operationId: 'createExpenseClaim', summary: 'Draft an expense claim for yourself (members and up)' })
  @ApiCreatedResponse({ type: BillDto })
  @ApiErrors(400)
  // a line amount with more decimals than the currency has: payables.invalid_amount (never rounded)
  @ApiErrorCodes(...CLAIM_CONTENT_ERRORS, 'payables.invalid_amount')
  createClaim(@Tx() tx: TenantTx, @Body() dto: CreateExpenseClaimDto): Promise<BillDto> {
    return this.payables.createClaim(tx, dto);
  }

  @Get('expense-claims/:claimId')
  @ApiOperation({ operationId: 'getExpenseClaim', summary: 'One expense claim with its lines, decisions and open amount' })
  @ApiOkResponse({ type: BillDto })
  @ApiErrorCodes('organization.not_found', 'expense_claim.not_found')
  getClaim(@Tx() tx: TenantTx, @IdParam('claimId', 'expense_claim') id: string): Promise<BillDto> {
    return this.payables.getBill(tx, id, 'expense_claim');
  }

  @Patch('expense-claims/:claimId')
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...CLAIMANT_ROLES)
  @ClosedToApiKeys()
  @ApiOperation({ operationId: 'updateExpenseClaim', summary: 'Replace the content of your draft (or rejected) expense claim; then submit it again' })
  @ApiOkResponse({ type: BillDto })
  @ApiErrors(400)
  @ApiErrorCodes('payables.not_editable', 'payables.claim_not_own', ...CLAIM_CONTENT_ERRORS, 'expense_claim.not_found', 'payables.invalid_amount')
  updateClaim(@Tx() tx: TenantTx, @IdParam('claimId', 'expense_claim') id: string, @Body() dto: UpdateExpenseClaimDto): Promise<BillDto> {
    return this.payables.updateClaim(tx, id, dto);
  }

  @Post('expense-claims/:claimId/void')
  @HttpCode(200)
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...CLAIMANT_ROLES)
  @ClosedToApiKeys()
  @ApiOperation({
    operationId: 'voidExpenseClaim',
    summary: 'Withdraw your draft or rejected expense claim for good (bookkeepers: any claim); or cancel a posted claim nothing is reimbursed on '
      + '(owner, admin, accountant, never its claimant: posts the reversal of its entry, dated `date`); it stays, immutable',
    description: 'A posted claim with reimbursements allocated (not reversed) is 409 payables.has_allocations: reverse them first. Its claimant '
      + '(whatever their role) is 403 payables.own_bill. The reversal is dated `date` (default: today, never before the claim date nor its last '
      + 'allocation or reversal) in an open period. Emits bill.voided (kind expense_claim) with voidedOn and reversalEntryId.',
  })
  @ApiBody({
    type: VoidBillDto,
    examples: {
      withdraw: { summary: 'The claimant withdraws a draft or rejected claim', value: { reason: 'paid with the company card' } },
      cancelPosted: { summary: 'A bookkeeper cancels a posted claim nothing is reimbursed on', value: { reason: 'claimed twice', date: '2026-03-10' } },
    },
  })
  @ApiOkResponse({ type: BillDto })
  @ApiErrors(400)
  // a member reads only their own claims (another's is 404 expense_claim.not_found): never payables.claim_not_own.
  // A posted claim: the reversal of its entry, dated by the client or today (its period closed or uncovered; an account archived since).
  // Never ledger.fx_accounts_missing: a revaluation needs the FX accounts, and the ledger settings never unset one (null leaves it as it is)
  @ApiErrorCodes('payables.not_editable', 'payables.own_bill', 'payables.has_allocations', 'payables.before_revaluation', ...REVERSAL_POSTING_ERRORS)
  voidClaim(@Tx() tx: TenantTx, @IdParam('claimId', 'expense_claim') id: string, @Body() dto: VoidBillDto): Promise<BillDto> {
    return this.payables.void(tx, id, 'expense_claim', { reason: dto.reason, date: dto.date });
  }

  @Post('expense-claims/:claimId/comments')
  @HttpCode(200)
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...COMMENTER_ROLES)
  @ApiOperation({ operationId: 'commentOnExpenseClaim', summary: 'Comment on an expense claim: a member on their own, bookkeepers on any (listed with its decisions; audited)' })
  @ApiOkResponse({ type: BillDto })
  @ApiErrors(400)
  // an API key comments too, as service:<name> (never auth.user_required)
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'billing.feature_not_in_plan', 'billing.subscription_inactive', 'expense_claim.not_found')
  commentOnClaim(@Tx() tx: TenantTx, @IdParam('claimId', 'expense_claim') id: string, @Body() dto: CommentDto): Promise<BillDto> {
    return this.payables.comment(tx, id, 'expense_claim', dto.comment);
  }

  @Post('expense-claims/:claimId/submit')
  @HttpCode(200)
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...CLAIMANT_ROLES)
  @ClosedToApiKeys()
  @ApiOperation({ operationId: 'submitExpenseClaim', summary: 'Submit your expense claim for approval (at least one bookkeeper approves)' })
  @ApiOkResponse({ type: BillDto })
  // a member reads only their own claims (another's is 404 expense_claim.not_found): never payables.claim_not_own
  @ApiErrorCodes('payables.not_editable', 'ledger.rate_missing', 'payables.account_not_allowed')
  submitClaim(@Tx() tx: TenantTx, @IdParam('claimId', 'expense_claim') id: string): Promise<BillDto> {
    return this.payables.submit(tx, id, 'expense_claim');
  }

  @Post('expense-claims/:claimId/approve')
  @HttpCode(200)
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ClosedToApiKeys()
  @ApiOperation({ operationId: 'approveExpenseClaim', summary: 'Approve a submitted expense claim; the final approval posts a payable to the claimant' })
  @ApiOkResponse({ type: BillDto })
  @ApiErrors(400)
  @ApiErrorCodes(...APPROVAL_ERRORS, ...APPROVAL_POSTING_ERRORS)
  approveClaim(@Tx() tx: TenantTx, @IdParam('claimId', 'expense_claim') id: string, @Body() dto: DecisionDto): Promise<BillDto> {
    return this.payables.approve(tx, id, 'expense_claim', dto.comment);
  }

  @Post('expense-claims/:claimId/reject')
  @HttpCode(200)
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ClosedToApiKeys()
  @ApiOperation({ operationId: 'rejectExpenseClaim', summary: 'Reject a submitted expense claim back to the claimant with a reason' })
  @ApiOkResponse({ type: BillDto })
  @ApiErrors(400)
  @ApiErrorCodes('payables.not_submitted', 'payables.role_not_allowed')
  rejectClaim(@Tx() tx: TenantTx, @IdParam('claimId', 'expense_claim') id: string, @Body() dto: RejectDto): Promise<BillDto> {
    return this.payables.reject(tx, id, 'expense_claim', dto.reason);
  }

  // ---------------------------------------------------------------- payments
  @Get('payments')
  @ApiOperation({ operationId: 'listBillPayments', summary: 'Payments to vendors and claimants, newest first (a member sees vendor payments and their own reimbursements; cursor pagination)' })
  @ApiOkResponse({ type: BillPaymentPage })
  @ApiErrors(400)
  @ApiErrorCodes('organization.not_found', 'pagination.cursor')
  listPayments(@Tx() tx: TenantTx, @Query() q: PaymentQuery): Promise<BillPaymentPage> {
    return this.payments.list(tx, q);
  }

  @Post('payments')
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'createBillPayment', summary: 'Pay a vendor (or reimburse a claimant) and allocate to open bills; posts bank credit / AP debit with the realized FX result',
    description: 'Retry with the same Idempotency-Key: one payment is recorded.' })
  @ApiCreatedResponse({ type: BillPaymentDto })
  @ApiErrors(400)
  @ApiErrorCodes('payables.invalid_amount', 'payables.over_allocation', 'payables.bill_repeated', 'payables.not_open', 'payables.wrong_party', 'payables.currency_mismatch', 'payables.bank_account_not_allowed',
    'payables.control_account', 'payables.account_carries_balance', 'payables.account_not_allowed', 'vendor.not_found', 'claimant.not_found', 'bill.not_found', 'account.not_found', 'ledger.fx_accounts_missing',
    // the client's currency at the client's rate (invalid_rate: not positive) or the FX rate of the payment date; a vendor exists before the books are started
    ...DOCUMENT_POSTING_ERRORS, 'ledger.unknown_currency', 'ledger.rate_missing', 'ledger.invalid_rate', 'ledger.rate_out_of_range', 'ledger.invalid_amount', 'ledger.books_not_started', 'payables.idempotency_conflict',
    // dated before the last FX revaluation of a bill it settles, or before a later allocation of a revalued bill
    'payables.before_revaluation', 'payables.before_later_settlement')
  createPayment(@Tx() tx: TenantTx, @Body() dto: CreateBillPaymentDto, @IdempotencyKey(PAYMENT_KEY) key: string | undefined): Promise<BillPaymentDto> {
    return this.payments.create(tx, dto, key);
  }

  @Get('payments/:paymentId')
  @ApiOperation({ operationId: 'getBillPayment', summary: 'One payment with its allocations (a member: a vendor payment or their own reimbursement; another claimant\'s answers 404)' })
  @ApiOkResponse({ type: BillPaymentDto })
  @ApiErrorCodes('organization.not_found', 'bill_payment.not_found')
  getPayment(@Tx() tx: TenantTx, @IdParam('paymentId', 'bill_payment') id: string): Promise<BillPaymentDto> {
    return this.payments.get(tx, id);
  }

  @Post('payments/:paymentId/allocations')
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'allocateBillPayment', summary: 'Allocate what is left of a payment to an open bill of the same vendor',
    description: 'Retry with the same Idempotency-Key: it is allocated once.' })
  @ApiCreatedResponse({ type: BillPaymentDto })
  @ApiErrors(400)
  // the AP account: the one the payment read (payables.account_not_allowed there, never again: settings are never
  // deleted, nor is the standard account 2100, nor does its code change)
  @ApiErrorCodes('payables.invalid_amount', 'payables.over_allocation', 'payables.not_open', 'payables.wrong_party', 'payables.currency_mismatch',
    // posts only an FX result in base amounts, at a date that has an FX rate (the payment's or a later one)
    'bill.not_found', 'ledger.fx_accounts_missing', 'payables.before_revaluation', 'payables.before_later_settlement', ...DOCUMENT_POSTING_ERRORS, 'payables.idempotency_conflict')
  allocate(@Tx() tx: TenantTx, @IdParam('paymentId', 'bill_payment') id: string, @Body() dto: CreateAllocationDto,
    @IdempotencyKey(ALLOCATION_KEY) key: string | undefined): Promise<BillPaymentDto> {
    return this.payments.allocate(tx, id, dto, key);
  }

  @Post('payments/:paymentId/refunds')
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'refundVendorCredit', summary: 'Record credit paid back by a vendor (what is left of a payment): bank debit, AP credit, realized FX at the refund date\'s rate',
    description: 'Retry with the same Idempotency-Key: one refund is recorded.' })
  @ApiCreatedResponse({ type: BillPaymentDto })
  @ApiErrors(400)
  // the AP account: the one the payment read (never payables.account_not_allowed, as for an allocation)
  @ApiErrorCodes('payables.invalid_amount', 'payables.exceeds_credit', 'payables.bank_account_not_allowed', 'payables.control_account', 'account.not_found', 'ledger.fx_accounts_missing',
    // at the client's rate (invalid_rate: not positive) or the FX rate of the refund date (none when the payment was at the
    // client's rate only: rate_missing); its base too large to store is invalid_amount
    ...DOCUMENT_POSTING_ERRORS, 'ledger.rate_missing', 'ledger.invalid_rate', 'ledger.rate_out_of_range', 'ledger.invalid_amount', 'payables.before_revaluation', 'payables.before_later_settlement',
    'payables.idempotency_conflict')
  refund(@Tx() tx: TenantTx, @IdParam('paymentId', 'bill_payment') id: string, @Body() dto: RefundVendorCreditDto,
    @IdempotencyKey(REFUND_KEY) key: string | undefined): Promise<BillPaymentDto> {
    return this.payments.refund(tx, id, dto, key);
  }

  @Post('allocations/:allocationId/reverse')
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'reverseBillAllocation', summary: 'Un-allocate: a new reversing allocation (the bill is open again; the payment has the credit again)',
    description: 'Emits bill_payment.allocation_reversed. The realized FX result is reversed on the account the original result went to (read from its entry); what FX revaluations (or their reversals) '
      + 'dated since the allocation changed of the share comes back on the unrealized FX accounts they moved, with the bill\'s (and the credit\'s) revaluation rows '
      + '(what the allocation\'s window compensation realized of it is unrealized again; a revaluation\'s reversal posted ahead takes its part back off on its own date). Dated before the last FX revaluation of the bill or the payment\'s credit: 422 payables.before_revaluation; dated before a later allocation (or reversal) '
      + 'of a revalued bill, or a later use of a revalued payment credit: 422 payables.before_later_settlement. '
      + 'Retry with the same Idempotency-Key: the replay answers the reversal made first (not 409 payables.allocation_reversed).' })
  @ApiCreatedResponse({ type: BillPaymentDto })
  @ApiErrors(400)
  // the AP account: the one the payment read (never payables.account_not_allowed, as for an allocation)
  @ApiErrorCodes('payables.allocation_reversed', 'ledger.fx_accounts_missing', 'payables.before_revaluation', 'payables.before_later_settlement', ...DOCUMENT_POSTING_ERRORS,
    'payables.idempotency_conflict')
  reverseAllocation(@Tx() tx: TenantTx, @IdParam('allocationId', 'bill_allocation') id: string, @Body() dto: ReverseAllocationDto,
    @IdempotencyKey(REVERSAL_KEY) key: string | undefined): Promise<BillPaymentDto> {
    return this.payments.reverseAllocation(tx, id, dto, key);
  }

  // ---------------------------------------------------------------- aging
  @Get('aging')
  @ApiOperation({ operationId: 'getApAging', summary: 'AP aging as of a date per party and in total, in the base currency (a member: vendors and their own expense claims only; ?buckets=15,30,60; CSV with ?format=csv)' })
  @ApiOkJsonOrCsv(AgingReportDto)
  @ApiErrors(400)
  @ApiErrorCodes('payables.buckets', 'ledger.books_not_started', 'payables.account_not_allowed')
  async aging(@Tx() tx: TenantTx, @Query() q: AgingQuery, @Req() req: FastifyRequest, @Res({ passthrough: true }) res: FastifyReply): Promise<AgingReportDto | string> {
    const r = await this.payments.aging(tx, q.asOf, q.buckets);
    if (!wantsCsv(req, q.format)) return r;
    return sendCsv(res, `ap-aging-${r.asOf}.csv`, toCsv(['party_type', 'party_id', 'party_name', ...r.buckets, 'total'], [
      ...r.rows.map((row) => [row.partyType, row.partyId, row.partyName, ...r.buckets.map((b) => row.buckets[b]), row.total]),
      ['', '', 'Total', ...r.buckets.map((b) => r.totals[b]), r.total],
    ]));
  }
}
