import { Module, OnModuleInit } from '@nestjs/common';
import { AgentsModule } from '../agents/agents.module.js';
import { ToolRegistry } from '../agents/tool-registry.js';
import { BillingModule } from '../billing/billing.module.js';
import { LedgerModule } from '../ledger/ledger.module.js';
import { ControlAccounts } from '../ledger/control-accounts.js';
import { JournalEntryOwners } from '../ledger/entry-owners.js';
import { fxOpenPayables, payablesRepository } from './payables.repository.js';
import { RevaluedSubledgers } from '../ledger/revalued-items.js';
import { BillPaymentsService } from './bill-payments.service.js';
import { PayablesController } from './payables.controller.js';
import { PayablesService } from './payables.service.js';
import { listOpenBillsTool } from './payables.tools.js';

/** Vendors, bills and expense claims with approvals, bill payments and allocations, AP aging (issue 15, payables). */
@Module({
  imports: [BillingModule, LedgerModule, AgentsModule],
  controllers: [PayablesController],
  providers: [PayablesService, BillPaymentsService],
  exports: [PayablesService, BillPaymentsService],
})
export class PayablesModule implements OnModuleInit {
  constructor(
    private readonly tools: ToolRegistry,
    private readonly owners: JournalEntryOwners,
    private readonly controls: ControlAccounts,
    private readonly payables: PayablesService,
    private readonly revalued: RevaluedSubledgers,
  ) {}

  onModuleInit(): void {
    // its documents' postings are corrected through the documents, not reversed alone
    this.owners.register('payables', (tx, entryId) => payablesRepository.entryOwner(tx.db, tx.orgId, entryId));
    // the AP account takes no manual journal entry: the AP aging would no longer equal it
    this.controls.register('payables', (tx) => this.payables.controlAccounts(tx));
    // the FX revaluation values the AP account per open bill and payment credit, kept with each (the aging adds them)
    this.revalued.register('payables', 'credit', async (tx, asOf, documentIds, postedBefore) => {
      const [ap] = await this.payables.controlAccounts(tx);
      if (!ap) return { accountIds: [], items: [] };
      return { accountIds: [ap.accountId], items: (await fxOpenPayables(tx.db, tx.orgId, asOf, documentIds, postedBefore)).map((i) => ({ ...i, accountId: ap.accountId })) };
    });
    // the agents' list_open_bills tool (reads semantic.v_ap_open as the run's user)
    this.tools.register(listOpenBillsTool);
  }
}
