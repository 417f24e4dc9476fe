import { Module } from '@nestjs/common';
import { BillingModule } from '../billing/billing.module.js';
import {
  AccountsController, FiscalCalendarController, JournalController, LedgerBooksController, RatesAndTaxController, ReportsController,
} from './ledger.controller.js';
import { JournalService } from './journal.service.js';
import { LedgerService } from './ledger.service.js';
import { ReportsService } from './reports.service.js';

/** Chart of accounts, journal entries, balances, periods, currencies and FX, tax codes, statements (issue 4). */
@Module({
  imports: [BillingModule],
  controllers: [LedgerBooksController, AccountsController, RatesAndTaxController, FiscalCalendarController, JournalController, ReportsController],
  providers: [LedgerService, JournalService, ReportsService],
  exports: [LedgerService, JournalService, ReportsService],
})
export class LedgerModule {}
