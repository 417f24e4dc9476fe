import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import {
  ArrayMaxSize, ArrayMinSize, IsBoolean, IsIn, IsInt, IsOptional, IsString, IsUUID, Length, Matches, Max, Min,
} from 'class-validator';
import { CalendarDate } from '../../platform/http/calendar-date.js';
import { IsEmailAddress } from '../auth/email-address.validator.js';
import { PAYMENT_METHODS, Amount, Currency, Percent, Quantity, Rate } from '../../platform/http/money.js';
import { NestedList } from '../../platform/http/nested-list.js';
import { RATE_OVERRIDE_DOC } from '../ledger/client-rate.js';
import { PageInfo } from '../../platform/http/openapi.js';
import { PageQuery } from '../../platform/http/pagination.js';

export const INVOICE_STATUSES = ['draft', 'issued', 'partially_paid', 'paid', 'void'] as const;

// ---------------------------------------------------------------- settings
@ApiSchema({ description: 'The accounts receivables post to' })
export class ReceivablesSettingsDto {
  @ApiProperty({ format: 'uuid', description: 'AR control account: invoices debit it, payments credit it', example: '3f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0' }) arAccountId: string;
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'Deferred revenue account (lines with a service period); null when not set', example: null }) deferredRevenueAccountId: string | null;
}

@ApiSchema({ description: 'Sets the accounts receivables post to' })
export class SetReceivablesSettingsDto {
  @ApiProperty({ format: 'uuid', description: 'AR control account (an asset account, not a group). Unless it is the AR control account already, it must carry no balance (422 receivables.account_carries_balance, which says how to bring over open AR from former books: on a separate account, not this one)', example: '3f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0' }) @IsUUID() arAccountId: string;
  @ApiPropertyOptional({ format: 'uuid', description: 'Deferred revenue account (a liability account) for lines with a service period', example: '4a1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0' })
  @IsOptional() @IsUUID() deferredRevenueAccountId?: string;
}

// ---------------------------------------------------------------- customers
@ApiSchema({ description: 'A customer (party) to invoice; contact fields are personal data kept only here' })
export class CreateCustomerDto {
  @ApiProperty({ description: 'Name of the customer (1 to 200 characters, trimmed)', example: 'Globex GmbH' }) @Transform(({ value }) => (typeof value === 'string' ? value.trim() : value)) @IsString() @Length(1, 200) name: string;
  @ApiPropertyOptional({ description: 'Contact person (personal data)', example: 'Hank Scorpio' }) @IsOptional() @IsString() @Length(0, 200) contactPerson?: string;
  @ApiPropertyOptional({ description: 'Billing e-mail (personal data)', example: 'billing@globex.example' }) @IsOptional() @IsEmailAddress() @Length(0, 320) email?: string;
  @ApiPropertyOptional({ description: 'Phone (personal data)', example: '+49 30 1234567' }) @IsOptional() @IsString() @Length(0, 50) phone?: string;
  @ApiPropertyOptional({ description: 'Tax id (VAT number)', example: 'DE123456789' }) @IsOptional() @IsString() @Length(0, 50) taxId?: string;
  @ApiPropertyOptional({ description: 'Billing address, lines separated by newlines', example: 'Friedrichstr. 1\n10117 Berlin' }) @IsOptional() @IsString() @Length(0, 1000) billingAddress?: string;
  @ApiPropertyOptional({ description: 'Default currency of the customer\'s invoices (default: the base currency)', example: 'EUR' })
  @IsOptional() @Currency('defaultCurrency') defaultCurrency?: string;
  @ApiPropertyOptional({ description: 'Payment terms in days: the due date is the invoice date plus this', example: 30, default: 30 })
  @IsOptional() @IsInt() @Min(0) @Max(3650) paymentTermsDays?: number;
  @ApiPropertyOptional({ type: String, nullable: true, description: 'Credit limit in the base currency (once the books are started, at most its minor units of decimals); absent or null: no limit. An invoice is not issued above it (receivables.credit_limit_exceeded) unless an owner or admin overrides it', example: '10000.00' }) @IsOptional() @Amount('creditLimit') creditLimit?: string | null;
}

@ApiSchema({ description: 'Changes to a customer; fields left out keep their value' })
export class UpdateCustomerDto {
  @ApiPropertyOptional({ description: 'Name of the customer (1 to 200 characters, trimmed)', example: 'Globex AG' }) @IsOptional() @Transform(({ value }) => (typeof value === 'string' ? value.trim() : value)) @IsString() @Length(1, 200) name?: string;
  @ApiPropertyOptional({ description: 'Contact person (personal data)', example: 'Hank Scorpio' }) @IsOptional() @IsString() @Length(0, 200) contactPerson?: string;
  @ApiPropertyOptional({ description: 'Billing e-mail (personal data)', example: 'ap@globex.example' }) @IsOptional() @IsEmailAddress() @Length(0, 320) email?: string;
  @ApiPropertyOptional({ description: 'Phone (personal data)', example: '+49 30 7654321' }) @IsOptional() @IsString() @Length(0, 50) phone?: string;
  @ApiPropertyOptional({ description: 'Tax id (VAT number)', example: 'DE123456789' }) @IsOptional() @IsString() @Length(0, 50) taxId?: string;
  @ApiPropertyOptional({ description: 'Billing address', example: 'Unter den Linden 5\n10117 Berlin' }) @IsOptional() @IsString() @Length(0, 1000) billingAddress?: string;
  @ApiPropertyOptional({ description: 'Default currency', example: 'EUR' }) @IsOptional() @Currency('defaultCurrency') defaultCurrency?: string;
  @ApiPropertyOptional({ description: 'Payment terms in days', example: 14 }) @IsOptional() @IsInt() @Min(0) @Max(3650) paymentTermsDays?: number;
  @ApiPropertyOptional({ type: String, nullable: true, description: 'Credit limit in the base currency (once the books are started, at most its minor units of decimals). Checked when an invoice is issued; null removes the limit (absent: kept)', example: '5000.00' }) @IsOptional() @Amount('creditLimit') creditLimit?: string | null;
}

@ApiSchema({ description: 'A customer' })
export class CustomerDto {
  @ApiProperty({ format: 'uuid', description: 'Customer id', example: '0b8f3f7e-3c1e-4c55-9d8a-5a1f7e2b9c01' }) id: string;
  @ApiProperty({ description: 'Name', example: 'Globex GmbH' }) name: string;
  @ApiProperty({ type: String, nullable: true, description: 'Contact person', example: 'Hank Scorpio' }) contactPerson: string | null;
  @ApiProperty({ type: String, nullable: true, description: 'Billing e-mail', example: 'billing@globex.example' }) email: string | null;
  @ApiProperty({ type: String, nullable: true, description: 'Phone', example: '+49 30 1234567' }) phone: string | null;
  @ApiProperty({ type: String, nullable: true, description: 'Tax id', example: 'DE123456789' }) taxId: string | null;
  @ApiProperty({ type: String, nullable: true, description: 'Billing address', example: 'Friedrichstr. 1\n10117 Berlin' }) billingAddress: string | null;
  @ApiProperty({ type: String, nullable: true, description: 'Default currency (null: the base currency)', example: 'EUR' }) defaultCurrency: string | null;
  @ApiProperty({ description: 'Payment terms in days', example: 30 }) paymentTermsDays: number;
  @ApiProperty({ type: String, nullable: true, description: 'Credit limit in the base currency, in its minor units (a limit entered before the books were started: as entered); null: no limit. An invoice that would take what the customer owes (open invoices less customer credit) above it is not issued unless an owner or admin overrides it', example: '10000.00' }) creditLimit: string | null;
  @ApiProperty({ type: String, nullable: true, format: 'date-time', description: 'When the customer was archived; null when active', example: null }) archivedAt: string | null;
  @ApiProperty({ format: 'date-time', description: 'Created at', example: '2026-01-02T10:00:00.000Z' }) createdAt: string;
  @ApiProperty({ format: 'date-time', description: 'Last changed at', example: '2026-01-02T10:00:00.000Z' }) updatedAt: string;
}

@ApiSchema({ description: 'A page of customers, by name' })
export class CustomerPage extends PageInfo {
  @ApiProperty({ type: [CustomerDto], description: 'Customers on this page, by name' }) items: CustomerDto[];
}

export class CustomerQuery extends PageQuery {
  @ApiPropertyOptional({ description: 'Customers whose name or e-mail contains this (case-insensitive)', example: 'globex' }) @IsOptional() @IsString() @Length(1, 200) search?: string;
  @ApiPropertyOptional({ enum: ['true', 'false'], description: 'Include archived customers' }) @IsOptional() @IsIn(['true', 'false']) includeArchived?: string;
}

// ---------------------------------------------------------------- invoices
@ApiSchema({ description: 'A line of an invoice to create: quantity × unit price less the discount, taxed with its tax code' })
export class InvoiceLineInputDto {
  @ApiProperty({ description: 'What was sold', example: 'Consulting, January' }) @IsString() @Length(1, 500) description: string;
  @ApiProperty({ description: 'Quantity (positive, up to 4 decimals)', example: '10' }) @Quantity('quantity') quantity: string;
  @ApiProperty({ description: 'Unit price in the invoice currency (net for an exclusive tax code, gross for an inclusive one)', example: '100.00' })
  @Amount('unitPrice') unitPrice: string;
  @ApiPropertyOptional({ description: 'Discount in percent of quantity × unit price', example: '0', default: '0' }) @IsOptional() @Percent('discountPercent') discountPercent?: string;
  @ApiPropertyOptional({ format: 'uuid', description: 'Tax code of the line (the ledger\'s tax codes); none: untaxed', example: '9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a' }) @IsOptional() @IsUUID() taxCodeId?: string;
  @ApiProperty({ format: 'uuid', description: 'Revenue account the line is credited to', example: '7c6b5a49-3827-4160-9f8e-7d6c5b4a3928' }) @IsUUID() revenueAccountId: string;
  @ApiPropertyOptional({ description: 'First day of the service period (revenue is deferred and recognized over it)', example: '2026-01-01' }) @IsOptional() @CalendarDate('serviceStart') serviceStart?: string;
  @ApiPropertyOptional({ description: 'Last day of the service period', example: '2026-12-31' }) @IsOptional() @CalendarDate('serviceEnd') serviceEnd?: string;
}

@ApiSchema({ description: 'A draft invoice' })
export class CreateInvoiceDto {
  @ApiProperty({ format: 'uuid', description: 'Customer invoiced', example: '0b8f3f7e-3c1e-4c55-9d8a-5a1f7e2b9c01' }) @IsUUID() customerId: string;
  @ApiProperty({ description: 'Invoice date (the posting date when issued)', example: '2026-01-10' }) @CalendarDate('invoiceDate') invoiceDate: string;
  @ApiPropertyOptional({ description: 'Due date, not before the invoice date (422 receivables.due_before_invoice); default: invoice date plus the customer\'s payment terms', example: '2026-02-09' }) @IsOptional() @CalendarDate('dueDate') dueDate?: string;
  @ApiPropertyOptional({ description: 'Invoice currency; default: the customer\'s, else the base currency. Another than the base currency needs full_accounting', example: 'EUR' })
  @IsOptional() @Currency('currency') currency?: string;
  @ApiPropertyOptional({ description: 'Number series (the number is <series>-<year>-<6 digits>)', example: 'INV', default: 'INV' }) @IsOptional() @Matches(/^[A-Z][A-Z0-9]{0,9}$/, { message: 'series must be 1 to 10 capital letters or digits' }) series?: string;
  @ApiPropertyOptional({ description: 'Memo shown on the invoice', example: 'Thank you for your business' }) @IsOptional() @IsString() @Length(0, 1000) memo?: string;
  @ApiProperty({ type: [InvoiceLineInputDto], description: '1 to 200 lines', example: [{ description: 'Consulting, January', quantity: '10', unitPrice: '100.00', taxCodeId: '9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a', revenueAccountId: '7c6b5a49-3827-4160-9f8e-7d6c5b4a3928' }] })
  @ArrayMinSize(1, { message: 'lines must have at least 1 line' }) @ArrayMaxSize(200) @NestedList(() => InvoiceLineInputDto, 'an invoice line') lines: InvoiceLineInputDto[];
  @ApiPropertyOptional({ description: 'The total the client computed; a 400 when it differs from the server\'s', example: '1200.00' }) @IsOptional() @Amount('total') total?: string;
}

@ApiSchema({ description: 'Replaces a draft invoice\'s content (same fields as creating it)' })
export class UpdateInvoiceDto extends CreateInvoiceDto {}

@ApiSchema({ description: 'A line of an invoice, with the amounts the server computed' })
export class InvoiceLineDto {
  @ApiProperty({ description: 'Line number', example: 1 }) lineNo: number;
  @ApiProperty({ description: 'What was sold', example: 'Consulting, January' }) description: string;
  @ApiProperty({ description: 'Quantity', example: '10.0000' }) quantity: string;
  @ApiProperty({ description: 'Unit price', example: '100.0000' }) unitPrice: string;
  @ApiProperty({ description: 'Discount in percent', example: '0.0000' }) discountPercent: string;
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'Tax code; null when untaxed', example: '9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a' }) taxCodeId: string | null;
  @ApiProperty({ format: 'uuid', description: 'Revenue account', example: '7c6b5a49-3827-4160-9f8e-7d6c5b4a3928' }) revenueAccountId: string;
  @ApiProperty({ type: String, nullable: true, description: 'Service period start', example: null }) serviceStart: string | null;
  @ApiProperty({ type: String, nullable: true, description: 'Service period end', example: null }) serviceEnd: string | null;
  @ApiProperty({ description: 'Net amount (currency minor units)', example: '1000.00' }) netAmount: string;
  @ApiProperty({ description: 'Tax amount', example: '200.00' }) taxAmount: string;
  @ApiProperty({ description: 'Gross amount', example: '1200.00' }) grossAmount: string;
  @ApiProperty({ type: Number, nullable: true, description: 'A credit note line: the credited invoice line', example: null }) creditedLineNo: number | null;
}

@ApiSchema({ description: 'Tax of a document per tax code' })
export class TaxSummaryDto {
  @ApiProperty({ format: 'uuid', description: 'Tax code', example: '9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a' }) taxCodeId: string;
  @ApiProperty({ description: 'Tax code', example: 'VAT20' }) code: string;
  @ApiProperty({ description: 'Rate in percent', example: '20.0000' }) rate: string;
  @ApiProperty({ description: 'Net amount taxed at this code', example: '1000.00' }) net: string;
  @ApiProperty({ description: 'Tax', example: '200.00' }) tax: string;
}

@ApiSchema({ description: 'An invoice or credit note; open amount and overdue are derived' })
export class InvoiceDto {
  @ApiProperty({ format: 'uuid', description: 'Invoice id', example: '5f0c7c1e-8d7a-4b43-9a43-2f1c9b1f7a10' }) id: string;
  @ApiProperty({ enum: ['invoice', 'credit_note'], description: 'Invoice or credit note', example: 'invoice' }) kind: string;
  @ApiProperty({ format: 'uuid', description: 'Customer', example: '0b8f3f7e-3c1e-4c55-9d8a-5a1f7e2b9c01' }) customerId: string;
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'A credit note\'s invoice', example: null }) creditedInvoiceId: string | null;
  @ApiProperty({ enum: INVOICE_STATUSES, description: 'Status', example: 'issued' }) status: string;
  @ApiProperty({ description: 'Number series', example: 'INV' }) series: string;
  @ApiProperty({ type: String, nullable: true, description: 'Number, assigned at issue', example: 'INV-2026-000001' }) number: string | null;
  @ApiProperty({ description: 'Invoice date', example: '2026-01-10' }) invoiceDate: string;
  @ApiProperty({ description: 'Due date', example: '2026-02-09' }) dueDate: string;
  @ApiProperty({ description: 'Currency', example: 'EUR' }) currency: string;
  @ApiProperty({ type: String, nullable: true, description: 'Rate fixed at issue (base units per unit), 10 decimals', example: '1.0000000000' }) rate: string | null;
  @ApiProperty({ description: 'Net total', example: '1000.00' }) subtotal: string;
  @ApiProperty({ description: 'Tax total', example: '200.00' }) taxTotal: string;
  @ApiProperty({ description: 'Total', example: '1200.00' }) total: string;
  @ApiProperty({ description: 'What is still open (0 for drafts, credit notes and void invoices)', example: '1200.00' }) openAmount: string;
  @ApiProperty({ description: 'Whether the due date has passed with an amount open (derived, today)', example: false }) overdue: boolean;
  @ApiProperty({ description: 'Memo', example: '' }) memo: string;
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'The journal entry of the issue; null for a draft, or an invoice of 0.00 (nothing posted)', example: '8a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b' }) entryId: string | null;
  @ApiProperty({ type: String, nullable: true, description: 'Void date', example: null }) voidedOn: string | null;
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'The reversal entry of the void; null when not void, or for an invoice of 0.00', example: null }) voidEntryId: string | null;
  @ApiProperty({ type: [InvoiceLineDto], description: 'Lines' }) lines: InvoiceLineDto[];
  @ApiProperty({ type: [TaxSummaryDto], description: 'Tax per tax code' }) taxes: TaxSummaryDto[];
  @ApiProperty({ format: 'date-time', description: 'Created at', example: '2026-01-10T09:00:00.000Z' }) createdAt: string;
}

@ApiSchema({ description: 'A page of invoices, newest first' })
export class InvoicePage extends PageInfo {
  @ApiProperty({ type: [InvoiceDto], description: 'Invoices on this page' }) items: InvoiceDto[];
}

export class InvoiceQuery extends PageQuery {
  @ApiPropertyOptional({ format: 'uuid', description: 'Only this customer\'s' }) @IsOptional() @IsUUID() customerId?: string;
  @ApiPropertyOptional({ enum: INVOICE_STATUSES, description: 'Only this status' }) @IsOptional() @IsIn(INVOICE_STATUSES) status?: string;
  @ApiPropertyOptional({ enum: ['invoice', 'credit_note'], description: 'Only invoices or only credit notes' }) @IsOptional() @IsIn(['invoice', 'credit_note']) kind?: string;
}

@ApiSchema({ description: 'Issue a draft: number it and post it' })
export class IssueInvoiceDto {
  @ApiPropertyOptional({ description: 'Rate to post a foreign-currency invoice at (default: the rate effective on the invoice date). The credit limit check values the invoice at the larger '
    + 'of this rate and the rate table\'s of the invoice date (this one when the table has none that day): a lower rate cannot take the invoice under the customer\'s credit limit', example: '1.0850000000' })
  @IsOptional() @Rate('rate') rate?: string;
  @ApiPropertyOptional({
    description: 'Issue even when the invoice takes what the customer owes above its credit limit (a person with the role owner or admin only: 403 forbidden.role for another role or an API key, '
      + 'whether or not the limit is reached); the override, the limit and the balance are recorded in the audit row of the issue',
    example: false,
  })
  @IsOptional() @IsBoolean() overrideCreditLimit?: boolean;
  @ApiPropertyOptional({ description: RATE_OVERRIDE_DOC, example: false }) @IsOptional() @IsBoolean() rateOverride?: boolean;
}

@ApiSchema({ description: 'Void an issued invoice: its posting is reversed' })
export class VoidInvoiceDto {
  @ApiPropertyOptional({ description: 'Date of the reversal (default: the invoice date, or the date of the last allocation or allocation reversal of the invoice when that is later; never before either)', example: '2026-01-12' }) @IsOptional() @CalendarDate('date') date?: string;
}

@ApiSchema({ description: 'A line to credit: the invoice line and how much of it' })
export class CreditLineInputDto {
  @ApiProperty({ description: 'Line number of the invoice', example: 1 }) @IsInt() @Min(1) lineNo: number;
  @ApiPropertyOptional({ description: 'Quantity to credit (default: the whole line)', example: '2' }) @IsOptional() @Amount('quantity') quantity?: string;
}

@ApiSchema({ description: 'A credit note of an issued invoice, for the whole invoice or some lines; issued at once' })
export class CreateCreditNoteDto {
  @ApiProperty({ description: 'Date of the credit note: not before the invoice date nor the last allocation reversal of the invoice (400 validation_failed)', example: '2026-01-20' }) @CalendarDate('date') date: string;
  @ApiPropertyOptional({ type: [CreditLineInputDto], description: 'Lines to credit (default: every line with a quantity left to credit, all that is left of it)', example: [{ lineNo: 1, quantity: '2' }] })
  @IsOptional() @ArrayMinSize(1) @ArrayMaxSize(200) @NestedList(() => CreditLineInputDto, 'a credit note line') lines?: CreditLineInputDto[];
  @ApiPropertyOptional({ description: 'Memo (reason)', example: 'Returned goods' }) @IsOptional() @IsString() @Length(0, 1000) memo?: string;
}

// ---------------------------------------------------------------- payments
@ApiSchema({ description: 'Part of a payment applied to an open invoice of the same customer' })
export class ReceivableAllocationInputDto {
  @ApiProperty({ format: 'uuid', description: 'Invoice settled', example: '5f0c7c1e-8d7a-4b43-9a43-2f1c9b1f7a10' }) @IsUUID() invoiceId: string;
  @ApiProperty({ description: 'Amount applied, in the invoice (= payment) currency', example: '500.00' }) @Amount('amount') amount: string;
}

@ApiSchema({ description: 'A payment received from a customer, allocated to open invoices; the rest is customer credit' })
export class CreatePaymentDto {
  @ApiProperty({ format: 'uuid', description: 'Paying customer', example: '0b8f3f7e-3c1e-4c55-9d8a-5a1f7e2b9c01' }) @IsUUID() customerId: string;
  @ApiProperty({ description: 'Date received', example: '2026-02-01' }) @CalendarDate('date') date: string;
  @ApiProperty({ description: 'Amount received', example: '500.00' }) @Amount('amount') amount: string;
  @ApiPropertyOptional({ description: 'Currency (default: the base currency)', example: 'EUR' }) @IsOptional() @Currency('currency') currency?: string;
  @ApiPropertyOptional({ description: 'Rate received at (default: the rate effective on the date)', example: '1.0850000000' }) @IsOptional() @Rate('rate') rate?: string;
  @ApiPropertyOptional({ description: RATE_OVERRIDE_DOC, example: false }) @IsOptional() @IsBoolean() rateOverride?: boolean;
  @ApiProperty({ format: 'uuid', description: 'Cash or bank account debited', example: '2e1d0c9b-8a79-4685-9473-a2b1c0d9e8f7' }) @IsUUID() depositAccountId: string;
  @ApiProperty({ enum: PAYMENT_METHODS, description: 'How it was paid', example: 'bank_transfer' }) @IsIn(PAYMENT_METHODS) method: string;
  @ApiPropertyOptional({ description: 'Bank reference', example: 'SEPA 2026-02-01 4711' }) @IsOptional() @IsString() @Length(0, 200) reference?: string;
  @ApiPropertyOptional({ type: [ReceivableAllocationInputDto], description: 'Invoices settled (at most the amount in total)', example: [{ invoiceId: '5f0c7c1e-8d7a-4b43-9a43-2f1c9b1f7a10', amount: '500.00' }] })
  @IsOptional() @ArrayMaxSize(200) @NestedList(() => ReceivableAllocationInputDto, 'an allocation') allocations?: ReceivableAllocationInputDto[];
}

@ApiSchema({ description: 'Allocates a payment\'s unallocated remainder (customer credit) to open invoices' })
export class AllocatePaymentDto {
  @ApiPropertyOptional({ description: 'Date of the allocation (default: today): not before the payment date, the last reversal of an allocation of the payment, nor that of an allocation to an invoice allocated to (400 validation_failed)', example: '2026-02-15' }) @IsOptional() @CalendarDate('date') date?: string;
  @ApiProperty({ type: [ReceivableAllocationInputDto], description: 'Invoices settled', example: [{ invoiceId: '5f0c7c1e-8d7a-4b43-9a43-2f1c9b1f7a10', amount: '500.00' }] })
  @ArrayMinSize(1) @ArrayMaxSize(200) @NestedList(() => ReceivableAllocationInputDto, 'an allocation') allocations: ReceivableAllocationInputDto[];
}

@ApiSchema({ description: 'Pays customer credit (a payment\'s unallocated remainder) back to the customer' })
export class RefundCustomerCreditDto {
  @ApiPropertyOptional({ description: 'Date of the refund (default: today): not before the payment date nor the last reversal of an allocation of the payment (400 validation_failed)', example: '2026-02-20' }) @IsOptional() @CalendarDate('date') date?: string;
  @ApiProperty({ description: 'Amount refunded, in the payment\'s currency (at most its unallocated remainder)', example: '100.00' }) @Amount('amount') amount: string;
  @ApiPropertyOptional({ format: 'uuid', description: 'Cash or bank account credited (default: the payment\'s deposit account)', example: '2e1d0c9b-8a79-4685-9473-a2b1c0d9e8f7' }) @IsOptional() @IsUUID() accountId?: string;
  @ApiPropertyOptional({ enum: PAYMENT_METHODS, description: 'How it was paid back (default: bank_transfer)', example: 'bank_transfer' }) @IsOptional() @IsIn(PAYMENT_METHODS) method?: string;
  @ApiPropertyOptional({ description: 'Rate of the refund date (default: the rate effective on the date)', example: '1.0850000000' }) @IsOptional() @Rate('rate') rate?: string;
  @ApiPropertyOptional({ description: RATE_OVERRIDE_DOC, example: false }) @IsOptional() @IsBoolean() rateOverride?: boolean;
  @ApiPropertyOptional({ description: 'Bank reference', example: 'SEPA refund 4712' }) @IsOptional() @IsString() @Length(0, 200) reference?: string;
}

@ApiSchema({ description: 'A refund of customer credit' })
export class CustomerRefundDto {
  @ApiProperty({ format: 'uuid', description: 'Refund id', example: '7b6a5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d' }) id: string;
  @ApiProperty({ description: 'Date', example: '2026-02-20' }) date: string;
  @ApiProperty({ description: 'Amount, in the payment\'s currency', example: '100.00' }) amount: string;
  @ApiProperty({ description: 'Rate of the refund date, 10 decimals', example: '1.0000000000' }) rate: string;
  @ApiProperty({ format: 'uuid', description: 'Cash or bank account credited', example: '2e1d0c9b-8a79-4685-9473-a2b1c0d9e8f7' }) accountId: string;
  @ApiProperty({ description: 'Realized FX gain (positive) or loss (negative) in the base currency', example: '0.00' }) realizedFx: string;
  @ApiProperty({ type: String, nullable: true, description: 'Reference', example: 'SEPA refund 4712' }) reference: string | null;
  @ApiProperty({ format: 'uuid', description: 'Journal entry (AR debit, bank credit)', example: '8a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b' }) entryId: string;
}

@ApiSchema({ description: 'Undoes an allocation (a bounced payment): a new reversing row' })
export class ReverseReceivableAllocationDto {
  @ApiPropertyOptional({ description: 'Date of the reversal (default: today)', example: '2026-02-20' }) @IsOptional() @CalendarDate('date') date?: string;
}

@ApiSchema({ description: 'An allocation of a payment or credit note to an invoice (negative: a reversal)' })
export class ReceivableAllocationDto {
  @ApiProperty({ format: 'uuid', description: 'Allocation id', example: '6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d' }) id: string;
  @ApiProperty({ format: 'uuid', description: 'Invoice settled', example: '5f0c7c1e-8d7a-4b43-9a43-2f1c9b1f7a10' }) invoiceId: string;
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'Payment applied', example: '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f' }) paymentId: string | null;
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'Credit note applied', example: null }) creditNoteId: string | null;
  @ApiProperty({ description: 'Date', example: '2026-02-01' }) date: string;
  @ApiProperty({ description: 'Amount in the invoice currency (negative for a reversal)', example: '500.00' }) amount: string;
  @ApiProperty({ description: 'Realized FX gain (positive) or loss (negative) in the base currency: the payment\'s base less the invoice\'s, each as carried '
    + '(at its own rate, or since an FX revaluation at the revaluation\'s: EUR 1,000 invoiced at 1.10, revalued at 1.15 and paid at 1.20 realizes 50.00)', example: '50.00' }) realizedFx: string;
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'The allocation this one reverses', example: null }) reversesAllocationId: string | null;
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'Journal entry posted for it (FX difference), if any', example: null }) entryId: string | null;
}

@ApiSchema({ description: 'A payment received' })
export class PaymentDto {
  @ApiProperty({ format: 'uuid', description: 'Payment id', example: '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f' }) id: string;
  @ApiProperty({ format: 'uuid', description: 'Customer', example: '0b8f3f7e-3c1e-4c55-9d8a-5a1f7e2b9c01' }) customerId: string;
  @ApiProperty({ description: 'Date received', example: '2026-02-01' }) date: string;
  @ApiProperty({ description: 'Amount', example: '500.00' }) amount: string;
  @ApiProperty({ description: 'Currency', example: 'EUR' }) currency: string;
  @ApiProperty({ description: 'Rate, 10 decimals', example: '1.0000000000' }) rate: string;
  @ApiProperty({ format: 'uuid', description: 'Deposit account', example: '2e1d0c9b-8a79-4685-9473-a2b1c0d9e8f7' }) depositAccountId: string;
  @ApiProperty({ enum: PAYMENT_METHODS, description: 'Method', example: 'bank_transfer' }) method: string;
  @ApiProperty({ type: String, nullable: true, description: 'Reference', example: 'SEPA 2026-02-01 4711' }) reference: string | null;
  @ApiProperty({ description: 'Neither allocated nor refunded: customer credit', example: '0.00' }) unallocated: string;
  @ApiProperty({ format: 'uuid', description: 'Journal entry', example: '8a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b' }) entryId: string;
  @ApiProperty({ type: [ReceivableAllocationDto], description: 'Allocations (and their reversals), oldest first' }) allocations: ReceivableAllocationDto[];
  @ApiProperty({ type: [CustomerRefundDto], description: 'Refunds of its customer credit, oldest first' }) refunds: CustomerRefundDto[];
}

@ApiSchema({ description: 'A page of payments, newest first' })
export class PaymentPage extends PageInfo {
  @ApiProperty({ type: [PaymentDto], description: 'Payments on this page' }) items: PaymentDto[];
}

export class CustomerPaymentQuery extends PageQuery {
  @ApiPropertyOptional({ format: 'uuid', description: 'Only this customer\'s' }) @IsOptional() @IsUUID() customerId?: string;
}

// ---------------------------------------------------------------- aging
export class ArAgingQuery {
  @ApiPropertyOptional({ minimum: 1, maximum: 1000, default: 100, description: 'Customers per page (the totals always cover every customer; the CSV has every customer)' })
  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(1000) limit?: number;
  @ApiPropertyOptional({ description: 'Opaque cursor from the previous page (nextCursor)' }) @IsOptional() @IsString() cursor?: string;
  @ApiPropertyOptional({ example: '2026-01-31', description: 'Aging as of the end of this day (default: today)' }) @IsOptional() @CalendarDate('asOf') asOf?: string;
  @ApiPropertyOptional({ example: '30,60,90', description: 'Bucket edges in days past due (default 30,60,90)' }) @IsOptional() @IsString() @Length(1, 60) buckets?: string;
  @ApiPropertyOptional({ enum: ['json', 'csv'], description: 'Response format' }) @IsOptional() @IsIn(['json', 'csv']) format?: string;
}

@ApiSchema({ description: 'One aging bucket\'s amount' })
export class ArAgingBucketAmountDto {
  @ApiProperty({ description: 'Bucket label: current, 1-30, 31-60, ..., >90', example: '1-30' }) bucket: string;
  @ApiProperty({ description: 'Open amount in the base currency', example: '1200.00' }) amount: string;
}

@ApiSchema({ description: 'A party\'s open amounts by bucket' })
export class ArAgingRowDto {
  @ApiProperty({ format: 'uuid', description: 'Customer (or vendor)', example: '0b8f3f7e-3c1e-4c55-9d8a-5a1f7e2b9c01' }) partyId: string;
  @ApiProperty({ description: 'Name', example: 'Globex GmbH' }) partyName: string;
  @ApiProperty({ type: [ArAgingBucketAmountDto], description: 'Every bucket, in order' }) buckets: ArAgingBucketAmountDto[];
  @ApiProperty({ description: 'Total open, base currency', example: '1200.00' }) total: string;
}

@ApiSchema({ description: 'Aging report: open amounts per party and bucket as of a date, in the base currency; the buckets add up to the total, which equals the control account balance' })
export class ArAgingReportDto {
  @ApiProperty({ description: 'As of', example: '2026-01-31' }) asOf: string;
  @ApiProperty({ description: 'Base currency', example: 'EUR' }) baseCurrency: string;
  @ApiProperty({ type: [String], description: 'Bucket labels in order', example: ['current', '1-30', '31-60', '61-90', '>90'] }) bucketLabels: string[];
  @ApiProperty({ type: [ArAgingRowDto], description: 'Per party with an open amount, by name then id: one page (limit, cursor)' }) rows: ArAgingRowDto[];
  @ApiProperty({ type: [ArAgingBucketAmountDto], description: 'Totals per bucket, over every party' }) totals: ArAgingBucketAmountDto[];
  @ApiProperty({ description: 'Total open', example: '1200.00' }) total: string;
  @ApiProperty({ description: 'Parties with an open amount, over all pages', example: 3 }) partyCount: number;
  @ApiPropertyOptional({ description: 'Cursor of the next page of parties; absent on the last page' }) nextCursor?: string;
}

// ---------------------------------------------------------------- revenue recognition
@ApiSchema({ description: 'Runs revenue recognition for a day (idempotent per organization and day)' })
export class RunRevenueRecognitionDto {
  @ApiPropertyOptional({ description: 'The day to recognize up to and including (default: today); not after today (422 receivables.recognition_date_future)', example: '2026-01-31' }) @IsOptional() @CalendarDate('date') date?: string;
}

@ApiSchema({ description: 'What a run recognized on one invoice line' })
export class RecognizedLineDto {
  @ApiProperty({ format: 'uuid', description: 'Invoice', example: '5f0c7c1e-8d7a-4b43-9a43-2f1c9b1f7a10' }) invoiceId: string;
  @ApiProperty({ description: 'Line number', example: 1 }) lineNo: number;
  @ApiProperty({ description: 'Recognized by this run, invoice currency', example: '100.00' }) amount: string;
  @ApiProperty({ description: 'Recognized up to and including this day', example: '2026-01-31' }) recognizedThrough: string;
}

@ApiSchema({ description: 'A revenue recognition run' })
export class RevenueRecognitionRunDto {
  @ApiProperty({ description: 'The day recognized up to', example: '2026-01-31' }) runDate: string;
  @ApiProperty({ description: 'The posting date: the run date, or the first day of the first open period after it when its period is closed', example: '2026-01-31' }) postedOn: string;
  @ApiProperty({ type: String, nullable: true, description: 'Why the posting date differs from the run date; null when it does not', example: null }) note: string | null;
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'The journal entry; null when nothing was due', example: '8a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b' }) entryId: string | null;
  @ApiProperty({ description: 'Whether the run of this day had already happened (nothing new was posted)', example: false }) replayed: boolean;
  @ApiProperty({ type: [RecognizedLineDto], description: 'Lines recognized' }) lines: RecognizedLineDto[];
}

export class RevenueScheduleQuery {
  @ApiPropertyOptional({ example: '2026-06-30', description: 'The date (default: today)' }) @IsOptional() @CalendarDate('asOf') asOf?: string;
}

@ApiSchema({ description: 'An invoice line\'s revenue at a date: scheduled straight-line, recognized (posted) and still deferred' })
export class RevenueScheduleLineDto {
  @ApiProperty({ description: 'Line number', example: 1 }) lineNo: number;
  @ApiProperty({ description: 'Description', example: 'Support contract 2026' }) description: string;
  @ApiProperty({ description: 'Service period start', example: '2026-01-01' }) serviceStart: string;
  @ApiProperty({ description: 'Service period end', example: '2026-12-31' }) serviceEnd: string;
  @ApiProperty({ description: 'Net amount of the line, less what credit notes dated by the date took of it (what recognition spreads)', example: '3650.00' }) netAmount: string;
  @ApiProperty({ description: 'Straight-line share earned by the date (days elapsed / days of the period); 0 before the invoice date (nothing is recognized before it)', example: '1810.00' }) scheduled: string;
  @ApiProperty({ description: 'Recognized by runs up to the date, less what credit notes dated by then took back from revenue (never above the net amount)', example: '1810.00' }) recognized: string;
  @ApiProperty({ description: 'Still deferred at the date (net less recognized)', example: '1840.00' }) deferred: string;
}

@ApiSchema({ description: 'Revenue recognition of an invoice\'s lines with a service period, at a date' })
export class RevenueScheduleDto {
  @ApiProperty({ format: 'uuid', description: 'Invoice', example: '5f0c7c1e-8d7a-4b43-9a43-2f1c9b1f7a10' }) invoiceId: string;
  @ApiProperty({ description: 'The date', example: '2026-06-30' }) asOf: string;
  @ApiProperty({ description: 'Invoice currency', example: 'EUR' }) currency: string;
  @ApiProperty({ type: [RevenueScheduleLineDto], description: 'Lines with a service period' }) lines: RevenueScheduleLineDto[];
}
