import { Injectable } from '@nestjs/common';
import { Decimal } from '../../platform/decimal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { emitEvent } from '../../platform/events/events.js';
import { requestHash } from '../../platform/http/idempotency-key.js';
import { decodeKeyset, page } from '../../platform/http/pagination.js';
import { AuditService } from '../audit/audit.service.js';
import { JournalService, settledReversalsAudit, type PostingLine } from '../ledger/journal.service.js';
import { LedgerErrors } from '../ledger/ledger.errors.js';
import { checkClientRate, paymentHashesOf } from '../ledger/client-rate.js';
import { LedgerService } from '../ledger/ledger.service.js';
import { baseOf, baseShare, D, fitsMinorUnits, fixed, rateText } from '../ledger/money.js';
import { agingBucketNames, parseBucketEdges } from '../ledger/aging.js';
import { agingReport } from './aging.js';
import { PayablesErrors } from './payables.errors.js';
import { laterSettlementOfRevalued, laterUseOfRevaluedCredit, payablesRepository as repo, reversalsAfter, revaluationsOf, type Idempotency } from './payables.repository.js';
import { iso, PayablesService } from './payables.service.js';
import { assertAfterRevaluations, settlePendingReversals } from './revalued-dates.js';
import type {
  AgingReportDto, AllocationDto, BillPaymentDto, BillPaymentPage, CreateAllocationDto, CreateBillPaymentDto, PaymentQuery, RefundVendorCreditDto, ReverseAllocationDto,
} from './payables.dto.js';
import { Clock, today } from '../../platform/clock/clock.js';

type BillRow = NonNullable<Awaited<ReturnType<typeof repo.lockBill>>>;

/** An amount's base value at `rate`, rounded to the base currency's units. */
type PaymentRow = NonNullable<Awaited<ReturnType<typeof repo.lockPayment>>>;
/** The counterparty of a payment's AP lines: its vendor, or the claimant it reimburses. */
const partyOf = (p: PaymentRow) => (p.vendor_id ? { counterpartyType: 'vendor', counterpartyId: p.vendor_id } : { counterpartyType: 'employee', counterpartyId: p.claimant_id! });

/** One allocation worked out before anything is written. */
interface PlannedAllocation {
  bill: BillRow;
  amount: Decimal;
  /** the bill's carried base it settles (at the bill's rate; the last allocation takes what is left, so a paid bill carries 0) */
  billBase: Decimal;
  /** the payment's base it uses (at the payment's rate; the last allocation takes what is left) */
  paymentBase: Decimal;
  paidInFull: boolean;
}

/**
 * Bill payments and their allocations, and the AP aging. A payment posts bank credit / AP debit in one entry,
 * with each allocation's realized FX result (payment base minus the bill's carried base) on the ledger's
 * realized FX gain or loss account. Every bill allocated to is row-locked first, in id order, so concurrent
 * allocations to one bill run one after the other and its open amount never goes below zero.
 */
@Injectable()
export class BillPaymentsService {
  constructor(
    private readonly audit: AuditService,
    private readonly ledger: LedgerService,
    private readonly journal: JournalService,
    private readonly payables: PayablesService,
    private readonly clock: Clock,
  ) {}

  private async baseMu(tx: TenantTx): Promise<{ base: string; baseMu: number }> {
    const base = (await this.ledger.settings(tx)).baseCurrency;
    return { base, baseMu: await this.ledger.currencyUnits(tx, base) };
  }

  /**
   * A payment, allocation or refund amount: positive and in the currency's minor units (what the bills' open amounts
   * and the AP lines are kept in; a finer amount would leave a bill open by a fraction or unbalance the entry).
   */
  private amountOf(value: string, mu: number, currency: string, at: string): Decimal {
    const amount = D(value);
    if (amount.lte(0) || !fitsMinorUnits(amount, mu)) throw PayablesErrors.error('payables.invalid_amount', `${at} must be positive with at most ${mu} decimals for ${currency} (got ${value})`);
    return amount;
  }

  /**
   * Locks and checks a bill for an allocation dated `date` from a payment of this party and currency. Dated before the
   * bill, the allocation would settle what AP does not carry yet: the aging total would leave the AP balance.
   */
  private async openBill(tx: TenantTx, billId: string, party: { vendorId: string | null; claimantId: string | null }, currency: string, date: string, at: string) {
    const b = await repo.lockBill(tx.db, tx.orgId, billId);
    if (!b) throw PayablesErrors.notFound('bill', billId);
    if (b.status !== 'posted') throw PayablesErrors.error('payables.not_open', `${at}: ${b.kind} ${billId} is ${b.status}, not posted`);
    if ((party.vendorId && b.vendor_id !== party.vendorId) || (party.claimantId && b.claimant_id !== party.claimantId)) {
      throw PayablesErrors.error('payables.wrong_party', `${at}: ${b.kind} ${billId} belongs to another ${party.vendorId ? 'vendor' : 'claimant'} than the payment`);
    }
    if (b.currency !== currency) throw PayablesErrors.error('payables.currency_mismatch', `${at}: ${b.kind} ${billId} is in ${b.currency}, the payment in ${currency}`);
    if (date < iso(b.bill_date)) throw PlatformErrors.error('validation_failed', `${at}: the allocation date ${date} is before the ${b.kind === 'bill' ? 'bill' : 'claim'} date ${iso(b.bill_date)} of ${b.kind} ${billId}`);
    // nor before its last allocation reversal (read after the lock: reversals lock the bill too): the reversed allocation
    // settled it until then, and one dated before would settle it twice in between
    const reversedOn = (await reversalsAfter(tx.db, tx.orgId, { billIds: [billId] }, date)).get(billId);
    if (reversedOn) throw PlatformErrors.error('validation_failed', `${at}: the allocation date ${date} is before ${reversedOn}, the date of the last allocation reversal of ${b.kind} ${billId}`);
    const [s] = await repo.settledOf(tx.db, tx.orgId, [billId]);
    return { bill: b, settled: D(s?.amount ?? 0), settledBase: D(s?.base ?? 0) };
  }

  /**
   * What the foreign-currency bills of an allocation (or a payment's allocations), locked by openBill, carry from FX
   * revaluations as of `date`, read once for all of them: under the posting lock (a revaluation in flight has committed
   * its changes), as of no date before their last revaluation, nor before a later allocation of a revalued one. `at`:
   * where each bill is named in the request. Nothing is read for base-currency bills, which are never revalued (pass none).
   */
  private async revaluedBills(tx: TenantTx, bills: { bill: BillRow; at: string }[], date: string): Promise<Map<string, { delta: Decimal; rate: string }>> {
    if (!bills.length) return new Map();
    const ids = bills.map((b) => b.bill.id);
    await assertAfterRevaluations(this.ledger, this.journal, tx, ids, date, bills.length === 1 ? `${bills[0].at}: the allocation` : 'the allocation');
    // what a revalued bill carried before a later settlement is not kept: one dated before it would be valued from today
    const later = await laterSettlementOfRevalued(tx.db, tx.orgId, ids, date);
    if (later) {
      const { bill, at } = bills.find((b) => b.bill.id === later.documentId)!;
      throw PayablesErrors.error('payables.before_later_settlement',
        `${at}: the allocation dated ${date} is before ${later.date}, the date of a later allocation of the FX-revalued ${bill.kind} ${bill.id}: date it on or after ${later.date}`,
        { documentId: bill.id, settledOn: later.date });
    }
    return revaluationsOf(tx.db, tx.orgId, ids, date);
  }

  /**
   * The base `amount` settles of a bill: its share at the bill's rate; for a bill an FX revaluation revalued, at the
   * revaluation's rate from what it carries (its last revalued base), so the realized result is only what the rate moved since.
   */
  private plan(b: { bill: BillRow; settled: Decimal; settledBase: Decimal; revalued?: { delta: Decimal; rate: string } }, amount: Decimal, baseMu: number, at: string, mu: number) {
    const open = D(b.bill.total).minus(b.settled);
    if (amount.gt(open)) {
      throw PayablesErrors.error('payables.over_allocation', `${at}: ${fixed(amount, mu)} is more than the open amount ${fixed(open, mu)} of ${b.bill.kind} ${b.bill.id}`, { open: fixed(open, mu) });
    }
    const paidInFull = amount.eq(open);
    // paid in full: what the bill still carries, so its base reaches exactly 0 (also after allocations valued otherwise before)
    const carried = D(b.bill.base_total!).minus(b.settledBase).plus(b.revalued?.delta ?? 0);
    const billBase = paidInFull ? carried : b.revalued ? carried.minus(baseOf(open.minus(amount), b.revalued.rate, baseMu)) : baseShare(open, amount, b.bill.rate!, baseMu);
    return { bill: b.bill, amount, billBase, paidInFull };
  }

  /** Realized FX lines for a base difference (payment base minus bill base; > 0: a loss) against AP. */
  private async fxLines(tx: TenantTx, diff: Decimal, apAccountId: string, currency: string, party: object, baseMu: number, account?: string): Promise<PostingLine[]> {
    if (diff.isZero()) return [];
    const s = await this.ledger.settings(tx);
    const fxAccount = account ?? (diff.gt(0) ? s.fxLossAccountId : s.fxGainAccountId);
    if (!fxAccount) throw LedgerErrors.error('ledger.fx_accounts_missing', 'configure fxGainAccountId and fxLossAccountId in the ledger settings first');
    const amount = fixed(diff.abs(), baseMu);
    const description = `Realized FX ${diff.gt(0) ? 'loss' : 'gain'}`;
    // the AP side carries only a base amount (0 in the currency): it moves AP's base value, not what is owed
    return diff.gt(0)
      ? [{ accountId: fxAccount, debit: amount, description }, { accountId: apAccountId, currency, baseCredit: amount, description, ...party }]
      : [{ accountId: apAccountId, currency, baseDebit: amount, description, ...party }, { accountId: fxAccount, credit: amount, description }];
  }

  /**
   * Records a payment. `key` (the Idempotency-Key header): the same key with the same request answers the payment
   * recorded first and writes nothing (no entry, event or audit row); with another request it is a 409. Requests with
   * one key run one after the other (repo.lockIdempotencyKey), so concurrent retries record one payment.
   */
  async create(tx: TenantTx, dto: CreateBillPaymentDto, key?: string): Promise<BillPaymentDto> {
    // the request as it is meant (its currency resolved), so a payment sent without currency and then with the base
    // currency is one request (paymentRequestHashes)
    const hashes = key ? await paymentHashesOf(tx, dto, dto.paymentDate) : undefined;
    const idempotency = key && hashes ? { key, requestHash: hashes.requestHash } : undefined;
    if (idempotency) {
      const prior = await this.priorByKey(tx, idempotency, 'payment', hashes!.accepted);
      if (prior) return this.get(tx, prior);
    }
    if (dto.vendorId) {
      const v = await repo.getVendor(tx.db, tx.orgId, dto.vendorId);
      if (!v) throw PayablesErrors.notFound('vendor', dto.vendorId);
    }
    // a reimbursement goes to someone who has claimed expenses here (the claimant's membership is not this module's data)
    if (dto.claimantId && !(await repo.hasClaims(tx.db, tx.orgId, dto.claimantId))) throw PayablesErrors.notFound('claimant', dto.claimantId);
    if (!dto.vendorId === !dto.claimantId) throw PlatformErrors.error('validation_failed', 'give exactly one of vendorId (a vendor payment) or claimantId (a reimbursement)');
    const { base, baseMu } = await this.baseMu(tx);
    const currency = dto.currency ?? base;
    const mu = await this.ledger.currencyUnits(tx, currency);
    const amount = this.amountOf(dto.amount, mu, currency, 'amount');
    const bank = await repo.account(tx.db, tx.orgId, dto.bankAccountId);
    if (!bank) throw LedgerErrors.notFound('account', dto.bankAccountId);
    if (bank.type !== 'asset' || bank.is_group || bank.archived_at) {
      throw PayablesErrors.error('payables.bank_account_not_allowed', `bankAccountId: account ${bank.code} is not an active, postable asset account`);
    }
    const allocations = dto.allocations ?? [];
    for (const [i, a] of allocations.entries()) this.amountOf(a.amount, mu, currency, `allocations[${i}].amount`);
    const allocated = allocations.reduce((s, a) => s.plus(a.amount), D(0));
    if (allocated.gt(amount)) {
      throw PayablesErrors.error('payables.over_allocation', `allocations add up to ${fixed(allocated, mu)}, more than the payment of ${fixed(amount, mu)}`);
    }
    if (new Set(allocations.map((a) => a.billId)).size !== allocations.length) throw PayablesErrors.error('payables.bill_repeated', 'allocations: a bill appears twice');
    // the rate paid at (the bank's) when the client gives one, as for a customer payment; else the rate of the date
    const rate = currency !== base && dto.rate !== undefined ? D(dto.rate) : await this.payables.rateOn(tx, currency, dto.paymentDate);
    // a client's rate far from the table's would post the payment's realized FX at it
    const rateOverride = currency !== base ? await checkClientRate(tx, { currency, date: dto.paymentDate, rate: dto.rate, override: dto.rateOverride, field: 'rate' }) : undefined;
    const baseAmount = baseOf(amount, rate, baseMu);
    const party = { vendorId: dto.vendorId ?? null, claimantId: dto.claimantId ?? null };
    const cp = dto.vendorId ? { counterpartyType: 'vendor', counterpartyId: dto.vendorId } : { counterpartyType: 'employee', counterpartyId: dto.claimantId! };
    const apAccountId = await this.payables.postingAccount(tx); // a payment may be payables' first posting (a vendor credit)
    // AR is an asset too, but no bank account (read under the posting lock, which a settings change drains)
    await this.payables.refuseControlAccounts(tx, [{ id: bank.id, code: bank.code, field: 'bankAccountId' }]);

    // lock the bills in id order (two payments to the same bills never wait on each other in a circle), after the
    // posting lock (postingAccount), as every flow of payables takes them
    const order = allocations.map((a, i) => ({ a, i })).sort((x, y) => x.a.billId.localeCompare(y.a.billId));
    const planned: (PlannedAllocation & { index: number })[] = [];
    let usedBase = D(0);
    let used = D(0);
    const opened = [];
    for (const { a, i } of order) opened.push({ a, i, at: `allocations[${i}]`, open: await this.openBill(tx, a.billId, party, currency, dto.paymentDate, `allocations[${i}]`) });
    const revalued = currency !== base ? await this.revaluedBills(tx, opened.map((o) => ({ bill: o.open.bill, at: o.at })), dto.paymentDate) : new Map();
    for (const { a, i, at, open } of opened) {
      const p = this.plan({ ...open, revalued: revalued.get(open.bill.id) }, D(a.amount), baseMu, at, mu);
      const paymentBase = used.plus(p.amount).eq(amount) ? baseAmount.minus(usedBase) : baseShare(amount.minus(used), p.amount, rate, baseMu);
      used = used.plus(p.amount);
      usedBase = usedBase.plus(paymentBase);
      planned.push({ ...p, paymentBase, index: i });
    }
    planned.sort((x, y) => x.index - y.index);

    const fxRate = currency === base ? {} : { rate: rate.toFixed() };
    const lines: PostingLine[] = [];
    for (const p of planned) {
      lines.push({ accountId: apAccountId, debit: fixed(p.amount, mu), currency, ...(currency === base ? {} : { rate: D(p.bill.rate!).toFixed(), baseDebit: fixed(p.billBase, baseMu) }),
        description: `Payment of ${p.bill.kind === 'bill' ? `bill ${p.bill.bill_number ?? p.bill.id}` : `expense claim ${p.bill.id}`}`, ...cp });
    }
    const unallocated = amount.minus(used);
    if (unallocated.gt(0)) {
      lines.push({ accountId: apAccountId, debit: fixed(unallocated, mu), currency, ...fxRate, ...(currency === base ? {} : { baseDebit: fixed(baseAmount.minus(usedBase), baseMu) }),
        description: 'Unallocated payment (credit with the vendor)', ...cp });
    }
    const diff = planned.reduce((s, p) => s.plus(p.paymentBase).minus(p.billBase), D(0));
    lines.push(...(await this.fxLinesForPayment(tx, diff, baseMu)));
    lines.push({ accountId: dto.bankAccountId, credit: fixed(amount, mu), currency, ...fxRate, ...(currency === base ? {} : { baseCredit: fixed(baseAmount, baseMu) }),
      description: dto.reference ? `Payment ${dto.reference}` : 'Payment', ...cp });
    const { entry } = await this.journal.post(tx, { date: dto.paymentDate, memo: `Bill payment${dto.reference ? ` ${dto.reference}` : ''}`, source: 'payment', lines });

    const actor = this.payables.actor(tx);
    const paymentId = await repo.insertPayment(tx.db, tx.orgId, {
      ...party, paymentDate: dto.paymentDate, currency, amount, rate, baseAmount, bankAccountId: dto.bankAccountId,
      method: dto.method ?? 'bank_transfer', reference: dto.reference ?? null, journalEntryId: entry.id, createdBy: actor, idempotency,
    });
    for (const p of planned) {
      await repo.insertAllocation(tx.db, tx.orgId, {
        paymentId, billId: p.bill.id, date: dto.paymentDate, amount: p.amount, billBase: p.billBase, paymentBase: p.paymentBase,
        reversesAllocationId: null, journalEntryId: entry.id, createdBy: actor,
      });
    }
    const fxEntries = await settlePendingReversals(this.journal, tx, {
      documentIds: currency !== base ? planned.map((p) => p.bill.id) : [], party: cp, date: dto.paymentDate, memo: `Bill payment${dto.reference ? ` ${dto.reference}` : ''}` });
    await this.paidEvents(tx, planned, paymentId);
    const payment = await this.get(tx, paymentId);
    await this.audit.record(tx, { action: 'payables.payment_created', entityType: 'bill_payment', entityId: paymentId, after: { ...payment, ...settledReversalsAudit(fxEntries), ...(rateOverride ? { rateOverride } : {}) } });
    return payment;
  }

  /**
   * The payment (or the allocation's, the refund's payment) recorded before with this Idempotency-Key and the same
   * request; undefined for a key not used yet. Waits first for a request with the key in flight, so it reads what that
   * one committed. The key used with another request is a 409 payables.idempotency_conflict.
   */
  private async priorByKey(tx: TenantTx, idempotency: Idempotency, kind: 'payment' | 'allocation' | 'refund' = 'payment', accepted: string[] = [idempotency.requestHash]): Promise<string | undefined> {
    await repo.lockIdempotencyKey(tx.db, tx.orgId, idempotency.key, kind);
    const prior = kind === 'payment' ? await repo.paymentByKey(tx.db, tx.orgId, idempotency.key)
      : kind === 'allocation' ? await repo.allocationByKey(tx.db, tx.orgId, idempotency.key)
        : await repo.refundByKey(tx.db, tx.orgId, idempotency.key);
    if (!prior) return undefined;
    if (prior.requestHash !== idempotency.requestHash && !accepted.includes(prior.requestHash)) {
      throw PayablesErrors.error('payables.idempotency_conflict', `the Idempotency-Key "${idempotency.key}" was already used for a different ${kind}`);
    }
    return prior.id;
  }

  /** The FX lines of a payment's own entry: the AP lines already carry the bills' bases, so only the result line is needed. */
  private async fxLinesForPayment(tx: TenantTx, diff: Decimal, baseMu: number): Promise<PostingLine[]> {
    if (diff.isZero()) return [];
    const s = await this.ledger.settings(tx);
    const account = diff.gt(0) ? s.fxLossAccountId : s.fxGainAccountId;
    if (!account) throw LedgerErrors.error('ledger.fx_accounts_missing', 'configure fxGainAccountId and fxLossAccountId in the ledger settings first');
    const amount = fixed(diff.abs(), baseMu);
    return [diff.gt(0) ? { accountId: account, debit: amount, description: 'Realized FX loss' } : { accountId: account, credit: amount, description: 'Realized FX gain' }];
  }

  private async paidEvents(tx: TenantTx, planned: { bill: BillRow; paidInFull: boolean }[], paymentId: string): Promise<void> {
    const paid = planned.filter((p) => p.paidInFull).map((p) => p.bill.id);
    for (const b of await this.payables.bills(tx, paid)) await emitEvent(tx, 'bill.paid', { ...this.payables.eventBase(b), paymentId });
  }

  /**
   * The base of `amount` of what is left (`left`) of a payment's credit: what the credit carries (the payment's base less
   * what its allocations and refunds used, changed by FX revaluations) when it is all of it, else its share at the
   * payment's rate, or at the last revaluation's rate for a revalued credit.
   */
  private async creditShare(tx: TenantTx, payment: PaymentRow, usedBase: Decimal, left: Decimal, amount: Decimal, baseMu: number, date: string, doing: string): Promise<Decimal> {
    await assertAfterRevaluations(this.ledger, this.journal, tx, [payment.id], date, doing);
    // what a revalued credit carried before a later use of it is not kept: a use dated before it would be valued from today
    const later = await laterUseOfRevaluedCredit(tx.db, tx.orgId, payment.id, date);
    if (later) {
      throw PayablesErrors.error('payables.before_later_settlement',
        `${doing} dated ${date} is before ${later.date}, the date of a later use of the credit of the FX-revalued payment ${payment.id}: date it on or after ${later.date}`,
        { documentId: payment.id, settledOn: later.date });
    }
    const revalued = (await revaluationsOf(tx.db, tx.orgId, [payment.id], date)).get(payment.id);
    // a credit's revaluation is negative in the aging when it raises what AP carries as a debit
    const carried = D(payment.base_amount).minus(usedBase).minus(revalued?.delta ?? 0);
    if (amount.eq(left)) return carried;
    return revalued ? carried.minus(baseOf(left.minus(amount), revalued.rate, baseMu)) : baseShare(left, amount, payment.rate, baseMu);
  }

  /**
   * A use of the payment's credit (an allocation, a refund; the payment row locked) is not dated before the last reversal
   * of one of its allocations, as a void is not before its bill's last allocation or reversal: the reversed allocation
   * used the credit until then, and a use dated before would use it twice in between (the credit below zero).
   */
  private async assertAfterCreditReversals(tx: TenantTx, paymentId: string, date: string, doing: string): Promise<void> {
    const reversedOn = (await reversalsAfter(tx.db, tx.orgId, { paymentId }, date)).get(paymentId);
    if (reversedOn) throw PlatformErrors.error('validation_failed', `date: ${doing} dated ${date} is before ${reversedOn}, the date of the last reversal of an allocation of payment ${paymentId}`);
  }

  /**
   * Allocates what is left of a payment (its credit with the vendor) to an open bill; posts only the FX result, if any.
   * `key`: as a payment's (create); the request is the payment's id and the body; a replay answers the payment as it is now.
   */
  async allocate(tx: TenantTx, paymentId: string, dto: CreateAllocationDto, key?: string): Promise<BillPaymentDto> {
    const idempotency = key ? { key, requestHash: requestHash({ paymentId, ...dto }) } : undefined;
    if (idempotency) {
      const prior = await this.priorByKey(tx, idempotency, 'allocation');
      if (prior) return this.get(tx, prior);
    }
    await this.holdPostings(tx);
    const payment = await repo.lockPayment(tx.db, tx.orgId, paymentId);
    if (!payment) throw PayablesErrors.notFound('bill_payment', paymentId);
    const { base, baseMu } = await this.baseMu(tx);
    const mu = await this.ledger.currencyUnits(tx, payment.currency);
    const date = dto.date ?? iso(payment.payment_date);
    // before the payment there is no credit to allocate: the aging would settle the bill while AP still carries it
    if (date < iso(payment.payment_date)) throw PlatformErrors.error('validation_failed', `date must not be before the payment date ${iso(payment.payment_date)}`);
    await this.assertAfterCreditReversals(tx, paymentId, date, 'the allocation');
    await this.assertPeriodOpen(tx, date);
    const amount = this.amountOf(dto.amount, mu, payment.currency, 'amount');
    const open = await this.openBill(tx, dto.billId, { vendorId: payment.vendor_id, claimantId: payment.claimant_id }, payment.currency, date, 'billId');
    const revalued = payment.currency !== base ? await this.revaluedBills(tx, [{ bill: open.bill, at: 'billId' }], date) : new Map();
    const p = this.plan({ ...open, revalued: revalued.get(open.bill.id) }, amount, baseMu, 'amount', mu);
    const usage = await repo.paymentUsage(tx.db, tx.orgId, paymentId);
    const left = D(payment.amount).minus(usage.amount);
    if (p.amount.gt(left)) throw PayablesErrors.error('payables.over_allocation', `amount: ${fixed(p.amount, mu)} is more than what is left of the payment (${fixed(left, mu)})`, { left: fixed(left, mu) });
    const paymentBase = await this.creditShare(tx, payment, usage.base, left, p.amount, baseMu, date, 'the allocation');
    const entryId = await this.postFx(tx, payment, paymentBase.minus(p.billBase), date, `Allocation of payment ${paymentId} to ${p.bill.kind} ${p.bill.id}`, baseMu);
    const id = await repo.insertAllocation(tx.db, tx.orgId, {
      paymentId, billId: p.bill.id, date, amount: p.amount, billBase: p.billBase, paymentBase, reversesAllocationId: null, journalEntryId: entryId, createdBy: this.payables.actor(tx),
      idempotency,
    });
    const fxEntries = await settlePendingReversals(this.journal, tx, {
      documentIds: payment.currency !== base ? [p.bill.id, paymentId] : [], party: partyOf(payment), date, memo: `Allocation of payment ${paymentId}` });
    await this.paidEvents(tx, [p], paymentId);
    const after = await this.get(tx, paymentId);
    await this.audit.record(tx, { action: 'payables.allocation_created', entityType: 'bill_allocation', entityId: id, after: { ...after.allocations.find((a) => a.id === id), ...settledReversalsAudit(fxEntries) } });
    return after;
  }

  /**
   * A vendor pays back credit (what of a payment is neither allocated nor refunded): bank debit at the rate of the
   * refund date, AP credit of the base the refund takes off the payment's credit (at the payment's rate; the last
   * refund takes what is left), the difference to realized FX, in one entry. Serialized with the payment's
   * allocations (its lock), so the credit never goes below zero. `key`: as an allocation's (allocate).
   */
  async refund(tx: TenantTx, paymentId: string, dto: RefundVendorCreditDto, key?: string): Promise<BillPaymentDto> {
    const idempotency = key ? { key, requestHash: requestHash({ paymentId, ...dto }) } : undefined;
    if (idempotency) {
      const prior = await this.priorByKey(tx, idempotency, 'refund');
      if (prior) return this.get(tx, prior);
    }
    await this.holdPostings(tx);
    const payment = await repo.lockPayment(tx.db, tx.orgId, paymentId);
    if (!payment) throw PayablesErrors.notFound('bill_payment', paymentId);
    const { base, baseMu } = await this.baseMu(tx);
    const mu = await this.ledger.currencyUnits(tx, payment.currency);
    const amount = this.amountOf(dto.amount, mu, payment.currency, 'amount');
    const date = dto.date ?? today(this.clock);
    if (date < iso(payment.payment_date)) throw PlatformErrors.error('validation_failed', `date must not be before the payment date ${iso(payment.payment_date)}`);
    await this.assertAfterCreditReversals(tx, paymentId, date, 'the refund');
    const usage = await repo.paymentUsage(tx.db, tx.orgId, paymentId);
    const left = D(payment.amount).minus(usage.amount);
    if (amount.gt(left)) throw PayablesErrors.error('payables.exceeds_credit', `amount: ${fixed(amount, mu)} is more than the credit left on the payment (${fixed(left, mu)})`, { left: fixed(left, mu) });
    const bankAccountId = dto.bankAccountId ?? payment.bank_account_id;
    const bank = await repo.account(tx.db, tx.orgId, bankAccountId);
    if (!bank) throw LedgerErrors.notFound('account', bankAccountId);
    if (bank.type !== 'asset' || bank.is_group || bank.archived_at) {
      throw PayablesErrors.error('payables.bank_account_not_allowed', `bankAccountId: account ${bank.code} is not an active, postable asset account`);
    }
    const rate = payment.currency !== base && dto.rate !== undefined ? D(dto.rate) : await this.payables.rateOn(tx, payment.currency, date);
    const rateOverride = payment.currency !== base
      ? await checkClientRate(tx, { currency: payment.currency, date, rate: dto.rate, override: dto.rateOverride, field: 'rate' }) : undefined;
    const bankBase = baseOf(amount, rate, baseMu);
    const paymentBase = await this.creditShare(tx, payment, usage.base, left, amount, baseMu, date, 'the refund');
    const { apAccountId } = await this.payables.settings(tx);
    // AR is an asset too, but no bank account (read under the posting lock, which a settings change drains)
    await this.payables.refuseControlAccounts(tx, [{ id: bank.id, code: bank.code, field: 'bankAccountId' }]);
    const cp = payment.vendor_id ? { counterpartyType: 'vendor', counterpartyId: payment.vendor_id } : { counterpartyType: 'employee', counterpartyId: payment.claimant_id! };
    const foreign = payment.currency !== base;
    const lines: PostingLine[] = [
      { accountId: bankAccountId, debit: fixed(amount, mu), currency: payment.currency, ...(foreign ? { rate: rate.toFixed(), baseDebit: fixed(bankBase, baseMu) } : {}),
        description: dto.reference ? `Refund ${dto.reference}` : 'Refund of credit', ...cp },
      { accountId: apAccountId, credit: fixed(amount, mu), currency: payment.currency, ...(foreign ? { rate: D(payment.rate).toFixed(), baseCredit: fixed(paymentBase, baseMu) } : {}),
        description: 'Credit with the vendor refunded', ...cp },
      // the credit was carried at `paymentBase`, the bank got `bankBase`: less is a loss (> 0), more a gain
      ...(await this.fxLinesForPayment(tx, paymentBase.minus(bankBase), baseMu)),
    ];
    const { entry } = await this.journal.post(tx, { date, memo: `Refund of credit on payment ${paymentId}`, source: 'payment', sourceRef: paymentId, lines });
    const id = await repo.insertRefund(tx.db, tx.orgId, {
      paymentId, date, amount, currency: payment.currency, rate, paymentBase, bankAccountId, reference: dto.reference ?? null, journalEntryId: entry.id, createdBy: this.payables.actor(tx),
      idempotency,
    });
    const fxEntries = await settlePendingReversals(this.journal, tx, { documentIds: foreign ? [paymentId] : [], party: cp, date, memo: `Refund of credit on payment ${paymentId}` });
    await emitEvent(tx, 'bill_payment.refunded', {
      refundId: id, paymentId, partyType: payment.vendor_id ? 'vendor' : 'employee', partyId: payment.vendor_id ?? payment.claimant_id, refundDate: date,
      currency: payment.currency, amount: fixed(amount, mu), journalEntryId: entry.id,
    });
    const after = await this.get(tx, paymentId);
    await this.audit.record(tx, { action: 'payables.credit_refunded', entityType: 'bill_payment', entityId: paymentId, after: { ...after.refunds.find((r) => r.id === id), ...settledReversalsAudit(fxEntries), ...(rateOverride ? { rateOverride } : {}) } });
    return after;
  }

  /**
   * Un-allocates (a bounced payment, a mistake): a new allocation of the opposite amount, never a change of the
   * first; the amount is open on the bill again and a credit on the payment again; an FX result is reversed.
   * `key`: as an allocation's (its keys and a reversal's are one set); the request is the allocation's id and the body.
   */
  async reverseAllocation(tx: TenantTx, allocationId: string, dto: ReverseAllocationDto, key?: string): Promise<BillPaymentDto> {
    const idempotency = key ? { key, requestHash: requestHash({ allocationId, ...dto }) } : undefined;
    if (idempotency) {
      // before the checks of the allocation: the replay of a reversal answers it, not 409 allocation_reversed
      const prior = await this.priorByKey(tx, idempotency, 'allocation');
      if (prior) return this.get(tx, prior);
    }
    const original = await repo.getAllocation(tx.db, tx.orgId, allocationId);
    if (!original) throw PayablesErrors.notFound('bill_allocation', allocationId);
    await this.holdPostings(tx);
    const payment = (await repo.lockPayment(tx.db, tx.orgId, original.payment_id))!;
    await repo.lockBill(tx.db, tx.orgId, original.bill_id);
    if (original.reverses_allocation_id || (await repo.reversalOf(tx.db, tx.orgId, allocationId))) {
      throw PayablesErrors.error('payables.allocation_reversed', `allocation ${allocationId} is already reversed, or is itself a reversal`);
    }
    const date = dto.date ?? iso(original.allocation_date);
    // dated before the original, it would reopen the bill before it was settled: the aging would leave the AP balance
    if (date < iso(original.allocation_date)) throw PlatformErrors.error('validation_failed', `date must not be before the allocation date ${iso(original.allocation_date)}`);
    await this.assertPeriodOpen(tx, date);
    await assertAfterRevaluations(this.ledger, this.journal, tx, [original.bill_id, original.payment_id], date, 'the reversal of the allocation');
    // what a revalued bill (or credit) carried before a later settlement (or use) is not kept: a reversal dated before it would be valued from today
    const laterOfBill = await laterSettlementOfRevalued(tx.db, tx.orgId, [original.bill_id], date);
    if (laterOfBill) {
      throw PayablesErrors.error('payables.before_later_settlement',
        `the reversal of the allocation dated ${date} is before ${laterOfBill.date}, the date of a later allocation of the FX-revalued bill or claim ${original.bill_id}: date it on or after ${laterOfBill.date}`,
        { documentId: original.bill_id, settledOn: laterOfBill.date });
    }
    const laterOfCredit = await laterUseOfRevaluedCredit(tx.db, tx.orgId, original.payment_id, date);
    if (laterOfCredit) {
      throw PayablesErrors.error('payables.before_later_settlement',
        `the reversal of the allocation dated ${date} is before ${laterOfCredit.date}, the date of a later use of the credit of the FX-revalued payment ${original.payment_id}: date it on or after ${laterOfCredit.date}`,
        { documentId: original.payment_id, settledOn: laterOfCredit.date });
    }
    const { base, baseMu } = await this.baseMu(tx);
    // reopened at what the bill (and the payment's credit) carries as of the date, as on AR: a revalued one at its last
    // revaluation's rate (the original's bases negated would reopen it at a value from before the revaluation, and the
    // aging would leave AP); one never revalued by then at its own rate, by the rounded difference of what is open
    // before and after (as an allocation takes it off): after other allocations the original's bases negated would leave
    // it carrying a base other than its open amount at its rate
    const amount = D(original.amount);
    const [settled] = await repo.settledOf(tx.db, tx.orgId, [original.bill_id]);
    const [billRow] = await repo.getBills(tx.db, tx.orgId, [original.bill_id]);
    const revalued = await revaluationsOf(tx.db, tx.orgId, [original.bill_id, original.payment_id], date);
    const billRevalued = revalued.get(original.bill_id);
    const billOpen = D(billRow.total).minus(settled?.amount ?? 0);
    const reopenedBill = billRevalued
      ? D(billRow.base_total!).minus(settled?.base ?? 0).plus(billRevalued.delta).minus(baseOf(billOpen.plus(amount), billRevalued.rate, baseMu))
      : baseShare(billOpen, amount.neg(), billRow.rate!, baseMu);
    const creditRevalued = revalued.get(original.payment_id);
    const usage = await repo.paymentUsage(tx.db, tx.orgId, original.payment_id);
    const reopenedCredit = creditRevalued
      ? D(payment.base_amount).minus(usage.base).minus(creditRevalued.delta).minus(baseOf(D(payment.amount).minus(usage.amount).plus(amount), creditRevalued.rate, baseMu))
      : baseShare(D(payment.amount).minus(usage.amount), amount.neg(), payment.rate, baseMu);
    // what revaluations (or their reversals) since the allocation changed of each share while it was settled is no
    // realized result: written as the bill's (and the credit's) rows on the unrealized FX accounts they moved (as on AR),
    // so what its rows leave on each account stays what the account holds of it; the rest reopens the share at what the
    // allocation took off (as the aging shows them: the credit's share negative)
    const { apAccountId } = await this.payables.settings(tx);
    const s = await this.ledger.settings(tx);
    const memo = `Reversal of allocation ${allocationId}`;
    const { posted: { entryId, id }, fxEntries } = await this.journal.giveBackAllocation(tx, {
      subledger: 'payables', accountId: apAccountId, currency: payment.currency, date, memo, ...partyOf(payment), settledOn: iso(original.allocation_date),
      settledSeq: await repo.allocationPostingSeq(tx.db, tx.orgId, allocationId), foreign: payment.currency !== base,
      sides: [
        { documentId: original.bill_id, ownRate: D(billRow.rate!).toFixed(), revaluedRate: billRevalued?.rate, open: billOpen, amount, takenOff: D(original.bill_base_amount), now: reopenedBill.neg() },
        { documentId: original.payment_id, ownRate: D(payment.rate).toFixed(), revaluedRate: creditRevalued?.rate, open: D(usage.amount).minus(payment.amount), amount: amount.neg(),
          takenOff: D(original.payment_base_amount).neg(), now: reopenedCredit },
      ],
    }, { settings: s, baseMu }, async ([billShare, paymentBase]) => {
      const billBase = billShare.neg();
      const diff = paymentBase.minus(billBase).neg();
      // reversed on the account the original result went to: read from the original's entry (its line on neither AP nor
      // the bank), whatever the settings say now; the settings' account of the result's side only when that cannot be told
      const resultAccount = original.journal_entry_id && !diff.isZero()
        ? await this.journal.resultAccountOf(tx, original.journal_entry_id, [apAccountId, payment.bank_account_id]) : undefined;
      const entryId = await this.postFx(tx, payment, diff.neg(), date, memo, baseMu, resultAccount ?? (diff.gt(0) ? s.fxLossAccountId : s.fxGainAccountId));
      const id = await repo.insertAllocation(tx.db, tx.orgId, {
        paymentId: original.payment_id, billId: original.bill_id, date, amount: amount.neg(), billBase, paymentBase,
        reversesAllocationId: allocationId, journalEntryId: entryId, createdBy: this.payables.actor(tx), idempotency,
      });
      return { entryId, id };
    });
    const [bill] = await this.payables.bills(tx, [original.bill_id]);
    const after = await this.get(tx, original.payment_id);
    await emitEvent(tx, 'bill_payment.allocation_reversed', {
      ...this.payables.eventBase(bill), allocationId: id, reversesAllocationId: allocationId, paymentId: original.payment_id, date,
      amount: fixed(original.amount, await this.ledger.currencyUnits(tx, payment.currency)), openAmount: bill.openAmount, status: bill.status,
      paymentUnallocated: after.unallocated, journalEntryId: entryId,
    });
    await this.audit.record(tx, { action: 'payables.allocation_reversed', entityType: 'bill_allocation', entityId: id, after: { ...after.allocations.find((a) => a.id === id), ...settledReversalsAudit(fxEntries) } });
    return after;
  }

  /**
   * The posting lock, shared, for a flow on a payment that exists (an allocation of its credit, a refund, a reversal of
   * an allocation): taken before the payment's and the bills' locks, as every flow of payables takes it
   * (PayablesService.lockPostings): a payment holds it while it waits for the bills it allocates to, so a flow holding
   * one of those bills never waits for it (behind a drain queued meanwhile). Never payables' first posting (the payment
   * was one).
   */
  private async holdPostings(tx: TenantTx): Promise<void> {
    await this.ledger.holdPostings(tx);
  }

  /**
   * An allocation or its reversal changes what is open as of its date, whether or not it posts an FX result: dated in a
   * closed period (or one no fiscal period covers) it would change the AP aging of a closed month. Refused as the
   * ledger refuses a posting there, with its codes; the period's status is the ledger's (LedgerService.listPeriods),
   * read under the posting lock held shared: a period's close takes it exclusively (fiscal_periods_postings_drained), so
   * one in flight is waited for and read closed, and one started later waits for this transaction.
   */
  private async assertPeriodOpen(tx: TenantTx, date: string): Promise<void> {
    await this.ledger.holdPostings(tx);
    const period = (await this.ledger.listPeriods(tx)).find((p) => p.startDate <= date && p.endDate >= date);
    if (!period) throw LedgerErrors.error('ledger.no_fiscal_year', `no fiscal period covers ${date}`);
    if (period.status !== 'open') throw LedgerErrors.error('ledger.period_closed', `the fiscal period ${period.startDate} to ${period.endDate} is closed`);
  }

  /** An entry for an allocation's FX result (payment base minus bill base) when there is one. */
  private async postFx(tx: TenantTx, payment: PaymentRow, diff: Decimal, date: string, memo: string, baseMu: number, account?: string | null): Promise<string | null> {
    if (diff.isZero()) return null;
    const { apAccountId } = await this.payables.settings(tx);
    const party = payment.vendor_id ? { counterpartyType: 'vendor', counterpartyId: payment.vendor_id } : { counterpartyType: 'employee', counterpartyId: payment.claimant_id! };
    // the AP line at the payment's rate (as the payment's own entry), never the rate table's of the date
    const lines = await this.fxLines(tx, diff, apAccountId, payment.currency, { ...party, rate: D(payment.rate).toFixed() }, baseMu, account ?? undefined);
    const { entry } = await this.journal.post(tx, { date, memo, source: 'payment', lines });
    return entry.id;
  }

  // ---------------------------------------------------------------- reading
  async get(tx: TenantTx, id: string): Promise<BillPaymentDto> {
    const [p] = await this.payments(tx, [id]);
    if (!p || !this.mayRead(tx, p)) throw PayablesErrors.notFound('bill_payment', id);
    return p;
  }

  /** A member sees vendor payments and their own reimbursements, not another claimant's (as with the claims themselves). */
  private mayRead(tx: TenantTx, p: { claimantId: string | null }): boolean {
    const own = this.payables.ownClaimant(tx);
    return p.claimantId === null || own === undefined || p.claimantId === own;
  }

  private async payments(tx: TenantTx, ids: string[]): Promise<BillPaymentDto[]> {
    if (ids.length === 0) return []; // nothing to value: an organization whose books are not started lists no payments (not a 422)
    const [rows, allocations, refunds, units, booksMu] = await Promise.all([
      repo.getPayments(tx.db, tx.orgId, ids), repo.allocationsOfPayments(tx.db, tx.orgId, ids), repo.refundsOfPayments(tx.db, tx.orgId, ids), this.ledger.minorUnits(tx),
      this.ledger.baseCurrencyUnits(tx),
    ]);
    // no such payment (an id read by GET payments/{id}) needs no base currency: 404 on books not started, not a 422
    if (rows.length === 0) return [];
    const baseMu = booksMu ?? (await this.baseMu(tx)).baseMu; // a payment posted to the ledger: its books are started
    const byId = new Map(rows.map((r) => [r.id, r]));
    return ids.filter((id) => byId.has(id)).map((id) => {
      const p = byId.get(id)!;
      const mu = units(p.currency);
      const mine = allocations.filter((a) => a.payment_id === id);
      const reversedBy = new Map(mine.filter((a) => a.reverses_allocation_id).map((a) => [a.reverses_allocation_id!, a.id]));
      const myRefunds = refunds.filter((r) => r.payment_id === id);
      const allocated = [...mine, ...myRefunds].reduce((s, a) => s.plus(a.amount), D(0));
      return {
        id, vendorId: p.vendor_id, claimantId: p.claimant_id, paymentDate: iso(p.payment_date), currency: p.currency, amount: fixed(p.amount, mu),
        rate: rateText(p.rate), baseAmount: fixed(p.base_amount, baseMu), unallocated: fixed(D(p.amount).minus(allocated), mu), bankAccountId: p.bank_account_id,
        method: p.method, reference: p.reference, journalEntryId: p.journal_entry_id, createdAt: p.created_at,
        allocations: mine.map((a): AllocationDto => ({
          id: a.id, paymentId: id, billId: a.bill_id, date: iso(a.allocation_date), amount: fixed(a.amount, mu), billBaseAmount: fixed(a.bill_base_amount, baseMu),
          paymentBaseAmount: fixed(a.payment_base_amount, baseMu), fxDifference: fixed(D(a.payment_base_amount).minus(a.bill_base_amount), baseMu),
          reversesAllocationId: a.reverses_allocation_id, reversedByAllocationId: reversedBy.get(a.id) ?? null, journalEntryId: a.journal_entry_id, createdAt: a.created_at,
        })),
        refunds: myRefunds.map((r) => ({
          id: r.id, date: iso(r.refund_date), amount: fixed(r.amount, mu), rate: rateText(r.rate), paymentBaseAmount: fixed(r.payment_base_amount, baseMu),
          bankAccountId: r.bank_account_id, reference: r.reference, journalEntryId: r.journal_entry_id,
        })),
      };
    });
  }

  async list(tx: TenantTx, q: PaymentQuery): Promise<BillPaymentPage> {
    const limit = q.limit ?? 50;
    const after = decodeKeyset(q.cursor, { d: 'date', i: 'uuid' });
    const rows = await repo.listPaymentIds(tx.db, tx.orgId, { vendorId: q.vendorId, ownClaimantId: this.payables.ownClaimant(tx), after, limit });
    const p = page(rows, limit, (r) => ({ d: r.payment_date, i: r.id }));
    return { items: await this.payments(tx, p.items.map((r) => r.id)), nextCursor: p.nextCursor };
  }

  // ---------------------------------------------------------------- aging
  /**
   * AP aging at the end of `asOf` in the base currency; its total is the AP control account's balance that day. A
   * member's leaves out other employees' claims and reimbursements (finance.ap_aging does), so theirs can differ.
   */
  async aging(tx: TenantTx, asOf: string | undefined, buckets: string | undefined): Promise<AgingReportDto> {
    const edges = parseBucketEdges(buckets);
    if (!edges) throw PayablesErrors.error('payables.buckets', `buckets must be 1 to 10 ascending positive whole numbers of days, e.g. 15,30,60 (got "${buckets}")`);
    const day = asOf ?? today(this.clock);
    const { base, baseMu } = await this.baseMu(tx);
    const { apAccountId } = await this.payables.settings(tx, { posting: false });
    const items = await repo.agingItems(tx.db, day, edges);
    const report = agingReport(items.map((r) => ({ partyType: r.party_type, partyId: r.party_id, partyName: r.party_name, bucket: r.bucket, amount: r.amount })), edges, baseMu);
    return {
      asOf: day, baseCurrency: base, buckets: agingBucketNames(edges), ...report,
      controlAccountBalance: fixed(await repo.creditBalance(tx.db, apAccountId, day), baseMu),
    };
  }
}
