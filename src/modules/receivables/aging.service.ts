import { Injectable } from '@nestjs/common';
import type { TenantTx } from '../../platform/database/database.service.js';
import { decodeKeyset, encodeCursor } from '../../platform/http/pagination.js';
import { Clock, today } from '../../platform/clock/clock.js';
import { LedgerService } from '../ledger/ledger.service.js';
import { parseBucketEdges } from '../ledger/aging.js';
import { bucketLabels, placeBuckets } from './aging.js';
import { ReceivablesErrors } from './receivables.errors.js';
import { receivablesRepository as repo } from './receivables.repository.js';
import type { ArAgingQuery, ArAgingReportDto } from './receivables.dto.js';

/** Customers per page of the JSON report when the caller names no limit (the CSV has them all). */
export const AGING_PAGE_DEFAULT = 100;

/**
 * AR aging as of any date: one page of customers (by name, then id) and the totals over all of them, grouped,
 * summed and rounded in SQL (finance.ar_aging_page); the API only places the amounts under their labels.
 */
@Injectable()
export class AgingService {
  constructor(
    private readonly ledger: LedgerService,
    private readonly clock: Clock,
  ) {}

  /** `all`: every customer in one answer (the CSV); otherwise the page `q.limit` / `q.cursor` names. */
  async report(tx: TenantTx, q: ArAgingQuery, all = false): Promise<ArAgingReportDto> {
    const edges = parseBucketEdges(q.buckets);
    if (!edges) throw ReceivablesErrors.error('receivables.buckets', `buckets must be 1 to 10 ascending positive whole numbers of days, e.g. 15,30,60 (got "${q.buckets}")`);
    const after = all ? undefined : decodeKeyset(q.cursor, { n: 'text', i: 'uuid' });
    const limit = all ? null : q.limit ?? AGING_PAGE_DEFAULT;
    const { baseCurrency } = await this.ledger.settings(tx);
    const baseMu = await this.ledger.currencyUnits(tx, baseCurrency);
    const asOf = q.asOf ?? today(this.clock);
    const rows = await repo.agingPage(tx.db, asOf, edges, baseMu, { after, limit: limit === null ? null : limit + 1 });
    const labels = bucketLabels(edges);
    const place = (indexes: number[], amounts: string[]) => placeBuckets(labels, indexes, amounts, baseMu);
    const totals = rows[rows.length - 1];
    const parties = rows.slice(0, -1);
    const more = limit !== null && parties.length > limit;
    const shown = more ? parties.slice(0, limit) : parties;
    const last = shown[shown.length - 1];
    return {
      asOf, baseCurrency, bucketLabels: labels,
      rows: shown.map((r) => ({ partyId: r.partyId!, partyName: r.partyName!, buckets: place(r.bucketIndexes, r.amounts), total: r.total })),
      totals: place(totals.bucketIndexes, totals.amounts), total: totals.total, partyCount: totals.partyCount ?? 0,
      ...(more ? { nextCursor: encodeCursor({ n: last.partyName, i: last.partyId }) } : {}),
    };
  }
}
