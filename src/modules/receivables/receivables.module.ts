import { Module } from '@nestjs/common';
import { BillingModule } from '../billing/billing.module.js';
import { LedgerModule } from '../ledger/ledger.module.js';
import { OrganizationsModule } from '../organizations/organizations.module.js';
import { AgingService } from './aging.service.js';
import { CustomersService } from './customers.service.js';
import { InvoicesService } from './invoices.service.js';
import { PaymentsService } from './payments.service.js';
import { CustomersController, InvoicesController, PaymentsController, ReceivablesSettingsController, RevenueRecognitionController } from './receivables.controller.js';
import { RevenueRecognitionService } from './revenue-recognition.service.js';

/** Customers, invoices and credit notes, payments and allocations, AR aging, revenue recognition (issue 15, receivables half). */
@Module({
  imports: [BillingModule, LedgerModule, OrganizationsModule],
  controllers: [ReceivablesSettingsController, CustomersController, InvoicesController, PaymentsController, RevenueRecognitionController],
  providers: [CustomersService, InvoicesService, PaymentsService, AgingService, RevenueRecognitionService],
  exports: [CustomersService, InvoicesService, PaymentsService, AgingService, RevenueRecognitionService],
})
export class ReceivablesModule {}
