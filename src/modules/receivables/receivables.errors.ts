import { defineErrorCodes } from '../../platform/errors/catalog.js';

/** Every code the receivables module answers with (besides the ledger's posting codes it passes on). */
export const ReceivablesErrors = defineErrorCodes({
  'customer.not_found': { status: 404, description: 'no customer of this organization has this id' },
  'invoice.not_found': { status: 404, description: 'no invoice or credit note of this organization has this id' },
  'payment.not_found': { status: 404, description: 'no customer payment of this organization has this id' },
  'allocation.not_found': { status: 404, description: 'no allocation of a customer payment has this id' },
  'receivables.settings_missing': { status: 422, description: 'the receivables settings (AR control account) are not set: PUT /receivables/settings first' },
  'receivables.deferred_account_missing': { status: 422, description: 'a line has a service period but no deferred revenue account is set' },
  'receivables.unknown_customer': { status: 422, description: 'the customer does not exist in this organization' },
  'receivables.customer_archived': { status: 422, description: 'the customer is archived' },
  'receivables.unknown_tax_code': { status: 422, description: 'the tax code does not exist in this organization, or is archived' },
  'receivables.account_not_postable': { status: 422, description: 'the account does not exist in this organization, is a group account, or is archived' },
  'receivables.total_mismatch': { status: 400, description: 'the total sent differs from the total the server computed from the lines' },
  'receivables.invalid_amount': { status: 400, description: 'an amount has more decimals than its currency allows, or is zero' },
  'receivables.not_draft': { status: 409, description: 'the invoice is not a draft (issued invoices are immutable)' },
  'receivables.invalid_status': { status: 409, description: 'the document is not in a state that allows this' },
  'receivables.has_allocations': { status: 409, description: 'a payment or credit note is allocated to the invoice: it cannot be voided' },
  'receivables.over_allocation': { status: 409, description: 'the allocation is larger than what is open on the invoice' },
  'receivables.exceeds_payment': { status: 422, description: 'the allocations are larger than the payment (or its unallocated remainder)' },
  'receivables.exceeds_credit': { status: 409, description: 'the refund is larger than the customer credit left on the payment (neither allocated nor refunded)' },
  'receivables.wrong_customer': { status: 422, description: 'the invoice belongs to another customer than the payment' },
  'receivables.currency_mismatch': { status: 422, description: 'the payment and the invoice are in different currencies: a payment settles invoices of its own currency only (record it in the invoice currency at the rate received; the realized FX difference is posted)' },
  'receivables.already_reversed': { status: 409, description: 'the allocation is already reversed' },
  'receivables.credit_lines': { status: 422, description: 'a credit note line names no line of the invoice, or credits more than the line' },
  'receivables.fx_accounts_missing': { status: 422, description: 'a realized FX difference needs the FX gain and loss accounts in the ledger settings' },
  'receivables.buckets': { status: 400, description: 'buckets must be 1 to 10 ascending positive whole numbers of days, e.g. 15,30,60' },
});
