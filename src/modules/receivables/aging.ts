import { Decimal } from 'decimal.js';
import { agingBucketNames } from '../ledger/aging.js';

/**
 * Aging, kind-agnostic: receivables hand their open base amounts, already grouped per party and bucket by the SQL
 * function finance.ar_aging(as_of, edges), to `assembleAging`. Pure: no database, no clock.
 */
/** Labels of the buckets for `edges`: current, 1-30, 31-60, 61-90, >90 for [30, 60, 90]. */
export const bucketLabels = (edges: number[]): string[] => agingBucketNames(edges);

export interface AgingItem {
  partyId: string;
  partyName: string;
  /** the bucket's label (finance.aging_bucket): current, 1-30, …, >90 */
  bucket: string;
  /** base-currency amount (decimal string; negative for credits) */
  amount: string;
}

export interface AgingReport {
  bucketLabels: string[];
  rows: { partyId: string; partyName: string; buckets: { bucket: string; amount: string }[]; total: string }[];
  totals: { bucket: string; amount: string }[];
  total: string;
}

/** Per party (by name, then id) and in total; each total is the exact sum of its buckets. */
export function assembleAging(items: AgingItem[], edges: number[], minorUnits: number): AgingReport {
  const labels = bucketLabels(edges);
  const zero = () => labels.map(() => new Decimal(0));
  const parties = new Map<string, { name: string; sums: Decimal[] }>();
  const totals = zero();
  const index = new Map(labels.map((l, i) => [l, i]));
  for (const item of items) {
    const b = index.get(item.bucket);
    if (b === undefined) throw new Error(`aging: bucket ${item.bucket} is not one of ${labels.join(', ')}`);
    let p = parties.get(item.partyId);
    if (!p) parties.set(item.partyId, (p = { name: item.partyName, sums: zero() }));
    p.sums[b] = p.sums[b].plus(item.amount);
    totals[b] = totals[b].plus(item.amount);
  }
  const fmt = (d: Decimal) => d.toFixed(minorUnits);
  const sum = (xs: Decimal[]) => xs.reduce((a, b) => a.plus(b), new Decimal(0));
  const rows = [...parties.entries()]
    .sort(([ida, a], [idb, b]) => a.name.localeCompare(b.name) || ida.localeCompare(idb))
    .filter(([, p]) => p.sums.some((s) => !s.isZero()))
    .map(([partyId, p]) => ({ partyId, partyName: p.name, buckets: labels.map((bucket, i) => ({ bucket, amount: fmt(p.sums[i]) })), total: fmt(sum(p.sums)) }));
  return { bucketLabels: labels, rows, totals: labels.map((bucket, i) => ({ bucket, amount: fmt(totals[i]) })), total: fmt(sum(totals)) };
}
