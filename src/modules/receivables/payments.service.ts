import { Injectable } from '@nestjs/common';
import type { Decimal } from 'decimal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { translateDatabaseError } from '../../platform/errors/database-errors.js';
import { emitEvent } from '../../platform/events/events.js';
import { requestHash } from '../../platform/http/idempotency-key.js';
import { decodeKeyset, page } from '../../platform/http/pagination.js';
import { Clock, today } from '../../platform/clock/clock.js';
import { AuditService } from '../audit/audit.service.js';
import { JournalService, noSettledReversals, settledReversalsAudit, type PostingLine, type SettledReversals } from '../ledger/journal.service.js';
import { LedgerService } from '../ledger/ledger.service.js';
import { LedgerErrors } from '../ledger/ledger.errors.js';
import { checkClientRate, paymentHashesOf } from '../ledger/client-rate.js';
import { baseOf, baseShare, D, fitsMinorUnits, fixed, rateText } from '../ledger/money.js';
import { CustomersService } from './customers.service.js';
import { actor, InvoicesService, statusFor } from './invoices.service.js';
import { assertOpenPeriod } from './open-period.js';
import { assertAfterRevaluations, settlePendingReversals } from './revalued-dates.js';
import { ReceivablesErrors } from './receivables.errors.js';
import { effectiveRate, laterSettlementOfRevalued, laterUseOfRevaluedCredit, receivablesRepository as repo, reversalsAfter, revaluedCarrying, type AllocationRow, type Idempotency, type InvoiceRow, type PaymentRow } from './receivables.repository.js';
import type { RefundCustomerCreditDto, AllocatePaymentDto, ReceivableAllocationDto, ReceivableAllocationInputDto, CreatePaymentDto, PaymentDto, PaymentPage, CustomerPaymentQuery, ReverseReceivableAllocationDto } from './receivables.dto.js';

/** One allocation worked out: the amount, and the base value it takes off the invoice and off the payment. */
interface Planned {
  invoice: InvoiceRow;
  amount: Decimal;
  invoiceBase: Decimal;
  sourceBase: Decimal;
}

/** An allocation written: its id, and what is open on its invoice after it (and the allocations before it). */
interface Recorded extends Planned {
  id: string;
  invoiceOpen: Decimal;
}

/** A payment, allocation or refund amount: positive and in the currency's minor units (`at` names the field). */
function amountOf(value: string, mu: number, at: string): Decimal {
  const amount = D(value);
  if (amount.isZero() || !fitsMinorUnits(amount, mu)) throw ReceivablesErrors.error('receivables.invalid_amount', `${at} must be positive with at most ${mu} decimals`);
  return amount;
}

/** What a revalued open item carries now (revaluedCarrying): its base, positive, and the rate of its last revaluation. */
interface Carrying {
  base: Decimal;
  rate: string;
}

/**
 * The base `amount` takes off an open item of `open` (its currency): the difference of its rounded base values before
 * and after, at its own rate; for an item an FX revaluation revalued, at the revaluation's rate from what it carries
 * (all of it when settled in full), so the realized result is only what the rate moved since the revaluation.
 */
function shareOf(open: Decimal, amount: Decimal, ownRate: string, baseMu: number, carrying?: Carrying): Decimal {
  if (!carrying) return baseShare(open, amount, ownRate, baseMu);
  return amount.eq(open) ? carrying.base : carrying.base.minus(baseOf(open.minus(amount), carrying.rate, baseMu));
}

/**
 * Payments received and their allocations. Every allocation takes off the invoice exactly the difference of
 * its rounded base values before and after (and likewise off the payment's credit), so the AR control account
 * always equals the open items valued at their own rates; the difference between the two is the realized FX
 * gain or loss, posted to the ledger's FX accounts in the same entry.
 */
@Injectable()
export class PaymentsService {
  constructor(
    private readonly audit: AuditService,
    private readonly ledger: LedgerService,
    private readonly journal: JournalService,
    private readonly customers: CustomersService,
    private readonly invoices: InvoicesService,
    private readonly clock: Clock,
  ) {}

  private allocationDto(a: AllocationRow, baseMu: number, mu: number): ReceivableAllocationDto {
    return {
      id: a.id, invoiceId: a.invoiceId, paymentId: a.paymentId, creditNoteId: a.creditNoteId, date: a.date, amount: fixed(a.amount, mu),
      realizedFx: fixed(D(a.sourceBase).minus(a.invoiceBase), baseMu), reversesAllocationId: a.reversesAllocationId, entryId: a.entryId,
    };
  }

  private async dtos(tx: TenantTx, rows: PaymentRow[]): Promise<PaymentDto[]> {
    if (rows.length === 0) return []; // nothing to value: an organization whose books are not started lists no payments (not a 422)
    const { baseCurrency } = await this.ledger.settings(tx);
    const baseMu = await this.ledger.currencyUnits(tx, baseCurrency);
    const [allocations, refunds] = rows.length
      ? await Promise.all([repo.allocationsOf(tx.db, tx.orgId, { paymentIds: rows.map((r) => r.id) }), repo.refundsOf(tx.db, tx.orgId, rows.map((r) => r.id))])
      : [[], []];
    const out: PaymentDto[] = [];
    for (const p of rows) {
      const mu = await this.ledger.currencyUnits(tx, p.currency);
      out.push({
        id: p.id, customerId: p.customerId, date: p.date, amount: fixed(p.amount, mu), currency: p.currency, rate: rateText(p.rate),
        depositAccountId: p.depositAccountId, method: p.method, reference: p.reference, unallocated: fixed(D(p.amount).minus(p.allocated), mu),
        entryId: p.entryId, allocations: allocations.filter((a) => a.paymentId === p.id).map((a) => this.allocationDto(a, baseMu, mu)),
        refunds: refunds.filter((r) => r.paymentId === p.id).map((r) => ({
          id: r.id, date: r.date, amount: fixed(r.amount, mu), rate: rateText(r.rate), accountId: r.accountId, realizedFx: fixed(D(r.sourceBase).minus(r.bankBase), baseMu),
          reference: r.reference, entryId: r.entryId,
        })),
      });
    }
    return out;
  }

  async get(tx: TenantTx, id: string): Promise<PaymentDto> {
    const p = await repo.getPayment(tx.db, tx.orgId, id);
    if (!p) throw ReceivablesErrors.notFound('payment', id);
    return (await this.dtos(tx, [p]))[0];
  }

  async list(tx: TenantTx, q: CustomerPaymentQuery): Promise<PaymentPage> {
    const limit = q.limit ?? 50;
    const after = decodeKeyset(q.cursor, { d: 'date', i: 'uuid' });
    const rows = await repo.listPayments(tx.db, tx.orgId, { customerId: q.customerId, after, limit });
    const p = page(rows, limit, (r) => ({ d: r.date, i: r.id }));
    return { items: await this.dtos(tx, p.items), nextCursor: p.nextCursor };
  }

  /**
   * Checks and values the allocations of `unallocated` (of a payment of `customerId` in `currency` at `rate`).
   * The invoices are locked (in id order) first, so two requests allocating against one invoice run one after
   * the other and the second sees what the first took: the open amount never goes below zero.
   */
  private async plan(tx: TenantTx, allocations: ReceivableAllocationInputDto[],
    p: { customerId: string; currency: string; foreign: boolean; rate: string; unallocated: Decimal; date: string; paymentId?: string }, baseMu: number): Promise<Planned[]> {
    const invoiceIds = [...new Set(allocations.map((a) => a.invoiceId))];
    await repo.lockInvoices(tx.db, tx.orgId, invoiceIds);
    // not before the last allocation reversal of an invoice (read after the lock: reversals lock it too)
    const reversed = await reversalsAfter(tx.db, tx.orgId, { invoiceIds }, p.date);
    // a payment in the base currency settles only base-currency invoices (another currency is refused below), which no FX
    // revaluation ever changes: nothing of theirs to read
    let revalued = new Map<string, { base: string; rate: string }>();
    let source: Carrying | undefined;
    if (p.foreign) {
      // what the revalued invoices (and the payment's credit) carry, after the lock (an allocation in flight has committed
      // its part) and under the posting lock (a revaluation in flight has committed its changes), as of no date before them
      await assertAfterRevaluations(this.ledger, this.journal, tx, p.paymentId ? [...invoiceIds, p.paymentId] : invoiceIds, p.date, 'the allocation');
      // what a revalued invoice carried before a later settlement is not kept: one dated before it would be valued from today
      const later = await laterSettlementOfRevalued(tx.db, tx.orgId, invoiceIds, p.date);
      if (later) {
        throw ReceivablesErrors.error('receivables.before_later_settlement',
          `the allocation dated ${p.date} is before ${later.date}, the date of a later allocation of the FX-revalued invoice ${later.documentId}: date it on or after ${later.date}`,
          { documentId: later.documentId, settledOn: later.date });
      }
      if (p.paymentId) await this.assertNoLaterUseOfCredit(tx, p.paymentId, p.date, 'the allocation');
      revalued = await revaluedCarrying(tx.db, tx.orgId, invoiceIds, p.date);
      source = p.paymentId ? await this.creditCarrying(tx, p.paymentId, p.date) : undefined;
    }
    const open = new Map<string, { invoice: InvoiceRow; open: Decimal; carrying?: Carrying }>();
    const mu = await this.ledger.currencyUnits(tx, p.currency);
    let left = p.unallocated;
    const out: Planned[] = [];
    for (const [i, a] of allocations.entries()) {
      const amount = amountOf(a.amount, mu, `allocations[${i}].amount`);
      let o = open.get(a.invoiceId);
      if (!o) {
        const invoice = await repo.getInvoice(tx.db, tx.orgId, a.invoiceId);
        if (!invoice) throw ReceivablesErrors.notFound('invoice', a.invoiceId);
        const c = revalued.get(a.invoiceId);
        open.set(a.invoiceId, (o = { invoice, open: D(invoice.total).minus(invoice.allocated), carrying: c && { base: D(c.base), rate: c.rate } }));
      }
      const inv = o.invoice;
      if (inv.customerId !== p.customerId) throw ReceivablesErrors.error('receivables.wrong_customer', `allocations[${i}].invoiceId: invoice ${inv.number ?? inv.id} belongs to another customer than the payment`);
      if (inv.kind !== 'invoice' || !['issued', 'partially_paid', 'paid'].includes(inv.status)) {
        throw ReceivablesErrors.error('receivables.invalid_status', `allocations[${i}].invoiceId: the ${inv.kind} is ${inv.status}; only issued invoices take payments`);
      }
      // an invoice is settled no earlier than it exists: the aging and the statements as of a date before it would show it paid
      if (p.date < inv.invoiceDate) throw PlatformErrors.error('validation_failed', `allocations[${i}].invoiceId: the allocation date ${p.date} is before the invoice date ${inv.invoiceDate} of invoice ${inv.number}`);
      // the reversed allocation settled the invoice until its reversal: one dated before would settle it twice in between
      const reversedOn = reversed.get(inv.id);
      if (reversedOn) {
        throw PlatformErrors.error('validation_failed', `allocations[${i}].invoiceId: the allocation date ${p.date} is before ${reversedOn}, the date of the last allocation reversal of invoice ${inv.number}`);
      }
      if (inv.currency !== p.currency) throw ReceivablesErrors.error('receivables.currency_mismatch', `allocations[${i}]: invoice ${inv.number} is in ${inv.currency}, the payment in ${p.currency}`);
      if (amount.gt(left)) throw ReceivablesErrors.error('receivables.exceeds_payment', `allocations[${i}].amount: ${a.amount} is more than the payment has left to allocate (${fixed(left, mu)})`);
      if (amount.gt(o.open)) throw ReceivablesErrors.error('receivables.over_allocation', `allocations[${i}].amount: ${a.amount} is more than is open on invoice ${inv.number} (${fixed(o.open, mu)})`, { invoiceId: inv.id, open: fixed(o.open, mu) });
      const invoiceBase = shareOf(o.open, amount, inv.rate!, baseMu, o.carrying);
      const sourceBase = shareOf(left, amount, p.rate, baseMu, source);
      if (o.carrying) o.carrying = { ...o.carrying, base: o.carrying.base.minus(invoiceBase) };
      if (source) source = { ...source, base: source.base.minus(sourceBase) };
      o.open = o.open.minus(amount);
      left = left.minus(amount);
      out.push({ invoice: inv, amount, invoiceBase, sourceBase });
    }
    return out;
  }

  /** The FX line for a base difference (positive: a gain). */
  private async fxLine(tx: TenantTx, diff: Decimal, baseMu: number, gainOrLoss?: 'gain' | 'loss', on?: string): Promise<PostingLine | undefined> {
    if (diff.isZero()) return undefined;
    const s = await this.ledger.settings(tx);
    const account = on ?? ((gainOrLoss ?? (diff.gt(0) ? 'gain' : 'loss')) === 'gain' ? s.fxGainAccountId : s.fxLossAccountId);
    if (!account) throw ReceivablesErrors.error('receivables.fx_accounts_missing', 'a realized FX difference needs fxGainAccountId and fxLossAccountId in the ledger settings');
    const amount = fixed(diff.abs(), baseMu);
    return { accountId: account, ...(diff.gt(0) ? { credit: amount } : { debit: amount }), description: `realized FX ${diff.gt(0) ? 'gain' : 'loss'}` };
  }

  /**
   * Records a payment received. `key` (the Idempotency-Key header): the same key with the same request answers the
   * payment recorded first and writes nothing (no entry, event or audit row); with another request it is a 409.
   * Requests with one key run one after the other (repo.lockIdempotencyKey), so concurrent retries record one payment.
   */
  async create(tx: TenantTx, dto: CreatePaymentDto, key?: string): Promise<PaymentDto> {
    // the request as it is meant (its currency resolved), so a payment sent without currency and then with the base
    // currency is one request (paymentRequestHashes)
    const hashes = key ? await paymentHashesOf(tx, dto, dto.date) : undefined;
    const idempotency = key && hashes ? { key, requestHash: hashes.requestHash } : undefined;
    if (idempotency) {
      const prior = await this.priorByKey(tx, 'payment', idempotency, hashes!.accepted);
      if (prior) return this.get(tx, prior);
    }
    const customer = await this.customers.forPayment(tx, dto.customerId);
    // under the posting lock, held shared before the invoices are locked (plan), as every flow of receivables takes them
    const settings = await this.customers.settings(tx);
    const currency = dto.currency ?? (await this.ledger.settings(tx)).baseCurrency;
    const { baseCurrency, currencyMu } = await this.invoices.requireCurrency(tx, currency);
    const baseMu = await this.ledger.currencyUnits(tx, baseCurrency);
    const amount = amountOf(dto.amount, currencyMu, 'amount');
    await this.customers.cashAccount(tx, dto.depositAccountId, 'depositAccountId');
    const rate = currency === baseCurrency ? '1' : dto.rate ?? (await effectiveRate(tx.db, currency, dto.date));
    if (!rate) throw LedgerErrors.error('ledger.rate_missing', `no ${currency} rate on or before ${dto.date}`);
    const foreign = currency !== baseCurrency;
    const rateOverride = foreign ? await checkClientRate(tx, { currency, date: dto.date, rate: dto.rate, override: dto.rateOverride, field: 'rate' }) : undefined;
    const planned = await this.plan(tx, dto.allocations ?? [], { customerId: customer.id, currency, foreign, rate, unallocated: amount, date: dto.date }, baseMu);
    const allocated = planned.reduce((s, p) => s.plus(p.amount), D(0));
    const common = { currency, rate, counterpartyType: 'customer', counterpartyId: customer.id };
    const lines: PostingLine[] = [{ ...common, accountId: dto.depositAccountId, debit: amount.toFixed(), description: `payment from customer${dto.reference ? ` ${dto.reference}` : ''}`.slice(0, 500) }];
    let fx = D(0);
    for (const p of planned) {
      lines.push({ ...common, accountId: settings.arAccountId, credit: p.amount.toFixed(), baseCredit: p.invoiceBase.toFixed(), description: `settles ${p.invoice.number}` });
      fx = fx.plus(p.sourceBase).minus(p.invoiceBase);
    }
    const remainder = amount.minus(allocated);
    if (!remainder.isZero()) lines.push({ ...common, accountId: settings.arAccountId, credit: remainder.toFixed(), baseCredit: baseOf(remainder, rate, baseMu).toFixed(), description: 'customer credit (unallocated)' });
    const fxLine = await this.fxLine(tx, fx, baseMu);
    if (fxLine) lines.push(fxLine);
    const { entry } = await this.journal.post(tx, { date: dto.date, memo: `Payment received${dto.reference ? ` ${dto.reference}` : ''}`, source: 'payment', lines });
    const id = await repo.insertPayment(tx.db, tx.orgId, {
      customerId: customer.id, date: dto.date, amount: amount.toFixed(), currency, rate, depositAccountId: dto.depositAccountId, method: dto.method,
      reference: dto.reference ?? null, entryId: entry.id, createdBy: actor(tx), idempotency,
    });
    const { fxEntries } = await this.record(tx, planned, { paymentId: id, date: dto.date, entryId: entry.id, foreign });
    await emitEvent(tx, 'payment.received', {
      paymentId: id, customerId: customer.id, paymentDate: dto.date, currency, amount: fixed(amount, currencyMu), allocated: fixed(allocated, currencyMu), entryId: entry.id,
    });
    const payment = await this.get(tx, id);
    await this.audit.record(tx, { action: 'receivables.payment_received', entityType: 'payment', entityId: id, after: { ...payment, ...settledReversalsAudit(fxEntries), ...(rateOverride ? { rateOverride } : {}) } });
    return payment;
  }

  /**
   * The payment (or the refund's, the allocation's payment) recorded before with this Idempotency-Key and the same request; undefined for a
   * key not used yet. Waits first for a request with the key in flight, so it reads what that one committed. The key
   * used with another request is a 409 receivables.idempotency_conflict.
   */
  private async priorByKey(tx: TenantTx, kind: 'payment' | 'refund' | 'allocation', idempotency: Idempotency, accepted: string[] = [idempotency.requestHash]): Promise<string | undefined> {
    await repo.lockIdempotencyKey(tx.db, tx.orgId, kind, idempotency.key);
    const prior = kind === 'payment'
      ? await repo.paymentByKey(tx.db, tx.orgId, idempotency.key)
      : kind === 'refund'
        ? await repo.refundByKey(tx.db, tx.orgId, idempotency.key).then((r) => r && { id: r.paymentId, requestHash: r.requestHash })
        // an allocation (or its reversal) with a key always is of a payment: a credit note's is written without one
        : await repo.allocationByKey(tx.db, tx.orgId, idempotency.key).then((r) => r && { id: r.paymentId!, requestHash: r.requestHash });
    if (!prior) return undefined;
    if (prior.requestHash !== idempotency.requestHash && !accepted.includes(prior.requestHash)) {
      throw ReceivablesErrors.error('receivables.idempotency_conflict', `the Idempotency-Key "${idempotency.key}" was already used for a different ${kind}`);
    }
    return prior.id;
  }

  /**
   * Writes the allocations; answers each with its id and what is open on its invoice after it, and the entries
   * settlePendingReversals posted for them (for the audit row).
   */
  private async record(tx: TenantTx, planned: Planned[], p: { paymentId: string; date: string; entryId: string | null; foreign: boolean; idempotency?: Idempotency }): Promise<{ recorded: Recorded[]; fxEntries: SettledReversals }> {
    const openAfter = new Map<string, { invoice: InvoiceRow; open: Decimal }>();
    const recorded: Recorded[] = [];
    for (const x of planned) {
      const id = await repo.insertAllocation(tx.db, tx.orgId, {
        invoiceId: x.invoice.id, paymentId: p.paymentId, date: p.date, amount: x.amount.toFixed(), invoiceBase: x.invoiceBase.toFixed(),
        // an allocation request's key on its first row (the key is unique per organization)
        sourceBase: x.sourceBase.toFixed(), entryId: p.entryId, createdBy: actor(tx), idempotency: recorded.length ? undefined : p.idempotency,
      });
      const o = openAfter.get(x.invoice.id) ?? { invoice: x.invoice, open: D(x.invoice.total).minus(x.invoice.allocated) };
      openAfter.set(x.invoice.id, { invoice: x.invoice, open: o.open.minus(x.amount) });
      recorded.push({ ...x, id, invoiceOpen: o.open.minus(x.amount) });
    }
    for (const { invoice, open } of openAfter.values()) await this.invoices.afterSettlement(tx, invoice, open, p.date);
    const customerId = planned[0]?.invoice.customerId;
    if (!customerId || !p.foreign) return { recorded, fxEntries: noSettledReversals() };
    return { recorded, fxEntries: await settlePendingReversals(this.journal, tx, { documentIds: [...openAfter.keys(), p.paymentId], customerId, date: p.date, memo: `Allocation of payment ${p.paymentId}`, realize: 'settled' }) };
  }

  /**
   * Allocates a payment's unallocated remainder (customer credit). Same currency on both sides; when the
   * payment's rate differs from an invoice's, an entry moves the base difference to realized FX. `key`: as a payment's
   * (create); the request is the payment's id and the body; a replay answers the payment as it is now.
   */
  async allocate(tx: TenantTx, paymentId: string, dto: AllocatePaymentDto, key?: string): Promise<PaymentDto> {
    const idempotency = key ? { key, requestHash: requestHash({ paymentId, ...dto }) } : undefined;
    if (idempotency) {
      const prior = await this.priorByKey(tx, 'allocation', idempotency);
      if (prior) return this.get(tx, prior);
    }
    await this.invoices.holdPostings(tx); // before the payment's lock and the invoices' (InvoicesService.holdPostings)
    const payment = await repo.getPayment(tx.db, tx.orgId, paymentId, true);
    if (!payment) throw ReceivablesErrors.notFound('payment', paymentId);
    const settings = await this.customers.settings(tx);
    const { baseCurrency } = await this.ledger.settings(tx);
    const baseMu = await this.ledger.currencyUnits(tx, baseCurrency);
    const date = dto.date ?? today(this.clock);
    if (date < payment.date) throw PlatformErrors.error('validation_failed', 'date must not be before the payment date');
    await this.assertAfterCreditReversals(tx, paymentId, date, 'the allocation');
    const foreign = payment.currency !== baseCurrency;
    const planned = await this.plan(tx, dto.allocations, {
      customerId: payment.customerId, currency: payment.currency, foreign, rate: payment.rate, unallocated: D(payment.amount).minus(payment.allocated), date, paymentId,
    }, baseMu);
    const entryId = await this.postFxAdjustment(tx, planned.map((p) => ({ ...p, currency: payment.currency, rate: payment.rate })), settings.arAccountId, baseMu, date, `FX on allocation of payment ${payment.reference ?? payment.id}`);
    // no FX difference, no posting to refuse the date: the allocation still changes what was open as of it
    if (!entryId) await assertOpenPeriod(this.ledger, tx, date);
    const { recorded, fxEntries } = await this.record(tx, planned, { paymentId, date, entryId, foreign, idempotency });
    // one event per allocation, each with what it left open on its invoice and of the credit (in request order)
    const mu = await this.ledger.currencyUnits(tx, payment.currency);
    let unallocated = D(payment.amount).minus(payment.allocated);
    for (const r of recorded) {
      unallocated = unallocated.minus(r.amount);
      await emitEvent(tx, 'payment.allocated', {
        allocationId: r.id, paymentId, invoiceId: r.invoice.id, invoiceNumber: r.invoice.number, customerId: payment.customerId, date, currency: payment.currency,
        amount: fixed(r.amount, mu), invoiceOpenAmount: fixed(r.invoiceOpen, mu), invoiceStatus: statusFor(r.invoice.total, r.invoiceOpen),
        paymentUnallocated: fixed(unallocated, mu), entryId,
      });
    }
    const after = await this.get(tx, paymentId);
    await this.audit.record(tx, { action: 'receivables.payment_allocated', entityType: 'payment', entityId: paymentId, after: { allocations: dto.allocations, date, ...settledReversalsAudit(fxEntries) } });
    return after;
  }

  /**
   * A use of the payment's credit (an allocation, a refund; the payment row locked) is not dated before the last reversal
   * of one of its allocations, as a void is not before its invoice's last allocation or reversal: the reversed allocation
   * used the credit until then, and a use dated before would use it twice in between (the credit below zero).
   */
  private async assertAfterCreditReversals(tx: TenantTx, paymentId: string, date: string, doing: string): Promise<void> {
    const reversedOn = (await reversalsAfter(tx.db, tx.orgId, { paymentId }, date)).get(paymentId);
    if (reversedOn) throw PlatformErrors.error('validation_failed', `date: ${doing} dated ${date} is before ${reversedOn}, the date of the last reversal of an allocation of payment ${paymentId}`);
  }

  /**
   * What a revalued payment's credit carried before a later use of it (an allocation, its reversal, a refund) is not
   * kept: a use dated before it would be valued from today.
   */
  private async assertNoLaterUseOfCredit(tx: TenantTx, paymentId: string, date: string, doing: string): Promise<void> {
    const later = await laterUseOfRevaluedCredit(tx.db, tx.orgId, paymentId, date);
    if (later) {
      throw ReceivablesErrors.error('receivables.before_later_settlement',
        `${doing} dated ${date} is before ${later.date}, the date of a later use of the credit of the FX-revalued payment ${paymentId}: date it on or after ${later.date}`,
        { documentId: paymentId, settledOn: later.date });
    }
  }

  /** What a revalued payment's credit carries as of `date` (positive), undefined when no revaluation touched it by then. */
  private async creditCarrying(tx: TenantTx, paymentId: string, date: string): Promise<Carrying | undefined> {
    const c = (await revaluedCarrying(tx.db, tx.orgId, [paymentId], date)).get(paymentId);
    return c && { base: D(c.base).neg(), rate: c.rate };
  }

  /**
   * For allocations made after the payment: AR debit at the payment's base, AR credit at the invoice's, the difference
   * to FX. The lines are at the payment's rate (`rate`), as the payment's own entry: never the rate table's of the date.
   */
  private async postFxAdjustment(tx: TenantTx, items: { invoice: InvoiceRow; amount: Decimal; invoiceBase: Decimal; sourceBase: Decimal; currency: string; rate: string; gainOrLoss?: 'gain' | 'loss'; account?: string }[],
    arAccountId: string, baseMu: number, date: string, memo: string): Promise<string | null> {
    const lines: PostingLine[] = [];
    let fx = D(0);
    let kind: 'gain' | 'loss' | undefined;
    let account: string | undefined;
    for (const x of items) {
      if (x.sourceBase.eq(x.invoiceBase)) continue;
      const common = { accountId: arAccountId, currency: x.currency, rate: x.rate, counterpartyType: 'customer', counterpartyId: x.invoice.customerId };
      const a = x.amount.abs().toFixed();
      if (x.amount.gt(0)) {
        lines.push({ ...common, debit: a, baseDebit: x.sourceBase.toFixed(), description: 'customer credit applied' });
        lines.push({ ...common, credit: a, baseCredit: x.invoiceBase.toFixed(), description: `settles ${x.invoice.number}` });
      } else {
        lines.push({ ...common, debit: a, baseDebit: x.invoiceBase.neg().toFixed(), description: `reopens ${x.invoice.number}` });
        lines.push({ ...common, credit: a, baseCredit: x.sourceBase.neg().toFixed(), description: 'customer credit restored' });
      }
      fx = fx.plus(x.sourceBase).minus(x.invoiceBase);
      kind ??= x.gainOrLoss;
      account ??= x.account;
    }
    if (!lines.length) return null;
    lines.push((await this.fxLine(tx, fx, baseMu, kind, account))!);
    const { entry } = await this.journal.post(tx, { date, memo, source: 'payment', lines });
    return entry.id;
  }

  /**
   * Pays customer credit (what of a payment is neither allocated nor refunded) back: AR debit of the base the
   * refund takes off the credit (at the payment's rate, the difference of its rounded values), bank credit at the
   * rate of the refund date; the difference is realized FX, in the same entry. Serialized with the payment's
   * allocations (its lock), so the credit never goes below zero.
   */
  async refund(tx: TenantTx, paymentId: string, dto: RefundCustomerCreditDto, key?: string): Promise<PaymentDto> {
    // `key`: as a payment's (create); the request is the payment's id and the body
    const idempotency = key ? { key, requestHash: requestHash({ paymentId, ...dto }) } : undefined;
    if (idempotency) {
      const prior = await this.priorByKey(tx, 'refund', idempotency);
      if (prior) return this.get(tx, prior);
    }
    await this.invoices.holdPostings(tx); // before the payment's lock (InvoicesService.holdPostings)
    const payment = await repo.getPayment(tx.db, tx.orgId, paymentId, true);
    if (!payment) throw ReceivablesErrors.notFound('payment', paymentId);
    const settings = await this.customers.settings(tx);
    const { baseCurrency, currencyMu } = await this.invoices.requireCurrency(tx, payment.currency);
    const baseMu = await this.ledger.currencyUnits(tx, baseCurrency);
    const date = dto.date ?? today(this.clock);
    if (date < payment.date) throw PlatformErrors.error('validation_failed', `date must not be before the payment date ${payment.date}`);
    await this.assertAfterCreditReversals(tx, paymentId, date, 'the refund');
    const amount = amountOf(dto.amount, currencyMu, 'amount');
    const left = D(payment.amount).minus(payment.allocated);
    if (amount.gt(left)) {
      throw ReceivablesErrors.error('receivables.exceeds_credit', `amount: ${dto.amount} is more than the customer credit left on the payment (${fixed(left, currencyMu)})`, { credit: fixed(left, currencyMu) });
    }
    const accountId = dto.accountId ?? payment.depositAccountId;
    await this.customers.cashAccount(tx, accountId, 'accountId');
    const rate = payment.currency === baseCurrency ? '1' : dto.rate ?? (await effectiveRate(tx.db, payment.currency, date));
    if (!rate) throw LedgerErrors.error('ledger.rate_missing', `no ${payment.currency} rate on or before ${date}`);
    const rateOverride = payment.currency !== baseCurrency
      ? await checkClientRate(tx, { currency: payment.currency, date, rate: dto.rate, override: dto.rateOverride, field: 'rate' }) : undefined;
    await assertAfterRevaluations(this.ledger, this.journal, tx, payment.currency !== baseCurrency ? [paymentId] : [], date, 'the refund');
    await this.assertNoLaterUseOfCredit(tx, paymentId, date, 'the refund');
    const sourceBase = shareOf(left, amount, payment.rate, baseMu, await this.creditCarrying(tx, paymentId, date));
    const bankBase = baseOf(amount, rate, baseMu);
    const common = { currency: payment.currency, counterpartyType: 'customer', counterpartyId: payment.customerId };
    const lines: PostingLine[] = [
      { ...common, accountId: settings.arAccountId, rate: payment.rate, debit: amount.toFixed(), baseDebit: sourceBase.toFixed(), description: 'customer credit refunded' },
      { ...common, accountId, rate, credit: amount.toFixed(), baseCredit: bankBase.toFixed(), description: `refund to customer${dto.reference ? ` ${dto.reference}` : ''}`.slice(0, 500) },
    ];
    // AR gave up `sourceBase`, the bank paid `bankBase`: the rest is a gain (less paid) or a loss
    const fxLine = await this.fxLine(tx, sourceBase.minus(bankBase), baseMu);
    if (fxLine) lines.push(fxLine);
    const { entry } = await this.journal.post(tx, { date, memo: `Refund of customer credit${dto.reference ? ` ${dto.reference}` : ''}`, source: 'payment', sourceRef: paymentId, lines });
    const id = await repo.insertRefund(tx.db, tx.orgId, {
      paymentId, customerId: payment.customerId, date, amount: amount.toFixed(), currency: payment.currency, rate, sourceBase: sourceBase.toFixed(), accountId,
      method: dto.method ?? 'bank_transfer', reference: dto.reference ?? null, entryId: entry.id, createdBy: actor(tx), idempotency,
    });
    const fxEntries = await settlePendingReversals(this.journal, tx, {
      documentIds: payment.currency !== baseCurrency ? [paymentId] : [], customerId: payment.customerId, date, memo: `Refund of payment ${paymentId}`, realize: 'settled' });
    await emitEvent(tx, 'payment.refunded', {
      refundId: id, paymentId, customerId: payment.customerId, refundDate: date, currency: payment.currency, amount: fixed(amount, currencyMu), entryId: entry.id,
    });
    const after = await this.get(tx, paymentId);
    await this.audit.record(tx, { action: 'receivables.credit_refunded', entityType: 'payment', entityId: paymentId, after: { ...after.refunds.find((r) => r.id === id), ...settledReversalsAudit(fxEntries), ...(rateOverride ? { rateOverride } : {}) } });
    return after;
  }

  /**
   * Undoes a payment allocation (a bounced payment, a mistake): a new allocation row with the opposite amount
   * that names the one it reverses; the posted rows stay as they were. The realized FX of the original is reversed.
   * `key`: as an allocation's (its keys and a reversal's are one set); the request is the allocation's id and the body.
   */
  async reverseAllocation(tx: TenantTx, allocationId: string, dto: ReverseReceivableAllocationDto, key?: string): Promise<PaymentDto> {
    const idempotency = key ? { key, requestHash: requestHash({ allocationId, ...dto }) } : undefined;
    if (idempotency) {
      // before the checks of the allocation: the replay of a reversal answers it, not 409 already_reversed
      const prior = await this.priorByKey(tx, 'allocation', idempotency);
      if (prior) return this.get(tx, prior);
    }
    const a = await repo.getAllocation(tx.db, tx.orgId, allocationId);
    if (!a) throw ReceivablesErrors.notFound('allocation', allocationId);
    if (!a.paymentId) throw ReceivablesErrors.error('receivables.invalid_status', 'a credit note\'s allocation cannot be undone');
    if (a.reversesAllocationId) throw ReceivablesErrors.error('receivables.invalid_status', 'this allocation is itself a reversal');
    await this.invoices.holdPostings(tx); // before the payment's lock and the invoice's (InvoicesService.holdPostings)
    const payment = (await repo.getPayment(tx.db, tx.orgId, a.paymentId, true))!;
    await repo.lockInvoices(tx.db, tx.orgId, [a.invoiceId]);
    if ((await repo.getAllocation(tx.db, tx.orgId, allocationId))!.reversed) throw ReceivablesErrors.error('receivables.already_reversed', `allocation ${allocationId} is already reversed`);
    const invoice = (await repo.getInvoice(tx.db, tx.orgId, a.invoiceId))!;
    if (invoice.status === 'void') throw ReceivablesErrors.error('receivables.invalid_status', 'the invoice is void');
    const settings = await this.customers.settings(tx);
    const ledgerSettings = await this.ledger.settings(tx);
    const { baseCurrency } = ledgerSettings;
    const baseMu = await this.ledger.currencyUnits(tx, baseCurrency);
    const date = dto.date ?? today(this.clock);
    if (date < a.date) throw PlatformErrors.error('validation_failed', 'date must not be before the allocation date');
    const amount = D(a.amount);
    const open = D(invoice.total).minus(invoice.allocated);
    const unallocated = D(payment.amount).minus(payment.allocated);
    // reopened at the rate the invoice (and the payment's credit) is carried at: a revalued one at its revaluation's
    await assertAfterRevaluations(this.ledger, this.journal, tx, payment.currency !== baseCurrency ? [invoice.id, payment.id] : [], date, 'the reversal of the allocation');
    // what a revalued invoice (or credit) carried before a later settlement (or use) is not kept: a reversal dated before it would be valued from today
    const later = await laterSettlementOfRevalued(tx.db, tx.orgId, [invoice.id], date);
    if (later) {
      throw ReceivablesErrors.error('receivables.before_later_settlement',
        `the reversal of the allocation dated ${date} is before ${later.date}, the date of a later allocation of the FX-revalued invoice ${later.documentId}: date it on or after ${later.date}`,
        { documentId: later.documentId, settledOn: later.date });
    }
    await this.assertNoLaterUseOfCredit(tx, payment.id, date, 'the reversal of the allocation');
    const invoiceCarrying = (await revaluedCarrying(tx.db, tx.orgId, [invoice.id], date)).get(invoice.id);
    const creditCarrying = await this.creditCarrying(tx, payment.id, date);
    // the share comes back carrying what the invoice carries now
    const reopened = invoiceCarrying ? D(invoiceCarrying.base).minus(baseOf(open.plus(amount), invoiceCarrying.rate, baseMu))
      : baseShare(open, amount.neg(), invoice.rate!, baseMu);
    // the payment's credit alike: its share comes back carrying what the credit carries now (as the aging shows it, a
    // credit is negative)
    const restoredCredit = creditCarrying ? creditCarrying.base.minus(baseOf(unallocated.plus(amount), creditCarrying.rate, baseMu))
      : baseShare(unallocated, amount.neg(), payment.rate, baseMu);
    // what revaluations (or their reversals) since the allocation changed of each share while it was settled is no realized
    // result: written as the invoice's (and the credit's) rows on the unrealized FX accounts they moved, so what its rows
    // leave on each account stays what the account holds of it; the rest reopens the share at what the allocation took off
    const memo = `Reversal of allocation ${allocationId}`;
    const original = D(a.sourceBase).minus(a.invoiceBase);
    const { posted: { entryId, reversalId }, fxEntries } = await this.journal.giveBackAllocation(tx, {
      subledger: 'receivables', accountId: settings.arAccountId, currency: payment.currency, date, memo, counterpartyType: 'customer', counterpartyId: payment.customerId,
      settledOn: a.date, settledSeq: await repo.allocationPostingSeq(tx.db, tx.orgId, allocationId), foreign: payment.currency !== baseCurrency, fxAccountsMissing: (message: string) => ReceivablesErrors.error('receivables.fx_accounts_missing', message),
      sides: [
        { documentId: invoice.id, ownRate: invoice.rate!, revaluedRate: invoiceCarrying?.rate, open, amount, takenOff: D(a.invoiceBase), now: reopened.neg() },
        { documentId: payment.id, ownRate: payment.rate, revaluedRate: creditCarrying?.rate, open: unallocated.neg(), amount: amount.neg(), takenOff: D(a.sourceBase).neg(), now: restoredCredit },
      ],
    }, { settings: ledgerSettings, baseMu }, async ([invoiceShare, sourceBase]) => {
      const invoiceBase = invoiceShare.neg();
      // the result goes back to the account the original's went to (read from its entry), whatever the settings say now
      const account = !original.isZero() && a.entryId ? await this.journal.resultAccountOf(tx, a.entryId, [settings.arAccountId, payment.depositAccountId]) : undefined;
      const entryId = await this.postFxAdjustment(tx, [{ invoice, amount: amount.neg(), invoiceBase, sourceBase, currency: payment.currency, rate: payment.rate, gainOrLoss: original.gt(0) ? 'gain' : 'loss', account }],
        settings.arAccountId, baseMu, date, memo);
      if (!entryId) await assertOpenPeriod(this.ledger, tx, date); // as an allocation's
      const reversalId = await translateDatabaseError(repo.insertAllocation(tx.db, tx.orgId, {
        invoiceId: a.invoiceId, paymentId: a.paymentId, date, amount: amount.neg().toFixed(), invoiceBase: invoiceBase.toFixed(), sourceBase: sourceBase.toFixed(),
        reversesAllocationId: allocationId, entryId, createdBy: actor(tx), idempotency,
      }), { '23505': () => ReceivablesErrors.error('receivables.already_reversed', `allocation ${allocationId} is already reversed`) });
      // reopened before its share's revaluation rows are written (they read nothing of its status)
      await this.invoices.afterSettlement(tx, invoice, open.plus(amount), date);
      return { entryId, reversalId };
    });
    const mu = await this.ledger.currencyUnits(tx, payment.currency);
    await emitEvent(tx, 'payment.allocation_reversed', {
      allocationId: reversalId, reversesAllocationId: allocationId, paymentId: a.paymentId, invoiceId: a.invoiceId, invoiceNumber: invoice.number, customerId: payment.customerId,
      date, currency: payment.currency, amount: fixed(amount, mu), invoiceOpenAmount: fixed(open.plus(amount), mu), invoiceStatus: statusFor(invoice.total, open.plus(amount)),
      paymentUnallocated: fixed(unallocated.plus(amount), mu), entryId,
    });
    await this.audit.record(tx, { action: 'receivables.allocation_reversed', entityType: 'allocation', entityId: allocationId, after: { date, amount: amount.neg().toFixed(), ...settledReversalsAudit(fxEntries) } });
    return this.get(tx, a.paymentId);
  }
}
