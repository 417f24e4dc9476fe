import { Decimal } from 'decimal.js';
import { agingBucketNames, DEFAULT_AGING_EDGES } from '../ledger/aging.js';

/**
 * Aging, kind-agnostic: receivables and payables both hand their open items, already placed in a bucket by
 * the SQL function finance.aging_bucket_index(days_past_due, edges), to `assembleAging`. Pure: no database, no clock.
 */
export { DEFAULT_AGING_EDGES };

/** `?buckets=15,30,60` → [15, 30, 60]; undefined when the text is not 1–10 ascending positive whole numbers. */
export function parseBucketEdges(text: string | undefined): number[] | undefined {
  if (text === undefined) return DEFAULT_AGING_EDGES;
  const parts = text.split(',').map((s) => s.trim());
  if (parts.length < 1 || parts.length > 10 || parts.some((p) => !/^\d{1,5}$/.test(p))) return undefined;
  const edges = parts.map(Number);
  if (edges[0] < 1 || edges.some((e, i) => i > 0 && e <= edges[i - 1])) return undefined;
  return edges;
}

/** Labels of the buckets for `edges`: current, 1-30, 31-60, 61-90, >90 for [30, 60, 90]. */
export const bucketLabels = (edges: number[]): string[] => agingBucketNames(edges);

export interface AgingItem {
  partyId: string;
  partyName: string;
  /** 0 = current … edges.length + 1 = beyond the last edge (finance.aging_bucket_index) */
  bucket: number;
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
  for (const item of items) {
    let p = parties.get(item.partyId);
    if (!p) parties.set(item.partyId, (p = { name: item.partyName, sums: zero() }));
    p.sums[item.bucket] = p.sums[item.bucket].plus(item.amount);
    totals[item.bucket] = totals[item.bucket].plus(item.amount);
  }
  const fmt = (d: Decimal) => d.toFixed(minorUnits);
  const sum = (xs: Decimal[]) => xs.reduce((a, b) => a.plus(b), new Decimal(0));
  const rows = [...parties.entries()]
    .sort(([ida, a], [idb, b]) => a.name.localeCompare(b.name) || ida.localeCompare(idb))
    .filter(([, p]) => p.sums.some((s) => !s.isZero()))
    .map(([partyId, p]) => ({ partyId, partyName: p.name, buckets: labels.map((bucket, i) => ({ bucket, amount: fmt(p.sums[i]) })), total: fmt(sum(p.sums)) }));
  return { bucketLabels: labels, rows, totals: labels.map((bucket, i) => ({ bucket, amount: fmt(totals[i]) })), total: fmt(sum(totals)) };
}
