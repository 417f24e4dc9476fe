import type { DomainEventType } from '../../platform/events/events.js';

const uuid = { type: 'string', format: 'uuid' };
const money = { type: 'string', pattern: '^-?\\d+(\\.\\d+)?$' };
const billPayload = (extra: Record<string, unknown> = {}, required: string[] = []) => ({
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  required: ['billId', 'kind', 'partyType', 'partyId', 'currency', 'total', ...required],
  properties: {
    billId: uuid,
    kind: { enum: ['bill', 'expense_claim'] },
    partyType: { enum: ['vendor', 'employee'] },
    partyId: { type: 'string' },
    currency: { type: 'string', pattern: '^[A-Z]{3}$' },
    total: money,
    ...extra,
  },
  additionalProperties: false,
});
const example = { billId: '7d0f0a4e-3c55-4a49-9a0e-1a7e0b1f2c3d', kind: 'bill', partyType: 'vendor', partyId: '0b8f5f8e-9a43-4a52-8c1b-1f2a3b4c5d6e', currency: 'EUR', total: '12000.00' };

/** The domain events the payables module emits (payloads carry ids and amounts, never a vendor's contact data). */
export const PAYABLES_EVENT_TYPES: DomainEventType[] = [
  {
    type: 'bill.submitted', version: 1, category: 'finance',
    description: 'A vendor bill was submitted for approval (approvalsRequired approvals of approverRoles are needed)',
    payloadSchema: billPayload({ approvalsRequired: { type: 'integer' }, approverRoles: { type: 'array', items: { type: 'string' } } }, ['approvalsRequired', 'approverRoles']),
    example: { ...example, approvalsRequired: 2, approverRoles: ['owner', 'admin'] },
  },
  {
    type: 'bill.approved', version: 1, category: 'finance',
    description: 'A bill or expense claim got its final approval and was posted to the ledger',
    payloadSchema: billPayload({ journalEntryId: uuid, approvedBy: { type: 'array', items: { type: 'string' } } }, ['journalEntryId', 'approvedBy']),
    example: { ...example, journalEntryId: '5a6b7c8d-1e2f-4a3b-8c4d-5e6f7a8b9c0d', approvedBy: ['user-1', 'user-2'] },
  },
  {
    type: 'bill.rejected', version: 1, category: 'finance',
    description: 'A bill or expense claim was rejected back to its author with a reason',
    payloadSchema: billPayload({ reason: { type: 'string' }, rejectedBy: { type: 'string' } }, ['reason', 'rejectedBy']),
    example: { ...example, reason: 'wrong cost centre', rejectedBy: 'user-2' },
  },
  {
    type: 'bill.voided', version: 1, category: 'finance',
    description: 'A draft or rejected bill or expense claim was voided: it will never be posted (kind says which); or a posted bill or expense claim '
      + 'nothing was allocated to (not paid or reimbursed) was voided: the reversal of its posting is reversalEntryId, dated voidedOn (both null for a document never posted)',
    payloadSchema: billPayload({
      reason: { type: ['string', 'null'] }, voidedBy: { type: 'string' }, voidedOn: { type: ['string', 'null'], format: 'date' }, reversalEntryId: { ...uuid, type: ['string', 'null'] },
    }, ['reason', 'voidedBy']),
    example: { ...example, reason: 'entered twice', voidedBy: 'user_123', voidedOn: null, reversalEntryId: null },
  },
  {
    type: 'bill.paid', version: 1, category: 'finance',
    description: 'A bill or expense claim was paid in full (its open amount reached zero)',
    payloadSchema: billPayload({ paymentId: uuid }, ['paymentId']),
    example: { ...example, paymentId: '9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d' },
  },
  {
    type: 'expense_claim.submitted', version: 1, category: 'finance',
    description: 'A member submitted an employee expense claim for approval',
    payloadSchema: billPayload({ approvalsRequired: { type: 'integer' }, approverRoles: { type: 'array', items: { type: 'string' } } }, ['approvalsRequired', 'approverRoles']),
    example: { ...example, kind: 'expense_claim', partyType: 'employee', partyId: 'user-7', total: '84.50', approvalsRequired: 1, approverRoles: ['owner', 'admin', 'accountant'] },
  },
  {
    type: 'bill_payment.allocation_reversed', version: 1, category: 'finance',
    description: 'An allocation of a bill payment to a bill or expense claim was reversed (a bounced payment, a mistake): the amount is open on the document '
      + 'again and credit on the payment again (bill.paid, emitted when the allocation paid it in full, is not withdrawn: status says what the document is now). '
      + 'allocationId is the new reversing allocation, reversesAllocationId the one reversed; journalEntryId the entry that reversed the realized FX of the '
      + 'original, null when it had none',
    payloadSchema: billPayload({
      allocationId: uuid, reversesAllocationId: uuid, paymentId: uuid, date: { type: 'string', format: 'date' },
      amount: { ...money, description: 'what was un-allocated (positive), in the payment and document currency' },
      openAmount: { ...money, description: 'what is open on the document after the reversal' },
      status: { enum: ['posted', 'partially_paid', 'paid'] },
      paymentUnallocated: { ...money, description: 'the credit on the payment after the reversal: what of it is neither allocated nor refunded' },
      journalEntryId: { ...uuid, type: ['string', 'null'] },
    }, ['allocationId', 'reversesAllocationId', 'paymentId', 'date', 'amount', 'openAmount', 'status', 'paymentUnallocated', 'journalEntryId']),
    example: {
      ...example, allocationId: '4f5a6b7c-8d9e-4f0a-9b1c-2d3e4f5a6b7c', reversesAllocationId: '3e4f5a6b-7c8d-4e9f-8a0b-1c2d3e4f5a6b', paymentId: '9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d',
      date: '2026-02-11', amount: '3000.00', openAmount: '12000.00', status: 'posted', paymentUnallocated: '3000.00', journalEntryId: null,
    },
  },
  {
    type: 'bill_payment.refunded', version: 1, category: 'finance',
    description: 'A vendor paid back credit (a bill payment\'s unallocated part) and it was posted (bank debit, AP credit)',
    payloadSchema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object', additionalProperties: false,
      required: ['refundId', 'paymentId', 'partyType', 'partyId', 'refundDate', 'currency', 'amount', 'journalEntryId'],
      properties: {
        refundId: uuid, paymentId: uuid, partyType: { enum: ['vendor', 'employee'] }, partyId: { type: 'string' }, refundDate: { type: 'string', format: 'date' },
        currency: { type: 'string', pattern: '^[A-Z]{3}$' }, amount: money, journalEntryId: uuid,
      },
    },
    example: { refundId: '2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e', paymentId: '9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d', partyType: 'vendor', partyId: '0b8f5f8e-9a43-4a52-8c1b-1f2a3b4c5d6e', refundDate: '2026-02-20', currency: 'EUR', amount: '50.00', journalEntryId: '5a6b7c8d-1e2f-4a3b-8c4d-5e6f7a8b9c0d' },
  },
];
