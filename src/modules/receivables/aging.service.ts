import { Injectable } from '@nestjs/common';
import type { TenantTx } from '../../platform/database/database.service.js';
import { Clock } from '../../platform/clock/clock.js';
import { LedgerService } from '../ledger/ledger.service.js';
import { parseBucketEdges } from '../ledger/aging.js';
import { placeAging } from './aging.js';
import { today } from './invoices.service.js';
import { ReceivablesErrors } from './receivables.errors.js';
import { receivablesRepository as repo } from './receivables.repository.js';
import type { ArAgingQuery, ArAgingReportDto } from './receivables.dto.js';

/** AR aging as of any date: the open base amounts grouped per customer and bucket in SQL (finance.ar_aging), summed per customer, per bucket and in total there too, placed by `placeAging`. */
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
    const report = placeAging(await repo.agingSums(tx.db, asOf, edges, baseMu), edges, baseMu);
    return { asOf, baseCurrency, ...report };
  }
}
