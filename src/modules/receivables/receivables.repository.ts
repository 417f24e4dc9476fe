import { sql } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { prepare, qb } from '../../platform/database/query-builder.js';
import { locks, lockId } from '../../platform/database/locks.js';
import type { AuditRow } from '../audit/audit.repository.js';

// The only place with receivables SQL. Dates and amounts are read as text: money never passes through a float.

const txt = (col: string) => sql<string>`${sql.ref(col)}::text`;
const txtOrNull = (col: string) => sql<string | null>`${sql.ref(col)}::text`;

/**
 * What the issued (not draft) credit notes have credited of the invoice line aliased `l`, as one row (numeric, 0 when
 * nothing): the one definition of a line's credits, for a lateral join (`innerJoinLateral(lineCredits.as('c'), ...)`).
 */
export const lineCredits = sql<{ quantity: string; net: string; tax: string }>`(SELECT coalesce(sum(cl.quantity), 0) AS quantity,
    coalesce(sum(cl.net_amount), 0) AS net, coalesce(sum(cl.tax_amount), 0) AS tax
  FROM finance.invoice_lines cl JOIN finance.invoices cn ON cn.org_id = cl.org_id AND cn.id = cl.invoice_id
  WHERE cn.org_id = l.org_id AND cn.credited_invoice_id = l.invoice_id AND cn.kind = 'credit_note' AND cn.status <> 'draft'
    AND cl.credited_line_no = l.line_no)`;

export interface CustomerRow {
  id: string; name: string; contactPerson: string | null; email: string | null; phone: string | null; taxId: string | null;
  billingAddress: string | null; defaultCurrency: string | null; paymentTermsDays: number; creditLimit: string | null;
  archivedAt: string | null; createdAt: string; updatedAt: string;
}
const customerColumns = () => [
  'id', 'name', 'contact_person as contactPerson', 'email', 'phone', 'tax_id as taxId', 'billing_address as billingAddress',
  'default_currency as defaultCurrency', 'payment_terms_days as paymentTermsDays', txtOrNull('credit_limit').as('creditLimit'),
  sql<string | null>`to_char(archived_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`.as('archivedAt'),
  sql<string>`to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`.as('createdAt'),
  sql<string>`to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`.as('updatedAt'),
] as const;

export interface InvoiceRow {
  id: string; kind: string; customerId: string; creditedInvoiceId: string | null; status: string; series: string; number: string | null;
  invoiceDate: string; dueDate: string; currency: string; rate: string | null; subtotal: string; taxTotal: string; total: string;
  baseSubtotal: string | null; baseTotal: string | null; memo: string; entryId: string | null; voidedOn: string | null; voidEntryId: string | null;
  createdAt: string; allocated: string;
}
export interface InvoiceLineRow {
  lineNo: number; description: string; quantity: string; unitPrice: string; discountPercent: string; taxCodeId: string | null;
  revenueAccountId: string; serviceStart: string | null; serviceEnd: string | null; netAmount: string; taxAmount: string; grossAmount: string;
  creditedLineNo: number | null;
}
export interface NewInvoice {
  kind: 'invoice' | 'credit_note'; customerId: string; creditedInvoiceId?: string; series: string; invoiceDate: string; dueDate: string;
  currency: string; subtotal: string; taxTotal: string; total: string; memo: string; createdBy: string | null;
  /** a credit note's Idempotency-Key (insertInvoice only) */
  idempotency?: Idempotency;
}
export interface PaymentRow {
  id: string; customerId: string; date: string; amount: string; currency: string; rate: string; depositAccountId: string;
  method: string; reference: string | null; entryId: string; allocated: string;
}
/** A create's Idempotency-Key and the hash of its request (src/platform/http/idempotency-key.ts). */
export interface Idempotency {
  key: string;
  requestHash: string;
}
/** The writes that take an Idempotency-Key; each kind's keys are apart (its own table, its own lock). */
export type IdempotentWrite = 'payment' | 'refund' | 'credit_note' | 'allocation';
export interface AllocationRow {
  id: string; invoiceId: string; paymentId: string | null; creditNoteId: string | null; date: string; amount: string;
  invoiceBase: string; sourceBase: string; reversesAllocationId: string | null; entryId: string | null; reversed: boolean;
}

const invoiceColumns = [
  'i.id', 'i.kind', 'i.customer_id as customerId', 'i.credited_invoice_id as creditedInvoiceId', 'i.status', 'i.series', 'i.number',
  txt('i.invoice_date').as('invoiceDate'), txt('i.due_date').as('dueDate'), 'i.currency', txtOrNull('i.rate').as('rate'),
  txt('i.subtotal').as('subtotal'), txt('i.tax_total').as('taxTotal'), txt('i.total').as('total'),
  txtOrNull('i.base_subtotal').as('baseSubtotal'), txtOrNull('i.base_total').as('baseTotal'), 'i.memo', 'i.entry_id as entryId',
  txtOrNull('i.voided_on').as('voidedOn'), 'i.void_entry_id as voidEntryId',
  sql<string>`to_char(i.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`.as('createdAt'),
  sql<string>`coalesce((SELECT sum(a.amount) FROM finance.receivable_allocations a WHERE a.org_id = i.org_id AND a.invoice_id = i.id), 0)::text`.as('allocated'),
] as const;
const invoices = () => qb.selectFrom('finance.invoices as i').select(invoiceColumns);

// what every issue runs, compiled once (building a query costs the API process 10–100 µs per call: query-builder.ts)
const settingsOf = prepare((p: { orgId: string }) => qb.selectFrom('finance.receivables_settings')
  .select(['ar_account_id as arAccountId', 'deferred_revenue_account_id as deferredRevenueAccountId']).where('org_id', '=', p.orgId));
const invoiceLocked = prepare((p: { orgId: string; id: string }) => invoices().where('i.org_id', '=', p.orgId).where('i.id', '=', p.id).forUpdate());
const linesOf = prepare((p: { orgId: string; ids: string[] }) => qb.selectFrom('finance.invoice_lines as l').select([
  'l.invoice_id as invoiceId', 'l.line_no as lineNo', 'l.description', txt('l.quantity').as('quantity'), txt('l.unit_price').as('unitPrice'),
  txt('l.discount_percent').as('discountPercent'), 'l.tax_code_id as taxCodeId', 'l.revenue_account_id as revenueAccountId',
  txtOrNull('l.service_start').as('serviceStart'), txtOrNull('l.service_end').as('serviceEnd'), txt('l.net_amount').as('netAmount'),
  txt('l.tax_amount').as('taxAmount'), txt('l.gross_amount').as('grossAmount'), 'l.credited_line_no as creditedLineNo',
]).where('l.org_id', '=', p.orgId).where('l.invoice_id', '=', sql<string>`any(${p.ids}::uuid[])`).orderBy('l.invoice_id').orderBy('l.line_no'));
/**
 * The credit limit (base currency; null: none), name and archived state of the customer of an invoice: read with every
 * issue. The customer row is held FOR SHARE until commit: an archive or an update of it in flight (FOR NO KEY UPDATE,
 * CustomersService) is waited for and read as committed, and one starting later waits for the issue, so a customer
 * archived while its draft was issued does not get the invoice. The issue has locked the invoice and holds the posting
 * lock shared before this (the statements before it in its pipeline); a customer's archive, update or erasure locks
 * only the customer row, and other issues' FOR SHARE do not conflict: no order to deadlock on.
 */
const creditLimitOf = prepare((p: { orgId: string; id: string }) => qb.selectFrom('finance.invoices as i')
  .innerJoin('finance.customers as c', (j) => j.onRef('c.org_id', '=', 'i.org_id').onRef('c.id', '=', 'i.customer_id'))
  .select(['c.name', txtOrNull('c.credit_limit').as('creditLimit'), sql<boolean>`c.archived_at IS NOT NULL`.as('archived')]).where('i.org_id', '=', p.orgId).where('i.id', '=', p.id)
  .forShare('c'));
/**
 * The issue's last statement: the next number of the series, the invoice marked issued with it, and the two rows that
 * carry the number (the outbox event, the audit row: their JSON as given, with `number` set from the statement's own).
 */
const issueNumbered = prepare((p: {
  orgId: string; id: string; series: string; rate: string; baseSubtotal: string; baseTotal: string; entryId: string; status: string;
  eventTopic: string; eventJson: string; auditActorId: string | null; auditPrincipalType: string; auditAction: string; auditEntityType: string;
  auditEntityId: string | null; auditBefore: string | null; auditAfter: string; auditRequestId: string | null; auditIp: string | null;
}) => qb
  .with('n', (w) => w.insertInto('finance.document_numbers').values({ org_id: p.orgId, series: p.series, last_number: 1 } as never)
    .onConflict((oc) => oc.columns(['org_id', 'series']).doUpdateSet({ last_number: sql`finance.document_numbers.last_number + 1` }))
    .returning('last_number'))
  .with('i', (w) => w.updateTable('finance.invoices').from('n')
    .set({
      status: p.status, number: sql`${p.series}::text || '-' || lpad(n.last_number::text, greatest(6, length(n.last_number::text)), '0')`, rate: p.rate, base_subtotal: p.baseSubtotal, base_total: p.baseTotal,
      entry_id: p.entryId, issued_at: sql`now()`, updated_at: sql`now()`,
    } as never)
    .where('finance.invoices.org_id', '=', p.orgId).where('finance.invoices.id', '=', p.id)
    .returning('finance.invoices.number'))
  .with('e', (w) => w.insertInto('core.outbox').columns(['org_id', 'topic', 'payload'])
    .expression((eb) => eb.selectFrom('i').select([
      sql<string>`${p.orgId}::uuid`.as('org_id'), sql<string>`${p.eventTopic}::text`.as('topic'),
      sql<unknown>`jsonb_set(${p.eventJson}::jsonb, '{payload,number}', to_jsonb(i.number))`.as('payload'),
    ])))
  .with('a', (w) => w.insertInto('core.audit_logs').columns(['org_id', 'actor_id', 'principal_type', 'action', 'entity_type', 'entity_id', 'before', 'after', 'request_id', 'ip'])
    .expression((eb) => eb.selectFrom('i').select([
      sql<string>`${p.orgId}::uuid`.as('org_id'), sql<string>`${p.auditActorId}::text`.as('actor_id'), sql<string>`${p.auditPrincipalType}::text`.as('principal_type'),
      sql<string>`${p.auditAction}::text`.as('action'), sql<string>`${p.auditEntityType}::text`.as('entity_type'), sql<string>`${p.auditEntityId}::text`.as('entity_id'),
      sql<unknown>`${p.auditBefore}::jsonb`.as('before'), sql<unknown>`${p.auditAfter}::jsonb || jsonb_build_object('number', i.number)`.as('after'),
      sql<string>`${p.auditRequestId}::text`.as('request_id'), sql<string>`${p.auditIp}::text`.as('ip'),
    ])))
  .selectFrom('i').select('i.number'));

const paymentColumns = [
  'p.id', 'p.customer_id as customerId', txt('p.payment_date').as('date'), txt('p.amount').as('amount'), 'p.currency', txt('p.rate').as('rate'),
  'p.deposit_account_id as depositAccountId', 'p.method', 'p.reference', 'p.entry_id as entryId',
  // allocated or refunded: what is no longer customer credit
  sql<string>`(coalesce((SELECT sum(a.amount) FROM finance.receivable_allocations a WHERE a.org_id = p.org_id AND a.payment_id = p.id), 0)
    + coalesce((SELECT sum(r.amount) FROM finance.customer_refunds r WHERE r.org_id = p.org_id AND r.payment_id = p.id), 0))::text`.as('allocated'),
] as const;
const payments = () => qb.selectFrom('finance.customer_payments as p').select(paymentColumns);

const allocationColumns = [
  'a.id', 'a.invoice_id as invoiceId', 'a.payment_id as paymentId', 'a.credit_note_id as creditNoteId', txt('a.allocation_date').as('date'),
  txt('a.amount').as('amount'), txt('a.invoice_base').as('invoiceBase'), txt('a.source_base').as('sourceBase'),
  'a.reverses_allocation_id as reversesAllocationId', 'a.entry_id as entryId',
  sql<boolean>`EXISTS (SELECT 1 FROM finance.receivable_allocations r WHERE r.org_id = a.org_id AND r.reverses_allocation_id = a.id)`.as('reversed'),
] as const;
const allocations = () => qb.selectFrom('finance.receivable_allocations as a').select(allocationColumns);

export const receivablesRepository = {
  /** The receivables record a journal entry belongs to, named with how to correct it (JournalEntryOwners); undefined for none. */
  async entryOwner(db: Db, orgId: string, entryId: string): Promise<string | undefined> {
    const [row] = await db.$queryRaw<{ owner: string }[]>`
      SELECT owner FROM (
        SELECT 1 AS o, (CASE kind WHEN 'credit_note' THEN 'credit note ' ELSE 'invoice ' END) || coalesce(number, id::text)
               || (CASE kind WHEN 'credit_note' THEN '' ELSE ' (void it, or issue a credit note)' END) AS owner
          FROM finance.invoices WHERE org_id = ${orgId}::uuid AND (entry_id = ${entryId}::uuid OR void_entry_id = ${entryId}::uuid)
        UNION ALL SELECT 2, 'customer payment ' || coalesce(reference, id::text) || ' (reverse its allocations, refund its credit)'
          FROM finance.customer_payments WHERE org_id = ${orgId}::uuid AND entry_id = ${entryId}::uuid
        UNION ALL SELECT 3, 'allocation ' || id || ' (reverse the allocation)'
          FROM finance.receivable_allocations WHERE org_id = ${orgId}::uuid AND entry_id = ${entryId}::uuid
        UNION ALL SELECT 4, 'customer refund ' || coalesce(reference, id::text)
          FROM finance.customer_refunds WHERE org_id = ${orgId}::uuid AND entry_id = ${entryId}::uuid
        UNION ALL SELECT 5, 'the revenue recognition run of ' || run_date
          FROM finance.revenue_recognition_runs WHERE org_id = ${orgId}::uuid AND entry_id = ${entryId}::uuid
        -- a run of more lines than one entry holds posts several: the run records the first, its recognitions each theirs
        -- (reversed alone, one would put back deferred revenue its recognitions still count as recognized)
        UNION ALL (SELECT 5, 'the revenue recognition run of ' || run_date
          FROM finance.revenue_recognitions WHERE org_id = ${orgId}::uuid AND entry_id = ${entryId}::uuid LIMIT 1)
      ) owners ORDER BY o LIMIT 1`;
    return row?.owner;
  },

  // ---------------------------------------------------------------- settings
  async settings(db: Db, orgId: string): Promise<{ arAccountId: string; deferredRevenueAccountId: string | null } | undefined> {
    const [row] = await db.run(settingsOf({ orgId }));
    return row;
  },

  async setSettings(db: Db, orgId: string, arAccountId: string, deferredRevenueAccountId: string | null): Promise<void> {
    await db.run(qb.insertInto('finance.receivables_settings')
      .values({ org_id: orgId, ar_account_id: arAccountId, deferred_revenue_account_id: deferredRevenueAccountId })
      .onConflict((oc) => oc.column('org_id').doUpdateSet({ ar_account_id: arAccountId, deferred_revenue_account_id: deferredRevenueAccountId, updated_at: sql`now()` })));
  },

  // ---------------------------------------------------------------- customers
  async createCustomer(db: Db, orgId: string, c: Partial<CustomerRow> & { name: string }): Promise<CustomerRow> {
    const [row] = await db.run(qb.insertInto('finance.customers').values({
      org_id: orgId, name: c.name, contact_person: c.contactPerson ?? null, email: c.email ?? null, phone: c.phone ?? null, tax_id: c.taxId ?? null,
      billing_address: c.billingAddress ?? null, default_currency: c.defaultCurrency ?? null, payment_terms_days: c.paymentTermsDays ?? 30,
      credit_limit: c.creditLimit ?? null,
    } as never).returning(customerColumns()));
    return row as CustomerRow;
  },

  /**
   * `lock`: the row stays locked until commit, as the update that follows locks it (FOR NO KEY UPDATE: documents
   * referring to it still insert), so what the caller audits as before is what it replaces (an erasure committed meanwhile
   * is waited for and seen).
   */
  async getCustomer(db: Db, orgId: string, id: string, o: { lock?: boolean } = {}): Promise<CustomerRow | undefined> {
    const q = qb.selectFrom('finance.customers').select(customerColumns()).where('org_id', '=', orgId).where('id', '=', id);
    const [row] = await db.run(o.lock ? q.forNoKeyUpdate() : q);
    return row as CustomerRow | undefined;
  },

  async updateCustomer(db: Db, orgId: string, id: string, c: Partial<CustomerRow>): Promise<CustomerRow | undefined> {
    const set: Record<string, unknown> = { updated_at: sql`now()` };
    const cols: [keyof CustomerRow, string][] = [['name', 'name'], ['contactPerson', 'contact_person'], ['email', 'email'], ['phone', 'phone'], ['taxId', 'tax_id'],
      ['billingAddress', 'billing_address'], ['defaultCurrency', 'default_currency'], ['paymentTermsDays', 'payment_terms_days'], ['creditLimit', 'credit_limit']];
    for (const [k, col] of cols) if (c[k] !== undefined) set[col] = c[k];
    const [row] = await db.run(qb.updateTable('finance.customers').set(set as never).where('org_id', '=', orgId).where('id', '=', id).returning(customerColumns()));
    return row as CustomerRow | undefined;
  },

  async archiveCustomer(db: Db, orgId: string, id: string): Promise<CustomerRow | undefined> {
    const [row] = await db.run(qb.updateTable('finance.customers').set({ archived_at: sql`coalesce(archived_at, now())`, updated_at: sql`now()` } as never)
      .where('org_id', '=', orgId).where('id', '=', id).returning(customerColumns()));
    return row as CustomerRow | undefined;
  },

  /**
   * By name (case-insensitive), then id; keyset after (lower(name), id). `key` is each row's position as the ORDER BY
   * computes it (PostgreSQL's lower(name), not JavaScript's toLowerCase: 'İ' and final 'Σ' lower differently there, and
   * a cursor built from those skipped or repeated rows).
   */
  async listCustomers(db: Db, orgId: string, q: { search?: string; includeArchived: boolean; after?: { n: string; i: string }; limit: number }): Promise<{ customer: CustomerRow; key: { n: string; i: string } }[]> {
    let query = qb.selectFrom('finance.customers').select(customerColumns()).select(sql<string>`lower(name)`.as('position')).where('org_id', '=', orgId);
    if (!q.includeArchived) query = query.where('archived_at', 'is', null);
    if (q.search) {
      // lowered by PostgreSQL as the column is (JavaScript lowers 'İ' to 'i' + U+0307: "İstanbul" found nothing)
      const pattern = sql<string>`lower(${`%${q.search.replace(/[\\%_]/g, (m) => `\\${m}`)}%`}::text)`;
      query = query.where((eb) => eb.or([eb(sql`lower(name)`, 'like', pattern), eb(sql`lower(email)`, 'like', pattern)]));
    }
    if (q.after) query = query.where(sql<boolean>`(lower(name), id) > (${q.after.n}::text, ${q.after.i}::uuid)`);
    const rows = await db.run(query.orderBy(sql`lower(name)`).orderBy('id').limit(q.limit + 1));
    return rows.map(({ position, ...customer }) => ({ customer: customer as CustomerRow, key: { n: position, i: customer.id } }));
  },

  // ---------------------------------------------------------------- invoices
  async insertInvoice(db: Db, orgId: string, i: NewInvoice): Promise<string> {
    const [row] = await db.run(qb.insertInto('finance.invoices').values({
      org_id: orgId, kind: i.kind, customer_id: i.customerId, credited_invoice_id: i.creditedInvoiceId ?? null, series: i.series,
      invoice_date: i.invoiceDate, due_date: i.dueDate, currency: i.currency, subtotal: i.subtotal, tax_total: i.taxTotal, total: i.total,
      memo: i.memo, created_by: i.createdBy, idempotency_key: i.idempotency?.key ?? null, request_hash: i.idempotency?.requestHash ?? null,
    } as never).returning('id'));
    return row.id;
  },

  async updateDraft(db: Db, orgId: string, id: string, i: NewInvoice): Promise<void> {
    await db.run(qb.updateTable('finance.invoices').set({
      customer_id: i.customerId, series: i.series, invoice_date: i.invoiceDate, due_date: i.dueDate, currency: i.currency,
      subtotal: i.subtotal, tax_total: i.taxTotal, total: i.total, memo: i.memo, updated_at: sql`now()`,
    } as never).where('org_id', '=', orgId).where('id', '=', id).where('status', '=', 'draft'));
  },

  async replaceLines(db: Db, orgId: string, invoiceId: string, lines: InvoiceLineRow[]): Promise<void> {
    await db.run(qb.deleteFrom('finance.invoice_lines').where('org_id', '=', orgId).where('invoice_id', '=', invoiceId));
    if (!lines.length) return;
    await db.run(qb.insertInto('finance.invoice_lines').values(lines.map((l) => ({
      org_id: orgId, invoice_id: invoiceId, line_no: l.lineNo, description: l.description, quantity: l.quantity, unit_price: l.unitPrice,
      discount_percent: l.discountPercent, tax_code_id: l.taxCodeId, revenue_account_id: l.revenueAccountId, service_start: l.serviceStart,
      service_end: l.serviceEnd, net_amount: l.netAmount, tax_amount: l.taxAmount, gross_amount: l.grossAmount, credited_line_no: l.creditedLineNo,
    })) as never));
  },

  async deleteDraft(db: Db, orgId: string, id: string): Promise<boolean> {
    return (await db.runCount(qb.deleteFrom('finance.invoices').where('org_id', '=', orgId).where('id', '=', id).where('status', '=', 'draft'))) > 0;
  },

  async getInvoice(db: Db, orgId: string, id: string, lock = false): Promise<InvoiceRow | undefined> {
    if (lock) await db.run(qb.selectFrom('finance.invoices').select('id').where('org_id', '=', orgId).where('id', '=', id).forUpdate());
    const [row] = await db.run(invoices().where('i.org_id', '=', orgId).where('i.id', '=', id));
    return row as InvoiceRow | undefined;
  },

  /**
   * Locks and reads an invoice in one statement. Only for what the row itself decides (a draft's issue): a waiter
   * gets the row as the locker committed it, but a subquery (the allocated sum) as of the statement's start.
   */
  /** The name, credit limit and archived state of the customer of invoice `id` (undefined: no such invoice). */
  async creditLimitOfInvoice(db: Db, orgId: string, id: string): Promise<{ name: string; creditLimit: string | null; archived: boolean } | undefined> {
    const [row] = await db.run(creditLimitOf({ orgId, id }));
    return row;
  },

  /**
   * Serializes the credit-limit checks of one customer until commit: two issues that each fit the limit alone but not
   * together run one after the other, and the second reads the first's invoice (a statement after this one sees it).
   */
  async holdCustomerCredit(db: Db, orgId: string, customerId: string): Promise<void> {
    await locks.exclusive(db, `finance.customer_credit:${lockId(orgId)}:${lockId(customerId)}`);
  },

  /**
   * What the customer owes now in the base currency: the open base of its issued invoices less its customer credit
   * (payments neither allocated nor refunded), as the aging totals it (finance.receivable_open_amounts).
   */
  async customerOpenBase(db: Db, orgId: string, customerId: string): Promise<string> {
    const [row] = await db.run(qb.selectFrom('finance.receivable_open_amounts').select(sql<string>`coalesce(sum(open_base), 0)::text`.as('open'))
      .where('org_id', '=', orgId).where('customer_id', '=', customerId).where('open_base', '<>', 0 as never));
    return row.open;
  },

  async getInvoiceLocked(db: Db, orgId: string, id: string): Promise<InvoiceRow | undefined> {
    const [row] = await db.run(invoiceLocked({ orgId, id }));
    return row as InvoiceRow | undefined;
  },

  /** Locks invoices in id order (concurrent allocations to the same invoices cannot deadlock). */
  async lockInvoices(db: Db, orgId: string, ids: string[]): Promise<void> {
    if (!ids.length) return;
    await db.run(qb.selectFrom('finance.invoices').select('id').where('org_id', '=', orgId).where('id', '=', sql<string>`any(${[...ids].sort()}::uuid[])`).orderBy('id').forUpdate());
  },

  async getLines(db: Db, orgId: string, invoiceIds: string[]): Promise<(InvoiceLineRow & { invoiceId: string })[]> {
    if (!invoiceIds.length) return [];
    return (await db.run(linesOf({ orgId, ids: invoiceIds }))) as never;
  },

  /** Newest first (invoice date, then id). */
  async listInvoices(db: Db, orgId: string, q: { customerId?: string; status?: string; kind?: string; after?: { d: string; i: string }; limit: number }): Promise<InvoiceRow[]> {
    let query = invoices().where('i.org_id', '=', orgId);
    if (q.customerId) query = query.where('i.customer_id', '=', q.customerId);
    if (q.status) query = query.where('i.status', '=', q.status);
    if (q.kind) query = query.where('i.kind', '=', q.kind);
    if (q.after) query = query.where(sql<boolean>`(i.invoice_date, i.id) < (${q.after.d}::date, ${q.after.i}::uuid)`);
    return (await db.run(query.orderBy('i.invoice_date', 'desc').orderBy('i.id', 'desc').limit(q.limit + 1))) as InvoiceRow[];
  },

  /** The next number of a series (e.g. INV-2026): the row lock is held until commit, so numbers are gapless. */
  async nextNumber(db: Db, orgId: string, series: string): Promise<number> {
    const [row] = await db.run(qb.insertInto('finance.document_numbers').values({ org_id: orgId, series, last_number: 1 } as never)
      .onConflict((oc) => oc.columns(['org_id', 'series']).doUpdateSet({ last_number: sql`finance.document_numbers.last_number + 1` }))
      .returning(sql<string>`last_number::text`.as('n')));
    return Number(row.n);
  },

  /** `entryId` null: a document of 0.00, which posts nothing (migration 20270207600100). */
  async markIssued(db: Db, orgId: string, id: string, p: { number: string; rate: string; baseSubtotal: string; baseTotal: string; entryId: string | null; status: string }): Promise<void> {
    await db.run(qb.updateTable('finance.invoices').set({
      status: p.status, number: p.number, rate: p.rate, base_subtotal: p.baseSubtotal, base_total: p.baseTotal, entry_id: p.entryId,
      issued_at: sql`now()`, updated_at: sql`now()`,
    } as never).where('org_id', '=', orgId).where('id', '=', id));
  },

  /**
   * Takes the next number of `series` (e.g. INV-2026), marks the draft issued with it and writes the event and the
   * audit row that carry it, in one statement: the counter row is locked from here until commit (gapless), so this is
   * the last statement of an issue, sent with its COMMIT (the caller's db.commitNow()). The statement is sent at once;
   * the promise answers its number.
   */
  issueWithNextNumber(db: Db, orgId: string, id: string, series: string, p: { rate: string; baseSubtotal: string; baseTotal: string; entryId: string; status: string },
    written: { event: { topic: string; payload: string }; audit: AuditRow }): Promise<string> {
    const { event, audit } = written;
    return db.run(issueNumbered({
      orgId, id, series, ...p, eventTopic: event.topic, eventJson: event.payload,
      auditActorId: audit.actorId, auditPrincipalType: audit.principalType, auditAction: audit.action, auditEntityType: audit.entityType, auditEntityId: audit.entityId,
      auditBefore: audit.before === undefined ? null : JSON.stringify(audit.before), auditAfter: JSON.stringify(audit.after ?? {}),
      auditRequestId: audit.requestId, auditIp: audit.ip,
    })).then(([row]) => row.number!);
  },

  async setStatus(db: Db, orgId: string, id: string, status: string): Promise<void> {
    await db.run(qb.updateTable('finance.invoices').set({ status, updated_at: sql`now()` } as never).where('org_id', '=', orgId).where('id', '=', id));
  },

  /** `entryId` null: an invoice of 0.00 has no entry to reverse. */
  async markVoid(db: Db, orgId: string, id: string, voidedOn: string, entryId: string | null): Promise<void> {
    await db.run(qb.updateTable('finance.invoices').set({ status: 'void', voided_on: voidedOn, void_entry_id: entryId, updated_at: sql`now()` } as never)
      .where('org_id', '=', orgId).where('id', '=', id));
  },

  /** Per line of the invoice: the quantity, net and tax its credit notes have credited so far. */
  async creditedLines(db: Db, orgId: string, invoiceId: string): Promise<Map<number, { quantity: string; net: string; tax: string }>> {
    const rows = await db.run(qb.selectFrom('finance.invoice_lines as l').innerJoinLateral(lineCredits.as('c'), (j) => j.onTrue())
      .select(['l.line_no as lineNo', sql<string>`c.quantity::text`.as('quantity'), sql<string>`c.net::text`.as('net'), sql<string>`c.tax::text`.as('tax')])
      .where('l.org_id', '=', orgId).where('l.invoice_id', '=', invoiceId));
    return new Map(rows.map((r) => [Number(r.lineNo), { quantity: r.quantity, net: r.net, tax: r.tax }]));
  },

  // ---------------------------------------------------------------- payments and allocations
  async insertPayment(db: Db, orgId: string, p: { customerId: string; date: string; amount: string; currency: string; rate: string; depositAccountId: string; method: string; reference: string | null; entryId: string; createdBy: string | null;
    idempotency?: Idempotency }): Promise<string> {
    const [row] = await db.run(qb.insertInto('finance.customer_payments').values({
      org_id: orgId, customer_id: p.customerId, payment_date: p.date, amount: p.amount, currency: p.currency, rate: p.rate,
      deposit_account_id: p.depositAccountId, method: p.method, reference: p.reference, entry_id: p.entryId, created_by: p.createdBy,
      idempotency_key: p.idempotency?.key ?? null, request_hash: p.idempotency?.requestHash ?? null,
    } as never).returning('id'));
    return row.id;
  },

  async insertRefund(db: Db, orgId: string, r: { paymentId: string; customerId: string; date: string; amount: string; currency: string; rate: string; sourceBase: string;
    accountId: string; method: string; reference: string | null; entryId: string; createdBy: string | null; idempotency?: Idempotency }): Promise<string> {
    const [row] = await db.run(qb.insertInto('finance.customer_refunds').values({
      org_id: orgId, payment_id: r.paymentId, customer_id: r.customerId, refund_date: r.date, amount: r.amount, currency: r.currency, rate: r.rate,
      source_base: r.sourceBase, account_id: r.accountId, method: r.method, reference: r.reference, entry_id: r.entryId, created_by: r.createdBy,
      idempotency_key: r.idempotency?.key ?? null, request_hash: r.idempotency?.requestHash ?? null,
    } as never).returning('id'));
    return row.id;
  },

  /**
   * Waits for any other request of the organization with this Idempotency-Key (of one kind of write) to commit or
   * roll back, then holds the key until this one does: the read of the key that follows sees what the other wrote.
   */
  async lockIdempotencyKey(db: Db, orgId: string, kind: IdempotentWrite, key: string): Promise<void> {
    await locks.exclusive(db, `finance.customer_${kind}_key:${lockId(orgId)}:${key}`);
  },

  /** The payment recorded with this Idempotency-Key, and the hash of its request. */
  async paymentByKey(db: Db, orgId: string, key: string): Promise<{ id: string; requestHash: string } | undefined> {
    const [row] = await db.run(qb.selectFrom('finance.customer_payments').select(['id', 'request_hash']).where('org_id', '=', orgId).where('idempotency_key', '=', key));
    return row && { id: row.id, requestHash: row.request_hash! };
  },

  /** The credit note created with this Idempotency-Key, and the hash of its request. */
  async creditNoteByKey(db: Db, orgId: string, key: string): Promise<{ id: string; requestHash: string } | undefined> {
    const [row] = await db.run(qb.selectFrom('finance.invoices').select(['id', 'request_hash']).where('org_id', '=', orgId).where('idempotency_key', '=', key));
    return row && { id: row.id, requestHash: row.request_hash! };
  },

  /** The allocation (the first row of an allocation request, or a reversal) made with this Idempotency-Key: its payment, and the hash of its request. */
  async allocationByKey(db: Db, orgId: string, key: string): Promise<{ id: string; paymentId: string | null; requestHash: string } | undefined> {
    const [row] = await db.run(qb.selectFrom('finance.receivable_allocations').select(['id', 'payment_id', 'request_hash']).where('org_id', '=', orgId).where('idempotency_key', '=', key));
    return row && { id: row.id, paymentId: row.payment_id, requestHash: row.request_hash! };
  },

  /** The refund made with this Idempotency-Key: its payment, and the hash of its request. */
  async refundByKey(db: Db, orgId: string, key: string): Promise<{ id: string; paymentId: string; requestHash: string } | undefined> {
    const [row] = await db.run(qb.selectFrom('finance.customer_refunds').select(['id', 'payment_id', 'request_hash']).where('org_id', '=', orgId).where('idempotency_key', '=', key));
    return row && { id: row.id, paymentId: row.payment_id, requestHash: row.request_hash! };
  },

  async refundsOf(db: Db, orgId: string, paymentIds: string[]) {
    if (!paymentIds.length) return [];
    return db.run(qb.selectFrom('finance.customer_refunds as r').select([
      'r.id', 'r.payment_id as paymentId', txt('r.refund_date').as('date'), txt('r.amount').as('amount'), txt('r.rate').as('rate'), txt('r.source_base').as('sourceBase'),
      sql<string>`round(r.amount * r.rate, (SELECT c.minor_units FROM finance.currencies c JOIN finance.settings st ON st.base_currency = c.code WHERE st.org_id = r.org_id))::text`.as('bankBase'),
      'r.account_id as accountId', 'r.reference', 'r.entry_id as entryId',
    ]).where('r.org_id', '=', orgId).where('r.payment_id', '=', sql<string>`any(${paymentIds}::uuid[])`).orderBy('r.created_at').orderBy('r.id'));
  },

  async getPayment(db: Db, orgId: string, id: string, lock = false): Promise<PaymentRow | undefined> {
    // payments are append-only (no UPDATE grant, so no FOR UPDATE): a transaction-scoped lock serializes allocations of one payment
    if (lock) await locks.exclusive(db, `finance.payment:${lockId(id)}`);
    const [row] = await db.run(payments().where('p.org_id', '=', orgId).where('p.id', '=', id));
    return row as PaymentRow | undefined;
  },

  async listPayments(db: Db, orgId: string, q: { customerId?: string; after?: { d: string; i: string }; limit: number }): Promise<PaymentRow[]> {
    let query = payments().where('p.org_id', '=', orgId);
    if (q.customerId) query = query.where('p.customer_id', '=', q.customerId);
    if (q.after) query = query.where(sql<boolean>`(p.payment_date, p.id) < (${q.after.d}::date, ${q.after.i}::uuid)`);
    return (await db.run(query.orderBy('p.payment_date', 'desc').orderBy('p.id', 'desc').limit(q.limit + 1))) as PaymentRow[];
  },

  async insertAllocation(db: Db, orgId: string, a: { invoiceId: string; paymentId?: string | null; creditNoteId?: string | null; date: string; amount: string; invoiceBase: string; sourceBase: string; reversesAllocationId?: string | null; entryId: string | null; createdBy: string | null; idempotency?: Idempotency }): Promise<string> {
    const [row] = await db.run(qb.insertInto('finance.receivable_allocations').values({
      org_id: orgId, invoice_id: a.invoiceId, payment_id: a.paymentId ?? null, credit_note_id: a.creditNoteId ?? null, allocation_date: a.date,
      amount: a.amount, invoice_base: a.invoiceBase, source_base: a.sourceBase, reverses_allocation_id: a.reversesAllocationId ?? null,
      entry_id: a.entryId, created_by: a.createdBy, idempotency_key: a.idempotency?.key ?? null, request_hash: a.idempotency?.requestHash ?? null,
    } as never).returning('id'));
    return row.id;
  },

  async getAllocation(db: Db, orgId: string, id: string): Promise<AllocationRow | undefined> {
    const [row] = await db.run(allocations().where('a.org_id', '=', orgId).where('a.id', '=', id));
    return row as AllocationRow | undefined;
  },

  /**
   * Where an allocation stands in the order revaluation rows were posted in (posting_seq, migration 20270210700100: a
   * value of finance.fx_revaluation_items' seq sequence drawn when it was written); null for one written before.
   */
  async allocationPostingSeq(db: Db, orgId: string, id: string): Promise<string | null> {
    const [row] = await db.$queryRaw<{ seq: string | null }[]>`
      SELECT a.posting_seq::text AS seq FROM finance.receivable_allocations a WHERE a.org_id = ${orgId}::uuid AND a.id = ${id}::uuid`;
    return row?.seq ?? null;
  },

  async allocationsOf(db: Db, orgId: string, by: { paymentIds?: string[]; invoiceId?: string }): Promise<AllocationRow[]> {
    let query = allocations().where('a.org_id', '=', orgId);
    if (by.paymentIds) query = query.where('a.payment_id', '=', sql<string>`any(${by.paymentIds}::uuid[])`);
    if (by.invoiceId) query = query.where('a.invoice_id', '=', by.invoiceId);
    return (await db.run(query.orderBy('a.seq'))) as AllocationRow[];
  },

  // ---------------------------------------------------------------- aging
  /**
   * One page of the aging as of `asOf` (finance.ar_aging_page: one grouped pass over the stored open amounts, rounded
   * to `minorUnits`): the customers with an open amount by name, then id, after `after`, at most `limit` (all when
   * null), then the totals row over all of them (partyId null). A customer's buckets come as positions
   * (0 = current … edges + 1) with their amounts.
   */
  async agingPage(db: Db, asOf: string, edges: number[], minorUnits: number, page: { after?: { n: string; i: string }; limit: number | null }): Promise<AgingPageRow[]> {
    return db.$queryRaw<AgingPageRow[]>`
      SELECT customer_id AS "partyId", customer_name AS "partyName", bucket_indexes AS "bucketIndexes", amounts, total, party_count AS "partyCount"
      FROM finance.ar_aging_page(${asOf}::date, ${edges}::int[], ${minorUnits}::int, ${page.after?.n ?? null}::text, ${page.after?.i ?? null}::uuid, ${page.limit}::int)
      ORDER BY customer_id IS NULL, customer_name, customer_id`;
  },

  async accountBalanceBase(db: Db, accountId: string, asOf: string): Promise<string> {
    const [row] = await db.$queryRaw<{ net: string }[]>`
      SELECT coalesce(sum(base_debit) - sum(base_credit), 0)::text AS net FROM finance.account_totals(NULL, ${asOf}::date, ${accountId}::uuid)`;
    return row.net;
  },
};

/** A row of `agingPage`: a customer, or (partyId null) the totals with the number of customers. */
export interface AgingPageRow {
  partyId: string | null; partyName: string | null; bucketIndexes: number[]; amounts: string[]; total: string; partyCount: number | null;
}

/** The ledger's rate lookup (a SQL function of the ledger's: the rate effective on a date, 1 for the base currency). */
export async function effectiveRate(db: Db, currency: string, date: string): Promise<string | null> {
  const [row] = await db.$queryRaw<{ rate: string | null }[]>`SELECT finance.effective_rate(${currency}, ${date}::date)::text AS rate`;
  return row.rate;
}

/**
 * The foreign-currency receivables as of `asOf` for the FX revaluation (all, or those of `documentIds`): each issued
 * invoice and each customer payment's credit with what is open of it (its currency) and its base in the aging (negative
 * for a credit), both from the settlements and revaluations dated by then, the rate it is carried at (the last
 * revaluation's, else its own) and the latest and earliest settlements dated after `asOf` (an allocation, a refund, a void). An invoice
 * voided by then is open for nothing but may still carry a revaluation (taken back). Items with nothing open and nothing
 * carried are left out. `postedBefore`: an allocation or a refund dated `asOf` counts only when posted before the
 * revaluation row of that seq (its posting_seq lower; one written before posting_seq was stored counts).
 */
export async function fxOpenItems(db: Db, orgId: string, asOf: string, documentIds?: string[], postedBefore?: string | null): Promise<{ documentId: string; currency: string; open: string; carried: string; carriedRate: string; ownRate: string; settledAfter: string | null; firstSettledAfter: string | null }[]> {
  const ids = documentIds ?? null;
  const cut = postedBefore ?? null;
  return db.$queryRaw`
    WITH docs AS (
      SELECT i.id AS document_id, i.currency, i.rate AS own_rate,
        CASE WHEN i.voided_on <= ${asOf}::date THEN 0 ELSE i.total - coalesce((SELECT sum(a.amount) FROM finance.receivable_allocations a
          WHERE a.org_id = i.org_id AND a.invoice_id = i.id AND a.allocation_date <= ${asOf}::date AND (a.allocation_date < ${asOf}::date OR ${cut}::bigint IS NULL OR a.posting_seq IS NULL OR a.posting_seq < ${cut}::bigint)), 0) END AS open,
        CASE WHEN i.voided_on <= ${asOf}::date THEN 0 ELSE coalesce(i.base_total, 0) - coalesce((SELECT sum(a.invoice_base) FROM finance.receivable_allocations a
          WHERE a.org_id = i.org_id AND a.invoice_id = i.id AND a.allocation_date <= ${asOf}::date AND (a.allocation_date < ${asOf}::date OR ${cut}::bigint IS NULL OR a.posting_seq IS NULL OR a.posting_seq < ${cut}::bigint)), 0) END AS base,
        CASE WHEN o.settled_through > ${asOf}::date THEN greatest(CASE WHEN i.voided_on > ${asOf}::date THEN i.voided_on END,
          (SELECT max(a.allocation_date) FROM finance.receivable_allocations a WHERE a.org_id = i.org_id AND a.invoice_id = i.id AND a.allocation_date > ${asOf}::date)) END AS settled_after,
        CASE WHEN o.settled_through > ${asOf}::date THEN least(CASE WHEN i.voided_on > ${asOf}::date THEN i.voided_on END,
          (SELECT min(a.allocation_date) FROM finance.receivable_allocations a WHERE a.org_id = i.org_id AND a.invoice_id = i.id AND a.allocation_date > ${asOf}::date)) END AS settled_first
      FROM finance.invoices i JOIN finance.receivable_open_amounts o ON o.org_id = i.org_id AND o.document_id = i.id
      WHERE i.org_id = ${orgId}::uuid AND i.kind = 'invoice' AND i.status <> 'draft' AND i.invoice_date <= ${asOf}::date
        AND (${ids}::uuid[] IS NULL OR i.id = any(${ids}::uuid[]))
        -- open now, or settled (or revalued) on or after the date: an item settled before and carrying nothing has nothing to revalue
        AND (o.open_base <> 0 OR o.settled_through >= ${asOf}::date)
        AND i.currency <> (SELECT st.base_currency FROM finance.settings st WHERE st.org_id = ${orgId}::uuid)
      UNION ALL
      SELECT p.id, p.currency, p.rate,
        -(p.amount - coalesce((SELECT sum(a.amount) FROM finance.receivable_allocations a
            WHERE a.org_id = p.org_id AND a.payment_id = p.id AND a.allocation_date <= ${asOf}::date AND (a.allocation_date < ${asOf}::date OR ${cut}::bigint IS NULL OR a.posting_seq IS NULL OR a.posting_seq < ${cut}::bigint)), 0)
          - coalesce((SELECT sum(r.amount) FROM finance.customer_refunds r WHERE r.org_id = p.org_id AND r.payment_id = p.id AND r.refund_date <= ${asOf}::date
            AND (r.refund_date < ${asOf}::date OR ${cut}::bigint IS NULL OR r.posting_seq IS NULL OR r.posting_seq < ${cut}::bigint)), 0)),
        o.base_amount + coalesce((SELECT sum(a.source_base) FROM finance.receivable_allocations a
            WHERE a.org_id = p.org_id AND a.payment_id = p.id AND a.allocation_date <= ${asOf}::date AND (a.allocation_date < ${asOf}::date OR ${cut}::bigint IS NULL OR a.posting_seq IS NULL OR a.posting_seq < ${cut}::bigint)), 0)
          + coalesce((SELECT sum(r.source_base) FROM finance.customer_refunds r WHERE r.org_id = p.org_id AND r.payment_id = p.id AND r.refund_date <= ${asOf}::date
            AND (r.refund_date < ${asOf}::date OR ${cut}::bigint IS NULL OR r.posting_seq IS NULL OR r.posting_seq < ${cut}::bigint)), 0),
        CASE WHEN o.settled_through > ${asOf}::date THEN greatest(
          (SELECT max(a.allocation_date) FROM finance.receivable_allocations a WHERE a.org_id = p.org_id AND a.payment_id = p.id AND a.allocation_date > ${asOf}::date),
          (SELECT max(r.refund_date) FROM finance.customer_refunds r WHERE r.org_id = p.org_id AND r.payment_id = p.id AND r.refund_date > ${asOf}::date)) END,
        CASE WHEN o.settled_through > ${asOf}::date THEN least(
          (SELECT min(a.allocation_date) FROM finance.receivable_allocations a WHERE a.org_id = p.org_id AND a.payment_id = p.id AND a.allocation_date > ${asOf}::date),
          (SELECT min(r.refund_date) FROM finance.customer_refunds r WHERE r.org_id = p.org_id AND r.payment_id = p.id AND r.refund_date > ${asOf}::date)) END
      FROM finance.customer_payments p JOIN finance.receivable_open_amounts o ON o.org_id = p.org_id AND o.document_id = p.id
      WHERE p.org_id = ${orgId}::uuid AND p.payment_date <= ${asOf}::date AND (o.open_base <> 0 OR o.settled_through >= ${asOf}::date)
        AND (${ids}::uuid[] IS NULL OR p.id = any(${ids}::uuid[]))
        AND p.currency <> (SELECT st.base_currency FROM finance.settings st WHERE st.org_id = ${orgId}::uuid))
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
 * What an FX revaluation left a receivable carrying as of `asOf` (a settlement's date): its open base (the aging's; a
 * payment's credit negative) with the revaluation rows dated by then, and the rate of the last of them. Only documents
 * with such rows are answered: the others carry their own rate. A reversal posted ahead (dated after `asOf`) is left out.
 */
export async function revaluedCarrying(db: Db, orgId: string, documentIds: string[], asOf: string): Promise<Map<string, { base: string; rate: string }>> {
  if (!documentIds.length) return new Map();
  const rows = await db.$queryRaw<{ id: string; base: string; rate: string }[]>`
    SELECT o.document_id::text AS id, (o.open_base - x.later)::text AS base, x.rate::text AS rate
    FROM finance.receivable_open_amounts o CROSS JOIN LATERAL (
      SELECT (array_agg(r.rate ORDER BY r.revaluation_date DESC, r.seq DESC) FILTER (WHERE r.revaluation_date <= ${asOf}::date))[1] AS rate,
        coalesce(sum(r.base_delta) FILTER (WHERE r.revaluation_date > ${asOf}::date), 0) AS later
      FROM finance.fx_revaluation_items r WHERE r.org_id = o.org_id AND r.document_id = o.document_id) x
    WHERE o.org_id = ${orgId}::uuid AND o.document_id = any(${documentIds}::uuid[]) AND x.rate IS NOT NULL`;
  return new Map(rows.map((r) => [r.id, { base: r.base, rate: r.rate }]));
}

/**
 * Whether every share of an FX-revalued invoice settled since its first revaluation, up to `asOf`, was a credit note
 * that wrote what it took off each unrealized FX account (its rows, migration 20270210250100 on: its allocation takes
 * the share at the invoice's own rate, invoice_base = source_base): no payment's allocation (nor its reversal), which
 * leaves its share's revaluation on the accounts, and no older credit note, which wrote none. Then the invoice's rows
 * sum per account to what it carries there.
 */
export async function creditedOnlySinceRevalued(db: Db, orgId: string, invoiceId: string, asOf: string): Promise<boolean> {
  const [row] = await db.$queryRaw<{ exact: boolean }[]>`
    SELECT NOT EXISTS (
      SELECT 1 FROM finance.receivable_allocations a
      WHERE a.org_id = ${orgId}::uuid AND a.invoice_id = ${invoiceId}::uuid AND a.allocation_date <= ${asOf}::date
        AND a.allocation_date >= (SELECT min(x.revaluation_date) FROM finance.fx_revaluation_items x WHERE x.org_id = a.org_id AND x.document_id = a.invoice_id)
        AND (a.credit_note_id IS NULL OR a.invoice_base <> a.source_base)) AS exact`;
  return row.exact;
}

/**
 * Of `invoiceIds`, the FX-revalued ones (with finance.fx_revaluation_items rows) with an allocation (or its reversal)
 * dated after `date`: the latest such allocation's invoice and date, or undefined.
 */
export async function laterSettlementOfRevalued(db: Db, orgId: string, invoiceIds: string[], date: string): Promise<{ documentId: string; date: string } | undefined> {
  if (!invoiceIds.length) return undefined;
  const [row] = await db.$queryRaw<{ documentId: string; date: string }[]>`
    SELECT a.invoice_id::text AS "documentId", a.allocation_date::text AS date FROM finance.receivable_allocations a
    WHERE a.org_id = ${orgId}::uuid AND a.invoice_id = any(${invoiceIds}::uuid[]) AND a.allocation_date > ${date}::date
      AND EXISTS (SELECT 1 FROM finance.fx_revaluation_items x WHERE x.org_id = a.org_id AND x.document_id = a.invoice_id)
    ORDER BY a.allocation_date DESC, a.invoice_id LIMIT 1`;
  return row;
}

/**
 * When the payment `paymentId` is FX-revalued (has finance.fx_revaluation_items rows): the latest use of its credit (an
 * allocation or its reversal, a refund) dated after `date`, or undefined.
 */
export async function laterUseOfRevaluedCredit(db: Db, orgId: string, paymentId: string, date: string): Promise<{ documentId: string; date: string } | undefined> {
  const [row] = await db.$queryRaw<{ documentId: string; date: string }[]>`
    SELECT ${paymentId}::text AS "documentId", max(u.d)::text AS date FROM (
      SELECT a.allocation_date AS d FROM finance.receivable_allocations a WHERE a.org_id = ${orgId}::uuid AND a.payment_id = ${paymentId}::uuid AND a.allocation_date > ${date}::date
      UNION ALL
      SELECT r.refund_date FROM finance.customer_refunds r WHERE r.org_id = ${orgId}::uuid AND r.payment_id = ${paymentId}::uuid AND r.refund_date > ${date}::date) u
    WHERE EXISTS (SELECT 1 FROM finance.fx_revaluation_items x WHERE x.org_id = ${orgId}::uuid AND x.document_id = ${paymentId}::uuid)
    HAVING max(u.d) IS NOT NULL`;
  return row;
}

/**
 * The invoices of `by.invoiceIds` (or the payment `by.paymentId`) with an allocation reversal dated after `date`, each with
 * the latest such date. An allocation settled its invoice (and used its payment's credit) until its reversal: a
 * settlement or use dated before that would count its amount twice in between (the aging would show the invoice settled
 * more than its total, the payment's credit below zero).
 */
export async function reversalsAfter(db: Db, orgId: string, by: { invoiceIds: string[] } | { paymentId: string }, date: string): Promise<Map<string, string>> {
  const rows = 'paymentId' in by
    ? await db.$queryRaw<{ id: string; date: string }[]>`
      SELECT payment_id::text AS id, max(allocation_date)::text AS date FROM finance.receivable_allocations
      WHERE org_id = ${orgId}::uuid AND payment_id = ${by.paymentId}::uuid AND reverses_allocation_id IS NOT NULL AND allocation_date > ${date}::date
      GROUP BY payment_id`
    : by.invoiceIds.length ? await db.$queryRaw<{ id: string; date: string }[]>`
      SELECT invoice_id::text AS id, max(allocation_date)::text AS date FROM finance.receivable_allocations
      WHERE org_id = ${orgId}::uuid AND invoice_id = any(${by.invoiceIds}::uuid[]) AND reverses_allocation_id IS NOT NULL AND allocation_date > ${date}::date
      GROUP BY invoice_id` : [];
  return new Map(rows.map((r) => [r.id, r.date]));
}

/** One row of semantic.v_ar_open as the agents' list_open_invoices tool hands it to a model. */
export interface OpenInvoiceRow {
  documentKind: string; documentId: string; customerId: string; customerName: string; number: string | null; documentDate: string; dueDate: string;
  currency: string; total: string; openAmount: string; baseCurrency: string; openAmountBase: string; daysPastDue: number; bucket: string;
}

/** The open receivables of today (semantic.v_ar_open, under the caller's policies), most overdue first, at most `limit` + 1 rows. */
export async function openInvoices(db: Db, q: { customerId?: string; overdueOnly: boolean; limit: number }): Promise<OpenInvoiceRow[]> {
  return db.$queryRaw<OpenInvoiceRow[]>`
    SELECT document_kind AS "documentKind", document_id AS "documentId", customer_id AS "customerId", customer_name AS "customerName", number,
           document_date::text AS "documentDate", due_date::text AS "dueDate", currency, total::text, open_amount::text AS "openAmount",
           base_currency AS "baseCurrency", open_amount_base::text AS "openAmountBase", days_past_due AS "daysPastDue", bucket
    FROM semantic.v_ar_open
    WHERE (${q.customerId ?? null}::uuid IS NULL OR customer_id = ${q.customerId ?? null}::uuid) AND (NOT ${q.overdueOnly} OR days_past_due > 0)
    ORDER BY days_past_due DESC, due_date, document_id
    LIMIT ${q.limit + 1}`;
}
