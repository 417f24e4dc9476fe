import type { DomainEventType } from '../../platform/events/events.js';

const uuid = { type: 'string', format: 'uuid' };
const money = { type: 'string', pattern: '^-?\\d+(\\.\\d+)?$' };
const date = { type: 'string', format: 'date' };

/** The domain events the receivables module emits (outbox, in the business transaction). */
export const RECEIVABLES_EVENT_TYPES: DomainEventType[] = [
  {
    type: 'invoice.issued', version: 1, category: 'finance',
    description: 'A draft invoice or credit note was issued: numbered and posted to the ledger (an invoice of 0.00 posts nothing: entryId null, and invoice.paid follows). '
      + 'A credit note\'s names the invoice it credits (creditedInvoiceId)',
    payloadSchema: {
      type: 'object', additionalProperties: false,
      required: ['invoiceId', 'kind', 'number', 'customerId', 'invoiceDate', 'dueDate', 'currency', 'total', 'entryId'],
      properties: { invoiceId: uuid, kind: { enum: ['invoice', 'credit_note'] }, number: { type: 'string' }, customerId: uuid, invoiceDate: date, dueDate: date, currency: { type: 'string' }, total: money,
        entryId: { type: ['string', 'null'], format: 'uuid', description: 'the journal entry of the issue; null for an invoice of 0.00 (nothing posted)' },
        // added to version 1 (an added optional property breaks no consumer); credit notes issued before it carry none
        creditedInvoiceId: { ...uuid, description: 'kind credit_note only: the invoice the credit note credits (absent for an invoice, and in events of credit notes issued before it was added)' } },
    },
    example: { invoiceId: '5f0c7c1e-8d7a-4b43-9a43-2f1c9b1f7a10', kind: 'invoice', number: 'INV-2026-000001', customerId: '0b8f3f7e-3c1e-4c55-9d8a-5a1f7e2b9c01', invoiceDate: '2026-01-10', dueDate: '2026-02-09', currency: 'EUR', total: '1200.00', entryId: '8a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b' },
  },
  {
    type: 'invoice.paid', version: 1, category: 'finance',
    description: 'An invoice\'s open amount reached zero (by payments or credit notes; an invoice of 0.00 at its issue)',
    payloadSchema: {
      type: 'object', additionalProperties: false, required: ['invoiceId', 'number', 'customerId', 'total', 'paidOn'],
      properties: { invoiceId: uuid, number: { type: 'string' }, customerId: uuid, total: money, paidOn: date },
    },
    example: { invoiceId: '5f0c7c1e-8d7a-4b43-9a43-2f1c9b1f7a10', number: 'INV-2026-000001', customerId: '0b8f3f7e-3c1e-4c55-9d8a-5a1f7e2b9c01', total: '1200.00', paidOn: '2026-02-01' },
  },
  {
    type: 'invoice.overdue', version: 1, category: 'finance',
    description: 'An issued invoice passed its due date with an amount still open (once per invoice, noted by the daily check)',
    payloadSchema: {
      type: 'object', additionalProperties: false,
      required: ['invoiceId', 'number', 'customerId', 'dueDate', 'currency', 'total', 'amountDue'],
      properties: { invoiceId: uuid, number: { type: 'string' }, customerId: uuid, dueDate: date, currency: { type: 'string' }, total: money, amountDue: money },
    },
    example: { invoiceId: '5f0c7c1e-8d7a-4b43-9a43-2f1c9b1f7a10', number: 'INV-2026-000001', customerId: '0b8f3f7e-3c1e-4c55-9d8a-5a1f7e2b9c01', dueDate: '2026-02-09', currency: 'EUR', total: '1200.00', amountDue: '700.00' },
  },
  {
    type: 'invoice.voided', version: 1, category: 'finance',
    description: 'An issued invoice was voided: its posting was reversed (an invoice of 0.00 posted nothing: reversalEntryId null)',
    payloadSchema: {
      type: 'object', additionalProperties: false, required: ['invoiceId', 'number', 'customerId', 'voidedOn', 'reversalEntryId'],
      properties: {
        invoiceId: uuid, number: { type: 'string' }, customerId: uuid, voidedOn: date,
        reversalEntryId: { type: ['string', 'null'], format: 'uuid', description: 'the reversal entry; null for an invoice of 0.00 (nothing to reverse)' },
      },
    },
    example: { invoiceId: '5f0c7c1e-8d7a-4b43-9a43-2f1c9b1f7a10', number: 'INV-2026-000001', customerId: '0b8f3f7e-3c1e-4c55-9d8a-5a1f7e2b9c01', voidedOn: '2026-01-12', reversalEntryId: '8a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b' },
  },
  {
    type: 'payment.received', version: 1, category: 'finance',
    description: 'A customer payment was recorded and posted (bank debit, AR credit), with its allocations',
    payloadSchema: {
      type: 'object', additionalProperties: false, required: ['paymentId', 'customerId', 'paymentDate', 'currency', 'amount', 'allocated', 'entryId'],
      properties: { paymentId: uuid, customerId: uuid, paymentDate: date, currency: { type: 'string' }, amount: money, allocated: money, entryId: uuid },
    },
    example: { paymentId: '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f', customerId: '0b8f3f7e-3c1e-4c55-9d8a-5a1f7e2b9c01', paymentDate: '2026-02-01', currency: 'EUR', amount: '500.00', allocated: '500.00', entryId: '8a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b' },
  },
  {
    type: 'payment.allocated', version: 1, category: 'finance',
    description: 'Customer credit (a payment\'s unallocated remainder) was allocated to an invoice (POST .../payments/{customerPaymentId}/allocations): one event per '
      + 'allocation, in the order of the request. The allocations a payment makes when it is recorded are in its payment.received (allocated). invoiceOpenAmount and '
      + 'invoiceStatus are the invoice\'s after the allocation (an allocation that pays it in full emits invoice.paid too), paymentUnallocated the credit left after it; '
      + 'entryId the entry that posted the realized FX of the request\'s allocations, null when there was none',
    payloadSchema: {
      type: 'object', additionalProperties: false,
      required: ['allocationId', 'paymentId', 'invoiceId', 'invoiceNumber', 'customerId', 'date', 'currency', 'amount', 'invoiceOpenAmount', 'invoiceStatus',
        'paymentUnallocated', 'entryId'],
      properties: {
        allocationId: uuid, paymentId: uuid, invoiceId: uuid, invoiceNumber: { type: 'string' }, customerId: uuid, date,
        currency: { type: 'string' }, amount: { ...money, description: 'what was allocated (positive), in the payment and invoice currency' },
        invoiceOpenAmount: { ...money, description: 'what is open on the invoice after the allocation' },
        invoiceStatus: { enum: ['partially_paid', 'paid'] },
        paymentUnallocated: { ...money, description: 'the customer credit on the payment after the allocation: what of it is neither allocated nor refunded' },
        entryId: { type: ['string', 'null'], format: 'uuid', description: 'the entry posting the realized FX of the allocations (payment and invoice at different rates); null when none' },
      },
    },
    example: {
      allocationId: '2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a', paymentId: '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f', invoiceId: '5f0c7c1e-8d7a-4b43-9a43-2f1c9b1f7a10',
      invoiceNumber: 'INV-2026-000001', customerId: '0b8f3f7e-3c1e-4c55-9d8a-5a1f7e2b9c01', date: '2026-02-02', currency: 'EUR', amount: '500.00',
      invoiceOpenAmount: '700.00', invoiceStatus: 'partially_paid', paymentUnallocated: '0.00', entryId: null,
    },
  },
  {
    type: 'payment.allocation_reversed', version: 1, category: 'finance',
    description: 'An allocation of a customer payment to an invoice was reversed (a bounced payment, a mistake): the amount is open on the invoice again '
      + 'and customer credit on the payment again (invoice.paid, emitted when the allocation paid the invoice in full, is not withdrawn: invoiceStatus says '
      + 'what the invoice is now). allocationId is the new reversing allocation, reversesAllocationId the one reversed; entryId the entry that reversed '
      + 'the realized FX of the original, null when it had none',
    payloadSchema: {
      type: 'object', additionalProperties: false,
      required: ['allocationId', 'reversesAllocationId', 'paymentId', 'invoiceId', 'invoiceNumber', 'customerId', 'date', 'currency', 'amount', 'invoiceOpenAmount',
        'invoiceStatus', 'paymentUnallocated', 'entryId'],
      properties: {
        allocationId: uuid, reversesAllocationId: uuid, paymentId: uuid, invoiceId: uuid, invoiceNumber: { type: 'string' }, customerId: uuid, date,
        currency: { type: 'string' }, amount: { ...money, description: 'what was un-allocated (positive), in the payment and invoice currency' },
        invoiceOpenAmount: { ...money, description: 'what is open on the invoice after the reversal' },
        invoiceStatus: { enum: ['issued', 'partially_paid', 'paid'] },
        paymentUnallocated: { ...money, description: 'the customer credit on the payment after the reversal: what of it is neither allocated nor refunded' },
        entryId: { type: ['string', 'null'], format: 'uuid', description: 'the entry reversing the realized FX of the original allocation; null when it had none' },
      },
    },
    example: {
      allocationId: '3e4f5a6b-7c8d-4e9f-8a0b-1c2d3e4f5a6b', reversesAllocationId: '2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a', paymentId: '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f',
      invoiceId: '5f0c7c1e-8d7a-4b43-9a43-2f1c9b1f7a10', invoiceNumber: 'INV-2026-000001', customerId: '0b8f3f7e-3c1e-4c55-9d8a-5a1f7e2b9c01', date: '2026-02-03', currency: 'EUR',
      amount: '500.00', invoiceOpenAmount: '1200.00', invoiceStatus: 'issued', paymentUnallocated: '500.00', entryId: null,
    },
  },
  {
    type: 'payment.refunded', version: 1, category: 'finance',
    description: 'Customer credit (an unallocated payment remainder) was paid back to the customer and posted (AR debit, bank credit)',
    payloadSchema: {
      type: 'object', additionalProperties: false, required: ['refundId', 'paymentId', 'customerId', 'refundDate', 'currency', 'amount', 'entryId'],
      properties: { refundId: uuid, paymentId: uuid, customerId: uuid, refundDate: date, currency: { type: 'string' }, amount: money, entryId: uuid },
    },
    example: { refundId: '7b6a5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d', paymentId: '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f', customerId: '0b8f3f7e-3c1e-4c55-9d8a-5a1f7e2b9c01', refundDate: '2026-02-20', currency: 'EUR', amount: '100.00', entryId: '8a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b' },
  },
];
