import { Decimal } from '../../platform/decimal.js';
import { agingBucketNames } from '../ledger/aging.js';

/**
 * Payables' aging report: the per-party and total sums of the open base amounts that finance.ap_aging grouped per
 * party and bucket (the SQL twin of ../ledger/aging.ts's agingBucket, finance.aging_bucket, also used by
 * semantic.v_ap_open).
 */
export { agingBucket, agingBucketNames, DEFAULT_AGING_EDGES } from '../ledger/aging.js';

export interface AgingItem {
  partyType: string;
  partyId: string;
  partyName: string | null;
  /** the bucket's label (finance.aging_bucket; an unapplied payment or credit is current) */
  bucket: string;
  /** base-currency amount (negative for an unapplied credit) */
  amount: Decimal.Value;
}

export interface AgingRow {
  partyType: string;
  partyId: string;
  partyName: string | null;
  buckets: Record<string, string>;
  total: string;
}

/** Sums items into buckets per party and in total. Amounts keep `minorUnits` decimals; the sum of the buckets is the total, always. */
export function agingReport(items: AgingItem[], edges: number[], minorUnits: number): { rows: AgingRow[]; totals: Record<string, string>; total: string } {
  const names = agingBucketNames(edges);
  const zero = () => Object.fromEntries(names.map((n) => [n, new Decimal(0)])) as Record<string, Decimal>;
  const parties = new Map<string, { partyType: string; partyId: string; partyName: string | null; sums: Record<string, Decimal> }>();
  const totals = zero();
  for (const item of items) {
    const bucket = item.bucket;
    if (!(bucket in totals)) throw new Error(`aging: bucket ${bucket} is not one of ${names.join(', ')}`);
    const key = `${item.partyType}:${item.partyId}`;
    let p = parties.get(key);
    if (!p) parties.set(key, (p = { partyType: item.partyType, partyId: item.partyId, partyName: item.partyName, sums: zero() }));
    p.sums[bucket] = p.sums[bucket].plus(item.amount);
    totals[bucket] = totals[bucket].plus(item.amount);
  }
  const fmt = (sums: Record<string, Decimal>) => Object.fromEntries(names.map((n) => [n, sums[n].toFixed(minorUnits)]));
  const sum = (sums: Record<string, Decimal>) => names.reduce((s, n) => s.plus(sums[n]), new Decimal(0)).toFixed(minorUnits);
  const rows = [...parties.values()]
    .sort((a, b) => (a.partyName ?? a.partyId).localeCompare(b.partyName ?? b.partyId) || a.partyId.localeCompare(b.partyId))
    .map((p) => ({ partyType: p.partyType, partyId: p.partyId, partyName: p.partyName, buckets: fmt(p.sums), total: sum(p.sums) }));
  return { rows, totals: fmt(totals), total: sum(totals) };
}
