import { Module, OnModuleInit } from '@nestjs/common';
import { AgentsModule } from '../agents/agents.module.js';
import { ToolRegistry } from '../agents/tool-registry.js';
import { BillingModule } from '../billing/billing.module.js';
import { LedgerModule } from '../ledger/ledger.module.js';
import { ControlAccounts } from '../ledger/control-accounts.js';
import { JournalEntryOwners } from '../ledger/entry-owners.js';
import { fxOpenItems, receivablesRepository } from './receivables.repository.js';
import { RevaluedSubledgers } from '../ledger/revalued-items.js';
import { OrganizationsModule } from '../organizations/organizations.module.js';
import { AgingService } from './aging.service.js';
import { CustomersService } from './customers.service.js';
import { InvoicesService } from './invoices.service.js';
import { PaymentsService } from './payments.service.js';
import { CustomersController, InvoicesController, PaymentsController, ReceivablesSettingsController, RevenueRecognitionController } from './receivables.controller.js';
import { RevenueRecognitionService } from './revenue-recognition.service.js';
import { InvoiceOverdueJob } from './invoice-overdue.job.js';
import { listOpenInvoicesTool } from './receivables.tools.js';

/** Customers, invoices and credit notes, payments and allocations, AR aging, revenue recognition (issue 15, receivables half). */
@Module({
  imports: [BillingModule, LedgerModule, OrganizationsModule, AgentsModule],
  controllers: [ReceivablesSettingsController, CustomersController, InvoicesController, PaymentsController, RevenueRecognitionController],
  providers: [CustomersService, InvoicesService, PaymentsService, AgingService, RevenueRecognitionService, InvoiceOverdueJob],
  exports: [CustomersService, InvoicesService, PaymentsService, AgingService, RevenueRecognitionService],
})
export class ReceivablesModule implements OnModuleInit {
  constructor(private readonly tools: ToolRegistry, private readonly owners: JournalEntryOwners, private readonly controls: ControlAccounts,
    private readonly revalued: RevaluedSubledgers) {}

  onModuleInit(): void {
    // its documents' postings are corrected through the documents, not reversed alone
    this.owners.register('receivables', (tx, entryId) => receivablesRepository.entryOwner(tx.db, tx.orgId, entryId));
    // the AR and deferred revenue accounts of its settings take no manual journal entry: the aging and the revenue
    // schedule would no longer agree with them
    this.controls.register('receivables', async (tx) => {
      const s = await receivablesRepository.settings(tx.db, tx.orgId);
      if (!s) return [];
      return [
        { accountId: s.arAccountId, role: 'AR', postedThrough: 'invoices, credit notes, customer payments, allocations and refunds' },
        ...(s.deferredRevenueAccountId ? [{ accountId: s.deferredRevenueAccountId, role: 'deferred revenue', postedThrough: 'invoices, credit notes and revenue recognition' }] : []),
      ];
    });
    // the FX revaluation values the AR account per open invoice and payment credit, kept with each (the aging adds them)
    this.revalued.register('receivables', 'debit', async (tx, asOf, documentIds, postedBefore) => {
      const s = await receivablesRepository.settings(tx.db, tx.orgId);
      if (!s) return { accountIds: [], items: [] };
      return { accountIds: [s.arAccountId], items: (await fxOpenItems(tx.db, tx.orgId, asOf, documentIds, postedBefore)).map((i) => ({ ...i, accountId: s.arAccountId })) };
    });
    // the agents' list_open_invoices tool (reads semantic.v_ar_open as the run's user)
    this.tools.register(listOpenInvoicesTool);
  }
}
