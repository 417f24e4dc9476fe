import { Module, OnModuleInit } from '@nestjs/common';
import { BillingModule } from '../billing/billing.module.js';
import {
  AccountsController, FiscalCalendarController, JournalController, LedgerBooksController, RatesAndTaxController, ReportsController,
} from './ledger.controller.js';
import { ControlAccounts } from './control-accounts.js';
import { RevaluedSubledgers } from './revalued-items.js';
import { JournalEntryOwners } from './entry-owners.js';
import { JournalService } from './journal.service.js';
import { LedgerService } from './ledger.service.js';
import { ReportsService } from './reports.service.js';
import { ledgerRepository } from './ledger.repository.js';

/** Chart of accounts, journal entries, balances, periods, currencies and FX, tax codes, statements (issue 4). */
@Module({
  imports: [BillingModule],
  controllers: [LedgerBooksController, AccountsController, RatesAndTaxController, FiscalCalendarController, JournalController, ReportsController],
  providers: [LedgerService, JournalService, ReportsService, JournalEntryOwners, ControlAccounts, RevaluedSubledgers],
  exports: [LedgerService, JournalService, ReportsService, JournalEntryOwners, ControlAccounts, RevaluedSubledgers],
})
export class LedgerModule implements OnModuleInit {
  constructor(private readonly owners: JournalEntryOwners) {}

  onModuleInit(): void {
    // a year's closing entry is undone by reopening the year
    // an FX revaluation of open receivables and payables is kept per item with the agings: it is not reversed alone
    this.owners.register('ledger', async (tx, entryId) =>
      (await ledgerRepository.closingEntryOwner(tx.db, tx.orgId, entryId)) ?? ledgerRepository.revaluationEntryOwner(tx.db, tx.orgId, entryId));
  }
}
