import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import {
  ArrayMaxSize, ArrayMinSize, IsBoolean, IsIn, IsInt, IsOptional, IsString, IsUUID, Length, Max, Min,
} from 'class-validator';
import { CalendarDate } from '../../platform/http/calendar-date.js';
import { IsEmailAddress } from '../auth/email-address.validator.js';
import { PAYMENT_METHODS, Amount, Currency, Quantity, Rate } from '../../platform/http/money.js';
import { NestedList } from '../../platform/http/nested-list.js';
import { RATE_OVERRIDE_DOC } from '../ledger/client-rate.js';
import { PageInfo } from '../../platform/http/openapi.js';
import { PageQuery } from '../../platform/http/pagination.js';

export const BILL_STATUSES = ['draft', 'submitted', 'rejected', 'posted', 'partially_paid', 'paid', 'voided'] as const;
export const APPROVER_ROLES = ['owner', 'admin', 'accountant'] as const;

// ---------------------------------------------------------------- vendors
@ApiSchema({ description: 'A vendor: a party the organization buys from. Contact fields are personal data and stay in this record only' })
export class VendorDto {
  @ApiProperty({ description: 'Vendor id', format: 'uuid', example: '0b8f5f8e-9a43-4a52-8c1b-1f2a3b4c5d6e' }) id: string;
  @ApiProperty({ description: 'Name of the vendor', example: 'Office Supplies GmbH' }) name: string;
  @ApiProperty({ description: 'Contact person; null when not given', type: String, nullable: true, example: 'Jane Doe' }) contactPerson: string | null;
  @ApiProperty({ description: 'E-mail address; null when not given', type: String, nullable: true, example: 'billing@supplies.example' }) email: string | null;
  @ApiProperty({ description: 'Phone number; null when not given', type: String, nullable: true, example: '+49 30 1234567' }) phone: string | null;
  @ApiProperty({ description: 'Tax (VAT) id; null when not given', type: String, nullable: true, example: 'DE123456789' }) taxId: string | null;
  @ApiProperty({ description: 'Billing address; null when not given', type: String, nullable: true, example: 'Hauptstr. 1, 10115 Berlin' }) billingAddress: string | null;
  @ApiProperty({ description: 'Currency its bills default to; null: the base currency', type: String, nullable: true, example: 'EUR' }) defaultCurrency: string | null;
  @ApiProperty({ description: 'Days from the bill date to the due date', example: 30 }) paymentTermsDays: number;
  @ApiProperty({ description: 'When the vendor was archived; null while active', type: Date, nullable: true, example: null }) archivedAt: Date | null;
  @ApiProperty({ description: 'When the vendor was created', example: '2026-01-02T10:00:00.000Z' }) createdAt: Date;
  @ApiProperty({ description: 'When the vendor was last changed', example: '2026-01-02T10:00:00.000Z' }) updatedAt: Date;
}

@ApiSchema({ description: 'A new vendor' })
export class CreateVendorDto {
  @ApiProperty({ description: 'Name of the vendor (1 to 200 characters, trimmed)', example: 'Office Supplies GmbH' }) @Transform(({ value }) => (typeof value === 'string' ? value.trim() : value)) @IsString() @Length(1, 200) name: string;
  @ApiPropertyOptional({ description: 'Contact person', example: 'Jane Doe' }) @IsOptional() @IsString() @Length(1, 200) contactPerson?: string;
  @ApiPropertyOptional({ description: 'E-mail address', example: 'billing@supplies.example' }) @IsOptional() @IsEmailAddress() @Length(3, 320) email?: string;
  @ApiPropertyOptional({ description: 'Phone number', example: '+49 30 1234567' }) @IsOptional() @IsString() @Length(1, 50) phone?: string;
  @ApiPropertyOptional({ description: 'Tax (VAT) id', example: 'DE123456789' }) @IsOptional() @IsString() @Length(1, 50) taxId?: string;
  @ApiPropertyOptional({ description: 'Billing address', example: 'Hauptstr. 1, 10115 Berlin' }) @IsOptional() @IsString() @Length(1, 1000) billingAddress?: string;
  @ApiPropertyOptional({ description: 'Currency its bills default to (ISO 4217); absent: the base currency', example: 'EUR' })
  @IsOptional() @Currency('defaultCurrency') defaultCurrency?: string;
  @ApiPropertyOptional({ description: 'Days from the bill date to the due date (0-365)', default: 30, example: 30 })
  @IsOptional() @IsInt() @Min(0) @Max(365) paymentTermsDays?: number;
}

@ApiSchema({ description: 'Changes to a vendor; fields left out keep their value' })
export class UpdateVendorDto {
  @ApiPropertyOptional({ description: 'Name of the vendor (1 to 200 characters, trimmed)', example: 'Office Supplies AG' }) @IsOptional() @Transform(({ value }) => (typeof value === 'string' ? value.trim() : value)) @IsString() @Length(1, 200) name?: string;
  @ApiPropertyOptional({ description: 'Contact person', example: 'John Roe' }) @IsOptional() @IsString() @Length(1, 200) contactPerson?: string;
  @ApiPropertyOptional({ description: 'E-mail address', example: 'ap@supplies.example' }) @IsOptional() @IsEmailAddress() @Length(3, 320) email?: string;
  @ApiPropertyOptional({ description: 'Phone number', example: '+49 30 7654321' }) @IsOptional() @IsString() @Length(1, 50) phone?: string;
  @ApiPropertyOptional({ description: 'Tax (VAT) id', example: 'DE987654321' }) @IsOptional() @IsString() @Length(1, 50) taxId?: string;
  @ApiPropertyOptional({ description: 'Billing address', example: 'Nebenstr. 2, 10115 Berlin' }) @IsOptional() @IsString() @Length(1, 1000) billingAddress?: string;
  @ApiPropertyOptional({ description: 'Currency its bills default to (ISO 4217)', example: 'EUR' })
  @IsOptional() @Currency('defaultCurrency') defaultCurrency?: string;
  @ApiPropertyOptional({ description: 'Days from the bill date to the due date (0-365)', example: 14 }) @IsOptional() @IsInt() @Min(0) @Max(365) paymentTermsDays?: number;
}

export class VendorQuery extends PageQuery {
  @ApiPropertyOptional({ description: 'Case-insensitive substring of the name or e-mail', example: 'supplies' }) @IsOptional() @IsString() @Length(1, 200) search?: string;
  @ApiPropertyOptional({ description: 'Include archived vendors', enum: ['true', 'false'], example: 'false' }) @IsOptional() @IsIn(['true', 'false']) includeArchived?: string;
}

@ApiSchema({ description: 'A page of vendors, by name' })
export class VendorPage extends PageInfo {
  @ApiProperty({ description: 'Vendors on this page, by name', type: [VendorDto] }) items: VendorDto[];
}

// ---------------------------------------------------------------- settings and approval rules
@ApiSchema({ description: 'An approval rule: a document whose total in the base currency is above `above` needs `approvals` distinct approvers with one of `roles`' })
export class ApprovalRuleDto {
  @ApiProperty({ description: 'Threshold in the base currency (exclusive); the highest threshold below the total applies', example: '1000.00' })
  @Amount('above') above: string;
  @ApiProperty({ description: 'Number of distinct approvers needed (0-10); never the document\'s creator, last editor or submitter', example: 1 }) @IsInt() @Min(0) @Max(10) approvals: number;
  @ApiProperty({ description: 'Roles that may approve', enum: APPROVER_ROLES, isArray: true, example: ['owner', 'admin'] })
  @ArrayMinSize(1) @ArrayMaxSize(3) @IsIn(APPROVER_ROLES, { each: true }) roles: string[];
}

@ApiSchema({ description: 'Payables settings: the accounts-payable control account and the approval rules' })
export class PayablesSettingsDto {
  @ApiProperty({ description: 'The accounts-payable control account bills credit and payments debit', format: 'uuid', example: '2b1c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d' }) apAccountId: string;
  @ApiProperty({ description: 'Approval rules by threshold, ascending', type: [ApprovalRuleDto] }) approvalRules: ApprovalRuleDto[];
  @ApiProperty({ description: 'true while the organization uses the defaults (AP account 2100; none up to 1,000; one owner/admin above; two above 10,000)', example: false }) isDefault: boolean;
}

@ApiSchema({ description: 'New payables settings (both fields replace the current ones)' })
export class UpdatePayablesSettingsDto {
  @ApiProperty({ description: 'The accounts-payable control account (an active liability account). Unless it is the AP control account already, it must carry no balance (422 payables.account_carries_balance, which says how to bring over open AP from former books: on a separate account, not this one)', format: 'uuid', example: '2b1c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d' }) @IsUUID() apAccountId: string;
  @ApiProperty({ description: 'Approval rules; thresholds must be distinct', type: [ApprovalRuleDto] })
  @ArrayMinSize(1) @ArrayMaxSize(20) @NestedList(() => ApprovalRuleDto, 'an approval rule') approvalRules: ApprovalRuleDto[];
}

// ---------------------------------------------------------------- bills and expense claims
@ApiSchema({ description: 'A line of a bill: quantity x unit price on an expense or asset account, with an optional tax code' })
export class BillLineInputDto {
  @ApiProperty({ description: 'Expense or asset account the line posts to', format: 'uuid', example: '3c2d1e0f-9a8b-4c7d-8e6f-5a4b3c2d1e0f' }) @IsUUID() accountId: string;
  @ApiPropertyOptional({ description: 'What was bought', example: 'Printer paper' }) @IsOptional() @IsString() @Length(1, 500) description?: string;
  @ApiPropertyOptional({ description: 'Quantity (positive), default 1', example: '10' }) @IsOptional() @Quantity('quantity') quantity?: string;
  @ApiProperty({ description: 'Unit price in the bill currency, before tax for an exclusive tax code', example: '25.00' }) @Amount('unitPrice') unitPrice: string;
  @ApiPropertyOptional({ description: 'Tax code (input tax); absent: no tax', format: 'uuid', example: '4d3e2f1a-0b9c-4d8e-9f7a-6b5c4d3e2f1a' }) @IsOptional() @IsUUID() taxCodeId?: string;
}

/**
 * The most lines a bill or expense claim has. Its posting (PayablesService.post) takes one journal line per line, one
 * more per taxed line for its input tax, and one to AP: 2 x 200 + 1 = 401, within the 499 lines the ledger's posting
 * function takes (finance.check_entry; a rounding line may come on top). A larger document would be saved and then
 * fail at its approval with ledger.invalid_entry; it is refused when saved instead.
 */
export const MAX_DOCUMENT_LINES = 200;
const TOO_MANY_LINES = `lines must have at most ${MAX_DOCUMENT_LINES} lines (a bill or expense claim posts as one journal entry)`;
/** A bill's `rate` (create and update). */
const BILL_RATE_DOC = 'Rate to post a foreign-currency bill at, base units per unit (default: the rate effective on the bill date, fixed at posting; ignored for the base currency). '
  + 'The approval rule is chosen by the total at the larger of this rate and the rate table\'s of the bill date (this one when the table has none that day): a lower rate cannot lower the approvals the bill needs';
const LINES_DOC = `Lines (1-${MAX_DOCUMENT_LINES}; more are refused with 400 validation_failed: a taxed line posts a net and a tax line, and the posting must fit one journal entry)`;

@ApiSchema({ description: 'A new vendor bill (a draft)' })
export class CreateBillDto {
  @ApiProperty({ description: 'The vendor', format: 'uuid', example: '0b8f5f8e-9a43-4a52-8c1b-1f2a3b4c5d6e' }) @IsUUID() vendorId: string;
  @ApiPropertyOptional({ description: 'The vendor\'s bill number', example: 'INV-4711' }) @IsOptional() @IsString() @Length(1, 100) billNumber?: string;
  @ApiProperty({ description: 'Date of the bill (the posting date)', example: '2026-01-10' }) @CalendarDate('billDate') billDate: string;
  @ApiPropertyOptional({ description: 'Due date; absent: bill date + the vendor\'s payment terms', example: '2026-02-09' }) @IsOptional() @CalendarDate('dueDate') dueDate?: string;
  @ApiPropertyOptional({ description: 'Bill currency; absent: the vendor\'s default, else the base currency', example: 'EUR' })
  @IsOptional() @Currency('currency') currency?: string;
  @ApiPropertyOptional({ description: BILL_RATE_DOC, example: '1.0850000000' })
  @IsOptional() @Rate('rate') rate?: string;
  @ApiPropertyOptional({ description: 'Memo', example: 'Office supplies January' }) @IsOptional() @IsString() @Length(0, 1000) memo?: string;
  @ApiProperty({ description: LINES_DOC, type: [BillLineInputDto] })
  @ArrayMinSize(1, { message: 'lines must have at least 1 line' }) @ArrayMaxSize(MAX_DOCUMENT_LINES, { message: TOO_MANY_LINES }) @NestedList(() => BillLineInputDto, 'a bill line') lines: BillLineInputDto[];
  @ApiPropertyOptional({ description: 'The total the client computed (optional); a different server total is a 400', example: '300.00' }) @IsOptional() @Amount('total') total?: string;
}

@ApiSchema({ description: 'A new draft of a bill\'s content (all fields replace the draft\'s)' })
export class UpdateBillDto {
  @ApiPropertyOptional({ description: 'The vendor\'s bill number', example: 'INV-4711' }) @IsOptional() @IsString() @Length(1, 100) billNumber?: string;
  @ApiProperty({ description: 'Date of the bill', example: '2026-01-10' }) @CalendarDate('billDate') billDate: string;
  @ApiPropertyOptional({ description: 'Due date; absent: bill date + the vendor\'s payment terms', example: '2026-02-09' }) @IsOptional() @CalendarDate('dueDate') dueDate?: string;
  @ApiPropertyOptional({ description: 'Bill currency', example: 'EUR' }) @IsOptional() @Currency('currency') currency?: string;
  @ApiPropertyOptional({ description: BILL_RATE_DOC, example: '1.0850000000' })
  @IsOptional() @Rate('rate') rate?: string;
  @ApiPropertyOptional({ description: 'Memo', example: 'Office supplies January' }) @IsOptional() @IsString() @Length(0, 1000) memo?: string;
  @ApiProperty({ description: LINES_DOC, type: [BillLineInputDto] })
  @ArrayMinSize(1, { message: 'lines must have at least 1 line' }) @ArrayMaxSize(MAX_DOCUMENT_LINES, { message: TOO_MANY_LINES }) @NestedList(() => BillLineInputDto, 'a bill line') lines: BillLineInputDto[];
  @ApiPropertyOptional({ description: 'The total the client computed (optional); a different server total is a 400', example: '300.00' }) @IsOptional() @Amount('total') total?: string;
}

@ApiSchema({ description: 'A line of an expense claim' })
export class ClaimLineInputDto {
  @ApiProperty({ description: 'Category: the expense account', format: 'uuid', example: '3c2d1e0f-9a8b-4c7d-8e6f-5a4b3c2d1e0f' }) @IsUUID() accountId: string;
  @ApiProperty({ description: 'Amount spent (gross) in the claim currency', example: '42.50' }) @Amount('amount') amount: string;
  @ApiProperty({ description: 'Currency of the amount: the claim\'s currency', example: 'EUR' }) @Currency('currency') currency: string;
  @ApiProperty({ description: 'Day of the expense', example: '2026-01-08' }) @CalendarDate('date') date: string;
  @ApiPropertyOptional({ description: 'Reference of the receipt', example: 'RCPT-001' }) @IsOptional() @IsString() @Length(1, 200) receiptRef?: string;
  @ApiPropertyOptional({ description: 'What was paid for', example: 'Taxi to client' }) @IsOptional() @IsString() @Length(1, 500) description?: string;
}

@ApiSchema({ description: 'A new employee expense claim (a draft, by the claimant)' })
export class CreateExpenseClaimDto {
  @ApiProperty({ description: 'Date of the claim (the posting date on approval)', example: '2026-01-10' }) @CalendarDate('claimDate') claimDate: string;
  @ApiProperty({ description: 'Currency of the claim and of every line', example: 'EUR' }) @Currency('currency') currency: string;
  @ApiPropertyOptional({ description: 'Memo', example: 'Client visit Hamburg' }) @IsOptional() @IsString() @Length(0, 1000) memo?: string;
  @ApiProperty({ description: LINES_DOC, type: [ClaimLineInputDto] })
  @ArrayMinSize(1, { message: 'lines must have at least 1 line' }) @ArrayMaxSize(MAX_DOCUMENT_LINES, { message: TOO_MANY_LINES }) @NestedList(() => ClaimLineInputDto, 'a claim line') lines: ClaimLineInputDto[];
  @ApiPropertyOptional({ description: 'The total the client computed (optional); a different server total is a 400', example: '42.50' }) @IsOptional() @Amount('total') total?: string;
}

@ApiSchema({ description: 'A new draft of an expense claim\'s content (all fields replace the draft\'s)' })
export class UpdateExpenseClaimDto extends CreateExpenseClaimDto {}

@ApiSchema({ description: 'A line of a bill or expense claim, with the amounts the server computed' })
export class BillLineDto {
  @ApiProperty({ description: 'Line number, from 1', example: 1 }) lineNo: number;
  @ApiProperty({ description: 'Account the line posts to', format: 'uuid', example: '3c2d1e0f-9a8b-4c7d-8e6f-5a4b3c2d1e0f' }) accountId: string;
  @ApiProperty({ description: 'Description; null when none', type: String, nullable: true, example: 'Printer paper' }) description: string | null;
  @ApiProperty({ description: 'Quantity', example: '10.0000' }) quantity: string;
  @ApiProperty({ description: 'Unit price', example: '25.0000' }) unitPrice: string;
  @ApiProperty({ description: 'Tax code; null when untaxed', type: String, nullable: true, format: 'uuid', example: null }) taxCodeId: string | null;
  @ApiProperty({ description: 'Net amount (the currency\'s minor units)', example: '250.00' }) net: string;
  @ApiProperty({ description: 'Input tax', example: '50.00' }) tax: string;
  @ApiProperty({ description: 'Net + tax', example: '300.00' }) gross: string;
  @ApiProperty({ description: 'Day of the expense (claims); null for bills', type: String, nullable: true, example: null }) expenseDate: string | null;
  @ApiProperty({ description: 'Receipt reference (claims); null when none', type: String, nullable: true, example: null }) receiptRef: string | null;
}

@ApiSchema({ description: 'An approval decision on a bill or claim (submit, approve, reject, comment, edit: its content replaced), in the order made' })
export class BillDecisionDto {
  @ApiProperty({ description: 'Decision id', format: 'uuid', example: '6f5e4d3c-2b1a-4c9d-8e7f-6a5b4c3d2e1f' }) id: string;
  @ApiProperty({ description: 'submit, approve, reject, comment, or edit (the content replaced: its author may not approve it)', enum: ['submit', 'approve', 'reject', 'comment', 'edit'], example: 'approve' }) decision: string;
  @ApiProperty({ description: 'Which submission of the document it belongs to (approvals count per submission)', example: 1 }) submissionNo: number;
  @ApiProperty({ description: 'Who decided (user id, or service:<name>)', example: 'c0ffee00-0000-4000-8000-000000000001' }) actorId: string;
  @ApiProperty({ description: 'The role they acted in', example: 'admin' }) actorRole: string;
  @ApiProperty({ description: 'Reason or comment; null when none', type: String, nullable: true, example: 'ok' }) comment: string | null;
  @ApiProperty({ description: 'When', example: '2026-01-11T09:00:00.000Z' }) createdAt: Date;
}

@ApiSchema({ description: 'A vendor bill or an employee expense claim, with its lines, approvals and open amount' })
export class BillDto {
  @ApiProperty({ description: 'Id', format: 'uuid', example: '7d0f0a4e-3c55-4a49-9a0e-1a7e0b1f2c3d' }) id: string;
  @ApiProperty({ description: 'bill or expense_claim', enum: ['bill', 'expense_claim'], example: 'bill' }) kind: string;
  @ApiProperty({ description: 'The vendor (bills); null for claims', type: String, nullable: true, format: 'uuid', example: '0b8f5f8e-9a43-4a52-8c1b-1f2a3b4c5d6e' }) vendorId: string | null;
  @ApiProperty({ description: 'The claimant\'s user id (claims); null for bills', type: String, nullable: true, example: null }) claimantId: string | null;
  @ApiProperty({ description: 'The vendor\'s bill number; null when none', type: String, nullable: true, example: 'INV-4711' }) billNumber: string | null;
  @ApiProperty({ description: 'Date of the bill or claim', example: '2026-01-10' }) billDate: string;
  @ApiProperty({ description: 'Due date', example: '2026-02-09' }) dueDate: string;
  @ApiProperty({ description: 'Currency', example: 'EUR' }) currency: string;
  @ApiProperty({ description: 'Memo', example: 'Office supplies January' }) memo: string;
  @ApiProperty({ description: 'Sum of the net amounts', example: '250.00' }) subtotal: string;
  @ApiProperty({ description: 'Sum of the input tax', example: '50.00' }) taxTotal: string;
  @ApiProperty({ description: 'Total including tax', example: '300.00' }) total: string;
  @ApiProperty({ description: 'What is still to be paid (the total until posted)', example: '300.00' }) openAmount: string;
  @ApiProperty({ description: 'draft, submitted, rejected (editable again), posted, partially_paid, paid, or voided (never to be posted)', enum: BILL_STATUSES, example: 'posted' }) status: string;
  @ApiProperty({ description: 'Approvals the applicable rule asks for (set at submission); null before', type: Number, nullable: true, example: 1 }) approvalsRequired: number | null;
  @ApiProperty({ description: 'Roles that may approve (set at submission); null before', type: [String], nullable: true, example: ['owner', 'admin'] }) approverRoles: string[] | null;
  @ApiProperty({ description: 'Distinct approvals of the current submission', example: 1 }) approvalsGiven: number;
  @ApiProperty({ description: 'Reason of the latest rejection; null when none', type: String, nullable: true, example: null }) rejectionReason: string | null;
  @ApiProperty({ description: 'Rate the bill posts at (base units per unit): the client\'s (rate of the draft), else the rate of the bill date fixed at posting; null until then', type: String, nullable: true, example: '1.0000000000' }) rate: string | null;
  @ApiProperty({ description: 'Total in the base currency credited to accounts payable; null until posted', type: String, nullable: true, example: '300.00' }) baseTotal: string | null;
  @ApiProperty({ description: 'The posting; null until posted', type: String, nullable: true, format: 'uuid', example: null }) journalEntryId: string | null;
  @ApiProperty({ description: 'A posted bill or claim voided: the date of the reversal of its posting; null otherwise', type: String, nullable: true, format: 'date', example: null }) voidedOn: string | null;
  @ApiProperty({ description: 'A posted bill or claim voided: the entry reversing its posting; null otherwise', type: String, nullable: true, format: 'uuid', example: null }) voidEntryId: string | null;
  @ApiProperty({ description: 'Who created it', example: 'c0ffee00-0000-4000-8000-000000000001' }) createdBy: string;
  @ApiProperty({ description: 'When it was created', example: '2026-01-10T09:00:00.000Z' }) createdAt: Date;
  @ApiProperty({ description: 'Lines', type: [BillLineDto] }) lines: BillLineDto[];
  @ApiProperty({ description: 'Every decision, in order', type: [BillDecisionDto] }) decisions: BillDecisionDto[];
}

@ApiSchema({ description: 'A page of bills or expense claims, newest first' })
export class BillPage extends PageInfo {
  @ApiProperty({ description: 'Documents on this page, newest first', type: [BillDto] }) items: BillDto[];
}

export class BillQuery extends PageQuery {
  @ApiPropertyOptional({ description: 'Only this vendor\'s bills', format: 'uuid', example: '0b8f5f8e-9a43-4a52-8c1b-1f2a3b4c5d6e' }) @IsOptional() @IsUUID() vendorId?: string;
  @ApiPropertyOptional({ description: 'Only documents in this stored status', enum: ['draft', 'submitted', 'rejected', 'posted', 'voided'], example: 'submitted' })
  @IsOptional() @IsIn(['draft', 'submitted', 'rejected', 'posted', 'voided']) status?: string;
}

@ApiSchema({ description: 'Why a document is voided (and, for a posted bill or claim, when)' })
export class VoidBillDto {
  @ApiPropertyOptional({ description: 'Why it will never be posted, or is cancelled (kept in the audit trail and the event)', example: 'entered twice' }) @IsOptional() @IsString() @Length(1, 2000) reason?: string;
  @ApiPropertyOptional({ description: 'A posted bill or expense claim: the date of the reversal of its posting, in an open period and not before the bill or claim date nor its last allocation or allocation reversal (default: today, or that date when later). Not used for a draft or rejected document', example: '2026-02-20' })
  @IsOptional() @CalendarDate('date') date?: string;
}

@ApiSchema({ description: 'A comment or reason on a decision' })
export class DecisionDto {
  @ApiPropertyOptional({ description: 'Comment (approve, comment) ', example: 'checked against the delivery note' }) @IsOptional() @IsString() @Length(1, 2000) comment?: string;
}

@ApiSchema({ description: 'The reason of a rejection' })
export class RejectDto {
  @ApiProperty({ description: 'Why the document goes back to its author', example: 'wrong cost account' }) @IsString() @Length(1, 1000) reason: string;
}

@ApiSchema({ description: 'A comment on a bill or claim (audited, listed with the decisions)' })
export class CommentDto {
  @ApiProperty({ description: 'The comment', example: 'please attach the delivery note' }) @IsString() @Length(1, 2000) comment: string;
}

// ---------------------------------------------------------------- payments and allocations
@ApiSchema({ description: 'An allocation of (part of) a payment to an open bill' })
export class AllocationInputDto {
  @ApiProperty({ description: 'The bill or claim (of the payment\'s vendor or claimant)', format: 'uuid', example: '7d0f0a4e-3c55-4a49-9a0e-1a7e0b1f2c3d' }) @IsUUID() billId: string;
  @ApiProperty({ description: 'Amount in the payment currency (positive, at most the open amount)', example: '100.00' }) @Amount('amount') amount: string;
}

@ApiSchema({ description: 'A payment to a vendor (or a reimbursement to a claimant), with its allocations' })
export class CreateBillPaymentDto {
  @ApiPropertyOptional({ description: 'The vendor paid (or claimantId)', format: 'uuid', example: '0b8f5f8e-9a43-4a52-8c1b-1f2a3b4c5d6e' }) @IsOptional() @IsUUID() vendorId?: string;
  @ApiPropertyOptional({ description: 'The claimant reimbursed (user id; or vendorId)', example: 'c0ffee00-0000-4000-8000-000000000002' }) @IsOptional() @IsString() @Length(1, 200) claimantId?: string;
  @ApiProperty({ description: 'Date of the payment', example: '2026-01-20' }) @CalendarDate('paymentDate') paymentDate: string;
  @ApiProperty({ description: 'Amount paid', example: '100.00' }) @Amount('amount') amount: string;
  @ApiPropertyOptional({ description: 'Currency; absent: the base currency. Allocated bills must be in it', example: 'EUR' })
  @IsOptional() @Currency('currency') currency?: string;
  @ApiPropertyOptional({ description: 'Rate paid at, base units per unit of the currency (default: the rate effective on the payment date; ignored for the base currency)', example: '1.0850000000' })
  @IsOptional() @Rate('rate') rate?: string;
  @ApiPropertyOptional({ description: RATE_OVERRIDE_DOC, example: false }) @IsOptional() @IsBoolean() rateOverride?: boolean;
  @ApiProperty({ description: 'The bank or cash account credited', format: 'uuid', example: '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d' }) @IsUUID() bankAccountId: string;
  @ApiPropertyOptional({ description: 'How it was paid', enum: PAYMENT_METHODS, default: 'bank_transfer', example: 'bank_transfer' }) @IsOptional() @IsIn(PAYMENT_METHODS) method?: string;
  @ApiPropertyOptional({ description: 'Bank reference', example: 'TRX-2026-0001' }) @IsOptional() @IsString() @Length(1, 200) reference?: string;
  @ApiPropertyOptional({ description: 'Allocations to open bills; what is left stays as a credit with the vendor', type: [AllocationInputDto] })
  @IsOptional() @ArrayMaxSize(200) @NestedList(() => AllocationInputDto, 'an allocation') allocations?: AllocationInputDto[];
}

@ApiSchema({ description: 'Allocating what is left of a payment to an open bill' })
export class CreateAllocationDto {
  @ApiProperty({ description: 'The bill or claim', format: 'uuid', example: '7d0f0a4e-3c55-4a49-9a0e-1a7e0b1f2c3d' }) @IsUUID() billId: string;
  @ApiProperty({ description: 'Amount in the payment currency', example: '100.00' }) @Amount('amount') amount: string;
  @ApiPropertyOptional({ description: 'Date of the allocation; absent: the payment date. Not before the payment date, the bill date, the last reversal of an allocation of the payment nor that of an allocation to the bill (400 validation_failed)', example: '2026-01-25' }) @IsOptional() @CalendarDate('date') date?: string;
}

@ApiSchema({ description: 'A vendor pays back credit: what of a payment is neither allocated nor refunded' })
export class RefundVendorCreditDto {
  @ApiProperty({ description: 'Amount received back, in the payment currency (at most what is left of the payment)', example: '50.00' }) @Amount('amount') amount: string;
  @ApiPropertyOptional({ description: 'Date received; absent: today. Not before the payment date nor the last reversal of an allocation of the payment (400 validation_failed)', example: '2026-02-20' }) @IsOptional() @CalendarDate('date') date?: string;
  @ApiPropertyOptional({ description: 'Bank or cash account debited; absent: the payment\'s', format: 'uuid', example: '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d' }) @IsOptional() @IsUUID() bankAccountId?: string;
  @ApiPropertyOptional({ description: 'Rate received at, base units per unit of the payment currency (default: the rate effective on the date; ignored for the base currency)', example: '1.0850000000' })
  @IsOptional() @Rate('rate') rate?: string;
  @ApiPropertyOptional({ description: RATE_OVERRIDE_DOC, example: false }) @IsOptional() @IsBoolean() rateOverride?: boolean;
  @ApiPropertyOptional({ description: 'Reference', example: 'REFUND-77' }) @IsOptional() @IsString() @Length(0, 200) reference?: string;
}

@ApiSchema({ description: 'Credit paid back by a vendor' })
export class BillPaymentRefundDto {
  @ApiProperty({ description: 'Refund id', format: 'uuid', example: '2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e' }) id: string;
  @ApiProperty({ description: 'Date', example: '2026-02-20' }) date: string;
  @ApiProperty({ description: 'Amount in the payment currency', example: '50.00' }) amount: string;
  @ApiProperty({ description: 'Rate received at (the client\'s, else the rate of the refund date)', example: '1.0000000000' }) rate: string;
  @ApiProperty({ description: 'Base amount of the payment\'s credit it used (at the payment\'s rate)', example: '50.00' }) paymentBaseAmount: string;
  @ApiProperty({ description: 'Bank or cash account debited', format: 'uuid', example: '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d' }) bankAccountId: string;
  @ApiProperty({ description: 'Reference; null when none', type: String, nullable: true, example: 'REFUND-77' }) reference: string | null;
  @ApiProperty({ description: 'The posting (bank debit, AP credit, realized FX)', format: 'uuid', example: '5a6b7c8d-1e2f-4a3b-8c4d-5e6f7a8b9c0d' }) journalEntryId: string;
}

@ApiSchema({ description: 'Reversing an allocation (e.g. a bounced payment): a new allocation of the opposite amount' })
export class ReverseAllocationDto {
  @ApiPropertyOptional({ description: 'Date of the reversal; absent: the original allocation\'s date', example: '2026-01-28' }) @IsOptional() @CalendarDate('date') date?: string;
}

@ApiSchema({ description: 'An allocation of a payment to a bill (negative: a reversal)' })
export class AllocationDto {
  @ApiProperty({ description: 'Allocation id', format: 'uuid', example: '8e7d6c5b-4a39-4b2c-9d1e-0f9e8d7c6b5a' }) id: string;
  @ApiProperty({ description: 'The payment', format: 'uuid', example: '9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d' }) paymentId: string;
  @ApiProperty({ description: 'The bill or claim', format: 'uuid', example: '7d0f0a4e-3c55-4a49-9a0e-1a7e0b1f2c3d' }) billId: string;
  @ApiProperty({ description: 'Date', example: '2026-01-20' }) date: string;
  @ApiProperty({ description: 'Amount in the payment currency (negative for a reversal)', example: '100.00' }) amount: string;
  @ApiProperty({ description: 'Base amount of the bill it settles (at the bill\'s rate; for a bill an FX revaluation revalued, of what it carries since, at that rate)', example: '100.00' }) billBaseAmount: string;
  @ApiProperty({ description: 'Base amount of the payment it uses (at the payment\'s rate)', example: '100.00' }) paymentBaseAmount: string;
  @ApiProperty({ description: 'Realized FX result in the base currency: positive a loss, negative a gain', example: '0.00' }) fxDifference: string;
  @ApiProperty({ description: 'The allocation it reverses; null for an allocation', type: String, nullable: true, format: 'uuid', example: null }) reversesAllocationId: string | null;
  @ApiProperty({ description: 'The reversing allocation; null while not reversed', type: String, nullable: true, format: 'uuid', example: null }) reversedByAllocationId: string | null;
  @ApiProperty({ description: 'The entry posting its FX result (own entry for later allocations and reversals); null when none', type: String, nullable: true, format: 'uuid', example: null }) journalEntryId: string | null;
  @ApiProperty({ description: 'When', example: '2026-01-20T10:00:00.000Z' }) createdAt: Date;
}

@ApiSchema({ description: 'A payment to a vendor or claimant with its allocations' })
export class BillPaymentDto {
  @ApiProperty({ description: 'Payment id', format: 'uuid', example: '9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d' }) id: string;
  @ApiProperty({ description: 'The vendor paid; null for a reimbursement', type: String, nullable: true, format: 'uuid', example: '0b8f5f8e-9a43-4a52-8c1b-1f2a3b4c5d6e' }) vendorId: string | null;
  @ApiProperty({ description: 'The claimant reimbursed; null for a vendor payment', type: String, nullable: true, example: null }) claimantId: string | null;
  @ApiProperty({ description: 'Date', example: '2026-01-20' }) paymentDate: string;
  @ApiProperty({ description: 'Currency', example: 'EUR' }) currency: string;
  @ApiProperty({ description: 'Amount', example: '100.00' }) amount: string;
  @ApiProperty({ description: 'Rate paid at (the client\'s, else the rate of the payment date)', example: '1.0000000000' }) rate: string;
  @ApiProperty({ description: 'Amount in the base currency credited to the bank', example: '100.00' }) baseAmount: string;
  @ApiProperty({ description: 'What is neither allocated nor refunded (a credit with the vendor)', example: '0.00' }) unallocated: string;
  @ApiProperty({ description: 'Bank or cash account credited', format: 'uuid', example: '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d' }) bankAccountId: string;
  @ApiProperty({ description: 'Method', enum: PAYMENT_METHODS, example: 'bank_transfer' }) method: string;
  @ApiProperty({ description: 'Reference; null when none', type: String, nullable: true, example: 'TRX-2026-0001' }) reference: string | null;
  @ApiProperty({ description: 'The posting', format: 'uuid', example: '5a6b7c8d-1e2f-4a3b-8c4d-5e6f7a8b9c0d' }) journalEntryId: string;
  @ApiProperty({ description: 'When', example: '2026-01-20T10:00:00.000Z' }) createdAt: Date;
  @ApiProperty({ description: 'Allocations, oldest first', type: [AllocationDto] }) allocations: AllocationDto[];
  @ApiProperty({ description: 'Credit paid back by the vendor, oldest first', type: [BillPaymentRefundDto] }) refunds: BillPaymentRefundDto[];
}

@ApiSchema({ description: 'A page of bill payments, newest first' })
export class BillPaymentPage extends PageInfo {
  @ApiProperty({ description: 'Payments on this page, newest first', type: [BillPaymentDto] }) items: BillPaymentDto[];
}

export class PaymentQuery extends PageQuery {
  @ApiPropertyOptional({ description: 'Only this vendor\'s payments', format: 'uuid', example: '0b8f5f8e-9a43-4a52-8c1b-1f2a3b4c5d6e' }) @IsOptional() @IsUUID() vendorId?: string;
}

// ---------------------------------------------------------------- aging
export class AgingQuery {
  @ApiPropertyOptional({ description: 'Aging at the end of this day (default: today)', example: '2026-01-31' }) @IsOptional() @CalendarDate('asOf') asOf?: string;
  @ApiPropertyOptional({ description: 'Bucket edges in days past due, ascending (default 30,60,90)', example: '15,30,60' })
  @IsOptional() @IsString() @Length(1, 60) buckets?: string;
  @ApiPropertyOptional({ description: 'json (default) or csv', enum: ['json', 'csv'], example: 'json' }) @IsOptional() @IsIn(['json', 'csv']) format?: string;
}

@ApiSchema({ description: 'Open amounts of one party by bucket, in the base currency' })
export class AgingRowDto {
  @ApiProperty({ description: 'vendor or employee', example: 'vendor' }) partyType: string;
  @ApiProperty({ description: 'Vendor id or claimant user id', example: '0b8f5f8e-9a43-4a52-8c1b-1f2a3b4c5d6e' }) partyId: string;
  @ApiProperty({ description: 'Vendor name; null for a claimant', type: String, nullable: true, example: 'Office Supplies GmbH' }) partyName: string | null;
  @ApiProperty({ description: 'Amount per bucket (current, then the day ranges); unapplied credits count as current, negative',
    type: 'object', additionalProperties: { type: 'string' }, example: { current: '300.00', '1-30': '0.00', '31-60': '0.00', '61-90': '0.00', '>90': '0.00' } }) buckets: Record<string, string>;
  @ApiProperty({ description: 'Sum of the buckets', example: '300.00' }) total: string;
}

@ApiSchema({ description: 'Accounts-payable aging as of a date: per party and in total; the total equals the AP control account\'s balance' })
export class AgingReportDto {
  @ApiProperty({ description: 'The day the aging is at the end of', example: '2026-01-31' }) asOf: string;
  @ApiProperty({ description: 'Base currency', example: 'EUR' }) baseCurrency: string;
  @ApiProperty({ description: 'Bucket names in order', type: [String], example: ['current', '1-30', '31-60', '61-90', '>90'] }) buckets: string[];
  @ApiProperty({ description: 'Per party (for a member: the vendors and themselves; other employees\' claims and reimbursements are left out)', type: [AgingRowDto] }) rows: AgingRowDto[];
  @ApiProperty({ description: 'Totals per bucket', type: 'object', additionalProperties: { type: 'string' }, example: { current: '300.00', '1-30': '0.00', '31-60': '0.00', '61-90': '0.00', '>90': '0.00' } }) totals: Record<string, string>;
  @ApiProperty({ description: 'Total open (sum of the buckets)', example: '300.00' }) total: string;
  @ApiProperty({ description: 'Balance of the AP control account at asOf (credit positive); equals total, except for a member when other employees have open claims or reimbursements', example: '300.00' }) controlAccountBalance: string;
}
