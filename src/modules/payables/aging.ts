import { Decimal } from 'decimal.js';
import { agingBucket, agingBucketNames } from '../ledger/aging.js';

/**
 * Payables' aging report: the per-party and total sums of open items in the shared buckets (../ledger/aging.ts).
 * The SQL twin of the bucket is finance.aging_bucket(days, edges) (migration 20261221000100_payables), used by
 * semantic.v_ap_open.
 */
export { agingBucket, agingBucketNames, DEFAULT_AGING_EDGES } from '../ledger/aging.js';

/** Whole days from `from` to `to` (YYYY-MM-DD, UTC), negative when `to` is earlier. */
export function daysBetween(from: string, to: string): number {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86_400_000);
}

export interface AgingItem {
  partyType: string;
  partyId: string;
  partyName: string | null;
  dueDate: string | null;
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

/**
 * Sums items into buckets per party and in total. An item without a due date (an unapplied payment or credit)
 * counts as `current`. Amounts keep `minorUnits` decimals; the sum of the buckets is the total, always.
 */
export function agingReport(items: AgingItem[], asOf: string, edges: number[], minorUnits: number): { rows: AgingRow[]; totals: Record<string, string>; total: string } {
  const names = agingBucketNames(edges);
  const zero = () => Object.fromEntries(names.map((n) => [n, new Decimal(0)])) as Record<string, Decimal>;
  const parties = new Map<string, { partyType: string; partyId: string; partyName: string | null; sums: Record<string, Decimal> }>();
  const totals = zero();
  for (const item of items) {
    const bucket = item.dueDate ? agingBucket(daysBetween(item.dueDate, asOf), edges) : 'current';
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
