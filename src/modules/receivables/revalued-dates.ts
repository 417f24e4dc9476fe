import type { TenantTx } from '../../platform/database/database.service.js';
import type { JournalService, SettledReversals } from '../ledger/journal.service.js';
import type { LedgerService } from '../ledger/ledger.service.js';
import { assertAfterRevaluations as afterRevaluations } from '../ledger/revalued-items.js';
import { ReceivablesErrors } from './receivables.errors.js';

/** The ledger's check (revalued-items.ts) for an invoice or payment: a date before its last FX revaluation is 422 receivables.before_revaluation. */
export const assertAfterRevaluations = (ledger: LedgerService, journal: JournalService, tx: TenantTx, documentIds: string[], date: string, doing: string): Promise<void> =>
  afterRevaluations(ledger, journal, tx, documentIds, date, doing, (message, details) => ReceivablesErrors.error('receivables.before_revaluation', message, details));

/**
 * The reversals of revaluations posted ahead of `date` (autoReverse, dated the next period's first day) of these
 * foreign-currency invoices and payment credits take off the share just settled (or given back) no more, in one call
 * for all of them (JournalService.settlePendingReversals); a realized FX account the settled share needs and the
 * settings lack is 422 receivables.fx_accounts_missing. `realize`: the shares were settled; false for a credit note (an
 * allocation's reversal gives its shares back through JournalService.giveBackAllocation). Answers the entries posted
 * (for the settlement's audit row).
 */
export const settlePendingReversals = (journal: JournalService, tx: TenantTx, s: {
  documentIds: string[]; customerId: string; date: string; memo: string; realize: 'settled' | false;
}): Promise<SettledReversals> =>
  journal.settlePendingReversals(tx, {
    subledger: 'receivables', date: s.date, memo: s.memo, counterpartyType: 'customer', counterpartyId: s.customerId, ...(s.realize ? { realize: s.realize } : {}),
    documents: s.documentIds.map((documentId) => ({ documentId })), fxAccountsMissing: (message) => ReceivablesErrors.error('receivables.fx_accounts_missing', message),
  });
