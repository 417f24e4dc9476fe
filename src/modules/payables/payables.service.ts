import { Injectable } from '@nestjs/common';
import { Decimal } from '../../platform/decimal.js';
import { actorOf, type RequestRole } from '../../platform/auth/principal.js';
import { Clock, today } from '../../platform/clock/clock.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { AppError } from '../../platform/errors/app-error.js';
import { translateDatabaseError } from '../../platform/errors/database-errors.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { emitEvent } from '../../platform/events/events.js';
import { addDaysWithin } from '../../platform/http/calendar-date.js';
import { decodeKeyset, page } from '../../platform/http/pagination.js';
import { ActingPeople } from '../api-keys/acting-people.js';
import { AuditService } from '../audit/audit.service.js';
import { ControlAccounts, type ControlAccount } from '../ledger/control-accounts.js';
import { JournalService, type PostingLine } from '../ledger/journal.service.js';
import { ReportsService } from '../ledger/reports.service.js';
import { LedgerErrors } from '../ledger/ledger.errors.js';
import { LedgerService } from '../ledger/ledger.service.js';
import { computeTax, D, fitsAmount, fitsMinorUnits, fixed, MAX_AMOUNT, rateText } from '../ledger/money.js';
import { generatedMemo } from '../ledger/generated-memo.js';
import { PayablesErrors } from './payables.errors.js';
import { payablesRepository as repo, type BillLineRow, type VendorRow } from './payables.repository.js';
import { assertAfterRevaluations } from './revalued-dates.js';
import type {
  ApprovalRuleDto, BillDto, BillPage, BillQuery, ClaimLineInputDto, CreateBillDto, CreateExpenseClaimDto, CreateVendorDto, UpdateExpenseClaimDto, PayablesSettingsDto,
  UpdateBillDto, UpdatePayablesSettingsDto, UpdateVendorDto, VendorDto, VendorPage, VendorQuery, BillLineInputDto,
} from './payables.dto.js';

/** The rules an organization has until it sets its own: none up to 1,000; one owner/admin above; two above 10,000. */
export const DEFAULT_APPROVAL_RULES: ApprovalRuleDto[] = [
  { above: '0.00', approvals: 0, roles: ['owner', 'admin', 'accountant'] },
  { above: '1000.00', approvals: 1, roles: ['owner', 'admin'] },
  { above: '10000.00', approvals: 2, roles: ['owner', 'admin'] },
];
/** The standard chart's accounts payable (ledger/standard-chart.ts), used until the settings name another. */
const DEFAULT_AP_ACCOUNT_CODE = '2100';
const BOOKKEEPERS: RequestRole[] = ['owner', 'admin', 'accountant', 'service'];

export const iso = (d: Date | string): string => (typeof d === 'string' ? d : d.toISOString().slice(0, 10));

type DecisionRow = Awaited<ReturnType<typeof repo.decisionsOf>>[number];
/** Who approved the submission `submissionNo`, in order. */
const approversOf = (decisions: DecisionRow[], submissionNo: number): string[] =>
  decisions.filter((d) => d.decision === 'approve' && d.submission_no === submissionNo).map((d) => d.actor_id);
/** Who submitted the submission `submissionNo`, and who last replaced the content (null: nobody since its creation). */
function authorsOf(decisions: DecisionRow[], submissionNo: number): { submitter: string | null; lastEditor: string | null } {
  const last = (f: (d: DecisionRow) => boolean) => decisions.filter(f).at(-1)?.actor_id ?? null;
  return { submitter: last((d) => d.decision === 'submit' && d.submission_no === submissionNo), lastEditor: last((d) => d.decision === 'edit') };
}
const toVendor = (r: VendorRow): VendorDto => ({
  id: r.id, name: r.name, contactPerson: r.contact_person, email: r.email, phone: r.phone, taxId: r.tax_id, billingAddress: r.billing_address,
  defaultCurrency: r.default_currency, paymentTermsDays: r.payment_terms_days, archivedAt: r.archived_at, createdAt: r.created_at, updatedAt: r.updated_at,
});

/** Vendors, settings, bills and expense claims, and their approval workflow (posting on final approval). */
@Injectable()
export class PayablesService {
  constructor(
    private readonly audit: AuditService,
    private readonly ledger: LedgerService,
    private readonly journal: JournalService,
    private readonly reports: ReportsService,
    private readonly clock: Clock,
    private readonly controls: ControlAccounts,
  ) {}

  actor(tx: TenantTx): string {
    return actorOf(tx.principal).actorId ?? 'unknown';
  }

  // ---------------------------------------------------------------- vendors
  async createVendor(tx: TenantTx, dto: CreateVendorDto): Promise<VendorDto> {
    if (dto.defaultCurrency) await this.ledger.currencyUnits(tx, dto.defaultCurrency);
    const v = toVendor(await repo.createVendor(tx.db, tx.orgId, dto));
    await this.audit.record(tx, { action: 'payables.vendor_created', entityType: 'vendor', entityId: v.id, after: v });
    return v;
  }

  /** `lock`: held until commit (an update's or archive's before is what it replaces: payablesRepository.getVendor). */
  async getVendor(tx: TenantTx, id: string, o: { lock?: boolean } = {}): Promise<VendorDto> {
    const row = await repo.getVendor(tx.db, tx.orgId, id, o);
    if (!row) throw PayablesErrors.notFound('vendor', id);
    return toVendor(row);
  }

  async updateVendor(tx: TenantTx, id: string, dto: UpdateVendorDto): Promise<VendorDto> {
    const before = await this.getVendor(tx, id, { lock: true });
    if (dto.defaultCurrency) await this.ledger.currencyUnits(tx, dto.defaultCurrency);
    const after = toVendor(await repo.updateVendor(tx.db, tx.orgId, id, dto));
    await this.audit.record(tx, { action: 'payables.vendor_updated', entityType: 'vendor', entityId: id, before, after });
    return after;
  }

  /** Vendors are archived, never deleted (bills and payments refer to them). */
  async archiveVendor(tx: TenantTx, id: string): Promise<VendorDto> {
    const before = await this.getVendor(tx, id, { lock: true });
    const after = toVendor(await repo.archiveVendor(tx.db, tx.orgId, id));
    await this.audit.record(tx, { action: 'payables.vendor_archived', entityType: 'vendor', entityId: id, before, after });
    return after;
  }

  async listVendors(tx: TenantTx, q: VendorQuery): Promise<VendorPage> {
    const limit = q.limit ?? 50;
    const after = decodeKeyset(q.cursor, { n: 'text', i: 'uuid' });
    const rows = await repo.listVendors(tx.db, tx.orgId, { search: q.search, includeArchived: q.includeArchived === 'true', after, limit });
    const p = page(rows, limit, (r) => r.key);
    return { items: p.items.map((r) => toVendor(r.vendor)), nextCursor: p.nextCursor };
  }

  // ---------------------------------------------------------------- settings
  /**
   * For a flow that posts (the default), read under the posting lock (lockPostings): what it then posts to AP is what a
   * settings change saw (ReportsService.assertControlAccountClear). A read that posts nothing, or one made under the
   * lock taken already (planPosting), passes `{ posting: false }`.
   */
  async settings(tx: TenantTx, o: { posting: boolean } = { posting: true }): Promise<PayablesSettingsDto> {
    if (o.posting) await this.lockPostings(tx);
    const s = await repo.settings(tx.db, tx.orgId);
    if (s) return { apAccountId: s.ap_account_id, approvalRules: s.approval_rules as unknown as ApprovalRuleDto[], isDefault: false };
    await this.ledger.settings(tx); // books not started: say so
    const ap = await repo.accountByCode(tx.db, tx.orgId, DEFAULT_AP_ACCOUNT_CODE);
    if (!ap) throw PayablesErrors.error('payables.account_not_allowed', `no accounts payable account: set apAccountId in the payables settings (no account ${DEFAULT_AP_ACCOUNT_CODE})`);
    return { apAccountId: ap.id, approvalRules: DEFAULT_APPROVAL_RULES, isDefault: true };
  }

  /**
   * The AP control account (ControlAccounts: no manual journal entry on it, so that the AP aging equals it): the one the
   * settings name; without settings, the default account once payables has posted to it. Before that the default is
   * an ordinary liability account (an organization not using payables, or whose plan has none, keeps posting to it).
   * Bills, expense claims (employee payables) and payments all post to this one account.
   */
  async controlAccounts(tx: TenantTx): Promise<ControlAccount[]> {
    const ap = await repo.controlAccount(tx.db, tx.orgId, DEFAULT_AP_ACCOUNT_CODE);
    return ap ? [{ accountId: ap, role: 'AP', postedThrough: 'bills, expense claims, bill payments, allocations and vendor refunds' }] : [];
  }

  /**
   * The posting lock for a flow of payables that posts: held shared, as every posting holds it; exclusively (drained)
   * for payables' first posting without settings, so once per organization. Its first posting makes the default account
   * AP and checks that it carries nothing (postingAccount): a manual entry on it holds the lock shared from its check of
   * the control accounts to its commit, so under a shared lock both passed their checks and both posted (the aging short
   * of the account for ever). Drained, the first posting reads the balance once such an entry committed, and an entry
   * starting later waits for it and reads the account as AP. Chosen before this transaction first takes the lock and
   * never upgraded from shared: two first postings at once would otherwise deadlock. The state read first
   * (firstPostingPending, whatever the caller may read) only turns from first to not first, so a shared lock taken on its
   * word never has to become exclusive; held shared, it stays as read (a first posting and a settings change take the
   * lock exclusively). Taken before any document's lock of the flow, everywhere in payables: a payment takes it
   * (postingAccount) before the bills it allocates to, so a flow that locked a bill and then waited here for the lock
   * exclusively deadlocked with a payment to that bill that waited for the bill. A flow that must lock its document to
   * know whether it posts (a submit, an approval) takes it through planPosting.
   */
  private async lockPostings(tx: TenantTx): Promise<void> {
    if (await repo.firstPostingPending(tx.db)) await this.ledger.drainPostings(tx);
    else await this.ledger.holdPostings(tx);
  }

  /**
   * For a flow that locks its document to know whether it posts: `plan` locks and reads what the flow needs, writes
   * nothing, and says whether this request posts; it runs under the posting lock, taken first (lockPostings). Held
   * shared; only when the plan posts and that posting is payables' first without settings is the lock needed
   * exclusively: the plan is then undone to a savepoint (the shared lock and its document locks let go, never upgraded)
   * and made again under the lock held exclusively. So a submit that posts nothing (an expense claim, a bill the rule
   * sends for approval) and an approval that is not the last never drain the postings in flight.
   */
  private async planPosting<T extends { posts: boolean }>(tx: TenantTx, plan: () => Promise<T>): Promise<T> {
    if (!(await repo.firstPostingPending(tx.db))) {
      await this.ledger.holdPostings(tx);
      return plan();
    }
    await repo.beginPlan(tx.db);
    await this.ledger.holdPostings(tx);
    const planned = await plan();
    // read again under the shared lock: a first posting that committed meanwhile leaves this one an ordinary posting
    if (!planned.posts || !(await repo.firstPostingPending(tx.db))) {
      await repo.keepPlan(tx.db);
      return planned;
    }
    await repo.rollbackToPlan(tx.db);
    await this.ledger.drainPostings(tx);
    return plan();
  }

  /**
   * The AP account a posting of payables goes to, read as settings() reads it (under the posting lock, exclusively for
   * payables' first posting without settings: lockPostings). Without settings, payables' first posting makes the default
   * account its AP control account (controlAccounts), so it is checked first as the settings route checks an account it
   * names: no tax code posts its tax there, no other module's settings name it (receivables' deferred revenue) and it
   * carries no balance, else AP would carry what no bill explains (the aging and the account part). Race-free: a tax
   * code's and receivables settings' change drain the postings before their check, and this first posting drains a
   * manual entry's, so one sees the other's commit.
   */
  async postingAccount(tx: TenantTx): Promise<string> {
    const s = await this.settings(tx);
    if (s.isDefault && !(await repo.hasPostings(tx.db, tx.orgId))) {
      const code = DEFAULT_AP_ACCOUNT_CODE; // settings() found the default by it
      await this.controls.refuse(tx, [{ id: s.apAccountId, code, field: 'apAccountId (not set, the default)' }], (m) => PayablesErrors.error('payables.control_account',
        `${m}; payables' first posting makes its default AP account ${code} a control account: set apAccountId in the payables settings to another account, or free ${code} first`), { own: 'payables' });
      // nor may it carry a balance already (a manual entry, an opening balance): the aging would never explain it
      await this.assertCarriesNothing(tx, { id: s.apAccountId, code, field: 'apAccountId (not set, the default)' },
        `payables' first posting would make ${code} the AP control account, whose balance the AP aging must equal: set apAccountId in the payables settings to an account that carries nothing, or clear ${code} first (reverse the entry, or move its balance to another account)`);
    }
    return s.apAccountId;
  }

  /**
   * 422 payables.account_carries_balance when `a` carries a balance: made the AP control account, it would carry what no
   * bill explains, the AP aging and the account would differ for ever, and no manual entry could clear it any more
   * (ControlAccounts). A balance, not any posted line: an account whose entries net to nothing agrees with an empty aging.
   */
  private async assertCarriesNothing(tx: TenantTx, a: { id: string; code: string; field: string }, then: string): Promise<void> {
    const carried = await this.reports.carried(tx, a.id);
    if (carried.length) {
      throw PayablesErrors.error('payables.account_carries_balance', `${a.field}: account ${a.code} carries ${carried.join(', ')} that no bill, expense claim or payment explains; ${then}`);
    }
  }

  async updateSettings(tx: TenantTx, dto: UpdatePayablesSettingsDto): Promise<PayablesSettingsDto> {
    await this.ledger.drainPostings(tx);
    // a chart without the standard AP account has no settings to show yet: setting them is the way out
    const before = await this.settings(tx).catch((err) => {
      if (err instanceof AppError && err.code === 'payables.account_not_allowed') return null;
      throw err;
    });
    const a = await repo.account(tx.db, tx.orgId, dto.apAccountId);
    if (!a) throw LedgerErrors.notFound('account', dto.apAccountId);
    if (a.type !== 'liability' || a.is_group || a.archived_at) {
      throw PayablesErrors.error('payables.account_not_allowed', `apAccountId: account ${a.code} is not an active, postable liability account`);
    }
    // nor receivables' deferred revenue (a liability too): one account would carry two subledgers
    await this.refuseControlAccounts(tx, [{ id: a.id, code: a.code, field: 'apAccountId' }], { own: true });
    // the AP control account now: none before payables' first posting without settings (the default account is an
    // ordinary one until then, which may carry what the organization posted to it)
    const [current] = await this.controlAccounts(tx);
    const adopted = dto.apAccountId.toLowerCase() !== current?.accountId.toLowerCase();
    // payments, refunds and FX results post to the AP account of the settings: moved while the old one carries open
    // bills, those would be paid on the new account and the old one would keep their credit for ever
    if (current && adopted) await this.reports.assertControlAccountClear(tx, current.accountId, 'AP', (m) => PayablesErrors.error('payables.control_account_in_use', m));
    // and the account it becomes starts with nothing: the AP aging starts empty
    if (adopted) {
      await this.assertCarriesNothing(tx, { id: a.id, code: a.code, field: 'apAccountId' },
        'the AP control account must carry only what bills, expense claims and payments post to it: clear it first (reverse the entry, or move its balance to another account) or name another account');
    }
    const thresholds = dto.approvalRules.map((r) => D(r.above).toFixed(4));
    if (new Set(thresholds).size !== thresholds.length) throw PayablesErrors.error('payables.invalid_rules', 'approvalRules: thresholds must be distinct');
    const rules = [...dto.approvalRules].sort((x, y) => D(x.above).cmp(y.above))
      .map((r) => ({ above: r.above, approvals: r.approvals, roles: [...new Set(r.roles)] }));
    await repo.saveSettings(tx.db, tx.orgId, dto.apAccountId, rules);
    const after = await this.settings(tx);
    await this.audit.record(tx, { action: 'payables.settings_updated', entityType: 'payables_settings', entityId: tx.orgId, before, after });
    return after;
  }

  /** The rule for a base-currency total: the one with the highest threshold below it (none: no approval). */
  ruleFor(rules: ApprovalRuleDto[], baseTotal: Decimal): { approvals: number; roles: string[] } {
    const rule = [...rules].sort((x, y) => D(y.above).cmp(x.above)).find((r) => baseTotal.gt(r.above));
    return rule ? { approvals: rule.approvals, roles: rule.roles } : { approvals: 0, roles: ['owner', 'admin', 'accountant'] };
  }

  // ---------------------------------------------------------------- bills and claims: content
  /**
   * 422 payables.control_account when one of `accounts` (a line's account, a bank account, the AP account of the
   * settings) is a control account of a subledger (ControlAccounts.refuse); `own`: set by the settings, which may name
   * payables' own AP again.
   */
  refuseControlAccounts(tx: TenantTx, accounts: { id: string; code: string; field: string }[], o: { own?: boolean } = {}): Promise<void> {
    return this.controls.refuse(tx, accounts, (m) => PayablesErrors.error('payables.control_account', m), o.own ? { own: 'payables' } : {});
  }

  /**
   * An account a bill or claim line may post to: an active, postable expense or asset account (the caller then refuses
   * the control accounts among them, refuseControlAccounts: AR is an asset).
   */
  private async lineAccount(tx: TenantTx, id: string, at: string): Promise<{ id: string; code: string; field: string }> {
    const a = await repo.account(tx.db, tx.orgId, id);
    if (!a) throw PayablesErrors.error('payables.account_not_allowed', `${at}.accountId: account ${id} does not exist in this organization`);
    if (a.is_group) throw PayablesErrors.error('payables.account_not_allowed', `${at}.accountId: account ${a.code} is a group account; use one of its children`);
    if (a.archived_at) throw PayablesErrors.error('payables.account_not_allowed', `${at}.accountId: account ${a.code} is archived`);
    if (a.type !== 'expense' && a.type !== 'asset') throw PayablesErrors.error('payables.account_not_allowed', `${at}.accountId: account ${a.code} is a ${a.type} account, not an expense or asset account`);
    return { id: a.id, code: a.code, field: `${at}.accountId` };
  }

  /** Lines with the amounts the server computes: quantity x unit price, then the ledger's one tax calculation. */
  private async billLines(tx: TenantTx, lines: BillLineInputDto[], currency: string): Promise<BillLineRow[]> {
    const mu = await this.ledger.currencyUnits(tx, currency);
    const out: BillLineRow[] = [];
    const accounts = [];
    for (const [i, l] of lines.entries()) {
      accounts.push(await this.lineAccount(tx, l.accountId, `lines[${i}]`));
      const quantity = D(l.quantity ?? '1');
      if (quantity.lte(0)) throw PlatformErrors.error('validation_failed', `lines[${i}].quantity must be positive`);
      const amount = quantity.times(l.unitPrice);
      let r = { net: fixed(amount, mu), tax: fixed(0, mu), gross: fixed(amount, mu) };
      if (l.taxCodeId) {
        const t = await this.ledger.getTaxCode(tx, l.taxCodeId);
        if (t.archivedAt) throw LedgerErrors.error('ledger.tax_code_archived', `lines[${i}].taxCodeId: tax code ${t.code} is archived`);
        r = computeTax(amount, t.rate, t.inclusive, mu);
      }
      if (!fitsAmount(r.gross)) {
        throw PayablesErrors.error('payables.invalid_amount', `lines[${i}]: quantity × unitPrice${l.taxCodeId ? ' with tax' : ''} comes to ${r.gross}, above the largest amount ${MAX_AMOUNT}`);
      }
      out.push({
        accountId: l.accountId, description: l.description ?? null, quantity, unitPrice: D(l.unitPrice), taxCodeId: l.taxCodeId ?? null,
        net: D(r.net), tax: D(r.tax), gross: D(r.gross), expenseDate: null, receiptRef: null,
      });
    }
    await this.refuseControlAccounts(tx, accounts);
    return out;
  }

  private totals(lines: BillLineRow[], clientTotal: string | undefined, mu: number) {
    const sum = (f: (l: BillLineRow) => Decimal) => lines.reduce((s, l) => s.plus(f(l)), D(0));
    const subtotal = sum((l) => l.net);
    const taxTotal = sum((l) => l.tax);
    const total = sum((l) => l.gross);
    if (total.lte(0)) throw PayablesErrors.error('payables.empty', 'the total is zero: a bill or claim needs at least one line with an amount');
    if (!fitsAmount(total)) throw PayablesErrors.error('payables.invalid_amount', `total: the lines add up to ${fixed(total, mu)}, above the largest amount ${MAX_AMOUNT}`);
    if (clientTotal !== undefined && !D(clientTotal).eq(total)) {
      throw PayablesErrors.error('payables.total_mismatch', `total: the client sent ${clientTotal} but the lines add up to ${fixed(total, mu)}`, { computed: fixed(total, mu) });
    }
    return { subtotal, taxTotal, total };
  }

  private async billContent(tx: TenantTx, dto: CreateBillDto | UpdateBillDto, vendorId: string) {
    const vendor = await repo.getVendor(tx.db, tx.orgId, vendorId);
    if (!vendor) throw PayablesErrors.notFound('vendor', vendorId);
    if (vendor.archived_at) throw PayablesErrors.error('payables.vendor_archived', `vendor ${vendor.name} is archived`);
    const { baseCurrency } = await this.ledger.settings(tx);
    const currency = dto.currency ?? vendor.default_currency ?? baseCurrency;
    const mu = await this.ledger.currencyUnits(tx, currency);
    // the client's rate (as an invoice's at issue) is kept with the draft and posted at; a base-currency bill posts at 1
    const rate = currency !== baseCurrency && dto.rate !== undefined ? dto.rate : null;
    // refused with the draft (a customer payment's is refused by its posting): a bill would otherwise only fail at approval
    if (rate !== null && D(rate).lte(0)) throw PlatformErrors.error('validation_failed', 'rate must be positive');
    const dueDate = dto.dueDate ?? addDaysWithin(dto.billDate, vendor.payment_terms_days, 'dueDate');
    if (dueDate < dto.billDate) throw PayablesErrors.error('payables.due_before_bill', `dueDate ${dueDate} is before billDate ${dto.billDate}`);
    const lines = await this.billLines(tx, dto.lines, currency);
    const totals = this.totals(lines, dto.total, mu);
    if (rate !== null) {
      // at the client's rate the approval posts every line and the total in the base currency too: refused with the draft,
      // not by the approval's posting (ledger line bound)
      const baseMu = await this.ledger.currencyUnits(tx, baseCurrency);
      for (const [field, amount] of [...lines.map((l, i) => [`lines[${i}]`, l.gross] as const), ['total', totals.total] as const]) {
        const base = fixed(amount.times(rate), baseMu);
        if (!fitsAmount(base)) {
          throw PayablesErrors.error('payables.invalid_amount', `rate: ${field} at rate ${rate} comes to ${base} ${baseCurrency}, above the largest amount ${MAX_AMOUNT}`);
        }
      }
    }
    return { header: { billNumber: dto.billNumber ?? null, billDate: dto.billDate, dueDate, currency, memo: dto.memo ?? '', rate, ...totals }, lines };
  }

  /**
   * One vendor's bill is entered once: another bill of the vendor with this number (case and surrounding blanks
   * ignored) that is not voided is a 409 naming it, so the same bill cannot be posted and paid twice. The number is
   * locked first, so two requests entering it at once are checked one after the other (the unique index
   * bills_vendor_number_key is the backstop).
   */
  private async assertNumberFree(tx: TenantTx, vendorId: string, billNumber: string | null, selfId?: string): Promise<void> {
    if (billNumber === null) return;
    await repo.lockBillNumber(tx.db, tx.orgId, vendorId, billNumber);
    const existing = await repo.liveBillWithNumber(tx.db, tx.orgId, vendorId, billNumber, selfId);
    if (existing) throw this.duplicateNumber(billNumber, existing.id, existing.status);
  }

  private duplicateNumber(billNumber: string, existingId?: string, status?: string): AppError {
    return existingId
      ? PayablesErrors.error('payables.duplicate_bill_number', `billNumber: the vendor's bill ${billNumber} is entered already, as bill ${existingId} (${status}); void that one first to enter it again`, { billId: existingId })
      : PayablesErrors.error('payables.duplicate_bill_number', `billNumber: the vendor's bill ${billNumber} is entered already`);
  }

  /** Writes a bill's header, mapping the bill-number index (a request that passed assertNumberFree never meets it). */
  private uniqueNumber<T>(work: Promise<T>, billNumber: string | null): Promise<T> {
    return translateDatabaseError(work, { '23505': (e) => (e.constraint === 'bills_vendor_number_key' ? this.duplicateNumber(billNumber ?? '') : undefined) });
  }

  async createBill(tx: TenantTx, dto: CreateBillDto): Promise<BillDto> {
    const { header, lines } = await this.billContent(tx, dto, dto.vendorId);
    await this.assertNumberFree(tx, dto.vendorId, header.billNumber);
    const id = await this.uniqueNumber(repo.insertBill(tx.db, tx.orgId, { kind: 'bill', vendorId: dto.vendorId, claimantId: null, ...header }, this.actor(tx)), header.billNumber);
    await repo.replaceLines(tx.db, tx.orgId, id, lines);
    const bill = await this.getBill(tx, id, 'bill');
    await this.audit.record(tx, { action: 'payables.bill_created', entityType: 'bill', entityId: id, after: bill });
    return bill;
  }

  async updateBill(tx: TenantTx, id: string, dto: UpdateBillDto): Promise<BillDto> {
    const b = await this.lockDocument(tx, id, 'bill');
    if (b.status !== 'draft' && b.status !== 'rejected') throw PayablesErrors.error('payables.not_editable', `bill ${id} is ${b.status}: only a draft or rejected bill can be edited`);
    const before = await this.getBill(tx, id, 'bill');
    const { header, lines } = await this.billContent(tx, dto, b.vendor_id!);
    await this.assertNumberFree(tx, b.vendor_id!, header.billNumber, id);
    await this.uniqueNumber(repo.updateBillContent(tx.db, tx.orgId, id, header), header.billNumber);
    await repo.replaceLines(tx.db, tx.orgId, id, lines);
    // the editor wrote all of the content now: they may not approve it (approve)
    await repo.addDecision(tx.db, tx.orgId, { billId: id, submissionNo: b.submission_no, decision: 'edit', actorId: this.actor(tx), actorRole: tx.role ?? 'unknown', comment: null });
    const after = await this.getBill(tx, id, 'bill');
    await this.audit.record(tx, { action: 'payables.bill_updated', entityType: 'bill', entityId: id, before, after });
    return after;
  }

  async createClaim(tx: TenantTx, dto: CreateExpenseClaimDto): Promise<BillDto> {
    if (tx.principal.kind !== 'user') throw PlatformErrors.error('auth.user_required', 'an expense claim is made by a signed-in member for themselves');
    const { header, lines } = await this.claimContent(tx, dto);
    const id = await repo.insertBill(tx.db, tx.orgId, { kind: 'expense_claim', vendorId: null, claimantId: tx.principal.userId, ...header }, this.actor(tx));
    await repo.replaceLines(tx.db, tx.orgId, id, lines);
    const claim = await this.getBill(tx, id, 'expense_claim');
    await this.audit.record(tx, { action: 'payables.expense_claim_created', entityType: 'expense_claim', entityId: id, after: claim });
    return claim;
  }

  /** The claimant replaces the content of their draft or rejected claim (a rejected claim is fixed, then submitted again). */
  async updateClaim(tx: TenantTx, id: string, dto: UpdateExpenseClaimDto): Promise<BillDto> {
    const b = await this.lockDocument(tx, id, 'expense_claim');
    if (b.claimant_id !== this.actor(tx)) throw PayablesErrors.error('payables.claim_not_own', 'an expense claim is changed by its claimant only');
    if (b.status !== 'draft' && b.status !== 'rejected') throw PayablesErrors.error('payables.not_editable', `expense claim ${id} is ${b.status}: only a draft or rejected claim can be edited`);
    const before = await this.getBill(tx, id, 'expense_claim');
    const { header, lines } = await this.claimContent(tx, dto);
    await repo.updateBillContent(tx.db, tx.orgId, id, header);
    await repo.replaceLines(tx.db, tx.orgId, id, lines);
    await repo.addDecision(tx.db, tx.orgId, { billId: id, submissionNo: b.submission_no, decision: 'edit', actorId: this.actor(tx), actorRole: tx.role ?? 'unknown', comment: null });
    const after = await this.getBill(tx, id, 'expense_claim');
    await this.audit.record(tx, { action: 'payables.expense_claim_updated', entityType: 'expense_claim', entityId: id, before, after });
    return after;
  }

  private async claimContent(tx: TenantTx, dto: CreateExpenseClaimDto) {
    const mu = await this.ledger.currencyUnits(tx, dto.currency);
    const lines: BillLineRow[] = [];
    const accounts = [];
    for (const [i, l] of dto.lines.entries()) {
      accounts.push(await this.lineAccount(tx, l.accountId, `lines[${i}]`));
      if (l.currency !== dto.currency) throw PayablesErrors.error('payables.currency_mismatch', `lines[${i}].currency is ${l.currency}, the claim is in ${dto.currency}`);
      // what was spent, as the receipt says: never rounded to the currency's units (10.005 is no EUR amount)
      if (!fitsMinorUnits(l.amount, mu)) throw PayablesErrors.error('payables.invalid_amount', `lines[${i}].amount must have at most ${mu} decimals for ${dto.currency} (got ${l.amount})`);
      const amount = D(l.amount);
      lines.push(this.claimLine(l, amount));
    }
    await this.refuseControlAccounts(tx, accounts);
    const header = { billNumber: null, billDate: dto.claimDate, dueDate: dto.claimDate, currency: dto.currency, memo: dto.memo ?? '', ...this.totals(lines, dto.total, mu) };
    return { header, lines };
  }

  private claimLine(l: ClaimLineInputDto, amount: Decimal): BillLineRow {
    return {
      accountId: l.accountId, description: l.description ?? null, quantity: D(1), unitPrice: amount, taxCodeId: null,
      net: amount, tax: D(0), gross: amount, expenseDate: l.date, receiptRef: l.receiptRef ?? null,
    };
  }

  // ---------------------------------------------------------------- reading
  /** `decisions`: the document's decisions when the caller has read them already. */
  async getBill(tx: TenantTx, id: string, kind: 'bill' | 'expense_claim', decisions?: DecisionRow[]): Promise<BillDto> {
    const [b] = await this.bills(tx, [id], decisions);
    if (!b || b.kind !== kind || !this.mayRead(tx, b)) throw PayablesErrors.notFound(kind, id);
    return b;
  }

  /** A member sees their own expense claims only (another member's expenses are theirs); other roles see all. */
  private mayRead(tx: TenantTx, b: { kind: string; claimantId: string | null }): boolean {
    const own = this.ownClaimant(tx);
    return own === undefined || b.kind !== 'expense_claim' || b.claimantId === own;
  }

  /** For a member: the claimant whose expense claims and reimbursements they may see (themselves); undefined for every other role. */
  ownClaimant(tx: TenantTx): string | undefined {
    return tx.role === 'member' ? this.actor(tx) : undefined;
  }

  /** `known`: the documents' decisions when the caller has read them already (read here otherwise). */
  async bills(tx: TenantTx, ids: string[], known?: DecisionRow[]): Promise<BillDto[]> {
    const [rows, lines, decisions, settled, units] = await Promise.all([
      repo.getBills(tx.db, tx.orgId, ids), repo.linesOf(tx.db, tx.orgId, ids), known ?? repo.decisionsOf(tx.db, tx.orgId, ids),
      repo.settledOf(tx.db, tx.orgId, ids), this.ledger.minorUnits(tx),
    ]);
    const byId = new Map(rows.map((r) => [r.id, r]));
    return ids.filter((id) => byId.has(id)).map((id) => {
      const b = byId.get(id)!;
      const mu = units(b.currency);
      const paid = D(settled.find((s) => s.bill_id === id)?.amount ?? 0);
      // a voided document is owed no more (nor ever was, unless posted and then reversed)
      const open = b.status === 'voided' ? D(0) : D(b.total).minus(paid);
      const status = b.status !== 'posted' ? b.status : open.isZero() ? 'paid' : paid.gt(0) ? 'partially_paid' : 'posted';
      const ds = decisions.filter((d) => d.bill_id === id);
      return {
        id, kind: b.kind, vendorId: b.vendor_id, claimantId: b.claimant_id, billNumber: b.bill_number, billDate: iso(b.bill_date), dueDate: iso(b.due_date),
        currency: b.currency, memo: b.memo, subtotal: fixed(b.subtotal, mu), taxTotal: fixed(b.tax_total, mu), total: fixed(b.total, mu),
        openAmount: fixed(open, mu), status, approvalsRequired: b.approvals_required, approverRoles: b.approvals_required === null ? null : b.approver_roles,
        approvalsGiven: new Set(approversOf(ds, b.submission_no)).size,
        rejectionReason: b.rejection_reason, rate: b.rate === null ? null : rateText(b.rate),
        baseTotal: b.base_total === null ? null : fixed(b.base_total, units(b.base_currency!)), journalEntryId: b.journal_entry_id,
        voidedOn: b.voided_on ? iso(b.voided_on) : null, voidEntryId: b.void_entry_id,
        createdBy: b.created_by, createdAt: b.created_at,
        lines: lines.filter((l) => l.bill_id === id).map((l) => ({
          lineNo: l.line_no, accountId: l.account_id, description: l.description, quantity: D(l.quantity).toFixed(4), unitPrice: D(l.unit_price).toFixed(4),
          taxCodeId: l.tax_code_id, net: fixed(l.net, mu), tax: fixed(l.tax, mu), gross: fixed(l.gross, mu),
          expenseDate: l.expense_date ? iso(l.expense_date) : null, receiptRef: l.receipt_ref,
        })),
        decisions: ds.map((d) => ({
          id: d.id, decision: d.decision, submissionNo: d.submission_no, actorId: d.actor_id, actorRole: d.actor_role, comment: d.comment, createdAt: d.created_at,
        })),
      };
    });
  }

  async listBills(tx: TenantTx, kind: 'bill' | 'expense_claim', q: BillQuery): Promise<BillPage> {
    const limit = q.limit ?? 50;
    const after = decodeKeyset(q.cursor, { c: 'timestamp', i: 'uuid' });
    const claimantId = kind === 'expense_claim' && tx.role === 'member' ? this.actor(tx) : undefined;
    const rows = await repo.listBillIds(tx.db, tx.orgId, { kind, vendorId: q.vendorId, claimantId, status: q.status, after, limit });
    const p = page(rows, limit, (r) => ({ c: r.position, i: r.id }));
    return { items: await this.bills(tx, p.items.map((r) => r.id)), nextCursor: p.nextCursor };
  }

  // ---------------------------------------------------------------- workflow
  private async lockDocument(tx: TenantTx, id: string, kind: 'bill' | 'expense_claim') {
    const b = await repo.lockBill(tx.db, tx.orgId, id);
    if (!b || b.kind !== kind) throw PayablesErrors.notFound(kind, id);
    return b;
  }

  /** A member acts only on their own claims; bookkeepers on every document. */
  private ownClaimOrBookkeeper(tx: TenantTx, b: { kind: string; claimant_id: string | null }): void {
    if (BOOKKEEPERS.includes(tx.role as RequestRole)) return;
    if (b.kind === 'expense_claim' && b.claimant_id === this.actor(tx)) return;
    throw PayablesErrors.error('payables.claim_not_own', 'a member may only submit or void their own expense claims');
  }

  /**
   * Submits for approval: the rule of the total in the base currency is fixed on the document, valued at the larger of
   * the client's rate kept with the bill and the rate table's of the bill date (approvalRate). A bill whose rule needs
   * no approval is approved and posted at once (under the posting lock, taken before the bill's: planPosting); an
   * expense claim always needs one bookkeeper's approval (posting is a bookkeeper's act), so its submit posts nothing
   * and takes no posting lock.
   */
  async submit(tx: TenantTx, id: string, kind: 'bill' | 'expense_claim'): Promise<BillDto> {
    const plan = async () => {
      const b = await this.lockDocument(tx, id, kind);
      this.ownClaimOrBookkeeper(tx, b);
      if (b.status !== 'draft' && b.status !== 'rejected') throw PayablesErrors.error('payables.not_editable', `${kind} ${id} is ${b.status}: only a draft or rejected one can be submitted`);
      const before = await this.getBill(tx, id, kind);
      // a bill's: read under the posting lock planPosting holds (a settings change drains it); a claim's posts nothing
      const settings = await this.settings(tx, { posting: false });
      const rate = await this.approvalRate(tx, b.currency, iso(b.bill_date), b.rate === null ? null : D(b.rate));
      const baseMu = await this.ledger.currencyUnits(tx, (await this.ledger.settings(tx)).baseCurrency);
      let rule = this.ruleFor(settings.approvalRules, D(fixed(D(b.total).times(rate), baseMu)));
      if (kind === 'expense_claim' && rule.approvals === 0) rule = { approvals: 1, roles: ['owner', 'admin', 'accountant'] };
      return { b, before, rule, posts: rule.approvals === 0 };
    };
    const { b, before, rule, posts } = kind === 'bill' ? await this.planPosting(tx, plan) : await plan();
    const submissionNo = b.submission_no + 1;
    await repo.setStatus(tx.db, tx.orgId, id, { status: 'submitted', submissionNo, approvalsRequired: rule.approvals, approverRoles: rule.roles, rejectionReason: null });
    await repo.addDecision(tx.db, tx.orgId, { billId: id, submissionNo, decision: 'submit', actorId: this.actor(tx), actorRole: tx.role ?? 'unknown', comment: null });
    await emitEvent(tx, kind === 'bill' ? 'bill.submitted' : 'expense_claim.submitted', { ...this.eventBase(before), approvalsRequired: rule.approvals, approverRoles: rule.roles });
    if (posts) await this.post(tx, id, []);
    const after = await this.getBill(tx, id, kind);
    await this.audit.record(tx, { action: `payables.${kind}_submitted`, entityType: kind, entityId: id, before, after });
    return after;
  }

  /**
   * One approval. The bill row is locked first among the documents (after the posting lock: planPosting), so two
   * approvers at once are counted one after the other and the final approval posts exactly once (the posting's
   * idempotency key `bill:<id>` is a second guard).
   */
  async approve(tx: TenantTx, id: string, kind: 'bill' | 'expense_claim', comment?: string): Promise<BillDto> {
    const me = this.actor(tx);
    const { b, approvers, before, posts } = await this.planPosting(tx, async () => {
      const b = await this.lockDocument(tx, id, kind);
      if (b.status !== 'submitted') throw PayablesErrors.error('payables.not_submitted', `${kind} ${id} is ${b.status}: only a submitted one can be approved`);
      // read once (after the lock, so complete): the four-eyes check, the approvals so far and the state before
      const decisions = await repo.decisionsOf(tx.db, tx.orgId, [id]);
      // four eyes: whoever wrote the content (created it, claims it, last edited it) or submitted it does not approve it,
      // nor does their API key, nor they what their key wrote (ActingPeople: a key acts for its creator)
      const { submitter, lastEditor } = authorsOf(decisions, b.submission_no);
      const approvers = approversOf(decisions, b.submission_no);
      const people = await ActingPeople.of(tx, [me, b.created_by, b.claimant_id, lastEditor, submitter, ...approvers]);
      const parts: [string, string | null][] = [['created', b.created_by], ['claimed', b.claimant_id], ['last edited', lastEditor], ['submitted', submitter]];
      const own = parts.find(([, author]) => people.same(author, me));
      if (own) throw PayablesErrors.error('payables.own_bill', `you ${own[0]} ${kind} ${id}${ActingPeople.through(own[1])}: another approver must approve it`);
      if (!(b.approver_roles ?? []).includes(tx.role ?? '')) {
        throw PayablesErrors.error('payables.role_not_allowed', `approving this ${kind} needs the role ${(b.approver_roles ?? []).join(' or ')}; you are ${tx.role}`);
      }
      if (approvers.some((a) => people.same(a, me))) throw PayablesErrors.error('payables.already_approved', `you have already approved this submission of ${kind} ${id}; it needs another approver`);
      const before = await this.getBill(tx, id, kind, decisions);
      return { b, approvers, before, posts: approvers.length + 1 >= (b.approvals_required ?? 0) };
    });
    await repo.addDecision(tx.db, tx.orgId, { billId: id, submissionNo: b.submission_no, decision: 'approve', actorId: me, actorRole: tx.role ?? 'unknown', comment: comment ?? null });
    if (posts) await this.post(tx, id, [...approvers, me]);
    const after = await this.getBill(tx, id, kind);
    await this.audit.record(tx, { action: `payables.${kind}_approved`, entityType: kind, entityId: id, before, after: { ...after, comment } });
    return after;
  }

  async reject(tx: TenantTx, id: string, kind: 'bill' | 'expense_claim', reason: string): Promise<BillDto> {
    const b = await this.lockDocument(tx, id, kind);
    if (b.status !== 'submitted') throw PayablesErrors.error('payables.not_submitted', `${kind} ${id} is ${b.status}: only a submitted one can be rejected`);
    if (!(b.approver_roles ?? []).includes(tx.role ?? '')) {
      throw PayablesErrors.error('payables.role_not_allowed', `rejecting this ${kind} needs the role ${(b.approver_roles ?? []).join(' or ')}; you are ${tx.role}`);
    }
    const before = await this.getBill(tx, id, kind);
    await repo.setStatus(tx.db, tx.orgId, id, { status: 'rejected', rejectionReason: reason });
    await repo.addDecision(tx.db, tx.orgId, { billId: id, submissionNo: b.submission_no, decision: 'reject', actorId: this.actor(tx), actorRole: tx.role ?? 'unknown', comment: reason });
    await emitEvent(tx, 'bill.rejected', { ...this.eventBase(before), reason, rejectedBy: this.actor(tx) });
    const after = await this.getBill(tx, id, kind);
    await this.audit.record(tx, { action: `payables.${kind}_rejected`, entityType: kind, entityId: id, before, after });
    return after;
  }

  /**
   * Voids a draft or rejected document that will never be posted (entered twice, withdrawn): it stays with its lines and
   * decisions, immutable. A claimant voids their own claim; bookkeepers any document. A posted bill or expense claim
   * nothing is allocated to (not paid or reimbursed, or every allocation reversed) is voided by a bookkeeper too (never
   * by the claimant of the claim: four eyes, as for its approval): the reversal of its entry is posted, dated `date`
   * (default: today, and never before the document date nor its last allocation or reversal) in an open period.
   */
  async void(tx: TenantTx, id: string, kind: 'bill' | 'expense_claim', o: { reason?: string; date?: string }): Promise<BillDto> {
    // the posting lock before the document's (lockPostings), shared: a posted document's void posts its reversal, never
    // payables' first posting (the document's was one)
    await this.ledger.holdPostings(tx);
    const b = await this.lockDocument(tx, id, kind);
    this.ownClaimOrBookkeeper(tx, b);
    const posted = b.status === 'posted';
    if (b.status !== 'draft' && b.status !== 'rejected' && !posted) {
      throw PayablesErrors.error('payables.not_editable', `${kind} ${id} is ${b.status}: only a draft, rejected or posted one can be voided${b.status === 'submitted' ? ' (reject it first)' : ''}`);
    }
    const label = kind === 'bill' ? `bill ${b.bill_number ?? id}` : `expense claim ${id}`;
    // cancelling a posted claim takes back a payable to the claimant: another bookkeeper does it (a member never
    // reaches here for another's claim, which they cannot see), nor the claimant's API key (ActingPeople)
    const claimant = async () => (await ActingPeople.of(tx, [b.claimant_id, this.actor(tx)])).same(b.claimant_id, this.actor(tx));
    if (posted && kind === 'expense_claim' && (!BOOKKEEPERS.includes(tx.role as RequestRole) || await claimant())) {
      throw PayablesErrors.error('payables.own_bill', `you claimed ${label}: another owner, admin or accountant must void it once posted`);
    }
    const before = await this.getBill(tx, id, kind);
    const reason = o.reason ?? null;
    let reversal: { voidedOn: string; reversalEntryId: string } | null = null;
    /** what the void took off of the document's FX revaluations, and the compensations of the reversals posted ahead (for the audit row) */
    const fxEntries: { revaluationEntryId?: string; compensationEntryIds?: string[] } = {};
    if (posted) {
      // the document row is locked: no allocation to it can start before this commits (BillPaymentsService locks it too)
      const [settled] = await repo.settledOf(tx.db, tx.orgId, [id]);
      if (settled && !D(settled.amount).isZero()) {
        const paid = `${before.currency} ${fixed(settled.amount, await this.ledger.currencyUnits(tx, b.currency))} ${kind === 'bill' ? 'paid' : 'reimbursed'}`;
        throw PayablesErrors.error('payables.has_allocations', `${label} has ${paid}: reverse its allocations first, then void it`);
      }
      const billDate = iso(b.bill_date);
      const clockDay = today(this.clock);
      // an allocation and its reversal (nothing is allocated net) still settled the document between their dates: voided
      // before the last of them, the aging would drop it while the payment's credit still counted it used
      const lastSettled = await repo.lastAllocationDate(tx.db, tx.orgId, id);
      // nor before its last FX revaluation (payables.before_revaluation below): the default is the latest of these
      const revalued = (await this.journal.lastRevaluation(tx, [id]))?.date ?? null;
      const earliest = [lastSettled, revalued].reduce<string>((d, x) => (x !== null && x > d ? x : d), billDate);
      const date = o.date ?? (clockDay < earliest ? earliest : clockDay);
      // before the document (its posting date), AP would carry its reversal before the document itself
      if (date < billDate) throw PlatformErrors.error('validation_failed', `date must not be before the ${kind === 'bill' ? 'bill' : 'claim'} date ${billDate}`);
      if (lastSettled !== null && date < lastSettled) throw PlatformErrors.error('validation_failed', `date must not be before ${lastSettled}, the date of the last allocation or reversal of ${label}`);
      await assertAfterRevaluations(this.ledger, this.journal, tx, [id], date, 'the void');
      // the ledger's one reversal path: every line's sides swapped, base amounts kept; a closed period is refused there
      const { entry } = await this.journal.reverse(tx, b.journal_entry_id!, { date, memo: `Void of ${label}` });
      // the reversal takes the document's own base off AP; what FX revaluations added to it (or took off) goes too, or
      // AP would keep it while the aging drops the document
      const [ap] = await this.controlAccounts(tx);
      if (b.rate && ap) {
        fxEntries.revaluationEntryId = await this.journal.takeOffRevaluations(tx, {
          subledger: 'payables', documentId: id, accountId: ap.accountId, currency: b.currency, rate: D(b.rate).toFixed(), date,
          memo: `Void of ${label}: FX revaluation taken off`,
          ...(b.vendor_id ? { counterpartyType: 'vendor', counterpartyId: b.vendor_id } : { counterpartyType: 'employee', counterpartyId: b.claimant_id! }),
        }) ?? undefined;
      }
      // a reversal of a revaluation posted ahead of the date (autoReverse) takes off the voided document nothing: taken back on its date
      if (b.rate && ap) {
        fxEntries.compensationEntryIds = (await this.journal.settlePendingReversals(tx, { subledger: 'payables', date, memo: `Void of ${label}`,
          documents: [{ documentId: id, leaving: { accountId: ap.accountId, currency: b.currency, rate: D(b.rate).toFixed() } }],
          ...(b.vendor_id ? { counterpartyType: 'vendor', counterpartyId: b.vendor_id } : { counterpartyType: 'employee', counterpartyId: b.claimant_id! }) })).compensationEntryIds;
      }
      await repo.markVoided(tx.db, tx.orgId, id, { voidedOn: date, voidEntryId: entry.id });
      reversal = { voidedOn: date, reversalEntryId: entry.id };
    } else {
      await repo.setStatus(tx.db, tx.orgId, id, { status: 'voided' });
    }
    await emitEvent(tx, 'bill.voided', { ...this.eventBase(before), reason, voidedBy: this.actor(tx), voidedOn: reversal?.voidedOn ?? null, reversalEntryId: reversal?.reversalEntryId ?? null });
    const after = await this.getBill(tx, id, kind);
    await this.audit.record(tx, { action: `payables.${kind}_voided`, entityType: kind, entityId: id, before, after: { ...after, reason,
      ...(fxEntries.revaluationEntryId ? { revaluationEntryId: fxEntries.revaluationEntryId } : {}), ...(fxEntries.compensationEntryIds?.length ? { compensationEntryIds: fxEntries.compensationEntryIds } : {}) } });
    return after;
  }

  async comment(tx: TenantTx, id: string, kind: 'bill' | 'expense_claim', comment: string): Promise<BillDto> {
    // not locked: a comment changes nothing of the document, and a member may comment on a bill they cannot change
    const [b] = await repo.getBills(tx.db, tx.orgId, [id]);
    if (!b || b.kind !== kind || !this.mayRead(tx, { kind: b.kind, claimantId: b.claimant_id })) throw PayablesErrors.notFound(kind, id);
    const decisionId = await repo.addDecision(tx.db, tx.orgId, { billId: id, submissionNo: b.submission_no, decision: 'comment', actorId: this.actor(tx), actorRole: tx.role ?? 'unknown', comment });
    await this.audit.record(tx, { action: `payables.${kind}_commented`, entityType: kind, entityId: id, after: { decisionId, comment } });
    return this.getBill(tx, id, kind);
  }

  eventBase(b: BillDto) {
    return { billId: b.id, kind: b.kind, partyType: b.kind === 'bill' ? 'vendor' : 'employee', partyId: b.vendorId ?? b.claimantId!, currency: b.currency, total: b.total };
  }

  /** The rate of `currency` effective on `date` (1 for the base currency); ledger.rate_missing when there is none. */
  async rateOn(tx: TenantTx, currency: string, date: string): Promise<Decimal> {
    const rate = await this.tableRate(tx, currency, date);
    if (!rate) throw LedgerErrors.error('ledger.rate_missing', `no ${currency} rate on or before ${date}`);
    return rate;
  }

  /** The rate table's rate of `currency` effective on `date` (1 for the base currency); null when there is none. */
  private async tableRate(tx: TenantTx, currency: string, date: string): Promise<Decimal | null> {
    const s = await this.ledger.settings(tx);
    if (currency === s.baseCurrency) return D(1);
    const [row] = await tx.db.$queryRaw<{ rate: string | null }[]>`SELECT finance.effective_rate(${currency}, ${date}::date)::text AS rate`;
    return row?.rate ? D(row.rate) : null;
  }

  /**
   * The rate the approval rule values a document at: the larger of the client's rate (`clientRate`, kept with the draft)
   * and the rate table's of its date, so a rate typed low cannot lower the approvals a bill needs (it still posts at the
   * client's rate, which its approvers see). Without a client rate, the table's (none: ledger.rate_missing); with one and
   * none in the table that day, the client's.
   */
  private async approvalRate(tx: TenantTx, currency: string, date: string, clientRate: Decimal | null): Promise<Decimal> {
    if (clientRate === null) return this.rateOn(tx, currency, date);
    const table = await this.tableRate(tx, currency, date);
    return table !== null && table.gt(clientRate) ? table : clientRate;
  }

  /**
   * Posts an approved document through the ledger's one posting path, in its currency at the rate of its date:
   * each line's net to its account (input-tax base), the input tax to the tax code's purchase account, the total
   * to the AP control account (base amount fixed here, so what AP carries is exactly the bill's base total).
   */
  private async post(tx: TenantTx, id: string, approvedBy: string[]): Promise<void> {
    const [b] = await repo.getBills(tx.db, tx.orgId, [id]);
    const lines = await repo.linesOf(tx.db, tx.orgId, [id]);
    const ledgerSettings = await this.ledger.settings(tx);
    const apAccountId = await this.postingAccount(tx);
    const date = iso(b.bill_date);
    // the client's rate kept with the bill, else the rate of its date
    const rate = b.rate !== null ? D(b.rate) : await this.rateOn(tx, b.currency, date);
    const mu = await this.ledger.currencyUnits(tx, b.currency);
    const baseMu = await this.ledger.currencyUnits(tx, ledgerSettings.baseCurrency);
    const foreign = b.currency !== ledgerSettings.baseCurrency;
    const fx = foreign ? { currency: b.currency, rate: rate.toFixed() } : { currency: b.currency };
    const party = b.kind === 'bill' ? { counterpartyType: 'vendor', counterpartyId: b.vendor_id! } : { counterpartyType: 'employee', counterpartyId: b.claimant_id! };
    const posting: PostingLine[] = [];
    for (const l of lines) {
      const tax = l.tax_code_id ? await this.ledger.getTaxCode(tx, l.tax_code_id) : null;
      if (D(l.net).gt(0)) {
        posting.push({ accountId: l.account_id, debit: fixed(l.net, mu), ...fx, description: l.description ?? undefined, ...party,
          ...(tax ? { taxCodeId: tax.id, taxRole: 'input_base' as const } : {}) });
      }
      if (tax && D(l.tax).gt(0)) {
        posting.push({ accountId: tax.purchaseAccountId, debit: fixed(l.tax, mu), ...fx, description: `${tax.code} ${tax.rate}% on ${fixed(l.net, mu)}`, ...party, taxCodeId: tax.id, taxRole: 'input_tax' });
      }
    }
    const baseTotal = D(fixed(D(b.total).times(rate), baseMu));
    posting.push({ accountId: apAccountId, credit: fixed(b.total, mu), ...fx, ...(foreign ? { baseCredit: baseTotal.toFixed(baseMu) } : {}),
      description: b.kind === 'bill' ? `Bill ${b.bill_number ?? id}` : `Expense claim ${id}`, ...party });
    const { entry } = await this.journal.post(tx, {
      date, memo: generatedMemo(`${b.kind === 'bill' ? `Bill ${b.bill_number ?? ''}`.trim() : 'Expense claim'}${b.memo ? ': ' : ''}`, b.memo),
      source: 'bill', sourceRef: `${b.kind}:${id}`, idempotencyKey: `${b.kind}:${id}`, lines: posting,
    });
    await repo.markPosted(tx.db, tx.orgId, id, { rate, baseCurrency: ledgerSettings.baseCurrency, baseTotal, apAccountId, journalEntryId: entry.id });
    const [posted] = await this.bills(tx, [id]);
    await emitEvent(tx, 'bill.approved', { ...this.eventBase(posted), journalEntryId: entry.id, approvedBy });
  }
}
