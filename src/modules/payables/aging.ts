import { Decimal } from 'decimal.js';

/**
 * Aging, as one pure function that receivables and payables can share: the bucket of a document by days past
 * due and the bucket edges (ascending; default 30, 60, 90), and the per-party and total sums. The SQL twin is
 * finance.aging_bucket(days, edges) (migration 20261221000100_payables), used by semantic.v_ap_open.
 */
export const DEFAULT_AGING_EDGES = [30, 60, 90];

/** 'current' (not yet due), then '1-30', '31-60', '61-90', '>90' for the default edges. */
export function agingBucket(daysPastDue: number, edges: number[] = DEFAULT_AGING_EDGES): string {
  if (daysPastDue <= 0) return 'current';
  for (let i = 0; i < edges.length; i++) if (daysPastDue <= edges[i]) return `${(edges[i - 1] ?? 0) + 1}-${edges[i]}`;
  return `>${edges[edges.length - 1]}`;
}

/** The bucket names for the edges, in order. */
export function agingBucketNames(edges: number[] = DEFAULT_AGING_EDGES): string[] {
  return ['current', ...edges.map((e, i) => `${(edges[i - 1] ?? 0) + 1}-${e}`), `>${edges[edges.length - 1]}`];
}

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
