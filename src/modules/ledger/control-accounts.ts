import { Injectable } from '@nestjs/common';
import type { TenantTx } from '../../platform/database/database.service.js';

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
 * schedule) and the account agree; a manual journal entry on it is refused (JournalService). Each module registers a
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

  /** Every module's control accounts, by account id (lower case). */
  async byAccount(tx: TenantTx): Promise<Map<string, ControlAccount & { module: string }>> {
    const out = new Map<string, ControlAccount & { module: string }>();
    for (const [module, lookup] of this.lookups) {
      for (const a of await lookup(tx)) {
        const id = a.accountId.toLowerCase();
        if (!out.has(id)) out.set(id, { ...a, module });
      }
    }
    return out;
  }
}
