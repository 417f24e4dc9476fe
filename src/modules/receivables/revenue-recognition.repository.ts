import { sql } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { qb } from '../../platform/database/query-builder.js';
import { locks, lockId } from '../../platform/database/locks.js';
import { lineCredits } from './receivables.repository.js';

// Revenue recognition's SQL (deferred lines, runs, recognitions). Dates and amounts as text.

export interface DeferredLine {
  invoiceId: string; lineNo: number; description: string; customerId: string; number: string; currency: string; rate: string;
  revenueAccountId: string; serviceStart: string; serviceEnd: string; netAmount: string; recognized: string;
}
export interface RunRow { runDate: string; postedOn: string; note: string | null; entryId: string | null }
export interface RecognitionRow { invoiceId: string; lineNo: number; runDate: string; recognizedThrough: string; postedOn: string; amount: string; baseAmount: string }

const recognized = sql<string>`coalesce((SELECT sum(r.amount) FROM finance.revenue_recognitions r
  WHERE r.org_id = l.org_id AND r.invoice_id = l.invoice_id AND r.line_no = l.line_no), 0)::text`;
/** What is left of a line's net after its credit notes (`c`: lineCredits joined): the amount recognition spreads over the service period. */
const netAfterCredits = sql<string>`(l.net_amount - c.net)`;

/** Lines with a service period of issued (not void) invoices, each with its credits as `c`. */
const serviceLines = () => qb.selectFrom('finance.invoice_lines as l')
  .innerJoin('finance.invoices as i', (j) => j.onRef('i.org_id', '=', 'l.org_id').onRef('i.id', '=', 'l.invoice_id'))
  .innerJoinLateral(lineCredits.as('c'), (j) => j.onTrue())
  .where('i.kind', '=', 'invoice').where('i.status', 'not in', ['draft', 'void'])
  .where(sql<boolean>`l.service_start IS NOT NULL`);

export const revenueRecognitionRepository = {
  /**
   * Lines with a service period begun by `date`, of issued (not void) invoices dated by `date` (nothing of an invoice is
   * recognized before it is in the books), not yet wholly recognized; their net is what their credit notes left of it.
   * With `invoiceId`: every line with a service period of that invoice, whatever the date.
   */
  async deferredLines(db: Db, orgId: string, date: string, invoiceId?: string): Promise<DeferredLine[]> {
    let query = serviceLines()
      .select([
        'l.invoice_id as invoiceId', 'l.line_no as lineNo', 'l.description', 'i.customer_id as customerId', sql<string>`i.number`.as('number'), 'i.currency',
        sql<string>`i.rate::text`.as('rate'), 'l.revenue_account_id as revenueAccountId', sql<string>`l.service_start::text`.as('serviceStart'),
        sql<string>`l.service_end::text`.as('serviceEnd'), sql<string>`${netAfterCredits}::text`.as('netAmount'), recognized.as('recognized'),
      ])
      .where('l.org_id', '=', orgId);
    query = invoiceId ? query.where('l.invoice_id', '=', invoiceId) : query.where(sql<boolean>`l.service_start <= ${date}::date`).where(sql<boolean>`i.invoice_date <= ${date}::date`)
      .where(sql<boolean>`${recognized}::numeric < ${netAfterCredits}`);
    return (await db.run(query.orderBy('l.invoice_id').orderBy('l.line_no'))) as DeferredLine[];
  },

  /**
   * One run at a time per organization, whatever its day: each works out what is still to recognize from what the
   * runs before it committed (two days' runs at once would both recognize the same amounts).
   */
  async lockRuns(db: Db, orgId: string): Promise<void> {
    await locks.exclusive(db, `finance.revenue_recognition:${lockId(orgId)}`);
  },

  async getRun(db: Db, orgId: string, date: string): Promise<RunRow | undefined> {
    const [row] = await db.run(qb.selectFrom('finance.revenue_recognition_runs')
      .select([sql<string>`run_date::text`.as('runDate'), sql<string>`posted_on::text`.as('postedOn'), 'note', 'entry_id as entryId'])
      .where('org_id', '=', orgId).where('run_date', '=', date as never));
    return row as RunRow | undefined;
  },

  async insertRun(db: Db, orgId: string, r: RunRow & { lineCount: number; createdBy: string | null }): Promise<void> {
    await db.run(qb.insertInto('finance.revenue_recognition_runs').values({
      org_id: orgId, run_date: r.runDate, posted_on: r.postedOn, note: r.note, entry_id: r.entryId, line_count: r.lineCount, created_by: r.createdBy,
    } as never));
  },

  async insertRecognitions(db: Db, orgId: string, rows: (RecognitionRow & { entryId: string })[]): Promise<void> {
    if (!rows.length) return;
    await db.run(qb.insertInto('finance.revenue_recognitions').values(rows.map((r) => ({
      org_id: orgId, invoice_id: r.invoiceId, line_no: r.lineNo, run_date: r.runDate, recognized_through: r.recognizedThrough, posted_on: r.postedOn,
      amount: r.amount, base_amount: r.baseAmount, entry_id: r.entryId,
    })) as never));
  },

  /** Recognitions with their invoice's currency (amounts are given in its minor units). */
  async recognitions(db: Db, orgId: string, q: { invoiceId?: string; runDate?: string }): Promise<(RecognitionRow & { currency: string })[]> {
    let query = qb.selectFrom('finance.revenue_recognitions as r').innerJoin('finance.invoices as i', (j) => j.onRef('i.org_id', '=', 'r.org_id').onRef('i.id', '=', 'r.invoice_id')).select([
      'r.invoice_id as invoiceId', 'r.line_no as lineNo', sql<string>`r.run_date::text`.as('runDate'), sql<string>`r.recognized_through::text`.as('recognizedThrough'),
      sql<string>`r.posted_on::text`.as('postedOn'), sql<string>`r.amount::text`.as('amount'), sql<string>`r.base_amount::text`.as('baseAmount'), 'i.currency',
    ]).where('r.org_id', '=', orgId);
    if (q.invoiceId) query = query.where('r.invoice_id', '=', q.invoiceId);
    if (q.runDate) query = query.where('r.run_date', '=', q.runDate as never);
    return (await db.run(query.orderBy('r.invoice_id').orderBy('r.line_no').orderBy('r.run_date'))) as (RecognitionRow & { currency: string })[];
  },

  /**
   * The schedule's lines of an invoice at `date`: each line with a service period, its net less what the credit notes
   * dated by then took of it (as the ledger has it at that date), and what runs of days up to then recognized.
   */
  async scheduleLines(db: Db, orgId: string, invoiceId: string, date: string): Promise<DeferredLine[]> {
    const creditedBy = sql<{ net: string }>`(SELECT coalesce(sum(cl.net_amount), 0) AS net
      FROM finance.invoice_lines cl JOIN finance.invoices cn ON cn.org_id = cl.org_id AND cn.id = cl.invoice_id
      WHERE cn.org_id = l.org_id AND cn.credited_invoice_id = l.invoice_id AND cn.kind = 'credit_note' AND cn.status <> 'draft'
        AND cl.credited_line_no = l.line_no AND cn.invoice_date <= ${date}::date)`;
    const recognizedBy = sql<string>`coalesce((SELECT sum(r.amount) FROM finance.revenue_recognitions r
      WHERE r.org_id = l.org_id AND r.invoice_id = l.invoice_id AND r.line_no = l.line_no AND r.run_date <= ${date}::date), 0)::text`;
    const query = qb.selectFrom('finance.invoice_lines as l')
      .innerJoin('finance.invoices as i', (j) => j.onRef('i.org_id', '=', 'l.org_id').onRef('i.id', '=', 'l.invoice_id'))
      .innerJoinLateral(creditedBy.as('c'), (j) => j.onTrue())
      .select([
        'l.invoice_id as invoiceId', 'l.line_no as lineNo', 'l.description', 'i.customer_id as customerId', sql<string>`i.number`.as('number'), 'i.currency',
        sql<string>`i.rate::text`.as('rate'), 'l.revenue_account_id as revenueAccountId', sql<string>`l.service_start::text`.as('serviceStart'),
        sql<string>`l.service_end::text`.as('serviceEnd'), sql<string>`${netAfterCredits}::text`.as('netAmount'), recognizedBy.as('recognized'),
      ])
      .where('i.kind', '=', 'invoice').where('i.status', 'not in', ['draft', 'void']).where(sql<boolean>`l.service_start IS NOT NULL`)
      .where('l.org_id', '=', orgId).where('l.invoice_id', '=', invoiceId);
    return (await db.run(query.orderBy('l.line_no'))) as DeferredLine[];
  },

  /** Organizations with deferred lines begun by `date`, of invoices dated by then (the daily job's list; read on its privileged path). */
  async organizationsWithDeferredLines(db: Db, date: string): Promise<string[]> {
    // a run already made today is listed again: the tenant run answers it as a replay
    const rows = await db.run(serviceLines().select('l.org_id').distinct().where(sql<boolean>`l.service_start <= ${date}::date`).where(sql<boolean>`i.invoice_date <= ${date}::date`)
      .where(sql<boolean>`(${recognized}::numeric < ${netAfterCredits}
        OR EXISTS (SELECT 1 FROM finance.revenue_recognition_runs x WHERE x.org_id = l.org_id AND x.run_date = ${date}::date))`));
    return rows.map((r) => r.org_id);
  },
};
