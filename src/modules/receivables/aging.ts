import { agingBucketNames } from '../ledger/aging.js';

/**
 * Aging, kind-agnostic: the SQL sums the open base amounts per party and bucket, per party, per bucket and in total
 * (finance.ar_aging under GROUPING SETS, rounded to the base currency), and `placeAging` places those sums in the
 * report. Pure: no database, no clock, no arithmetic (5,000 customers' sums cost no decimal work in the API).
 */
/** Labels of the buckets for `edges`: current, 1-30, 31-60, 61-90, >90 for [30, 60, 90]. */
export const bucketLabels = (edges: number[]): string[] => agingBucketNames(edges);

/** One sum of the SQL's GROUPING SETS ((party, bucket), (party), (bucket), ()): null where it is summed over. */
export interface AgingSum {
  partyId: string | null;
  partyName: string | null;
  /** the bucket's label (finance.aging_bucket): current, 1-30, …, >90 */
  bucket: string | null;
  /** base-currency amount with the currency's decimals (negative for credits) */
  amount: string;
}

export interface AgingReport {
  bucketLabels: string[];
  rows: { partyId: string; partyName: string; buckets: { bucket: string; amount: string }[]; total: string }[];
  totals: { bucket: string; amount: string }[];
  total: string;
}

/**
 * Per party in the order of `sums` (the SQL sorts by name, then id) and in total; a bucket without a sum is zero,
 * a party whose every bucket is zero is left out. Each total is the SQL's sum of its buckets.
 */
export function placeAging(sums: AgingSum[], edges: number[], minorUnits: number): AgingReport {
  const labels = bucketLabels(edges);
  const zero = (0).toFixed(minorUnits);
  const index = new Map(labels.map((l, i) => [l, i]));
  const at = (bucket: string) => {
    const b = index.get(bucket);
    if (b === undefined) throw new Error(`aging: bucket ${bucket} is not one of ${labels.join(', ')}`);
    return b;
  };
  const parties = new Map<string, { name: string; amounts: string[]; total: string }>();
  const totals = labels.map(() => zero);
  let total = zero;
  for (const s of sums) {
    if (s.partyId === null) {
      if (s.bucket === null) total = s.amount;
      else totals[at(s.bucket)] = s.amount;
      continue;
    }
    let p = parties.get(s.partyId);
    if (!p) parties.set(s.partyId, (p = { name: s.partyName ?? '', amounts: labels.map(() => zero), total: zero }));
    if (s.bucket === null) p.total = s.amount;
    else p.amounts[at(s.bucket)] = s.amount;
  }
  const rows = [...parties.entries()]
    .filter(([, p]) => p.amounts.some((a) => Number(a) !== 0))
    .map(([partyId, p]) => ({ partyId, partyName: p.name, buckets: labels.map((bucket, i) => ({ bucket, amount: p.amounts[i] })), total: p.total }));
  return { bucketLabels: labels, rows, totals: labels.map((bucket, i) => ({ bucket, amount: totals[i] })), total };
}
