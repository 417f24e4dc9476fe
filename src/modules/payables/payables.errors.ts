import { defineErrorCodes } from '../../platform/errors/catalog.js';

/** Every code the payables module answers with (posting rejections keep the ledger's codes, e.g. ledger.period_closed). */
export const PayablesErrors = defineErrorCodes({
  'vendor.not_found': { status: 404, description: 'no vendor of this organization has this id' },
  'bill.not_found': { status: 404, description: 'no bill of this organization has this id' },
  'expense_claim.not_found': { status: 404, description: 'no expense claim of this organization (that the caller may see) has this id' },
  'claimant.not_found': { status: 404, description: 'the person has no expense claims in this organization' },
  'bill_payment.not_found': { status: 404, description: 'no bill payment of this organization has this id' },
  'bill_allocation.not_found': { status: 404, description: 'no allocation of a bill payment has this id' },
  // input checked by the services (nothing is written)
  'payables.total_mismatch': { status: 400, description: 'the total sent by the client differs from the total the server computed' },
  'payables.control_account_in_use': { status: 409, description: 'the AP account in the settings still carries a balance (open bills or payments): it cannot be replaced yet' },
  'payables.invalid_amount': { status: 400, description: 'an amount of a payment, allocation or refund is not positive, or has more decimals than its currency allows' },
  'payables.account_not_allowed': { status: 422, description: 'a line account is not an active, postable expense or asset account of this organization' },
  'payables.bank_account_not_allowed': { status: 422, description: 'the bank account is not an active, postable asset account' },
  'payables.vendor_archived': { status: 422, description: 'the vendor is archived' },
  'payables.currency_mismatch': { status: 422, description: 'a currency differs from the document\'s (claim lines, payment and allocated bills share one currency: pay a bill in its own currency at the rate of the payment date; the realized FX result is posted)' },
  'payables.not_editable': { status: 409, description: 'the bill is not a draft (or a rejected bill): it cannot be edited or submitted' },
  'payables.not_submitted': { status: 409, description: 'the bill is not waiting for approval' },
  'payables.own_bill': { status: 403, description: 'whoever created, last edited or submitted a bill (or is the claimant of a claim) cannot approve it' },
  'payables.already_approved': { status: 409, description: 'this person has already approved this submission' },
  'payables.role_not_allowed': { status: 403, description: 'the approval rule of this amount does not allow the caller\'s role to approve' },
  'payables.not_open': { status: 409, description: 'the bill is not posted and open' },
  'payables.over_allocation': { status: 409, description: 'the allocation is larger than the bill\'s open amount or than what is left of the payment' },
  'payables.exceeds_credit': { status: 409, description: 'the refund is larger than the credit with the vendor left on the payment (neither allocated nor refunded)' },
  'payables.wrong_party': { status: 422, description: 'the bill belongs to another vendor (or claimant) than the payment' },
  'payables.allocation_reversed': { status: 409, description: 'the allocation is already reversed, or is itself a reversal' },
  'payables.invalid_rules': { status: 400, description: 'approval rules: thresholds must be distinct, approvals 0-10, roles among owner, admin, accountant' },
  'payables.empty': { status: 400, description: 'a bill or claim needs at least one line' },
  'payables.due_before_bill': { status: 400, description: 'the due date is before the bill date' },
  'payables.buckets': { status: 400, description: 'buckets must be 1 to 10 ascending positive whole numbers of days, e.g. 15,30,60' },
  'payables.claim_not_own': { status: 403, description: 'a member may only change and submit their own expense claims' },
});
