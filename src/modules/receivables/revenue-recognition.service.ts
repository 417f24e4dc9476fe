import { Inject, Injectable, Logger } from '@nestjs/common';
import { Cron } from '@nestjs/schedule';
import { DatabaseService, type TenantTx } from '../../platform/database/database.service.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { AppError } from '../../platform/errors/app-error.js';
import { ENTITLEMENT_GATE, type EntitlementGate } from '../../platform/http/tenant.js';
import { Clock, today } from '../../platform/clock/clock.js';
import { AuditService } from '../audit/audit.service.js';
import { JournalService, type PostingLine } from '../ledger/journal.service.js';
import { LedgerErrors } from '../ledger/ledger.errors.js';
import { LedgerService } from '../ledger/ledger.service.js';
import { baseShare, D, fixed } from '../ledger/money.js';
import { CustomersService } from './customers.service.js';
import { ReceivablesErrors } from './receivables.errors.js';
import { actor, InvoicesService } from './invoices.service.js';
import { revenueRecognitionRepository as repo, type DeferredLine, type RecognitionRow } from './revenue-recognition.repository.js';
import type { RevenueRecognitionRunDto, RevenueScheduleDto } from './receivables.dto.js';

const DAY = 86_400_000;
const days = (from: string, to: string) => Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / DAY);

/** Straight-line by days: the share of `net` earned by the end of `date` (all of it from the last day on). */
export function scheduledAmount(net: string, start: string, end: string, date: string, mu: number): string {
  if (date < start) return fixed(0, mu);
  if (date >= end) return fixed(net, mu);
  return fixed(D(net).times(days(start, date) + 1).div(days(start, end) + 1), mu);
}

/**
 * Revenue recognition: lines with a service period were credited to deferred revenue at issue; a run for a day
 * moves what has elapsed by then (straight-line by days) to each line's revenue account, at the invoice's rate; nothing
 * of an invoice dated after that day (the first run on or after its date catches up the days of service before it).
 * One run per organization and day (a second is a replay), never for a day after today (the clock's); never into a closed period.
 */
@Injectable()
export class RevenueRecognitionService {
  private readonly logger = new Logger(RevenueRecognitionService.name);

  constructor(
    private readonly audit: AuditService,
    private readonly ledger: LedgerService,
    private readonly journal: JournalService,
    private readonly customers: CustomersService,
    private readonly invoices: InvoicesService,
    private readonly clock: Clock,
    private readonly database: DatabaseService,
    private readonly privileged: PrivilegedDatabase,
    @Inject(ENTITLEMENT_GATE) private readonly entitlements: EntitlementGate,
  ) {}

  private async runDto(tx: TenantTx, date: string, replayed: boolean): Promise<RevenueRecognitionRunDto> {
    const run = (await repo.getRun(tx.db, tx.orgId, date))!;
    const rows = await repo.recognitions(tx.db, tx.orgId, { runDate: date });
    const units = await this.ledger.minorUnits(tx);
    const lines = [];
    for (const r of rows) lines.push({ invoiceId: r.invoiceId, lineNo: r.lineNo, amount: fixed(r.amount, units(r.currency)), recognizedThrough: r.recognizedThrough });
    return { ...run, replayed, lines };
  }

  /** The posting date for a run of `date`: the date when its period is open, else the first day of the first open period after it. */
  private async postingDate(tx: TenantTx, date: string): Promise<{ postedOn: string; note: string | null }> {
    const periods = (await this.ledger.listPeriods(tx)).sort((a, b) => a.startDate.localeCompare(b.startDate));
    const own = periods.find((p) => p.startDate <= date && p.endDate >= date);
    if (own?.status === 'open') return { postedOn: date, note: null };
    const next = periods.find((p) => p.startDate > date && p.status === 'open');
    if (!next) throw LedgerErrors.error('ledger.period_closed', `the period of ${date} is closed and no open period follows it`);
    return { postedOn: next.startDate, note: own ? `the period ${own.startDate} to ${own.endDate} is closed: posted on ${next.startDate}, the first day of the next open period` : `no fiscal period covers ${date}: posted on ${next.startDate}` };
  }

  async run(tx: TenantTx, date: string): Promise<RevenueRecognitionRunDto> {
    // what has elapsed by then: a day not yet come would recognize service not yet given (12-31 run in March: the whole year)
    const now = today(this.clock);
    if (date > now) throw ReceivablesErrors.error('receivables.recognition_date_future', `date ${date} is after today (${now}): revenue is recognized up to today at the latest`, { today: now });
    // the posting lock (shared) before the runs' lock, as a void and a credit note take them (InvoicesService.holdPostings)
    await this.invoices.holdPostings(tx);
    await repo.lockRuns(tx.db, tx.orgId);
    if (await repo.getRun(tx.db, tx.orgId, date)) return this.runDto(tx, date, true);
    const settings = await this.customers.settings(tx);
    const { baseCurrency } = await this.ledger.settings(tx);
    const baseMu = await this.ledger.currencyUnits(tx, baseCurrency);
    const lines: PostingLine[] = [];
    const recognitions: RecognitionRow[] = [];
    let postedOn = date;
    let note: string | null = null;
    const due: { line: DeferredLine; delta: string; baseDelta: string; through: string }[] = [];
    for (const l of await repo.deferredLines(tx.db, tx.orgId, date)) {
      const mu = await this.ledger.currencyUnits(tx, l.currency);
      const target = scheduledAmount(l.netAmount, l.serviceStart, l.serviceEnd, date, mu);
      const delta = D(target).minus(l.recognized);
      if (!delta.gt(0)) continue;
      // telescoping base values: the deferred base credited at issue is exactly used up on the last day
      const baseDelta = baseShare(D(target), delta, l.rate, baseMu);
      due.push({ line: l, delta: delta.toFixed(), baseDelta: baseDelta.toFixed(), through: date < l.serviceEnd ? date : l.serviceEnd });
    }
    let entryId: string | null = null;
    if (due.length) {
      ({ postedOn, note } = await this.postingDate(tx, date));
      if (!settings.deferredRevenueAccountId) throw ReceivablesErrors.error('receivables.deferred_account_missing', 'no deferred revenue account is set in the receivables settings');
      for (const d of due) {
        const common = { currency: d.line.currency, rate: d.line.rate, counterpartyType: 'customer', counterpartyId: d.line.customerId };
        const description = `${d.line.number} line ${d.line.lineNo}: recognized through ${d.through}`;
        lines.push({ ...common, accountId: settings.deferredRevenueAccountId, debit: d.delta, baseDebit: d.baseDelta, description });
        lines.push({ ...common, accountId: d.line.revenueAccountId, credit: d.delta, baseCredit: d.baseDelta, description });
      }
      // an entry has at most 499 lines: 200 invoice lines (400 posting lines) per entry is within it; the run records the
      // first entry, each recognition its own, and every one is the run's (receivablesRepository.entryOwner): none is reversed alone
      for (let i = 0; i < lines.length; i += 400) {
        const { entry } = await this.journal.post(tx, {
          date: postedOn, memo: `Revenue recognition through ${date}${note ? ` (${note})` : ''}`.slice(0, 1000), source: 'system',
          idempotencyKey: `revenue-recognition:${date}:${i / 400}`, lines: lines.slice(i, i + 400),
        });
        entryId ??= entry.id;
        for (const d of due.slice(i / 2, (i + 400) / 2)) {
          recognitions.push({ invoiceId: d.line.invoiceId, lineNo: d.line.lineNo, runDate: date, recognizedThrough: d.through, postedOn, amount: d.delta, baseAmount: d.baseDelta, entryId: entry.id } as RecognitionRow & { entryId: string });
        }
      }
    }
    await repo.insertRun(tx.db, tx.orgId, { runDate: date, postedOn, note, entryId, lineCount: due.length, createdBy: actor(tx) });
    await repo.insertRecognitions(tx.db, tx.orgId, recognitions as (RecognitionRow & { entryId: string })[]);
    await this.audit.record(tx, { action: 'receivables.revenue_recognized', entityType: 'revenue_recognition_run', entityId: date, after: { postedOn, note, entryId, lineCount: due.length } });
    return this.runDto(tx, date, false);
  }

  /**
   * An invoice's lines at `date`, as the ledger has them then: the net less the credit notes dated by then; scheduled,
   * what runs would have recognized by then (nothing before the invoice's date: it is not in the books yet); recognized,
   * what runs of days up to then recognized less what credit notes took back from revenue. A credit note takes what is
   * still deferred back from deferred revenue and only the rest from revenue, so what it took from revenue is what
   * recognized exceeds the net it left: recognized is at most the net, and deferred never below 0 (deferred revenue's
   * share of the line in the ledger).
   */
  async schedule(tx: TenantTx, invoiceId: string, asOf?: string): Promise<RevenueScheduleDto> {
    const invoice = await this.invoices.row(tx, invoiceId);
    const date = asOf ?? today(this.clock);
    const mu = await this.ledger.currencyUnits(tx, invoice.currency);
    const lines = await repo.scheduleLines(tx.db, tx.orgId, invoiceId, date);
    return {
      invoiceId, asOf: date, currency: invoice.currency,
      lines: lines.map((l) => {
        const net = D(l.netAmount);
        const recognized = D(l.recognized).gt(net) ? net : D(l.recognized);
        const scheduled = date < invoice.invoiceDate ? fixed(0, mu) : scheduledAmount(l.netAmount, l.serviceStart, l.serviceEnd, date, mu);
        return {
          lineNo: l.lineNo, description: l.description, serviceStart: l.serviceStart, serviceEnd: l.serviceEnd, netAmount: fixed(net, mu),
          scheduled, recognized: fixed(recognized, mu), deferred: fixed(net.minus(recognized), mu),
        };
      }),
    };
  }

  /**
   * The daily job: every organization with deferred lines runs for today (the injectable clock's), as the service
   * `revenue-recognition` inside that organization's tenant transaction; one whose plan lacks full_accounting is
   * skipped. A failure of one organization is logged and does not stop the others; tomorrow's run catches up.
   */
  @Cron('0 30 2 * * *', { name: 'revenue-recognition', timeZone: 'UTC' })
  async runDaily(): Promise<{ orgId: string; outcome: string }[]> {
    const date = today(this.clock);
    const orgs = await this.privileged.run('jobs.revenue_recognition', (db) => repo.organizationsWithDeferredLines(db, date));
    const results: { orgId: string; outcome: string }[] = [];
    for (const orgId of orgs) {
      try {
        const outcome = await this.database.tenant({ kind: 'service', name: 'revenue-recognition' }, orgId, { requestId: `revenue-recognition:${date}` }, async (tx) => {
          try {
            await this.entitlements.enforce(tx, { app: 'omnizen', feature: 'full_accounting' });
          } catch (err) {
            if (err instanceof AppError && err.status === 402) return 'skipped: plan';
            throw err;
          }
          const run = await this.run(tx, date);
          return run.replayed ? 'replayed' : `posted ${run.lines.length} line(s) on ${run.postedOn}`;
        });
        results.push({ orgId, outcome });
      } catch (err) {
        this.logger.error({ err, orgId }, 'revenue recognition failed');
        results.push({ orgId, outcome: `failed: ${(err as Error).message}` });
      }
    }
    return results;
  }
}
