import type { TenantTx } from '../../platform/database/database.service.js';
import type { JournalService } from '../ledger/journal.service.js';
import type { LedgerService } from '../ledger/ledger.service.js';
import { assertAfterRevaluations as afterRevaluations } from '../ledger/revalued-items.js';
import { PayablesErrors } from './payables.errors.js';

/** The ledger's check (revalued-items.ts) for a bill, claim or payment: a date before its last FX revaluation is 422 payables.before_revaluation. */
export const assertAfterRevaluations = (ledger: LedgerService, journal: JournalService, tx: TenantTx, documentIds: string[], date: string, doing: string): Promise<void> =>
  afterRevaluations(ledger, journal, tx, documentIds, date, doing, (message, details) => PayablesErrors.error('payables.before_revaluation', message, details));
