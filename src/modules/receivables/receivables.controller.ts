import { ApiKeyScopes } from '../../platform/auth/api-key-scopes.js';
import { Body, Controller, Delete, Get, HttpCode, Post, Put, Query, Req, Res } from '@nestjs/common';
import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { BOOKKEEPER_ROLES, ADMIN_ROLES } from '../../platform/auth/principal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import { IdParam } from '../../platform/http/id-param.js';
import { IdempotencyKey } from '../../platform/http/idempotency-key.js';
import { ApiErrors, ApiOkJsonOrCsv, CONTENT_DISPOSITION } from '../../platform/http/openapi.js';
import { OrgRoute, RequireRole, RequiresFeature, Tx, WritesRequireSubscription } from '../../platform/http/tenant.js';
import { OrganizationsService } from '../organizations/organizations.service.js';
import { sendCsv, toCsv, wantsCsv } from '../ledger/csv.js';
import { DOCUMENT_POSTING_ERRORS, REVERSAL_POSTING_ERRORS } from '../ledger/ledger.errors.js';
import { AgingService } from './aging.service.js';
import { CustomersService } from './customers.service.js';
import { renderInvoicePdf } from './invoice-pdf.js';
import { InvoicesService } from './invoices.service.js';
import { PaymentsService } from './payments.service.js';
import { ReceivablesErrors } from './receivables.errors.js';
import { RevenueRecognitionService } from './revenue-recognition.service.js';
import { Clock, today } from '../../platform/clock/clock.js';
import {
  ArAgingQuery, ArAgingReportDto, AllocatePaymentDto, CreateCreditNoteDto, CreateCustomerDto, CreateInvoiceDto, CreatePaymentDto, CustomerDto,
  CustomerPage, CustomerQuery, InvoiceDto, InvoicePage, InvoiceQuery, IssueInvoiceDto, PaymentDto, PaymentPage, CustomerPaymentQuery,
  ReceivablesSettingsDto, RefundCustomerCreditDto, ReverseReceivableAllocationDto, RevenueRecognitionRunDto, RevenueScheduleDto, RevenueScheduleQuery, RunRevenueRecognitionDto, SetReceivablesSettingsDto, UpdateCustomerDto, UpdateInvoiceDto, VoidInvoiceDto,
} from './receivables.dto.js';

/** A draft's content (create and update; a draft exists only once the books are started: only the create reads them first). */
const DOCUMENT_ERRORS = ['receivables.unknown_customer', 'receivables.customer_archived', 'receivables.unknown_tax_code', 'receivables.account_not_postable',
  'receivables.total_mismatch', 'receivables.invalid_amount', 'ledger.unknown_currency', 'receivables.due_before_invoice'] as const;
// the posting codes each operation can answer (ledger.errors.ts: what a posting the service builds cannot be refused with)
/** Issue: the client's rate ("0": invalid_rate; too large for the total's base: invalid_amount) or the FX rate of the invoice
 * date (none: rate_missing); per-line rounding of a foreign invoice needs the rounding account. The invoice is looked up
 * first (404 invoice.not_found), and a draft exists only once the books are started, so never books_not_started. */
const ISSUE_POSTING_ERRORS = [...DOCUMENT_POSTING_ERRORS, 'ledger.rate_missing', 'ledger.invalid_rate', 'ledger.rate_out_of_range', 'ledger.invalid_amount', 'ledger.rounding_account_missing'] as const;
/** What a retry with an Idempotency-Key answers (keys are unique per organization among payments, refunds, credit notes, and allocations with their reversals). */
const PAYMENT_KEY = 'Retry-safe: the same key with the same request answers 201 with the payment recorded first (as it is now) and records nothing; '
  + 'with another request of the same kind, 409 receivables.idempotency_conflict (keys are unique per organization within each kind of write). 1 to 200 characters';
const REFUND_KEY = 'Retry-safe: the same key with the same request (payment and body) answers 201 with the payment (as it is now) and refunds '
  + 'nothing again; with another request of the same kind, 409 receivables.idempotency_conflict (keys are unique per organization within each kind of write). 1 to 200 characters';
const CREDIT_NOTE_KEY = 'Retry-safe: the same key with the same request (invoice and body) answers 201 with the credit note created first (as it is now) and credits '
  + 'nothing again; with another request of the same kind, 409 receivables.idempotency_conflict (keys are unique per organization within each kind of write). 1 to 200 characters';
/** An allocation's keys and a reversal's are one set (both are allocation rows). */
const ALLOCATION_KEY = 'Retry-safe: the same key with the same request (payment and body) answers 201 with the payment (as it is now) and '
  + 'allocates nothing again; with another allocation or reversal, 409 receivables.idempotency_conflict (keys are unique per organization within each kind of write). 1 to 200 characters';
const REVERSAL_KEY = 'Retry-safe: the same key with the same request (allocation and body) answers 201 with the payment (as it is now) and '
  + 'reverses nothing again (not 409 receivables.already_reversed); with another reversal or allocation, 409 receivables.idempotency_conflict (keys are unique per organization within each kind of write). 1 to 200 characters';
/** An allocation's FX entry is at the payment's rate (with the base amounts it moves): no rate of its date is looked up. */
const ALLOCATION_POSTING_ERRORS = DOCUMENT_POSTING_ERRORS;

@ApiTags('receivables')
@OrgRoute()
@ApiKeyScopes({ read: 'receivables:read', write: 'receivables:write' })
@WritesRequireSubscription('omnizen')
@Controller('v1/orgs/:orgId/receivables')
export class ReceivablesSettingsController {
  constructor(private readonly customers: CustomersService) {}

  @Get('settings')
  @ApiOperation({ operationId: 'getReceivablesSettings', summary: 'The AR control and deferred revenue accounts' })
  @ApiOkResponse({ type: ReceivablesSettingsDto })
  @ApiErrorCodes('receivables.settings_missing')
  settings(@Tx() tx: TenantTx): Promise<ReceivablesSettingsDto> {
    return this.customers.settings(tx, { posting: false });
  }

  @Put('settings')
  @RequiresFeature('omnizen', 'basic_invoicing')
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'setReceivablesSettings', summary: 'Set the AR control and deferred revenue accounts (owner, admin); the AR account is replaced only while it carries nothing, and by an account that carries nothing' })
  @ApiOkResponse({ type: ReceivablesSettingsDto })
  @ApiErrorCodes('receivables.account_not_postable', 'receivables.control_account', 'receivables.control_account_in_use', 'receivables.account_carries_balance')
  setSettings(@Tx() tx: TenantTx, @Body() dto: SetReceivablesSettingsDto): Promise<ReceivablesSettingsDto> {
    return this.customers.setSettings(tx, dto);
  }
}

@ApiTags('receivables')
@OrgRoute()
@ApiKeyScopes({ read: 'receivables:read', write: 'receivables:write' })
@WritesRequireSubscription('omnizen')
@Controller('v1/orgs/:orgId/receivables/customers')
export class CustomersController {
  constructor(private readonly customers: CustomersService) {}

  @Get()
  @ApiOperation({ operationId: 'listCustomers', summary: 'Customers by name; search by name or e-mail; cursor pagination' })
  @ApiOkResponse({ type: CustomerPage })
  @ApiErrorCodes('organization.not_found', 'pagination.cursor')
  list(@Tx() tx: TenantTx, @Query() q: CustomerQuery): Promise<CustomerPage> {
    return this.customers.list(tx, q);
  }

  @Post()
  @RequiresFeature('omnizen', 'basic_invoicing')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'createCustomer', summary: 'Create a customer (owner, admin, accountant)' })
  @ApiCreatedResponse({ type: CustomerDto })
  @ApiErrorCodes('ledger.unknown_currency', 'receivables.invalid_amount')
  create(@Tx() tx: TenantTx, @Body() dto: CreateCustomerDto): Promise<CustomerDto> {
    return this.customers.create(tx, dto);
  }

  @Get(':customerId')
  @ApiOperation({ operationId: 'getCustomer', summary: 'One customer' })
  @ApiOkResponse({ type: CustomerDto })
  @ApiErrorCodes('organization.not_found', 'customer.not_found')
  get(@Tx() tx: TenantTx, @IdParam('customerId', 'customer') id: string): Promise<CustomerDto> {
    return this.customers.get(tx, id);
  }

  @Put(':customerId')
  @RequiresFeature('omnizen', 'basic_invoicing')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'updateCustomer', summary: 'Change a customer (fields left out keep their value)' })
  @ApiOkResponse({ type: CustomerDto })
  @ApiErrorCodes('ledger.unknown_currency', 'receivables.invalid_amount')
  update(@Tx() tx: TenantTx, @IdParam('customerId', 'customer') id: string, @Body() dto: UpdateCustomerDto): Promise<CustomerDto> {
    return this.customers.update(tx, id, dto);
  }

  @Post(':customerId/archive')
  @HttpCode(200)
  @RequiresFeature('omnizen', 'basic_invoicing')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'archiveCustomer', summary: 'Archive a customer (customers are never deleted)' })
  @ApiOkResponse({ type: CustomerDto })
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'billing.feature_not_in_plan', 'billing.subscription_inactive', 'customer.not_found')
  archive(@Tx() tx: TenantTx, @IdParam('customerId', 'customer') id: string): Promise<CustomerDto> {
    return this.customers.archive(tx, id);
  }
}

@ApiTags('receivables')
@OrgRoute()
@ApiKeyScopes({ read: 'receivables:read', write: 'receivables:write' })
@WritesRequireSubscription('omnizen')
@Controller('v1/orgs/:orgId/receivables/invoices')
export class InvoicesController {
  constructor(
    private readonly invoices: InvoicesService,
    private readonly customers: CustomersService,
    private readonly organizations: OrganizationsService,
  ) {}

  @Get()
  @ApiOperation({ operationId: 'listInvoices', summary: 'Invoices and credit notes, newest first; filter by customer, status, kind' })
  @ApiOkResponse({ type: InvoicePage })
  @ApiErrorCodes('organization.not_found', 'pagination.cursor')
  list(@Tx() tx: TenantTx, @Query() q: InvoiceQuery): Promise<InvoicePage> {
    return this.invoices.list(tx, q);
  }

  @Post()
  @RequiresFeature('omnizen', 'basic_invoicing')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'createInvoice', summary: 'Create a draft invoice; totals are computed by the server (a differing client total is a 400)' })
  @ApiCreatedResponse({ type: InvoiceDto })
  @ApiErrors(402)
  @ApiErrorCodes(...DOCUMENT_ERRORS, 'ledger.books_not_started')
  create(@Tx() tx: TenantTx, @Body() dto: CreateInvoiceDto): Promise<InvoiceDto> {
    return this.invoices.create(tx, dto);
  }

  @Get(':invoiceId')
  @ApiOperation({ operationId: 'getInvoice', summary: 'One invoice or credit note with its lines, taxes, open amount and overdue flag' })
  @ApiOkResponse({ type: InvoiceDto })
  @ApiErrorCodes('organization.not_found', 'invoice.not_found')
  get(@Tx() tx: TenantTx, @IdParam('invoiceId', 'invoice') id: string): Promise<InvoiceDto> {
    return this.invoices.get(tx, id);
  }

  @Put(':invoiceId')
  @RequiresFeature('omnizen', 'basic_invoicing')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'updateInvoice', summary: 'Replace a draft invoice (issued invoices are immutable)' })
  @ApiOkResponse({ type: InvoiceDto })
  @ApiErrorCodes(...DOCUMENT_ERRORS, 'receivables.not_draft')
  update(@Tx() tx: TenantTx, @IdParam('invoiceId', 'invoice') id: string, @Body() dto: UpdateInvoiceDto): Promise<InvoiceDto> {
    return this.invoices.update(tx, id, dto);
  }

  @Delete(':invoiceId')
  @HttpCode(204)
  @RequiresFeature('omnizen', 'basic_invoicing')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'deleteInvoice', summary: 'Delete a draft invoice' })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiErrorCodes('receivables.not_draft')
  async delete(@Tx() tx: TenantTx, @IdParam('invoiceId', 'invoice') id: string): Promise<void> {
    await this.invoices.delete(tx, id);
  }

  @Post(':invoiceId/issue')
  @HttpCode(200)
  @RequiresFeature('omnizen', 'basic_invoicing')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'postInvoice', summary: 'Issue a draft: assign the next number of its series and post it to the ledger (AR debit, revenue and output tax credits)',
    description: 'An invoice in another currency than the base currency posts its AR and revenue lines in its currency and its output tax in the base currency, '
      + 'at the invoice\'s rate (tax is owed in the base currency: the tax account and the VAT report agree, and FX revaluations leave the tax alone); a credit note likewise. '
      + 'An invoice of 0.00 (lines discounted 100 %, or priced 0.00) is issued paid, without a journal entry (entryId null; events invoice.issued and invoice.paid), '
      + 'its date still in an open fiscal period (ledger.period_closed, ledger.no_fiscal_year). '
      + 'A customer with a credit limit (base currency; none: unlimited): what it owes once the invoice is issued (its open invoices less its unallocated '
      + 'payments, as the aging totals them, plus the invoice at its rate) may reach the limit but not exceed it: 422 receivables.credit_limit_exceeded, '
      + 'nothing written, the message and details naming the limit and the resulting balance. overrideCreditLimit: true issues it anyway (a person with the role owner or admin: '
      + '403 forbidden.role for another role or an API key), recorded in the audit row (after.creditLimitOverride). An invoice of 0.00 is never refused by the limit. '
      + 'A draft whose customer was archived since is not issued (422 receivables.customer_archived): archiving stops new invoices (the draft can still be deleted).' })
  @ApiOkResponse({ type: InvoiceDto })
  @ApiErrors(402)
  @ApiErrorCodes(...ISSUE_POSTING_ERRORS, 'receivables.not_draft', 'receivables.customer_archived', 'receivables.settings_missing', 'receivables.deferred_account_missing', 'receivables.credit_limit_exceeded')
  issue(@Tx() tx: TenantTx, @IdParam('invoiceId', 'invoice') id: string, @Body() dto: IssueInvoiceDto): Promise<InvoiceDto> {
    return this.invoices.issue(tx, id, dto);
  }

  @Post(':invoiceId/void')
  @HttpCode(200)
  @RequiresFeature('omnizen', 'basic_invoicing')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'reverseInvoice', summary: 'Void an issued invoice: post the reversal (refused while payments or credit notes are allocated to it)',
    description: 'What is allocated counts net of reversed allocations: an invoice whose payment allocations were all reversed is voided as one never paid '
      + '(409 receivables.has_allocations otherwise), dated no earlier than its last allocation or reversal (400 validation_failed). '
      + 'An invoice of 0.00 posted nothing: it is voided without a reversal (voidEntryId null), its void date still in an open fiscal period. '
      + 'An invoice FX revaluations revalued: what they added to AR (or took off) is taken off too, against the unrealized FX account, in an entry of its own; '
      + 'the void is dated no earlier than its last revaluation (422 receivables.before_revaluation; the default date is the latest of the invoice date, its last allocation or reversal and its last revaluation).' })
  @ApiOkResponse({ type: InvoiceDto })
  // Never ledger.fx_accounts_missing: a revaluation needs the FX accounts, and the ledger settings never unset one (null leaves it as it is)
  @ApiErrorCodes(...REVERSAL_POSTING_ERRORS, 'receivables.invalid_status', 'receivables.has_allocations', 'receivables.before_revaluation')
  void(@Tx() tx: TenantTx, @IdParam('invoiceId', 'invoice') id: string, @Body() dto: VoidInvoiceDto): Promise<InvoiceDto> {
    return this.invoices.void(tx, id, dto);
  }

  @Post(':invoiceId/credit-notes')
  @RequiresFeature('omnizen', 'basic_invoicing')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'createCreditNote', summary: 'Credit an issued invoice (whole, or some lines): the credit note is issued and posted at once and reduces what is open',
    description: 'Lines that come to 0.00 (discounted 100 %) credit nothing: a credit note of 0.00 is refused (422 receivables.nothing_to_credit). '
      + 'Of an invoice FX revaluations revalued it takes what the invoice carries (at the last revaluation\'s rate, all of it when it credits what is open), as an allocation does: '
      + 'the difference to its own base at the invoice\'s rate is the credited share\'s revaluation, taken back off the unrealized FX account (no cash moved: nothing realized); dated before the last revaluation it is refused (422 receivables.before_revaluation), '
      + 'as is one dated before a later allocation of a revalued invoice (422 receivables.before_later_settlement). Retry with the same Idempotency-Key: one credit note is created.' })
  @ApiCreatedResponse({ type: InvoiceDto })
  // an issued invoice had the settings, which are never unset; a line still deferred keeps the deferred revenue account
  // in the settings (it carries its balance: receivables.control_account_in_use): never settings_missing nor deferred_account_missing.
  // A revalued invoice's share goes back to the unrealized FX accounts, which its revaluation needed and the settings never unset: never fx_accounts_missing
  @ApiErrorCodes(...DOCUMENT_POSTING_ERRORS, 'ledger.rounding_account_missing', 'receivables.invalid_status', 'receivables.credit_lines', 'receivables.nothing_to_credit',
    'receivables.before_revaluation', 'receivables.before_later_settlement', 'receivables.idempotency_conflict')
  creditNote(@Tx() tx: TenantTx, @IdParam('invoiceId', 'invoice') id: string, @Body() dto: CreateCreditNoteDto,
    @IdempotencyKey(CREDIT_NOTE_KEY) key: string | undefined): Promise<InvoiceDto> {
    return this.invoices.createCreditNote(tx, id, dto, key);
  }

  @Get(':invoiceId/pdf')
  @ApiOperation({ operationId: 'getInvoicePdf', summary: 'The issued invoice as a PDF' })
  // the PDF, or an error in the JSON error shape (a draft: 409): each response declares its own content type
  @ApiOkResponse({ description: 'The PDF', content: { 'application/pdf': { schema: { type: 'string', format: 'binary' } } },
    headers: { 'Content-Disposition': CONTENT_DISPOSITION('inline; filename="INV-0001.pdf"') } })
  @ApiErrorCodes('receivables.invalid_status')
  async pdf(@Tx() tx: TenantTx, @IdParam('invoiceId', 'invoice') id: string, @Res({ passthrough: true }) res: FastifyReply): Promise<Buffer> {
    const invoice = await this.invoices.get(tx, id);
    if (invoice.status === 'draft') {
      throw ReceivablesErrors.error('receivables.invalid_status', 'a draft has no number yet: issue it first');
    }
    const [org, customer] = await Promise.all([this.organizations.get(tx), this.customers.get(tx, invoice.customerId)]);
    const pdf = await renderInvoicePdf(org, customer, invoice);
    res.header('Content-Type', 'application/pdf');
    res.header('Content-Disposition', `inline; filename="${invoice.number}.pdf"`);
    return pdf;
  }
}

@ApiTags('receivables')
@OrgRoute()
@ApiKeyScopes({ read: 'receivables:read', write: 'receivables:write' })
@WritesRequireSubscription('omnizen')
@Controller('v1/orgs/:orgId/receivables')
export class PaymentsController {
  constructor(
    private readonly payments: PaymentsService,
    private readonly agingService: AgingService,
  ) {}

  @Get('payments')
  @ApiOperation({ operationId: 'listPayments', summary: 'Payments received, newest first, with their allocations' })
  @ApiOkResponse({ type: PaymentPage })
  @ApiErrorCodes('organization.not_found', 'pagination.cursor')
  list(@Tx() tx: TenantTx, @Query() q: CustomerPaymentQuery): Promise<PaymentPage> {
    return this.payments.list(tx, q);
  }

  @Post('payments')
  @RequiresFeature('omnizen', 'basic_invoicing')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'createPayment', summary: 'Record a payment received and allocate it to open invoices of the customer (the rest is customer credit)',
    description: 'An archived customer\'s payment is recorded too: archiving stops new invoices, not the settlement of open ones. Retry with the same Idempotency-Key: one payment is recorded.' })
  @ApiCreatedResponse({ type: PaymentDto })
  @ApiErrors(402)
  // the client's currency and rate, as an invoice's issue (no rounding: every base amount is given, the deposit's at the payment's rate)
  @ApiErrorCodes(...DOCUMENT_POSTING_ERRORS, 'ledger.unknown_currency', 'ledger.rate_missing', 'ledger.invalid_rate', 'ledger.rate_out_of_range', 'ledger.invalid_amount',
    'receivables.unknown_customer', 'receivables.account_not_postable', 'receivables.control_account', 'receivables.invalid_amount',
    'receivables.over_allocation', 'receivables.exceeds_payment', 'receivables.wrong_customer', 'receivables.currency_mismatch', 'receivables.invalid_status',
    'receivables.settings_missing', 'receivables.fx_accounts_missing', 'invoice.not_found', 'receivables.idempotency_conflict', 'receivables.before_revaluation', 'receivables.before_later_settlement')
  create(@Tx() tx: TenantTx, @Body() dto: CreatePaymentDto, @IdempotencyKey(PAYMENT_KEY) key: string | undefined): Promise<PaymentDto> {
    return this.payments.create(tx, dto, key);
  }

  @Get('payments/:customerPaymentId')
  @ApiOperation({ operationId: 'getPayment', summary: 'One payment with its allocations and unallocated remainder' })
  @ApiOkResponse({ type: PaymentDto })
  @ApiErrorCodes('organization.not_found', 'payment.not_found')
  get(@Tx() tx: TenantTx, @IdParam('customerPaymentId', 'payment') id: string): Promise<PaymentDto> {
    return this.payments.get(tx, id);
  }

  @Post('payments/:customerPaymentId/allocations')
  @RequiresFeature('omnizen', 'basic_invoicing')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'createAllocation', summary: 'Allocate a payment\'s unallocated remainder (customer credit) to open invoices',
    description: 'Its date must be in an open fiscal period (ledger.period_closed, ledger.no_fiscal_year), also when no FX entry is posted: it changes what was open as of it. '
      + 'Emits payment.allocated for each allocation (and invoice.paid for an invoice it pays in full). Retry with the same Idempotency-Key: it is allocated once.' })
  @ApiCreatedResponse({ type: PaymentDto })
  // a payment is recorded only with the receivables settings, which are never unset: never settings_missing (nor on its refunds and reversals)
  @ApiErrorCodes(...ALLOCATION_POSTING_ERRORS, 'receivables.invalid_amount', 'receivables.over_allocation', 'receivables.exceeds_payment', 'receivables.wrong_customer',
    'receivables.currency_mismatch', 'receivables.invalid_status', 'receivables.fx_accounts_missing', 'invoice.not_found', 'receivables.before_revaluation', 'receivables.before_later_settlement',
    'receivables.idempotency_conflict')
  allocate(@Tx() tx: TenantTx, @IdParam('customerPaymentId', 'payment') id: string, @Body() dto: AllocatePaymentDto,
    @IdempotencyKey(ALLOCATION_KEY) key: string | undefined): Promise<PaymentDto> {
    return this.payments.allocate(tx, id, dto, key);
  }

  @Post('payments/:customerPaymentId/refunds')
  @RequiresFeature('omnizen', 'basic_invoicing')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'refundCustomerCredit', summary: 'Pay customer credit (a payment\'s unallocated remainder) back: AR debit, bank credit, realized FX at the refund date\'s rate' })
  @ApiCreatedResponse({ type: PaymentDto })
  // the client's rate of the refund date, as a payment's (its currency is the payment's)
  @ApiErrorCodes(...DOCUMENT_POSTING_ERRORS, 'ledger.rate_missing', 'ledger.invalid_rate', 'ledger.rate_out_of_range', 'ledger.invalid_amount', 'receivables.invalid_amount', 'receivables.exceeds_credit',
    'receivables.account_not_postable', 'receivables.control_account', 'receivables.fx_accounts_missing', 'receivables.idempotency_conflict', 'receivables.before_revaluation', 'receivables.before_later_settlement')
  refund(@Tx() tx: TenantTx, @IdParam('customerPaymentId', 'payment') id: string, @Body() dto: RefundCustomerCreditDto,
    @IdempotencyKey(REFUND_KEY) key: string | undefined): Promise<PaymentDto> {
    return this.payments.refund(tx, id, dto, key);
  }

  @Post('allocations/:receivableAllocationId/reverse')
  @RequiresFeature('omnizen', 'basic_invoicing')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'reverseAllocation', summary: 'Undo an allocation (e.g. a bounced payment): a new reversing allocation row; the invoice is open again',
    description: 'Its date must be in an open fiscal period (ledger.period_closed, ledger.no_fiscal_year), also when no FX entry is posted. Emits payment.allocation_reversed. '
      + 'The realized FX result is reversed on the account the original result went to (read from its entry); what FX revaluations (or their reversals) dated since the allocation changed of the share '
      + 'comes back on the unrealized FX accounts they moved, with the invoice\'s revaluation rows (what the allocation\'s window compensation realized of it is unrealized again; a revaluation\'s reversal posted ahead takes its part back off on its own date). Dated before the last FX revaluation of the invoice or the payment\'s credit: 422 receivables.before_revaluation; '
      + 'dated before a later allocation (or reversal) of a revalued invoice, or a later use of a revalued payment credit: 422 receivables.before_later_settlement. '
      + 'Retry with the same Idempotency-Key: the replay answers the reversal made first (not 409 receivables.already_reversed).' })
  @ApiCreatedResponse({ type: PaymentDto })
  @ApiErrorCodes(...ALLOCATION_POSTING_ERRORS, 'receivables.already_reversed', 'receivables.invalid_status', 'receivables.fx_accounts_missing', 'receivables.before_revaluation',
    'receivables.before_later_settlement', 'receivables.idempotency_conflict')
  reverse(@Tx() tx: TenantTx, @IdParam('receivableAllocationId', 'allocation') id: string, @Body() dto: ReverseReceivableAllocationDto,
    @IdempotencyKey(REVERSAL_KEY) key: string | undefined): Promise<PaymentDto> {
    return this.payments.reverseAllocation(tx, id, dto, key);
  }

  @Get('aging')
  @ApiOperation({ operationId: 'getArAging', summary: 'AR aging as of a date per customer (a page of them, by name) and in total, base currency (CSV with ?format=csv: every customer)' })
  @ApiOkJsonOrCsv(ArAgingReportDto)
  @ApiErrorCodes('receivables.buckets', 'ledger.books_not_started', 'pagination.cursor')
  async aging(@Tx() tx: TenantTx, @Query() q: ArAgingQuery, @Req() req: FastifyRequest, @Res({ passthrough: true }) res: FastifyReply): Promise<ArAgingReportDto | string> {
    const csv = wantsCsv(req, q.format);
    const report = await this.agingService.report(tx, q, csv);
    if (!csv) return report;
    return sendCsv(res, `ar-aging-${report.asOf}.csv`, toCsv(
      ['customer_id', 'customer', ...report.bucketLabels, 'total'],
      [...report.rows.map((r) => [r.partyId, r.partyName, ...r.buckets.map((b) => b.amount), r.total]), ['', 'Total', ...report.totals.map((b) => b.amount), report.total]],
    ));
  }
}

@ApiTags('receivables')
@OrgRoute()
@ApiKeyScopes({ read: 'receivables:read', write: 'receivables:write' })
@WritesRequireSubscription('omnizen')
@Controller('v1/orgs/:orgId/receivables')
export class RevenueRecognitionController {
  constructor(
    private readonly recognition: RevenueRecognitionService,
    private readonly clock: Clock,
  ) {}

  @Post('revenue-recognition/runs')
  @HttpCode(200)
  @RequiresFeature('omnizen', 'full_accounting')
  @RequireRole(...BOOKKEEPER_ROLES)
  @ApiOperation({ operationId: 'postRevenueRecognition', summary: 'Recognize deferred revenue up to a day (straight-line by days); once per organization and day, a repeat is a replay; never into a closed period' })
  @ApiOkResponse({ type: RevenueRecognitionRunDto })
  // dated by the run; a closed period moves the posting to the next open one (none: ledger.period_closed, never no_fiscal_year).
  // A line to recognize was issued with the deferred revenue account, which stays in the settings while it carries the line: never deferred_account_missing
  @ApiErrorCodes('ledger.period_closed', 'ledger.account_not_postable', 'ledger.currency_not_allowed', 'receivables.settings_missing', 'receivables.recognition_date_future')
  run(@Tx() tx: TenantTx, @Body() dto: RunRevenueRecognitionDto): Promise<RevenueRecognitionRunDto> {
    return this.recognition.run(tx, dto.date ?? today(this.clock));
  }

  @Get('invoices/:invoiceId/revenue-schedule')
  @ApiOperation({ operationId: 'getRevenueSchedule', summary: 'Per invoice line with a service period: scheduled, recognized and still deferred revenue at a date' })
  @ApiOkResponse({ type: RevenueScheduleDto })
  @ApiErrorCodes('organization.not_found', 'invoice.not_found')
  schedule(@Tx() tx: TenantTx, @IdParam('invoiceId', 'invoice') id: string, @Query() q: RevenueScheduleQuery): Promise<RevenueScheduleDto> {
    return this.recognition.schedule(tx, id, q.asOf);
  }
}
