import type { TenantTx } from '../../platform/database/database.service.js';
import type { JournalService } from '../ledger/journal.service.js';
import type { LedgerService } from '../ledger/ledger.service.js';
import { assertAfterRevaluations as afterRevaluations } from '../ledger/revalued-items.js';
import { ReceivablesErrors } from './receivables.errors.js';

/** The ledger's check (revalued-items.ts) for an invoice or payment: a date before its last FX revaluation is 422 receivables.before_revaluation. */
export const assertAfterRevaluations = (ledger: LedgerService, journal: JournalService, tx: TenantTx, documentIds: string[], date: string, doing: string): Promise<void> =>
  afterRevaluations(ledger, journal, tx, documentIds, date, doing, (message, details) => ReceivablesErrors.error('receivables.before_revaluation', message, details));
