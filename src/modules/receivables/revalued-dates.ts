import type { TenantTx } from '../../platform/database/database.service.js';
import type { JournalService } from '../ledger/journal.service.js';
import type { LedgerService } from '../ledger/ledger.service.js';
import { ReceivablesErrors } from './receivables.errors.js';

/**
 * Before what an invoice or a payment's credit carries is read (revaluedCarrying) as of `date`: the posting lock held shared,
 * so that an FX revaluation, which drains postings before it reads the open items, is either waited for (and its
 * changes read here) or waits for this transaction (and revalues what this one left); then a date before the items'
 * last revaluation in the books by then is refused (422 receivables.before_revaluation): what an item carries is its value after that
 * revaluation, not as of an earlier day, so settling, crediting or voiding it then would take the wrong base off AR.
 * An autoReverse reversal (dated the next period's first day) does not count: a settlement dated between a revaluation
 * and its reversal settles what the item carries as of its date (JournalService.settlePendingReversals).
 */
export async function assertAfterRevaluations(ledger: LedgerService, journal: JournalService, tx: TenantTx, documentIds: string[], date: string, doing: string): Promise<void> {
  await ledger.holdPostings(tx);
  const last = await journal.lastRevaluation(tx, documentIds);
  if (last && date < last.date) {
    throw ReceivablesErrors.error('receivables.before_revaluation',
      `${doing} dated ${date} is before ${last.date}, the date of the last FX revaluation of ${last.documentId}: date it on or after ${last.date}`,
      { documentId: last.documentId, revaluationDate: last.date });
  }
}
