import { Module } from '@nestjs/common';
import { BillingModule } from '../billing/billing.module.js';
import { LedgerModule } from '../ledger/ledger.module.js';
import { BillPaymentsService } from './bill-payments.service.js';
import { PayablesController } from './payables.controller.js';
import { PayablesService } from './payables.service.js';

/** Vendors, bills and expense claims with approvals, bill payments and allocations, AP aging (issue 15, payables). */
@Module({
  imports: [BillingModule, LedgerModule],
  controllers: [PayablesController],
  providers: [PayablesService, BillPaymentsService],
  exports: [PayablesService, BillPaymentsService],
})
export class PayablesModule {}
