import { Injectable } from '@nestjs/common';
import type { TenantTx } from '../../platform/database/database.service.js';
import type { AppError } from '../../platform/errors/app-error.js';
import { ledgerRepository } from './ledger.repository.js';

/** An account a module's settings make its control account: only the module's documents post to it. */
export interface ControlAccount {
  accountId: string;
  /** what it controls, as an accountant names it ("AR", "deferred revenue", "AP") */
  role: string;
  /** the documents that post to it ("invoices, credit notes, payments and refunds") */
  postedThrough: string;
}

/** A module's control accounts, read from its settings in the transaction (none: an empty list). */
export type ControlAccountLookup = (tx: TenantTx) => Promise<ControlAccount[]>;

/**
 * The control accounts of the modules with a subledger (receivables: AR and deferred revenue; payables: AP). Such an
 * account is posted only through the module's documents, so that the subledger (the AR or AP aging, the revenue
 * schedule) and the account agree; a manual journal entry on it is refused (JournalService), and so is a document's
 * account the client chose (refuse: a bill line, a deposit or bank account). Each module registers a
 * lookup over its own settings at init. Read under the posting lock held shared (LedgerService.holdPostings), as a
 * module's flow reads its settings: a settings change drains the postings first, so a manual entry either sees the
 * change or is waited for by it.
 */
@Injectable()
export class ControlAccounts {
  private readonly lookups = new Map<string, ControlAccountLookup>();

  register(module: string, lookup: ControlAccountLookup): void {
    if (this.lookups.has(module)) throw new Error(`control accounts of ${module} are already registered`);
    this.lookups.set(module, lookup);
  }

  /**
   * Every module's control accounts, by account id (lower case). The modules' reads go out together (the pool pipelines
   * them: one round trip, not one per module) and are taken in the modules' order; a failed one is thrown once all have
   * answered, the first module's first.
   */
  async byAccount(tx: TenantTx): Promise<Map<string, ControlAccount & { module: string }>> {
    const modules = [...this.lookups];
    const found = await Promise.allSettled(modules.map(([, lookup]) => lookup(tx)));
    const out = new Map<string, ControlAccount & { module: string }>();
    for (const [i, [module]] of modules.entries()) {
      const read = found[i];
      if (read.status === 'rejected') throw read.reason;
      for (const a of read.value) {
        const id = a.accountId.toLowerCase();
        if (!out.has(id)) out.set(id, { ...a, module });
      }
    }
    return out;
  }

  /**
   * The check of the accounts a document path takes from the client (a bill or claim line's account, a deposit, bank
   * or refund account) and of the control accounts a module's settings name: none may be a control account, which is
   * posted only on the control line of its module's documents (an AR balance no open invoice explains, an AP aging
   * above its account). `own`: the module whose settings are set, whose own control accounts are its to name again;
   * those settings name no tax code's sales or purchase account either (LedgerService refuses the other direction: a
   * tax code naming a control account), archived codes too: a credit note of an invoice issued with one still posts its
   * tax there. `refuse` makes the module's error of the message. The modules' settings are read once for all `accounts`.
   */
  async refuse(tx: TenantTx, accounts: { id: string; code: string; field: string }[], refuse: (message: string) => AppError, o: { own?: string } = {}): Promise<void> {
    if (!accounts.length) return;
    const controls = await this.byAccount(tx);
    for (const a of accounts) {
      const control = controls.get(a.id.toLowerCase());
      if (!control || control.module === o.own) continue;
      throw refuse(`${a.field}: account ${a.code} is the ${control.role} control account of ${control.module}: it is posted only through ${control.module}' `
        + `${control.postedThrough}, so that ${control.module} and the ledger agree`);
    }
    if (o.own) await this.refuseTaxAccounts(tx, accounts, refuse, o.own);
  }

  /**
   * A module's settings make none of `accounts` a control account while a tax code posts its tax to it: the tax of
   * every document with that code would sit on the control account apart from the module's subledger (the aging).
   * Race-free with a tax code's change: the settings change has drained the postings (exclusive) before this read, and
   * so has a tax code's change before its check (LedgerService.taxAccounts), so one sees the other's commit; payables'
   * first posting on its default settings runs this check too (PayablesService.postingAccount), under the lock shared.
   */
  private async refuseTaxAccounts(tx: TenantTx, accounts: { id: string; code: string; field: string }[], refuse: (message: string) => AppError, module: string): Promise<void> {
    const taxed = await ledgerRepository.taxCodesNaming(tx.db, tx.orgId, accounts.map((a) => a.id));
    for (const a of accounts) {
      const id = a.id.toLowerCase();
      const t = taxed.find((x) => x.salesAccountId.toLowerCase() === id || x.purchaseAccountId.toLowerCase() === id);
      if (!t) continue;
      throw refuse(`${a.field}: account ${a.code} is the ${t.salesAccountId.toLowerCase() === id ? 'sales' : 'purchase'} account of tax code ${t.code}`
        + `${t.archivedAt ? ' (archived)' : ''}: a control account of ${module} would carry the code's tax, which no document of ${module} explains; `
        + 'give the tax code another account first');
    }
  }
}
