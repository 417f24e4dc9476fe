import { agingBucketNames } from '../ledger/aging.js';

/** Labels of the buckets for `edges`: current, 1-30, 31-60, 61-90, >90 for [30, 60, 90]. */
export const bucketLabels = (edges: number[]): string[] => agingBucketNames(edges);

/**
 * Amounts under their bucket labels: the SQL (finance.ar_aging_page) answers, per party and in total, the indexes
 * of the buckets that hold an amount and those amounts, already rounded; a bucket without one is zero. Pure: no
 * arithmetic in the API.
 */
export function placeBuckets(labels: string[], indexes: number[], amounts: string[], minorUnits: number): { bucket: string; amount: string }[] {
  const zero = (0).toFixed(minorUnits);
  const out = labels.map((bucket) => ({ bucket, amount: zero }));
  for (let k = 0; k < indexes.length; k++) out[indexes[k]].amount = amounts[k];
  return out;
}
