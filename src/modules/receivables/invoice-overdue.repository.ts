import type { Db } from '../../platform/database/database.service.js';

/** An invoice the job noted as overdue: what its invoice.overdue event carries (amounts as PostgreSQL prints them). */
export interface OverdueInvoiceRow {
  invoiceId: string;
  number: string;
  customerId: string;
  dueDate: string;
  currency: string;
  total: string;
  amountDue: string;
}

// An invoice is overdue on `today` when it is issued (not a credit note), not paid or void, and due before today.
export const invoiceOverdueRepository = {
  /** Live organizations with an overdue invoice not yet noted (the daily job's list; read on its privileged path). */
  async organizationsWithOverdue(db: Db, today: string): Promise<string[]> {
    const rows = await db.$queryRaw<{ org_id: string }[]>`
      SELECT DISTINCT i.org_id FROM finance.invoices i
      JOIN core.organizations o ON o.id = i.org_id AND o.deleted_at IS NULL
      WHERE i.kind = 'invoice' AND i.status IN ('issued', 'partially_paid') AND i.due_date < ${today}::date
        AND NOT EXISTS (SELECT 1 FROM finance.invoice_overdue_notices n WHERE n.org_id = i.org_id AND n.invoice_id = i.id)`;
    return rows.map((r) => r.org_id);
  },

  /**
   * Notes up to `limit` of the organization's overdue invoices not yet noted, oldest due first, and answers them with
   * their open amount. Runs in the organization's transaction; a concurrent run notes none twice (the notice's key).
   */
  async noteOverdue(db: Db, orgId: string, today: string, limit: number): Promise<OverdueInvoiceRow[]> {
    return db.$queryRaw<OverdueInvoiceRow[]>`
      WITH due AS (
        SELECT i.id, i.due_date FROM finance.invoices i
        WHERE i.org_id = ${orgId}::uuid AND i.kind = 'invoice' AND i.status IN ('issued', 'partially_paid') AND i.due_date < ${today}::date
          AND NOT EXISTS (SELECT 1 FROM finance.invoice_overdue_notices n WHERE n.org_id = i.org_id AND n.invoice_id = i.id)
        ORDER BY i.due_date, i.id LIMIT ${limit}),
      noted AS (
        INSERT INTO finance.invoice_overdue_notices (org_id, invoice_id, due_date, noted_on)
        SELECT ${orgId}::uuid, due.id, due.due_date, ${today}::date FROM due
        -- in id order: each row's foreign key check locks its invoice (FOR KEY SHARE) as it goes, and a payment locks
        -- the invoices it allocates to in id order (FOR UPDATE): the oldest due first could lock them the other way round
        ORDER BY due.id
        ON CONFLICT DO NOTHING RETURNING invoice_id)
      SELECT i.id AS "invoiceId", i.number, i.customer_id AS "customerId", i.due_date::text AS "dueDate",
        i.currency, i.total::text AS total,
        (i.total - coalesce((SELECT sum(a.amount) FROM finance.receivable_allocations a WHERE a.org_id = i.org_id AND a.invoice_id = i.id), 0))::text AS "amountDue"
      FROM noted
      JOIN finance.invoices i ON i.org_id = ${orgId}::uuid AND i.id = noted.invoice_id
      ORDER BY i.due_date, i.id`;
  },
};
