import { Inject, Injectable } from '@nestjs/common';
import type { Decimal } from 'decimal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { AppError } from '../../platform/errors/app-error.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { domainEventRow, emitEvent } from '../../platform/events/events.js';
import { addDaysWithin } from '../../platform/http/calendar-date.js';
import { requestHash } from '../../platform/http/idempotency-key.js';
import { decodeKeyset, page } from '../../platform/http/pagination.js';
import { ENTITLEMENT_GATE, type EntitlementGate } from '../../platform/http/tenant.js';
import { Clock, today } from '../../platform/clock/clock.js';
import { AuditService } from '../audit/audit.service.js';
import { JournalService, unrealizedFxAccounts, type PostingLine } from '../ledger/journal.service.js';
import { LedgerService } from '../ledger/ledger.service.js';
import { ledgerRepository } from '../ledger/ledger.repository.js';
import { baseOf, baseShare, computeTax, D, fitsAmount, fitsMinorUnits, fixed, MAX_AMOUNT, rateText } from '../ledger/money.js';
import { ADMIN_ROLES, type RequestRole } from '../../platform/auth/principal.js';
import type { TaxCodeDto } from '../ledger/ledger.dto.js';
import { CustomersService } from './customers.service.js';
import { assertOpenPeriod } from './open-period.js';
import { assertAfterRevaluations, settlePendingReversals } from './revalued-dates.js';
import { revenueRecognitionRepository } from './revenue-recognition.repository.js';
import { ReceivablesErrors } from './receivables.errors.js';
import { LedgerErrors } from '../ledger/ledger.errors.js';
import { checkClientRate } from '../ledger/client-rate.js';
import { creditedOnlySinceRevalued, effectiveRate, laterSettlementOfRevalued, receivablesRepository as repo, reversalsAfter, revaluedCarrying, type InvoiceLineRow, type InvoiceRow, type NewInvoice } from './receivables.repository.js';
import type {
  CreateCreditNoteDto, CreateInvoiceDto, InvoiceDto, InvoicePage, InvoiceQuery, IssueInvoiceDto, TaxSummaryDto, VoidInvoiceDto,
} from './receivables.dto.js';

/** Who wrote a document: the user id, or service:<name>. */
export const actor = (tx: TenantTx): string | null => (tx.principal.kind === 'user' ? tx.principal.userId : tx.principal.kind === 'service' ? `service:${tx.principal.name}` : null);

/** A status that follows the open amount. */
export function statusFor(total: string, open: Decimal.Value): 'issued' | 'partially_paid' | 'paid' {
  const o = D(open);
  return o.isZero() ? 'paid' : o.eq(total) ? 'issued' : 'partially_paid';
}

interface DocumentContext {
  baseCurrency: string;
  currencyMu: number;
  taxCodes: Map<string, TaxCodeDto>;
}

/** Invoices and credit notes: drafts, issue (numbering and posting), void, credit notes, the PDF's data. */
@Injectable()
export class InvoicesService {
  constructor(
    private readonly audit: AuditService,
    private readonly ledger: LedgerService,
    private readonly journal: JournalService,
    private readonly customers: CustomersService,
    private readonly clock: Clock,
    @Inject(ENTITLEMENT_GATE) private readonly entitlements: EntitlementGate,
  ) {}

  // ---------------------------------------------------------------- reading
  toDto(i: InvoiceRow, lines: InvoiceLineRow[], taxCodes: Map<string, TaxCodeDto>, mu: number, asOf: string): InvoiceDto {
    const open = i.kind === 'invoice' && !['draft', 'void'].includes(i.status) ? D(i.total).minus(i.allocated) : D(0);
    const taxes = new Map<string, TaxSummaryDto>();
    for (const l of lines) {
      if (!l.taxCodeId) continue;
      const t = taxCodes.get(l.taxCodeId);
      const s = taxes.get(l.taxCodeId) ?? { taxCodeId: l.taxCodeId, code: t?.code ?? '', rate: D(t?.rate ?? 0).toFixed(4), net: '0', tax: '0' };
      taxes.set(l.taxCodeId, { ...s, net: fixed(D(s.net).plus(l.netAmount), mu), tax: fixed(D(s.tax).plus(l.taxAmount), mu) });
    }
    return {
      id: i.id, kind: i.kind, customerId: i.customerId, creditedInvoiceId: i.creditedInvoiceId, status: i.status, series: i.series, number: i.number,
      invoiceDate: i.invoiceDate, dueDate: i.dueDate, currency: i.currency, rate: i.rate === null ? null : rateText(i.rate),
      subtotal: fixed(i.subtotal, mu), taxTotal: fixed(i.taxTotal, mu), total: fixed(i.total, mu), openAmount: fixed(open, mu),
      overdue: open.gt(0) && i.dueDate < asOf, memo: i.memo, entryId: i.entryId, voidedOn: i.voidedOn, voidEntryId: i.voidEntryId,
      lines: lines.map((l) => ({
        lineNo: l.lineNo, description: l.description, quantity: D(l.quantity).toFixed(4), unitPrice: D(l.unitPrice).toFixed(4),
        discountPercent: D(l.discountPercent).toFixed(4), taxCodeId: l.taxCodeId, revenueAccountId: l.revenueAccountId,
        serviceStart: l.serviceStart, serviceEnd: l.serviceEnd, netAmount: fixed(l.netAmount, mu), taxAmount: fixed(l.taxAmount, mu),
        grossAmount: fixed(l.grossAmount, mu), creditedLineNo: l.creditedLineNo,
      })),
      taxes: [...taxes.values()], createdAt: i.createdAt,
    };
  }

  private async taxCodeMap(tx: TenantTx): Promise<Map<string, TaxCodeDto>> {
    return new Map((await this.ledger.listTaxCodes(tx)).map((t) => [t.id, t]));
  }

  private async dtos(tx: TenantTx, rows: InvoiceRow[]): Promise<InvoiceDto[]> {
    const lines = await repo.getLines(tx.db, tx.orgId, rows.map((r) => r.id));
    const taxCodes = await this.taxCodeMap(tx);
    const asOf = today(this.clock);
    const out: InvoiceDto[] = [];
    for (const r of rows) out.push(this.toDto(r, lines.filter((l) => l.invoiceId === r.id), taxCodes, await this.ledger.currencyUnits(tx, r.currency), asOf));
    return out;
  }

  async row(tx: TenantTx, id: string, lock = false): Promise<InvoiceRow> {
    const i = await repo.getInvoice(tx.db, tx.orgId, id, lock);
    if (!i) throw ReceivablesErrors.notFound('invoice', id);
    return i;
  }

  async get(tx: TenantTx, id: string): Promise<InvoiceDto> {
    return (await this.dtos(tx, [await this.row(tx, id)]))[0];
  }

  async list(tx: TenantTx, q: InvoiceQuery): Promise<InvoicePage> {
    const limit = q.limit ?? 50;
    const after = decodeKeyset(q.cursor, { d: 'date', i: 'uuid' });
    const rows = await repo.listInvoices(tx.db, tx.orgId, { customerId: q.customerId, status: q.status, kind: q.kind, after, limit });
    const p = page(rows, limit, (r) => ({ d: r.invoiceDate, i: r.id }));
    return { items: await this.dtos(tx, p.items), nextCursor: p.nextCursor };
  }

  // ---------------------------------------------------------------- drafts
  /** Multi-currency documents are full accounting (professional and up). */
  async requireCurrency(tx: TenantTx, currency: string): Promise<{ baseCurrency: string; currencyMu: number }> {
    const { baseCurrency } = await this.ledger.settings(tx);
    const currencyMu = await this.ledger.currencyUnits(tx, currency);
    if (currency !== baseCurrency) await this.entitlements.enforce(tx, { app: 'omnizen', feature: 'full_accounting' });
    return { baseCurrency, currencyMu };
  }

  async taxCode(tx: TenantTx, id: string, field: string, ctx: DocumentContext): Promise<TaxCodeDto> {
    let t = ctx.taxCodes.get(id);
    if (!t) {
      t = await this.ledger.getTaxCode(tx, id).catch((err) => {
        if (err instanceof AppError && err.status === 404) throw ReceivablesErrors.error('receivables.unknown_tax_code', `${field}: tax code ${id} does not exist in this organization`);
        throw err;
      });
      ctx.taxCodes.set(id, t);
    }
    if (t.archivedAt) throw ReceivablesErrors.error('receivables.unknown_tax_code', `${field}: tax code ${t.code} is archived`);
    return t;
  }

  /** THE line arithmetic: quantity × unit price less the discount, rounded to the currency, then the ledger's tax calculation. */
  computeLine(quantity: string, unitPrice: string, discountPercent: string, tax: TaxCodeDto | undefined, mu: number) {
    const amount = fixed(D(quantity).times(unitPrice).times(D(100).minus(discountPercent)).div(100), mu);
    return tax ? computeTax(amount, tax.rate, tax.inclusive, mu) : { net: amount, tax: fixed(0, mu), gross: amount };
  }

  private async buildDraft(tx: TenantTx, dto: CreateInvoiceDto): Promise<{ header: NewInvoice; lines: InvoiceLineRow[] }> {
    // the default (the customer's terms, 0 to 3,650 days) is never before the invoice date
    if (dto.dueDate !== undefined && dto.dueDate < dto.invoiceDate) {
      throw ReceivablesErrors.error('receivables.due_before_invoice', `dueDate ${dto.dueDate} is before invoiceDate ${dto.invoiceDate}`);
    }
    const customer = await this.customers.forDocument(tx, dto.customerId);
    const currency = dto.currency ?? customer.defaultCurrency ?? (await this.ledger.settings(tx)).baseCurrency;
    const { baseCurrency, currencyMu } = await this.requireCurrency(tx, currency);
    const ctx: DocumentContext = { baseCurrency, currencyMu, taxCodes: new Map() };
    const lines: InvoiceLineRow[] = [];
    let subtotal = D(0);
    let taxTotal = D(0);
    for (const [i, l] of dto.lines.entries()) {
      if (!D(l.quantity).gt(0)) throw ReceivablesErrors.error('receivables.invalid_amount', `lines[${i}].quantity must be positive (credit notes credit an invoice instead)`);
      const discount = l.discountPercent ?? '0';
      if (D(discount).gt(100)) throw ReceivablesErrors.error('receivables.invalid_amount', `lines[${i}].discountPercent must be between 0 and 100`);
      if ((l.serviceStart === undefined) !== (l.serviceEnd === undefined) || (l.serviceStart && l.serviceEnd && l.serviceStart > l.serviceEnd)) {
        throw PlatformErrors.error('validation_failed', `lines[${i}]: give both serviceStart and serviceEnd, start not after end`);
      }
      const tax = l.taxCodeId ? await this.taxCode(tx, l.taxCodeId, `lines[${i}].taxCodeId`, ctx) : undefined;
      // a revenue account is no control account: the settings take AR an asset, deferred revenue and AP liabilities
      await this.customers.postableAccount(tx, l.revenueAccountId, `lines[${i}].revenueAccountId`, 'revenue');
      const r = this.computeLine(l.quantity, l.unitPrice, discount, tax, currencyMu);
      if (!fitsAmount(r.gross)) {
        throw ReceivablesErrors.error('receivables.invalid_amount', `lines[${i}]: quantity × unitPrice${tax ? ' with tax' : ''} comes to ${r.gross}, above the largest amount ${MAX_AMOUNT}`);
      }
      subtotal = subtotal.plus(r.net);
      taxTotal = taxTotal.plus(r.tax);
      lines.push({
        lineNo: i + 1, description: l.description, quantity: l.quantity, unitPrice: l.unitPrice, discountPercent: discount, taxCodeId: l.taxCodeId ?? null,
        revenueAccountId: l.revenueAccountId, serviceStart: l.serviceStart ?? null, serviceEnd: l.serviceEnd ?? null,
        netAmount: r.net, taxAmount: r.tax, grossAmount: r.gross, creditedLineNo: null,
      });
    }
    const total = subtotal.plus(taxTotal);
    if (!fitsAmount(total)) {
      throw ReceivablesErrors.error('receivables.invalid_amount', `total: the lines add up to ${fixed(total, currencyMu)}, above the largest amount ${MAX_AMOUNT}`);
    }
    if (dto.total !== undefined && !D(dto.total).eq(total)) {
      throw ReceivablesErrors.error('receivables.total_mismatch', `total ${dto.total} differs from the total computed from the lines, ${fixed(total, currencyMu)}`, { computed: fixed(total, currencyMu) });
    }
    return {
      header: {
        kind: 'invoice', customerId: customer.id, series: dto.series ?? 'INV', invoiceDate: dto.invoiceDate,
        dueDate: dto.dueDate ?? addDaysWithin(dto.invoiceDate, customer.paymentTermsDays, 'dueDate'), currency,
        subtotal: fixed(subtotal, currencyMu), taxTotal: fixed(taxTotal, currencyMu), total: fixed(total, currencyMu), memo: dto.memo ?? '', createdBy: actor(tx),
      },
      lines,
    };
  }

  async create(tx: TenantTx, dto: CreateInvoiceDto): Promise<InvoiceDto> {
    const { header, lines } = await this.buildDraft(tx, dto);
    const id = await repo.insertInvoice(tx.db, tx.orgId, header);
    await repo.replaceLines(tx.db, tx.orgId, id, lines);
    const invoice = await this.get(tx, id);
    await this.audit.record(tx, { action: 'receivables.invoice_created', entityType: 'invoice', entityId: id, after: invoice });
    return invoice;
  }

  async update(tx: TenantTx, id: string, dto: CreateInvoiceDto): Promise<InvoiceDto> {
    const row = await this.row(tx, id, true);
    if (row.status !== 'draft') throw ReceivablesErrors.error('receivables.not_draft', `invoice ${row.number} is ${row.status}: issued invoices cannot be changed (credit or void it)`);
    const before = await this.get(tx, id);
    const { header, lines } = await this.buildDraft(tx, dto);
    await repo.updateDraft(tx.db, tx.orgId, id, header);
    await repo.replaceLines(tx.db, tx.orgId, id, lines);
    const after = await this.get(tx, id);
    await this.audit.record(tx, { action: 'receivables.invoice_updated', entityType: 'invoice', entityId: id, before, after });
    return after;
  }

  async delete(tx: TenantTx, id: string): Promise<void> {
    const row = await this.row(tx, id, true);
    if (row.status !== 'draft') throw ReceivablesErrors.error('receivables.not_draft', `invoice ${row.number} is ${row.status}: only drafts can be deleted (void it instead)`);
    const before = await this.get(tx, id);
    await repo.deleteDraft(tx.db, tx.orgId, id);
    await this.audit.record(tx, { action: 'receivables.invoice_deleted', entityType: 'invoice', entityId: id, before });
  }

  // ---------------------------------------------------------------- issue
  /**
   * Numbers the draft (gapless per series and year: the counter row stays locked until commit) and posts it:
   * AR debit of the total; per line a credit of the net to its revenue account (deferred revenue when it has a
   * service period); per tax code a credit of the tax to the code's sales account; at the rate of the invoice date.
   * It ends the transaction (its last statement leaves with COMMIT: db.commitNow), so it is the last thing a request does.
   */
  async issue(tx: TenantTx, id: string, dto: IssueInvoiceDto): Promise<InvoiceDto> {
    // an override of the credit limit is a person's credit decision (an owner's or admin's), asked for or not needed
    // alike: not an API key's or a service's, though ADMIN_ROLES lets them do an admin's other writes
    if (dto.overrideCreditLimit && tx.role === 'service') {
      throw PlatformErrors.error('forbidden.role', 'overrideCreditLimit needs a person with the role owner or admin: an API key or a service may not override a credit limit');
    }
    if (dto.overrideCreditLimit && !ADMIN_ROLES.includes(tx.role as RequestRole)) {
      throw PlatformErrors.error('forbidden.role', `overrideCreditLimit needs the role owner or admin; you are ${tx.role ?? 'not a member'}`);
    }
    // what the issue reads, sent together (the connection pipelines them, in this order): one round trip instead of seven.
    // The posting lock is held shared first, before the invoice's row is locked (as every flow of receivables takes
    // them: a payment holds it while it waits for the invoices it allocates to) and before the AR account is read
    // (CustomersService.settings). None of them refuses: the invoice is looked up first (404), and a draft exists only
    // once the books are started (never books_not_started)
    const [, row, settingsOrMissing, ledgerSettings, lines, taxCodes, credit] = await Promise.all([
      this.ledger.holdPostings(tx), repo.getInvoiceLocked(tx.db, tx.orgId, id), repo.settings(tx.db, tx.orgId), ledgerRepository.settings(tx.db, tx.orgId),
      repo.getLines(tx.db, tx.orgId, [id]), this.taxCodeMap(tx), repo.creditLimitOfInvoice(tx.db, tx.orgId, id),
    ]);
    if (!row) throw AppError.notFound('invoice', id);
    if (row.status !== 'draft') throw ReceivablesErrors.error('receivables.not_draft', `invoice ${row.number} is already ${row.status}`);
    // archiving a customer stops new invoices: a draft made before is not issued either (it can be deleted)
    if (credit?.archived) throw ReceivablesErrors.error('receivables.customer_archived', `the invoice's customer ${credit.name} is archived: a draft of an archived customer is not issued`);
    const { baseCurrency } = ledgerSettings ?? (await this.ledger.settings(tx));
    const settings = settingsOrMissing ?? (await this.customers.settings(tx));
    const currencyMu = await this.ledger.currencyUnits(tx, row.currency);
    if (row.currency !== baseCurrency) await this.entitlements.enforce(tx, { app: 'omnizen', feature: 'full_accounting' });
    const baseMu = await this.ledger.currencyUnits(tx, baseCurrency);
    const rate = row.currency === baseCurrency ? '1' : dto.rate ?? (await effectiveRate(tx.db, row.currency, row.invoiceDate));
    if (!rate) throw LedgerErrors.error('ledger.rate_missing', `no ${row.currency} rate on or before ${row.invoiceDate}`);
    if (lines.some((l) => l.serviceStart) && !settings.deferredRevenueAccountId) {
      throw ReceivablesErrors.error('receivables.deferred_account_missing', 'a line has a service period: set deferredRevenueAccountId in the receivables settings first');
    }
    const before = this.toDto(row, lines, taxCodes, currencyMu, today(this.clock));
    if (D(row.total).isZero()) return this.issueWithoutPosting(tx, row, rate, baseMu, currencyMu);
    // a client's rate far from the table's would post the invoice (and every later settlement's realized FX) at it
    const rateOverride = row.currency !== baseCurrency
      ? await checkClientRate(tx, { currency: row.currency, date: row.invoiceDate, rate: dto.rate, override: dto.rateOverride, field: 'rate' }) : undefined;
    const creditOverride = credit?.creditLimit != null
      ? await this.checkCreditLimit(tx, row, credit, baseOf(row.total, await this.creditLimitRate(tx, row, rate, row.currency !== baseCurrency && dto.rate !== undefined), baseMu), baseCurrency, baseMu, dto)
      : undefined;
    const posting = this.documentLines(row, lines, taxCodes, settings, rate, baseMu, 'invoice', D(row.total));
    const { entry } = await this.journal.post(tx, {
      date: row.invoiceDate, memo: `Invoice (series ${row.series})`, source: 'invoice', sourceRef: id, idempotencyKey: `invoice:${id}`, lines: posting,
    });
    // the number last: the series' counter row stays locked until commit (gapless), so the one statement that takes it
    // also writes the rows that carry it (the event, the audit row), and COMMIT leaves with it in one write. The lock is
    // held for the server's work only, never for a round trip to the app.
    const status = 'issued'; // an invoice of 0.00 is issued paid, without a posting: issueWithoutPosting
    const event = domainEventRow('invoice.issued', {
      invoiceId: id, kind: 'invoice', customerId: row.customerId, invoiceDate: row.invoiceDate, dueDate: row.dueDate, currency: row.currency,
      total: fixed(row.total, currencyMu), entryId: entry.id,
    }); // + number
    const audit = await this.audit.row(tx, {
      action: 'receivables.invoice_issued', entityType: 'invoice', entityId: id, before: { status: 'draft' },
      after: { status, entryId: entry.id, rate, ...(creditOverride ? { creditLimitOverride: creditOverride } : {}), ...(rateOverride ? { rateOverride } : {}) },
    }); // + number
    const numbered = repo.issueWithNextNumber(tx.db, tx.orgId, id, `${row.series}-${row.invoiceDate.slice(0, 4)}`, {
      rate, status, entryId: entry.id, baseSubtotal: baseOf(row.subtotal, rate, baseMu).toFixed(), baseTotal: baseOf(row.total, rate, baseMu).toFixed(),
    }, { event, audit });
    tx.db.commitNow();
    const number = await numbered;
    return { ...before, status, number, rate: rateText(rate), entryId: entry.id, openAmount: before.total, overdue: D(before.total).gt(0) && row.dueDate < today(this.clock) };
  }

  /**
   * The rate the credit limit values an invoice at: the larger of the client's (`rate`, when `clientRate`) and the rate
   * table's of the invoice date, so a rate typed low cannot take the invoice under the limit (it still posts at the
   * client's); the client's when the table has none that day.
   */
  private async creditLimitRate(tx: TenantTx, row: InvoiceRow, rate: string, clientRate: boolean): Promise<string> {
    if (!clientRate) return rate;
    const table = await effectiveRate(tx.db, row.currency, row.invoiceDate);
    return table !== null && D(table).gt(rate) ? table : rate;
  }

  /**
   * The credit limit (in the base currency) against what the customer owes once the invoice is issued: its open
   * invoices less its customer credit (receivable_open_amounts, as the aging totals them) plus the invoice's base value.
   * Above the limit: a 422 naming both, nothing written; unless an owner or admin overrides it (overrideCreditLimit),
   * then the figures it was overridden at, for the audit row. At the limit is within it. The customer's checks run one
   * at a time until commit (holdCustomerCredit), so two issues that fit alone but not together are never both taken.
   */
  private async checkCreditLimit(tx: TenantTx, row: InvoiceRow, customer: { name: string; creditLimit: string | null }, invoiceBase: Decimal,
    baseCurrency: string, baseMu: number, dto: IssueInvoiceDto): Promise<{ creditLimit: string; balance: string; resultingBalance: string } | undefined> {
    await repo.holdCustomerCredit(tx.db, tx.orgId, row.customerId);
    const limit = D(customer.creditLimit!);
    const balance = D(await repo.customerOpenBase(tx.db, tx.orgId, row.customerId));
    const resulting = balance.plus(invoiceBase);
    if (resulting.lte(limit)) return undefined;
    // a limit entered before the books were started may be finer than the base currency: shown as entered
    const figures = {
      creditLimit: fitsMinorUnits(limit, baseMu) ? fixed(limit, baseMu) : limit.toFixed(), balance: fixed(balance, baseMu), resultingBalance: fixed(resulting, baseMu),
    };
    if (dto.overrideCreditLimit) return figures;
    throw ReceivablesErrors.error('receivables.credit_limit_exceeded',
      `issuing this invoice (${baseCurrency} ${fixed(invoiceBase, baseMu)}) would take what customer ${customer.name} owes to ${baseCurrency} ${figures.resultingBalance}, `
      + `above its credit limit of ${baseCurrency} ${figures.creditLimit} (an owner or admin may issue it with overrideCreditLimit: true)`,
      { ...figures, invoiceAmount: fixed(invoiceBase, baseMu), currency: baseCurrency });
  }

  /**
   * An invoice of 0.00 (every line discounted 100 %, or priced 0.00): a journal entry needs amounts, so none is posted
   * (entryId null). It is numbered as any issue, paid at once (nothing is open) and audited, only into an open period
   * (assertOpenPeriod: no posting refuses the date here), and its events are an issued and a paid invoice's:
   * invoice.issued (entryId null), then invoice.paid on the invoice date.
   */
  private async issueWithoutPosting(tx: TenantTx, row: InvoiceRow, rate: string, baseMu: number, currencyMu: number): Promise<InvoiceDto> {
    await assertOpenPeriod(this.ledger, tx, row.invoiceDate);
    const year = row.invoiceDate.slice(0, 4);
    const number = `${row.series}-${year}-${String(await repo.nextNumber(tx.db, tx.orgId, `${row.series}-${year}`)).padStart(6, '0')}`;
    await repo.markIssued(tx.db, tx.orgId, row.id, {
      number, rate, status: 'paid', entryId: null, baseSubtotal: baseOf(row.subtotal, rate, baseMu).toFixed(), baseTotal: baseOf(row.total, rate, baseMu).toFixed(),
    });
    const total = fixed(row.total, currencyMu);
    await emitEvent(tx, 'invoice.issued', {
      invoiceId: row.id, kind: 'invoice', number, customerId: row.customerId, invoiceDate: row.invoiceDate, dueDate: row.dueDate, currency: row.currency, total, entryId: null,
    });
    await emitEvent(tx, 'invoice.paid', { invoiceId: row.id, number, customerId: row.customerId, total, paidOn: row.invoiceDate });
    await this.audit.record(tx, { action: 'receivables.invoice_issued', entityType: 'invoice', entityId: row.id, before: { status: 'draft' }, after: { status: 'paid', entryId: null, rate, number } });
    return this.get(tx, row.id);
  }

  /**
   * The journal lines of an invoice (sign 'invoice') or a credit note ('credit_note', every side swapped).
   * The AR line carries exactly `arBase` in the base currency (what the open items are valued at); a rounding
   * difference of the other lines goes to the ledger's rounding account.
   */
  documentLines(row: InvoiceRow, lines: InvoiceLineRow[], taxCodes: Map<string, TaxCodeDto>, settings: { arAccountId: string; deferredRevenueAccountId: string | null },
    rate: string, baseMu: number, kind: 'invoice' | 'credit_note', arBaseOverride?: Decimal.Value,
    backToDeferred?: Map<number, { amount: string; base: string }>): PostingLine[] {
    const dr = kind === 'invoice' ? 'debit' : 'credit';
    const cr = kind === 'invoice' ? 'credit' : 'debit';
    const common = { currency: row.currency, rate, counterpartyType: 'customer', counterpartyId: row.customerId };
    const arBase = arBaseOverride !== undefined && kind === 'credit_note' ? D(arBaseOverride) : baseOf(row.total, rate, baseMu);
    const out: PostingLine[] = [];
    if (!D(row.total).isZero()) {
      out.push({ ...common, accountId: settings.arAccountId, [dr]: D(row.total).toFixed(), [kind === 'invoice' ? 'baseDebit' : 'baseCredit']: arBase.toFixed(), description: 'accounts receivable' });
    }
    const taxes = new Map<string, Decimal>();
    for (const l of lines) {
      if (!D(l.netAmount).isZero()) {
        const deferred = kind === 'invoice' && l.serviceStart !== null;
        const taxed = l.taxCodeId ? { taxCodeId: l.taxCodeId, taxRole: 'output_base' as const } : {};
        // a credit note's line of deferred revenue not yet recognized: that part comes back out of deferred revenue
        const back = kind === 'credit_note' ? backToDeferred?.get(l.lineNo) : undefined;
        if (back) {
          out.push({ ...common, accountId: settings.deferredRevenueAccountId!, [cr]: back.amount, baseDebit: back.base,
            description: `${l.description} (deferred, not yet recognized)`.slice(0, 500), ...taxed });
        }
        const rest = back ? D(l.netAmount).minus(back.amount) : D(l.netAmount);
        if (!rest.isZero()) {
          out.push({
            ...common, accountId: deferred ? settings.deferredRevenueAccountId! : l.revenueAccountId, [cr]: rest.toFixed(),
            description: deferred ? `${l.description} (deferred ${l.serviceStart} to ${l.serviceEnd})`.slice(0, 500) : l.description.slice(0, 500),
            ...taxed,
          });
        }
      }
      if (l.taxCodeId && !D(l.taxAmount).isZero()) taxes.set(l.taxCodeId, (taxes.get(l.taxCodeId) ?? D(0)).plus(l.taxAmount));
    }
    for (const [taxCodeId, amount] of taxes) {
      const t = taxCodes.get(taxCodeId)!;
      out.push({ ...common, accountId: t.salesAccountId, [cr]: amount.toFixed(), description: `${t.code} ${D(t.rate).toFixed()}%`, taxCodeId, taxRole: 'output_tax' });
    }
    return out;
  }

  // ---------------------------------------------------------------- void
  async void(tx: TenantTx, id: string, dto: VoidInvoiceDto): Promise<InvoiceDto> {
    // the posting lock (shared) before the invoice's row and the recognition runs' lock: the order of every flow of
    // receivables (holdPostings)
    await this.holdPostings(tx);
    const row = await this.row(tx, id, true);
    if (row.kind !== 'invoice' || !['issued', 'partially_paid', 'paid'].includes(row.status)) {
      throw ReceivablesErrors.error('receivables.invalid_status', `only an issued invoice can be voided; this ${row.kind} is ${row.status}`);
    }
    // what is allocated net of reversals (read after the row lock: allocations and their reversals lock the invoice too).
    // A payment allocated and then reversed leaves nothing settled: the invoice is voided as one never paid
    const allocations = await repo.allocationsOf(tx.db, tx.orgId, { invoiceId: id });
    const allocated = allocations.reduce((s, a) => s.plus(a.amount), D(0));
    if (!allocated.isZero()) {
      const mu = await this.ledger.currencyUnits(tx, row.currency);
      throw ReceivablesErrors.error('receivables.has_allocations',
        `invoice ${row.number} has ${row.currency} ${fixed(allocated, mu)} of payments or credit notes allocated: it cannot be voided (reverse the allocations of its payments, or credit it instead)`);
    }
    // no recognition run in flight may take revenue from it between this check and the void
    await revenueRecognitionRepository.lockRuns(tx.db, tx.orgId);
    if ((await revenueRecognitionRepository.recognitions(tx.db, tx.orgId, { invoiceId: id })).length) {
      throw ReceivablesErrors.error('receivables.invalid_status', `invoice ${row.number} has revenue recognized from its deferred lines: credit it instead`);
    }
    // not before the last allocation or reversal: until then the invoice settled part of a payment, and voided earlier
    // the aging would drop the invoice while the payment's credit still counted it used (aging and AR balance apart)
    const lastSettled = allocations.reduce<string | null>((d, a) => (d === null || a.date > d ? a.date : d), null);
    // nor before its last FX revaluation (receivables.before_revaluation): the default is the latest of these dates
    const revalued = (await this.journal.lastRevaluation(tx, [id]))?.date ?? null;
    const earliest = [lastSettled, revalued].reduce<string>((d, x) => (x !== null && x > d ? x : d), row.invoiceDate);
    const date = dto.date ?? earliest;
    if (date < row.invoiceDate) throw PlatformErrors.error('validation_failed', 'date must not be before the invoice date');
    if (lastSettled !== null && date < lastSettled) {
      throw PlatformErrors.error('validation_failed', `date must not be before ${lastSettled}, the date of the last allocation or reversal of invoice ${row.number}`);
    }
    await assertAfterRevaluations(this.ledger, this.journal, tx, [id], date, 'the void');
    // an invoice of 0.00 posted nothing (issueWithoutPosting): nothing to reverse, the date still in an open period
    let reversalId: string | null = null;
    if (row.entryId) reversalId = (await this.journal.reverse(tx, row.entryId, { date, memo: `Void of invoice ${row.number}` })).entry.id;
    else await assertOpenPeriod(this.ledger, tx, date);
    // the reversal takes the invoice's own base off AR; what FX revaluations added to it (or took off) goes too, or AR
    // would keep it while the aging drops the invoice. Before markVoid: its row of the open amounts follows the change,
    // then the void leaves it at 0
    const revaluationEntryId = row.rate ? await this.journal.takeOffRevaluations(tx, {
      subledger: 'receivables', documentId: id, accountId: (await this.customers.settings(tx)).arAccountId, currency: row.currency, rate: row.rate, date,
      memo: `Void of invoice ${row.number}: FX revaluation taken off`, counterpartyType: 'customer', counterpartyId: row.customerId,
    }) : null;
    // a reversal of a revaluation posted ahead of the date (autoReverse) takes off the voided invoice nothing: taken back on its date
    const pendingEntryIds = row.rate ? (await this.journal.settlePendingReversals(tx, { subledger: 'receivables', date,
      memo: `Void of invoice ${row.number}`, counterpartyType: 'customer', counterpartyId: row.customerId,
      documents: [{ documentId: id, leaving: { accountId: (await this.customers.settings(tx)).arAccountId, currency: row.currency, rate: row.rate } }] })).compensationEntryIds : [];
    await repo.markVoid(tx.db, tx.orgId, id, date, reversalId);
    await emitEvent(tx, 'invoice.voided', { invoiceId: id, number: row.number, customerId: row.customerId, voidedOn: date, reversalEntryId: reversalId });
    await this.audit.record(tx, { action: 'receivables.invoice_voided', entityType: 'invoice', entityId: id, before: { status: row.status },
      after: { status: 'void', voidedOn: date, voidEntryId: reversalId, ...(revaluationEntryId ? { revaluationEntryId } : {}), ...(pendingEntryIds.length ? { compensationEntryIds: pendingEntryIds } : {}) } });
    return this.get(tx, id);
  }

  // ---------------------------------------------------------------- credit notes
  /**
   * A credit note of some or all lines of an issued invoice, issued at once at the invoice's rate: the reverse
   * posting (revenue and tax debited, AR credited) and an allocation that takes its total off the invoice.
   * Its total may not exceed what is open on the invoice. `key` (the Idempotency-Key header): the same key with the
   * same request (the invoice's id and the body) answers the credit note created first and writes nothing (no entry,
   * event or audit row); with another request it is a 409. Requests with one key run one after the other (its lock).
   */
  async createCreditNote(tx: TenantTx, invoiceId: string, dto: CreateCreditNoteDto, key?: string): Promise<InvoiceDto> {
    const idempotency = key ? { key, requestHash: requestHash({ invoiceId, ...dto }) } : undefined;
    if (idempotency) {
      await repo.lockIdempotencyKey(tx.db, tx.orgId, 'credit_note', idempotency.key);
      const prior = await repo.creditNoteByKey(tx.db, tx.orgId, idempotency.key);
      if (prior && prior.requestHash !== idempotency.requestHash) {
        throw ReceivablesErrors.error('receivables.idempotency_conflict', `the Idempotency-Key "${idempotency.key}" was already used for a different credit note`);
      }
      if (prior) return this.get(tx, prior.id);
    }
    await this.holdPostings(tx); // before the invoice's row and the recognition runs' lock (holdPostings)
    const inv = await this.row(tx, invoiceId, true);
    if (inv.kind !== 'invoice' || !['issued', 'partially_paid'].includes(inv.status)) {
      throw ReceivablesErrors.error('receivables.invalid_status', `only an issued invoice with an open amount can be credited; this ${inv.kind} is ${inv.status}`);
    }
    if (dto.date < inv.invoiceDate) throw PlatformErrors.error('validation_failed', 'date must not be before the invoice date');
    // nor before its last allocation reversal (the invoice row locked): the reversed allocation settled it until then, and
    // the credit note's allocation dated before would settle it twice in between
    const reversedOn = (await reversalsAfter(tx.db, tx.orgId, { invoiceIds: [invoiceId] }, dto.date)).get(invoiceId);
    if (reversedOn) throw PlatformErrors.error('validation_failed', `date must not be before ${reversedOn}, the date of the last allocation reversal of invoice ${inv.number}`);
    const settings = await this.customers.settings(tx);
    const { baseCurrency, currencyMu } = await this.requireCurrency(tx, inv.currency);
    const baseMu = await this.ledger.currencyUnits(tx, baseCurrency);
    const invLines = await repo.getLines(tx.db, tx.orgId, [invoiceId]);
    // what earlier credit notes took of each line, and (as the loop goes) the lines before in this one: a line named
    // twice is credited once in all
    const credited = new Map([...(await repo.creditedLines(tx.db, tx.orgId, invoiceId))]
      .map(([lineNo, c]) => [lineNo, { quantity: D(c.quantity), net: D(c.net), tax: D(c.tax) }]));
    const taxCodes = await this.taxCodeMap(tx);
    // by default every line with a quantity left to credit, whole (a line credited in full before is left out)
    const wanted = dto.lines ?? invLines.filter((l) => D(l.quantity).gt(credited.get(l.lineNo)?.quantity ?? 0))
      .map((l) => ({ lineNo: l.lineNo, quantity: undefined as string | undefined }));
    // a line with a service period: what its credit notes left of its net, and what recognition has taken of that (read
    // while no recognition run of the organization is in flight: one committing meanwhile would take it twice)
    if (invLines.some((l) => l.serviceStart !== null)) await revenueRecognitionRepository.lockRuns(tx.db, tx.orgId);
    const deferredNow = new Map((await revenueRecognitionRepository.deferredLines(tx.db, tx.orgId, dto.date, invoiceId))
      .map((l) => [l.lineNo, { net: D(l.netAmount), recognized: D(l.recognized) }]));
    const rate = inv.rate!;
    const backToDeferred = new Map<number, { amount: string; base: string }>();
    const lines: InvoiceLineRow[] = [];
    let subtotal = D(0);
    let taxTotal = D(0);
    for (const [i, w] of wanted.entries()) {
      const src = invLines.find((l) => l.lineNo === w.lineNo);
      if (!src) throw ReceivablesErrors.error('receivables.credit_lines', `lines[${i}].lineNo: invoice ${inv.number} has no line ${w.lineNo}`);
      const prior = credited.get(src.lineNo) ?? { quantity: D(0), net: D(0), tax: D(0) };
      const left = D(src.quantity).minus(prior.quantity);
      const quantity = w.quantity ?? left.toFixed();
      if (!D(quantity).gt(0) || D(quantity).gt(left)) {
        throw ReceivablesErrors.error('receivables.credit_lines', `lines[${i}].quantity: line ${w.lineNo} has ${left.toFixed()} left to credit`);
      }
      // the credits of a line add up to the line's own rounded net and tax: each takes what the line comes to at the
      // quantity credited after it less what was credited before (rounding per credit would drift: 3 × 0.335 credited one
      // at a time is 0.34 × 3), and the last takes exactly what is left
      const cumulative = prior.quantity.plus(quantity);
      const at = cumulative.eq(src.quantity) ? { net: src.netAmount, tax: src.taxAmount }
        : this.computeLine(cumulative.toFixed(), src.unitPrice, src.discountPercent, src.taxCodeId ? taxCodes.get(src.taxCodeId) : undefined, currencyMu);
      const notBelowZero = (v: Decimal) => (v.isNeg() ? D(0) : v); // credits of the line rounded before this rule could have overshot
      const lineNet = notBelowZero(D(at.net).minus(prior.net));
      const lineTax = notBelowZero(D(at.tax).minus(prior.tax));
      const r = { net: fixed(lineNet, currencyMu), tax: fixed(lineTax, currencyMu), gross: fixed(lineNet.plus(lineTax), currencyMu) };
      credited.set(src.lineNo, { quantity: cumulative, net: prior.net.plus(lineNet), tax: prior.tax.plus(lineTax) });
      const d = src.serviceStart !== null ? deferredNow.get(src.lineNo) : undefined;
      if (d) {
        // what is still deferred of the line is taken back from deferred revenue, the rest (recognized) from revenue;
        // recognition then spreads only what is left. The base telescopes as recognition's does, so that deferred
        // revenue's base empties exactly with the line: baseOf(net) − baseOf(net after this credit), or all that is
        // left of it when the credit takes more than is still deferred
        const net = D(r.net);
        const still = d.net.minus(d.recognized).gt(0) ? d.net.minus(d.recognized) : D(0);
        const amount = net.lt(still) ? net : still;
        if (amount.gt(0)) {
          if (!settings.deferredRevenueAccountId) throw ReceivablesErrors.error('receivables.deferred_account_missing', 'a credited line has deferred revenue: set deferredRevenueAccountId in the receivables settings first');
          const base = baseShare(d.net, amount, rate, baseMu);
          backToDeferred.set(i + 1, { amount: amount.toFixed(), base: base.toFixed() });
        }
        d.net = d.net.minus(net);
      }
      subtotal = subtotal.plus(r.net);
      taxTotal = taxTotal.plus(r.tax);
      lines.push({ ...src, lineNo: i + 1, quantity, netAmount: r.net, taxAmount: r.tax, grossAmount: r.gross, serviceStart: null, serviceEnd: null, creditedLineNo: src.lineNo });
    }
    const total = subtotal.plus(taxTotal);
    // lines that come to 0.00 (discounted 100 %, or a quantity too small to round to a cent): a credit note of nothing
    // would post nothing and settle nothing
    if (total.isZero()) throw ReceivablesErrors.error('receivables.nothing_to_credit', `the lines credited come to ${fixed(total, currencyMu)}: there is nothing to credit`);
    const open = D(inv.total).minus(inv.allocated);
    if (total.gt(open)) throw ReceivablesErrors.error('receivables.credit_lines', `the credit note's total ${fixed(total, currencyMu)} exceeds what is open on invoice ${inv.number}, ${fixed(open, currencyMu)}`);
    // what the invoice carries is read below: under the posting lock (held since the start), as of no date before its
    // last revaluation
    await assertAfterRevaluations(this.ledger, this.journal, tx, inv.currency !== baseCurrency ? [invoiceId] : [], dto.date, 'the credit note');
    // what a revalued invoice carried before a later settlement is not kept: a credit note dated before it would be valued from today
    const later = await laterSettlementOfRevalued(tx.db, tx.orgId, [invoiceId], dto.date);
    if (later) {
      throw ReceivablesErrors.error('receivables.before_later_settlement',
        `the credit note dated ${dto.date} is before ${later.date}, the date of a later settlement of the FX-revalued invoice ${invoiceId}: date it on or after ${later.date}`,
        { documentId: invoiceId, settledOn: later.date });
    }
    const cnId = await repo.insertInvoice(tx.db, tx.orgId, {
      kind: 'credit_note', customerId: inv.customerId, creditedInvoiceId: invoiceId, series: 'CN', invoiceDate: dto.date, dueDate: dto.date,
      currency: inv.currency, subtotal: fixed(subtotal, currencyMu), taxTotal: fixed(taxTotal, currencyMu), total: fixed(total, currencyMu),
      memo: dto.memo ?? `Credit note for ${inv.number}`, createdBy: actor(tx), idempotency,
    });
    await repo.replaceLines(tx.db, tx.orgId, cnId, lines);
    const cn = await this.row(tx, cnId);
    // the credit note's own base (at the invoice's rate): the difference of the invoice's rounded open values
    const creditBase = baseShare(open, total, rate, baseMu);
    // what it takes off the invoice: as an allocation does, of what the invoice carries, at its last revaluation's rate
    // (all of it when it credits what is open). Without a revaluation the two are one
    const foreign = inv.currency !== baseCurrency;
    const carrying = foreign ? (await revaluedCarrying(tx.db, tx.orgId, [invoiceId], dto.date)).get(invoiceId) : undefined;
    const invoiceBase = !carrying ? creditBase : total.eq(open) ? D(carrying.base) : D(carrying.base).minus(baseOf(open.minus(total), carrying.rate, baseMu));
    // the difference is the credited share's revaluation, not a result: no cash moved, the credit note cancels the share at
    // what it carries. Each unrealized FX account the invoice's revaluations moved it on gives back its share of what the
    // invoice carries there (what they raised off the gain account, what they lowered off the loss account, whatever the
    // settings say by now), as a void takes an invoice's revaluations off
    const unrealized = creditBase.minus(invoiceBase);
    const docLines = this.documentLines(cn, lines, taxCodes, settings, rate, baseMu, 'credit_note', invoiceBase, backToDeferred);
    /** what the credit note takes off each unrealized FX account (as the invoice's aging shows it), written as its rows */
    const taken = new Map<string, Decimal>();
    // whenever the invoice was revalued, not only when the share's net is not 0: revaluations that net to 0 over two
    // accounts (+50.00 on 4310, -50.00 on 5510) still leave each account its share to take off
    if (carrying) {
      const exact = await creditedOnlySinceRevalued(tx.db, tx.orgId, invoiceId, dto.date);
      const parts = await this.journal.revaluationShareOf(tx, 'receivables', { documentId: invoiceId, accountId: settings.arAccountId, currency: inv.currency,
        counterpartyId: inv.customerId, open: open.toFixed(), ownRate: rate, exact }, dto.date, total, unrealized.neg(), baseMu);
      // rows of no account found: the settings' account of the part's kind (read once)
      const fallback = [...parts].some(([fxAccount, part]) => !fxAccount && !part.isZero()) ? unrealizedFxAccounts(await this.ledger.settings(tx)) : undefined;
      for (const [fxAccount, part] of parts) {
        if (part.isZero()) continue;
        const kind = part.gt(0) ? 'gain' : 'loss';
        const account = fxAccount || fallback?.[kind];
        if (!account) throw ReceivablesErrors.error('receivables.fx_accounts_missing', 'the credited share of an FX-revalued invoice takes its revaluation off the unrealized FX accounts: configure them (or fxGainAccountId and fxLossAccountId) in the ledger settings');
        const amount = fixed(part.abs(), baseMu);
        taken.set(account, (taken.get(account) ?? D(0)).plus(part));
        docLines.push({ accountId: account, ...(part.gt(0) ? { debit: amount } : { credit: amount }), description: `FX revaluation of the credited share taken off (unrealized ${kind})` });
      }
    }
    const { entry } = await this.journal.post(tx, {
      date: dto.date, memo: `Credit note for ${inv.number}`, source: 'invoice', sourceRef: cnId, idempotencyKey: `invoice:${cnId}`, lines: docLines,
    });
    // the share leaves the invoice at what it carries: its allocation at the invoice's rate (what it was booked at), and
    // its revaluation as rows per account (what the credit note took off each), so the last share takes each account's rest
    await repo.insertAllocation(tx.db, tx.orgId, {
      invoiceId, creditNoteId: cnId, date: dto.date, amount: total.toFixed(), invoiceBase: invoiceBase.minus([...taken.values()].reduce((a, b) => a.plus(b), D(0))).toFixed(),
      sourceBase: creditBase.toFixed(), entryId: entry.id, createdBy: actor(tx),
    });
    if (taken.size) await this.journal.recordTakenOff(tx, { subledger: 'receivables', entryId: entry.id, date: dto.date, documentId: invoiceId, rate: carrying!.rate, parts: taken });
    await this.afterSettlement(tx, inv, open.minus(total), dto.date);
    // a reversal of a revaluation posted ahead of the date takes off the credited share no more (nothing is realized: the
    // credit note took the share's revaluation off the unrealized account, which the compensation puts back with the reversal's)
    const { compensationEntryIds } = await settlePendingReversals(this.journal, tx, {
      documentIds: foreign ? [invoiceId] : [], customerId: inv.customerId, date: dto.date, memo: `Credit note for ${inv.number}`, realize: false });
    // the number after every posting, as an issue takes it (issueWithNextNumber): the counter CN-<year> is also an invoice
    // series' (series CN), whose issue holds its balance rows when it takes the counter; a credit note that took it before
    // posting could wait for that issue's balance rows while the issue waits for the counter (40P01). The counter row
    // stays locked until commit, so numbers are gapless (the postings' memos carry the invoice's number instead)
    const year = dto.date.slice(0, 4);
    const number = `CN-${year}-${String(await repo.nextNumber(tx.db, tx.orgId, `CN-${year}`)).padStart(6, '0')}`;
    await repo.markIssued(tx.db, tx.orgId, cnId, { number, rate, status: 'issued', entryId: entry.id, baseSubtotal: baseOf(subtotal, rate, baseMu).toFixed(), baseTotal: creditBase.toFixed() });
    await emitEvent(tx, 'invoice.issued', {
      invoiceId: cnId, kind: 'credit_note', number, customerId: inv.customerId, invoiceDate: dto.date, dueDate: dto.date, currency: inv.currency,
      total: fixed(total, currencyMu), entryId: entry.id, creditedInvoiceId: inv.id,
    });
    const after = await this.get(tx, cnId);
    await this.audit.record(tx, { action: 'receivables.credit_note_issued', entityType: 'invoice', entityId: cnId, after: { ...after, ...(compensationEntryIds.length ? { compensationEntryIds } : {}) } });
    return after;
  }

  /**
   * The posting lock, held shared until commit, for a flow of receivables that posts (or settles what was posted) and
   * locks documents: taken before any of them (an invoice's row, a payment's lock, the recognition runs' lock), in
   * every flow. A payment holds it while it waits for the invoices it allocates to; a flow that held one of those
   * invoices and only then asked for the lock waited behind a drain queued meanwhile (a period close, a settings change,
   * payables' first posting), which waited for the payment: a cycle that stood until the deadlock detector let the flow
   * pass the drain (deadlock_timeout later), and the drain's wait kept the invoice locked for every other flow. Taken
   * again later (settings, the posting itself), it is held already and never waits.
   */
  async holdPostings(tx: TenantTx): Promise<void> {
    await this.ledger.holdPostings(tx);
  }

  /** Sets the invoice's status from its new open amount; emits invoice.paid when it reaches zero. */
  async afterSettlement(tx: TenantTx, inv: InvoiceRow, openAfter: Decimal.Value, date: string): Promise<void> {
    const status = statusFor(inv.total, openAfter);
    if (status === inv.status) return;
    await repo.setStatus(tx.db, tx.orgId, inv.id, status);
    if (status === 'paid') {
      const mu = await this.ledger.currencyUnits(tx, inv.currency);
      await emitEvent(tx, 'invoice.paid', { invoiceId: inv.id, number: inv.number, customerId: inv.customerId, total: fixed(inv.total, mu), paidOn: date });
    }
  }
}
