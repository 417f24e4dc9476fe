import type { TenantTx } from '../../platform/database/database.service.js';
import { LedgerErrors } from '../ledger/ledger.errors.js';
import type { LedgerService } from '../ledger/ledger.service.js';

/**
 * Refuses a date in a closed fiscal period, or in none, with the codes a posting dated then answers
 * (ledger.period_closed, ledger.no_fiscal_year), for a change that posts nothing yet moves what is open as of the date:
 * an allocation or its reversal without an FX difference, an invoice of 0.00 issued or voided. Without it, a closed
 * month's aging would still change. The periods are the ledger's, read through its service, under the posting lock held
 * shared: a close takes that lock exclusively (trigger fiscal_periods_postings_drained), so one in flight is waited for
 * and read closed here, and one started later waits for this transaction.
 */
export async function assertOpenPeriod(ledger: LedgerService, tx: TenantTx, date: string): Promise<void> {
  await ledger.holdPostings(tx);
  const period = (await ledger.listPeriods(tx)).find((p) => p.startDate <= date && date <= p.endDate);
  if (!period) throw LedgerErrors.error('ledger.no_fiscal_year', `no fiscal period covers ${date}`);
  if (period.status !== 'open') throw LedgerErrors.error('ledger.period_closed', `the fiscal period ${period.startDate} to ${period.endDate} is closed`);
}
