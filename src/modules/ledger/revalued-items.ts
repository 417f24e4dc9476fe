import { Injectable } from '@nestjs/common';
import type { TenantTx } from '../../platform/database/database.service.js';
import type { JournalService } from './journal.service.js';
import type { LedgerService } from './ledger.service.js';

/** The subledgers whose control accounts are revalued per open item (finance.fx_revaluation_items.subledger). */
export type Subledger = 'receivables' | 'payables';

/**
 * A foreign-currency open item of a subledger as of a date (an invoice, a bill, a payment's credit), signed as its
 * aging shows it: a receivable or payable positive, a payment's credit negative.
 */
export interface OpenItem {
  /** the control account that carries it */
  accountId: string;
  currency: string;
  /** the invoice, bill or payment */
  documentId: string;
  /** what is open of it in its currency */
  open: string;
  /** its base value in the aging (and in the control account): the document's, changed by its allocations and revaluations */
  carried: string;
  /** the rate it is carried at: the last revaluation's, else the document's */
  carriedRate: string;
  /** the document's own rate */
  ownRate: string;
  /**
   * the latest date after `asOf` of a settlement of it already in the books (an allocation, a refund, its reversal, a
   * void), or null: a revaluation as of `asOf` would change a value the item no longer carries from then on
   */
  settledAfter: string | null;
  /**
   * the earliest such settlement, or null: with autoReverse only one dated before the reversal (the next period's first
   * day) stands in the way; one dated on or after it settled what the item carries again once reversed
   */
  firstSettledAfter: string | null;
}

/**
 * A subledger's control accounts and its foreign-currency open items as of `asOf` (items carried at 0 with nothing open
 * left out), all of them or those of `documentIds`. `postedBefore`: a settlement dated `asOf` counts only when posted
 * before the finance.fx_revaluation_items row of that seq (an allocation's or a refund's posting_seq; a void by its date).
 */
export type OpenItemsLookup = (tx: TenantTx, asOf: string, documentIds?: string[], postedBefore?: string | null) => Promise<{ accountIds: string[]; items: OpenItem[] }>;

/**
 * The subledgers (receivables, payables) whose control accounts the FX revaluation values per open item rather than as
 * one balance: each item is valued at the date's rate and its change is kept per item (finance.fx_revaluation_items),
 * so the aging, which adds those changes, stays equal to the control account, and an allocation settles what the item
 * carries since (its realized result is only what the rate moved after the revaluation). `side`: where the aging's
 * amounts sit on the account (AR: debit, AP: credit). Each module registers a lookup over its own tables at init.
 */
@Injectable()
export class RevaluedSubledgers {
  private readonly lookups = new Map<Subledger, { side: 'debit' | 'credit'; lookup: OpenItemsLookup }>();

  register(subledger: Subledger, side: 'debit' | 'credit', lookup: OpenItemsLookup): void {
    if (this.lookups.has(subledger)) throw new Error(`revalued open items of ${subledger} are already registered`);
    this.lookups.set(subledger, { side, lookup });
  }

  /** Where the subledger's aging amounts sit on its control account (AR: debit, AP: credit). */
  side(subledger: Subledger): 'debit' | 'credit' {
    const registered = this.lookups.get(subledger);
    if (!registered) throw new Error(`revalued open items of ${subledger} are not registered`);
    return registered.side;
  }

  async openItems(tx: TenantTx, asOf: string): Promise<{ subledger: Subledger; side: 'debit' | 'credit'; accountIds: string[]; items: OpenItem[] }[]> {
    const out = [];
    for (const [subledger, { side, lookup }] of this.lookups) out.push({ subledger, side, ...(await lookup(tx, asOf)) });
    return out;
  }

  /**
   * Open items of a subledger as of `asOf` among `documentIds` (one read): those that carry nothing and have nothing open
   * then are left out. `postedBefore`: as of the revaluation row of that seq (OpenItemsLookup).
   */
  async openItemsOf(tx: TenantTx, subledger: Subledger, asOf: string, documentIds: string[], postedBefore?: string): Promise<OpenItem[]> {
    const registered = this.lookups.get(subledger);
    if (!registered) throw new Error(`revalued open items of ${subledger} are not registered`);
    return (await registered.lookup(tx, asOf, documentIds, postedBefore)).items;
  }
}

/**
 * Before what an item of a subledger carries is read as of `date` (a settlement, a credit, a void): the posting lock held
 * shared, so that an FX revaluation, which drains postings before it reads the open items, is either waited for (and its
 * changes read here) or waits for this transaction (and revalues what this one left); then a date before the items' last
 * revaluation in the books by then is refused with the subledger's own error (`refuse`): what an item carries is its
 * value after that revaluation, not as of an earlier day, so settling, crediting or voiding it then would take the wrong
 * base off the control account. An autoReverse reversal (dated the next period's first day) does not count: a settlement
 * dated between a revaluation and its reversal settles what the item carries as of its date
 * (JournalService.settlePendingReversals). Callers pass the foreign-currency documents only (none: nothing is read).
 */
export async function assertAfterRevaluations(ledger: LedgerService, journal: JournalService, tx: TenantTx, documentIds: string[], date: string, doing: string,
  refuse: (message: string, details: { documentId: string; revaluationDate: string }) => Error): Promise<void> {
  // a settlement of base-currency documents only: none is ever revalued, and what they carry is no revaluation's to change
  if (!documentIds.length) return;
  // sent together (the connection pipelines them, in this order: the lock is held before the read)
  const [, last] = await Promise.all([ledger.holdPostings(tx), journal.lastRevaluation(tx, documentIds)]);
  if (last && date < last.date) {
    throw refuse(`${doing} dated ${date} is before ${last.date}, the date of the last FX revaluation of ${last.documentId}: date it on or after ${last.date}`,
      { documentId: last.documentId, revaluationDate: last.date });
  }
}
