import { Decimal } from '../../platform/decimal.js';
import { sql, type Selectable } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { exactInstant, qb, type DB } from '../../platform/database/query-builder.js';
import { locks, lockId } from '../../platform/database/locks.js';

// The only place with payables SQL: typed Kysely queries, raw SQL for the aging report only.

const VENDOR_COLS = [
  'id', 'name', 'contact_person', 'email', 'phone', 'tax_id', 'billing_address', 'default_currency', 'payment_terms_days',
  'archived_at', 'created_at', 'updated_at',
] as const;
export type VendorRow = Pick<Selectable<DB['finance.vendors']>, typeof VENDOR_COLS[number]>;

export interface VendorFields {
  name?: string;
  contactPerson?: string;
  email?: string;
  phone?: string;
  taxId?: string;
  billingAddress?: string;
  defaultCurrency?: string;
  paymentTermsDays?: number;
}
const vendorColumns = (v: VendorFields) => ({
  name: v.name, contact_person: v.contactPerson, email: v.email, phone: v.phone, tax_id: v.taxId,
  billing_address: v.billingAddress, default_currency: v.defaultCurrency, payment_terms_days: v.paymentTermsDays,
});

export interface BillHeader {
  kind: 'bill' | 'expense_claim';
  vendorId: string | null;
  claimantId: string | null;
  billNumber: string | null;
  billDate: string;
  dueDate: string;
  currency: string;
  memo: string;
  subtotal: Decimal;
  taxTotal: Decimal;
  total: Decimal;
  /** the rate the client asked a foreign-currency bill to post at (null: the rate of the bill date, fixed at posting) */
  rate?: string | null;
}
/** A payment's Idempotency-Key and the hash of its request (src/platform/http/idempotency-key.ts). */
export interface Idempotency {
  key: string;
  requestHash: string;
}
export interface BillLineRow {
  accountId: string;
  description: string | null;
  quantity: Decimal;
  unitPrice: Decimal;
  taxCodeId: string | null;
  net: Decimal;
  tax: Decimal;
  gross: Decimal;
  expenseDate: string | null;
  receiptRef: string | null;
}

export const payablesRepository = {
  /** The payables record a journal entry belongs to, named with how to correct it (JournalEntryOwners); undefined for none. */
  async entryOwner(db: Db, orgId: string, entryId: string): Promise<string | undefined> {
    const [row] = await db.$queryRaw<{ owner: string }[]>`
      SELECT owner FROM (
        SELECT 1 AS o, (CASE kind WHEN 'expense_claim' THEN 'expense claim ' || id || ' (void the claim: POST payables/expense-claims/' || id || '/void, once its reimbursements are reversed)'
          ELSE 'bill ' || coalesce(bill_number, id::text) || ' (void the bill: POST payables/bills/' || id || '/void, once its allocations are reversed)' END) AS owner
          FROM finance.bills WHERE org_id = ${orgId}::uuid AND journal_entry_id = ${entryId}::uuid
        UNION ALL SELECT 2, 'vendor payment ' || coalesce(reference, id::text) || ' (reverse its allocations, record a vendor refund)'
          FROM finance.bill_payments WHERE org_id = ${orgId}::uuid AND journal_entry_id = ${entryId}::uuid
        UNION ALL SELECT 3, 'allocation ' || id || ' (reverse the allocation)'
          FROM finance.bill_allocations WHERE org_id = ${orgId}::uuid AND journal_entry_id = ${entryId}::uuid
        UNION ALL SELECT 4, 'vendor refund ' || coalesce(reference, id::text)
          FROM finance.bill_payment_refunds WHERE org_id = ${orgId}::uuid AND journal_entry_id = ${entryId}::uuid
      ) owners ORDER BY o LIMIT 1`;
    return row?.owner;
  },

  // ---------------------------------------------------------------- vendors
  async createVendor(db: Db, orgId: string, v: VendorFields) {
    const [row] = await db.run(qb.insertInto('finance.vendors').values({ org_id: orgId, ...vendorColumns(v), name: v.name! }).returning(VENDOR_COLS));
    return row;
  },

  /** `lock`: as receivables' getCustomer (FOR NO KEY UPDATE until commit: the before an update or archive audits is what it replaces). */
  async getVendor(db: Db, orgId: string, id: string, o: { lock?: boolean } = {}) {
    const q = qb.selectFrom('finance.vendors').select(VENDOR_COLS).where('org_id', '=', orgId).where('id', '=', id);
    const [row] = await db.run(o.lock ? q.forNoKeyUpdate() : q);
    return row;
  },

  async updateVendor(db: Db, orgId: string, id: string, v: VendorFields) {
    const [row] = await db.run(qb.updateTable('finance.vendors').set({ ...vendorColumns(v), updated_at: sql`now()` })
      .where('org_id', '=', orgId).where('id', '=', id).returning(VENDOR_COLS));
    return row;
  },

  async archiveVendor(db: Db, orgId: string, id: string) {
    const [row] = await db.run(qb.updateTable('finance.vendors').set({ archived_at: sql`coalesce(archived_at, now())`, updated_at: sql`now()` })
      .where('org_id', '=', orgId).where('id', '=', id).returning(VENDOR_COLS));
    return row;
  },

  /**
   * By (lower(name), id); `search` is a substring of the name or e-mail (LIKE wildcards taken literally). `key` is each
   * row's position as the ORDER BY computes it (PostgreSQL's lower(name), not JavaScript's toLowerCase: 'İ' and final
   * 'Σ' lower differently there, and a cursor built from those skipped or repeated rows).
   */
  async listVendors(db: Db, orgId: string, q: { search?: string; includeArchived: boolean; after?: { n: string; i: string }; limit: number }) {
    let query = qb.selectFrom('finance.vendors').select(VENDOR_COLS).select(sql<string>`lower(name)`.as('position')).where('org_id', '=', orgId);
    if (!q.includeArchived) query = query.where('archived_at', 'is', null);
    if (q.search) {
      const like = `%${q.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      query = query.where((eb) => eb.or([eb('name', 'ilike', like), eb('email', 'ilike', like)]));
    }
    if (q.after) query = query.where(sql<boolean>`(lower(name), id) > (${q.after.n}::text, ${q.after.i}::uuid)`);
    const rows = await db.run(query.orderBy(sql`lower(name)`).orderBy('id').limit(q.limit + 1));
    return rows.map(({ position, ...vendor }) => ({ vendor, key: { n: position, i: vendor.id } }));
  },

  // ---------------------------------------------------------------- settings
  async settings(db: Db, orgId: string) {
    const [row] = await db.run(qb.selectFrom('finance.payables_settings').select(['ap_account_id', 'approval_rules']).where('org_id', '=', orgId));
    return row;
  },

  async saveSettings(db: Db, orgId: string, apAccountId: string, rules: unknown) {
    await db.run(qb.insertInto('finance.payables_settings')
      .values({ org_id: orgId, ap_account_id: apAccountId, approval_rules: JSON.stringify(rules) })
      .onConflict((oc) => oc.column('org_id').doUpdateSet({ ap_account_id: apAccountId, approval_rules: JSON.stringify(rules), updated_at: sql`now()` })));
  },

  /** An account of the organization (for the line, bank and AP account checks). */
  async account(db: Db, orgId: string, id: string) {
    const [row] = await db.run(qb.selectFrom('finance.accounts').select(['id', 'code', 'type', 'is_group', 'archived_at', 'currency'])
      .where('org_id', '=', orgId).where('id', '=', id));
    return row;
  },

  async accountByCode(db: Db, orgId: string, code: string) {
    const [row] = await db.run(qb.selectFrom('finance.accounts').select(['id']).where('org_id', '=', orgId).where('code', '=', code));
    return row;
  },

  /**
   * The AP control account (PayablesService.controlAccounts): the settings' AP account; without settings, the account
   * of `defaultCode` once payables has posted (hasPostings); else none. One prepared statement, as every manual journal
   * entry (a batch once) reads it: the three statements it was, two of them planned anew on every call, cost the database
   * five times its CPU (0.45 against 0.09 ms, serially).
   */
  async controlAccount(db: Db, orgId: string, defaultCode: string): Promise<string | undefined> {
    const [row] = await db.$queryRaw<{ id: string }[]>`
      SELECT s.ap_account_id AS id FROM finance.payables_settings s WHERE s.org_id = ${orgId}::uuid
      UNION ALL
      SELECT a.id FROM finance.accounts a
      WHERE a.org_id = ${orgId}::uuid AND a.code = ${defaultCode}
        AND NOT EXISTS (SELECT 1 FROM finance.payables_settings s WHERE s.org_id = ${orgId}::uuid)
        AND (EXISTS (SELECT 1 FROM finance.bills b WHERE b.org_id = ${orgId}::uuid AND b.journal_entry_id IS NOT NULL)
             OR EXISTS (SELECT 1 FROM finance.bill_payments p WHERE p.org_id = ${orgId}::uuid))`;
    return row?.id;
  },

  /**
   * Whether a posting of payables now would be its first without settings (PayablesService.lockPostings): no settings and
   * nothing posted yet, for the caller's verified organization. Read by finance.payables_first_posting_pending (migration
   * 20270211003300) as its owner: a member's read policies hide the other employees' claims and reimbursements, and read
   * as the caller it stayed true for every member of an organization whose postings were all those. It only ever turns
   * from true to false (settings are never deleted, a posting never unposted). NULL (no verified organization) reads as
   * pending: the lock taken exclusively is the safe side.
   */
  async firstPostingPending(db: Db): Promise<boolean> {
    const [row] = await db.$queryRaw<{ pending: boolean | null }[]>`SELECT finance.payables_first_posting_pending() AS pending`;
    return row?.pending ?? true;
  },

  /**
   * A savepoint for PayablesService.planPosting: rolled back to (rollbackToPlan), it lets go of the posting lock and the
   * document locks taken since, which a transaction cannot otherwise release before its end; else released (keepPlan).
   */
  async beginPlan(db: Db): Promise<void> {
    await db.$executeRaw`SAVEPOINT payables_posting_plan`;
  },

  async rollbackToPlan(db: Db): Promise<void> {
    await db.$executeRaw`ROLLBACK TO SAVEPOINT payables_posting_plan`;
    await db.$executeRaw`RELEASE SAVEPOINT payables_posting_plan`;
  },

  async keepPlan(db: Db): Promise<void> {
    await db.$executeRaw`RELEASE SAVEPOINT payables_posting_plan`;
  },

  /** Whether payables has posted anything yet: a bill or claim posted, or a payment (each posts to the AP account). */
  async hasPostings(db: Db, orgId: string): Promise<boolean> {
    const [row] = await db.$queryRaw<{ posted: boolean }[]>`
      SELECT EXISTS (SELECT 1 FROM finance.bills WHERE org_id = ${orgId}::uuid AND journal_entry_id IS NOT NULL)
          OR EXISTS (SELECT 1 FROM finance.bill_payments WHERE org_id = ${orgId}::uuid) AS posted`;
    return row.posted;
  },

  // ---------------------------------------------------------------- bills and claims
  async insertBill(db: Db, orgId: string, h: BillHeader, createdBy: string): Promise<string> {
    const [row] = await db.run(qb.insertInto('finance.bills').values({
      org_id: orgId, kind: h.kind, vendor_id: h.vendorId, claimant_id: h.claimantId, bill_number: h.billNumber, bill_date: h.billDate,
      due_date: h.dueDate, currency: h.currency, memo: h.memo, subtotal: h.subtotal, tax_total: h.taxTotal, total: h.total, rate: h.rate ? new Decimal(h.rate) : null, created_by: createdBy,
    }).returning('id'));
    return row.id;
  },

  async updateBillContent(db: Db, orgId: string, id: string, h: Omit<BillHeader, 'kind' | 'vendorId' | 'claimantId'>) {
    await db.run(qb.updateTable('finance.bills').set({
      bill_number: h.billNumber, bill_date: h.billDate, due_date: h.dueDate, currency: h.currency, memo: h.memo,
      subtotal: h.subtotal, tax_total: h.taxTotal, total: h.total, rate: h.rate ? new Decimal(h.rate) : null,
      // its number was checked now (PayablesService.assertNumberFree): a duplicate entered before the check is one no more
      legacy_duplicate_number: false,
    }).where('org_id', '=', orgId).where('id', '=', id));
  },

  /** Serializes the entering of one vendor bill number (case and surrounding blanks ignored) until the transaction ends. */
  async lockBillNumber(db: Db, orgId: string, vendorId: string, billNumber: string) {
    // lower(btrim(number)) as the number's check compares it: btrim strips spaces only
    await locks.exclusive(db, `finance.bill_number:${lockId(orgId)}:${lockId(vendorId)}:${billNumber.replace(/^ +| +$/g, '').toLowerCase()}`);
  },

  /** A bill of the vendor with this number (as bills_vendor_number_key compares it) that is not voided, other than `exceptId`. */
  async liveBillWithNumber(db: Db, orgId: string, vendorId: string, billNumber: string, exceptId?: string) {
    let q = qb.selectFrom('finance.bills').select(['id', 'status']).where('org_id', '=', orgId).where('vendor_id', '=', vendorId).where('kind', '=', 'bill')
      .where('status', '<>', 'voided').where(sql<boolean>`lower(btrim(bill_number)) = lower(btrim(${billNumber}::text))`);
    if (exceptId) q = q.where('id', '<>', exceptId);
    const [row] = await db.run(q.orderBy('created_at').orderBy('id').limit(1));
    return row;
  },

  async replaceLines(db: Db, orgId: string, billId: string, lines: BillLineRow[]) {
    await db.run(qb.deleteFrom('finance.bill_lines').where('org_id', '=', orgId).where('bill_id', '=', billId));
    await db.run(qb.insertInto('finance.bill_lines').values(lines.map((l, i) => ({
      org_id: orgId, bill_id: billId, line_no: i + 1, account_id: l.accountId, description: l.description, quantity: l.quantity,
      unit_price: l.unitPrice, tax_code_id: l.taxCodeId, net: l.net, tax: l.tax, gross: l.gross, expense_date: l.expenseDate, receipt_ref: l.receiptRef,
    }))));
  },

  /** The bill, row-locked for this transaction: approvals and allocations of one bill run one at a time. */
  async lockBill(db: Db, orgId: string, id: string) {
    const [row] = await db.run(qb.selectFrom('finance.bills').selectAll().where('org_id', '=', orgId).where('id', '=', id).forUpdate());
    return row;
  },

  async getBills(db: Db, orgId: string, ids: string[]) {
    if (!ids.length) return [];
    return db.run(qb.selectFrom('finance.bills').selectAll().where('org_id', '=', orgId).where('id', '=', sql<string>`any(${ids}::uuid[])`));
  },

  async linesOf(db: Db, orgId: string, ids: string[]) {
    if (!ids.length) return [];
    return db.run(qb.selectFrom('finance.bill_lines').selectAll().where('org_id', '=', orgId).where('bill_id', '=', sql<string>`any(${ids}::uuid[])`).orderBy('bill_id').orderBy('line_no'));
  },

  async decisionsOf(db: Db, orgId: string, ids: string[]) {
    if (!ids.length) return [];
    return db.run(qb.selectFrom('finance.bill_decisions').selectAll().where('org_id', '=', orgId).where('bill_id', '=', sql<string>`any(${ids}::uuid[])`).orderBy('created_at').orderBy('id'));
  },

  /** Amount and base amount settled per bill (allocations up to `asOf` when given). */
  async settledOf(db: Db, orgId: string, ids: string[]) {
    if (!ids.length) return [];
    return db.run(qb.selectFrom('finance.bill_allocations').select(['bill_id', sql<Decimal>`sum(amount)`.as('amount'), sql<Decimal>`sum(bill_base_amount)`.as('base')])
      .where('org_id', '=', orgId).where('bill_id', '=', sql<string>`any(${ids}::uuid[])`).groupBy('bill_id'));
  },

  /** The date of the latest allocation or allocation reversal of a bill (YYYY-MM-DD); null when it has none. */
  async lastAllocationDate(db: Db, orgId: string, billId: string): Promise<string | null> {
    const [row] = await db.run(qb.selectFrom('finance.bill_allocations').select(sql<string | null>`max(allocation_date)::text`.as('last'))
      .where('org_id', '=', orgId).where('bill_id', '=', billId));
    return row?.last ?? null;
  },

  async listBillIds(db: Db, orgId: string, q: { kind: 'bill' | 'expense_claim'; vendorId?: string; claimantId?: string; status?: string; after?: { c: string; i: string }; limit: number }) {
    let query = qb.selectFrom('finance.bills').select(['id', exactInstant('created_at').as('position')]).where('org_id', '=', orgId).where('kind', '=', q.kind);
    if (q.vendorId) query = query.where('vendor_id', '=', q.vendorId);
    if (q.claimantId) query = query.where('claimant_id', '=', q.claimantId);
    if (q.status) query = query.where('status', '=', q.status);
    if (q.after) query = query.where(sql<boolean>`(created_at, id) < (${q.after.c}::timestamptz, ${q.after.i}::uuid)`);
    return db.run(query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(q.limit + 1));
  },

  async hasClaims(db: Db, orgId: string, claimantId: string): Promise<boolean> {
    const [row] = await db.run(qb.selectFrom('finance.bills').select('id').where('org_id', '=', orgId).where('kind', '=', 'expense_claim').where('claimant_id', '=', claimantId).limit(1));
    return Boolean(row);
  },

  async setStatus(db: Db, orgId: string, id: string, s: { status: string; submissionNo?: number; approvalsRequired?: number; approverRoles?: string[]; rejectionReason?: string | null }) {
    await db.run(qb.updateTable('finance.bills').set({
      status: s.status, submission_no: s.submissionNo, approvals_required: s.approvalsRequired, approver_roles: s.approverRoles,
      rejection_reason: s.rejectionReason,
    }).where('org_id', '=', orgId).where('id', '=', id));
  },

  async markPosted(db: Db, orgId: string, id: string, p: { rate: Decimal; baseCurrency: string; baseTotal: Decimal; apAccountId: string; journalEntryId: string }) {
    await db.run(qb.updateTable('finance.bills').set({
      status: 'posted', rate: p.rate, base_currency: p.baseCurrency, base_total: p.baseTotal, ap_account_id: p.apAccountId,
      journal_entry_id: p.journalEntryId, posted_at: sql`now()`,
    }).where('org_id', '=', orgId).where('id', '=', id));
  },

  /** A posted bill or claim voided: its status, and the reversal of its entry (finance.guard_bill checks the two agree). */
  async markVoided(db: Db, orgId: string, id: string, v: { voidedOn: string; voidEntryId: string }) {
    await db.run(qb.updateTable('finance.bills').set({ status: 'voided', voided_on: v.voidedOn, void_entry_id: v.voidEntryId })
      .where('org_id', '=', orgId).where('id', '=', id));
  },

  async addDecision(db: Db, orgId: string, d: { billId: string; submissionNo: number; decision: string; actorId: string; actorRole: string; comment: string | null }) {
    const [row] = await db.run(qb.insertInto('finance.bill_decisions').values({
      org_id: orgId, bill_id: d.billId, submission_no: d.submissionNo, decision: d.decision, actor_id: d.actorId, actor_role: d.actorRole, comment: d.comment,
    }).returning('id'));
    return row.id;
  },

  // ---------------------------------------------------------------- payments and allocations
  async insertPayment(db: Db, orgId: string, p: {
    vendorId: string | null; claimantId: string | null; paymentDate: string; currency: string; amount: Decimal; rate: Decimal; baseAmount: Decimal;
    bankAccountId: string; method: string; reference: string | null; journalEntryId: string; createdBy: string; idempotency?: Idempotency;
  }): Promise<string> {
    const [row] = await db.run(qb.insertInto('finance.bill_payments').values({
      org_id: orgId, vendor_id: p.vendorId, claimant_id: p.claimantId, payment_date: p.paymentDate, currency: p.currency, amount: p.amount, rate: p.rate,
      base_amount: p.baseAmount, bank_account_id: p.bankAccountId, method: p.method, reference: p.reference, journal_entry_id: p.journalEntryId, created_by: p.createdBy,
      idempotency_key: p.idempotency?.key ?? null, request_hash: p.idempotency?.requestHash ?? null,
    }).returning('id'));
    return row.id;
  },

  /**
   * Waits for any other payment request of the organization with this Idempotency-Key to commit or roll back, then holds
   * the key until this one does: the read of the key that follows sees what the other recorded.
   */
  async lockIdempotencyKey(db: Db, orgId: string, key: string, kind: 'payment' | 'allocation' | 'refund' = 'payment'): Promise<void> {
    // each kind's keys are apart (its own table): a payment's lock name as it was
    await locks.exclusive(db, `finance.bill_${kind === 'payment' ? 'payment' : `payment_${kind}`}_key:${lockId(orgId)}:${key}`);
  },

  /** The allocation made with this Idempotency-Key: its payment, and the hash of its request. */
  async allocationByKey(db: Db, orgId: string, key: string): Promise<{ id: string; requestHash: string } | undefined> {
    const [row] = await db.run(qb.selectFrom('finance.bill_allocations').select(['payment_id', 'request_hash']).where('org_id', '=', orgId).where('idempotency_key', '=', key));
    return row && { id: row.payment_id, requestHash: row.request_hash! };
  },

  /** The refund recorded with this Idempotency-Key: its payment, and the hash of its request. */
  async refundByKey(db: Db, orgId: string, key: string): Promise<{ id: string; requestHash: string } | undefined> {
    const [row] = await db.run(qb.selectFrom('finance.bill_payment_refunds').select(['payment_id', 'request_hash']).where('org_id', '=', orgId).where('idempotency_key', '=', key));
    return row && { id: row.payment_id, requestHash: row.request_hash! };
  },

  /** The payment recorded with this Idempotency-Key, and the hash of its request. */
  async paymentByKey(db: Db, orgId: string, key: string): Promise<{ id: string; requestHash: string } | undefined> {
    const [row] = await db.run(qb.selectFrom('finance.bill_payments').select(['id', 'request_hash']).where('org_id', '=', orgId).where('idempotency_key', '=', key));
    return row && { id: row.id, requestHash: row.request_hash! };
  },

  async lockPayment(db: Db, orgId: string, id: string) {
    // a payment row is never updated; FOR SHARE would let two allocations of one payment interleave, so its allocations serialize on a named lock
    await locks.exclusive(db, `finance.bill_payment:${lockId(id)}`);
    const [row] = await db.run(qb.selectFrom('finance.bill_payments').selectAll().where('org_id', '=', orgId).where('id', '=', id));
    return row;
  },

  async getPayments(db: Db, orgId: string, ids: string[]) {
    if (!ids.length) return [];
    return db.run(qb.selectFrom('finance.bill_payments').selectAll().where('org_id', '=', orgId).where('id', '=', sql<string>`any(${ids}::uuid[])`));
  },

  /** `ownClaimantId`: a member's list: vendor payments and this claimant's own reimbursements, none of another claimant. */
  async listPaymentIds(db: Db, orgId: string, q: { vendorId?: string; ownClaimantId?: string; after?: { d: string; i: string }; limit: number }) {
    let query = qb.selectFrom('finance.bill_payments').select(['id', sql<string>`payment_date::text`.as('payment_date')]).where('org_id', '=', orgId);
    if (q.vendorId) query = query.where('vendor_id', '=', q.vendorId);
    const own = q.ownClaimantId;
    if (own !== undefined) query = query.where((eb) => eb.or([eb('claimant_id', 'is', null), eb('claimant_id', '=', own)]));
    if (q.after) query = query.where(sql<boolean>`(payment_date, id) < (${q.after.d}::date, ${q.after.i}::uuid)`);
    return db.run(query.orderBy('payment_date', 'desc').orderBy('id', 'desc').limit(q.limit + 1));
  },

  async allocationsOfPayments(db: Db, orgId: string, paymentIds: string[]) {
    if (!paymentIds.length) return [];
    return db.run(qb.selectFrom('finance.bill_allocations').selectAll().where('org_id', '=', orgId)
      .where('payment_id', '=', sql<string>`any(${paymentIds}::uuid[])`).orderBy('created_at').orderBy('id'));
  },

  async getAllocation(db: Db, orgId: string, id: string) {
    const [row] = await db.run(qb.selectFrom('finance.bill_allocations').selectAll().where('org_id', '=', orgId).where('id', '=', id));
    return row;
  },

  /**
   * Where an allocation stands in the order revaluation rows were posted in (posting_seq, migration 20270210700100: a
   * value of finance.fx_revaluation_items' seq sequence drawn when it was written); null for one written before.
   */
  async allocationPostingSeq(db: Db, orgId: string, id: string): Promise<string | null> {
    const [row] = await db.$queryRaw<{ seq: string | null }[]>`
      SELECT a.posting_seq::text AS seq FROM finance.bill_allocations a WHERE a.org_id = ${orgId}::uuid AND a.id = ${id}::uuid`;
    return row?.seq ?? null;
  },

  async reversalOf(db: Db, orgId: string, id: string) {
    const [row] = await db.run(qb.selectFrom('finance.bill_allocations').select('id').where('org_id', '=', orgId).where('reverses_allocation_id', '=', id));
    return row;
  },

  /** What of a payment is used: allocated (net of reversals) or refunded, in its currency and at its base. */
  async paymentUsage(db: Db, orgId: string, paymentId: string): Promise<{ amount: Decimal; base: Decimal }> {
    const [row] = await db.$queryRaw<{ amount: Decimal; base: Decimal }[]>`
      SELECT coalesce(sum(u.amount), 0) AS amount, coalesce(sum(u.base), 0) AS base FROM (
        SELECT amount, payment_base_amount AS base FROM finance.bill_allocations WHERE org_id = ${orgId}::uuid AND payment_id = ${paymentId}::uuid
        UNION ALL
        SELECT amount, payment_base_amount FROM finance.bill_payment_refunds WHERE org_id = ${orgId}::uuid AND payment_id = ${paymentId}::uuid) u`;
    return row;
  },

  async insertRefund(db: Db, orgId: string, r: { paymentId: string; date: string; amount: Decimal; currency: string; rate: Decimal; paymentBase: Decimal;
    bankAccountId: string; reference: string | null; journalEntryId: string; createdBy: string; idempotency?: Idempotency }): Promise<string> {
    const [row] = await db.run(qb.insertInto('finance.bill_payment_refunds').values({
      org_id: orgId, payment_id: r.paymentId, refund_date: r.date, amount: r.amount, currency: r.currency, rate: r.rate, payment_base_amount: r.paymentBase,
      bank_account_id: r.bankAccountId, reference: r.reference, journal_entry_id: r.journalEntryId, created_by: r.createdBy,
      idempotency_key: r.idempotency?.key ?? null, request_hash: r.idempotency?.requestHash ?? null,
    }).returning('id'));
    return row.id;
  },

  async refundsOfPayments(db: Db, orgId: string, paymentIds: string[]) {
    if (!paymentIds.length) return [];
    return db.run(qb.selectFrom('finance.bill_payment_refunds').selectAll().where('org_id', '=', orgId)
      .where('payment_id', '=', sql<string>`any(${paymentIds}::uuid[])`).orderBy('created_at').orderBy('id'));
  },

  async insertAllocation(db: Db, orgId: string, a: {
    paymentId: string; billId: string; date: string; amount: Decimal; billBase: Decimal; paymentBase: Decimal; reversesAllocationId: string | null;
    journalEntryId: string | null; createdBy: string; idempotency?: Idempotency;
  }): Promise<string> {
    const [row] = await db.run(qb.insertInto('finance.bill_allocations').values({
      org_id: orgId, payment_id: a.paymentId, bill_id: a.billId, allocation_date: a.date, amount: a.amount, bill_base_amount: a.billBase,
      payment_base_amount: a.paymentBase, reverses_allocation_id: a.reversesAllocationId, journal_entry_id: a.journalEntryId, created_by: a.createdBy,
      idempotency_key: a.idempotency?.key ?? null, request_hash: a.idempotency?.requestHash ?? null,
    }).returning('id'));
    return row.id;
  },

  // ---------------------------------------------------------------- aging
  /** Open base amounts at the end of `asOf` per party and bucket (finance.ap_aging: one grouped pass, party names joined after grouping). */
  async agingItems(db: Db, asOf: string, edges: number[]) {
    return db.$queryRaw<{ party_type: string; party_id: string; party_name: string | null; bucket: string; amount: string }[]>`
      SELECT party_type, party_id, party_name, bucket, amount::text AS amount FROM finance.ap_aging(${asOf}::date, ${edges}::int[])`;
  },

  /** Balance (credit minus debit, base currency) of an account at the end of `asOf`. */
  async creditBalance(db: Db, accountId: string, asOf: string): Promise<string> {
    const [row] = await db.$queryRaw<{ balance: string | null }[]>`
      SELECT (sum(t.base_credit) - sum(t.base_debit))::text AS balance FROM finance.account_totals(NULL, ${asOf}::date, ${accountId}::uuid) t`;
    return row?.balance ?? '0';
  },
};

/** One row of semantic.v_ap_open as the agents' list_open_bills tool hands it to a model. */
export interface OpenBillRow {
  billId: string; documentKind: string; partyType: string; partyId: string; partyName: string | null; documentNumber: string | null;
  billDate: string; dueDate: string; currency: string; total: string; openAmount: string; baseCurrency: string; openBaseAmount: string;
  daysPastDue: number; bucket: string;
}

/**
 * The open payables of today (semantic.v_ap_open, under the caller's policies), most overdue first, at most `limit` + 1
 * rows. `vendorId` is compared as a uuid (party_id is its lower-case text: an upper-case id found nothing).
 */
export async function openBills(db: Db, q: { vendorId?: string; overdueOnly: boolean; limit: number }): Promise<OpenBillRow[]> {
  return db.$queryRaw<OpenBillRow[]>`
    SELECT bill_id AS "billId", document_kind AS "documentKind", party_type AS "partyType", party_id AS "partyId", party_name AS "partyName",
           document_number AS "documentNumber", bill_date::text AS "billDate", due_date::text AS "dueDate", currency, total::text,
           open_amount::text AS "openAmount", base_currency AS "baseCurrency", open_base_amount::text AS "openBaseAmount",
           days_past_due AS "daysPastDue", bucket
    FROM semantic.v_ap_open
    WHERE (${q.vendorId ?? null}::uuid IS NULL OR (party_type = 'vendor' AND party_id = (${q.vendorId ?? null}::uuid)::text)) AND (NOT ${q.overdueOnly} OR days_past_due > 0)
    ORDER BY days_past_due DESC, due_date, bill_id
    LIMIT ${q.limit + 1}`;
}

/**
 * Of `billIds`, the FX-revalued ones (with finance.fx_revaluation_items rows) with an allocation (or its reversal) dated
 * after `date`: the latest such allocation's bill and date, or undefined.
 */
export async function laterSettlementOfRevalued(db: Db, orgId: string, billIds: string[], date: string): Promise<{ documentId: string; date: string } | undefined> {
  if (!billIds.length) return undefined;
  const [row] = await db.$queryRaw<{ documentId: string; date: string }[]>`
    SELECT a.bill_id::text AS "documentId", a.allocation_date::text AS date FROM finance.bill_allocations a
    WHERE a.org_id = ${orgId}::uuid AND a.bill_id = any(${billIds}::uuid[]) AND a.allocation_date > ${date}::date
      AND EXISTS (SELECT 1 FROM finance.fx_revaluation_items x WHERE x.org_id = a.org_id AND x.document_id = a.bill_id)
    ORDER BY a.allocation_date DESC, a.bill_id LIMIT 1`;
  return row;
}

/**
 * The bills of `by.billIds` (or the payment `by.paymentId`) with an allocation reversal dated after `date`, each with the
 * latest such date. An allocation settled its bill (and used its payment's credit) until its reversal: a settlement or
 * use dated before that would count its amount twice in between (the aging would show the bill settled more than its
 * total, the payment's credit below zero).
 */
export async function reversalsAfter(db: Db, orgId: string, by: { billIds: string[] } | { paymentId: string }, date: string): Promise<Map<string, string>> {
  const rows = 'paymentId' in by
    ? await db.$queryRaw<{ id: string; date: string }[]>`
      SELECT payment_id::text AS id, max(allocation_date)::text AS date FROM finance.bill_allocations
      WHERE org_id = ${orgId}::uuid AND payment_id = ${by.paymentId}::uuid AND reverses_allocation_id IS NOT NULL AND allocation_date > ${date}::date
      GROUP BY payment_id`
    : by.billIds.length ? await db.$queryRaw<{ id: string; date: string }[]>`
      SELECT bill_id::text AS id, max(allocation_date)::text AS date FROM finance.bill_allocations
      WHERE org_id = ${orgId}::uuid AND bill_id = any(${by.billIds}::uuid[]) AND reverses_allocation_id IS NOT NULL AND allocation_date > ${date}::date
      GROUP BY bill_id` : [];
  return new Map(rows.map((r) => [r.id, r.date]));
}

/**
 * When the bill payment `paymentId` is FX-revalued (has finance.fx_revaluation_items rows): the latest use of its credit
 * (an allocation or its reversal, a refund) dated after `date`, or undefined.
 */
export async function laterUseOfRevaluedCredit(db: Db, orgId: string, paymentId: string, date: string): Promise<{ documentId: string; date: string } | undefined> {
  const [row] = await db.$queryRaw<{ documentId: string; date: string }[]>`
    SELECT ${paymentId}::text AS "documentId", max(u.d)::text AS date FROM (
      SELECT a.allocation_date AS d FROM finance.bill_allocations a WHERE a.org_id = ${orgId}::uuid AND a.payment_id = ${paymentId}::uuid AND a.allocation_date > ${date}::date
      UNION ALL
      SELECT r.refund_date FROM finance.bill_payment_refunds r WHERE r.org_id = ${orgId}::uuid AND r.payment_id = ${paymentId}::uuid AND r.refund_date > ${date}::date) u
    WHERE EXISTS (SELECT 1 FROM finance.fx_revaluation_items x WHERE x.org_id = ${orgId}::uuid AND x.document_id = ${paymentId}::uuid)
    HAVING max(u.d) IS NOT NULL`;
  return row;
}

/**
 * The foreign-currency payables as of `asOf` for the FX revaluation (all, or those of `documentIds`): each posted bill or
 * claim and each payment's credit with what is open of it (its currency) and its base in the aging (negative for a
 * credit), both from the allocations, refunds and revaluations dated by then, the rate it is carried at (the last
 * revaluation's, else its own) and the latest and earliest settlements dated after `asOf` (an allocation, a refund, a void). A bill
 * voided by then is open for nothing but may still carry a revaluation (taken back). Items with nothing open and nothing
 * carried are left out.
 *
 * Only the documents that can be open or carry something as of the date are valued, found from their stored open amounts
 * (finance.payable_open_amounts, as receivables' fxOpenItems): open now, or settled, voided or revalued on or after the
 * date (a settlement in full takes all the item carries as of its date, so an item settled in full before the date and
 * not revalued since carries nothing: it is not read). Each one's settlements are read in one pass (one lateral per table).
 * `postedBefore`: an allocation or a refund dated `asOf` counts only when posted before the revaluation row of that seq
 * (its posting_seq lower; one written before posting_seq was stored counts).
 */
export async function fxOpenPayables(db: Db, orgId: string, asOf: string, documentIds?: string[], postedBefore?: string | null): Promise<{ documentId: string; currency: string; open: string; carried: string; carriedRate: string; ownRate: string; settledAfter: string | null; firstSettledAfter: string | null }[]> {
  const ids = documentIds ?? null;
  const cut = postedBefore ?? null;
  return db.$queryRaw`
    WITH docs AS (
      SELECT b.id AS document_id, b.currency, b.rate AS own_rate,
        CASE WHEN b.voided_on <= ${asOf}::date THEN 0 ELSE b.total - coalesce(s.amount, 0) END AS open,
        CASE WHEN b.voided_on <= ${asOf}::date THEN 0 ELSE b.base_total - coalesce(s.base, 0) END AS base,
        greatest(CASE WHEN b.voided_on > ${asOf}::date THEN b.voided_on END, s.later) AS settled_after,
        least(CASE WHEN b.voided_on > ${asOf}::date THEN b.voided_on END, s.first) AS settled_first
      FROM finance.bills b LEFT JOIN LATERAL (
        SELECT sum(a.amount) FILTER (WHERE a.allocation_date <= ${asOf}::date AND (a.allocation_date < ${asOf}::date OR ${cut}::bigint IS NULL OR a.posting_seq IS NULL OR a.posting_seq < ${cut}::bigint)) AS amount,
          sum(a.bill_base_amount) FILTER (WHERE a.allocation_date <= ${asOf}::date AND (a.allocation_date < ${asOf}::date OR ${cut}::bigint IS NULL OR a.posting_seq IS NULL OR a.posting_seq < ${cut}::bigint)) AS base,
          max(a.allocation_date) FILTER (WHERE a.allocation_date > ${asOf}::date) AS later,
          min(a.allocation_date) FILTER (WHERE a.allocation_date > ${asOf}::date) AS first
        FROM finance.bill_allocations a WHERE a.org_id = b.org_id AND a.bill_id = b.id) s ON true
      WHERE b.org_id = ${orgId}::uuid AND b.journal_entry_id IS NOT NULL AND b.bill_date <= ${asOf}::date
        AND (${ids}::uuid[] IS NULL OR b.id = any(${ids}::uuid[]))
        AND b.currency <> (SELECT st.base_currency FROM finance.settings st WHERE st.org_id = ${orgId}::uuid)
        -- open now, or settled (or revalued) on or after the date: one settled before and carrying nothing has nothing to revalue
        AND b.id IN (SELECT o.document_id FROM finance.payable_open_amounts o WHERE o.org_id = ${orgId}::uuid AND o.document_kind <> 'payment'
          AND (o.open_base <> 0 OR o.settled_through >= ${asOf}::date))
      UNION ALL
      SELECT p.id, p.currency, p.rate,
        -(p.amount - coalesce(u.amount, 0) - coalesce(r.amount, 0)),
        -(p.base_amount - coalesce(u.base, 0) - coalesce(r.base, 0)),
        greatest(u.later, r.later), least(u.first, r.first)
      FROM finance.bill_payments p LEFT JOIN LATERAL (
        SELECT sum(a.amount) FILTER (WHERE a.allocation_date <= ${asOf}::date AND (a.allocation_date < ${asOf}::date OR ${cut}::bigint IS NULL OR a.posting_seq IS NULL OR a.posting_seq < ${cut}::bigint)) AS amount,
          sum(a.payment_base_amount) FILTER (WHERE a.allocation_date <= ${asOf}::date AND (a.allocation_date < ${asOf}::date OR ${cut}::bigint IS NULL OR a.posting_seq IS NULL OR a.posting_seq < ${cut}::bigint)) AS base,
          max(a.allocation_date) FILTER (WHERE a.allocation_date > ${asOf}::date) AS later,
          min(a.allocation_date) FILTER (WHERE a.allocation_date > ${asOf}::date) AS first
        FROM finance.bill_allocations a WHERE a.org_id = p.org_id AND a.payment_id = p.id) u ON true
      LEFT JOIN LATERAL (
        SELECT sum(x.amount) FILTER (WHERE x.refund_date <= ${asOf}::date AND (x.refund_date < ${asOf}::date OR ${cut}::bigint IS NULL OR x.posting_seq IS NULL OR x.posting_seq < ${cut}::bigint)) AS amount,
          sum(x.payment_base_amount) FILTER (WHERE x.refund_date <= ${asOf}::date AND (x.refund_date < ${asOf}::date OR ${cut}::bigint IS NULL OR x.posting_seq IS NULL OR x.posting_seq < ${cut}::bigint)) AS base,
          max(x.refund_date) FILTER (WHERE x.refund_date > ${asOf}::date) AS later,
          min(x.refund_date) FILTER (WHERE x.refund_date > ${asOf}::date) AS first
        FROM finance.bill_payment_refunds x WHERE x.org_id = p.org_id AND x.payment_id = p.id) r ON true
      WHERE p.org_id = ${orgId}::uuid AND p.payment_date <= ${asOf}::date
        AND (${ids}::uuid[] IS NULL OR p.id = any(${ids}::uuid[]))
        AND p.currency <> (SELECT st.base_currency FROM finance.settings st WHERE st.org_id = ${orgId}::uuid)
        AND p.id IN (SELECT o.document_id FROM finance.payable_open_amounts o WHERE o.org_id = ${orgId}::uuid AND o.document_kind = 'payment'
          AND (o.open_base <> 0 OR o.settled_through >= ${asOf}::date)))
    SELECT d.document_id::text AS "documentId", d.currency, d.open::text AS open, (d.base + coalesce(v.base, 0))::text AS carried,
      coalesce(v.rate, d.own_rate)::text AS "carriedRate", d.own_rate::text AS "ownRate", d.settled_after::text AS "settledAfter",
      d.settled_first::text AS "firstSettledAfter"
    FROM docs d LEFT JOIN LATERAL (
      SELECT sum(x.base_delta) AS base, (array_agg(x.rate ORDER BY x.revaluation_date DESC, x.seq DESC))[1] AS rate
      FROM finance.fx_revaluation_items x WHERE x.org_id = ${orgId}::uuid AND x.document_id = d.document_id AND x.revaluation_date <= ${asOf}::date) v ON true
    WHERE d.open <> 0 OR d.base + coalesce(v.base, 0) <> 0
    ORDER BY d.document_id`;
}

/**
 * What FX revaluations changed of payables as of `asOf` (a settlement's date): per document with revaluation rows dated
 * by then, the sum of their changes (as the aging shows them: a payment's credit is negative) and the rate of the last
 * one. A reversal posted ahead (dated after `asOf`) is left out.
 */
export async function revaluationsOf(db: Db, orgId: string, documentIds: string[], asOf: string): Promise<Map<string, { delta: Decimal; rate: string }>> {
  if (!documentIds.length) return new Map();
  const rows = await db.$queryRaw<{ id: string; delta: string; rate: string }[]>`
    SELECT x.document_id::text AS id, sum(x.base_delta)::text AS delta, (array_agg(x.rate ORDER BY x.revaluation_date DESC, x.seq DESC))[1]::text AS rate
    FROM finance.fx_revaluation_items x WHERE x.org_id = ${orgId}::uuid AND x.document_id = any(${documentIds}::uuid[]) AND x.revaluation_date <= ${asOf}::date
    GROUP BY x.document_id`;
  return new Map(rows.map((r) => [r.id, { delta: new Decimal(r.delta), rate: r.rate }]));
}
