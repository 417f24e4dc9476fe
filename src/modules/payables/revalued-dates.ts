import type { TenantTx } from '../../platform/database/database.service.js';
import type { JournalService, SettledReversals } from '../ledger/journal.service.js';
import type { LedgerService } from '../ledger/ledger.service.js';
import { assertAfterRevaluations as afterRevaluations } from '../ledger/revalued-items.js';
import { PayablesErrors } from './payables.errors.js';

/** The ledger's check (revalued-items.ts) for a bill, claim or payment: a date before its last FX revaluation is 422 payables.before_revaluation. */
export const assertAfterRevaluations = (ledger: LedgerService, journal: JournalService, tx: TenantTx, documentIds: string[], date: string, doing: string): Promise<void> =>
  afterRevaluations(ledger, journal, tx, documentIds, date, doing, (message, details) => PayablesErrors.error('payables.before_revaluation', message, details));

/**
 * The reversals of revaluations posted ahead of `date` (autoReverse, dated the next period's first day) of these
 * foreign-currency bills, claims and payment credits take off the share just settled (or given back) no more, in one
 * call for all of them (JournalService.settlePendingReversals; a realized FX account missing: 422 ledger.fx_accounts_missing,
 * as the payments' own results). Answers the entries posted (for the settlement's audit row); an allocation's reversal
 * gives its shares back through JournalService.giveBackAllocation.
 */
export const settlePendingReversals = (journal: JournalService, tx: TenantTx, s: {
  documentIds: string[]; party: { counterpartyType: string; counterpartyId: string }; date: string; memo: string;
}): Promise<SettledReversals> =>
  journal.settlePendingReversals(tx, {
    subledger: 'payables', date: s.date, memo: s.memo, ...s.party, realize: 'settled', documents: s.documentIds.map((documentId) => ({ documentId })),
  });
