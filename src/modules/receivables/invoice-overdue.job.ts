import { Injectable, Logger } from '@nestjs/common';
import { Cron } from '@nestjs/schedule';
import { Clock, today } from '../../platform/clock/clock.js';
import { DatabaseService, type TenantTx } from '../../platform/database/database.service.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { emitEvent } from '../../platform/events/events.js';
import { AuditService } from '../audit/audit.service.js';
import { LedgerService } from '../ledger/ledger.service.js';
import { fixed } from '../ledger/money.js';
import { invoiceOverdueRepository as repo } from './invoice-overdue.repository.js';

/** Invoices noted per statement; an organization's run goes on until none is left. */
const BATCH = 500;

/**
 * The daily overdue check: every issued invoice past its due date (UTC, the injectable clock's today) with an amount
 * still open is noted once, audited, and its `invoice.overdue` event emitted in the same transaction; notifications
 * tell the organization's owners, admins and accountants, webhooks deliver it. The organizations come from the
 * privileged path `jobs.invoice_overdue`; each runs as the service `invoice-overdue` in its own tenant transaction.
 * A failure of one organization is logged and does not stop the others: the next run notes what it left.
 */
@Injectable()
export class InvoiceOverdueJob {
  private readonly logger = new Logger(InvoiceOverdueJob.name);

  constructor(
    private readonly database: DatabaseService,
    private readonly privileged: PrivilegedDatabase,
    private readonly audit: AuditService,
    private readonly ledger: LedgerService,
    private readonly clock: Clock,
  ) {}

  @Cron('0 15 6 * * *', { name: 'invoice-overdue', timeZone: 'UTC' })
  async runDaily(): Promise<{ orgId: string; noted: number | null }[]> {
    const date = today(this.clock);
    const orgs = await this.privileged.run('jobs.invoice_overdue', (db) => repo.organizationsWithOverdue(db, date));
    const results: { orgId: string; noted: number | null }[] = [];
    for (const orgId of orgs) {
      try {
        const noted = await this.database.tenant({ kind: 'service', name: 'invoice-overdue' }, orgId, { requestId: `invoice-overdue:${date}` }, (tx) => this.note(tx, date));
        results.push({ orgId, noted });
      } catch (err) {
        this.logger.error({ err, orgId }, 'overdue check failed');
        results.push({ orgId, noted: null });
      }
    }
    return results;
  }

  private async note(tx: TenantTx, date: string): Promise<number> {
    let noted = 0;
    for (let rows = await repo.noteOverdue(tx.db, tx.orgId, date, BATCH); rows.length; rows = rows.length < BATCH ? [] : await repo.noteOverdue(tx.db, tx.orgId, date, BATCH)) {
      for (const r of rows) {
        const mu = await this.ledger.currencyUnits(tx, r.currency);
        const payload = { ...r, total: fixed(r.total, mu), amountDue: fixed(r.amountDue, mu) };
        await this.audit.record(tx, { action: 'receivables.invoice_overdue', entityType: 'invoice', entityId: r.invoiceId, after: { dueDate: r.dueDate, amountDue: payload.amountDue, notedOn: date } });
        await emitEvent(tx, 'invoice.overdue', payload);
      }
      noted += rows.length;
    }
    return noted;
  }
}
