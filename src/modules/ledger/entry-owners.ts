import { Injectable } from '@nestjs/common';
import type { TenantTx } from '../../platform/database/database.service.js';

/** Names the record of a module a journal entry belongs to ("invoice INV-2026-0007"), or undefined for none. */
export type EntryOwnerLookup = (tx: TenantTx, entryId: string) => Promise<string | undefined>;

/**
 * The records journal entries belong to: an invoice's posting, a payment's, an allocation's, a year's closing entry.
 * Such an entry is corrected through its record (void the invoice, issue a credit note, reverse the allocation, reopen
 * the year), which reverses it and updates the record in one transaction. The generic reversal
 * (POST .../journal-entries/{id}/reverse) refuses it: reversed alone, the ledger and the record would disagree, e.g. an
 * invoice still open in the aging while its receivable is gone from the ledger. Each module registers a lookup over its
 * own tables at init.
 */
@Injectable()
export class JournalEntryOwners {
  private readonly lookups = new Map<string, EntryOwnerLookup>();

  register(module: string, lookup: EntryOwnerLookup): void {
    if (this.lookups.has(module)) throw new Error(`journal entry owners of ${module} are already registered`);
    this.lookups.set(module, lookup);
  }

  async ownerOf(tx: TenantTx, entryId: string): Promise<string | undefined> {
    for (const lookup of this.lookups.values()) {
      const owner = await lookup(tx, entryId);
      if (owner) return owner;
    }
    return undefined;
  }
}
