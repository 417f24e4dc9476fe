import { Injectable } from '@nestjs/common';
import type { TenantTx } from '../../platform/database/database.service.js';
import { Clock } from '../../platform/clock/clock.js';
import { LedgerService } from '../ledger/ledger.service.js';
import { parseBucketEdges } from '../ledger/aging.js';
import { assembleAging } from './aging.js';
import { today } from './invoices.service.js';
import { ReceivablesErrors } from './receivables.errors.js';
import { receivablesRepository as repo } from './receivables.repository.js';
import type { ArAgingQuery, ArAgingReportDto } from './receivables.dto.js';

/** AR aging as of any date: the open base amounts grouped per customer and bucket in SQL (finance.ar_aging), assembled by the kind-agnostic `assembleAging`. */
@Injectable()
export class AgingService {
  constructor(
    private readonly ledger: LedgerService,
    private readonly clock: Clock,
  ) {}

  async report(tx: TenantTx, q: ArAgingQuery): Promise<ArAgingReportDto> {
    const edges = parseBucketEdges(q.buckets);
    if (!edges) throw ReceivablesErrors.error('receivables.buckets', `buckets must be 1 to 10 ascending positive whole numbers of days, e.g. 15,30,60 (got "${q.buckets}")`);
    const { baseCurrency } = await this.ledger.settings(tx);
    const baseMu = await this.ledger.currencyUnits(tx, baseCurrency);
    const asOf = q.asOf ?? today(this.clock);
    const items = await repo.agingItems(tx.db, asOf, edges);
    const report = assembleAging(items.map((i) => ({ partyId: i.party_id, partyName: i.party_name, bucket: i.bucket, amount: i.amount })), edges, baseMu);
    return { asOf, baseCurrency, ...report };
  }
}
